//! Entries and exits per segment over the last hour, for the segments page.
//!
//! Read from the change log when the console asks (never on the ingest path): each call
//! reads only the changes appended since the previous call and adds them to per-minute
//! buckets, keeping 60 minutes. The work per call is bounded; a console that was away
//! longer than the log's retention restarts from the oldest retained change.

use crate::changes::ChangeKind;
use crate::engine::Engine;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::{blocking, AppState};
use axum::extract::State;
use axum::Json;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};

const MINUTE_MS: i64 = 60_000;
/// Minutes counted.
pub const WINDOW_MINUTES: i64 = 60;
/// Most changes read per call (a busier hour is counted over the following calls).
pub const MAX_CHANGES_PER_CALL: usize = 1_000_000;

#[derive(Debug, Default)]
struct Buckets {
    /// (minute, entered, exited), oldest first.
    minutes: VecDeque<(i64, u64, u64)>,
}

/// The per-segment counters and the log position read up to.
#[derive(Debug, Default)]
pub struct Activity {
    inner: Mutex<(u64, HashMap<u32, Buckets>)>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SegmentActivity {
    pub segment_id: u32,
    pub entered: u64,
    pub exited: u64,
}

impl Activity {
    /// Reads new changes and returns last-hour counts per segment with any.
    pub fn last_hour(&self, engine: &Engine) -> Vec<SegmentActivity> {
        let now_minute = engine.now_ms().div_euclid(MINUTE_MS);
        let oldest_minute = now_minute - WINDOW_MINUTES + 1;
        let mut guard = self.inner.lock();
        let (after, segments) = &mut *guard;
        let log = engine.changes();
        let mut read = 0;
        while read < MAX_CHANGES_PER_CALL {
            let result = match log.read(*after, None, 65_536) {
                Ok(result) => result,
                Err(behind) => {
                    *after = behind.oldest_available.saturating_sub(1);
                    read += 1;
                    continue;
                }
            };
            for change in &result.changes {
                let minute = change.time_ms.div_euclid(MINUTE_MS);
                if minute < oldest_minute {
                    continue;
                }
                let buckets = segments.entry(change.segment_id).or_default();
                let slot = match buckets.minutes.back() {
                    Some((last, ..)) if *last == minute => buckets.minutes.len() - 1,
                    _ => {
                        buckets.minutes.push_back((minute, 0, 0));
                        buckets.minutes.len() - 1
                    }
                };
                let bucket = &mut buckets.minutes[slot];
                match change.kind {
                    ChangeKind::Entered => bucket.1 += 1,
                    ChangeKind::Exited => bucket.2 += 1,
                }
            }
            read += result.changes.len().max(1);
            let done = result.next_after >= result.head || result.next_after == *after;
            *after = result.next_after;
            if done {
                break;
            }
        }
        let mut out = Vec::new();
        segments.retain(|segment_id, buckets| {
            while buckets
                .minutes
                .front()
                .is_some_and(|(minute, ..)| *minute < oldest_minute)
            {
                buckets.minutes.pop_front();
            }
            if buckets.minutes.is_empty() {
                return false;
            }
            let (entered, exited) = buckets
                .minutes
                .iter()
                .fold((0, 0), |(entered, exited), (_, e, x)| {
                    (entered + e, exited + x)
                });
            out.push(SegmentActivity {
                segment_id: *segment_id,
                entered,
                exited,
            });
            true
        });
        out.sort_by_key(|activity| activity.segment_id);
        out
    }
}

/// `GET /console/api/activity`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActivityAnswer {
    pub window_minutes: i64,
    pub segments: Vec<SegmentActivity>,
}

/// Entries and exits per segment over the last hour.
#[utoipa::path(get, path = "/console/api/activity", operation_id = "consoleActivity", tag = "console",
    responses(
        (status = 200, description = "Per segment, oldest id first", body = ActivityAnswer),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
pub async fn get_activity(State(state): State<AppState>) -> ApiResult<Json<ActivityAnswer>> {
    let console_state = state.clone();
    let segments = blocking(&state, move |engine| {
        console_state.console.activity.last_hour(engine)
    })
    .await?;
    Ok(Json(ActivityAnswer {
        window_minutes: WINDOW_MINUTES,
        segments,
    }))
}
