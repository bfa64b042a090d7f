//! The installer's tools: `vaka-agent camera calibrate` and `vaka-agent camera test`.
//!
//! An installer sets the camera up in the person's home, with the person (or their
//! representative) present. `calibrate` captures one frame, draws the configured bed zone on
//! it, measures the picture and says whether the zone is plausible; it writes the annotated
//! picture where the installer asks (`--out`) and, with `--save-reference`, the clean frame as
//! the empty-bed reference the checks compare against (the path of `camera.reference`). These
//! are the only ways an image reaches a disk, each at the installer's explicit request.
//! `test` runs one full check locally and reports the verdict.
//!
//! Both respect the consent lock unless told that an installer is present (`--installer-present`),
//! because installation happens in daytime, outside the night's windows.

use super::analysis::{Analysis, Analyzer, BedZone};
use super::config::CameraSettings;
use super::consent::ConsentDecision;
use super::service::{analyzer_for, capture, open_source, zone_for};
use image::{GrayImage, Rgb, RgbImage};
use imageproc::drawing::draw_line_segment_mut;
use jiff::Timestamp;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thiserror::Error;

/// A bed zone smaller than this share of the picture is probably drawn wrong…
const ZONE_PLAUSIBLE_MIN: f64 = 0.03;
/// …and so is one larger than this (the camera should see the room around the bed too).
const ZONE_PLAUSIBLE_MAX: f64 = 0.8;
/// Mean brightness outside which the picture is too dark (IR light off?) or washed out.
const MEAN_PLAUSIBLE: (f64, f64) = (12.0, 220.0);

#[derive(Debug, Error)]
pub enum InstallerError {
    #[error("this config has no [camera] section")]
    NoCamera,
    #[error("{0}")]
    Consent(String),
    #[error("the camera gave no picture: {0}")]
    Capture(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error("{0}")]
    Calibration(String),
}

/// What `calibrate` measured.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationReport {
    pub camera: String,
    pub size: (u32, u32),
    pub mean: f64,
    pub min: u8,
    pub max: u8,
    /// 5th and 95th percentile of brightness.
    pub p5: u8,
    pub p95: u8,
    /// Share of the picture inside the bed zone; `None` without a zone (simulator).
    pub zone_area: Option<f64>,
    /// Why the set-up looks wrong; empty when it is plausible.
    pub problems: Vec<String>,
}

impl std::fmt::Display for CalibrationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        writeln!(f, "camera: {}", self.camera)?;
        writeln!(f, "picture: {}×{}", self.size.0, self.size.1)?;
        writeln!(
            f,
            "brightness: mean {:.1}, min {}, 5% {}, 95% {}, max {}",
            self.mean, self.min, self.p5, self.p95, self.max
        )?;
        if let Some(a) = self.zone_area {
            writeln!(f, "bed zone: {:.0} % of the picture", a * 100.0)?;
        }
        if self.problems.is_empty() {
            write!(f, "bed zone plausible: yes")
        } else {
            write!(
                f,
                "bed zone plausible: NO\n- {}",
                self.problems.join("\n- ")
            )
        }
    }
}

/// Captures one frame, writes it annotated to `out` (PNG), optionally saves it as the
/// reference, and reports. `now` and `installer_present` decide the consent lock.
pub fn calibrate(
    settings: &CameraSettings,
    out: &Path,
    save_reference: bool,
    now: Timestamp,
    installer_present: bool,
) -> Result<CalibrationReport, InstallerError> {
    consent(settings, now, installer_present)?;
    let mut source = open_source(settings).map_err(|e| InstallerError::Capture(e.to_string()))?;
    let camera = source.describe();
    let frame = capture(source.as_mut(), 1, Duration::ZERO)
        .map_err(InstallerError::Capture)?
        .pop()
        .ok_or_else(|| InstallerError::Capture("no frame".into()))?;
    let zone = zone_for(settings, source.as_ref(), None).ok().flatten();
    let report = measure(&camera, &frame, zone.as_ref());
    annotate(&frame, zone.as_ref())
        .save_with_format(out, image::ImageFormat::Png)
        .map_err(|source| InstallerError::Write {
            path: out.to_path_buf(),
            source,
        })?;
    if save_reference {
        let path = settings.reference.as_ref().ok_or_else(|| {
            InstallerError::Calibration("camera.reference names no file to save to".into())
        })?;
        frame
            .save_with_format(path, image::ImageFormat::Png)
            .map_err(|source| InstallerError::Write {
                path: path.clone(),
                source,
            })?;
    }
    Ok(report)
}

