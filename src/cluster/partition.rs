//! One owned partition: its engine, fed from the stream's start by an ordered
//! consumer of `segd.in.<partition>` (strictly in stream order, each record once), and
//! its read responder on `segd.query.<partition>`, subscribed only once the engine has
//! caught up with what the stream held at takeover (until then the partition answers
//! nobody, and readers wait or report it unavailable instead of reading a partial
//! state).

use super::*;
use crate::persist::record::WalRecord;
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use futures_util::StreamExt;

/// Creates the partition's engine (with every segment applied so far), registers it
/// as owned and starts its tasks.
pub(crate) async fn take_over(cluster: &Arc<Cluster>, partition: PartitionId, lease_revision: u64) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let node = cluster.clone();
    let registered = tokio::task::spawn_blocking(move || {
        let engine = Arc::new(new_engine(&node.engine_options));
        let mut state = node.state.lock();
        for record in &state.segment_records {
            if let WalRecord::Mutation { at_ms, mutation } = record {
                let _pin = ReplayClock::pin(*at_ms);
                let _ = engine.apply(mutation);
            }
        }
        let owned = Arc::new(Owned {
            partition,
            engine,
            applied_seq: AtomicU64::new(0),
            lease_revision: AtomicU64::new(lease_revision),
            stop,
        });
        state.owned.insert(partition, owned.clone());
        owned
    })
    .await;
    let Ok(owned) = registered else {
        tracing::error!(%partition, "creating the partition engine panicked");
        return;
    };
    tracing::info!(%partition, "partition taken over; replaying its stream");
    tokio::spawn(follow(cluster.clone(), owned, stopped));
}

/// Stops and forgets a partition (lease lost or released).
pub(crate) fn release(cluster: &Cluster, partition: PartitionId) -> Option<Arc<Owned>> {
    let owned = cluster.state.lock().owned.remove(&partition)?;
    owned.stop.send_replace(true);
    tracing::info!(%partition, "partition released");
    Some(owned)
}

/// Stream sequence of the last message in the partition's subject (0: none).
async fn tail_seq(cluster: &Cluster, partition: PartitionId) -> Result<u64, String> {
    let stream = cluster
        .jetstream
        .get_stream(INGEST_STREAM)
        .await
        .map_err(|error| error.to_string())?;
    match stream
        .get_last_raw_message_by_subject(&ingest_subject(partition))
        .await
    {
        Ok(message) => Ok(message.sequence),
        Err(error)
            if error.kind()
                == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
        {
            Ok(0)
        }
        Err(error) => Err(error.to_string()),
    }
}

async fn follow(
    cluster: Arc<Cluster>,
    owned: Arc<Owned>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let partition = owned.partition;
    let started = std::time::Instant::now();
    let caught_up_at = match tail_seq(&cluster, partition).await {
        Ok(seq) => seq,
        Err(error) => {
            tracing::error!(%partition, %error, "cannot read the partition's stream; releasing it");
            release(&cluster, partition);
            return;
        }
    };
    let consumer = async {
        let stream = cluster.jetstream.get_stream(INGEST_STREAM).await.ok()?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: ingest_subject(partition),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .ok()?;
        consumer.messages().await.ok()
    };
    let Some(mut messages) = consumer.await else {
        tracing::error!(%partition, "cannot consume the partition's stream; releasing it");
        release(&cluster, partition);
        return;
    };
    let mut responder: Option<tokio::task::JoinHandle<()>> = None;
    if caught_up_at == 0 {
        responder = Some(tokio::spawn(fanout::respond(
            cluster.clone(),
            owned.clone(),
            stopped.clone(),
        )));
    }
    loop {
        let message = tokio::select! {
            _ = stopped.changed() => break,
            message = messages.next() => message,
        };
        let Some(message) = message else { break };
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%partition, %error, "partition consumer error; the ordered consumer resumes");
                continue;
            }
        };
        let Ok(info) = message.info() else { continue };
        let seq = info.stream_sequence;
        let engine = owned.engine.clone();
        let payload = message.payload.clone();
        let applied = tokio::task::spawn_blocking(move || apply(&engine, &payload)).await;
        match applied {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                cluster.refused_parts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%partition, seq, %error, "a stored part was refused when applied (alike on replay)");
            }
            Err(_) => tracing::error!(%partition, seq, "applying a part panicked"),
        }
        owned.applied_seq.store(seq, Ordering::SeqCst);
        if responder.is_none() && seq >= caught_up_at {
            tracing::info!(
                %partition,
                seq,
                replay_ms = started.elapsed().as_millis() as u64,
                "partition caught up; answering reads"
            );
            responder = Some(tokio::spawn(fanout::respond(
                cluster.clone(),
                owned.clone(),
                stopped.clone(),
            )));
        }
    }
    if let Some(responder) = responder {
        responder.abort();
    }
}

/// Applies one stored part with the engine clock pinned to its time.
fn apply(engine: &Engine, payload: &[u8]) -> Result<(), String> {
    match WalRecord::decode(payload).map_err(|error| format!("damaged record: {error}"))? {
        WalRecord::Mutation { at_ms, mutation } => {
            let _pin = ReplayClock::pin(at_ms);
            engine
                .apply(&mutation)
                .map(|_| ())
                .map_err(|error| error.to_string())
        }
        WalRecord::ReserveSequences { .. } => Ok(()),
    }
}
