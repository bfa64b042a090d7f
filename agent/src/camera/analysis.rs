//! The on-device verdict of a night camera check: frames in, verdict and figures out.
//!
//! An [`Analyzer`] is built once per camera from the empty-bed reference frame captured at
//! installation and the installer's [`BedZone`]; [`Analyzer::analyze`] then turns the few
//! frames of one check into an [`Analysis`] that maps one-to-one onto the `camera_check` event
//! body ([`Analysis::to_camera_check`]). It is a pure computation: no clock, no camera, no disk.
//!
//! How it decides, in order:
//! 1. **Sound frames.** No frames, a frame of another size than the reference, a frame too
//!    dark to see in, or a frame without structure (lens covered) → `camera_fault`.
//! 2. **Same light as the reference.** A jump in scene brightness between frames (a light
//!    switched on) or a scene far brighter or darker than the reference → `unclear`: the
//!    comparison with the dark reference no longer says anything, and someone is awake.
//! 3. **Presence**: the share of the bed zone that differs from the reference (after matching
//!    exposure on the rest of the room and allowing a pixel of camera shake; the median over
//!    the frames), and the share that differs *strongly*, as skin does and bedding does not.
//!    Little change, nothing strong, nothing moving → `not_in_bed`; a mild change the size of a
//!    turned-back duvet with nothing strong and nothing moving → `not_in_bed` too; a change
//!    between the thresholds → `unclear` (unless it is strong and moving: someone sitting up).
//! 4. **Motion** between consecutive frames inside the zone: in bed and moving →
//!    `moving_in_bed`. In bed and calm → `resting`, but only if part of the zone differs
//!    *strongly* from the reference (a head or an arm; a duvet left rumpled in an empty bed
//!    differs only mildly), else `unclear`. Much motion in the room around a calm bed → `unclear`.
//!
//! Safety invariant, above accuracy: `resting` is only returned for at least two frames that
//! are all sound, in the light of the reference, with presence clearly above its threshold,
//! part of the zone differing strongly (skin-like) and nothing moving around the bed. Every
//! doubt falls to `unclear` or `not_in_bed` (someone looks) rather than `resting` (nobody
//! looks). The thresholds are tuned on synthetic frames (`synth`), not yet on real footage.
//!
//! Frames are reduced internally to about 160 pixels wide by box averaging (which also averages
//! away sensor noise), then smoothed 3×3; the analysis of a 640×480 frame costs well under the
//! 2 ms goal (see `BENCHMARKS.md`, "Camera verdicts").

use image::GrayImage;
use thiserror::Error;
use vaka_protocol::kinds::{CameraCheck, Verdict};
use vaka_protocol::CheckId;

/// Width the analysis works at; frames are reduced by an integer factor to about this.
const WORK_WIDTH: u32 = 160;
/// Smallest reference frame accepted (the working image needs room for its blocks).
const MIN_SIZE: (u32, u32) = (32, 24);
/// Smallest bed zone, as a share of the picture: a bed smaller than this cannot be judged.
pub const MIN_ZONE_AREA: f64 = 0.01;

/// Mean brightness (0–255) below which a frame is too dark to see anything.
const DARK: f32 = 12.0;
/// Deviation of 8×8 block means below which a frame has no structure: a covered lens.
const UNIFORM: f32 = 5.0;
/// Brightness jump between consecutive frames that counts as a light switched on or off,
/// as a share of the darker frame's mean (and at least `LIGHT_JUMP_MIN` levels).
const LIGHT_JUMP: f32 = 0.25;
const LIGHT_JUMP_MIN: f32 = 12.0;
/// The frames' brightness against the reference's, outside which the reference is useless.
const LIGHT_RATIO: (f32, f32) = (0.6, 1.6);
/// Grey-level difference (working image, after exposure matching) that counts as "differs
/// from the empty bed", and as "moved" between two frames.
const PRESENCE_LEVEL: f32 = 10.0;
const MOTION_LEVEL: f32 = 8.0;
/// Share of the zone differing from the reference: at or below `ABSENT` nobody is in bed, at or
/// above `PRESENT` somebody is; in between nobody can tell.
const ABSENT: f64 = 0.03;
const PRESENT: f64 = 0.07;
/// Largest mild change (nothing skin-like, nothing moving) still read as bedding left behind.
const BEDDING: f64 = 0.10;
/// Grey-level difference from the empty bed that a rumpled duvet does not reach but a head,
/// face or arm of a person in bed does (IR light reflects from skin far more than from cloth).
const STRONG_LEVEL: f32 = 28.0;
/// Share of the zone that must differ by `STRONG_LEVEL` before `resting` may be said: without
/// it the difference may be bedding left as it fell, and nobody in it.
const CORE: f64 = 0.008;
/// Peak share of the zone that changed between two frames above which the person moves.
const MOVING: f64 = 0.02;
/// Peak share of the room outside the zone that changed, above which something else moves.
const ROOM_MOVING: f64 = 0.03;

