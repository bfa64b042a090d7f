//! `vaka-agent`: parses arguments, reads the config and calls [`vaka_agent::run`].
//!
//! Exit codes: 0 ok, 2 bad config, 1 runtime failure, 3 calibration done but implausible.

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
    /// Installer tools for the camera.
    Camera {
        #[command(subcommand)]
        action: CameraCmd,
    },
    /// The device's key and certificate.
    Identity {
        #[command(subcommand)]
        action: IdentityCmd,
    },
}

#[derive(Subcommand)]
enum IdentityCmd {
    /// Make a certificate signing request for this device, with the key at --key (made there
    /// first if it does not exist; it never leaves the device). Send the request to the hub:
    /// POST /api/v1/devices/{device}/certificate, and install the answer as
    /// mqtt.client_cert_file, with --key as mqtt.client_key_file.
    Request {
        /// The device id, as registered at the hub.
        #[arg(long)]
        device: String,
        #[arg(long)]
        key: PathBuf,
        /// Write the request here instead of to standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CameraCmd {
    /// Capture one frame, draw the bed zone on it, print brightness and whether the zone is
    /// plausible. Writes the annotated picture to --out (PNG), and with --save-reference the
    /// clean frame to camera.reference: the only ways an image reaches a disk.
    Calibrate {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Also save the frame as the empty-bed reference (the bed must be empty and made).
        #[arg(long)]
        save_reference: bool,
        /// Open the camera outside the consented windows: an installer is at work with the
        /// person present.
        #[arg(long)]
        installer_present: bool,
    },
    /// Run one full camera check here and print the verdict.
    Test {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        installer_present: bool,
    },
    /// Let the hub ask for calibration pictures for the next --minutes (1–240): run at the
    /// device, by the installer, with the person present. Records the expiry in the agent's
    /// data directory and tells the hub through the intake socket (an info event).
    InstallerMode {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 30)]
        minutes: u32,
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
        Cmd::CheckConfig { config: path } => match load(&path) {
            Ok(c) => {
                let problems = c.preflight();
                if problems.is_empty() {
                    println!("config OK: {}", c.summary());
                    ExitCode::SUCCESS
                } else {
                    eprintln!(
                        "config {} has {} problem(s):\n{}",
                        path.display(),
                        problems.len(),
                        problems.join("\n")
                    );
                    ExitCode::from(2)
                }
            }
            Err(code) => code,
        },
        Cmd::Camera { action } => camera(action),
        Cmd::Identity { action: IdentityCmd::Request { device, key, out } } => identity_request(&device, &key, out.as_deref()),
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

fn identity_request(device: &str, key: &std::path::Path, out: Option<&std::path::Path>) -> ExitCode {
    let device = match vaka_protocol::DeviceId::new(device.to_string()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("--device: {e}");
            return ExitCode::from(2);
        }
    };
    let (csr, created) = match vaka_agent::identity::signing_request(&device, key) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vaka-agent identity request: {e}");
            return ExitCode::from(1);
        }
    };
    eprintln!("{} key {}", if created { "made a new" } else { "using the existing" }, key.display());
    match out {
        Some(path) => match std::fs::write(path, &csr) {
            Ok(()) => {
                eprintln!("signing request for {device} written to {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vaka-agent identity request: {}: {e}", path.display());
                ExitCode::from(1)
            }
        },
        None => {
            print!("{csr}");
            ExitCode::SUCCESS
        }
    }
}

fn camera(action: CameraCmd) -> ExitCode {
    use vaka_agent::camera::installer;
    let (path, installer_present) = match &action {
        CameraCmd::Calibrate { config, installer_present, .. }
        | CameraCmd::Test { config, installer_present } => (config, *installer_present),
        CameraCmd::InstallerMode { config, minutes } => return installer_mode(config, *minutes),
    };
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let data_dir = config.data_dir();
    let Some(mut settings) = config.camera else {
        eprintln!("{}: this config has no [camera] section", path.display());
        return ExitCode::from(2);
    };
    // The zone the running agent uses: one the hub sent wins over the config's.
    match vaka_agent::camera::calibration::saved_zone(&data_dir) {
        Ok(Some(zone)) => {
            eprintln!("Using the bed zone the hub sent (kept in {}).", data_dir.display());
            settings.bed_zone = Some(zone);
        }
        Ok(None) => {}
        Err(e) => eprintln!("Kept bed zone unusable, the config's is used: {e}"),
    }
    if installer_present {
        eprintln!(
            "Installer present: the consent lock is bypassed for this one capture. The person \
             must know the camera is on."
        );
    }
    let now = jiff::Timestamp::now();
    match action {
        CameraCmd::Calibrate { out, save_reference, .. } => {
            match installer::calibrate(&settings, &out, save_reference, now, installer_present) {
                Ok(report) => {
                    println!("{report}");
                    println!("annotated picture: {}", out.display());
                    if let Some(reference) = settings.reference.as_ref().filter(|_| save_reference) {
                        println!("empty-bed reference saved: {}", reference.display());
                    }
                    if report.problems.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(3)
                    }
                }
                Err(e) => {
                    eprintln!("calibration failed: {e}");
                    ExitCode::from(1)
                }
            }
        }
        CameraCmd::InstallerMode { .. } => ExitCode::SUCCESS,
        CameraCmd::Test { .. } => match installer::test_check(&settings, now, installer_present) {
            Ok(r) => {
                let a = &r.analysis;
                println!("camera: {}", r.camera);
                println!("verdict: {} (confidence {:.2})", a.verdict.as_str(), a.confidence);
                println!("why: {}", a.reason);
                println!("frames: {}, camera open for {:?}", r.frames, r.open_for);
                let f = &a.figures;
                let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
                println!(
                    "figures: brightness {}, motion in zone {}, motion outside {}, presence {}, \
                     strong presence {}",
                    show(f.brightness),
                    show(f.motion_in_zone),
                    show(f.motion_outside),
                    show(f.presence),
                    show(f.presence_strong)
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("camera test failed: {e}");
                ExitCode::from(1)
            }
        },
    }
}

fn installer_mode(path: &std::path::Path, minutes: u32) -> ExitCode {
    use vaka_agent::camera::calibration;
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if config.camera.is_none() {
        eprintln!("{}: this config has no [camera] section", path.display());
        return ExitCode::from(2);
    }
    let until = match calibration::expiry(jiff::Timestamp::now(), minutes) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let dir = config.data_dir();
    match calibration::switch_on(&dir, until) {
        Ok(file) => println!(
            "installer mode on until {until} ({}): the hub may ask for calibration pictures.              The person must know the camera can be opened.",
            file.display()
        ),
        Err(e) => {
            eprintln!("cannot switch installer mode on in {}: {e}", dir.display());
            return ExitCode::from(1);
        }
    }
    match &config.intake_socket {
        Some(socket) => match tell_intake(socket, until) {
            Ok(answer) => println!("hub informed through the agent: {answer}"),
            Err(e) => eprintln!(
                "note: the running agent was not told ({}: {e}); installer mode is on anyway",
                socket.display()
            ),
        },
        None => println!("note: no intake socket configured; the hub is not told"),
    }
    ExitCode::SUCCESS
}

/// Offers the `installer_mode` info event through the intake socket; the agent's answer.
fn tell_intake(socket: &std::path::Path, until: jiff::Timestamp) -> std::io::Result<String> {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let line = serde_json::json!({"kind": "installer_mode", "body": {"until": until}});
    writeln!(stream, "{line}")?;
    let mut answer = String::new();
    std::io::BufReader::new(stream).read_line(&mut answer)?;
    Ok(answer.trim().to_string())
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
