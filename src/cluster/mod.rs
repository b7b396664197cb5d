//! Cluster mode on NATS JetStream (issue 14, first slice): several `segd serve` nodes
//! share one data set through JetStream instead of a protocol of our own.
//!
//! - **Ingest** (`ingest`): any node prepares a batch against its catalog engine (the
//!   same all-or-nothing validation as a single node), splits it by the partition of
//!   each message's profile key and publishes each part, the binary WAL record of a
//!   [`Mutation::Messages`], to `segd.in.<partition>` of the `segd-in` stream. The
//!   request is answered once JetStream acknowledged every part: the stream is the WAL.
//! - **Segments** (`segments`): segment mutations are records of the `segd-segments`
//!   stream, applied in stream order by every node to its catalog engine and to every
//!   partition engine it owns, so segment ids are the same everywhere.
//! - **Ownership** (`lease`): partitions are leased in the `segd-leases` KV bucket
//!   (create / update-with-revision, expiring after the lease time unless renewed).
//! - **Partitions** (`partition`): one engine per owned partition, fed by an ordered
//!   consumer of its subject from the stream's start; it answers reads on
//!   `segd.query.<partition>` once it has caught up.
//! - **Reads** (`fanout`): counts sum every partition's answer; lookups ask the
//!   profile's partition.

pub mod config;
pub mod fanout;
pub mod http;
pub mod ingest;
pub mod lease;
pub mod partition;
pub mod segments;
pub mod setup;
pub mod status;

use crate::engine::{Engine, EngineOptions};
use crate::persist::ReplayClock;
use async_nats::jetstream;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use http::write;

pub const INGEST_STREAM: &str = "segd-in";
pub const SEGMENTS_STREAM: &str = "segd-segments";
pub const SEGMENTS_SUBJECT: &str = "segd.segments";
pub const CLUSTER_BUCKET: &str = "segd-cluster";
pub const LEASE_BUCKET: &str = "segd-leases";
/// Most partitions a cluster may be created with.
pub const MAX_PARTITIONS: u32 = 1_024;
/// Seed of the partition hash: unlike the engine's shard hash (unseeded xxh3), so a
/// partition's profiles still spread over all of its engine's shards.
const PARTITION_SEED: u64 = 0x5e6d_c105_7e12;

/// A partition of the cluster's profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionId(pub u32);

impl std::fmt::Display for PartitionId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// The subject a partition's messages are published to.
pub fn ingest_subject(partition: PartitionId) -> String {
    format!("segd.in.{partition}")
}

/// The subject the owner of a partition answers reads on.
pub fn query_subject(partition: PartitionId) -> String {
    format!("segd.query.{partition}")
}

/// The partition of an identity key (`u:<userId>`, `a:<anonymousId>`).
pub fn partition_of_key(identity_key: &str, partitions: u32) -> PartitionId {
    let hash = xxhash_rust::xxh3::xxh3_64_with_seed(identity_key.as_bytes(), PARTITION_SEED);
    PartitionId((hash % u64::from(partitions.max(1))) as u32)
}

/// The partition of a profile as addressed from outside (`userId` or `anon:<id>`).
pub fn partition_of_external(external: &str, partitions: u32) -> PartitionId {
    partition_of_key(
        &crate::engine::identity_key_for_external(external),
        partitions,
    )
}

/// How a node joins a cluster (`segd serve --cluster ...`).
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// NATS server URLs (`nats://host:port`).
    pub urls: Vec<String>,
    pub node_id: String,
    /// Partitions of a new cluster; a node joining an existing one must agree.
    pub partitions: u32,
    /// JetStream replicas of the streams and buckets this node creates.
    pub replicas: usize,
    /// A lease not renewed for this long expires and its partition is taken over.
    pub lease_ms: u64,
    /// Options of every engine (catalog and partitions).
    pub engine: EngineOptions,
}