/// A bed zone that has been checked: at least three corners, all inside the picture, and an
/// area of at least [`MIN_ZONE_AREA`].
#[derive(Debug, Clone, PartialEq)]
pub struct BedZone {
    points: Vec<(f64, f64)>,
}

/// Why an installer's bed zone was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ZoneError {
    #[error("a bed zone needs at least 3 corners, got {0}")]
    TooFewPoints(usize),
    #[error("corner {index} ({x}, {y}) is outside the picture (coordinates run 0.0–1.0)")]
    OutOfRange { index: usize, x: f64, y: f64 },
    #[error("the bed zone covers {area:.4} of the picture; at least {MIN_ZONE_AREA} is needed")]
    TooSmall { area: f64 },
}

impl BedZone {
    /// Checks the installer's corners (normalised: 0,0 top left, 1,1 bottom right).
    pub fn new(points: &[(f64, f64)]) -> Result<Self, ZoneError> {
        match BedZone::problems(points).into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(BedZone { points: points.to_vec() }),
        }
    }

    /// Every problem of the corners, in order (each corner outside the picture, then the
    /// area); empty when they make a zone. For editors that show them all at once.
    pub fn problems(points: &[(f64, f64)]) -> Vec<ZoneError> {
        if points.len() < 3 {
            return vec![ZoneError::TooFewPoints(points.len())];
        }
        // `contains` is false for NaN, so NaN and infinities are refused here too.
        let inside = |v: f64| (0.0..=1.0).contains(&v);
        let outside: Vec<ZoneError> = points
            .iter()
            .enumerate()
            .filter(|(_, &(x, y))| !inside(x) || !inside(y))
            .map(|(index, &(x, y))| ZoneError::OutOfRange { index, x, y })
            .collect();
        if !outside.is_empty() {
            return outside;
        }
        let area = BedZone { points: points.to_vec() }.area();
        if area < MIN_ZONE_AREA {
            return vec![ZoneError::TooSmall { area }];
        }
        Vec::new()
    }

    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }

    /// Area by the shoelace formula, as a share of the picture. A self-crossing outline can
    /// report less than it covers, never more, so it errs towards refusing.
    pub fn area(&self) -> f64 {
        let n = self.points.len();
        let twice: f64 = (0..n)
            .map(|i| {
                let (x0, y0) = self.points[i];
                let (x1, y1) = self.points[(i + 1) % n];
                x0 * y1 - x1 * y0
            })
            .sum();
        twice.abs() / 2.0
    }

    /// Even-odd point-in-polygon test in normalised coordinates.
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let mut inside = false;
        let n = self.points.len();
        let mut j = n - 1;
        for i in 0..n {
            let (xi, yi) = self.points[i];
            let (xj, yj) = self.points[j];
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            j = i;
        }
        inside
    }
}

/// Why an analyzer could not be set up. (Problems with the frames of a check are not errors:
/// they are the verdict `camera_fault`, with a [`Reason`].)
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AnalysisError {
    #[error("the reference frame is {0}×{1}; at least 32×24 is needed")]
    ReferenceTooSmall(u32, u32),
    #[error("the reference frame is unusable: {0}")]
    ReferenceUnusable(Reason),
    #[error("the bed zone covers too few pixels of a {0}×{1} frame")]
    ZoneTooFewPixels(u32, u32),
}

