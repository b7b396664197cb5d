//! `segd serve` configuration: command-line flags, each also an environment variable
//! `SEGD_<NAME>`, and the same keys in an optional TOML file (`--config`).
//!
//! Precedence: flag or environment variable > TOML file > default. Stages: [`ServeArgs`]
//! (as given) + [`FileConfig`] (as read) → [`ServeConfig`] (validated, every value in its
//! documented range; an error names the setting and the accepted range).

use crate::http::auth::{Keys, MAX_KEY_BYTES};
use crate::http::changes::MAX_WAIT_MS;
use crate::http::Limits;
use clap::Args;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";
pub const DEFAULT_DATA_DIR: &str = "snapshots";
pub const DEFAULT_SHARDS: usize = 16;
pub const MAX_SHARDS: usize = 1_024;
pub const DEFAULT_SNAPSHOT_INTERVAL_S: u64 = 300;
pub const MAX_SNAPSHOT_INTERVAL_S: u64 = 86_400;
pub const DEFAULT_EVENT_RETENTION_DAYS: u32 = 90;
pub const MAX_EVENT_RETENTION_DAYS: u32 = 3_650;
pub const DEFAULT_DEMO_PROFILES: u64 = 100_000;
pub const MAX_DEMO_PROFILES: u64 = 10_000_000;
pub const DEFAULT_DEMO_EVENTS_PER_PROFILE: usize = 5;
pub const MAX_DEMO_EVENTS_PER_PROFILE: usize = 100;
pub const MAX_WAL_INTERVAL_MS: u64 = 60_000;
pub const MIN_BODY_BYTES: usize = 1_024;
pub const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
pub const MAX_REQUEST_TIMEOUT_MS: u64 = 600_000;
pub const MAX_CONCURRENT_REQUESTS: usize = 100_000;
/// Most open connections that may be configured.
pub const MAX_CONNECTIONS: usize = 1_000_000;
pub const MAX_IDENTITY_TRAIT_BYTES: usize = 256;