/// The verdict of one local check, with how long the camera was open.
#[derive(Debug, Clone)]
pub struct TestReport {
    pub camera: String,
    pub analysis: Analysis,
    pub frames: usize,
    pub open_for: Duration,
}

/// Runs one full check as the service would, and returns the verdict.
pub fn test_check(
    settings: &CameraSettings,
    now: Timestamp,
    installer_present: bool,
) -> Result<TestReport, InstallerError> {
    consent(settings, now, installer_present)?;
    let mut source = open_source(settings).map_err(|e| InstallerError::Capture(e.to_string()))?;
    let analyzer: Analyzer =
        analyzer_for(settings, source.as_ref(), None).map_err(InstallerError::Calibration)?;
    let started = Instant::now();
    let frames = capture(source.as_mut(), settings.frames, settings.span)
        .map_err(InstallerError::Capture)?;
    let open_for = started.elapsed();
    Ok(TestReport {
        camera: source.describe(),
        analysis: analyzer.analyze(&frames),
        frames: frames.len(),
        open_for,
    })
}

fn consent(
    settings: &CameraSettings,
    now: Timestamp,
    installer_present: bool,
) -> Result<(), InstallerError> {
    if installer_present {
        return Ok(());
    }
    match settings.consent.decide(now) {
        ConsentDecision::Allowed { .. } => Ok(()),
        ConsentDecision::Refused { reason } => Err(InstallerError::Consent(format!(
            "{} (an installer working with the person present may pass --installer-present)",
            settings.consent.explain(&reason)
        ))),
    }
}