/// Why the analysis came to its verdict; for logs and the installer's `camera test`.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum Reason {
    #[error("no frames")]
    NoFrames,
    #[error("frame of {found:?} where the reference is {expected:?}")]
    SizeMismatch { expected: (u32, u32), found: (u32, u32) },
    #[error("too dark (mean brightness {0:.1})")]
    TooDark(f32),
    #[error("no structure in the picture (lens covered?), block deviation {0:.1}")]
    Uniform(f32),
    #[error("the light changed during the check")]
    LightChanged,
    #[error("the light differs from the reference (ratio {0:.2})")]
    LightDiffers(f32),
    #[error("presence in the bed is unsure")]
    PresenceUnsure,
    #[error("the bed differs from the reference only as bedding would")]
    BeddingOnly,
    #[error("the bed is calm but something moves in the room")]
    RoomMoving,
    #[error("person in bed, calm")]
    InBedCalm,
    #[error("person in bed, moving")]
    InBedMoving,
    #[error("bed empty")]
    BedEmpty,
}

/// The measured figures of one check; `None` where the frames did not allow the measurement.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Figures {
    /// Mean scene brightness 0–255 over all frames.
    pub brightness: Option<f64>,
    /// Peak share of the bed zone that changed between two consecutive frames.
    pub motion_in_zone: Option<f64>,
    /// Peak share of the room outside the zone that changed between two consecutive frames.
    pub motion_outside: Option<f64>,
    /// Share of the bed zone that differs from the empty-bed reference.
    pub presence: Option<f64>,
    /// Share of the bed zone that differs strongly (as skin does, not bedding).
    pub presence_strong: Option<f64>,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Analysis {
    pub verdict: Verdict,
    /// 0.0–1.0: how far the deciding figures are from their thresholds.
    pub confidence: f64,
    pub reason: Reason,
    pub figures: Figures,
}

impl Analysis {
    fn new(verdict: Verdict, confidence: f64, reason: Reason, figures: Figures) -> Self {
        Analysis { verdict, confidence: confidence.clamp(0.0, 1.0), reason, figures }
    }

    /// The `camera_check` event body for this outcome.
    pub fn to_camera_check(
        &self,
        check_id: Option<CheckId>,
        frames: u32,
        duration_ms: u32,
    ) -> CameraCheck {
        CameraCheck {
            check_id,
            verdict: self.verdict,
            refusal: None,
            confidence: self.confidence,
            detail: Some(self.reason.to_string()),
            frames,
            brightness: self.figures.brightness,
            motion_in_zone: self.figures.motion_in_zone,
            motion_outside: self.figures.motion_outside,
            presence: self.figures.presence,
            presence_strong: self.figures.presence_strong,
            duration_ms,
        }
    }
}

/// A grey image at working resolution, as floats.
#[derive(Debug, Clone)]
struct Work {
    w: usize,
    h: usize,
    px: Vec<f32>,
}

/// Checks frames of one camera against its empty-bed reference and bed zone.
#[derive(Debug, Clone)]
pub struct Analyzer {
    size: (u32, u32),
    factor: u32,
    reference: Work,
    /// Per working pixel: inside the bed zone (not shrunk: the shake tolerance of the
    /// comparison absorbs the bed's outline).
    in_zone: Vec<bool>,
    zone_pixels: usize,
    outside_pixels: usize,
    reference_outside_median: f32,
    reference_mean: f32,
}

