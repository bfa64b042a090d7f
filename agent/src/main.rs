//! `vaka-agent`: parses arguments, reads the config and calls [`vaka_agent::run`].
//!
//! Exit codes: 0 ok, 2 bad config, 1 runtime failure.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use vaka_agent::{AgentConfig, ConfigError};

#[derive(Parser)]
#[command(name = "vaka-agent", version, about = "The Vaka in-home agent")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the agent until SIGINT or SIGTERM.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Check a config file and print every problem.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
}

fn load(path: &std::path::Path) -> Result<AgentConfig, ExitCode> {
    AgentConfig::load(path).map_err(|e: ConfigError| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::CheckConfig { config } => match load(&config) {
            Ok(c) => {
                println!("config OK: {}", c.summary());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Cmd::Run { config } => {
            vaka_agent::link::install_crypto_provider();
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .init();
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vaka-agent: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn run(config: AgentConfig) -> anyhow::Result<()> {
    // One async thread is plenty for a home's few sources and one MQTT session, and keeps the
    // agent small on the device; SQLite work has its own thread (see `outbox`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = async {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot listen for SIGTERM; only SIGINT stops the agent");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("Shutdown requested");
        };
        vaka_agent::run(config, shutdown).await.context("agent failed")
    })
}