/// Flags of `segd serve` (each also `SEGD_<NAME>`; lists are comma-separated there).
#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// TOML file with any of these settings (flags and environment win over it).
    #[arg(long, env = "SEGD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7700].
    #[arg(long, env = "SEGD_LISTEN")]
    pub listen: Option<String>,
    /// Data directory for snapshots and the write-ahead log [default: snapshots].
    #[arg(long, env = "SEGD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Write key for ingest (HTTP Basic username); repeatable.
    #[arg(long = "write-key", env = "SEGD_WRITE_KEY", value_delimiter = ',')]
    pub write_key: Vec<String>,
    /// Read key (Bearer) for lookups and the change feed; repeatable.
    #[arg(long = "read-key", env = "SEGD_READ_KEY", value_delimiter = ',')]
    pub read_key: Vec<String>,
    /// Admin key (Bearer) for segment management and admin; repeatable.
    #[arg(long = "admin-key", env = "SEGD_ADMIN_KEY", value_delimiter = ',')]
    pub admin_key: Vec<String>,
    /// Number of shards [default: 16].
    #[arg(long, env = "SEGD_SHARDS")]
    pub shards: Option<usize>,
    /// Threads applying a batch's messages in parallel, one lane per group of shards
    /// (0 = one per two cores, leaving the rest to HTTP parsing and readers; at most the
    /// shard count) [default: 0].
    #[arg(long, env = "SEGD_APPLY_LANES")]
    pub apply_lanes: Option<usize>,
    /// Seconds between snapshots [default: 300].
    #[arg(long, env = "SEGD_SNAPSHOT_INTERVAL_S")]
    pub snapshot_interval_s: Option<u64>,
    /// WAL fsync policy: always | interval:<ms> | never [default: interval:10].
    #[arg(long, env = "SEGD_WAL_FSYNC")]
    pub wal_fsync: Option<String>,
    /// Days of events kept for windowed conditions [default: 90].
    #[arg(long, env = "SEGD_EVENT_RETENTION_DAYS")]
    pub event_retention_days: Option<u32>,
    /// Traits that identify a profile, e.g. `email,phone`.
    #[arg(long, env = "SEGD_IDENTITY_TRAITS", value_delimiter = ',')]
    pub identity_traits: Vec<String>,
    /// Load the built-in demo data set and segments at start.
    #[arg(long, env = "SEGD_DEMO")]
    pub demo: bool,
    /// Profiles the demo loads [default: 100000].
    #[arg(long, env = "SEGD_DEMO_PROFILES")]
    pub demo_profiles: Option<u64>,
    /// Events per demo profile, scaled by its activity [default: 5].
    #[arg(long, env = "SEGD_DEMO_EVENTS_PER_PROFILE")]
    pub demo_events_per_profile: Option<usize>,
    /// Largest request body in bytes, as sent and decompressed [default: 4194304].
    #[arg(long, env = "SEGD_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Request timeout in milliseconds [default: 30000].
    #[arg(long, env = "SEGD_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Requests in flight before new ones are shed with 503 [default: 1024].
    #[arg(long, env = "SEGD_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: Option<usize>,
    /// Open connections at once; more wait in the listen backlog [default: 4096].
    #[arg(long, env = "SEGD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Time a client has to send a request's headers, also the longest a kept-alive
    /// connection waits for its next request, in milliseconds [default: 10000].
    #[arg(long, env = "SEGD_HEADER_TIMEOUT_MS")]
    pub header_timeout_ms: Option<u64>,
    /// A connection with no bytes moving this long is closed, in milliseconds
    /// [default: 60000].
    #[arg(long, env = "SEGD_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Request body bytes held by all requests at once (as sent plus decoded) before
    /// new ones are shed with 503 [default: 268435456].
    #[arg(long, env = "SEGD_MAX_BODY_BYTES_IN_FLIGHT")]
    pub max_body_bytes_in_flight: Option<usize>,
    /// Serve without any key on a non-loopback --listen address (refused otherwise).
    #[arg(long, env = "SEGD_ALLOW_OPEN")]
    pub allow_open: bool,
    /// Host names an open server (no keys) also answers to, besides IP addresses and
    /// localhost; repeatable.
    #[arg(
        long = "allowed-host",
        env = "SEGD_ALLOWED_HOST",
        value_delimiter = ','
    )]
    pub allowed_host: Vec<String>,
    /// Let webhooks deliver to loopback, private, link-local and metadata addresses.
    #[arg(long, env = "SEGD_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// PEM file of extra CA certificates trusted for https:// webhooks (besides the
    /// built-in Mozilla roots).
    #[arg(long, env = "SEGD_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: crate::cluster::config::ClusterArgs,
}

/// A string or a list of strings in TOML (`write_key = "k"` or `write_key = ["a", "b"]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// The TOML file: the flags' names with underscores.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub write_key: Option<OneOrMany>,
    pub read_key: Option<OneOrMany>,
    pub admin_key: Option<OneOrMany>,
    pub shards: Option<usize>,
    pub apply_lanes: Option<usize>,
    pub snapshot_interval_s: Option<u64>,
    pub wal_fsync: Option<String>,
    pub event_retention_days: Option<u32>,
    pub identity_traits: Option<OneOrMany>,
    pub demo: Option<bool>,
    pub demo_profiles: Option<u64>,
    pub demo_events_per_profile: Option<usize>,
    pub max_body_bytes: Option<usize>,
    pub request_timeout_ms: Option<u64>,
    pub max_concurrent_requests: Option<usize>,
    pub max_connections: Option<usize>,
    pub header_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub max_body_bytes_in_flight: Option<usize>,
    pub allow_open: Option<bool>,
    pub allowed_host: Option<OneOrMany>,
    pub webhook_allow_private: Option<bool>,
    pub webhook_ca_file: Option<PathBuf>,
}