impl Analyzer {
    /// Prepares the reference once; the frames of each check must have the reference's size.
    pub fn new(reference: &GrayImage, zone: &BedZone) -> Result<Self, AnalysisError> {
        let (w, h) = reference.dimensions();
        if w < MIN_SIZE.0 || h < MIN_SIZE.1 {
            return Err(AnalysisError::ReferenceTooSmall(w, h));
        }
        let factor = (w / WORK_WIDTH).max(1);
        let work = reduce(reference, factor);
        if let Some(reason) = unsound(&work) {
            return Err(AnalysisError::ReferenceUnusable(reason));
        }
        let in_zone: Vec<bool> = (0..work.h)
            .flat_map(|y| (0..work.w).map(move |x| (x, y)))
            .map(|(x, y)| {
                zone.contains((x as f64 + 0.5) / work.w as f64, (y as f64 + 0.5) / work.h as f64)
            })
            .collect();
        let zone_pixels = in_zone.iter().filter(|&&z| z).count();
        let outside_pixels = in_zone.len() - zone_pixels;
        if zone_pixels < 16 || outside_pixels < 16 {
            return Err(AnalysisError::ZoneTooFewPixels(w, h));
        }
        let reference_outside_median = median(&work, &in_zone, false);
        let reference_mean = mean(&work.px);
        Ok(Analyzer {
            size: (w, h),
            factor,
            reference: work,
            in_zone,
            zone_pixels,
            outside_pixels,
            reference_outside_median,
            reference_mean,
        })
    }

    /// The verdict for the frames of one check, in capture order.
    pub fn analyze(&self, frames: &[GrayImage]) -> Analysis {
        let fault = |reason, figures| Analysis::new(Verdict::CameraFault, 1.0, reason, figures);
        if frames.is_empty() {
            return fault(Reason::NoFrames, Figures::default());
        }
        if let Some(f) = frames.iter().find(|f| f.dimensions() != self.size) {
            let reason = Reason::SizeMismatch { expected: self.size, found: f.dimensions() };
            return fault(reason, Figures::default());
        }

        let works: Vec<Work> = frames.iter().map(|f| reduce(f, self.factor)).collect();
        let means: Vec<f32> = works.iter().map(|w| mean(&w.px)).collect();
        let brightness = f64::from(mean(&means));
        let mut figures = Figures { brightness: Some(brightness), ..Figures::default() };

        // 1. Sound frames.
        if let Some(reason) = works.iter().find_map(unsound) {
            return fault(reason, figures);
        }

        // 2. The light of the reference.
        for pair in means.windows(2) {
            let jump = (pair[1] - pair[0]).abs();
            if jump > LIGHT_JUMP_MIN.max(LIGHT_JUMP * pair[0].min(pair[1])) {
                return Analysis::new(Verdict::Unclear, 0.8, Reason::LightChanged, figures);
            }
        }
        let ratio = mean(&means) / self.reference_mean.max(1.0);
        if ratio < LIGHT_RATIO.0 || ratio > LIGHT_RATIO.1 {
            return Analysis::new(Verdict::Unclear, 0.7, Reason::LightDiffers(ratio), figures);
        }

        // Match each frame's exposure to the reference on the room outside the zone.
        let matched: Vec<Work> = works
            .into_iter()
            .map(|mut w| {
                let gain =
                    self.reference_outside_median / median(&w, &self.in_zone, false).max(1.0);
                w.px.iter_mut().for_each(|p| *p *= gain);
                w
            })
            .collect();

        // 3. Presence: each frame against the reference; the median frame decides, so a
        // figure that moves is not smeared and one odd frame does not.
        let zone = self.zone_pixels as f64;
        let (mut presences, mut cores): (Vec<f64>, Vec<f64>) = matched
            .iter()
            .map(|w| {
                let c = self.changed(w, &self.reference, PRESENCE_LEVEL, STRONG_LEVEL);
                (c.inside as f64 / zone, c.inside_strong as f64 / zone)
            })
            .unzip();
        presences.sort_by(f64::total_cmp);
        cores.sort_by(f64::total_cmp);
        let presence = presences[presences.len() / 2];
        let core = cores[cores.len() / 2];

        // 4. Motion: peak over consecutive pairs.
        let (mut motion_in, mut motion_out) = (0.0f64, 0.0f64);
        for pair in matched.windows(2) {
            let c = self.changed(&pair[1], &pair[0], MOTION_LEVEL, f32::MAX);
            motion_in = motion_in.max(c.inside as f64 / zone);
            motion_out = motion_out.max(c.outside as f64 / self.outside_pixels as f64);
        }
        figures.presence = Some(presence);
        figures.presence_strong = Some(core);
        if matched.len() > 1 {
            figures.motion_in_zone = Some(motion_in);
            figures.motion_outside = Some(motion_out);
        }

        decide(presence, core, motion_in, motion_out, matched.len() > 1, figures)
    }

