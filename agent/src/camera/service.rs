//! The camera service: runs the checks the hub (or the device itself) asks for, one at a time.
//!
//! For each [`Request`] the service asks the [`CheckBook`] (which asks the consent lock) what
//! to do, and then either reports the refusal, or opens the camera on a blocking thread,
//! captures the configured frames over the span, closes it, analyses the frames and offers the
//! `camera_check` event to the outbox (which makes it durable; it reaches the hub like any
//! other event). A snapshot request opens the camera for one frame, makes the privacy-filtered
//! JPEG in memory and hands it to the uplink, which publishes it on the `snapshot` topic at
//! QoS 0. Nothing here writes a frame or an image to disk.
//!
//! Invariants:
//! - Every check request that the book does not drop (expired or duplicate) ends with exactly
//!   one `camera_check` event: a verdict, `camera_fault` (no camera configured, no usable
//!   calibration, the device missing or failing, a capture that hangs), or
//!   `refused_outside_consent`. The agent never crashes over its camera.
//! - The camera is open only between `open()` and the end of capture, on a blocking thread;
//!   a capture that hangs longer than [`HANG_MARGIN`] past its span is abandoned, the check is
//!   reported as `camera_fault`, and later checks report the camera as stuck.
//! - Frames live only inside one capture call; the snapshot's JPEG lives until the uplink has
//!   handed it to the MQTT client.

use super::analysis::{Analyzer, BedZone};
use super::checks::{CheckBook, Start};
use super::config::{CameraSettings, SourceSettings};
use super::consent::{Consent, RefusalReason};
use super::snapshot::{self, PrivacyFilter};
use super::source::directory::DirectoryCamera;
use super::source::simulated::{Scenarios, SimulatedCamera};
use super::source::{CameraSource, SourceError};
use crate::outbox::{NewEvent, OutboxHandle};
use image::GrayImage;
use jiff::Timestamp;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{error, info, warn};
use vaka_protocol::kinds::{CameraCheck, ConsentRefusal, Verdict};
use vaka_protocol::{CheckId, EventBody, SnapshotFilter, SnapshotMessage};

/// How long past its planned span a capture may take before it is given up as hung.
pub const HANG_MARGIN: Duration = Duration::from_secs(10);

/// A camera check to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRequest {
    /// The hub's check id; `None` for a check the device runs on its own.
    pub check_id: Option<CheckId>,
    /// The verdict is due by then, and the check stays open for a snapshot until then.
    pub deadline: Option<Timestamp>,
}

impl CheckRequest {
    /// A check the device runs on its own (the simulator's periodic checks).
    pub fn own() -> Self {
        CheckRequest {
            check_id: None,
            deadline: None,
        }
    }
}

/// What the uplink hands to the camera service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Check(CheckRequest),
    /// One privacy-filtered snapshot of an open check.
    Snapshot {
        check_id: CheckId,
    },
}

pub use crate::clock::{system_clock, Clock};

/// The camera as the service holds it between checks.
enum Camera {
    /// No `[camera]` section: every check is a `camera_fault` saying so.
    None,
    Ready(Box<dyn CameraSource>),
    /// A capture hung and its thread still holds the device.
    Stuck {
        since: Timestamp,
    },
}

pub struct CameraService {
    camera: Camera,
    /// The analysis, or why there is none (no reference, bad zone).
    analyzer: Result<Arc<Analyzer>, String>,
    consent: Consent,
    frames: usize,
    span: Duration,
    /// [`HANG_MARGIN`]; tests shorten it.
    hang_margin: Duration,
    filter: PrivacyFilter,
    book: CheckBook,
    clock: Clock,
    outbox: OutboxHandle,
    snapshots: mpsc::UnboundedSender<SnapshotMessage>,
}

