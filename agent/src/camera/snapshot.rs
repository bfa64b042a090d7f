//! The one image staff may look at: a privacy-filtered snapshot, JPEG in memory.
//!
//! Staff may ask, within an open check, for one look at the person. What they get is made
//! here from a single frame: greyscale, reduced to at most [`MAX_WIDTH`]×[`MAX_HEIGHT`] with
//! its aspect kept, then optionally blurred or reduced to a silhouette of three grey levels
//! ([`PrivacyFilter`], chosen in the agent's config), and JPEG-encoded into a `Vec<u8>`.
//!
//! Invariants:
//! - The output never exceeds 160×120, whatever the input size; small frames are not enlarged.
//! - Nothing is written to disk: this module has no file IO, and the JPEG carries no metadata
//!   (no EXIF, no comment, no thumbnail) beyond what the baseline encoder writes.
//! - Pure: the same frame and filter give the same bytes.

use image::codecs::jpeg::JpegEncoder;
use image::{imageops, ExtendedColorType, GrayImage, Luma};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Largest snapshot sent to staff, in pixels.
pub const MAX_WIDTH: u32 = 160;
pub const MAX_HEIGHT: u32 = 120;
/// JPEG quality: enough to see a posture at 160×120, small enough for a slow uplink (≈ 3 kB).
const QUALITY: u8 = 70;
/// Gaussian blur, in snapshot pixels: faces and print unreadable, posture still visible.
const BLUR_SIGMA: f32 = 2.0;
/// Stronger blur before a silhouette, so that its edges are outlines and not texture.
const SILHOUETTE_SIGMA: f32 = 2.5;
/// The grey levels of a silhouette: background, middle, bright.
pub const SILHOUETTE_LEVELS: [u8; 3] = [0, 128, 255];

/// How much of the picture staff may see, from the agent's config (`snapshot_filter`).
///
/// The default is `blur`: the data-protection authority asks for the most privacy-friendly
/// technique that does the job, and a blurred 160×120 picture still shows whether someone lies
/// in bed and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrivacyFilter {
    /// Greyscale and low resolution only.
    Plain,
    /// Greyscale, low resolution and a Gaussian blur.
    #[default]
    Blur,
    /// Three grey levels of a strongly blurred picture: shapes without detail.
    Silhouette,
}

/// A JPEG snapshot held in memory only.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

impl std::fmt::Debug for Snapshot {
    /// Never prints the image bytes (they would end up in logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("jpeg_bytes", &self.jpeg.len())
            .finish()
    }
}

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("the frame is empty ({0}×{1})")]
    EmptyFrame(u32, u32),
    #[error("JPEG encoding failed: {0}")]
    Encode(#[from] image::ImageError),
}

/// The snapshot of `frame` under `filter`, JPEG-encoded in memory.
pub fn snapshot(frame: &GrayImage, filter: PrivacyFilter) -> Result<Snapshot, SnapshotError> {
    let small = filtered(frame, filter)?;
    let (width, height) = small.dimensions();
    let mut jpeg = Vec::with_capacity(4096);
    JpegEncoder::new_with_quality(&mut jpeg, QUALITY).encode(
        small.as_raw(),
        width,
        height,
        ExtendedColorType::L8,
    )?;
    Ok(Snapshot { jpeg, width, height })
}

/// The filtered picture before encoding: reduced to fit 160×120, then `filter` applied.
pub fn filtered(frame: &GrayImage, filter: PrivacyFilter) -> Result<GrayImage, SnapshotError> {
    let (w, h) = frame.dimensions();
    if w == 0 || h == 0 {
        return Err(SnapshotError::EmptyFrame(w, h));
    }
    let (nw, nh) = fit(w, h);
    let small = if (nw, nh) == (w, h) { frame.clone() } else { imageops::thumbnail(frame, nw, nh) };
    Ok(match filter {
        PrivacyFilter::Plain => small,
        PrivacyFilter::Blur => imageops::blur(&small, BLUR_SIGMA),
        PrivacyFilter::Silhouette => posterise(&imageops::blur(&small, SILHOUETTE_SIGMA)),
    })
}

/// The largest size within 160×120 with the aspect of `w`×`h` (never larger than the input,
/// never zero).
pub fn fit(w: u32, h: u32) -> (u32, u32) {
    if w <= MAX_WIDTH && h <= MAX_HEIGHT {
        return (w.max(1), h.max(1));
    }
    let (w64, h64) = (u64::from(w.max(1)), u64::from(h.max(1)));
    if w64 * u64::from(MAX_HEIGHT) >= h64 * u64::from(MAX_WIDTH) {
        // Wider than 4:3: the width is the limit.
        let nh = (h64 * u64::from(MAX_WIDTH) / w64).clamp(1, u64::from(MAX_HEIGHT));
        (MAX_WIDTH, nh as u32)
    } else {
        let nw = (w64 * u64::from(MAX_HEIGHT) / h64).clamp(1, u64::from(MAX_WIDTH));
        (nw as u32, MAX_HEIGHT)
    }
}

