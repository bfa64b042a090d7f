//! The Vaka in-home agent: device events reach the hub over MQTT, durably, with nothing lost.
//!
//! Sources (the [`intake`] socket, the [`simulator`], later real cameras, dispensers and GPS
//! trackers) offer events to the [`outbox`], which commits each to disk before it counts as
//! accepted; the [`uplink`] publishes them to the broker and deletes them only when the hub's
//! application ack names them. [`run`] wires these together for one device; `main.rs` only
//! parses arguments, reads the [`config`] and calls it.

pub mod camera;
pub mod clock;
pub mod config;
pub mod decisions;
pub mod dispenser;
pub mod gps;
pub mod identity;
pub mod intake;
pub mod lines;
pub mod link;
pub mod outbox;
pub mod simulator;
pub mod uplink;

pub use config::{AgentConfig, ConfigError};

use outbox::{Limits, Outbox, OutboxError};
use std::future::Future;
use thiserror::Error;
use tokio::sync::mpsc;
use tracing::{error, info};

#[derive(Debug, Error)]
pub enum AgentError {
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Intake(#[from] intake::IntakeError),
    #[error("cannot start the outbox thread: {0}")]
    Thread(std::io::Error),
}

/// Runs the agent until `shutdown` resolves: opens the outbox (reloading what is pending),
/// binds the intake socket if configured, starts the simulator if configured, and keeps the
/// MQTT session up. On shutdown it publishes `offline`, and lets the outbox thread finish
/// what is queued. Returns an error only if something could not start.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    info!(summary = %config.summary(), version = env!("CARGO_PKG_VERSION"), "Agent starting");
    let limits = Limits {
        max_in_flight: config.uplink.max_in_flight,
        ack_timeout: config.uplink.ack_timeout,
        max_bytes: config.outbox.max_bytes,
    };
    let (path, device) = (config.outbox.path.clone(), config.device_id.clone());
    let reserve = config.outbox.reserve_bytes;
    let outbox = tokio::task::spawn_blocking(move || Outbox::open_with_reserve(&path, device, limits, reserve))
        .await
        .map_err(|e| AgentError::Thread(std::io::Error::other(e)))??;
    let (handle, publishes, outbox_thread) = outbox::spawn(outbox).map_err(AgentError::Thread)?;

    let mut tasks = Vec::new();
    if let Some(socket) = &config.intake_socket {
        let listener = intake::bind(socket)?;
        tasks.push(tokio::spawn(intake::serve(listener, handle.clone())));
    }
    for problem in config.preflight() {
        error!("Config problem (the agent runs on; camera checks report camera_fault): {problem}");
    }
    // The camera service always runs: without a camera it answers the hub's checks with
    // camera_fault, so that no requested check goes unanswered.
    let (camera_tx, camera_rx) = mpsc::unbounded_channel();
    let (snapshot_tx, snapshot_rx) = mpsc::unbounded_channel();
    let service = camera::service::CameraService::new(
        config.camera.as_ref(),
        clock::system_clock(),
        handle.clone(),
        snapshot_tx,
    )
    .with_data_dir(config.data_dir());
    tasks.push(tokio::spawn(service.run(camera_rx)));
    if let Some(gps) = &config.gps {
        let clock = clock::system_clock();
        tasks.push(tokio::spawn(gps::service::run(gps.clone(), handle.clone(), clock)));
    }
    if let Some(dispenser) = &config.dispenser {
        let (clock, tz) = (clock::system_clock(), config.time_zone());
        let run = dispenser::service::run(dispenser.clone(), handle.clone(), clock, tz);
        tasks.push(tokio::spawn(run));
    }
    if let Some(sim) = &config.simulator {
        let tx = camera_tx.clone();
        let doses = config.dispenser.is_none();
        tasks.push(tokio::spawn(simulator::run(sim.speed, sim.seed, doses, handle.clone(), tx)));
        info!(speed = sim.speed, seed = sim.seed, "Simulator started");
    }

    let channels = uplink::Channels { publishes, camera: camera_tx, snapshots: snapshot_rx };
    uplink::Uplink::run(&config, handle.clone(), channels, shutdown).await;

    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    if let Some(socket) = &config.intake_socket {
        let _ = std::fs::remove_file(socket);
    }
    handle.stop();
    drop(handle);
    let _ = tokio::task::spawn_blocking(move || outbox_thread.join()).await;
    info!("Agent stopped");
    Ok(())
}
