//! `segd serve --cluster ...` (a cluster node) and `segd cluster status`.

use segd::cluster::config::ClusterSettings;
use segd::cluster::{setup, ClusterOptions};
use segd::config::ServeConfig;
use segd::http::{self, ServiceOptions, ServiceState};
use std::process::ExitCode;
use std::time::Duration;

/// Runs a cluster node until SIGTERM / Ctrl-C, then releases its leases.
pub async fn serve(config: ServeConfig, settings: ClusterSettings) -> ExitCode {
    if config.demo {
        eprintln!("segd serve: --demo is not supported with --cluster");
        return ExitCode::from(2);
    }
    let options = ClusterOptions {
        urls: settings.urls.clone(),
        node_id: settings.node_id.clone(),
        partitions: settings.partitions,
        replicas: settings.replicas,
        lease_ms: settings.lease_ms,
        engine: config.engine_options(),
    };
    let cluster = match setup::join(options).await {
        Ok(cluster) => cluster,
        Err(error) => {
            eprintln!("segd serve: {error}");
            tracing::error!(%error, "cannot join the cluster");
            return ExitCode::FAILURE;
        }
    };
    let state = ServiceState::new(
        cluster.catalog.clone(),
        ServiceOptions {
            keys: config.keys.clone(),
            limits: config.limits.clone(),
            allowed_hosts: config.allowed_hosts.clone(),
            cluster: Some(cluster.clone()),
            ..ServiceOptions::default()
        },
    );
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(listen = %config.listen, %error, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        listen = %config.listen,
        node = %settings.node_id,
        partitions = cluster.partitions,
        "segd cluster node listening"
    );
    let ticker = cluster.clone();
    super::spawn_ticker(state.shutdown_signal(), move || {
        ticker.tick();
        Ok(())
    });
    let result = http::serve(listener, state, http::shutdown_signal()).await;
    cluster.leave().await;
    match result {
        Ok(()) => {
            tracing::info!("segd cluster node stopped; its leases are released");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "the server stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// `segd cluster status`.
pub fn status(urls: &[String], json: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("segd cluster status: {error}");
            return ExitCode::FAILURE;
        }
    };
    let read = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), segd::cluster::status::read(urls)).await
    });
    match read {
        Ok(Ok(status)) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&status).unwrap_or_default()
                );
            } else {
                print!("{status}");
            }
            ExitCode::SUCCESS
        }
        Ok(Err(error)) => {
            eprintln!("segd cluster status: {error}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("segd cluster status: no answer within 30 s");
            ExitCode::FAILURE
        }
    }
}