/// Brightness statistics and plausibility of the set-up.
pub fn measure(camera: &str, frame: &GrayImage, zone: Option<&BedZone>) -> CalibrationReport {
    let mut histogram = [0u64; 256];
    for p in frame.pixels() {
        histogram[usize::from(p.0[0])] += 1;
    }
    let total: u64 = histogram.iter().sum();
    let sum: u64 = histogram
        .iter()
        .enumerate()
        .map(|(v, n)| v as u64 * n)
        .sum();
    let mean = if total == 0 {
        0.0
    } else {
        sum as f64 / total as f64
    };
    let percentile = |q: f64| -> u8 {
        let target = (total as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (v, n) in histogram.iter().enumerate() {
            seen += n;
            if seen >= target.max(1) {
                return v as u8;
            }
        }
        255
    };
    let min = histogram.iter().position(|&n| n > 0).unwrap_or(0) as u8;
    let max = histogram.iter().rposition(|&n| n > 0).unwrap_or(0) as u8;
    let mut problems = Vec::new();
    if mean < MEAN_PLAUSIBLE.0 {
        problems.push(format!(
            "the picture is too dark (mean {mean:.1}); is the IR light on?"
        ));
    } else if mean > MEAN_PLAUSIBLE.1 {
        problems.push(format!("the picture is washed out (mean {mean:.1})"));
    }
    if let Some(zone) = zone {
        let area = zone.area();
        if !(ZONE_PLAUSIBLE_MIN..=ZONE_PLAUSIBLE_MAX).contains(&area) {
            problems.push(format!(
                "the bed zone covers {:.0} % of the picture; a bed seen from the ceiling usually \
                 covers {:.0}–{:.0} %",
                area * 100.0,
                ZONE_PLAUSIBLE_MIN * 100.0,
                ZONE_PLAUSIBLE_MAX * 100.0
            ));
        }
        if let Err(e) = Analyzer::new(frame, zone) {
            problems.push(format!(
                "this frame cannot serve as the empty-bed reference: {e}"
            ));
        }
    } else {
        problems.push("no bed zone is configured (camera.bed_zone)".into());
    }
    CalibrationReport {
        camera: camera.to_string(),
        size: frame.dimensions(),
        mean,
        min,
        max,
        p5: percentile(0.05),
        p95: percentile(0.95),
        zone_area: zone.map(BedZone::area),
        problems,
    }
}

/// The frame in colour with the bed zone outlined in green, two pixels wide.
pub fn annotate(frame: &GrayImage, zone: Option<&BedZone>) -> RgbImage {
    let mut out = RgbImage::from_fn(frame.width(), frame.height(), |x, y| {
        let v = frame.get_pixel(x, y).0[0];
        Rgb([v, v, v])
    });
    if let Some(zone) = zone {
        let (w, h) = (frame.width() as f32, frame.height() as f32);
        let points: Vec<(f32, f32)> = zone
            .points()
            .iter()
            .map(|&(x, y)| (x as f32 * w, y as f32 * h))
            .collect();
        for (i, &a) in points.iter().enumerate() {
            let b = points[(i + 1) % points.len()];
            for (dx, dy) in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)] {
                draw_line_segment_mut(
                    &mut out,
                    (a.0 + dx, a.1 + dy),
                    (b.0 + dx, b.1 + dy),
                    Rgb([0, 255, 0]),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::consent::Consent;
    use crate::camera::synth::Scenario;

    fn simulated() -> CameraSettings {
        CameraSettings::simulated(4, Some(Scenario::LyingStill), Consent::absent())
    }

    #[test]
    fn calibration_writes_the_annotated_picture_only_where_asked_and_reports_plausibility() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("calibration.png");
        let report = calibrate(&simulated(), &out, false, Timestamp::now(), true).unwrap();
        assert!(report.problems.is_empty(), "{report}");
        assert!(report.zone_area.unwrap() > 0.1);
        let saved = image::open(&out).unwrap().into_rgb8();
        assert_eq!(saved.dimensions(), report.size);
        // The zone is drawn in green somewhere.
        assert!(saved.pixels().any(|p| p.0 == [0, 255, 0]));
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "nothing but the asked-for file is written");
        assert!(report.to_string().contains("bed zone plausible: yes"));
    }

    #[test]
    fn calibration_and_test_respect_the_consent_lock_unless_an_installer_is_present() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("c.png");
        let err = calibrate(&simulated(), &out, false, Timestamp::now(), false).unwrap_err();
        assert!(err.to_string().contains("--installer-present"), "{err}");
        assert!(!out.exists());
        assert!(test_check(&simulated(), Timestamp::now(), false).is_err());
        let report = test_check(&simulated(), Timestamp::now(), true).unwrap();
        assert_eq!(report.frames, 5);
    }

    #[test]
    fn dark_picture_and_tiny_zone_are_implausible() {
        let frame = GrayImage::from_pixel(64, 48, image::Luma([3]));
        let zone = BedZone::new(&[(0.1, 0.1), (0.22, 0.1), (0.22, 0.22), (0.1, 0.22)]).unwrap();
        let report = measure("test", &frame, Some(&zone));
        let text = report.problems.join("\n");
        assert!(
            text.contains("too dark") && text.contains("covers 1 %"),
            "{text}"
        );
        assert!(
            text.contains("cannot serve as the empty-bed reference"),
            "{text}"
        );
        assert_eq!(
            (report.min, report.max, report.p5, report.p95),
            (3, 3, 3, 3)
        );
    }
}
