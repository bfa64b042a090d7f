//! Camera checks asked for from the console, and their one snapshot.
//!
//! ```text
//!  console ─POST camera-check─► row `requested` ─cmd camera_check─► device
//!  device ─camera_check event (outbox, events topic)─► writer: row `answered` (same commit)
//!  writer tick: deadline passed, still `requested` ─► `no_answer` + WARN (a visit may be due)
//!  console ─POST snapshot─► vault: requested ─cmd snapshot─► device
//!  device ─snapshot topic, QoS 0─► session ─[`intake::verify`]─► vault: available
//!  console ─GET snapshot─► audit row, then the picture, once; gone after the view span
//! ```
//!
//! Privacy promises, which the code below keeps by construction:
//! - a picture exists only in memory, in the [`SnapshotVault`]: never in the database (the
//!   ingest writer never sees `snapshot` topics, and `classify` keeps no excerpt of them), never
//!   in logs (pictures print as their size), never on disk;
//! - it is handed out at most once, only to care staff (`night_staff`, `nurse`), and every
//!   attempt to fetch one is written to the audit log before anything is shown;
//! - it is dropped, its bytes zeroed, at `received_at + snapshot_view_span` if nobody fetched it.
//!
//! An installer's calibration picture travels the same way (the device's snapshot topic, QoS 0)
//! and is kept the same way, in memory only, in the [`CalibrationVault`]: for installers and
//! admins of the home's team, shown as often as needed for `cameras.calibration_span` (10 min)
//! after it arrived, each view audited, then dropped and zeroed.
//!
//! Files: [`checks`] (pure rules of a check's life), [`intake`] (pure check of an incoming
//! snapshot or calibration answer), [`vault`] (pure in-memory store of pictures),
//! [`calibration`] (the same for calibration pictures); [`Snapshots`] below is the thin shell
//! that shares both between the MQTT session, the HTTP API and a sweeping ticker.

pub mod calibration;
pub mod checks;
pub mod intake;
pub mod vault;

pub use calibration::{CalibrationStatus, CalibrationVault};

pub use vault::{NotAvailable, Picture, SnapshotState, SnapshotVault};

use crate::ingest::Stats;
use jiff::Timestamp;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// How often the vault is swept of expired pictures.
pub const SWEEP_PERIOD: Duration = Duration::from_secs(1);

/// The vault, shared. Every method holds the lock only for a few map operations.
#[derive(Clone)]
pub struct Snapshots {
    vault: Arc<Mutex<SnapshotVault>>,
    calibrations: Arc<Mutex<CalibrationVault>>,
    stats: Arc<Stats>,
    view_span: Duration,
}

impl Snapshots {
    pub fn new(view_span: Duration, calibration_span: Duration, stats: Arc<Stats>) -> Snapshots {
        Snapshots {
            vault: Arc::new(Mutex::new(SnapshotVault::new(view_span))),
            calibrations: Arc::new(Mutex::new(CalibrationVault::new(calibration_span))),
            stats,
            view_span,
        }
    }

    /// How long a picture is kept, and may be shown once fetched.
    pub fn view_span(&self) -> Duration {
        self.view_span
    }

    /// Runs `f` on the vault. A panic elsewhere while holding the lock leaves the vault in a
    /// consistent state (each method is a few map operations), so poisoning is ignored.
    pub fn with<R>(&self, f: impl FnOnce(&mut SnapshotVault) -> R) -> R {
        let mut vault = self.vault.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut vault)
    }

    /// Runs `f` on the calibration vault (poisoning ignored, as for [`Snapshots::with`]).
    pub fn calibrations<R>(&self, f: impl FnOnce(&mut CalibrationVault) -> R) -> R {
        let mut vault = self.calibrations.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut vault)
    }

    /// Takes a message from a `snapshot` topic: verifies it and puts it in the vault, or drops
    /// it with a WARN that gives the reason (never the payload).
    pub fn receive(&self, now: Timestamp, topic: &str, payload: &[u8], retained: bool) {
        self.stats.snapshots_received.fetch_add(1, Relaxed);
        let verified = match intake::verify_any(topic, payload, retained) {
            Ok(intake::Arrival::Snapshot(v)) => v,
            Ok(intake::Arrival::Calibration(c)) => return self.receive_calibration(now, c),
            Err(e) => {
                self.stats.snapshots_dropped.fetch_add(1, Relaxed);
                let topic: String = topic.chars().take(200).collect();
                warn!(
                    topic,
                    label = e.label(),
                    bytes = payload.len(),
                    "Snapshot dropped: {e}"
                );
                return;
            }
        };
        let (device, check) = (verified.topic.device.clone(), verified.check_id.clone());
        let picture = verified.picture;
        let size = (picture.width, picture.height);
        match self.with(|v| v.insert(now, &device, &check, picture)) {
            Ok(()) => {
                self.stats.snapshots_accepted.fetch_add(1, Relaxed);
                info!(%device, check_id = %check, width = size.0, height = size.1, "Snapshot received; held in memory for its view span");
            }
            Err(e) => {
                self.stats.snapshots_dropped.fetch_add(1, Relaxed);
                warn!(%device, check_id = %check, "Snapshot dropped: {e}");
            }
        }
    }

    fn receive_calibration(&self, now: Timestamp, c: intake::VerifiedCalibration) {
        let (device, request) = (c.topic.device, c.request_id);
        let what = match &c.answer {
            calibration::Answer::Picture { .. } => "picture",
            calibration::Answer::Refused { refusal, .. } => refusal.as_str(),
        };
        match self.calibrations(|v| v.insert(now, &device, &request, c.answer)) {
            Ok(()) => info!(%device, request_id = %request, answer = what, "Calibration answer received (a picture is held in memory only, for its span)"),
            Err(e) => warn!(%device, request_id = %request, "Calibration answer dropped: {e}"),
        }
    }

    /// Sweeps the vault every [`SWEEP_PERIOD`] until `shutdown`.
    pub async fn sweep_until(self, mut shutdown: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(SWEEP_PERIOD);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                _ = interval.tick() => self.sweep(Timestamp::now()),
            }
        }
    }

    fn sweep(&self, now: Timestamp) {
        for device in self.calibrations(|v| v.sweep(now)) {
            info!(%device, "Calibration picture's span ended; dropped");
        }
        let swept = self.with(|v| v.sweep(now));
        for check in &swept.unviewed {
            self.stats.snapshots_expired.fetch_add(1, Relaxed);
            info!(check_id = %check, "Snapshot not fetched within its view span; dropped");
        }
        for check in &swept.never_arrived {
            debug!(check_id = %check, "Requested snapshot never arrived before the check closed");
        }
    }
}
