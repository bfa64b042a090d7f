//! The camera service against a real outbox, a counting camera and a fixed clock.

use super::*;
use crate::camera::config::CameraSettings;
use crate::camera::consent::testing::{local, nights as consent};
use crate::camera::consent::ConsentDecision;
use crate::camera::source::simulated::{Scenarios, SimulatedCamera};
use crate::camera::source::testing::{CountingCamera, Counts};
use crate::camera::source::Capture;
use crate::camera::synth::Scenario;
use crate::outbox::{self, Limits, Outbox, Publish};
use jiff::SignedDuration;
use std::sync::Mutex;
use vaka_protocol::{DeviceId, Envelope};



/// A running service with its outbox, the camera's counters and a settable clock.
struct Rig {
    requests: mpsc::UnboundedSender<Request>,
    snapshots: mpsc::UnboundedReceiver<PictureMessage>,
    publishes: mpsc::UnboundedReceiver<Publish>,
    counts: Counts,
    now: Arc<Mutex<Timestamp>>,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn start(scenario: Scenario, settings: Option<CameraSettings>) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_in_flight: 1000,
            ack_timeout: Duration::from_secs(3600),
            max_bytes: 1 << 20,
        };
        let ob = Outbox::open(
            &dir.path().join("o.db"),
            DeviceId::new("home-1").unwrap(),
            limits,
        )
        .unwrap();
        let (handle, publishes, _thread) = outbox::spawn(ob).unwrap();
        handle.connected();
        let now = Arc::new(Mutex::new(local("2026-11-23T02:00")));
        let clock_now = now.clone();
        let clock: Clock = Arc::new(move || *clock_now.lock().unwrap());
        let (snap_tx, snapshots) = mpsc::unbounded_channel();
        let counts = Counts::default();
        let service = match settings {
            None => CameraService::new(None, clock, handle, snap_tx),
            Some(mut settings) => {
                settings.span = Duration::ZERO;
                let inner = SimulatedCamera::new(5, (160, 120), 5, Scenarios::Fixed(scenario));
                let source = CountingCamera {
                    inner,
                    counts: counts.clone(),
                };
                CameraService::with_source(&settings, Box::new(source), clock, handle, snap_tx)
            }
        }
        .with_data_dir(dir.path().to_path_buf());
        let (requests, rx) = mpsc::unbounded_channel();
        tokio::spawn(service.run(rx));
        Rig {
            requests,
            snapshots,
            publishes,
            counts,
            now,
            _dir: dir,
        }
    }

    fn with_consent(scenario: Scenario) -> Rig {
        Rig::start(
            scenario,
            Some(CameraSettings::simulated(5, Some(scenario), consent())),
        )
    }

    fn set_now(&self, t: Timestamp) {
        *self.now.lock().unwrap() = t;
    }

    fn check(&self, id: &str, deadline_in: SignedDuration) {
        let deadline = *self.now.lock().unwrap() + deadline_in;
        self.requests
            .send(Request::Check(CheckRequest {
                check_id: Some(CheckId::new(id).unwrap()),
                deadline: Some(deadline),
            }))
            .unwrap();
    }

    async fn next_check(&mut self) -> CameraCheck {
        let p = tokio::time::timeout(Duration::from_secs(30), self.publishes.recv())
            .await
            .expect("an event within 30 s")
            .unwrap();
        match Envelope::decode(&p.payload).unwrap().body {
            EventBody::CameraCheck(c) => c,
            other => panic!("not a camera check: {other:?}"),
        }
    }
}

#[tokio::test]
async fn check_in_a_consented_window_opens_the_camera_once_and_closes_it() {
    let mut rig = Rig::with_consent(Scenario::LyingStill);
    rig.check("c-1", SignedDuration::from_mins(5));
    let c = rig.next_check().await;
    assert_eq!(c.check_id.unwrap().as_str(), "c-1");
    assert_ne!(c.verdict, Verdict::RefusedOutsideConsent);
    assert_eq!(c.frames, 5);
    assert_eq!((rig.counts.opened(), rig.counts.open_now()), (1, 0));
}

