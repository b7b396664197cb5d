//! `segd cluster status`: live nodes, each partition's owner, how far the owner has
//! applied its partition and the partition's last stream sequence (the lag), read
//! from the lease bucket and the stream.

use super::*;
use async_nats::jetstream::stream::LastRawMessageErrorKind;

/// One partition's line.
#[derive(Debug, serde::Serialize)]
pub struct PartitionStatus {
    pub partition: u32,
    pub owner: Option<String>,
    /// Stream sequence the owner had applied at its last lease renewal.
    pub applied_seq: u64,
    /// Stream sequence of the partition's last stored part.
    pub last_seq: u64,
}

/// What `segd cluster status` prints.
#[derive(Debug, serde::Serialize)]
pub struct ClusterStatus {
    pub partitions: u32,
    pub nodes: Vec<String>,
    pub partition_status: Vec<PartitionStatus>,
    pub stream_messages: u64,
}

/// Reads the cluster's status (without joining it).
pub async fn read(urls: &[String]) -> Result<ClusterStatus, ClusterError> {
    let client = setup::connect(urls, "status").await?;
    let jetstream = jetstream::new(client);
    let cluster = jetstream
        .get_key_value(CLUSTER_BUCKET)
        .await
        .map_err(|error| {
            ClusterError::jetstream("no segd cluster here (bucket segd-cluster)", error)
        })?;
    let partitions = cluster
        .get("partitions")
        .await
        .ok()
        .flatten()
        .and_then(|value| std::str::from_utf8(&value).ok()?.parse::<u32>().ok())
        .ok_or_else(|| ClusterError::JetStream("the partition count is missing".into()))?;
    let leases = jetstream
        .get_key_value(LEASE_BUCKET)
        .await
        .map_err(|error| ClusterError::jetstream("lease bucket", error))?;
    let mut stream = jetstream
        .get_stream(INGEST_STREAM)
        .await
        .map_err(|error| ClusterError::jetstream("ingest stream", error))?;
    let stream_messages = stream
        .info()
        .await
        .map_err(|error| ClusterError::jetstream("ingest stream info", error))?
        .state
        .messages;
    let mut nodes = lease::live_nodes(&leases).await;
    nodes.sort();
    let mut partition_status = Vec::with_capacity(partitions as usize);
    for partition in 0..partitions {
        let lease = leases
            .get(format!("p.{partition}"))
            .await
            .ok()
            .flatten()
            .and_then(|value| serde_json::from_slice::<lease::LeaseValue>(&value).ok());
        let last_seq = match stream
            .get_last_raw_message_by_subject(&ingest_subject(PartitionId(partition)))
            .await
        {
            Ok(message) => message.sequence,
            Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => 0,
            Err(error) => return Err(ClusterError::jetstream("partition tail", error)),
        };
        partition_status.push(PartitionStatus {
            partition,
            owner: lease.as_ref().map(|lease| lease.node.clone()),
            applied_seq: lease.map_or(0, |lease| lease.applied_seq),
            last_seq,
        });
    }
    Ok(ClusterStatus {
        partitions,
        nodes,
        partition_status,
        stream_messages,
    })
}

impl std::fmt::Display for ClusterStatus {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            out,
            "partitions: {}   live nodes: {}   stored parts: {}",
            self.partitions,
            self.nodes.join(", "),
            self.stream_messages
        )?;
        writeln!(
            out,
            "partition  owner             applied_seq  last_seq  caught_up"
        )?;
        for line in &self.partition_status {
            writeln!(
                out,
                "{:>9}  {:<16}  {:>11}  {:>8}  {}",
                line.partition,
                line.owner.as_deref().unwrap_or("-"),
                line.applied_seq,
                line.last_seq,
                if line.owner.is_some() && line.applied_seq >= line.last_seq {
                    "yes"
                } else {
                    "no"
                }
            )?;
        }
        Ok(())
    }
}