    /// Counts pixels (inside, outside the zone) where `a` differs from `b` by more than
    /// `level`, allowing up to one pixel of camera shake: a pixel of `a` counts as unchanged
    /// when it lies within `level` of the range `b` spans over the 3×3 neighbourhood, so
    /// sub-pixel shifts of an edge (values between neighbours) are absorbed too.
    fn changed(&self, a: &Work, b: &Work, level: f32, strong: f32) -> Changes {
        let (w, h) = (a.w, a.h);
        let mut c = Changes::default();
        for y in 1..h.saturating_sub(1) {
            for x in 1..w.saturating_sub(1) {
                let i = y * w + x;
                let v = a.px[i];
                if (v - b.px[i]).abs() <= level {
                    continue;
                }
                let (mut lo, mut hi) = (f32::MAX, f32::MIN);
                for row in [i - w, i, i + w] {
                    for &n in &b.px[row - 1..=row + 1] {
                        lo = lo.min(n);
                        hi = hi.max(n);
                    }
                }
                if v < lo - level || v > hi + level {
                    if self.in_zone[i] {
                        c.inside += 1;
                        if v < lo - strong || v > hi + strong {
                            c.inside_strong += 1;
                        }
                    } else {
                        c.outside += 1;
                    }
                }
            }
        }
        c
    }
}

/// Pixel counts of one comparison.
#[derive(Debug, Clone, Copy, Default)]
struct Changes {
    inside: usize,
    outside: usize,
    /// Inside the zone and beyond the strong level.
    inside_strong: usize,
}

/// The decision once the frames are sound and the light matches: see the module notes.
fn decide(
    presence: f64,
    core: f64,
    motion_in: f64,
    motion_out: f64,
    has_motion: bool,
    figures: Figures,
) -> Analysis {
    // How far `x` lies beyond `threshold` towards `full`, 0..1.
    let margin =
        |x: f64, threshold: f64, full: f64| ((x - threshold) / (full - threshold)).clamp(0.0, 1.0);
    let strong = core >= CORE;
    let moving = has_motion && motion_in > MOVING;
    if presence <= ABSENT && !strong && !moving {
        let confidence = 0.6 + 0.4 * margin(ABSENT - presence, 0.0, ABSENT);
        return Analysis::new(Verdict::NotInBed, confidence, Reason::BedEmpty, figures);
    }
    if presence < BEDDING && core < CORE / 4.0 && has_motion && motion_in < MOVING / 4.0 {
        // A mild change the size of a turned-back duvet, nothing skin-like, nothing moving:
        // the bed as it was left. (A very faint sleeper lands here too; `not_in_bed` sends
        // someone, so the error is on the safe side.)
        return Analysis::new(Verdict::NotInBed, 0.55, Reason::BeddingOnly, figures);
    }
    if presence < PRESENT {
        if strong && moving {
            // Little of the bed changed, but what changed is skin-like and moves: sitting up.
            return Analysis::new(Verdict::MovingInBed, 0.55, Reason::InBedMoving, figures);
        }
        return Analysis::new(Verdict::Unclear, 0.5, Reason::PresenceUnsure, figures);
    }
    let sure = margin(presence, PRESENT, 2.0 * PRESENT);
    if moving {
        let confidence = 0.6 + 0.4 * sure.min(margin(motion_in, MOVING, 3.0 * MOVING));
        return Analysis::new(Verdict::MovingInBed, confidence, Reason::InBedMoving, figures);
    }
    if !has_motion || motion_out > ROOM_MOVING {
        // One frame cannot show calm; motion around a calm bed may be someone else.
        let reason = if has_motion { Reason::RoomMoving } else { Reason::PresenceUnsure };
        return Analysis::new(Verdict::Unclear, 0.5, reason, figures);
    }
    if !strong {
        // Calm and changed, but nothing as bright as skin: perhaps only the duvet as it fell.
        return Analysis::new(Verdict::Unclear, 0.5, Reason::BeddingOnly, figures);
    }
    let calm = 1.0 - (motion_in / MOVING).clamp(0.0, 1.0);
    Analysis::new(Verdict::Resting, 0.6 + 0.4 * sure.min(calm), Reason::InBedCalm, figures)
}