/// Consent across both daylight-saving nights of 2026: the camera is opened exactly when the
/// lock allows it, and every refused request is answered `refused_outside_consent`.
#[tokio::test]
async fn camera_never_opens_outside_consent_on_daylight_saving_nights() {
    let mut rig = Rig::with_consent(Scenario::LyingStill);
    let c = consent();
    let mut instants = Vec::new();
    for night in ["2026-03-28T12:00:00Z", "2026-10-24T12:00:00Z"] {
        let start: Timestamp = night.parse().unwrap();
        // Every 20 minutes for a day, plus the seconds around each window edge.
        for i in 0..72 {
            instants.push(start + SignedDuration::from_mins(20 * i));
        }
    }
    for edge in [
        "2026-03-28T21:00",
        "2026-03-29T07:00",
        "2026-10-24T21:00",
        "2026-10-25T07:00",
    ] {
        let t = local(edge);
        for d in [-2, -1, 0, 1] {
            instants.push(t + SignedDuration::from_secs(d));
        }
    }
    let mut expected_opens = 0;
    for (i, t) in instants.iter().enumerate() {
        rig.set_now(*t);
        rig.check(&format!("dst-{i}"), SignedDuration::from_mins(5));
        let answer = rig.next_check().await;
        let allowed = matches!(c.decide(*t), ConsentDecision::Allowed { .. });
        if allowed {
            expected_opens += 1;
            assert_ne!(answer.verdict, Verdict::RefusedOutsideConsent, "at {t}");
        } else {
            assert_eq!(answer.verdict, Verdict::RefusedOutsideConsent, "at {t}");
            assert!(
                answer.refusal.is_some() && answer.frames == 0,
                "at {t}: {answer:?}"
            );
        }
        assert_eq!(
            rig.counts.opened(),
            expected_opens,
            "camera opened at {t} (allowed: {allowed})"
        );
    }
    // Spring night: 21:00–07:00 is 9 hours (27 of the 72 samples); autumn: 11 hours (33).
    assert!(expected_opens >= 27 + 33, "{expected_opens}");
    assert_eq!(rig.counts.open_now(), 0);
}

#[tokio::test]
async fn opted_out_night_is_refused_with_its_reason() {
    let mut rig = Rig::with_consent(Scenario::LyingStill);
    rig.set_now(local("2026-12-25T01:30"));
    rig.check("xmas", SignedDuration::from_mins(5));
    let c = rig.next_check().await;
    assert_eq!(c.verdict, Verdict::RefusedOutsideConsent);
    assert_eq!(c.refusal, Some(ConsentRefusal::OptedOutTonight));
    assert!(c.detail.unwrap().contains("2026-12-24"));
    assert_eq!(rig.counts.opened(), 0);
}

#[tokio::test]
async fn device_without_a_camera_answers_camera_fault() {
    let mut rig = Rig::start(Scenario::LyingStill, None);
    rig.check("c-1", SignedDuration::from_mins(5));
    let c = rig.next_check().await;
    assert_eq!(c.verdict, Verdict::CameraFault);
    assert!(c.detail.unwrap().contains("no camera is configured"));
}

#[tokio::test]
async fn missing_camera_device_is_a_camera_fault_not_a_crash() {
    let mut settings = CameraSettings::simulated(1, None, consent());
    settings.source = SourceSettings::Directory {
        path: "/nonexistent/vaka-frames".into(),
    };
    settings.reference = None;
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("ref.png");
    crate::camera::synth::Home::new(1, 160, 120)
        .reference()
        .save(&reference)
        .unwrap();
    settings.reference = Some(reference);
    settings.bed_zone =
        Some(BedZone::new(crate::camera::synth::Home::new(1, 160, 120).zone()).unwrap());
    let ob_dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_in_flight: 10,
        ack_timeout: Duration::from_secs(60),
        max_bytes: 1 << 20,
    };
    let ob = Outbox::open(
        &ob_dir.path().join("o.db"),
        DeviceId::new("home-1").unwrap(),
        limits,
    )
    .unwrap();
    let (handle, mut publishes, _t) = outbox::spawn(ob).unwrap();
    handle.connected();
    let clock: Clock = Arc::new(|| local("2026-11-23T02:00"));
    let (snap_tx, _snaps) = mpsc::unbounded_channel();
    let service = CameraService::new(Some(&settings), clock, handle, snap_tx);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(service.run(rx));
    for _ in 0..2 {
        tx.send(Request::Check(CheckRequest::own())).unwrap();
        let p = publishes.recv().await.unwrap();
        let EventBody::CameraCheck(c) = Envelope::decode(&p.payload).unwrap().body else {
            panic!()
        };
        assert_eq!(c.verdict, Verdict::CameraFault);
        assert!(c.detail.unwrap().contains("no camera found"));
    }
}

#[tokio::test]
async fn unplugged_camera_mid_check_is_a_camera_fault() {
    let mut rig = Rig::with_consent(Scenario::Unplugged);
    for i in 0..4 {
        rig.check(&format!("u-{i}"), SignedDuration::from_mins(5));
        let c = rig.next_check().await;
        assert_eq!(c.verdict, Verdict::CameraFault, "{c:?}");
    }
    assert_eq!(rig.counts.open_now(), 0);
}

