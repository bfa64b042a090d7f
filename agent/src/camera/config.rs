//! `[camera]` in the agent config: which camera, how a check captures, the installer's
//! calibration and the privacy filter; `[camera.consent]` is the consent lock
//! (see [`consent`](super::consent)).
//!
//! ```toml
//! [camera]
//! source = "v4l2"                 # "v4l2" | "directory" | "simulator"
//! device = "/dev/video0"          # v4l2: a device path or an index
//! width = 640                     # v4l2 and simulator: capture size asked for
//! height = 480
//! frames = 5                      # frames per check, 2..=30
//! span = "4s"                     # over this long; at most 30 s
//! reference = "/etc/vaka/camera-reference.png"   # the empty bed at installation
//! bed_zone = [[0.20, 0.15], [0.75, 0.15], [0.75, 0.90], [0.20, 0.90]]
//! snapshot_filter = "blur"        # "plain" | "blur" | "silhouette"
//! ```
//! Validation is pure and collects every problem; that the reference file exists and is an
//! image is checked when the agent starts (and by `check-config`), not here.

use super::analysis::BedZone;
use super::consent::{Consent, RawConsent};
use super::snapshot::PrivacyFilter;
use super::synth::Scenario;
use crate::config::duration;
use jiff::SignedDuration;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Longest a check may keep the camera open, whatever the config says.
pub const MAX_SPAN: Duration = Duration::from_secs(30);
pub const DEFAULT_SPAN: Duration = Duration::from_secs(4);
pub const DEFAULT_FRAMES: usize = 5;
const DEFAULT_SIZE: (u32, u32) = (640, 480);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCamera {
    pub source: Option<String>,
    pub device: Option<RawDevice>,
    pub directory: Option<PathBuf>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frames: Option<i64>,
    pub span: Option<SignedDuration>,
    pub reference: Option<PathBuf>,
    pub bed_zone: Option<Vec<Vec<f64>>>,
    pub snapshot_filter: Option<PrivacyFilter>,
    /// Simulator only: `night_mix` (default) or one scenario such as `lying_still`.
    pub scenario: Option<String>,
    /// Simulator only.
    pub seed: Option<u64>,
    pub consent: Option<RawConsent>,
}

/// A V4L2 device as configured: an index or a path such as `/dev/video0`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RawDevice {
    Index(u32),
    Path(PathBuf),
}

/// Which camera a check opens.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSettings {
    V4l2 {
        device: RawDevice,
        width: u32,
        height: u32,
    },
    Directory {
        path: PathBuf,
    },
    Simulator {
        seed: u64,
        width: u32,
        height: u32,
        scenario: Option<Scenario>,
    },
}

/// The validated `[camera]` section.
#[derive(Debug, Clone)]
pub struct CameraSettings {
    pub source: SourceSettings,
    pub frames: usize,
    /// The frames of a check are spread over this span (capped by the consent window's end).
    pub span: Duration,
    /// The empty-bed reference frame; `None` only for the simulator, which brings its own.
    pub reference: Option<PathBuf>,
    /// `None` only for the simulator, which brings its own.
    pub bed_zone: Option<BedZone>,
    pub snapshot_filter: PrivacyFilter,
    pub consent: Consent,
}

impl CameraSettings {
    /// A simulated camera with a fixed or mixed scenario, consent given by `consent`.
    pub fn simulated(seed: u64, scenario: Option<Scenario>, consent: Consent) -> Self {
        CameraSettings {
            source: SourceSettings::Simulator {
                seed,
                width: 160,
                height: 120,
                scenario,
            },
            frames: DEFAULT_FRAMES,
            span: Duration::from_millis(500),
            reference: None,
            bed_zone: None,
            snapshot_filter: PrivacyFilter::default(),
            consent,
        }
    }

    pub fn summary(&self) -> String {
        let source = match &self.source {
            SourceSettings::V4l2 {
                device,
                width,
                height,
            } => {
                format!("V4L2 {} at {width}×{height}", device_name(device))
            }
            SourceSettings::Directory { path } => format!("recorded frames in {}", path.display()),
            SourceSettings::Simulator { seed, .. } => format!("simulated (seed {seed})"),
        };
        let windows: Vec<String> = self
            .consent
            .windows()
            .iter()
            .map(ToString::to_string)
            .collect();
        format!(
            "camera {source}, {} frames over {:?}, consent {}",
            self.frames,
            self.span,
            if self.consent.record().is_some() {
                windows.join(", ")
            } else {
                "none".into()
            }
        )
    }
}

