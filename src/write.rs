//! The write path of the server: mutations are applied on a dedicated thread, never on
//! the async runtime.
//!
//! ```text
//!  HTTP handler (tokio)        applier thread                    acknowledger thread
//!  ───────────────────        ──────────────                    ───────────────────
//!  parse → Mutation ──queue──▶ drain a group of requests
//!  await reply ◀─┐             for each: prepare + apply + append to the WAL
//!                │             (refused ones are answered at once)
//!                │             hand (last LSN, replies) ──queue──▶ wait until durable
//!                └──────────────────────────────────────────────── answer the group
//! ```
//!
//! - Handlers only `await` (a bounded queue and a oneshot reply): no tokio worker blocks
//!   on a lock, on fsync or on apply work, so lookups, health checks, SSE and long-polls
//!   never wait behind writes, segment creations or snapshots.
//! - One applier applies mutations in queue order, so WAL order is apply order and a
//!   prepared batch sees exactly the state it was prepared against (batches are atomic).
//!   Within a batch, the engine spreads the messages over its apply lanes (per shard
//!   group, see `engine/lanes.rs`) with the result of serial application.
//! - While the acknowledger waits for one group's fsync, the applier already applies
//!   the next group: under `--wal-fsync always` concurrent writers share fsyncs.
//! - Without a database (in-memory engine, tests) mutations are applied and answered
//!   by the applier alone.
//!
//! In cluster mode (`crate::cluster`) this queue is replaced by the JetStream stream:
//! `ServiceState::write` publishes instead, and each owned partition's engine applies
//! its subject in stream order.

use crate::engine::{Applied, Engine, EngineError, Mutation};
use crate::persist::{Database, DatabaseError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Requests waiting for the applier, at most.
pub const WRITE_QUEUE_REQUESTS: usize = 1_024;
/// Requests the applier takes in one group (one WAL wait for all of them).
pub const MAX_GROUP_REQUESTS: usize = 256;

type Reply = oneshot::Sender<Result<Applied, DatabaseError>>;

/// A test hook the applier calls before applying each mutation (tests hold the
/// applier mid-write with it).
pub type ApplyHook = Arc<dyn Fn(&Mutation) + Send + Sync>;

struct Request {
    mutation: Mutation,
    reply: Reply,
}

/// Why a write could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Refused(#[from] DatabaseError),
    /// The applier is gone (shutting down) or dropped the request.
    #[error("the write path is shut down")]
    Closed,
}

/// The handle handlers use to submit mutations; cheap to clone.
#[derive(Clone)]
pub struct WritePath {
    queue: mpsc::Sender<Request>,
}

impl std::fmt::Debug for WritePath {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("WritePath").finish_non_exhaustive()
    }
}

impl WritePath {
    /// Starts the applier (and, with a database, the acknowledger) thread. They end
    /// when every handle is dropped, after answering what was queued.
    pub fn start(
        engine: Arc<Engine>,
        database: Option<Arc<Database>>,
        hook: Option<ApplyHook>,
    ) -> std::io::Result<WritePath> {
        let (queue, requests) = mpsc::channel(WRITE_QUEUE_REQUESTS);
        let acknowledger = match &database {
            Some(database) => {
                let (groups, pending) = crossbeam::channel::bounded(WRITE_QUEUE_REQUESTS);
                let database = database.clone();
                std::thread::Builder::new()
                    .name("segd-acknowledge".into())
                    .spawn(move || acknowledge(&database, pending))?;
                Some(groups)
            }
            None => None,
        };
        let applier = Applier {
            engine,
            database,
            acknowledger,
            hook,
        };
        std::thread::Builder::new()
            .name("segd-apply".into())
            .spawn(move || applier.run(requests))?;
        Ok(WritePath { queue })
    }

    /// Applies a mutation (durably, with a database) and returns what it did.
    pub async fn submit(&self, mutation: Mutation) -> Result<Applied, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Request { mutation, reply })
            .await
            .map_err(|_| WriteError::Closed)?;
        match answer.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(WriteError::Closed),
        }
    }
}

/// A group the applier applied and logged, waiting for the WAL: the last LSN of the
/// group and each request's answer.
type PendingGroup = (u64, Vec<(Reply, Applied)>);

struct Applier {
    engine: Arc<Engine>,
    database: Option<Arc<Database>>,
    acknowledger: Option<crossbeam::channel::Sender<PendingGroup>>,
    hook: Option<ApplyHook>,
}

impl Applier {
    fn run(self, mut requests: mpsc::Receiver<Request>) {
        let mut group = Vec::with_capacity(MAX_GROUP_REQUESTS);
        while let Some(first) = requests.blocking_recv() {
            group.push(first);
            while group.len() < MAX_GROUP_REQUESTS {
                match requests.try_recv() {
                    Ok(request) => group.push(request),
                    Err(_) => break,
                }
            }
            self.apply_group(group.drain(..));
        }
    }

    fn apply_group(&self, group: impl Iterator<Item = Request>) {
        let mut pending = Vec::new();
        let mut last_lsn = 0;
        for Request { mutation, reply } in group {
            if let Some(hook) = &self.hook {
                hook(&mutation);
            }
            match &self.database {
                None => {
                    let result = self.engine.apply(&mutation).map_err(DatabaseError::from);
                    let _ = reply.send(result);
                }
                Some(database) => match database.apply_unsynced(mutation) {
                    Ok((applied, lsn)) => {
                        last_lsn = lsn;
                        pending.push((reply, applied));
                    }
                    // Refused: nothing applied, nothing logged; answer at once.
                    Err(error) => {
                        let _ = reply.send(Err(error));
                    }
                },
            }
        }
        if pending.is_empty() {
            return;
        }
        if let Some(acknowledger) = &self.acknowledger {
            if let Err(crossbeam::channel::SendError((_, replies))) =
                acknowledger.send((last_lsn, pending))
            {
                // The acknowledger died: nothing can be confirmed durable.
                for (reply, _) in replies {
                    let _ = reply.send(Err(DatabaseError::Engine(EngineError::Internal(
                        "the WAL acknowledger stopped",
                    ))));
                }
            }
        }
    }
}

/// Waits until each group is durable, then answers it.
fn acknowledge(database: &Database, groups: crossbeam::channel::Receiver<PendingGroup>) {
    for (lsn, replies) in groups {
        let durable = database.wait(lsn);
        for (reply, applied) in replies {
            let answer = match &durable {
                Ok(()) => Ok(applied),
                Err(DatabaseError::Unavailable(failed)) => {
                    Err(DatabaseError::Unavailable(failed.clone()))
                }
                Err(_) => Err(DatabaseError::Engine(EngineError::Internal(
                    "unexpected WAL wait error",
                ))),
            };
            let _ = reply.send(answer);
        }
    }
}