#[tokio::test]
async fn one_privacy_filtered_snapshot_per_open_check_and_none_after_its_deadline() {
    let mut rig = Rig::with_consent(Scenario::LyingStill);
    rig.check("s-1", SignedDuration::from_mins(5));
    rig.next_check().await;
    let id = CheckId::new("s-1").unwrap();
    for _ in 0..2 {
        rig.requests
            .send(Request::Snapshot {
                check_id: id.clone(),
            })
            .unwrap();
    }
    let Some(PictureMessage::Snapshot(snap)) = rig.snapshots.recv().await else {
        panic!("no snapshot")
    };
    assert_eq!(snap.check_id, id);
    assert!(snap.width <= 160 && snap.height <= 120);
    assert_eq!(snap.filter, SnapshotFilter::Blur);
    let decoded =
        image::load_from_memory_with_format(&snap.jpeg, image::ImageFormat::Jpeg).unwrap();
    assert_eq!(
        (decoded.width(), decoded.height()),
        (snap.width, snap.height)
    );
    assert_eq!(decoded.color(), image::ColorType::L8, "greyscale");
    // The second request and one after the deadline give nothing; the camera opened for the
    // check and for the one snapshot only.
    rig.check("s-2", SignedDuration::from_secs(30));
    rig.next_check().await;
    rig.set_now(local("2026-11-23T02:01"));
    rig.requests
        .send(Request::Snapshot {
            check_id: CheckId::new("s-2").unwrap(),
        })
        .unwrap();
    rig.check("s-3", SignedDuration::from_mins(5));
    rig.next_check().await;
    assert!(rig.snapshots.try_recv().is_err());
    assert_eq!(rig.counts.opened(), 4);
    assert_eq!(rig.counts.open_now(), 0);
}

/// A camera whose capture never returns: the check is answered camera_fault when its span
/// plus the hang margin has passed, and later checks say the camera is stuck.
#[tokio::test]
async fn hung_camera_is_reported_and_does_not_stall_the_service() {
    struct Hung;
    struct HungCapture;
    impl Capture for HungCapture {
        fn frame(&mut self) -> Result<GrayImage, SourceError> {
            std::thread::sleep(Duration::from_secs(2));
            Err(SourceError::Capture("gave up".into()))
        }
    }
    impl CameraSource for Hung {
        fn open(&mut self) -> Result<Box<dyn Capture + '_>, SourceError> {
            Ok(Box::new(HungCapture))
        }
        fn describe(&self) -> String {
            "hung".into()
        }
        fn own_calibration(&self) -> Option<(GrayImage, Vec<(f64, f64)>)> {
            let home = crate::camera::synth::Home::new(1, 64, 48);
            Some((home.reference().clone(), home.zone().to_vec()))
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_in_flight: 10,
        ack_timeout: Duration::from_secs(60),
        max_bytes: 1 << 20,
    };
    let ob = Outbox::open(
        &dir.path().join("o.db"),
        DeviceId::new("home-1").unwrap(),
        limits,
    )
    .unwrap();
    let (handle, mut publishes, _t) = outbox::spawn(ob).unwrap();
    handle.connected();
    let mut settings = CameraSettings::simulated(1, None, consent());
    settings.span = Duration::ZERO;
    let clock: Clock = Arc::new(|| local("2026-11-23T02:00"));
    let (snap_tx, _snaps) = mpsc::unbounded_channel();
    let mut service = CameraService::with_source(&settings, Box::new(Hung), clock, handle, snap_tx);
    service.hang_margin = Duration::from_millis(200);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(service.run(rx));
    let mut answers = Vec::new();
    for _ in 0..2 {
        tx.send(Request::Check(CheckRequest::own())).unwrap();
        let p = publishes.recv().await.unwrap();
        let EventBody::CameraCheck(c) = Envelope::decode(&p.payload).unwrap().body else {
            panic!()
        };
        answers.push((c.verdict, c.detail.unwrap_or_default()));
    }
    assert_eq!(answers[0].0, Verdict::CameraFault);
    assert!(answers[0].1.contains("did not deliver"), "{answers:?}");
    assert!(answers[1].1.contains("hung since"), "{answers:?}");
}

