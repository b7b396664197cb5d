//! Bulk loading: many profiles (and their events) into an engine from every core.
//!
//! Used by the demo, the benches and `segd import`. Profiles are spread over worker
//! threads by index; each message goes through the ordinary engine path (validation,
//! identity, columns, incremental segments), so a bulk load and live ingest give the
//! same state.

use crate::demo::DemoGenerator;
use crate::engine::{Engine, EngineError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a load did.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    pub profiles: u64,
    pub events: u64,
    pub elapsed: Duration,
}

/// Loads `count` demo profiles (indexes `0..count`) and `events_per_profile` events
/// each (scaled by the profile's activity weight, capped), using `threads` workers.
pub fn load_demo(
    engine: &Engine,
    generator: &DemoGenerator,
    count: u64,
    events_per_profile: usize,
    threads: usize,
) -> Result<LoadReport, EngineError> {
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let events_loaded = AtomicU64::new(0);
    const CHUNK: u64 = 1_024;
    let threads = threads.max(1);
    let results: Vec<Result<(), EngineError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<(), EngineError> {
                    loop {
                        let start = next.fetch_add(CHUNK, Ordering::Relaxed);
                        if start >= count {
                            return Ok(());
                        }
                        for index in start..(start + CHUNK).min(count) {
                            let profile = generator.profile(index);
                            engine.identify(
                                Some(&profile.user_id),
                                Some(&profile.anonymous_id),
                                &profile.traits,
                            )?;
                            if events_per_profile > 0 {
                                let wanted = ((events_per_profile as f64)
                                    * generator.activity_weight(index))
                                .round()
                                .clamp(0.0, (events_per_profile * 20) as f64)
                                    as usize;
                                for event in generator.events(index, wanted) {
                                    engine.track(
                                        Some(&profile.user_id),
                                        None,
                                        &event.event,
                                        event.time_ms,
                                        &event.properties,
                                    )?;
                                }
                                events_loaded.fetch_add(wanted as u64, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap_or(Ok(())))
            .collect()
    });
    for result in results {
        result?;
    }
    Ok(LoadReport {
        profiles: count,
        events: events_loaded.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

/// Worker threads to use by default: the machine's cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