/// Box-reduces by `factor`, then smooths 3×3: averages away sensor noise and hot pixels.
fn reduce(img: &GrayImage, factor: u32) -> Work {
    let f = factor as usize;
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let (w, h) = (iw / f, ih / f);
    let raw = img.as_raw();
    let mut sums = vec![0u32; w * h];
    for y in 0..h * f {
        let row = &raw[y * iw..y * iw + w * f];
        let out = &mut sums[(y / f) * w..(y / f + 1) * w];
        for (o, chunk) in out.iter_mut().zip(row.chunks_exact(f)) {
            *o += chunk.iter().map(|&p| u32::from(p)).sum::<u32>();
        }
    }
    let scale = 1.0 / (f * f) as f32;
    let boxed: Vec<f32> = sums.iter().map(|&s| s as f32 * scale).collect();
    // 3×3 smoothing, separable; edges keep their boxed value.
    let mut horizontal = boxed.clone();
    for y in 0..h {
        for x in 1..w.saturating_sub(1) {
            let i = y * w + x;
            horizontal[i] = (boxed[i - 1] + boxed[i] + boxed[i + 1]) / 3.0;
        }
    }
    let mut px = horizontal.clone();
    for y in 1..h.saturating_sub(1) {
        for x in 0..w {
            let i = y * w + x;
            px[i] = (horizontal[i - w] + horizontal[i] + horizontal[i + w]) / 3.0;
        }
    }
    Work { w, h, px }
}

/// Why a working frame cannot be judged, if it cannot.
fn unsound(work: &Work) -> Option<Reason> {
    let m = mean(&work.px);
    if m < DARK {
        return Some(Reason::TooDark(m));
    }
    let blocks = block_means(work, 8);
    let b = mean(&blocks);
    let deviation =
        (blocks.iter().map(|v| (v - b) * (v - b)).sum::<f32>() / blocks.len().max(1) as f32).sqrt();
    if deviation < UNIFORM {
        return Some(Reason::Uniform(deviation));
    }
    None
}

fn block_means(work: &Work, size: usize) -> Vec<f32> {
    let (bw, bh) = ((work.w / size).max(1), (work.h / size).max(1));
    let mut sums = vec![0.0f32; bw * bh];
    let mut counts = vec![0u32; bw * bh];
    for y in 0..work.h {
        for x in 0..work.w {
            let b = (y / size).min(bh - 1) * bw + (x / size).min(bw - 1);
            sums[b] += work.px[y * work.w + x];
            counts[b] += 1;
        }
    }
    sums.iter().zip(&counts).map(|(s, &c)| s / c.max(1) as f32).collect()
}

fn mean(values: &[f32]) -> f32 {
    values.iter().sum::<f32>() / values.len().max(1) as f32
}

