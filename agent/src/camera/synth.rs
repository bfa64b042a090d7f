//! Synthetic night-camera frame sequences with ground truth.
//!
//! Tests, benchmarks and installers' dry runs need frames without a camera. This module draws
//! a dark bedroom as an IR camera sees it from the ceiling corner: a floor with a gradient, a
//! night stand, a bed with a duvet and a pillow, and a person in one of a few situations. Each
//! [`Sequence`] carries what the analysis gets at a real check (an empty-bed reference frame
//! taken "at installation", the installer's bed zone in normalised coordinates, a few frames)
//! and the verdict a careful person would give ([`Scenario::truth`]).
//!
//! Invariants:
//! - Deterministic: the same scenario, seed and size give the same pixels on every platform
//!   and every version of the dependencies (the generator is a local SplitMix64, not `rand`).
//! - Resolution independent: the scene is described in normalised coordinates, so a seed
//!   gives the same room at 160×120 as at 640×480.
//! - Not trivially separable: room layout, bed position, exposure, sensor noise, hot pixels,
//!   figure size and contrast, duvet left rumpled in an empty bed and a small camera shake all
//!   vary with the seed. The figure under the duvet can be faint.
//!
//! Nothing here touches the disk or a camera.

use image::GrayImage;
use vaka_protocol::kinds::Verdict;

/// What happens in front of the camera during one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// Asleep on the back or side; only breathing moves.
    LyingStill,
    /// Turns over in bed during the check.
    Turning,
    /// Sits up in bed during the check.
    SittingUp,
    /// The bed is empty (duvet possibly thrown back); nobody in view.
    BedEmpty,
    /// The bed is empty and the person walks about the room.
    UpInRoom,
    /// The room light is switched on part-way through the check.
    LightsOn,
    /// Something covers the lens: near black or a uniform grey.
    LensCovered,
    /// No frames, all-zero frames, or frames that turn to zero part-way.
    Unplugged,
}

impl Scenario {
    /// Every scenario, in the order [`mixed_set`] cycles through them.
    pub const ALL: [Scenario; 8] = [
        Scenario::LyingStill,
        Scenario::Turning,
        Scenario::SittingUp,
        Scenario::BedEmpty,
        Scenario::UpInRoom,
        Scenario::LightsOn,
        Scenario::LensCovered,
        Scenario::Unplugged,
    ];

    /// The verdict a careful person looking at the frames would give.
    ///
    /// A light switched on at night means someone is up or has come in; whether the person is
    /// in bed cannot be told against a reference taken in the dark, so a person should look.
    pub fn truth(self) -> Verdict {
        match self {
            Scenario::LyingStill => Verdict::Resting,
            Scenario::Turning | Scenario::SittingUp => Verdict::MovingInBed,
            Scenario::BedEmpty | Scenario::UpInRoom => Verdict::NotInBed,
            Scenario::LightsOn => Verdict::Unclear,
            Scenario::LensCovered | Scenario::Unplugged => Verdict::CameraFault,
        }
    }
}

/// One generated check: what the analysis is given and what it should answer.
#[derive(Debug, Clone)]
pub struct Sequence {
    pub scenario: Scenario,
    pub seed: u64,
    /// The empty, made bed, as captured at installation (own noise, exposure and shake).
    pub reference: GrayImage,
    /// The installer's bed zone: corners in normalised image coordinates (0..1).
    pub zone: Vec<(f64, f64)>,
    /// The frames of the check (possibly none: an unplugged camera).
    pub frames: Vec<GrayImage>,
    /// [`Scenario::truth`] of `scenario`.
    pub truth: Verdict,
}