#[test]
fn capture_discards_the_warm_up_frames_of_a_real_camera() {
    struct Settling(u8);
    struct SettlingCapture<'a>(&'a mut u8);
    impl Capture for SettlingCapture<'_> {
        fn frame(&mut self) -> Result<GrayImage, SourceError> {
            *self.0 += 1;
            Ok(GrayImage::from_pixel(4, 3, image::Luma([*self.0])))
        }
    }
    impl CameraSource for Settling {
        fn open(&mut self) -> Result<Box<dyn Capture + '_>, SourceError> {
            Ok(Box::new(SettlingCapture(&mut self.0)))
        }
        fn describe(&self) -> String {
            "settling".into()
        }
        fn warm_up_frames(&self) -> usize {
            2
        }
    }
    let frames = capture(&mut Settling(0), 3, Duration::ZERO).unwrap();
    let levels: Vec<u8> = frames.iter().map(|f| f.get_pixel(0, 0).0[0]).collect();
    assert_eq!(levels, [3, 4, 5]);
}

impl Rig {
    fn calibrate(&self, id: &str) {
        let request_id = CheckId::new(id).unwrap();
        self.requests.send(Request::Calibrate { request_id }).unwrap();
    }

    async fn calibration(&mut self) -> CalibrationMessage {
        match self.snapshots.recv().await {
            Some(PictureMessage::Calibration(c)) => c,
            other => panic!("no calibration answer: {other:?}"),
        }
    }
}

/// Daytime, outside the night's consented windows: installation time.
fn afternoon() -> Timestamp {
    local("2026-11-23T14:00")
}

#[tokio::test]
async fn calibration_outside_installer_mode_is_refused_and_the_camera_stays_closed() {
    let mut rig = Rig::with_consent(Scenario::LyingStill);
    rig.set_now(afternoon());
    rig.calibrate("r-1");
    let answer = rig.calibration().await;
    assert_eq!(answer.refusal, Some(CalibrationRefusal::InstallerModeOff));
    assert!(answer.detail.unwrap().contains("installer-mode"));
    assert!(answer.picture.is_none());

    // Installer mode that has run out is refused the same way.
    calibration::switch_on(rig._dir.path(), local("2026-11-23T13:30")).unwrap();
    rig.calibrate("r-2");
    let answer = rig.calibration().await;
    assert_eq!(answer.refusal, Some(CalibrationRefusal::InstallerModeOff));
    assert!(answer.detail.unwrap().contains("ended"));
    assert_eq!(rig.counts.opened(), 0, "the camera never opened");
}

#[tokio::test]
async fn calibration_in_installer_mode_sends_one_filtered_picture_with_the_zone_in_use() {
    let mut rig = Rig::with_consent(Scenario::LyingStill);
    rig.set_now(afternoon());
    calibration::switch_on(rig._dir.path(), local("2026-11-23T14:30")).unwrap();
    rig.calibrate("r-1");
    let answer = rig.calibration().await;
    assert_eq!(answer.request_id.as_str(), "r-1");
    let picture = answer.picture.expect("a picture");
    assert!(picture.width <= 160 && picture.height <= 120);
    assert_eq!(picture.filter, SnapshotFilter::Blur);
    let decoded =
        image::load_from_memory_with_format(&picture.jpeg, image::ImageFormat::Jpeg).unwrap();
    assert_eq!(decoded.color(), image::ColorType::L8, "greyscale");
    let zone = picture.bed_zone.expect("the simulator's own zone");
    assert!(zone.len() >= 3 && zone.iter().flatten().all(|c| (0.0..=1.0).contains(c)));
    assert_eq!((rig.counts.opened(), rig.counts.open_now()), (1, 0));
}

#[tokio::test]
async fn bed_zone_from_the_hub_is_kept_and_used_and_a_bad_one_changes_nothing() {
    let mut rig = Rig::with_consent(Scenario::LyingStill);
    rig.set_now(afternoon());
    calibration::switch_on(rig._dir.path(), local("2026-11-23T14:30")).unwrap();
    let new = vec![[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]];
    rig.requests.send(Request::SetBedZone { corners: vec![[0.1, 0.1], [0.2, 0.1]] }).unwrap();
    rig.requests.send(Request::SetBedZone { corners: new.clone() }).unwrap();
    rig.requests.send(Request::SetBedZone { corners: vec![[0.1, 0.1], [1.5, 0.1], [0.5, 0.9]] }).unwrap();
    rig.calibrate("r-1");
    let answer = rig.calibration().await;
    assert_eq!(answer.picture.unwrap().bed_zone, Some(new.clone()));
    let kept = calibration::saved_zone(rig._dir.path()).unwrap().unwrap();
    assert_eq!(kept.points(), &[(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)]);
    // The next check runs with it (a verdict, not a calibration fault).
    rig.set_now(local("2026-11-23T02:00"));
    rig.check("z-1", SignedDuration::from_mins(5));
    let check = rig.next_check().await;
    assert_ne!(check.verdict, vaka_protocol::kinds::Verdict::CameraFault, "{check:?}");
}