/// When the write-ahead log is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalFsync {
    /// Before every acknowledgement: nothing acknowledged is lost.
    Always,
    /// At most every `interval` (group commit): up to that much can be lost on a crash.
    Interval(Duration),
    /// Left to the OS: whatever the page cache held can be lost.
    Never,
}

impl std::str::FromStr for WalFsync {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        let bad = || {
            ConfigError::Invalid {
            setting: "wal-fsync",
            message: format!(
                "`{text}` is not a policy; use always, never or interval:<ms> with ms 1 to {MAX_WAL_INTERVAL_MS}"
            ),
        }
        };
        match text.trim() {
            "always" => Ok(WalFsync::Always),
            "never" => Ok(WalFsync::Never),
            other => {
                let ms: u64 = other
                    .strip_prefix("interval:")
                    .and_then(|ms| ms.trim().trim_end_matches("ms").parse().ok())
                    .ok_or_else(bad)?;
                if ms == 0 || ms > MAX_WAL_INTERVAL_MS {
                    return Err(bad());
                }
                Ok(WalFsync::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub keys: Keys,
    pub shards: usize,
    pub apply_lanes: usize,
    pub snapshot_interval_s: u64,
    pub wal_fsync: WalFsync,
    pub event_retention_days: u32,
    pub identity_traits: Vec<String>,
    pub demo: bool,
    pub demo_profiles: u64,
    pub demo_events_per_profile: usize,
    pub limits: Limits,
    pub allow_open: bool,
    pub allowed_hosts: Vec<String>,
    pub webhook_allow_private: bool,
    pub webhook_ca_file: Option<PathBuf>,
    /// Cluster mode (`--cluster`), else a single node.
    pub cluster: Option<crate::cluster::config::ClusterSettings>,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {message}")]
    File { path: String, message: String },
    #[error("--{setting}: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
}

fn range<T: PartialOrd + std::fmt::Display + Copy>(
    setting: &'static str,
    value: T,
    low: T,
    high: T,
) -> Result<T, ConfigError> {
    if value < low || value > high {
        return Err(ConfigError::Invalid {
            setting,
            message: format!("{value} is out of range; use {low} to {high}"),
        });
    }
    Ok(value)
}

fn check_keys(setting: &'static str, keys: &[String]) -> Result<(), ConfigError> {
    for key in keys {
        let printable = key.bytes().all(|byte| byte.is_ascii_graphic());
        if key.is_empty() || key.len() > MAX_KEY_BYTES || !printable {
            return Err(ConfigError::Invalid {
                setting,
                message: format!(
                    "keys must be 1 to {MAX_KEY_BYTES} printable ASCII characters without spaces"
                ),
            });
        }
        if setting == "write-key" && key.contains(':') {
            return Err(ConfigError::Invalid {
                setting,
                message: "a write key is sent as an HTTP Basic username and cannot contain `:`"
                    .into(),
            });
        }
    }
    Ok(())
}

fn list(flag: Vec<String>, file: Option<OneOrMany>) -> Vec<String> {
    let values = if flag.is_empty() {
        file.map(OneOrMany::into_vec).unwrap_or_default()
    } else {
        flag
    };
    values
        .into_iter()
        .map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty())
        .collect()
}

impl ServeConfig {
    /// Reads the TOML file named by `--config` (if any) and validates everything.
    pub fn resolve(args: ServeArgs) -> Result<ServeConfig, ConfigError> {
        let file = match &args.config {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| ConfigError::File {
                    path: path.display().to_string(),
                    message: error.to_string(),
                })?;
                toml::from_str(&text).map_err(|error| ConfigError::File {
                    path: path.display().to_string(),
                    message: error.to_string(),
                })?
            }
        };
        ServeConfig::merge(args, file)
    }

