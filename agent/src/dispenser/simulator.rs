//! A simulated medication dispenser: the lines a bridge would write, over simulated time. Pure.
//!
//! It writes protocol lines as text ([`DispenserLine::render`]), so a simulated dispenser goes
//! through the same parser and [`DoseBook`](super::DoseBook) as a real one. Same seed and start,
//! same lines. The shell maps simulated time to real time with the configured `speed`, and
//! must then give the book the *simulated* time as `now` (the grace periods are in simulated
//! time too).
//!
//! What happens, in the given time zone:
//! - a `heartbeat` every 5 minutes (the first at the start);
//! - doses at 08:00, 13:00, 18:00 and 21:00 local time: `dose_due` a few seconds after the
//!   hour, `dose_dispensed` within half a minute, then mostly `dose_taken` within 20 minutes;
//!   sometimes taken late (35–70 min, past the default grace: the agent raises the miss, then
//!   forwards the late taken), sometimes `dose_skipped`, sometimes nothing at all (missed);
//! - `low_stock` after each dispense from four doses left down; at one dose left the carousel is
//!   refilled (dispensers do not report refills);
//! - rarely a jam (`device_error`, and the dose is not dispensed), `battery_low`, `tamper` or
//!   `power_lost`.

use super::line::{DispenserLine, Message};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vaka_protocol::kinds::Dose;

/// The day's doses: id, local hour, medication.
const SLOTS: [(&str, i8, &str); 4] = [
    ("morning", 8, "Levaxin 100 mikrog"),
    ("midday", 13, "Alvedon 500 mg"),
    ("afternoon", 18, "Metformin 500 mg"),
    ("evening", 21, "Waran 2,5 mg"),
];
const HEARTBEAT: SignedDuration = SignedDuration::from_mins(5);
const LOW_STOCK_FROM: u32 = 4;
const FULL: u32 = 28;

#[derive(Debug, Clone, PartialEq)]
enum Planned {
    Heartbeat,
    /// The dose of `SLOTS[slot]` scheduled at the planned time is due.
    Due {
        slot: usize,
        scheduled: Timestamp,
    },
    Dispensed(Dose),
    Taken(Dose),
    Skipped(Dose),
    Jam,
    LowStock(u32),
    /// Once an hour: maybe battery, tamper or power.
    Rare,
}

/// A seeded simulated dispenser; an endless [`Iterator`] of `(time, line)` in time order
/// (it ends only if time runs out of jiff's range).
pub struct Simulator {
    rng: StdRng,
    tz: TimeZone,
    /// What comes next: (when, order of planning, what). Small: a handful of entries.
    plan: Vec<(Timestamp, u64, Planned)>,
    planned: u64,
    doses_left: u32,
}

fn secs(s: i64) -> SignedDuration {
    SignedDuration::from_secs(s)
}

impl Simulator {
    /// Doses follow the local wall clock of `tz` (pass the device's zone; tests use a POSIX
    /// zone so they read no files).
    pub fn new(seed: u64, start: Timestamp, tz: TimeZone) -> Simulator {
        let mut rng = StdRng::seed_from_u64(seed);
        let doses_left = rng.random_range(LOW_STOCK_FROM + 2..=FULL);
        let mut sim = Simulator { rng, tz, plan: Vec::new(), planned: 0, doses_left };
        sim.schedule(start, Planned::Heartbeat);
        sim.schedule_after(start, secs(3600), Planned::Rare);
        if let Some((scheduled, slot)) = sim.next_slot(start) {
            sim.schedule(scheduled, Planned::Due { slot, scheduled });
        }
        sim
    }

    fn schedule(&mut self, at: Timestamp, what: Planned) {
        self.planned += 1;
        self.plan.push((at, self.planned, what));
    }

    fn schedule_after(&mut self, from: Timestamp, delay: SignedDuration, what: Planned) {
        if let Ok(at) = from.checked_add(delay) {
            self.schedule(at, what);
        }
    }

