//! The `segd` command: `serve` (the HTTP service) and `eval` (load the demo data set and
//! evaluate a rule from the command line). Other subcommands (`import`, `inspect`) sit
//! beside these as further variants of [`Command`].

use clap::{Args, Parser, Subcommand};
use segd::bulk::{default_threads, load_demo};
use segd::config::{ServeArgs, ServeConfig};
use segd::demo::{demo_segments, DemoGenerator};
use segd::engine::{Engine, EngineOptions, RuleInput};
use segd::http::auth::Scope;
use segd::http::{self, ServiceOptions, ServiceState};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    name = "segd",
    version,
    about = "In-memory real-time customer segmentation engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the HTTP server.
    Serve(Box<ServeArgs>),
    /// Load the demo data set, print the demo segments' sizes, and evaluate a rule.
    Eval(EvalArgs),
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Eval(args) => eval(args),
    }
}

/// Loads demo profiles and creates the demo segments; prints what it did.
fn load_demo_data(engine: &Engine, profiles: u64, events_per_profile: usize) -> DemoGenerator {
    let generator = DemoGenerator::with_now_ms(DEMO_SEED, engine.now_ms());
    eprintln!("loading {profiles} demo profiles ...");
    match load_demo(
        engine,
        &generator,
        profiles,
        events_per_profile,
        default_threads(),
    ) {
        Ok(report) => eprintln!(
            "loaded {} profiles and {} events in {:.1} s",
            report.profiles,
            report.events,
            report.elapsed.as_secs_f64()
        ),
        Err(error) => eprintln!("demo data did not load completely: {error}"),
    }
    for (name, rule, description) in demo_segments() {
        let started = Instant::now();
        match engine.create_segment(name, description, Some(RuleInput::Text(rule.to_string()))) {
            Ok(summary) => eprintln!(
                "  segment {:<32} {:>9} members  ({:.1} ms)",
                name,
                summary.count,
                started.elapsed().as_secs_f64() * 1e3
            ),
            Err(error) => eprintln!("  segment {name:<32} not created: {error}"),
        }
    }
    generator
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
    load_demo_data(&engine, args.demo_profiles, args.demo_events_per_profile);
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
    runtime.block_on(run(config))
}

fn warn_open_scopes(config: &ServeConfig) {
    let open = config.keys.open_scopes();
    if open.is_empty() {
        return;
    }
    let names: Vec<&str> = open.iter().map(|scope| scope.name()).collect();
    let banner = "!".repeat(78);
    eprintln!("{banner}");
    eprintln!(
        "!! WARNING: segd is running OPEN for: {} — anyone who can reach {} can use them.",
        names.join(", "),
        config.listen
    );
    eprintln!(
        "!! Configure --write-key, --read-key and --admin-key (or SEGD_*_KEY) to close them."
    );
    eprintln!("{banner}");
    tracing::warn!(open_scopes = ?names, "running without keys for some scopes");
}

fn curl_examples(config: &ServeConfig, sample_user: &str) -> String {
    let base = format!("http://{}", config.listen);
    let bearer = |scope: Scope, keys: &[String]| match keys.first() {
        Some(key) if !config.keys.is_open(scope) => format!(" -H 'Authorization: Bearer {key}'"),
        _ => String::new(),
    };
    let admin = bearer(Scope::Admin, &config.keys.admin);
    let read = match config.keys.read.first() {
        Some(key) => format!(" -H 'Authorization: Bearer {key}'"),
        None => admin.clone(),
    };
    let write = match config.keys.write.first() {
        Some(key) => format!(" -u '{key}:'"),
        None => String::new(),
    };
    format!(
        r#"
segd is ready on {base}. Try:

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

async fn run(config: ServeConfig) -> ExitCode {
    warn_open_scopes(&config);
    let engine = Arc::new(Engine::new(config.engine_options()));
    let state = ServiceState::new(
        engine.clone(),
        ServiceOptions {
            keys: config.keys.clone(),
            limits: config.limits.clone(),
            ..ServiceOptions::default()
        },
    );
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("segd serve: cannot listen on {}: {error}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(listen = %config.listen, shards = config.shards, "segd listening");
    // Persistence (--data-dir, --snapshot-interval-s, --wal-fsync) plugs in through
    // `ServiceOptions::snapshot`; until then the data directory is not read.
    let _ = (
        &config.data_dir,
        config.snapshot_interval_s,
        config.wal_fsync,
    );
    if config.demo {
        state.set_ready(false);
        let loader_state = state.clone();
        let demo_config = config.clone();
        tokio::task::spawn_blocking(move || {
            let generator = load_demo_data(
                &loader_state.engine,
                demo_config.demo_profiles,
                demo_config.demo_events_per_profile,
            );
            loader_state.set_ready(true);
            eprintln!(
                "{}",
                curl_examples(&demo_config, &generator.profile(0).user_id)
            );
        });
    } else {
        eprintln!("{}", curl_examples(&config, "some-user-id"));
    }
    match http::serve(listener, state, http::shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("segd stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("segd serve: {error}");
            ExitCode::FAILURE
        }
    }
}
