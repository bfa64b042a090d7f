//! Simulated sources: a plausible night in one home without any hardware.
//!
//! The pure [`Night`] decides what happens, from a seeded RNG and the simulated time it is
//! given; the shell ([`run`]) maps real time to simulated time with the `speed` factor and
//! offers every event to the outbox like a real source would. Same seed, same night.
//!
//! What happens (simulated time):
//! - a GPS position every 5 min around the home, and rarely a walk outside the safe area
//!   (`geofence_left`, then `geofence_returned` 10–30 min later);
//! - a camera check every 30 min, asked of the agent's camera service like any other check
//!   (so it goes through the consent lock and the real analysis; with the simulated camera
//!   the frames are synthetic);
//! - a dose every 4 h: `dose_due` → `dose_dispensed` → `dose_taken`, or `dose_missed` after
//!   the grace period; `low_stock` when four doses are left;
//! - rarely an `sos` or a `battery_low`.
//!
//! The first event (a position) comes half a second of *real* time after start, so a demo shows
//! something at once whatever the speed.

use crate::outbox::{NewEvent, OutboxHandle};
use crate::camera::service::{CheckRequest, Request as CameraRequest};
use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;
use tokio::sync::mpsc;
use vaka_protocol::kinds::{
    BatteryLow, BatterySource, Dose, GeofenceLeft, GeofenceReturned, LowStock, Position, Sos,
};
use vaka_protocol::EventBody;

/// Home position of the simulated person (Skellefteå).
const HOME: (f64, f64) = (64.7507, 20.9528);
const AREA: &str = "hemmet";
const MEDICATION: &str = "Waran 2,5 mg";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[allow(clippy::enum_variant_names)] // `DoseDue` is the event's name
enum Due {
    Position,
    CameraCheck,
    DoseDue,
    DoseDispensed { dose: u32 },
    DoseOutcome { dose: u32 },
    GeofenceReturned,
    Rare,
}

/// What the simulated night makes happen.
#[derive(Debug, Clone, PartialEq)]
pub enum Happening {
    /// An event for the outbox.
    Event(EventBody),
    /// The device runs a camera check of its own (no check id from the hub).
    CameraCheck,
}

pub struct Night {
    rng: StdRng,
    /// When each scheduled thing is due, in simulated time since start.
    queue: BinaryHeap<Reverse<(SignedDuration, Due)>>,
    doses_left: u32,
    outside: bool,
}

fn minutes(m: i64) -> SignedDuration {
    SignedDuration::from_mins(m)
}

impl Night {
    pub fn new(seed: u64, first: SignedDuration) -> Night {
        Night::with_doses(seed, first, true)
    }

    /// A night whose doses come from elsewhere when `doses` is false: a home with a
    /// `[dispenser]` (e.g. the simulated dispenser, whose doses go through the real dose
    /// book) must not get a second, made-up stream of dose events.
    pub fn with_doses(seed: u64, first: SignedDuration, doses: bool) -> Night {
        let mut queue = BinaryHeap::new();
        queue.push(Reverse((first, Due::Position)));
        queue.push(Reverse((first + SignedDuration::from_secs(1), Due::CameraCheck)));
        if doses {
            queue.push(Reverse((minutes(20), Due::DoseDue)));
        }
        queue.push(Reverse((minutes(30), Due::Rare)));
        Night { rng: StdRng::seed_from_u64(seed), queue, doses_left: 14, outside: false }
    }

    /// Simulated time of the next scheduled event.
    pub fn next_due(&self) -> Option<SignedDuration> {
        self.queue.peek().map(|Reverse((t, _))| *t)
    }

