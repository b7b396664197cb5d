//! Partition ownership: leases in the `segd-leases` KV bucket.
//!
//! - `p.<partition>` holds the owner's lease: claimed with a compare-and-set *create*
//!   (fails when someone holds it), renewed with an *update* at the revision the owner
//!   last wrote (fails when anyone else wrote since). The bucket's entries expire
//!   `--cluster-lease-ms` after their last write, so a dead node's leases vanish and
//!   the partitions become claimable.
//! - `n.<node>` is each node's heartbeat (same expiry): the live node count.
//! - Every lease period / 3 a node renews what it owns (a failed renewal drops the
//!   partition at once), claims unowned partitions while it owns fewer than its fair
//!   share `ceil(partitions / live nodes)`, and, when every partition is owned and it
//!   holds more than its share, releases one (so a joining node gets work: simple, not
//!   balanced by load).
//!
//! A node that stalls past its lease (long GC-like pause, partition from NATS) may
//! briefly serve reads for a partition another node has taken; its next renewal fails
//! and it drops the partition. It never writes anything the other node reads: applying
//! only builds its own in-memory engine from the stream.

use super::*;
use async_nats::jetstream::kv::Operation;
use futures_util::TryStreamExt;

fn lease_key(partition: PartitionId) -> String {
    format!("p.{partition}")
}

/// A lease's value: who owns the partition and how far it has applied (for `segd
/// cluster status`).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LeaseValue {
    pub node: String,
    pub applied_seq: u64,
}

fn lease_value(cluster: &Cluster, applied_seq: u64) -> Vec<u8> {
    serde_json::to_vec(&LeaseValue {
        node: cluster.node_id.clone(),
        applied_seq,
    })
    .unwrap_or_default()
}

/// Live nodes (heartbeats not yet expired), this one included.
pub(crate) async fn live_nodes(leases: &async_nats::jetstream::kv::Store) -> Vec<String> {
    let Ok(keys) = leases.keys().await else {
        return Vec::new();
    };
    let keys: Vec<String> = keys.try_collect().await.unwrap_or_default();
    keys.into_iter()
        .filter_map(|key| key.strip_prefix("n.").map(str::to_string))
        .collect()
}

/// The lease loop; ends when the node leaves.
pub(crate) async fn run(cluster: Arc<Cluster>) {
    let period = Duration::from_millis((cluster.lease_ms / 3).max(100));
    // Nodes start their claim scan at different partitions, so simultaneous starters
    // collide less.
    let offset = (xxhash_rust::xxh3::xxh3_64(cluster.node_id.as_bytes())
        % u64::from(cluster.partitions)) as u32;
    while !cluster.leaving.load(Ordering::SeqCst) {
        round(&cluster, offset).await;
        tokio::time::sleep(period).await;
    }
}

async fn round(cluster: &Arc<Cluster>, offset: u32) {
    let leases = &cluster.leases;
    let heartbeat = format!("n.{}", cluster.node_id);
    if let Err(error) = leases.put(&heartbeat, Vec::new().into()).await {
        tracing::warn!(%error, "lease bucket: heartbeat failed");
        return;
    }
    // Renew what this node owns.
    let owned: Vec<Arc<Owned>> = cluster.state.lock().owned.values().cloned().collect();
    for partition in &owned {
        let revision = partition.lease_revision.load(Ordering::SeqCst);
        let value = lease_value(cluster, partition.applied_seq.load(Ordering::SeqCst));
        match leases
            .update(lease_key(partition.partition), value.into(), revision)
            .await
        {
            Ok(revision) => partition.lease_revision.store(revision, Ordering::SeqCst),
            Err(error) => {
                tracing::warn!(partition = %partition.partition, %error, "lease lost; dropping the partition");
                partition::release(cluster, partition.partition);
            }
        }
    }
    let nodes = live_nodes(leases).await.len().max(1) as u32;
    let share = cluster.partitions.div_ceil(nodes) as usize;
    let mut owned_now = cluster.state.lock().owned.len();
    let mut unowned = 0;
    for step in 0..cluster.partitions {
        let partition = PartitionId((offset + step) % cluster.partitions);
        if cluster.owned(partition).is_some() {
            continue;
        }
        let free = match leases.entry(lease_key(partition)).await {
            Ok(None) => true,
            Ok(Some(entry)) => matches!(entry.operation, Operation::Delete | Operation::Purge),
            Err(error) => {
                tracing::warn!(%partition, %error, "lease bucket: read failed");
                return;
            }
        };
        if !free {
            continue;
        }
        unowned += 1;
        if owned_now >= share || cluster.leaving.load(Ordering::SeqCst) {
            continue;
        }
        if let Ok(revision) = leases
            .create(lease_key(partition), lease_value(cluster, 0).into())
            .await
        {
            partition::take_over(cluster, partition, revision).await;
            owned_now += 1;
            unowned -= 1;
        }
    }
    // Hand one partition back when every partition has an owner and this node holds
    // more than its share (a node joined).
    if unowned == 0 && owned_now > share {
        let last = cluster.state.lock().owned.keys().next_back().copied();
        if let Some(partition) = last {
            release_lease(cluster, partition).await;
        }
    }
}

/// Drops a partition and deletes its lease (at this node's revision), so another node
/// can claim it at once.
async fn release_lease(cluster: &Cluster, partition: PartitionId) {
    if let Some(owned) = partition::release(cluster, partition) {
        let revision = owned.lease_revision.load(Ordering::SeqCst);
        if let Err(error) = cluster
            .leases
            .delete_expect_revision(lease_key(partition), Some(revision))
            .await
        {
            tracing::warn!(%partition, %error, "releasing the lease failed; it expires instead");
        }
    }
}

impl Cluster {
    /// Leaves the cluster: stops claiming and renewing, and releases every lease so
    /// the other nodes take the partitions over without waiting for expiry.
    pub async fn leave(&self) {
        self.leaving.store(true, Ordering::SeqCst);
        for partition in self.owned_partitions() {
            release_lease(self, partition).await;
        }
        let _ = self.leases.delete(format!("n.{}", self.node_id)).await;
    }
}
