//! The simulated camera: one synthetic bedroom ([`synth::Home`]) with a person who is mostly
//! asleep. For the demo and tests; it brings its own empty-bed reference and bed zone.
//!
//! Each [`open`](CameraSource::open) draws the next check: the scenario comes from the
//! configured [`Scenarios`] (a fixed one, for tests that need a known answer, or a seeded
//! night mix), and the frames are rendered as the check asks for them. An unplugged scenario
//! opens but gives no frames, like a camera that drops off the bus.

use super::{CameraSource, Capture, SourceError};
use crate::camera::synth::{Home, Scenario};
use image::GrayImage;

/// Which scenario each simulated check shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenarios {
    /// Always this one.
    Fixed(Scenario),
    /// A plausible night: mostly asleep, sometimes turning, now and then up or unclear.
    NightMix,
}

pub struct SimulatedCamera {
    home: Home,
    scenarios: Scenarios,
    frames_per_check: usize,
    seed: u64,
    checks: u64,
}

impl SimulatedCamera {
    pub fn new(
        seed: u64,
        (width, height): (u32, u32),
        frames_per_check: usize,
        scenarios: Scenarios,
    ) -> Self {
        SimulatedCamera {
            home: Home::new(seed, width, height),
            scenarios,
            frames_per_check,
            seed,
            checks: 0,
        }
    }

    fn next_scenario(&self, roll: u64) -> Scenario {
        match self.scenarios {
            Scenarios::Fixed(s) => s,
            Scenarios::NightMix => match roll % 100 {
                0..=59 => Scenario::LyingStill,
                60..=79 => Scenario::Turning,
                80..=84 => Scenario::SittingUp,
                85..=91 => Scenario::BedEmpty,
                92..=95 => Scenario::UpInRoom,
                96..=97 => Scenario::LightsOn,
                98 => Scenario::LensCovered,
                _ => Scenario::Unplugged,
            },
        }
    }
}

struct SimulatedCapture {
    frames: std::vec::IntoIter<GrayImage>,
    last: Option<GrayImage>,
    unplugged: bool,
}

impl Capture for SimulatedCapture {
    fn frame(&mut self) -> Result<GrayImage, SourceError> {
        match self.frames.next() {
            Some(f) => {
                self.last = Some(f.clone());
                Ok(f)
            }
            // Asked for more frames than the check drew: the scene holds still.
            None if !self.unplugged => self
                .last
                .clone()
                .ok_or_else(|| SourceError::Capture("the simulated camera drew no frame".into())),
            None => Err(SourceError::Capture(
                "no signal from the simulated camera".into(),
            )),
        }
    }
}

impl CameraSource for SimulatedCamera {
    fn open(&mut self) -> Result<Box<dyn Capture + '_>, SourceError> {
        self.checks += 1;
        let seed = self
            .seed
            .wrapping_mul(0x2545_F491_4F6C_DD1D)
            .wrapping_add(self.checks);
        let scenario = self.next_scenario(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7);
        let frames = self.home.check(scenario, seed, self.frames_per_check);
        let unplugged = scenario == Scenario::Unplugged;
        Ok(Box::new(SimulatedCapture {
            frames: frames.into_iter(),
            last: None,
            unplugged,
        }))
    }

    fn describe(&self) -> String {
        let (w, h) = self.home.reference().dimensions();
        let which = match self.scenarios {
            Scenarios::Fixed(s) => format!("always {s:?}"),
            Scenarios::NightMix => "a night mix".into(),
        };
        format!("simulated camera {w}×{h} (seed {}, {which})", self.seed)
    }

    fn own_calibration(&self) -> Option<(GrayImage, Vec<(f64, f64)>)> {
        Some((self.home.reference().clone(), self.home.zone().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::analysis::{Analyzer, BedZone};
    use vaka_protocol::kinds::Verdict;

    #[test]
    fn simulated_sleepers_are_judged_resting_against_each_cameras_own_reference() {
        // Twenty homes, ten checks of a sleeper each. In a few rooms the sleeper lies so faint
        // under the duvet that the analysis says `unclear` (someone looks): the safe side.
        let (mut resting, mut unsafe_other) = (0, 0);
        for seed in 1..=20 {
            let mut cam =
                SimulatedCamera::new(seed, (160, 120), 5, Scenarios::Fixed(Scenario::LyingStill));
            let (reference, zone) = cam.own_calibration().unwrap();
            let analyzer = Analyzer::new(&reference, &BedZone::new(&zone).unwrap()).unwrap();
            for _ in 0..10 {
                let mut capture = cam.open().unwrap();
                let frames: Vec<GrayImage> = (0..5).map(|_| capture.frame().unwrap()).collect();
                match analyzer.analyze(&frames).verdict {
                    Verdict::Resting => resting += 1,
                    Verdict::Unclear | Verdict::MovingInBed => {}
                    _ => unsafe_other += 1,
                }
            }
        }
        assert!(
            resting >= 170,
            "{resting} of 200 checks of a sleeper were resting"
        );
        assert_eq!(
            unsafe_other, 0,
            "a sleeper was judged out of bed or a fault"
        );
    }

    #[test]
    fn night_mix_is_mostly_asleep_but_not_only() {
        let cam = SimulatedCamera::new(1, (32, 24), 3, Scenarios::NightMix);
        let scenarios: Vec<Scenario> = (0..1000u64).map(|r| cam.next_scenario(r)).collect();
        let still = scenarios
            .iter()
            .filter(|s| **s == Scenario::LyingStill)
            .count();
        assert_eq!(still, 600);
        assert!(
            scenarios.contains(&Scenario::Unplugged) && scenarios.contains(&Scenario::BedEmpty)
        );
    }

    #[test]
    fn unplugged_camera_opens_but_gives_no_signal() {
        let mut cam = SimulatedCamera::new(1, (32, 24), 4, Scenarios::Fixed(Scenario::Unplugged));
        let mut errors = 0;
        for _ in 0..6 {
            let mut capture = cam.open().unwrap();
            let frames: Vec<_> = (0..4).map(|_| capture.frame()).collect();
            errors += frames.iter().filter(|f| f.is_err()).count();
        }
        // Some of the unplugged draws give no frames at all, the others all-black frames.
        assert!(errors > 0);
    }
}
