//! `segd serve` cluster flags (each also `SEGD_<NAME>`; not read from the TOML file).

use clap::Args;

pub const DEFAULT_PARTITIONS: u32 = 16;
pub const DEFAULT_LEASE_MS: u64 = 5_000;
pub const MIN_LEASE_MS: u64 = 1_000;
pub const MAX_LEASE_MS: u64 = 120_000;
pub const MAX_REPLICAS: usize = 5;
pub const MAX_NODE_ID_BYTES: usize = 64;

#[derive(Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// Run as a cluster node on these NATS JetStream servers (comma-separated
    /// `nats://host:port`); without it segd runs as a single node.
    #[arg(long, env = "SEGD_CLUSTER", value_delimiter = ',')]
    pub cluster: Vec<String>,
    /// This node's id in the cluster (letters, digits, `-`, `_`); required with --cluster.
    #[arg(long, env = "SEGD_NODE_ID")]
    pub node_id: Option<String>,
    /// Partitions of a new cluster (fixed at creation; a node joining with another
    /// count is refused) [default: 16].
    #[arg(long, env = "SEGD_CLUSTER_PARTITIONS")]
    pub cluster_partitions: Option<u32>,
    /// JetStream replicas of the streams and buckets a new cluster creates [default: 1].
    #[arg(long, env = "SEGD_CLUSTER_REPLICAS")]
    pub cluster_replicas: Option<usize>,
    /// A node's partition leases expire this long after its last renewal (renewed
    /// every third of it) [default: 5000].
    #[arg(long, env = "SEGD_CLUSTER_LEASE_MS")]
    pub cluster_lease_ms: Option<u64>,
}

/// Validated cluster settings.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub urls: Vec<String>,
    pub node_id: String,
    pub partitions: u32,
    pub replicas: usize,
    pub lease_ms: u64,
}

/// `None` without `--cluster`; an error names the flag and what it accepts.
pub fn resolve(
    args: &ClusterArgs,
    identity_traits: &[String],
) -> Result<Option<ClusterSettings>, (&'static str, String)> {
    if args.cluster.is_empty() {
        return Ok(None);
    }
    for url in &args.cluster {
        if !url.starts_with("nats://") && !url.starts_with("tls://") {
            return Err(("cluster", format!("`{url}` is not a nats://host:port URL")));
        }
    }
    let node_id = args
        .node_id
        .clone()
        .ok_or(("node-id", "required with --cluster".to_string()))?;
    let valid = !node_id.is_empty()
        && node_id.len() <= MAX_NODE_ID_BYTES
        && node_id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if !valid {
        return Err((
            "node-id",
            format!("use 1 to {MAX_NODE_ID_BYTES} letters, digits, `-` or `_`"),
        ));
    }
    if !identity_traits.is_empty() {
        return Err((
            "identity-traits",
            "identity traits are not supported in cluster mode yet (they can link profiles \
             across partitions)"
                .to_string(),
        ));
    }
    let partitions = args.cluster_partitions.unwrap_or(DEFAULT_PARTITIONS);
    if !(1..=super::MAX_PARTITIONS).contains(&partitions) {
        return Err((
            "cluster-partitions",
            format!(
                "{partitions} is out of range; use 1 to {}",
                super::MAX_PARTITIONS
            ),
        ));
    }
    let replicas = args.cluster_replicas.unwrap_or(1);
    if !(1..=MAX_REPLICAS).contains(&replicas) {
        return Err((
            "cluster-replicas",
            format!("{replicas} is out of range; use 1 to {MAX_REPLICAS}"),
        ));
    }
    let lease_ms = args.cluster_lease_ms.unwrap_or(DEFAULT_LEASE_MS);
    if !(MIN_LEASE_MS..=MAX_LEASE_MS).contains(&lease_ms) {
        return Err((
            "cluster-lease-ms",
            format!("{lease_ms} is out of range; use {MIN_LEASE_MS} to {MAX_LEASE_MS}"),
        ));
    }
    Ok(Some(ClusterSettings {
        urls: args.cluster.clone(),
        node_id,
        partitions,
        replicas,
        lease_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(urls: &[&str], node: Option<&str>) -> ClusterArgs {
        ClusterArgs {
            cluster: urls.iter().map(|url| url.to_string()).collect(),
            node_id: node.map(str::to_string),
            ..ClusterArgs::default()
        }
    }

    #[test]
    fn single_node_without_cluster_and_defaults_with_it() {
        assert!(resolve(&args(&[], None), &[]).unwrap().is_none());
        let settings = resolve(&args(&["nats://127.0.0.1:4222"], Some("n1")), &[])
            .unwrap()
            .unwrap();
        assert_eq!(settings.partitions, DEFAULT_PARTITIONS);
        assert_eq!(settings.replicas, 1);
        assert_eq!(settings.lease_ms, DEFAULT_LEASE_MS);
    }

    #[test]
    fn bad_cluster_settings_name_the_flag() {
        let url = ["nats://127.0.0.1:4222"];
        assert_eq!(resolve(&args(&url, None), &[]).unwrap_err().0, "node-id");
        assert_eq!(
            resolve(&args(&url, Some("n 1")), &[]).unwrap_err().0,
            "node-id"
        );
        assert_eq!(
            resolve(&args(&["http://x"], Some("n1")), &[])
                .unwrap_err()
                .0,
            "cluster"
        );
        let traits = ["email".to_string()];
        assert_eq!(
            resolve(&args(&url, Some("n1")), &traits).unwrap_err().0,
            "identity-traits"
        );
        let mut zero = args(&url, Some("n1"));
        zero.cluster_partitions = Some(0);
        assert_eq!(resolve(&zero, &[]).unwrap_err().0, "cluster-partitions");
        let mut short = args(&url, Some("n1"));
        short.cluster_lease_ms = Some(10);
        assert_eq!(resolve(&short, &[]).unwrap_err().0, "cluster-lease-ms");
    }
}