    /// Flags over file over defaults, then validation.
    pub fn merge(args: ServeArgs, file: FileConfig) -> Result<ServeConfig, ConfigError> {
        let listen_text = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = listen_text.parse().map_err(|_| ConfigError::Invalid {
            setting: "listen",
            message: format!("`{listen_text}` is not an address like 127.0.0.1:7700"),
        })?;
        let keys = Keys {
            write: list(args.write_key, file.write_key),
            read: list(args.read_key, file.read_key),
            admin: list(args.admin_key, file.admin_key),
        };
        check_keys("write-key", &keys.write)?;
        check_keys("read-key", &keys.read)?;
        check_keys("admin-key", &keys.admin)?;
        for (index, first) in [&keys.write, &keys.read, &keys.admin].iter().enumerate() {
            for second in [&keys.write, &keys.read, &keys.admin]
                .iter()
                .skip(index + 1)
            {
                if first.iter().any(|key| second.contains(key)) {
                    return Err(ConfigError::Invalid {
                        setting: "admin-key",
                        message: "the same key is configured for two scopes; give each scope its own keys".into(),
                    });
                }
            }
        }
        let allow_open = args.allow_open || file.allow_open.unwrap_or(false);
        if keys.none_configured() && !listen.ip().is_loopback() && !allow_open {
            return Err(ConfigError::Invalid {
                setting: "listen",
                message: format!(
                    "{listen} is reachable from other machines and no key is configured, so anyone could read and change all data; configure --write-key, --read-key and --admin-key, listen on 127.0.0.1, or pass --allow-open"
                ),
            });
        }
        let allowed_hosts = list(args.allowed_host, file.allowed_host);
        for name in &allowed_hosts {
            let valid = name.len() <= 253
                && name
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"-.:[]".contains(&byte));
            if !valid {
                return Err(ConfigError::Invalid {
                    setting: "allowed-host",
                    message: format!("`{name}` is not a host name like segd.internal"),
                });
            }
        }
        let identity_traits = list(args.identity_traits, file.identity_traits);
        for name in &identity_traits {
            if name.len() > MAX_IDENTITY_TRAIT_BYTES {
                return Err(ConfigError::Invalid {
                    setting: "identity-traits",
                    message: format!("trait names are at most {MAX_IDENTITY_TRAIT_BYTES} bytes"),
                });
            }
        }
        let wal_fsync = match args.wal_fsync.or(file.wal_fsync) {
            Some(text) => text.parse()?,
            None => WalFsync::Interval(Duration::from_millis(10)),
        };
        let defaults = Limits::default();
        let limits = Limits {
            max_body_bytes: range(
                "max-body-bytes",
                args.max_body_bytes
                    .or(file.max_body_bytes)
                    .unwrap_or(defaults.max_body_bytes),
                MIN_BODY_BYTES,
                MAX_BODY_BYTES,
            )?,
            // Longer than the longest long-poll wait, so a poll always answers itself.
            request_timeout_ms: range(
                "request-timeout-ms",
                args.request_timeout_ms
                    .or(file.request_timeout_ms)
                    .unwrap_or(defaults.request_timeout_ms),
                MAX_WAIT_MS + 1_000,
                MAX_REQUEST_TIMEOUT_MS,
            )?,
            max_concurrent_requests: range(
                "max-concurrent-requests",
                args.max_concurrent_requests
                    .or(file.max_concurrent_requests)
                    .unwrap_or(defaults.max_concurrent_requests),
                1,
                MAX_CONCURRENT_REQUESTS,
            )?,
            max_sse_streams: defaults.max_sse_streams,
            max_connections: range(
                "max-connections",
                args.max_connections
                    .or(file.max_connections)
                    .unwrap_or(defaults.max_connections),
                1,
                MAX_CONNECTIONS,
            )?,
            header_read_timeout_ms: range(
                "header-timeout-ms",
                args.header_timeout_ms
                    .or(file.header_timeout_ms)
                    .unwrap_or(defaults.header_read_timeout_ms),
                1,
                MAX_REQUEST_TIMEOUT_MS,
            )?,
            idle_timeout_ms: range(
                "idle-timeout-ms",
                args.idle_timeout_ms
                    .or(file.idle_timeout_ms)
                    .unwrap_or(defaults.idle_timeout_ms),
                1,
                MAX_REQUEST_TIMEOUT_MS,
            )?,
            max_body_bytes_in_flight: args
                .max_body_bytes_in_flight
                .or(file.max_body_bytes_in_flight)
                .unwrap_or(defaults.max_body_bytes_in_flight),
        };
        // One request of the largest size (as sent plus decoded) must always fit.
        range(
            "max-body-bytes-in-flight",
            limits.max_body_bytes_in_flight,
            2 * limits.max_body_bytes,
            usize::MAX >> 4,
        )?;
        let cluster = crate::cluster::config::resolve(&args.cluster, &identity_traits)
            .map_err(|(setting, message)| ConfigError::Invalid { setting, message })?;
        Ok(ServeConfig {
            cluster,
            listen,
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            keys,
            shards: range(
                "shards",
                args.shards.or(file.shards).unwrap_or(DEFAULT_SHARDS),
                1,
                MAX_SHARDS,
            )?,
            apply_lanes: range(
                "apply-lanes",
                args.apply_lanes.or(file.apply_lanes).unwrap_or(0),
                0,
                crate::engine::MAX_APPLY_LANES,
            )?,
            snapshot_interval_s: range(
                "snapshot-interval-s",
                args.snapshot_interval_s
                    .or(file.snapshot_interval_s)
                    .unwrap_or(DEFAULT_SNAPSHOT_INTERVAL_S),
                1,
                MAX_SNAPSHOT_INTERVAL_S,
            )?,
            wal_fsync,
            event_retention_days: range(
                "event-retention-days",
                args.event_retention_days
                    .or(file.event_retention_days)
                    .unwrap_or(DEFAULT_EVENT_RETENTION_DAYS),
                1,
                MAX_EVENT_RETENTION_DAYS,
            )?,
            identity_traits,
            demo: args.demo || file.demo.unwrap_or(false),
            demo_profiles: range(
                "demo-profiles",
                args.demo_profiles
                    .or(file.demo_profiles)
                    .unwrap_or(DEFAULT_DEMO_PROFILES),
                1,
                MAX_DEMO_PROFILES,
            )?,
            demo_events_per_profile: range(
                "demo-events-per-profile",
                args.demo_events_per_profile
                    .or(file.demo_events_per_profile)
                    .unwrap_or(DEFAULT_DEMO_EVENTS_PER_PROFILE),
                0,
                MAX_DEMO_EVENTS_PER_PROFILE,
            )?,
            limits,
            allow_open,
            allowed_hosts,
            webhook_allow_private: args.webhook_allow_private
                || file.webhook_allow_private.unwrap_or(false),
            webhook_ca_file: args.webhook_ca_file.or(file.webhook_ca_file),
        })
    }

    /// Engine options for this configuration.
    pub fn engine_options(&self) -> crate::engine::EngineOptions {
        crate::engine::EngineOptions {
            shards: self.shards,
            apply_lanes: self.apply_lanes,
            identity_traits: self.identity_traits.clone(),
            event_retention_ms: i64::from(self.event_retention_days) * 86_400_000,
            ..crate::engine::EngineOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_precedence() {
        let config = ServeConfig::merge(ServeArgs::default(), FileConfig::default()).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.shards, DEFAULT_SHARDS);
        assert_eq!(
            config.wal_fsync,
            WalFsync::Interval(Duration::from_millis(10))
        );
        let file: FileConfig = toml::from_str(
            "shards = 4\nwrite_key = \"w1\"\nadmin_key = [\"a1\", \"a2\"]\nwal_fsync = \"always\"\nlisten = \"0.0.0.0:9000\"",
        )
        .unwrap();
        let args = ServeArgs {
            shards: Some(8),
            ..ServeArgs::default()
        };
        let config = ServeConfig::merge(args, file).unwrap();
        assert_eq!(config.shards, 8, "flag wins over file");
        assert_eq!(config.keys.write, vec!["w1"]);
        assert_eq!(config.keys.admin, vec!["a1", "a2"]);
        assert_eq!(config.wal_fsync, WalFsync::Always);
        assert_eq!(config.listen.port(), 9000);
    }

    #[test]
    fn every_limit_is_checked() {
        let reject = |args: ServeArgs| ServeConfig::merge(args, FileConfig::default()).is_err();
        assert!(reject(ServeArgs {
            shards: Some(0),
            ..Default::default()
        }));
        assert!(reject(ServeArgs {
            shards: Some(MAX_SHARDS + 1),
            ..Default::default()
        }));
        assert!(reject(ServeArgs {
            listen: Some("nowhere".into()),
            ..Default::default()
        }));
        assert!(reject(ServeArgs {
            wal_fsync: Some("interval:0".into()),
            ..Default::default()
        }));
        assert!(reject(ServeArgs {
            wal_fsync: Some("sometimes".into()),
            ..Default::default()
        }));
        assert!(reject(ServeArgs {
            snapshot_interval_s: Some(0),
            ..Default::default()
        }));
        assert!(reject(ServeArgs {
            event_retention_days: Some(MAX_EVENT_RETENTION_DAYS + 1),
            ..Default::default()
        }));
        assert!(reject(ServeArgs {
            demo_profiles: Some(MAX_DEMO_PROFILES + 1),
            ..Default::default()
        }));
        assert!(reject(ServeArgs {
            max_body_bytes: Some(10),
            ..Default::default()
        }));
        assert!(reject(ServeArgs {
            request_timeout_ms: Some(1_000),
            ..Default::default()
        }));
        assert!(reject(ServeArgs {
            max_concurrent_requests: Some(0),
            ..Default::default()
        }));
        assert!(reject(ServeArgs {
            write_key: vec!["has:colon".into()],
            ..Default::default()
        }));
        assert!(reject(ServeArgs {
            read_key: vec!["has space".into()],
            ..Default::default()
        }));
        assert!(reject(ServeArgs {
            read_key: vec!["same".into()],
            admin_key: vec!["same".into()],
            ..Default::default()
        }));
        assert_eq!(
            "interval:250".parse::<WalFsync>().unwrap(),
            WalFsync::Interval(Duration::from_millis(250))
        );
        assert!(toml::from_str::<FileConfig>("unknown_setting = 1").is_err());
        assert!(reject(ServeArgs {
            allowed_host: vec!["bad host/".into()],
            ..Default::default()
        }));
    }

    #[test]
    fn open_server_only_on_loopback_unless_allowed() {
        let merge = |listen: &str, allow_open: bool, keys: bool| {
            ServeConfig::merge(
                ServeArgs {
                    listen: Some(listen.into()),
                    allow_open,
                    admin_key: if keys { vec!["ak".into()] } else { vec![] },
                    ..Default::default()
                },
                FileConfig::default(),
            )
        };
        let error = merge("0.0.0.0:7700", false, false).unwrap_err().to_string();
        assert!(error.contains("--allow-open"), "{error}");
        assert!(merge("[::]:7700", false, false).is_err());
        assert!(merge("192.168.1.10:7700", false, false).is_err());
        assert!(merge("0.0.0.0:7700", true, false).is_ok());
        assert!(merge("0.0.0.0:7700", false, true).is_ok());
        assert!(merge("127.0.0.1:7700", false, false).is_ok());
        assert!(merge("[::1]:7700", false, false).is_ok());
        let file: FileConfig = toml::from_str("listen = \"0.0.0.0:1\"\nallow_open = true").unwrap();
        assert!(ServeConfig::merge(ServeArgs::default(), file).is_ok());
    }

    #[test]
    fn debug_output_hides_keys() {
        let config = ServeConfig::merge(
            ServeArgs {
                write_key: vec!["wk_secret_value".into()],
                admin_key: vec!["ak_secret_value".into()],
                ..Default::default()
            },
            FileConfig::default(),
        )
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("secret_value"), "{shown}");
    }
}
