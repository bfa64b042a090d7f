//! `vaka-hub`: parses arguments, reads the config and runs [`vaka_hub::serve`].

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "vaka-hub", version, about = "The Vaka hub: MQTT ingest, store, supervision, console")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the hub with its embedded broker, SQLite in a temporary directory and five
    /// simulated homes running the real agent code; prints the console URL and token.
    Demo {
        /// Where the console listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: std::net::SocketAddr,
        /// Port of the embedded MQTT broker on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 0)]
        mqtt_port: u16,
        /// Serve the console over plain HTTP instead of HTTPS with a self-signed certificate.
        #[arg(long)]
        plain_http: bool,
    },
    /// Check a config file and print every problem (exit 2 if there are any).
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Write what a Mosquitto needs to take devices by the hub's device certificates: the
    /// device CA, a TLS listener that requires client certificates, the per-device ACL and a
    /// client certificate for the hub itself (see README, "Mosquitto in production").
    BrokerFiles {
        /// The hub's config (its database's directory holds the device CA).
        #[arg(long)]
        config: PathBuf,
        /// Directory to write into.
        #[arg(long)]
        out: PathBuf,
        /// The listener's port.
        #[arg(long, default_value_t = 8883)]
        port: u16,
        /// The broker's own certificate and key (PEM).
        #[arg(long)]
        server_cert: PathBuf,
        #[arg(long)]
        server_key: PathBuf,
    },
}

fn main() -> ExitCode {
    vaka_agent::link::install_crypto_provider();
    // Logs go to stderr, so that stdout carries only what a command prints for a person (the
    // demo's URL and token). The embedded broker logs every dropped device connection at
    // ERROR (also the hub's own readiness probe); the hub reports presence itself, so those
    // lines are left out unless RUST_LOG asks for them.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,rumqttd=warn,rumqttd::server::broker=off")
            }),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match vaka_hub::config::load(&config) {
            Ok(hub) => match vaka_hub::store::probe(&hub.store()) {
                Ok(store) => {
                    println!("{}: ok", config.display());
                    if let Some(store) = store {
                        println!("  store: {store}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{}: problems:\n  - store: {e}", config.display());
                    ExitCode::from(2)
                }
            },
            Err(e) => {
                eprintln!("{}: problems:", config.display());
                for problem in e.problems() {
                    eprintln!("  - {problem}");
                }
                ExitCode::from(2)
            }
        },
        Command::BrokerFiles { config, out, port, server_cert, server_key } => {
            let listener = vaka_hub::pki::Listener { port, server_cert, server_key };
            match broker_files(&config, &out, &listener) {
                Ok(files) => {
                    for f in files {
                        println!("{}", f.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("vaka-hub broker-files: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo { http, mqtt_port, plain_http } => match demo(http, mqtt_port, plain_http) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("vaka-hub demo: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Serve { config } => match serve(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("vaka-hub: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn broker_files(config: &std::path::Path, out: &std::path::Path, listener: &vaka_hub::pki::Listener) -> anyhow::Result<Vec<PathBuf>> {
    let config = vaka_hub::config::load(config)?;
    let dir = vaka_hub::pki::ca_dir(&config.store_path);
    let ca = vaka_hub::pki::DeviceCa::load_or_create(&dir)?;
    // The revocation list as the database has it now; the running hub keeps it current.
    let store = vaka_hub::store::open(&config.store())?;
    let revoked = vaka_hub::identity::revoked_list(&vaka_hub::store::CertStore::certificates(store.as_ref(), None)?);
    let now = jiff::Timestamp::now();
    let (crl, _) = ca.write_crl(&dir, &revoked, now)?;
    let crl = std::path::absolute(&crl)?;
    let mut files = vaka_hub::pki::broker_files(&ca, out, listener, &crl, now)?;
    files.push(crl);
    Ok(files)
}

fn serve(path: PathBuf) -> anyhow::Result<()> {
    let config = vaka_hub::config::load(&path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.http_listen)
            .await
            .with_context(|| format!("cannot listen for HTTP on {}", config.http_listen))?;
        vaka_hub::serve(config, listener, shutdown_signal()).await?;
        Ok(())
    })
}

fn demo(http: std::net::SocketAddr, mqtt_port: u16, plain_http: bool) -> anyhow::Result<()> {
    use vaka_hub::demo::Transport;
    let transport = if plain_http { Transport::PlainHttp } else { Transport::Https };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let demo = vaka_hub::demo::Demo::start(http, mqtt_port, transport).await?;
        let addr = demo.http_addr();
        let scheme = if demo.certificate.is_some() { "https" } else { "http" };
        println!("Vaka demo: hub, embedded broker and {} simulated homes.", vaka_hub::demo::HOMES);
        println!("  console: {scheme}://{addr}/  log in as natt (night staff), sjukskoterska, installator or admin");
        if let Some(cert) = &demo.certificate {
            println!("  certificate: self-signed for localhost and 127.0.0.1; the browser warns once: check its SHA-256 fingerprint is");
            println!("  sha256: {}", cert.fingerprint);
            println!("  (PEM: {}; or run with --plain-http)", cert.file.display());
        }
        println!("  password: {}", demo.password);
        println!("  token: {}  (API, night staff)", demo.token);
        println!("  admin token: {}  (audit log; no camera pictures)", demo.admin_token);
        println!("  MQTT:    mqtt://{}  (watch: mosquitto_sub -h {} -p {} -t 'vaka/#' -v)", demo.broker, demo.broker.ip(), demo.broker.port());
        println!("  data:    {}  (deleted on exit)", demo.data_dir().display());
        println!("Press Ctrl-C to stop.");
        shutdown_signal().await;
        demo.stop().await;
        Ok(())
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("Shutdown requested");
}