/// Three levels split at the picture's own mean ± half its deviation, so a dark IR picture
/// and a lit one both give a readable silhouette.
fn posterise(img: &GrayImage) -> GrayImage {
    let n = img.as_raw().len().max(1) as f64;
    let mean = img.as_raw().iter().map(|&p| f64::from(p)).sum::<f64>() / n;
    let var = img.as_raw().iter().map(|&p| (f64::from(p) - mean).powi(2)).sum::<f64>() / n;
    let half = var.sqrt() / 2.0;
    let mut out = img.clone();
    for p in out.pixels_mut() {
        let v = f64::from(p.0[0]);
        let level = if v < mean - half {
            SILHOUETTE_LEVELS[0]
        } else if v > mean + half {
            SILHOUETTE_LEVELS[2]
        } else {
            SILHOUETTE_LEVELS[1]
        };
        *p = Luma([level]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::synth::{generate, Scenario};
    use image::ImageFormat;
    use proptest::prelude::*;

    fn decode(s: &Snapshot) -> GrayImage {
        image::load_from_memory_with_format(&s.jpeg, ImageFormat::Jpeg).unwrap().to_luma8()
    }

    fn night_frame() -> GrayImage {
        generate(Scenario::LyingStill, 11, 640, 480).frames.remove(0)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        #[test]
        fn snapshot_never_exceeds_160_by_120_keeps_aspect_and_decodes_as_jpeg(
            w in 1u32..1400, h in 1u32..1100, filter_index in 0usize..3,
        ) {
            let filter = [PrivacyFilter::Plain, PrivacyFilter::Blur, PrivacyFilter::Silhouette][filter_index];
            let frame = GrayImage::from_fn(w, h, |x, y| Luma([((x * 7 + y * 13) % 256) as u8]));
            let s = snapshot(&frame, filter).unwrap();
            prop_assert!(s.width <= MAX_WIDTH && s.height <= MAX_HEIGHT, "{}×{}", s.width, s.height);
            prop_assert!(s.width >= 1 && s.height >= 1);
            prop_assert!(s.width <= w && s.height <= h, "enlarged");
            // Aspect within one output pixel.
            let skew = (i64::from(s.width) * i64::from(h) - i64::from(s.height) * i64::from(w)).abs();
            prop_assert!(skew <= i64::from(w.max(h)), "{}×{} from {w}×{h}", s.width, s.height);
            prop_assert_eq!(&s.jpeg[..3], &[0xFF, 0xD8, 0xFF]);
            prop_assert_eq!(decode(&s).dimensions(), (s.width, s.height));
        }
    }

    #[test]
    fn camera_frame_of_640_by_480_becomes_exactly_160_by_120() {
        let s = snapshot(&night_frame(), PrivacyFilter::Plain).unwrap();
        assert_eq!((s.width, s.height), (160, 120));
        assert!(s.jpeg.len() < 16_000, "{} bytes", s.jpeg.len());
    }

    #[test]
    fn silhouette_has_only_three_grey_levels_before_and_after_jpeg() {
        let frame = night_frame();
        let flat = filtered(&frame, PrivacyFilter::Silhouette).unwrap();
        let mut levels: Vec<u8> = flat.as_raw().clone();
        levels.sort_unstable();
        levels.dedup();
        assert!(
            levels.len() <= 3 && levels.iter().all(|l| SILHOUETTE_LEVELS.contains(l)),
            "{levels:?}"
        );
        assert!(levels.len() >= 2, "a bedroom is not one flat colour");

        let decoded = decode(&snapshot(&frame, PrivacyFilter::Silhouette).unwrap());
        let near = decoded
            .as_raw()
            .iter()
            .filter(|&&p| SILHOUETTE_LEVELS.iter().any(|&l| p.abs_diff(l) <= 16))
            .count();
        let share = near as f64 / decoded.as_raw().len() as f64;
        assert!(share >= 0.9, "only {share:.2} of pixels near a silhouette level");
    }

    #[test]
    fn blur_removes_fine_detail_that_plain_keeps() {
        let stripes =
            GrayImage::from_fn(160, 120, |x, _| Luma([if x % 2 == 0 { 40 } else { 200 }]));
        let deviation = |img: &GrayImage| {
            let n = img.as_raw().len() as f64;
            let m = img.as_raw().iter().map(|&p| f64::from(p)).sum::<f64>() / n;
            (img.as_raw().iter().map(|&p| (f64::from(p) - m).powi(2)).sum::<f64>() / n).sqrt()
        };
        let plain = filtered(&stripes, PrivacyFilter::Plain).unwrap();
        let blurred = filtered(&stripes, PrivacyFilter::Blur).unwrap();
        assert!(deviation(&plain) > 70.0);
        assert!(deviation(&blurred) < 10.0, "{}", deviation(&blurred));
    }

    #[test]
    fn empty_frame_is_an_error_not_a_panic() {
        assert!(matches!(
            snapshot(&GrayImage::new(0, 10), PrivacyFilter::Blur),
            Err(SnapshotError::EmptyFrame(0, 10))
        ));
    }

    #[test]
    fn filter_names_in_config_are_snake_case_and_default_is_blur() {
        #[derive(Deserialize)]
        struct C {
            f: PrivacyFilter,
        }
        let c: C = toml::from_str("f = \"silhouette\"").unwrap();
        assert_eq!(c.f, PrivacyFilter::Silhouette);
        assert!(toml::from_str::<C>("f = \"colour\"").is_err());
        assert_eq!(PrivacyFilter::default(), PrivacyFilter::Blur);
    }

    #[test]
    fn debug_output_of_a_snapshot_carries_no_image_bytes() {
        let s = snapshot(&night_frame(), PrivacyFilter::Blur).unwrap();
        let text = format!("{s:?}");
        assert!(text.contains("jpeg_bytes") && text.len() < 100, "{text}");
    }
}