/// Why a node cannot join or run.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach NATS at {urls}: {message}")]
    Connect { urls: String, message: String },
    #[error(
        "the cluster was created with {existing} partitions but this node was started with \
         --cluster-partitions {requested}; start it with --cluster-partitions {existing} \
         (the partition count is fixed when the cluster is created)"
    )]
    PartitionMismatch { existing: u32, requested: u32 },
    #[error("JetStream: {0}")]
    JetStream(String),
}

impl ClusterError {
    pub(crate) fn jetstream(context: &str, error: impl std::fmt::Display) -> ClusterError {
        ClusterError::JetStream(format!("{context}: {error}"))
    }
}

/// A partition this node owns: its engine and how far it has applied the stream.
pub struct Owned {
    pub partition: PartitionId,
    pub engine: Arc<Engine>,
    /// Stream sequence of the last record applied (0: none yet).
    pub applied_seq: AtomicU64,
    /// Revision of this node's lease on the partition.
    pub lease_revision: AtomicU64,
    /// Set to stop the partition's tasks (lease lost or released, shutdown).
    pub stop: tokio::sync::watch::Sender<bool>,
}

/// What the node's segment log and its partition engines share under one lock: a
/// partition taken over applies exactly the segment records applied so far.
#[derive(Default)]
pub(crate) struct NodeState {
    /// Segment records applied, in stream order (replayed into a new partition engine).
    pub(crate) segment_records: Vec<crate::persist::record::WalRecord>,
    pub(crate) owned: BTreeMap<PartitionId, Arc<Owned>>,
}

/// A running cluster node.
pub struct Cluster {
    pub node_id: String,
    pub partitions: u32,
    pub(crate) lease_ms: u64,
    pub(crate) engine_options: EngineOptions,
    pub(crate) client: async_nats::Client,
    pub(crate) jetstream: jetstream::Context,
    pub(crate) leases: jetstream::kv::Store,
    /// Set when the node leaves: the lease loop stops claiming and renewing.
    pub(crate) leaving: std::sync::atomic::AtomicBool,
    /// Segment definitions only (no profiles): validates ingest batches and rules, and
    /// answers segment listings.
    pub catalog: Arc<Engine>,
    pub(crate) state: Mutex<NodeState>,
    /// Stream sequence of the last segment record applied to every engine of the node.
    pub(crate) segments_applied_seq: AtomicU64,
    pub(crate) segments: segments::Outcomes,
    /// Parts refused when applied (e.g. a trait type conflicting with stored values).
    pub refused_parts: AtomicU64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Cluster")
            .field("node_id", &self.node_id)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

/// The engine clock of cluster engines: wall time, pinned to a record's time while it
/// is applied (as WAL replay does), so a replayed partition equals the live one.
pub(crate) fn new_engine(options: &EngineOptions) -> Engine {
    Engine::with_clock(
        options.clone(),
        ReplayClock::new(Arc::new(crate::clock::SystemClock)),
    )
}

impl Cluster {
    /// Partitions this node owns now.
    pub fn owned_partitions(&self) -> Vec<PartitionId> {
        self.state.lock().owned.keys().copied().collect()
    }

    /// Applies time-driven changes in every owned partition engine.
    pub fn tick(&self) {
        let engines: Vec<Arc<Engine>> = self
            .state
            .lock()
            .owned
            .values()
            .map(|owned| owned.engine.clone())
            .collect();
        for engine in engines {
            engine.tick();
        }
    }

    pub(crate) fn owned(&self, partition: PartitionId) -> Option<Arc<Owned>> {
        self.state.lock().owned.get(&partition).cloned()
    }

    pub(crate) fn segments_applied(&self) -> u64 {
        self.segments_applied_seq.load(Ordering::SeqCst)
    }

    /// How long a read waits for partitions being taken over (or behind on segments).
    pub(crate) fn read_wait(&self) -> Duration {
        Duration::from_millis(self.lease_ms.max(1_000) * 2)
    }
}
