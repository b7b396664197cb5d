//! The `segd` command: `serve` (the HTTP service) and `eval` (load the demo data set and
//! evaluate a rule from the command line). Other subcommands (`import`, `inspect`) sit
//! beside these as further variants of [`Command`].

mod cli;

use clap::{Args, Parser, Subcommand};
use cli::logging::LogFormat;
use segd::bulk::{default_threads, load_demo};
use segd::clock::SystemClock;
use segd::config::WalFsync;
use segd::config::{ServeArgs, ServeConfig};
use segd::demo::{demo_segments, DemoGenerator};
use segd::engine::{Engine, EngineOptions, RuleInput};
use segd::http::{self, ServiceOptions, ServiceState};
use segd::persist::wal::FsyncPolicy;
use segd::persist::{Database, DatabaseOptions};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "segd",
    version,
    about = "In-memory real-time customer segmentation engine"
)]
struct Cli {
    /// Log lines as text or as one JSON object per line (for log shippers); `RUST_LOG`
    /// filters them (default `info`, e.g. `RUST_LOG=segd=debug,tower_http=warn`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SEGD_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the HTTP server.
    Serve(Box<ServeArgs>),
    /// Load the demo data set, print the demo segments' sizes, and evaluate a rule.
    Eval(EvalArgs),
    /// Print what a data directory holds (snapshots, WAL segments, sequence ranges,
    /// sizes) and verify every checksum; exits non-zero when anything is damaged.
    Inspect(InspectArgs),
    /// Bulk-load Segment messages (NDJSON) or profiles (CSV, one per row, header = trait
    /// names, `userId`/`anonymousId` columns) into a data directory, with a progress
    /// bar; the result is snapshotted so it survives restarts. Run it while no server
    /// uses the directory.
    Import(ImportArgs),
    /// Cluster operations (`segd cluster status --cluster nats://...`).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Print the HTTP API's OpenAPI 3.1 document (the same as `GET /openapi.json`), e.g.
    /// to generate a client: `segd openapi > openapi.json`.
    Openapi,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Live nodes, each partition's owner and how far it has applied its partition.
    Status {
        /// NATS servers of the cluster (comma-separated `nats://host:port`).
        #[arg(long, env = "SEGD_CLUSTER", value_delimiter = ',', required = true)]
        cluster: Vec<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
struct ImportArgs {
    /// The file to load (`.csv`, or `.ndjson`/`.jsonl`; else detected from its content).
    file: std::path::PathBuf,
    /// The data directory to load into (created when missing).
    #[arg(long, default_value = "snapshots")]
    data_dir: std::path::PathBuf,
    /// Shards of a new data directory (an existing one keeps its own).
    #[arg(long, default_value_t = segd::config::DEFAULT_SHARDS)]
    shards: usize,
    /// Traits whose values identify a profile, e.g. `email,phone`.
    #[arg(long, value_delimiter = ',')]
    identity_traits: Vec<String>,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// The data directory (as given to `segd serve --data-dir`).
    data_dir: std::path::PathBuf,
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// Demo profiles to load.
    #[arg(long, default_value_t = segd::config::DEFAULT_DEMO_PROFILES)]
    demo_profiles: u64,
    /// Events per demo profile, scaled by its activity.
    #[arg(long, default_value_t = segd::config::DEFAULT_DEMO_EVENTS_PER_PROFILE)]
    demo_events_per_profile: usize,
    /// Shards.
    #[arg(long, default_value_t = segd::config::DEFAULT_SHARDS)]
    shards: usize,
    /// The rule: text, or the JSON AST (starting with `{`).
    rule: String,
}

/// Seed of the demo data set, fixed so every run shows the same customers.
const DEMO_SEED: u64 = 42;

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::logging::init(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Eval(args) => eval(args),
        Command::Inspect(args) => inspect(args),
        Command::Import(args) => import(args),
        Command::Cluster(ClusterCommand::Status { cluster, json }) => {
            cli::cluster::status(&cluster, json)
        }
        Command::Openapi => {
            let document = segd::http::openapi::document();
            match serde_json::to_string_pretty(&document) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(_) => ExitCode::FAILURE,
            }
        }
    }
}