    /// The first dose time strictly after `after`, and its slot.
    fn next_slot(&self, after: Timestamp) -> Option<(Timestamp, usize)> {
        let mut date = after.to_zoned(self.tz.clone()).date();
        for _ in 0..3 {
            for (slot, (_, hour, _)) in SLOTS.iter().enumerate() {
                let local = date.at(*hour, 0, 0, 0);
                let at = self.tz.to_ambiguous_timestamp(local).compatible().ok()?;
                if at > after {
                    return Some((at, slot));
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// Carries out one planned item: its line, if it makes one, and what it plans next.
    fn fire(&mut self, at: Timestamp, what: Planned) -> Option<Message> {
        match what {
            Planned::Heartbeat => {
                let jitter = secs(self.rng.random_range(-10..=10));
                self.schedule_after(at, HEARTBEAT + jitter, Planned::Heartbeat);
                Some(Message::Heartbeat)
            }
            Planned::Rare => {
                self.schedule_after(at, secs(3600), Planned::Rare);
                let r: f64 = self.rng.random();
                match r {
                    r if r < 0.02 => {
                        Some(Message::BatteryLow { percent: Some(self.rng.random_range(5..=20)) })
                    }
                    r if r < 0.025 => Some(Message::Tamper),
                    r if r < 0.028 => Some(Message::PowerLost),
                    _ => None,
                }
            }
            Planned::Due { slot, scheduled } => {
                if let Some((next, slot)) = self.next_slot(scheduled) {
                    self.schedule(next, Planned::Due { slot, scheduled: next });
                }
                let (dose_id, _, medication) = SLOTS[slot];
                let dose =
                    Dose { dose_id: dose_id.into(), medication: medication.into(), scheduled };
                if self.rng.random_bool(0.01) {
                    self.schedule_after(at, secs(20), Planned::Jam);
                } else {
                    let delay = secs(self.rng.random_range(10..=30));
                    self.schedule_after(at, delay, Planned::Dispensed(dose.clone()));
                }
                Some(Message::DoseDue(dose))
            }
            Planned::Dispensed(dose) => {
                self.doses_left = self.doses_left.saturating_sub(1);
                if self.doses_left <= LOW_STOCK_FROM {
                    self.schedule_after(at, secs(1), Planned::LowStock(self.doses_left));
                }
                if self.doses_left <= 1 {
                    self.doses_left = FULL;
                }
                let r: f64 = self.rng.random();
                let minutes =
                    |rng: &mut StdRng, lo: i64, hi: i64| secs(60 * rng.random_range(lo..=hi));
                match r {
                    r if r < 0.80 => {
                        let delay = minutes(&mut self.rng, 1, 20);
                        self.schedule_after(at, delay, Planned::Taken(dose.clone()));
                    }
                    r if r < 0.88 => {
                        let delay = minutes(&mut self.rng, 35, 70);
                        self.schedule_after(at, delay, Planned::Taken(dose.clone()));
                    }
                    r if r < 0.93 => {
                        let delay = minutes(&mut self.rng, 2, 20);
                        self.schedule_after(at, delay, Planned::Skipped(dose.clone()));
                    }
                    _ => {}
                }
                Some(Message::DoseDispensed(dose))
            }
            Planned::Taken(dose) => Some(Message::DoseTaken(dose)),
            Planned::Skipped(dose) => Some(Message::DoseSkipped(dose)),
            Planned::Jam => Some(Message::DeviceError {
                code: "E-JAM".into(),
                message: Some("carousel jammed; the dose was not dispensed".into()),
            }),
            Planned::LowStock(doses_left) => Some(Message::LowStock { doses_left }),
        }
    }
}

impl Iterator for Simulator {
    type Item = (Timestamp, String);

    /// The next line and its time (the line's `ts`).
    fn next(&mut self) -> Option<(Timestamp, String)> {
        loop {
            let first = (0..self.plan.len()).min_by_key(|&i| (self.plan[i].0, self.plan[i].1))?;
            let (at, _, what) = self.plan.swap_remove(first);
            if let Some(message) = self.fire(at, what) {
                let line = DispenserLine { ts: at, message };
                return Some((at, line.render(self.tz.to_offset(at))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispenser::core::{DoseBook, Input, Rules};
    use crate::dispenser::line::parse_line;
    use vaka_protocol::Severity;

    fn stockholm() -> TimeZone {
        TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap()
    }

    fn start() -> Timestamp {
        "2026-11-23T06:30:00+01:00".parse().unwrap()
    }

    fn lines(seed: u64, n: usize) -> Vec<(Timestamp, String)> {
        Simulator::new(seed, start(), stockholm()).take(n).collect()
    }

    #[test]
    fn same_seed_gives_the_same_lines_and_another_seed_others() {
        assert_eq!(lines(7, 2000), lines(7, 2000));
        assert_ne!(lines(7, 2000), lines(8, 2000));
    }

    #[test]
    fn every_line_parses_and_lines_come_in_time_order_with_their_time_as_ts() {
        let all = lines(3, 5000);
        assert_eq!(all.len(), 5000);
        for pair in all.windows(2) {
            assert!(pair[0].0 <= pair[1].0, "{pair:?}");
        }
        for (at, text) in &all {
            let line = parse_line(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(line.ts, *at);
        }
    }

    #[test]
    fn doses_are_due_at_the_local_hours_with_the_local_offset() {
        let first_due =
            lines(1, 100).into_iter().find(|(_, text)| text.contains("dose_due")).unwrap();
        let line = parse_line(&first_due.1).unwrap();
        let Message::DoseDue(dose) = line.message else { panic!("{}", first_due.1) };
        assert_eq!(dose.dose_id, "morning");
        assert_eq!(dose.scheduled, "2026-11-23T08:00:00+01:00".parse::<Timestamp>().unwrap());
        assert!(
            first_due.1.contains("\"scheduled\":\"2026-11-23T08:00:00+01:00\""),
            "{}",
            first_due.1
        );
    }

    /// A simulated fortnight through the real book: nothing is refused, the dispenser never
    /// looks offline, and the night has the mix it promises.
    #[test]
    fn a_simulated_fortnight_goes_through_the_book_without_refusals() {
        let end = start() + SignedDuration::from_hours(14 * 24);
        let mut book = DoseBook::new(Rules::default(), start());
        let mut events = Vec::new();
        for (number, (at, text)) in Simulator::new(11, start(), stockholm()).enumerate() {
            if at > end {
                break;
            }
            while let Some(deadline) = book.next_deadline().filter(|d| *d < at) {
                events.extend(book.handle(deadline, Input::Tick).events);
                assert!(book.next_deadline() > Some(deadline), "the timer would spin");
            }
            let line = parse_line(&text).unwrap();
            let outcome = book.handle(at, Input::Line { number: number as u64, line });
            assert_eq!(outcome.refused, None, "{text}");
            events.extend(outcome.events);
        }
        let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
        for e in &events {
            *kinds.entry(e.body.kind()).or_default() += 1;
        }
        let alarms = events.iter().filter(|e| e.severity == Severity::Alarm).count();
        assert_eq!(kinds.get("dose_due"), Some(&56), "{kinds:?}");
        assert!(kinds["dose_taken"] > 35 && kinds["dose_missed"] >= 3, "{kinds:?}");
        assert!(kinds.contains_key("low_stock"), "{kinds:?}");
        assert!(!kinds.contains_key("dispenser_offline"), "{kinds:?}");
        let jams = kinds.get("device_error").copied().unwrap_or_default();
        assert_eq!(alarms, kinds["dose_missed"] + jams, "{kinds:?}");
    }
}