/// Builds the configured source. V4L2 is only compiled in with the `camera-v4l2` feature;
/// config validation refuses it otherwise.
pub fn open_source(settings: &CameraSettings) -> Result<Box<dyn CameraSource>, SourceError> {
    match &settings.source {
        SourceSettings::Simulator {
            seed,
            width,
            height,
            scenario,
        } => {
            let scenarios = scenario.map_or(Scenarios::NightMix, Scenarios::Fixed);
            Ok(Box::new(SimulatedCamera::new(
                *seed,
                (*width, *height),
                settings.frames,
                scenarios,
            )))
        }
        SourceSettings::Directory { path } => Ok(Box::new(DirectoryCamera::new(path))),
        #[cfg(feature = "camera-v4l2")]
        SourceSettings::V4l2 {
            device,
            width,
            height,
        } => {
            use super::config::RawDevice;
            use super::source::v4l2::{V4l2Camera, V4l2Device};
            let device = match device {
                RawDevice::Index(i) => V4l2Device::Index(*i),
                RawDevice::Path(p) => V4l2Device::Path(p.clone()),
            };
            Ok(Box::new(V4l2Camera::new(device, *width, *height)))
        }
        #[cfg(not(feature = "camera-v4l2"))]
        SourceSettings::V4l2 { .. } => Err(SourceError::NotFound(
            "this agent was built without V4L2 support (cargo feature camera-v4l2)".into(),
        )),
    }
}

/// The analyzer for `source` under `settings`: the source's own calibration (the simulator),
/// else the reference file and bed zone of the config.
pub fn analyzer_for(
    settings: &CameraSettings,
    source: &dyn CameraSource,
) -> Result<Analyzer, String> {
    let (reference, zone) = match source.own_calibration() {
        Some((reference, points)) => (
            reference,
            BedZone::new(&points).map_err(|e| format!("simulated bed zone: {e}"))?,
        ),
        None => {
            let path = settings
                .reference
                .as_ref()
                .ok_or("no reference frame configured")?;
            let reference = image::open(path)
                .map_err(|e| format!("reference frame {}: {e}", path.display()))?
                .into_luma8();
            let zone = settings.bed_zone.clone().ok_or("no bed zone configured")?;
            (reference, zone)
        }
    };
    Analyzer::new(&reference, &zone).map_err(|e| format!("calibration unusable: {e}"))
}

impl CameraService {
    /// The service for `settings` (`None`: no camera on this device).
    pub fn new(
        settings: Option<&CameraSettings>,
        clock: Clock,
        outbox: OutboxHandle,
        snapshots: mpsc::UnboundedSender<SnapshotMessage>,
    ) -> Self {
        let Some(settings) = settings else {
            return CameraService {
                camera: Camera::None,
                analyzer: Err("no camera is configured on this device".into()),
                consent: Consent::absent(),
                frames: 0,
                span: Duration::ZERO,
                hang_margin: HANG_MARGIN,
                filter: PrivacyFilter::default(),
                book: CheckBook::new(),
                clock,
                outbox,
                snapshots,
            };
        };
        match open_source(settings) {
            Ok(source) => Self::with_source(settings, source, clock, outbox, snapshots),
            Err(e) => {
                error!("Camera checks will report camera_fault: {e}");
                let mut service = Self::new(None, clock, outbox, snapshots);
                service.analyzer = Err(e.to_string());
                service.consent = settings.consent.clone();
                service
            }
        }
    }

    /// The service for `settings` with an already built `source` (tests wrap sources).
    pub fn with_source(
        settings: &CameraSettings,
        source: Box<dyn CameraSource>,
        clock: Clock,
        outbox: OutboxHandle,
        snapshots: mpsc::UnboundedSender<SnapshotMessage>,
    ) -> Self {
        let analyzer = analyzer_for(settings, source.as_ref()).map(Arc::new);
        if let Err(e) = &analyzer {
            error!(camera = %source.describe(), "Camera checks will report camera_fault: {e}");
        }
        CameraService {
            camera: Camera::Ready(source),
            analyzer,
            consent: settings.consent.clone(),
            frames: settings.frames,
            span: settings.span,
            hang_margin: HANG_MARGIN,
            filter: settings.snapshot_filter,
            book: CheckBook::new(),
            clock,
            outbox,
            snapshots,
        }
    }