/// Loads demo profiles and creates the demo segments; prints what it did.
fn load_demo_data(engine: &Engine, profiles: u64, events_per_profile: usize) -> DemoGenerator {
    let generator = DemoGenerator::with_now_ms(DEMO_SEED, engine.now_ms());
    tracing::info!(profiles, "loading demo profiles");
    match load_demo(
        engine,
        &generator,
        profiles,
        events_per_profile,
        default_threads(),
    ) {
        Ok(report) => tracing::info!(
            profiles = report.profiles,
            events = report.events,
            elapsed_s = report.elapsed.as_secs_f64(),
            "demo profiles loaded"
        ),
        Err(error) => tracing::error!(%error, "demo data did not load completely"),
    }
    let segments = demo_segments();
    let progress = segd::progress::phase(
        "creating demo segments",
        Some(segments.len() as u64),
        segd::progress::Unit::Items,
    );
    for (name, rule, description) in segments {
        let started = Instant::now();
        match engine.create_segment(name, description, Some(RuleInput::Text(rule.to_string()))) {
            Ok(summary) => tracing::info!(
                segment = name,
                members = summary.count,
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                "demo segment created"
            ),
            Err(error) => tracing::error!(segment = name, %error, "demo segment not created"),
        }
        progress.inc(1);
    }
    generator
}

