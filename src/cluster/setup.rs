//! Joining a cluster: connecting to NATS, creating (or finding) the streams and
//! buckets, checking the partition count, catching up on segment definitions and
//! starting the node's background tasks.

use super::*;
use async_nats::jetstream::{kv, stream};

/// Connects to NATS with the node's name (seen in `nats-server` monitoring).
pub async fn connect(urls: &[String], node_id: &str) -> Result<async_nats::Client, ClusterError> {
    let joined = urls.join(",");
    let mut addresses = Vec::with_capacity(urls.len());
    for url in urls {
        let address =
            url.parse::<async_nats::ServerAddr>()
                .map_err(|error| ClusterError::Connect {
                    urls: joined.clone(),
                    message: format!("`{url}`: {error}"),
                })?;
        addresses.push(address);
    }
    async_nats::ConnectOptions::new()
        .name(format!("segd {node_id}"))
        .connect(addresses)
        .await
        .map_err(|error| ClusterError::Connect {
            urls: joined,
            message: error.to_string(),
        })
}

/// A KV bucket, created when missing.
pub(crate) async fn bucket(
    jetstream: &jetstream::Context,
    name: &str,
    replicas: usize,
    max_age: Duration,
) -> Result<kv::Store, ClusterError> {
    if let Ok(store) = jetstream.get_key_value(name).await {
        return Ok(store);
    }
    // The bucket's stream is created here with the KV conventions (what
    // `create_key_value` sends) because that call first reads the account info, whose
    // answer from nats-server 2.9 (Debian's) this client version cannot parse.
    let created = jetstream
        .create_stream(stream::Config {
            name: format!("KV_{name}"),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            max_age,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            num_replicas: replicas,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        })
        .await;
    // Another node may have created it meanwhile.
    if let Err(error) = created {
        if jetstream.get_key_value(name).await.is_err() {
            return Err(ClusterError::jetstream(&format!("bucket {name}"), error));
        }
    }
    jetstream
        .get_key_value(name)
        .await
        .map_err(|error| ClusterError::jetstream(&format!("bucket {name}"), error))
}

async fn ensure_stream(
    jetstream: &jetstream::Context,
    name: &str,
    subjects: Vec<String>,
    replicas: usize,
) -> Result<(), ClusterError> {
    if jetstream.get_stream(name).await.is_ok() {
        return Ok(());
    }
    jetstream
        .get_or_create_stream(stream::Config {
            name: name.to_string(),
            subjects,
            num_replicas: replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|error| ClusterError::jetstream(&format!("stream {name}"), error))?;
    Ok(())
}

/// The cluster's partition count: stored by the first node (compare-and-set create),
/// checked by every later one.
async fn agree_on_partitions(
    jetstream: &jetstream::Context,
    options: &ClusterOptions,
) -> Result<u32, ClusterError> {
    let store = bucket(jetstream, CLUSTER_BUCKET, options.replicas, Duration::ZERO).await?;
    let requested = options.partitions;
    let existing = match store
        .create("partitions", requested.to_string().into())
        .await
    {
        Ok(_) => requested,
        Err(_) => {
            let value = store
                .get("partitions")
                .await
                .map_err(|error| ClusterError::jetstream("reading the partition count", error))?
                .ok_or_else(|| ClusterError::JetStream("the partition count vanished".into()))?;
            std::str::from_utf8(&value)
                .ok()
                .and_then(|text| text.parse::<u32>().ok())
                .ok_or_else(|| {
                    ClusterError::JetStream("the stored partition count is damaged".into())
                })?
        }
    };
    if existing != requested {
        return Err(ClusterError::PartitionMismatch {
            existing,
            requested,
        });
    }
    Ok(existing)
}

/// Joins the cluster: returns once the node's catalog holds every segment definition
/// published so far, with the segment log follower and the lease loop running.
pub async fn join(options: ClusterOptions) -> Result<Arc<Cluster>, ClusterError> {
    let client = connect(&options.urls, &options.node_id).await?;
    let jetstream = jetstream::new(client.clone());
    ensure_stream(
        &jetstream,
        INGEST_STREAM,
        vec!["segd.in.*".into()],
        options.replicas,
    )
    .await?;
    ensure_stream(
        &jetstream,
        SEGMENTS_STREAM,
        vec![SEGMENTS_SUBJECT.into()],
        options.replicas,
    )
    .await?;
    let partitions = agree_on_partitions(&jetstream, &options).await?;
    let leases = bucket(
        &jetstream,
        LEASE_BUCKET,
        options.replicas,
        Duration::from_millis(options.lease_ms),
    )
    .await?;
    let cluster = Arc::new(Cluster {
        node_id: options.node_id.clone(),
        partitions,
        lease_ms: options.lease_ms,
        catalog: Arc::new(new_engine(&options.engine)),
        engine_options: options.engine,
        client,
        jetstream,
        leases,
        leaving: Default::default(),
        state: Mutex::new(NodeState::default()),
        segments_applied_seq: AtomicU64::new(0),
        segments: segments::Outcomes::default(),
        refused_parts: AtomicU64::new(0),
    });
    segments::start_follower(cluster.clone()).await?;
    tokio::spawn(lease::run(cluster.clone()));
    Ok(cluster)
}