    /// Everything due at simulated time `at`; `wall` stamps the bodies' own timestamps.
    pub fn handle(&mut self, at: SignedDuration, wall: Timestamp) -> Vec<Happening> {
        let mut out = Vec::new();
        let mut events = Vec::new();
        while let Some(Reverse((t, due))) = self.queue.peek().copied() {
            if t > at {
                break;
            }
            self.queue.pop();
            if due == Due::CameraCheck {
                self.schedule(t + minutes(30), Due::CameraCheck);
                out.extend(events.drain(..).map(Happening::Event));
                out.push(Happening::CameraCheck);
            } else {
                self.fire(t, due, wall, &mut events);
            }
        }
        out.extend(events.into_iter().map(Happening::Event));
        out
    }

    fn schedule(&mut self, at: SignedDuration, due: Due) {
        self.queue.push(Reverse((at, due)));
    }

    fn fire(&mut self, t: SignedDuration, due: Due, wall: Timestamp, out: &mut Vec<EventBody>) {
        match due {
            Due::Position => {
                let (lat, lon) = self.position();
                out.push(EventBody::Position(Position {
                    lat,
                    lon,
                    accuracy_m: Some(self.rng.random_range(3.0..25.0)),
                    speed_mps: Some(if self.outside {
                        self.rng.random_range(0.5..1.5)
                    } else {
                        0.0
                    }),
                }));
                if !self.outside && self.rng.random_bool(0.02) {
                    self.outside = true;
                    let (lat, lon) = self.position();
                    out.push(EventBody::GeofenceLeft(GeofenceLeft {
                        area: AREA.into(),
                        lat,
                        lon,
                        distance_outside_m: self.rng.random_range(20.0..150.0),
                        speed_mps: Some(self.rng.random_range(0.5..1.5)),
                        repeat: 0,
                    }));
                    let back = minutes(self.rng.random_range(10..30));
                    self.schedule(t + back, Due::GeofenceReturned);
                }
                self.schedule(t + minutes(5), Due::Position);
            }
            Due::GeofenceReturned => {
                self.outside = false;
                let (lat, lon) = self.position();
                out.push(EventBody::GeofenceReturned(GeofenceReturned {
                    area: AREA.into(),
                    lat,
                    lon,
                }));
            }
            Due::CameraCheck => {} // a request to the camera service, see `handle`
            Due::DoseDue => {
                let dose = self.doses_left;
                out.push(EventBody::DoseDue(self.dose(dose, wall)));
                self.schedule(t + minutes(1), Due::DoseDispensed { dose });
                self.schedule(t + minutes(240), Due::DoseDue);
            }
            Due::DoseDispensed { dose } => {
                out.push(EventBody::DoseDispensed(self.dose(dose, wall)));
                self.doses_left = self.doses_left.saturating_sub(1);
                if self.doses_left == 4 {
                    out.push(EventBody::LowStock(LowStock { doses_left: 4 }));
                }
                if self.doses_left == 0 {
                    self.doses_left = 14; // the pharmacy refilled it
                }
                let after =
                    if self.rng.random_bool(0.9) { self.rng.random_range(2..15) } else { 30 };
                self.schedule(t + minutes(after), Due::DoseOutcome { dose });
            }
            Due::DoseOutcome { dose } => {
                // 30 minutes is the grace period: a dose not taken by then is missed.
                let taken = self.rng.random_bool(0.9);
                let d = self.dose(dose, wall);
                out.push(if taken { EventBody::DoseTaken(d) } else { EventBody::DoseMissed(d) });
            }
            Due::Rare => {
                if self.rng.random_bool(0.03) {
                    let (lat, lon) = self.position();
                    out.push(EventBody::Sos(Sos { lat: Some(lat), lon: Some(lon), repeat: 0 }));
                }
                if self.rng.random_bool(0.02) {
                    out.push(EventBody::BatteryLow(BatteryLow {
                        source: BatterySource::Gps,
                        percent: Some(self.rng.random_range(5..15)),
                    }));
                }
                self.schedule(t + minutes(30), Due::Rare);
            }
        }
    }

