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
//! A calibration request ([`Request::Calibrate`]) is answered only while installer mode is on
//! at the device ([`super::calibration`]): then the camera opens for one frame whatever the
//! consent windows say (an installer is at work, with the person present, as for
//! `vaka-agent camera calibrate --installer-present`), and the answer is the same
//! privacy-filtered picture as a snapshot, with the bed zone in use. Otherwise the answer is a
//! refusal and the camera stays closed. A bed zone from the hub ([`Request::SetBedZone`]) is
//! judged by the config's rules, kept in the data directory and used from the next check.
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
use super::calibration;
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
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{error, info, warn};
use vaka_protocol::kinds::{CameraCheck, ConsentRefusal, Verdict};
use vaka_protocol::{
    CalibrationMessage, CalibrationPicture, CalibrationRefusal, CheckId, EventBody, PictureMessage,
    SnapshotFilter, SnapshotMessage,
};

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
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Check(CheckRequest),
    /// One privacy-filtered snapshot of an open check.
    Snapshot {
        check_id: CheckId,
    },
    /// One calibration picture with the bed zone, if installer mode is on.
    Calibrate {
        request_id: CheckId,
    },
    /// Use this bed zone from the next check on.
    SetBedZone {
        corners: Vec<[f64; 2]>,
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
    snapshots: mpsc::UnboundedSender<PictureMessage>,
    /// The camera settings, to set the analysis up again when the bed zone changes.
    settings: Option<CameraSettings>,
    /// The bed zone the checks use now.
    zone: Option<BedZone>,
    /// Where installer mode and the hub's bed zone are kept; `None`: installer mode is never
    /// on (tests, or an agent without a data directory).
    data_dir: Option<PathBuf>,
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

/// The bed zone checks use: one kept from the hub (`kept`), else the source's own (the
/// simulator), else the config's.
pub fn zone_for(
    settings: &CameraSettings,
    source: &dyn CameraSource,
    kept: Option<&BedZone>,
) -> Result<Option<BedZone>, String> {
    if let Some(zone) = kept {
        return Ok(Some(zone.clone()));
    }
    match source.own_calibration() {
        Some((_, points)) => BedZone::new(&points)
            .map(Some)
            .map_err(|e| format!("simulated bed zone: {e}")),
        None => Ok(settings.bed_zone.clone()),
    }
}

/// The analyzer for `source` under `settings`: the source's own calibration (the simulator),
/// else the reference file of the config, with the zone of [`zone_for`].
pub fn analyzer_for(
    settings: &CameraSettings,
    source: &dyn CameraSource,
    kept: Option<&BedZone>,
) -> Result<Analyzer, String> {
    let zone = zone_for(settings, source, kept)?.ok_or("no bed zone configured")?;
    let reference = match source.own_calibration() {
        Some((reference, _)) => reference,
        None => {
            let path = settings
                .reference
                .as_ref()
                .ok_or("no reference frame configured")?;
            image::open(path)
                .map_err(|e| format!("reference frame {}: {e}", path.display()))?
                .into_luma8()
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
        snapshots: mpsc::UnboundedSender<PictureMessage>,
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
                settings: None,
                zone: None,
                data_dir: None,
            };
        };
        match open_source(settings) {
            Ok(source) => Self::with_source(settings, source, clock, outbox, snapshots),
            Err(e) => {
                error!("Camera checks will report camera_fault: {e}");
                let mut service = Self::new(None, clock, outbox, snapshots);
                service.analyzer = Err(e.to_string());
                service.consent = settings.consent.clone();
                service.zone = settings.bed_zone.clone();
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
        snapshots: mpsc::UnboundedSender<PictureMessage>,
    ) -> Self {
        let analyzer = analyzer_for(settings, source.as_ref(), None).map(Arc::new);
        let zone = zone_for(settings, source.as_ref(), None).unwrap_or_default();
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
            settings: Some(settings.clone()),
            zone,
            data_dir: None,
        }
    }

    /// Keeps installer mode and the hub's bed zone in `dir`, and uses a bed zone kept there
    /// earlier from now on.
    pub fn with_data_dir(mut self, dir: PathBuf) -> Self {
        match calibration::saved_zone(&dir) {
            Ok(Some(zone)) => {
                info!(corners = zone.points().len(), "Using the bed zone the hub sent earlier");
                self.use_zone(zone);
            }
            Ok(None) => {}
            Err(e) => error!("Kept bed zone unusable, the config's is used: {e}"),
        }
        self.data_dir = Some(dir);
        self
    }

    /// Serves requests until the channel closes.
    pub async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        while let Some(request) = requests.recv().await {
            match request {
                Request::Check(check) => self.check(check).await,
                Request::Snapshot { check_id } => self.snapshot(check_id).await,
                Request::Calibrate { request_id } => self.calibrate(request_id).await,
                Request::SetBedZone { corners } => self.set_bed_zone(&corners),
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
        match self.one_picture(span).await {
            Ok(s) => {
                info!(%check_id, width = s.width, height = s.height, bytes = s.jpeg.len(), "Snapshot taken for staff");
                let message = SnapshotMessage::new(
                    check_id,
                    (self.clock)(),
                    (s.width, s.height),
                    wire_filter(self.filter),
                    s.jpeg,
                );
                let _ = self.snapshots.send(PictureMessage::Snapshot(message));
            }
            Err(why) => warn!(%check_id, "Snapshot failed: {why}"),
        }
    }

    /// One frame through the privacy filter, JPEG in memory.
    async fn one_picture(&mut self, span: Duration) -> Result<snapshot::Snapshot, String> {
        let filter = self.filter;
        let frame = self
            .with_camera(span, |source| capture(source, 1, Duration::ZERO))
            .await;
        frame.and_then(|mut frames| {
            let frame = frames.pop().ok_or("the camera gave no frame")?;
            snapshot::snapshot(&frame, filter).map_err(|e| e.to_string())
        })
    }

    async fn calibrate(&mut self, request_id: CheckId) {
        let now = (self.clock)();
        let until = self.data_dir.as_deref().and_then(calibration::recorded_until);
        let refuse = |refusal: CalibrationRefusal, why: String| {
            warn!(%request_id, refusal = refusal.as_str(), "Calibration picture refused: {why}");
            CalibrationMessage::refused(request_id.clone(), now, refusal, text(&why))
        };
        let answer = match calibration::decide(now, until) {
            Err(closed) => refuse(CalibrationRefusal::InstallerModeOff, closed.explain()),
            Ok(_) if self.frames == 0 => refuse(
                CalibrationRefusal::NoCamera,
                "no camera is configured on this device".into(),
            ),
            Ok(until) => match self.one_picture(Duration::ZERO).await {
                Err(why) => refuse(CalibrationRefusal::CameraFault, why),
                Ok(s) => {
                    info!(%request_id, %until, width = s.width, height = s.height, "Calibration picture taken in installer mode");
                    let bed_zone = self
                        .zone
                        .as_ref()
                        .map(|z| z.points().iter().map(|&(x, y)| [x, y]).collect());
                    let picture = CalibrationPicture {
                        width: s.width,
                        height: s.height,
                        filter: wire_filter(self.filter),
                        jpeg: s.jpeg,
                        bed_zone,
                    };
                    CalibrationMessage::picture(request_id.clone(), (self.clock)(), picture)
                }
            },
        };
        let _ = self.snapshots.send(PictureMessage::Calibration(answer));
    }

    fn set_bed_zone(&mut self, corners: &[[f64; 2]]) {
        let zone = match calibration::zone_from_wire(corners) {
            Ok(zone) => zone,
            Err(e) => {
                warn!("Bed zone from the hub refused, the old one stays: {e}");
                return;
            }
        };
        if let Some(dir) = &self.data_dir {
            match calibration::save_zone(dir, &zone) {
                Ok(path) => info!(path = %path.display(), "Bed zone from the hub kept for the next start"),
                Err(e) => error!("Bed zone from the hub could not be kept on disk (used until the agent restarts): {e}"),
            }
        }
        info!(corners = corners.len(), area = zone.area(), "Bed zone from the hub used from the next check");
        self.use_zone(zone);
    }

    /// Sets the analysis up again with `zone`.
    fn use_zone(&mut self, zone: BedZone) {
        if let (Some(settings), Camera::Ready(source)) = (&self.settings, &self.camera) {
            self.analyzer = analyzer_for(settings, source.as_ref(), Some(&zone)).map(Arc::new);
            if let Err(e) = &self.analyzer {
                error!("Camera checks will report camera_fault: {e}");
            }
        }
        self.zone = Some(zone);
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