pub fn device_name(device: &RawDevice) -> String {
    match device {
        RawDevice::Index(i) => format!("camera {i}"),
        RawDevice::Path(p) => p.display().to_string(),
    }
}

fn scenario(name: &str) -> Option<Option<Scenario>> {
    Some(Some(match name {
        "night_mix" => return Some(None),
        "lying_still" => Scenario::LyingStill,
        "turning" => Scenario::Turning,
        "sitting_up" => Scenario::SittingUp,
        "bed_empty" => Scenario::BedEmpty,
        "up_in_room" => Scenario::UpInRoom,
        "lights_on" => Scenario::LightsOn,
        "lens_covered" => Scenario::LensCovered,
        "unplugged" => Scenario::Unplugged,
        _ => return None,
    }))
}

impl RawCamera {
    /// Every problem of the section, each naming its field, or the settings.
    pub fn validate(&self, problems: &mut Vec<String>) -> Option<CameraSettings> {
        let before = problems.len();
        let size = |problems: &mut Vec<String>| {
            let (w, h) = (
                self.width.unwrap_or(DEFAULT_SIZE.0),
                self.height.unwrap_or(DEFAULT_SIZE.1),
            );
            if !(32..=4096).contains(&w) || !(24..=4096).contains(&h) {
                problems.push(format!(
                    "camera.width/height: {w}×{h} must be between 32×24 and 4096×4096"
                ));
            }
            (w, h)
        };
        let kind = self.source.as_deref().unwrap_or("v4l2");
        let source = match kind {
            "v4l2" => {
                if !cfg!(feature = "camera-v4l2") {
                    problems.push(
                        "camera.source: \"v4l2\" needs an agent built with the cargo feature \
                         camera-v4l2 (this one was built without it)"
                            .into(),
                    );
                }
                let (width, height) = size(problems);
                let device = self.device.clone().unwrap_or(RawDevice::Index(0));
                Some(SourceSettings::V4l2 {
                    device,
                    width,
                    height,
                })
            }
            "directory" => match &self.directory {
                Some(path) => Some(SourceSettings::Directory { path: path.clone() }),
                None => {
                    problems.push(
                        "camera.directory: required with source = \"directory\" (the folder of \
                         recorded frames)"
                            .into(),
                    );
                    None
                }
            },
            "simulator" => {
                let (width, height) = size(problems);
                let scenario = match self.scenario.as_deref() {
                    None => None,
                    Some(name) => match scenario(name) {
                        Some(s) => s,
                        None => {
                            problems.push(format!(
                                "camera.scenario: {name:?} is not one of night_mix, lying_still, \
                                 turning, sitting_up, bed_empty, up_in_room, lights_on, \
                                 lens_covered, unplugged"
                            ));
                            None
                        }
                    },
                };
                Some(SourceSettings::Simulator {
                    seed: self.seed.unwrap_or(1),
                    width,
                    height,
                    scenario,
                })
            }
            other => {
                problems.push(format!(
                    "camera.source: {other:?} is not one of \"v4l2\", \"directory\", \"simulator\""
                ));
                None
            }
        };
        let simulated = matches!(source, Some(SourceSettings::Simulator { .. }));
        if !simulated && (self.scenario.is_some() || self.seed.is_some()) {
            problems.push("camera.scenario/seed: only for source = \"simulator\"".into());
        }

        let frames = match self.frames {
            None => DEFAULT_FRAMES,
            Some(n @ 2..=30) => n as usize,
            Some(n) => {
                problems.push(format!("camera.frames: {n} must be between 2 and 30"));
                DEFAULT_FRAMES
            }
        };
        let span = duration(
            problems,
            "camera.span",
            self.span,
            DEFAULT_SPAN,
            Duration::ZERO,
            MAX_SPAN,
        );

        let bed_zone = match &self.bed_zone {
            None if simulated => None,
            None => {
                problems.push(
                    "camera.bed_zone: required: the bed's corners in picture coordinates 0..1, \
                     e.g. [[0.2, 0.15], [0.75, 0.15], [0.75, 0.9], [0.2, 0.9]]"
                        .into(),
                );
                None
            }
            Some(points) => {
                let pairs: Option<Vec<(f64, f64)>> = points
                    .iter()
                    .map(|p| match p.as_slice() {
                        [x, y] => Some((*x, *y)),
                        _ => None,
                    })
                    .collect();
                match pairs {
                    None => {
                        problems.push("camera.bed_zone: every corner is a pair [x, y]".into());
                        None
                    }
                    Some(pairs) => BedZone::new(&pairs)
                        .map_err(|e| problems.push(format!("camera.bed_zone: {e}")))
                        .ok(),
                }
            }
        };
        let reference = match &self.reference {
            None if !simulated => {
                problems.push(
                    "camera.reference: required: the empty-bed frame saved at installation \
                     (vaka-agent camera calibrate --save-reference)"
                        .into(),
                );
                None
            }
            other => other.clone(),
        };

        let consent = match &self.consent {
            None => Consent::absent(),
            Some(raw) => match raw.validate() {
                Ok(c) => c,
                Err(list) => {
                    problems.extend(list);
                    Consent::absent()
                }
            },
        };

        if problems.len() > before {
            return None;
        }
        Some(CameraSettings {
            source: source?,
            frames,
            span,
            reference,
            bed_zone,
            snapshot_filter: self.snapshot_filter.unwrap_or_default(),
            consent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CameraSettings, Vec<String>> {
        let raw: RawCamera = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let mut problems = Vec::new();
        raw.validate(&mut problems).ok_or(problems)
    }

    #[test]
    fn recorded_directory_camera_with_calibration_and_consent_is_accepted() {
        let c = parse(
            r#"
            source = "directory"
            directory = "/srv/frames"
            reference = "/etc/vaka/ref.png"
            bed_zone = [[0.2, 0.15], [0.75, 0.15], [0.75, 0.9], [0.2, 0.9]]
            span = "6s"
            frames = 4
            snapshot_filter = "silhouette"
            [consent]
            windows = ["21:00-07:00"]
            [consent.record]
            given = 2026-09-14
            basis = "samtycke"
            "#,
        )
        .unwrap();
        assert_eq!(
            c.source,
            SourceSettings::Directory {
                path: "/srv/frames".into()
            }
        );
        assert_eq!((c.frames, c.span), (4, Duration::from_secs(6)));
        assert_eq!(c.snapshot_filter, PrivacyFilter::Silhouette);
        assert!(c.consent.record().is_some());
    }

    #[test]
    fn every_camera_problem_is_reported_at_once() {
        let problems = parse(
            r#"
            source = "directory"
            span = "45s"
            frames = 1
            bed_zone = [[0.2, 0.2], [0.3]]
            scenario = "lying_still"
            [consent]
            windows = ["25:00-07:00"]
            "#,
        )
        .unwrap_err();
        let text = problems.join("\n");
        for needle in [
            "camera.directory",
            "camera.span",
            "camera.frames",
            "camera.bed_zone",
            "camera.reference",
            "camera.scenario",
            "camera.consent.windows[0]",
            "camera.consent.record",
        ] {
            assert!(text.contains(needle), "no {needle} in:\n{text}");
        }
    }

    #[test]
    fn a_check_never_spans_more_than_thirty_seconds() {
        assert!(parse("source = \"simulator\"\nspan = \"30s\"").is_ok());
        let problems = parse("source = \"simulator\"\nspan = \"31s\"").unwrap_err();
        assert!(problems[0].contains("camera.span"), "{problems:?}");
    }

    #[test]
    fn camera_without_consent_section_refuses_every_check() {
        let c = parse("source = \"simulator\"").unwrap();
        assert!(c.consent.record().is_none());
    }

    #[test]
    fn v4l2_source_without_the_feature_is_a_config_problem() {
        let result = parse(
            r#"
            device = "/dev/video0"
            reference = "/etc/vaka/ref.png"
            bed_zone = [[0.2, 0.15], [0.75, 0.15], [0.75, 0.9], [0.2, 0.9]]
            "#,
        );
        if cfg!(feature = "camera-v4l2") {
            assert!(result.is_ok(), "{result:?}");
        } else {
            assert!(result.unwrap_err()[0].contains("camera-v4l2"));
        }
    }
}