    fn position(&mut self) -> (f64, f64) {
        // ~20 m of GPS jitter at home, a few hundred metres away when outside.
        let spread = if self.outside { 0.003 } else { 0.0002 };
        (
            HOME.0 + self.rng.random_range(-spread..spread),
            HOME.1 + self.rng.random_range(-spread..spread) * 2.0,
        )
    }

    fn dose(&self, dose: u32, wall: Timestamp) -> Dose {
        Dose { dose_id: format!("slot-{dose}"), medication: MEDICATION.into(), scheduled: wall }
    }
}

/// Runs the simulated home for ever, offering every event to the outbox.
pub async fn run(
    speed: f64,
    seed: u64,
    doses: bool,
    outbox: OutboxHandle,
    camera: mpsc::UnboundedSender<CameraRequest>,
) {
    let start = tokio::time::Instant::now();
    let first =
        SignedDuration::try_from(Duration::from_millis(500).mul_f64(speed)).unwrap_or_default();
    let mut night = Night::with_doses(seed, first, doses);
    let sim_now = |start: tokio::time::Instant| {
        SignedDuration::try_from(start.elapsed().mul_f64(speed)).unwrap_or(SignedDuration::MAX)
    };
    loop {
        let wait = night
            .next_due()
            .map(|due| {
                let ahead = due - sim_now(start);
                if ahead.is_negative() {
                    Duration::ZERO
                } else {
                    ahead.unsigned_abs().div_f64(speed)
                }
            })
            .unwrap_or(Duration::from_secs(60));
        tokio::time::sleep(wait).await;
        for happening in night.handle(sim_now(start), Timestamp::now()) {
            match happening {
                Happening::Event(body) => outbox.offer(NewEvent::new(body)).await,
                Happening::CameraCheck => {
                    let _ = camera.send(CameraRequest::Check(CheckRequest::own()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn night_of(seed: u64, hours: i64) -> Vec<Happening> {
        let mut night = Night::new(seed, SignedDuration::from_millis(500));
        let mut out = Vec::new();
        let wall: Timestamp = "2026-11-23T00:00:00Z".parse().unwrap();
        let mut t = SignedDuration::ZERO;
        while t < SignedDuration::from_hours(hours) {
            t += SignedDuration::from_secs(30);
            out.extend(night.handle(t, wall));
        }
        out
    }

    #[test]
    fn a_night_has_every_device_family_and_only_valid_events() {
        let happenings = night_of(7, 10);
        let checks = happenings.iter().filter(|h| **h == Happening::CameraCheck).count();
        let events: Vec<EventBody> = happenings
            .into_iter()
            .filter_map(|h| match h {
                Happening::Event(e) => Some(e),
                Happening::CameraCheck => None,
            })
            .collect();
        // One camera check every 30 minutes, asked of the camera service.
        assert!((19..=21).contains(&checks), "{checks} camera checks");
        for kind in ["position", "dose_due", "dose_dispensed"] {
            assert!(events.iter().any(|e| e.kind() == kind), "no {kind}");
        }
        assert!(events.iter().any(|e| matches!(e.kind(), "dose_taken" | "dose_missed")));
        for e in &events {
            e.validate().unwrap_or_else(|err| panic!("{e:?}: {err}"));
        }
        // ~120 positions in 10 hours.
        assert!(events.len() > 100 && events.len() < 400, "{}", events.len());
    }

    #[test]
    fn the_same_seed_replays_the_same_night() {
        assert_eq!(night_of(3, 6), night_of(3, 6));
        assert_ne!(night_of(3, 6), night_of(4, 6));
    }

    #[test]
    fn first_event_comes_right_after_start() {
        let mut night = Night::new(1, SignedDuration::from_millis(500));
        let wall = Timestamp::now();
        assert!(night.handle(SignedDuration::from_millis(400), wall).is_empty());
        assert!(matches!(
            &night.handle(SignedDuration::from_millis(500), wall)[0],
            Happening::Event(EventBody::Position(_))
        ));
    }
}
