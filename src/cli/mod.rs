//! Terminal concerns of the `segd` command: log output and progress bars.

pub mod cluster;
pub mod logging;
pub mod progress_bars;

/// How often time-driven membership changes are applied (well inside the 1 s promise).
pub const TICK_INTERVAL_MS: u64 = 250;

/// Runs `work` on the blocking pool every [`TICK_INTERVAL_MS`] until `shutdown` changes
/// (time-driven re-evaluation of a single node or of a cluster node's partitions). A
/// refused or panicking tick is logged; the next one runs as usual.
pub fn spawn_ticker<F>(mut shutdown: tokio::sync::watch::Receiver<bool>, work: F)
where
    F: Fn() -> Result<(), String> + Clone + Send + 'static,
{
    tokio::spawn(async move {
        let mut interval =
            tokio::time::interval(std::time::Duration::from_millis(TICK_INTERVAL_MS));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.changed() => return,
            }
            match tokio::task::spawn_blocking(work.clone()).await {
                Ok(Err(error)) => tracing::error!(%error, "time-driven re-evaluation refused"),
                Err(_) => tracing::error!("time-driven re-evaluation panicked"),
                Ok(Ok(())) => {}
            }
        }
    });
}