    /// Serves requests until the channel closes.
    pub async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        while let Some(request) = requests.recv().await {
            match request {
                Request::Check(check) => self.check(check).await,
                Request::Snapshot { check_id } => self.snapshot(check_id).await,
            }
        }
    }

    async fn check(&mut self, request: CheckRequest) {
        let now = (self.clock)();
        let id = request.check_id.clone();
        if self.frames == 0 {
            // No [camera] section: nothing to consent to and nothing to open.
            warn!(check_id = ?id, "Camera check asked of a device without a camera");
            let body = fault(id, 0, 0, "no camera is configured on this device".into());
            self.outbox
                .offer(NewEvent::new(EventBody::CameraCheck(body)))
                .await;
            return;
        }
        let start = self
            .book
            .start(now, &self.consent, id.as_ref(), request.deadline, self.span);
        let body = match start {
            Start::Expired => {
                warn!(check_id = ?id, deadline = ?request.deadline, "Camera check not run: its deadline had passed when the request arrived");
                return;
            }
            Start::Duplicate => {
                info!(check_id = ?id, "Camera check asked again; already handled");
                return;
            }
            Start::Refuse(reason) => {
                info!(check_id = ?id, reason = reason.label(), "Camera check refused: {}", self.consent.explain(&reason));
                refused(id, &reason, self.consent.explain(&reason))
            }
            Start::Run { span } => self.capture_and_judge(id, span).await,
        };
        self.outbox
            .offer(NewEvent::new(EventBody::CameraCheck(body)))
            .await;
    }

    async fn capture_and_judge(&mut self, id: Option<CheckId>, span: Duration) -> CameraCheck {
        let analyzer = match &self.analyzer {
            Ok(a) => a.clone(),
            Err(why) => return fault(id, 0, 0, why.clone()),
        };
        let frames = self.frames;
        let started = Instant::now();
        let captured = self
            .with_camera(span, move |source| capture(source, frames, span))
            .await;
        let open_ms = u32::try_from(started.elapsed().as_millis())
            .unwrap_or(u32::MAX)
            .min(30_000);
        match captured {
            Err(why) => {
                warn!(check_id = ?id, "Camera check failed: {why}");
                fault(id, 0, open_ms, why)
            }
            Ok(frames) => {
                let n = u32::try_from(frames.len()).unwrap_or(u32::MAX);
                let analysis = tokio::task::spawn_blocking(move || analyzer.analyze(&frames)).await;
                match analysis {
                    Ok(a) => {
                        info!(check_id = ?id, verdict = a.verdict.as_str(), confidence = a.confidence, frames = n, "Camera check: {}", a.reason);
                        a.to_camera_check(id, n, open_ms)
                    }
                    Err(e) => fault(id, n, open_ms, format!("analysis failed: {e}")),
                }
            }
        }
    }

    async fn snapshot(&mut self, check_id: CheckId) {
        let now = (self.clock)();
        let span = match self.book.snapshot(now, &self.consent, &check_id) {
            Ok(span) => span,
            Err(denied) => {
                warn!(%check_id, "Snapshot not taken: {denied}");
                return;
            }
        };
        let filter = self.filter;
        let frame = self
            .with_camera(span, |source| capture(source, 1, Duration::ZERO))
            .await;
        let made = frame.and_then(|mut frames| {
            let frame = frames.pop().ok_or("the camera gave no frame")?;
            snapshot::snapshot(&frame, filter).map_err(|e| e.to_string())
        });
        match made {
            Ok(s) => {
                info!(%check_id, width = s.width, height = s.height, bytes = s.jpeg.len(), "Snapshot taken for staff");
                let message = SnapshotMessage::new(
                    check_id,
                    (self.clock)(),
                    (s.width, s.height),
                    wire_filter(filter),
                    s.jpeg,
                );
                let _ = self.snapshots.send(message);
            }
            Err(why) => warn!(%check_id, "Snapshot failed: {why}"),
        }
    }

    /// Runs `f` with the camera on a blocking thread, giving up after `span` + the hang margin.
    async fn with_camera<T: Send + 'static>(
        &mut self,
        span: Duration,
        f: impl FnOnce(&mut dyn CameraSource) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let mut source = match std::mem::replace(&mut self.camera, Camera::None) {
            Camera::Ready(source) => source,
            Camera::None => {
                return Err(self
                    .analyzer
                    .as_ref()
                    .err()
                    .cloned()
                    .unwrap_or_else(|| "no camera is configured on this device".into()))
            }
            Camera::Stuck { since } => {
                self.camera = Camera::Stuck { since };
                return Err(format!(
                    "the camera has hung since {since} and does not answer"
                ));
            }
        };
        let task = tokio::task::spawn_blocking(move || {
            let result = f(source.as_mut());
            (source, result)
        });
        let limit = span + self.hang_margin;
        match tokio::time::timeout(limit, task).await {
            Ok(Ok((source, result))) => {
                self.camera = Camera::Ready(source);
                result
            }
            Ok(Err(e)) => {
                // The capture panicked: the source went with it.
                error!("Camera capture failed hard: {e}");
                Err(format!("camera capture failed: {e}"))
            }
            Err(_) => {
                let since = (self.clock)();
                error!(
                    "Camera hung for more than {limit:?}; camera checks report camera_fault \
                     until the agent restarts"
                );
                self.camera = Camera::Stuck { since };
                Err(format!("the camera did not deliver within {limit:?}"))
            }
        }
    }
}

