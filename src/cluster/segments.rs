//! Cluster-wide segment definitions: the `segd-segments` stream is their log.
//!
//! A segment mutation (create, delete) is published as its WAL record; every node
//! follows the stream in order and applies each record to its catalog engine and to
//! every partition engine it owns (a partition taken over later replays the records
//! applied so far first). Since every engine applies the same records in the same
//! order, a segment has the same id on every engine, and a refused record (a taken
//! name, a rule naming an unknown segment) is refused everywhere alike. The node that
//! published a record answers its request with what its catalog made of it.
//!
//! Why a stream and not a KV bucket per segment: a KV watch delivers each key's latest
//! value, which loses the order ids were handed out in; the log keeps every version in
//! order (the stream sequence is the version) and replays identically on every node.

use super::*;
use crate::engine::{Applied, EngineError, Mutation};
use crate::http::error::ApiError;
use crate::persist::record::WalRecord;
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use axum::http::StatusCode;
use futures_util::StreamExt;
use std::collections::VecDeque;

/// Outcomes of the most recent segment records kept for the requests that published
/// them (a request takes its own out).
const KEPT_OUTCOMES: usize = 1_024;

/// What the catalog made of recent segment records, by stream sequence.
#[derive(Default)]
pub struct Outcomes {
    recent: Mutex<VecDeque<(u64, Result<Applied, EngineError>)>>,
    applied: tokio::sync::Notify,
}

impl Outcomes {
    fn record(&self, seq: u64, outcome: Result<Applied, EngineError>) {
        let mut recent = self.recent.lock();
        if recent.len() == KEPT_OUTCOMES {
            recent.pop_front();
        }
        recent.push_back((seq, outcome));
        drop(recent);
        self.applied.notify_waiters();
    }

    fn take(&self, seq: u64) -> Option<Result<Applied, EngineError>> {
        let mut recent = self.recent.lock();
        let index = recent.iter().position(|(at, _)| *at == seq)?;
        recent.remove(index).map(|(_, outcome)| outcome)
    }
}

/// Applies one segment record to the catalog and to every owned partition engine,
/// under the node state lock (so a partition taken over at the same time sees it
/// exactly once).
fn apply_record(cluster: &Cluster, seq: u64, record: WalRecord) {
    let WalRecord::Mutation { at_ms, mutation } = &record else {
        return;
    };
    let _pin = ReplayClock::pin(*at_ms);
    let mut state = cluster.state.lock();
    let outcome = cluster.catalog.apply(mutation);
    if let Err(error) = &outcome {
        tracing::debug!(seq, %error, "segment record refused (alike on every engine)");
    }
    for owned in state.owned.values() {
        // The same record on the same definitions: the same outcome as the catalog's.
        let _ = owned.engine.apply(mutation);
    }
    state.segment_records.push(record);
    cluster.segments_applied_seq.store(seq, Ordering::SeqCst);
    drop(state);
    cluster.segments.record(seq, outcome);
}

/// Follows the segment log from its start; returns once everything published before
/// the call is applied.
pub(crate) async fn start_follower(cluster: Arc<Cluster>) -> Result<(), ClusterError> {
    let mut stream = cluster
        .jetstream
        .get_stream(SEGMENTS_STREAM)
        .await
        .map_err(|error| ClusterError::jetstream("segment stream", error))?;
    let last_seq = stream
        .info()
        .await
        .map_err(|error| ClusterError::jetstream("segment stream info", error))?
        .state
        .last_sequence;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: SEGMENTS_SUBJECT.to_string(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|error| ClusterError::jetstream("segment log consumer", error))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|error| ClusterError::jetstream("segment log messages", error))?;
    let follower = cluster.clone();
    tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(%error, "segment log: consumer error; the ordered consumer resumes");
                    continue;
                }
            };
            let Ok(info) = message.info() else { continue };
            let seq = info.stream_sequence;
            match WalRecord::decode(&message.payload) {
                Ok(record) => {
                    let cluster = follower.clone();
                    if tokio::task::spawn_blocking(move || apply_record(&cluster, seq, record))
                        .await
                        .is_err()
                    {
                        tracing::error!(seq, "segment log: applying a record panicked");
                    }
                }
                Err(error) => tracing::error!(seq, %error, "segment log: damaged record skipped"),
            }
        }
        tracing::warn!("segment log: the consumer ended");
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while cluster.segments_applied() < last_seq {
        if tokio::time::Instant::now() > deadline {
            return Err(ClusterError::JetStream(
                "the segment log did not catch up within 60 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn unavailable(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "cluster_unavailable",
        message,
    )
}

/// Publishes a segment mutation and answers with what this node's catalog made of it
/// once applied (the same on every engine).
pub async fn publish(cluster: &Cluster, mutation: Mutation) -> Result<Applied, ApiError> {
    let record = WalRecord::Mutation {
        at_ms: cluster.catalog.now_ms(),
        mutation,
    };
    let ack = cluster
        .jetstream
        .publish(SEGMENTS_SUBJECT, record.encode().into())
        .await
        .map_err(|error| {
            tracing::error!(%error, "segment log: publish failed");
            unavailable("the segment log cannot be written right now; nothing was changed — retry")
        })?
        .await
        .map_err(|error| {
            tracing::error!(%error, "segment log: publish not acknowledged");
            unavailable("the segment log did not acknowledge the write; it may or may not be applied — check and retry")
        })?;
    let deadline = tokio::time::Instant::now() + cluster.read_wait() * 5;
    loop {
        let applied = cluster.segments.applied.notified();
        if let Some(outcome) = cluster.segments.take(ack.sequence) {
            return outcome.map_err(ApiError::from);
        }
        if tokio::time::timeout_at(deadline, applied).await.is_err() {
            return Err(unavailable(
                "the segment change is stored but this node has not applied it yet; read it back shortly",
            ));
        }
    }
}