fn import(args: ImportArgs) -> ExitCode {
    cli::progress_bars::install_if_terminal();
    let _lock = match segd::persist::files::DataDirLock::acquire(&args.data_dir) {
        Ok(lock) => lock,
        Err(error) => {
            eprintln!("segd import: {error}");
            return ExitCode::FAILURE;
        }
    };
    let options = DatabaseOptions {
        engine: EngineOptions {
            shards: args.shards.clamp(1, segd::config::MAX_SHARDS),
            identity_traits: args.identity_traits.clone(),
            ..EngineOptions::default()
        },
        ..DatabaseOptions::new(&args.data_dir)
    };
    let database = match Database::open(options, Arc::new(SystemClock)) {
        Ok((database, _)) => database,
        Err(error) => {
            eprintln!(
                "segd import: cannot open {}: {error}",
                args.data_dir.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let import_options = segd::import::ImportOptions {
        threads: args.threads.unwrap_or_else(default_threads).max(1),
        ..segd::import::ImportOptions::default()
    };
    let total_bytes = std::fs::metadata(&args.file).map_or(0, |metadata| metadata.len());
    let reading = segd::progress::phase(
        "reading and applying rows",
        Some(total_bytes),
        segd::progress::Unit::Bytes,
    );
    let mut progress = |progress: &segd::import::Progress| {
        reading.set_position(progress.bytes_read);
    };
    let result = segd::import::import_path(
        database.engine(),
        &args.file,
        &import_options,
        &mut progress,
    );
    drop(reading);
    let (format, summary) = match result {
        Ok(done) => done,
        Err(error) => {
            eprintln!("segd import: {}: {error}", args.file.display());
            return ExitCode::FAILURE;
        }
    };
    // The bulk path writes shards directly, not record by record to the WAL: a snapshot
    // makes the import durable.
    if let Err(error) = database.snapshot_now() {
        eprintln!("segd import: the import could not be snapshotted: {error}");
        return ExitCode::FAILURE;
    }
    println!(
        "{}",
        serde_json::json!({"format": format, "data_dir": args.data_dir.display().to_string(), "summary": summary})
    );
    ExitCode::SUCCESS
}

fn inspect(args: InspectArgs) -> ExitCode {
    match segd::persist::inspect::inspect(&args.data_dir) {
        Ok(report) => {
            println!("{report}");
            if report.is_healthy() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("segd inspect: {}: {error}", args.data_dir.display());
            ExitCode::from(2)
        }
    }
}

fn eval(args: EvalArgs) -> ExitCode {
    if args.demo_profiles == 0 || args.demo_profiles > segd::config::MAX_DEMO_PROFILES {
        eprintln!(
            "--demo-profiles: use 1 to {}",
            segd::config::MAX_DEMO_PROFILES
        );
        return ExitCode::from(2);
    }
    let engine = Engine::new(EngineOptions {
        shards: args.shards.clamp(1, segd::config::MAX_SHARDS),
        ..EngineOptions::default()
    });
    cli::progress_bars::install_if_terminal();
    load_demo_data(&engine, args.demo_profiles, args.demo_events_per_profile);
    cli::progress_bars::uninstall();
    let rule = if args.rule.trim_start().starts_with('{') {
        match serde_json::from_str(&args.rule) {
            Ok(ast) => RuleInput::Ast(ast),
            Err(error) => {
                eprintln!("the rule is not a valid JSON AST: {error}");
                return ExitCode::from(2);
            }
        }
    } else {
        RuleInput::Text(args.rule)
    };
    match engine.preview(rule, 5) {
        Ok(preview) => {
            println!(
                "count: {}  time: {:.3} ms  sample: {}",
                preview.count,
                preview.took_us as f64 / 1e3,
                preview.sample.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("rule rejected ({}): {error}", error.code());
            ExitCode::from(2)
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = match ServeConfig::resolve(args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("segd serve: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("segd serve: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(config));
    // A demo load still running on the blocking pool must not hold up exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    code
}

fn warn_open_scopes(config: &ServeConfig) {
    if config.keys.none_configured() {
        tracing::warn!(
            listen = %config.listen,
            "segd is running OPEN (no keys): anyone who can reach {} can read, change and \
             erase all data; configure --write-key, --read-key and --admin-key (or \
             SEGD_*_KEY) to close it",
            config.listen
        );
        return;
    }
    for scope in config.keys.admin_only_scopes() {
        tracing::info!(
            "no {} key is configured; {} endpoints accept only admin keys",
            scope.name(),
            scope.name()
        );
    }
}

/// Copy-paste examples. Keys are never printed (the banner lands in logs): the examples
/// read them from environment variables the user sets.
fn curl_examples(config: &ServeConfig, sample_user: &str) -> String {
    let base = format!("http://{}", config.listen);
    let open = config.keys.none_configured();
    let bearer = |variable: &str| {
        if open {
            String::new()
        } else {
            format!(" -H \"Authorization: Bearer ${variable}\"")
        }
    };
    let admin = bearer("SEGD_ADMIN_KEY");
    let read = if config.keys.read.is_empty() {
        admin.clone()
    } else {
        bearer("SEGD_READ_KEY")
    };
    let write = if open {
        String::new()
    } else if config.keys.write.is_empty() {
        bearer("SEGD_ADMIN_KEY")
    } else {
        " -u \"$SEGD_WRITE_KEY:\"".to_string()
    };
    let keys_note = if open {
        String::new()
    } else {
        "\n  # (set SEGD_ADMIN_KEY, SEGD_READ_KEY and SEGD_WRITE_KEY in your shell to your keys)"
            .to_string()
    };
    format!(
        r#"
segd is ready on {base}. Try:{keys_note}

  # segments and their sizes
  curl -s {base}/v1/segments{admin}
  # which segments is a customer in?
  curl -s {base}/v1/profiles/{sample_user}/segments{read}
  # audience size of a rule while you type it
  curl -s {base}/v1/segments/preview{admin} -H 'Content-Type: application/json' \
       -d '{{"rule": "country = \"DE\" and ltv > 300"}}'
  # watch membership changes live (in another terminal)
  curl -sN {base}/v1/changes/stream{read}
  # send an event as a Segment SDK would
  curl -s {base}/v1/identify{write} -H 'Content-Type: application/json' \
       -d '{{"userId": "{sample_user}", "traits": {{"ltv": 5000}}}}'
  # metrics and the API description
  curl -s {base}/metrics ; curl -s {base}/openapi.json
"#
    )
}

/// `POST /v1/admin/snapshot` and the final snapshot at shutdown.
struct DatabaseSnapshots(Arc<Database>);

impl http::SnapshotHook for DatabaseSnapshots {
    fn snapshot(&self, _engine: &Engine) -> Result<serde_json::Value, String> {
        let report = self.0.snapshot_now().map_err(|error| error.to_string())?;
        Ok(serde_json::json!({
            "path": report.path.display().to_string(),
            "covered_lsn": report.covered_lsn,
            "bytes": report.bytes,
            "pause_ms": report.pause.as_secs_f64() * 1e3,
            "total_ms": report.total.as_secs_f64() * 1e3,
            "removed_snapshots": report.removed_snapshots,
            "removed_wal_segments": report.removed_wal_segments,
            "skipped": report.skipped,
        }))
    }
}

async fn run(config: ServeConfig) -> ExitCode {
    warn_open_scopes(&config);
    if let Some(settings) = config.cluster.clone() {
        // No data directory: the JetStream stream is the write-ahead log.
        return cli::cluster::serve(config, settings).await;
    }
    // One process per data directory; held until this function returns.
    let _lock = match segd::persist::files::DataDirLock::acquire(&config.data_dir) {
        Ok(lock) => lock,
        Err(error) => {
            eprintln!("segd serve: {error}");
            return ExitCode::FAILURE;
        }
    };
    let extra_roots = match &config.webhook_ca_file {
        None => Vec::new(),
        Some(path) => match std::fs::read(path)
            .map_err(|error| error.to_string())
            .and_then(|pem| http::webhooks::parse_pem_roots(&pem))
        {
            Ok(roots) => roots,
            Err(error) => {
                eprintln!("segd serve: --webhook-ca-file {}: {error}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    // Bars for recovery (snapshot load, WAL replay) and the demo load; removed once the
    // server is up so periodic snapshots only log.
    let bars = cli::progress_bars::install_if_terminal();
    let fsync = match config.wal_fsync {
        WalFsync::Always => FsyncPolicy::Always,
        WalFsync::Interval(interval) => FsyncPolicy::IntervalMs(interval.as_millis() as u64),
        WalFsync::Never => FsyncPolicy::Never,
    };
    let database_options = DatabaseOptions {
        fsync,
        engine: config.engine_options(),
        ..DatabaseOptions::new(&config.data_dir)
    };
    let opened = tokio::task::spawn_blocking(move || {
        Database::open(database_options, Arc::new(SystemClock))
    })
    .await;
    let (database, webhook_registrations) = match opened {
        Ok(Ok((database, report))) => {
            segd::telemetry::record_recovery(segd::telemetry::RecoveryFigures {
                snapshot_bytes: report.snapshot_bytes,
                snapshot_load_s: report.load_time.as_secs_f64(),
                replayed_records: report.replayed_records,
                replayed_messages: report.replayed_messages,
                replay_s: report.replay_time.as_secs_f64(),
                replay_errors: report.replay_errors,
            });
            tracing::info!(
                snapshot_bytes = report.snapshot_bytes,
                replayed_records = report.replayed_records,
                load_ms = report.load_time.as_secs_f64() * 1e3,
                replay_ms = report.replay_time.as_secs_f64() * 1e3,
                "recovered: {report}"
            );
            let registrations = http::webhooks::recovered_registrations(
                &report.application_state,
                &report.application_records,
            );
            if let Ok(bytes) = serde_json::to_vec(&registrations) {
                database.restore_application_state(bytes);
            }
            (Arc::new(database), registrations)
        }
        Ok(Err(error)) => {
            tracing::error!(
                data_dir = %config.data_dir.display(),
                %error,
                "cannot open the data directory"
            );
            return ExitCode::FAILURE;
        }
        Err(_) => return ExitCode::FAILURE,
    };
    let engine = database.engine().clone();
    let state = ServiceState::new(
        engine.clone(),
        ServiceOptions {
            keys: config.keys.clone(),
            limits: config.limits.clone(),
            snapshot: Some(Arc::new(DatabaseSnapshots(database.clone()))),
            database: Some(database.clone()),
            allowed_hosts: config.allowed_hosts.clone(),
            webhooks: http::webhooks::WebhookOptions {
                allow_private: config.webhook_allow_private,
                extra_roots,
                ..http::webhooks::WebhookOptions::default()
            },
            ..ServiceOptions::default()
        },
    );
    state.webhooks.restore(webhook_registrations);
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(listen = %config.listen, %error, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(listen = %config.listen, shards = config.shards, data_dir = %config.data_dir.display(), "segd listening");
    let _snapshots = (config.snapshot_interval_s > 0)
        .then(|| database.start_snapshots(Duration::from_secs(config.snapshot_interval_s)));
    // Time-driven changes: pop due timers a few times a second.
    let ticker_database = database.clone();
    cli::spawn_ticker(state.shutdown_signal(), move || {
        let ticked = ticker_database.tick().map_err(|error| error.to_string());
        // Range indexes are rebuilt after the tick, outside the ingest lock.
        ticker_database.engine().maintain_range_indexes();
        ticked.map(drop)
    });
    // The demo data set is loaded only into an empty data directory, then made durable
    // by a snapshot (it is bulk-loaded, not written record by record to the WAL).
    let load_demo = config.demo && engine.profile_count() == 0 && engine.list_segments().is_empty();
    if config.demo && !load_demo {
        tracing::info!(
            data_dir = %config.data_dir.display(),
            profiles = engine.profile_count(),
            "--demo: the data directory already holds data; not loading the demo set again"
        );
    }
    if load_demo {
        state.set_ready(false);
        let loader_state = state.clone();
        let demo_config = config.clone();
        let demo_database = database.clone();
        tokio::task::spawn_blocking(move || {
            let generator = load_demo_data(
                &loader_state.engine,
                demo_config.demo_profiles,
                demo_config.demo_events_per_profile,
            );
            if let Err(error) = demo_database.snapshot_now() {
                tracing::error!(%error, "the demo data could not be snapshotted");
            }
            if bars {
                cli::progress_bars::uninstall();
            }
            loader_state.set_ready(true);
            tracing::info!(
                "{}",
                curl_examples(&demo_config, &generator.profile(0).user_id)
            );
        });
    } else {
        if bars {
            cli::progress_bars::uninstall();
        }
        tracing::info!("{}", curl_examples(&config, "some-user-id"));
    }
    match http::serve(listener, state, http::shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("segd stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "the server stopped with an error");
            ExitCode::FAILURE
        }
    }
}