/// Opens the camera, lets it settle ([`CameraSource::warm_up_frames`]), takes `frames`
/// frames spread over `span`, closes it. Blocking.
pub fn capture(
    source: &mut dyn CameraSource,
    frames: usize,
    span: Duration,
) -> Result<Vec<GrayImage>, String> {
    let warm_up = source.warm_up_frames();
    let mut capture = source.open().map_err(|e| e.to_string())?;
    for _ in 0..warm_up {
        capture.frame().map_err(|e| e.to_string())?;
    }
    let gap = if frames > 1 {
        span / u32::try_from(frames - 1).unwrap_or(u32::MAX)
    } else {
        Duration::ZERO
    };
    let mut out = Vec::with_capacity(frames);
    for i in 0..frames {
        if i > 0 && !gap.is_zero() {
            // The capture cadence: frames a moment apart show motion; not a synchronisation.
            std::thread::sleep(gap);
        }
        out.push(capture.frame().map_err(|e| e.to_string())?);
    }
    drop(capture);
    Ok(out)
}

fn wire_filter(filter: PrivacyFilter) -> SnapshotFilter {
    match filter {
        PrivacyFilter::Plain => SnapshotFilter::Plain,
        PrivacyFilter::Blur => SnapshotFilter::Blur,
        PrivacyFilter::Silhouette => SnapshotFilter::Silhouette,
    }
}

fn fault(id: Option<CheckId>, frames: u32, duration_ms: u32, why: String) -> CameraCheck {
    CameraCheck {
        check_id: id,
        verdict: Verdict::CameraFault,
        refusal: None,
        confidence: 1.0,
        detail: Some(text(&why)),
        frames,
        brightness: None,
        motion_in_zone: None,
        motion_outside: None,
        presence: None,
        presence_strong: None,
        duration_ms,
    }
}

fn refused(id: Option<CheckId>, reason: &RefusalReason, explained: String) -> CameraCheck {
    let refusal = match reason {
        RefusalReason::OutsideWindow { .. } => ConsentRefusal::OutsideWindow,
        RefusalReason::OptedOutTonight { .. } => ConsentRefusal::OptedOutTonight,
        RefusalReason::NoConsentRecord => ConsentRefusal::NoConsentRecord,
    };
    CameraCheck {
        refusal: Some(refusal),
        verdict: Verdict::RefusedOutsideConsent,
        detail: Some(text(&explained)),
        ..fault(id, 0, 0, String::new())
    }
}

/// A detail within the protocol's text limit.
fn text(s: &str) -> String {
    let s: String = s
        .chars()
        .filter(|c| !c.is_control())
        .take(vaka_protocol::kinds::MAX_TEXT)
        .collect();
    if s.trim().is_empty() {
        "no detail".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests;