/// Median grey level of the pixels whose zone flag equals `in_zone` (histogram of 256 bins).
fn median(work: &Work, zone: &[bool], in_zone: bool) -> f32 {
    let mut hist = [0u32; 256];
    let mut count = 0u32;
    for (p, &z) in work.px.iter().zip(zone) {
        if z == in_zone {
            hist[p.clamp(0.0, 255.0) as usize] += 1;
            count += 1;
        }
    }
    let mut seen = 0;
    for (level, &n) in hist.iter().enumerate() {
        seen += n;
        if seen * 2 >= count {
            return level as f32 + 0.5;
        }
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::synth::{generate, Scenario};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever arrives from a camera (any size, any content, any count), the analysis
        /// answers with a verdict and a confidence in 0..1; it never panics.
        #[test]
        fn any_frames_give_a_verdict_with_confidence_in_range(
            frames in proptest::collection::vec((30u32..90, 20u32..70, any::<u8>(), any::<u8>()), 0..4),
        ) {
            let s = generate(Scenario::LyingStill, 3, 64, 48);
            let a = Analyzer::new(&s.reference, &BedZone::new(&s.zone).unwrap()).unwrap();
            let frames: Vec<GrayImage> = frames
                .iter()
                .map(|&(w, h, base, step)| {
                    let (w, h) = if base % 2 == 0 { (64, 48) } else { (w, h) };
                    GrayImage::from_fn(w, h, |x, y| {
                        image::Luma([base.wrapping_add(step.wrapping_mul((x ^ y) as u8))])
                    })
                })
                .collect();
            let out = a.analyze(&frames);
            prop_assert!((0.0..=1.0).contains(&out.confidence));
            if frames.is_empty() || frames.iter().any(|f| f.dimensions() != (64, 48)) {
                prop_assert_eq!(out.verdict, Verdict::CameraFault);
            }
        }

        /// The safety rule: `resting` sends nobody, so it must never be said of an empty bed,
        /// a room with the light switched on or a faulty camera, whatever the seed.
        #[test]
        fn nobody_in_bed_lights_on_or_a_faulty_camera_is_never_resting(seed in any::<u64>(), k in 0usize..5) {
            let scenario = [
                Scenario::BedEmpty,
                Scenario::UpInRoom,
                Scenario::LightsOn,
                Scenario::LensCovered,
                Scenario::Unplugged,
            ][k];
            let s = generate(scenario, seed, 160, 120);
            let a = Analyzer::new(&s.reference, &BedZone::new(&s.zone).unwrap()).unwrap();
            let out = a.analyze(&s.frames);
            prop_assert_ne!(out.verdict, Verdict::Resting, "{:?} seed {}: {:?}", scenario, seed, out);
        }
    }

    fn square() -> BedZone {
        BedZone::new(&[(0.2, 0.2), (0.7, 0.2), (0.7, 0.8), (0.2, 0.8)]).unwrap()
    }

    #[test]
    fn every_corner_outside_the_picture_is_listed_not_only_the_first() {
        let problems = BedZone::problems(&[(0.1, 0.1), (1.2, 0.1), (0.5, -0.3), (0.2, 0.9)]);
        assert_eq!(
            problems,
            [
                ZoneError::OutOfRange { index: 1, x: 1.2, y: 0.1 },
                ZoneError::OutOfRange { index: 2, x: 0.5, y: -0.3 }
            ]
        );
        assert!(BedZone::problems(square().points()).is_empty());
    }

    #[test]
    fn zone_with_two_corners_is_refused() {
        assert_eq!(BedZone::new(&[(0.1, 0.1), (0.5, 0.5)]), Err(ZoneError::TooFewPoints(2)));
    }

    #[test]
    fn zone_corner_outside_the_picture_is_refused_with_its_index() {
        let err = BedZone::new(&[(0.1, 0.1), (1.2, 0.1), (0.5, 0.9)]).unwrap_err();
        assert_eq!(err, ZoneError::OutOfRange { index: 1, x: 1.2, y: 0.1 });
        assert!(matches!(
            BedZone::new(&[(0.1, 0.1), (0.9, f64::NAN), (0.5, 0.9)]),
            Err(ZoneError::OutOfRange { index: 1, .. })
        ));
        assert!(matches!(
            BedZone::new(&[(-0.0001, 0.1), (0.9, 0.1), (0.5, 0.9)]),
            Err(ZoneError::OutOfRange { index: 0, .. })
        ));
    }

    #[test]
    fn zone_on_a_line_or_tiny_is_refused() {
        assert!(matches!(
            BedZone::new(&[(0.1, 0.1), (0.5, 0.5), (0.9, 0.9)]),
            Err(ZoneError::TooSmall { .. })
        ));
        assert!(matches!(
            BedZone::new(&[(0.5, 0.5), (0.55, 0.5), (0.55, 0.55), (0.5, 0.55)]),
            Err(ZoneError::TooSmall { .. })
        ));
    }

    #[test]
    fn zone_covering_the_whole_picture_is_accepted_and_contains_its_centre() {
        let zone = BedZone::new(&[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]).unwrap();
        assert!((zone.area() - 1.0).abs() < 1e-12);
        assert!(zone.contains(0.5, 0.5));
        assert!(square().contains(0.3, 0.5));
        assert!(!square().contains(0.8, 0.5));
    }

    #[test]
    fn zone_filling_every_pixel_cannot_be_analysed_for_lack_of_room_around_it() {
        let s = generate(Scenario::LyingStill, 1, 160, 120);
        let all = BedZone::new(&[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]).unwrap();
        assert_eq!(
            Analyzer::new(&s.reference, &all).unwrap_err(),
            AnalysisError::ZoneTooFewPixels(160, 120)
        );
    }

    #[test]
    fn tiny_or_black_reference_is_refused() {
        assert_eq!(
            Analyzer::new(&GrayImage::new(8, 8), &square()).unwrap_err(),
            AnalysisError::ReferenceTooSmall(8, 8)
        );
        assert!(matches!(
            Analyzer::new(&GrayImage::new(160, 120), &square()),
            Err(AnalysisError::ReferenceUnusable(Reason::TooDark(_)))
        ));
    }

    #[test]
    fn no_frames_is_a_camera_fault_not_a_panic() {
        let s = generate(Scenario::LyingStill, 2, 160, 120);
        let a = Analyzer::new(&s.reference, &BedZone::new(&s.zone).unwrap()).unwrap();
        let out = a.analyze(&[]);
        assert_eq!(out.verdict, Verdict::CameraFault);
        assert_eq!(out.reason, Reason::NoFrames);
        assert_eq!(out.figures, Figures::default());
    }

    #[test]
    fn frame_of_another_size_is_a_camera_fault_not_a_panic() {
        let s = generate(Scenario::LyingStill, 3, 160, 120);
        let a = Analyzer::new(&s.reference, &BedZone::new(&s.zone).unwrap()).unwrap();
        let mut frames = s.frames.clone();
        frames.push(GrayImage::new(161, 120));
        let out = a.analyze(&frames);
        assert_eq!(out.verdict, Verdict::CameraFault);
        assert_eq!(out.reason, Reason::SizeMismatch { expected: (160, 120), found: (161, 120) });
    }

    #[test]
    fn one_black_frame_among_good_ones_is_a_camera_fault() {
        let s = generate(Scenario::LyingStill, 4, 160, 120);
        let a = Analyzer::new(&s.reference, &BedZone::new(&s.zone).unwrap()).unwrap();
        let mut frames = s.frames.clone();
        frames[2] = GrayImage::new(160, 120);
        assert_eq!(a.analyze(&frames).verdict, Verdict::CameraFault);
    }

    #[test]
    fn a_single_sound_frame_of_a_sleeper_is_never_resting() {
        let s = generate(Scenario::LyingStill, 6, 160, 120);
        let a = Analyzer::new(&s.reference, &BedZone::new(&s.zone).unwrap()).unwrap();
        let out = a.analyze(&s.frames[..1]);
        assert_ne!(out.verdict, Verdict::Resting);
        assert_eq!(out.figures.motion_in_zone, None);
    }

    #[test]
    fn sleeper_is_resting_and_maps_onto_the_event_body() {
        let s = generate(Scenario::LyingStill, 7, 320, 240);
        let a = Analyzer::new(&s.reference, &BedZone::new(&s.zone).unwrap()).unwrap();
        let out = a.analyze(&s.frames);
        assert_eq!(out.verdict, Verdict::Resting, "{out:?}");
        let body = out.to_camera_check(Some(CheckId::new("c-1").unwrap()), 5, 4200);
        assert_eq!(body.check_id.as_ref().map(CheckId::as_str), Some("c-1"));
        assert_eq!(body.frames, 5);
        assert_eq!(body.detail.as_deref(), Some("person in bed, calm"));
        assert_eq!(body.verdict, Verdict::Resting);
        assert_eq!(body.brightness, out.figures.brightness);
        assert!((0.0..=1.0).contains(&body.confidence));
        assert_eq!(body.duration_ms, 4200);
    }

    #[test]
    fn reference_of_the_sleeper_themself_makes_the_bed_look_empty() {
        // Guards the direction of the comparison: presence is change against the empty bed.
        let s = generate(Scenario::LyingStill, 8, 160, 120);
        let a = Analyzer::new(&s.frames[0], &BedZone::new(&s.zone).unwrap()).unwrap();
        assert_eq!(a.analyze(&s.frames[1..]).verdict, Verdict::NotInBed);
    }
}