/// Generates one sequence of `scenario` at `width`×`height` from `seed`.
///
/// Sizes below 16×12 are raised to 16×12 so that the scene stays drawable.
pub fn generate(scenario: Scenario, seed: u64, width: u32, height: u32) -> Sequence {
    let (width, height) = (width.max(16), height.max(12));
    let mut rng = Rng::new(seed ^ (scenario as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let room = Room::random(&mut rng);
    let zone = room.zone(&mut rng);
    let frame_count = 5 + rng.below(6) as usize; // 5..=10
    let noise = rng.range(3.0, 9.0);

    let reference = render(&room, &Pose::None, false, &mut rng, width, height, noise, 1.0);
    let frames = check_frames(scenario, &room, &mut rng, (width, height), noise, frame_count);
    Sequence { scenario, seed, reference, zone, frames, truth: scenario.truth() }
}

/// One simulated bedroom seen by one fixed camera: the same room, bed zone and empty-bed
/// reference at every check, as in a real home. The simulated camera source draws its checks
/// here.
#[derive(Debug, Clone)]
pub struct Home {
    room: Room,
    zone: Vec<(f64, f64)>,
    noise: f64,
    reference: GrayImage,
    size: (u32, u32),
}

impl Home {
    /// The room of `seed` at `width`×`height` (raised to at least 16×12).
    pub fn new(seed: u64, width: u32, height: u32) -> Home {
        let size = (width.max(16), height.max(12));
        let mut rng = Rng::new(seed);
        let room = Room::random(&mut rng);
        let zone = room.zone(&mut rng);
        let noise = rng.range(3.0, 9.0);
        let reference = render(&room, &Pose::None, false, &mut rng, size.0, size.1, noise, 1.0);
        Home { room, zone, noise, reference, size }
    }

    /// The empty, made bed as captured at installation.
    pub fn reference(&self) -> &GrayImage {
        &self.reference
    }

    /// The installer's bed zone, normalised corners.
    pub fn zone(&self) -> &[(f64, f64)] {
        &self.zone
    }

    /// The frames of one check of `scenario` (`count` clamped to 3..=30; an unplugged camera
    /// may give fewer, or none).
    pub fn check(&self, scenario: Scenario, seed: u64, count: usize) -> Vec<GrayImage> {
        let mut rng = Rng::new(seed ^ (scenario as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        check_frames(scenario, &self.room, &mut rng, self.size, self.noise, count.clamp(3, 30))
    }
}

/// The frames of one check in `room`: exposure, poses, rendering, then what the scenario does
/// to the camera (light, cover, unplugging). `frame_count` is at least 3.
fn check_frames(
    scenario: Scenario,
    room: &Room,
    rng: &mut Rng,
    (width, height): (u32, u32),
    noise: f64,
    frame_count: usize,
) -> Vec<GrayImage> {
    let exposure = rng.range(0.9, 1.1);

    let poses = poses(scenario, room, rng, frame_count);
    let mut frames: Vec<GrayImage> = poses
        .iter()
        .map(|pose| render(room, pose, true, rng, width, height, noise, exposure))
        .collect();

    match scenario {
        Scenario::LightsOn => {
            let from = 1 + rng.below(frame_count as u32 - 2) as usize;
            let gain = rng.range(1.6, 2.5) as f32;
            let offset = rng.range(20.0, 50.0) as f32;
            for frame in frames.iter_mut().skip(from) {
                for p in frame.pixels_mut() {
                    p.0[0] = (f32::from(p.0[0]) * gain + offset).min(255.0) as u8;
                }
            }
        }
        Scenario::LensCovered => {
            let from = if rng.below(2) == 0 { 0 } else { 1 + rng.below(frame_count as u32 - 1) };
            let level =
                if rng.below(2) == 0 { rng.range(1.0, 10.0) } else { rng.range(20.0, 90.0) };
            let tilt = rng.range(-6.0, 6.0);
            for frame in frames.iter_mut().skip(from as usize) {
                *frame = covered(rng, width, height, level, tilt, noise * 0.5);
            }
        }
        Scenario::Unplugged => match rng.below(3) {
            0 => frames.clear(),
            1 => frames.iter_mut().for_each(|f| *f = GrayImage::new(width, height)),
            _ => {
                let from = 1 + rng.below(frame_count as u32 - 1) as usize;
                frames.iter_mut().skip(from).for_each(|f| *f = GrayImage::new(width, height));
            }
        },
        _ => {}
    }

    frames
}

/// `count` sequences cycling through [`Scenario::ALL`], seeds derived from `seed`.
pub fn mixed_set(count: usize, seed: u64, width: u32, height: u32) -> Vec<Sequence> {
    (0..count)
        .map(|i| {
            let scenario = Scenario::ALL[i % Scenario::ALL.len()];
            generate(scenario, seed.wrapping_add(i as u64 * 7919), width, height)
        })
        .collect()
}

/// Small deterministic generator (SplitMix64), so that sequences never change under us.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n.max(1))) >> 32) as u32
    }

    /// Two roughly normal samples (mean 0, deviation 1), each the sum of four uniform bytes.
    fn normal_pair(&mut self) -> (f32, f32) {
        let b = self.next_u64().to_le_bytes();
        let s = |b: &[u8]| b.iter().map(|&x| f32::from(x)).sum::<f32>();
        ((s(&b[..4]) - 510.0) / 147.8, (s(&b[4..]) - 510.0) / 147.8)
    }
}

/// The still parts of the scene, in normalised coordinates.
#[derive(Debug, Clone)]
struct Room {
    floor: f64,
    floor_gradient: f64,
    stand: Rect,
    stand_level: f64,
    bed: Rect,
    duvet: f64,
    fold_freq: f64,
    fold_phase: f64,
    fold_depth: f64,
    pillow: f64,
    /// Where the duvet lies rumpled or thrown back when the bed is empty: (ellipse, contrast).
    rumple: Option<(Ellipse, f64)>,
    /// Lateral offset of the sleeper from the bed's centre line and their size.
    lateral: f64,
    size: f64,
    body_contrast: f64,
    head_level: f64,
}

#[derive(Debug, Clone, Copy)]
struct Rect {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
}

impl Rect {
    fn contains(&self, x: f64, y: f64) -> bool {
        x >= self.x0 && x < self.x0 + self.w && y >= self.y0 && y < self.y0 + self.h
    }
}

#[derive(Debug, Clone, Copy)]
struct Ellipse {
    cx: f64,
    cy: f64,
    a: f64,
    b: f64,
}

impl Ellipse {
    /// 1 inside, falling to 0 over a soft rim, 0 outside.
    fn weight(&self, x: f64, y: f64) -> f64 {
        let dx = (x - self.cx) / self.a;
        let dy = (y - self.cy) / self.b;
        ((1.0 - (dx * dx + dy * dy)) / 0.3).clamp(0.0, 1.0)
    }
}

/// Where the person is in one frame.
#[derive(Debug, Clone)]
enum Pose {
    None,
    /// In bed: head and the bump under the duvet (or an uncovered torso when sitting).
    InBed {
        head: Ellipse,
        body: Ellipse,
        body_contrast: f64,
        head_level: f64,
    },
    /// Standing on the floor, seen from above.
    Standing {
        body: Ellipse,
        level: f64,
    },
}

impl Room {
    fn random(rng: &mut Rng) -> Self {
        let bed = Rect {
            x0: rng.range(0.18, 0.35),
            y0: rng.range(0.12, 0.22),
            w: rng.range(0.33, 0.45),
            h: rng.range(0.55, 0.68),
        };
        let stand_left = rng.below(2) == 0;
        let stand = Rect {
            x0: if stand_left { bed.x0 - 0.14 } else { bed.x0 + bed.w + 0.02 },
            y0: bed.y0,
            w: 0.12,
            h: 0.12,
        };
        let duvet = rng.range(70.0, 110.0);
        let rumple = if rng.below(3) == 0 {
            None
        } else {
            let e = Ellipse {
                cx: bed.x0 + bed.w * rng.range(0.3, 0.7),
                cy: bed.y0 + bed.h * rng.range(0.3, 0.7),
                a: bed.w * rng.range(0.15, 0.3),
                b: bed.h * rng.range(0.1, 0.2),
            };
            let sign = if rng.below(2) == 0 { -1.0 } else { 1.0 };
            Some((e, sign * rng.range(6.0, 20.0)))
        };
        let sign = if rng.below(10) < 7 { 1.0 } else { -1.0 };
        Room {
            floor: rng.range(25.0, 50.0),
            floor_gradient: rng.range(-12.0, 12.0),
            stand,
            stand_level: rng.range(12.0, 30.0),
            bed,
            duvet,
            fold_freq: rng.range(8.0, 20.0),
            fold_phase: rng.range(0.0, std::f64::consts::TAU),
            fold_depth: rng.range(2.0, 6.0),
            pillow: rng.range(15.0, 25.0),
            rumple,
            lateral: rng.range(-0.12, 0.12),
            size: rng.range(0.75, 1.1),
            body_contrast: sign * rng.range(14.0, 32.0),
            head_level: rng.range(140.0, 190.0),
        }
    }

    /// The installer's bed zone: the bed outline, a little larger, each corner off by a bit.
    fn zone(&self, rng: &mut Rng) -> Vec<(f64, f64)> {
        let m = 0.02;
        let (x0, y0) = (self.bed.x0 - m, self.bed.y0 - m);
        let (x1, y1) = (self.bed.x0 + self.bed.w + m, self.bed.y0 + self.bed.h + m);
        [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
            .iter()
            .map(|&(x, y)| {
                let jx = rng.range(-0.015, 0.015);
                let jy = rng.range(-0.015, 0.015);
                ((x + jx).clamp(0.0, 1.0), (y + jy).clamp(0.0, 1.0))
            })
            .collect()
    }

    /// The sleeper lying down, `turn` in -1..1 moves them across the bed.
    fn lying(&self, turn: f64, breath: f64) -> Pose {
        let bed = &self.bed;
        let cx = bed.x0 + bed.w * (0.5 + self.lateral + 0.2 * turn);
        let hr = bed.w * 0.11 * self.size;
        let head = Ellipse { cx, cy: bed.y0 + bed.h * 0.1, a: hr, b: hr * 1.2 };
        let b = bed.h * 0.33 * self.size;
        let body = Ellipse {
            cx,
            cy: head.cy + head.b + b * 0.9,
            a: bed.w * 0.22 * self.size * (1.0 - 0.35 * turn.abs()),
            b,
        };
        Pose::InBed {
            head,
            body,
            body_contrast: self.body_contrast * (1.0 + 0.08 * breath),
            head_level: self.head_level,
        }
    }

    /// Sitting up, `t` in 0..1 from lying to upright.
    fn sitting(&self, t: f64) -> Pose {
        let Pose::InBed { mut head, mut body, .. } = self.lying(0.0, 0.0) else {
            return Pose::None;
        };
        let bed = &self.bed;
        head.cy += bed.h * 0.22 * t;
        body.b *= 1.0 - 0.45 * t;
        body.cy = head.cy + head.b + body.b * 0.8;
        Pose::InBed {
            head,
            body,
            body_contrast: self.body_contrast + t * 40.0,
            head_level: self.head_level,
        }
    }
}

fn poses(scenario: Scenario, room: &Room, rng: &mut Rng, n: usize) -> Vec<Pose> {
    let phase = rng.range(0.0, std::f64::consts::TAU);
    let breath = |i: usize| (phase + i as f64 * 1.3).sin();
    match scenario {
        Scenario::LyingStill | Scenario::LensCovered | Scenario::Unplugged => {
            (0..n).map(|i| room.lying(0.0, breath(i))).collect()
        }
        Scenario::Turning => {
            // Still for a while, then rolls across the bed over a few frames.
            let start = rng.below(n as u32 / 2) as usize;
            let steps = 2 + rng.below(3) as usize;
            let dir = if rng.below(2) == 0 { -1.0 } else { 1.0 };
            (0..n)
                .map(|i| {
                    let t = (i.saturating_sub(start) as f64 / steps as f64).min(1.0);
                    room.lying(dir * (1.0 - 2.0 * t), breath(i))
                })
                .collect()
        }
        Scenario::SittingUp => {
            let start = rng.below(n as u32 / 2) as usize;
            let steps = 2 + rng.below(3) as usize;
            (0..n)
                .map(|i| room.sitting((i.saturating_sub(start) as f64 / steps as f64).min(1.0)))
                .collect()
        }
        Scenario::BedEmpty => (0..n).map(|_| Pose::None).collect(),
        Scenario::UpInRoom => {
            // Walks along the side of the bed away from the night stand, on the floor.
            let bed = &room.bed;
            let left = room.stand.x0 > bed.x0;
            let x = if left { bed.x0 - 0.1 } else { bed.x0 + bed.w + 0.1 };
            let mut y = rng.range(0.2, 0.5);
            let step = rng.range(0.03, 0.06);
            let level = rng.range(90.0, 150.0);
            (0..n)
                .map(|_| {
                    y += step;
                    let body = Ellipse { cx: x, cy: y.min(0.88), a: 0.05, b: 0.07 };
                    Pose::Standing { body, level }
                })
                .collect()
        }
        Scenario::LightsOn => {
            if rng.below(2) == 0 {
                (0..n).map(|i| room.lying(0.0, breath(i))).collect()
            } else {
                (0..n).map(|_| Pose::None).collect()
            }
        }
    }
}

/// Draws one frame of `room` with `pose`, sensor noise, hot pixels and a small shake. The
/// duvet lies as it was left (`rumple`) only in frames of a check, never in the reference.
#[allow(clippy::too_many_arguments)]
fn render(
    room: &Room,
    pose: &Pose,
    lived_in: bool,
    rng: &mut Rng,
    width: u32,
    height: u32,
    noise: f64,
    exposure: f64,
) -> GrayImage {
    // Shake: up to two pixels at 640×480, the same angle at any size.
    let shake_x = rng.range(-2.0, 2.0) / 640.0;
    let shake_y = rng.range(-2.0, 2.0) / 480.0;
    let empty_rumple = lived_in && matches!(pose, Pose::None | Pose::Standing { .. });
    let bed = &room.bed;
    let folds: Vec<f64> = (0..width)
        .map(|px| {
            let x = (f64::from(px) + 0.5) / f64::from(width) - shake_x;
            room.fold_depth
                * (room.fold_freq * (x - bed.x0) * std::f64::consts::TAU + room.fold_phase).sin()
        })
        .collect();
    let mut img = GrayImage::new(width, height);
    let noise = noise as f32;
    for py in 0..height {
        let y = (f64::from(py) + 0.5) / f64::from(height) - shake_y;
        let mut spare: Option<f32> = None;
        for px in 0..width {
            let x = (f64::from(px) + 0.5) / f64::from(width) - shake_x;
            let mut v = room.floor + room.floor_gradient * y;
            if room.stand.contains(x, y) {
                v = room.stand_level;
            }
            if bed.contains(x, y) {
                v = room.duvet + folds[px as usize];
                if y < bed.y0 + bed.h * 0.2 {
                    v += room.pillow;
                }
                if empty_rumple {
                    if let Some((e, c)) = room.rumple {
                        v += c * e.weight(x, y);
                    }
                }
            }
            match pose {
                Pose::None => {}
                Pose::InBed { head, body, body_contrast, head_level } => {
                    v += body_contrast * body.weight(x, y);
                    let w = head.weight(x, y);
                    v = v * (1.0 - w) + head_level * w;
                }
                Pose::Standing { body, level } => {
                    let w = body.weight(x, y);
                    v = v * (1.0 - w) + level * w;
                }
            }
            let n = match spare.take() {
                Some(n) => n,
                None => {
                    let (a, b) = rng.normal_pair();
                    spare = Some(b);
                    a
                }
            };
            let mut out = (v * exposure) as f32 + n * noise;
            // About one hot pixel in two thousand.
            if rng.next_u64() % 2000 == 0 {
                out = 255.0;
            }
            img.put_pixel(px, py, image::Luma([out.clamp(0.0, 255.0) as u8]));
        }
    }
    img
}

/// A covered lens: a uniform level with a gentle tilt and a little noise.
fn covered(rng: &mut Rng, width: u32, height: u32, level: f64, tilt: f64, noise: f64) -> GrayImage {
    GrayImage::from_fn(width, height, |px, _| {
        let x = f64::from(px) / f64::from(width);
        let v = level + tilt * x + f64::from(rng.normal_pair().0) * noise;
        image::Luma([v.clamp(0.0, 255.0) as u8])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_the_same_pixels() {
        let a = generate(Scenario::Turning, 42, 64, 48);
        let b = generate(Scenario::Turning, 42, 64, 48);
        assert_eq!(a.reference, b.reference);
        assert_eq!(a.frames, b.frames);
        assert_eq!(a.zone, b.zone);
    }

    #[test]
    fn different_seeds_give_different_rooms() {
        let a = generate(Scenario::LyingStill, 1, 64, 48);
        let b = generate(Scenario::LyingStill, 2, 64, 48);
        assert_ne!(a.reference, b.reference);
    }

    #[test]
    fn every_sequence_has_a_plausible_zone_and_frame_count() {
        for s in mixed_set(40, 9, 80, 60) {
            assert_eq!(s.zone.len(), 4);
            assert!(s
                .zone
                .iter()
                .all(|&(x, y)| (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y)));
            assert!(s.frames.len() <= 10);
            if s.scenario != Scenario::Unplugged {
                assert!(s.frames.len() >= 5, "{:?}", s.scenario);
            }
            assert!(s.frames.iter().all(|f| f.dimensions() == (80, 60)));
            assert_eq!(s.truth, s.scenario.truth());
        }
    }

    #[test]
    fn a_person_in_bed_changes_the_bed_against_the_reference() {
        let s = generate(Scenario::LyingStill, 5, 160, 120);
        let diff: u64 = s.frames[0]
            .pixels()
            .zip(s.reference.pixels())
            .map(|(a, b)| u64::from(a.0[0].abs_diff(b.0[0])))
            .sum();
        let empty = generate(Scenario::BedEmpty, 5, 160, 120);
        let empty_diff: u64 = empty.frames[0]
            .pixels()
            .zip(empty.reference.pixels())
            .map(|(a, b)| u64::from(a.0[0].abs_diff(b.0[0])))
            .sum();
        assert!(diff > empty_diff, "{diff} vs {empty_diff}");
    }
}
