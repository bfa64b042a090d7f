//! The dose book: the agent's own judgement of a medication dispenser. Pure.
//!
//! The dispenser bridge reports what the unit sees ([`line`](super::line)); the book decides
//! what reaches the hub, and above all **raises `dose_missed` on the device**, so that a missed
//! dose is an alarm in the outbox even while the hub cannot be reached. It never reads the clock,
//! the network or the disk: the shell gives it `now`, each parsed line and timer ticks, stores
//! [`DoseBook::state`] in the outbox's SQLite in the same transaction as the events of that
//! step, and wakes it at [`DoseBook::next_deadline`].
//!
//! # Rules
//! - `dose_due` opens the dose's grace period, ending at `scheduled + grace` (grace per
//!   medication, [`Rules::grace_for`]). A dose is named by `dose_id` *and* `scheduled`.
//! - `dose_taken` before the grace end closes the dose; `dose_skipped` closes it too (info).
//! - When the agent's clock reaches the grace end (`now >= grace end`) and the dose is still
//!   open, `dose_missed` (alarm) is raised, exactly once. Every step first raises what is
//!   overdue, so a `dose_taken` handled at or after the grace end comes too late whether or not
//!   a tick came in between.
//! - A `dose_taken` (or `dose_dispensed`, `dose_skipped`) after the miss is forwarded as info
//!   with a note; the miss stands.
//! - Every accepted line is forwarded as its event (dose_due, dose_dispensed, dose_taken,
//!   dose_skipped, low_stock, device_error, tamper, battery_low with source dispenser,
//!   power_lost) except `heartbeat`, which forwards nothing, and a `low_stock` that repeats the
//!   last forwarded count within [`LOW_STOCK_REPEAT`].
//! - Severities: `dose_missed` and `device_error` are alarms, `low_stock` a warning, the rest
//!   info — except `dispenser_offline`, a warning: a silent dispenser means no missed dose
//!   can be raised for it, which staff must learn of.
//! - `dispenser_offline` (warning) when no line was accepted for `offline_after` (heartbeats
//!   count), `since` the last one the agent heard (by the agent's clock); once, re-armed by the
//!   next accepted line. Silence is only judged while the agent runs: the timer starts again
//!   at [`DoseBook::new`]/[`DoseBook::restore`], so a restart alone raises nothing.
//!
//! # Lines refused (with the reason in [`Outcome::refused`]; nothing of them is forwarded)
//! - `ts` more than `future_tolerance` ahead of the agent's clock. Refused, not clamped: a
//!   dispenser whose clock runs ahead also has wrong `scheduled` times, which the grace timer
//!   relies on. If every line is refused, none is heard, and `dispenser_offline` tells staff
//!   that nobody supervises this dispenser.
//! - `ts` earlier than the last accepted line's `ts` by more than [`REORDER_TOLERANCE`]: a
//!   replayed or reordered line (a bridge resending its buffer). A dispenser clock stepped
//!   back is refused likewise until it passes the old time again (and shows as offline then).
//! - A `dose_due` for a dose already known (open or remembered for [`REMEMBER`] after its
//!   grace end), or whose `scheduled` is more than [`MAX_DUE_SPREAD`] from its `ts`, or beyond
//!   [`MAX_OPEN`] open doses.
//! - `dose_dispensed`/`dose_taken`/`dose_skipped` for a dose with no `dose_due`, or one that
//!   contradicts what is known (taken twice, taken after skipped, dispensed after taken).
//!
//! Lines refused for their *content* still count as heard (the dispenser is alive); lines
//! refused for their *time* do not (their clock cannot be trusted).

use super::line::{DispenserLine, Message};
use crate::outbox::NewEvent;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vaka_protocol::kinds::{
    BatteryLow, BatterySource, DeviceError, Dose, Empty, LowStock, Silence,
};
use vaka_protocol::{EventBody, Severity};

pub const DEFAULT_GRACE: SignedDuration = SignedDuration::from_mins(30);
pub const DEFAULT_OFFLINE_AFTER: SignedDuration = SignedDuration::from_mins(10);
pub const DEFAULT_FUTURE_TOLERANCE: SignedDuration = SignedDuration::from_mins(5);
/// How much earlier than the last accepted line a line may be (two events in one second,
/// clocks with sub-second jitter).
pub const REORDER_TOLERANCE: SignedDuration = SignedDuration::from_secs(2);
/// A `dose_due` comes when its dose is due: `scheduled` at most this far from `ts`.
pub const MAX_DUE_SPREAD: SignedDuration = SignedDuration::from_hours(12);
/// A closed dose is remembered this long after its grace end, to recognise duplicates and late
/// `dose_taken`.
pub const REMEMBER: SignedDuration = SignedDuration::from_hours(24);
/// Most doses open at once (a dispenser has at most a handful a day).
pub const MAX_OPEN: usize = 32;
/// Most closed doses remembered; the oldest go first.
pub const MAX_REMEMBERED: usize = 64;
/// A `low_stock` with an unchanged count is forwarded again after this (a refill in between
/// is not reported by dispensers).
pub const LOW_STOCK_REPEAT: SignedDuration = SignedDuration::from_hours(12);

/// The timing rules of the book (validated `[dispenser]` settings).
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Grace after `scheduled` for medications without their own.
    pub grace: SignedDuration,
    /// Grace by medication name, matched exactly against the line's `medication`.
    pub grace_by_medication: BTreeMap<String, SignedDuration>,
    pub offline_after: SignedDuration,
    pub future_tolerance: SignedDuration,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            grace: DEFAULT_GRACE,
            grace_by_medication: BTreeMap::new(),
            offline_after: DEFAULT_OFFLINE_AFTER,
            future_tolerance: DEFAULT_FUTURE_TOLERANCE,
        }
    }
}

impl Rules {
    pub fn grace_for(&self, medication: &str) -> SignedDuration {
        self.grace_by_medication.get(medication).copied().unwrap_or(self.grace)
    }
}

/// What the book is given.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A parsed line; `number` counts lines since the shell opened the source (for messages).
    Line { number: u64, line: DispenserLine },
    /// The clock moved (the shell's timer at [`DoseBook::next_deadline`], or any periodic tick).
    Tick,
}

/// What one step decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// For the outbox, in order, committed together with the new [`DoseBook::state`].
    pub events: Vec<NewEvent>,
    /// Why the line was refused (nothing of it was forwarded); the shell logs it with the line
    /// number and counts it.
    pub refused: Option<String>,
    /// A remark on an accepted line worth a log line (a late `dose_taken`, a repeated
    /// `low_stock` not forwarded, the dispenser heard again after being offline).
    pub note: Option<String>,
}

/// Where a dose stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Stage {
    Open,
    Taken,
    Skipped,
    Missed,
    TakenAfterMiss,
    SkippedAfterMiss,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tracked {
    dose: Dose,
    grace_end: Timestamp,
    stage: Stage,
    dispensed: bool,
}

/// What must survive an agent restart. Opaque to the shell: stored as JSON (serde) next to the
/// outbox, in the same transaction as the events of the step that produced it. Missing fields
/// read as their defaults and unknown ones are ignored, so that an agent update or downgrade
/// keeps the open doses (a field added later must have a safe default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DoseState {
    /// Open doses and closed ones still remembered, in grace-end order.
    doses: Vec<Tracked>,
    /// The latest `ts` (dispenser clock) of an accepted line.
    last_ts: Option<Timestamp>,
    /// When (agent clock) the last line was accepted.
    last_heard: Option<Timestamp>,
    /// `dispenser_offline` was raised and no line has been accepted since.
    offline: bool,
    /// The last `low_stock` forwarded and when (agent clock).
    low_stock: Option<(u32, Timestamp)>,
}

/// The book of doses and of the dispenser's liveness; see the module note for the rules.
#[derive(Debug, Clone)]
pub struct DoseBook {
    rules: Rules,
    state: DoseState,
    /// Silence is judged from here at the earliest: when this book was created or restored.
    watching_since: Timestamp,
    /// Number of the last accepted line, for messages (line numbers restart with the shell).
    last_number: Option<u64>,
}

fn after(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(if d.is_negative() { Timestamp::MIN } else { Timestamp::MAX })
}

fn dose_name(d: &Dose) -> String {
    format!("{} ({}) scheduled {}", d.dose_id, d.medication, d.scheduled)
}

impl DoseBook {
    /// A book for a dispenser never heard from.
    pub fn new(rules: Rules, now: Timestamp) -> Self {
        Self::restore(rules, DoseState::default(), now)
    }

    /// A book continuing from a stored state. Grace periods that ended while the agent was
    /// down raise `dose_missed` at the first [`handle`](Self::handle); the others at their
    /// time. Stored grace ends are kept even if the configured grace has changed since.
    pub fn restore(rules: Rules, state: DoseState, now: Timestamp) -> Self {
        DoseBook { rules, state, watching_since: now, last_number: None }
    }

    pub fn state(&self) -> DoseState {
        self.state.clone()
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Open doses with their grace ends, earliest first.
    pub fn open_doses(&self) -> impl Iterator<Item = (&Dose, Timestamp)> {
        self.state.doses.iter().filter(|t| t.stage == Stage::Open).map(|t| (&t.dose, t.grace_end))
    }

    /// When the book next needs a [`Input::Tick`] even if no line comes: the next grace end or
    /// the offline deadline.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let grace = self.open_doses().map(|(_, end)| end).min();
        let offline = (!self.state.offline).then(|| self.offline_deadline());
        grace.into_iter().chain(offline).min()
    }

    fn offline_deadline(&self) -> Timestamp {
        let from =
            self.state.last_heard.map_or(self.watching_since, |h| h.max(self.watching_since));
        after(from, self.rules.offline_after)
    }

    /// One step at `now`: raises what is overdue, takes the line (if any), raises what is
    /// overdue after it, and watches for silence.
    pub fn handle(&mut self, now: Timestamp, input: Input) -> Outcome {
        let mut out = Outcome::default();
        self.expire(now, &mut out.events);
        if let Input::Line { number, line } = input {
            match self.check_time(now, &line) {
                Err(why) => out.refused = Some(why),
                Ok(()) => {
                    if self.state.offline {
                        let since = self.state.last_heard.unwrap_or(self.watching_since);
                        out.note = Some(format!("dispenser heard again (silent since {since})"));
                    }
                    self.state.offline = false;
                    self.state.last_heard = Some(now);
                    self.state.last_ts =
                        Some(self.state.last_ts.map_or(line.ts, |l| l.max(line.ts)));
                    self.last_number = Some(number);
                    match self.accept(now, line) {
                        Ok((events, note)) => {
                            out.events.extend(events);
                            out.note = note.or(out.note);
                        }
                        Err(why) => out.refused = Some(why),
                    }
                }
            }
        }
        self.expire(now, &mut out.events);
        self.watch(now, &mut out.events);
        self.forget(now);
        out
    }

    /// Raises `dose_missed` for every open dose whose grace has ended.
    fn expire(&mut self, now: Timestamp, events: &mut Vec<NewEvent>) {
        for t in self.state.doses.iter_mut() {
            if t.stage == Stage::Open && t.grace_end <= now {
                t.stage = Stage::Missed;
                events.push(NewEvent::new(EventBody::DoseMissed(t.dose.clone())));
            }
        }
    }

    fn watch(&mut self, now: Timestamp, events: &mut Vec<NewEvent>) {
        if !self.state.offline && now >= self.offline_deadline() {
            self.state.offline = true;
            let since = self.state.last_heard.unwrap_or(self.watching_since);
            events.push(NewEvent::new(EventBody::DispenserOffline(Silence { since })));
        }
    }

    /// Drops closed doses older than [`REMEMBER`], then the oldest beyond [`MAX_REMEMBERED`].
    fn forget(&mut self, now: Timestamp) {
        let doses = &mut self.state.doses;
        doses.retain(|t| t.stage == Stage::Open || after(t.grace_end, REMEMBER) >= now);
        let mut closed = doses.iter().filter(|t| t.stage != Stage::Open).count();
        doses.retain(|t| {
            let drop = t.stage != Stage::Open && closed > MAX_REMEMBERED;
            closed -= usize::from(drop);
            !drop
        });
    }

    fn check_time(&self, now: Timestamp, line: &DispenserLine) -> Result<(), String> {
        let ahead = line.ts.duration_since(now);
        if ahead > self.rules.future_tolerance {
            return Err(format!(
                "{} at {} is {:#} ahead of the agent's clock (tolerance {:#}); is the dispenser's clock right?",
                line.message.event(),
                line.ts,
                ahead.round(jiff::Unit::Second).unwrap_or(ahead),
                self.rules.future_tolerance
            ));
        }
        if let Some(last) = self.state.last_ts {
            let behind = last.duration_since(line.ts);
            if behind > REORDER_TOLERANCE {
                let at = self.last_number.map(|n| format!(" (line {n})")).unwrap_or_default();
                return Err(format!(
                    "{} at {} is {:#} before the last accepted line{at} at {last}; lines must come in time order (a replayed or reordered line?)",
                    line.message.event(),
                    line.ts,
                    behind.round(jiff::Unit::Second).unwrap_or(behind),
                ));
            }
        }
        Ok(())
    }

    /// The events of an accepted line, and a note; or why its content is refused.
    fn accept(
        &mut self,
        now: Timestamp,
        line: DispenserLine,
    ) -> Result<(Vec<NewEvent>, Option<String>), String> {
        let forward = |body| Ok((vec![NewEvent::new(body)], None));
        // The dispenser's severities: missed dose and device error are alarms, low stock a
        // warning, the rest info (tamper, battery and power are warnings by the protocol's
        // defaults, which a GPS tracker's battery keeps).
        let info = |body| Ok((vec![NewEvent { body, severity: Severity::Info }], None));
        match line.message {
            Message::DoseDue(dose) => self.due(line.ts, dose),
            Message::DoseDispensed(dose) => self.progress(dose, Step::Dispensed),
            Message::DoseTaken(dose) => self.progress(dose, Step::Taken),
            Message::DoseSkipped(dose) => self.progress(dose, Step::Skipped),
            Message::LowStock { doses_left } => {
                let repeat = self
                    .state
                    .low_stock
                    .is_some_and(|(n, at)| n == doses_left && now < after(at, LOW_STOCK_REPEAT));
                if repeat {
                    let note = format!("low_stock unchanged at {doses_left}; not forwarded again");
                    return Ok((Vec::new(), Some(note)));
                }
                self.state.low_stock = Some((doses_left, now));
                forward(EventBody::LowStock(LowStock { doses_left }))
            }
            Message::DeviceError { code, message } => {
                forward(EventBody::DeviceError(DeviceError { code, message }))
            }
            Message::Tamper => info(EventBody::Tamper(Empty {})),
            Message::BatteryLow { percent } => info(EventBody::BatteryLow(BatteryLow {
                source: BatterySource::Dispenser,
                percent,
            })),
            Message::PowerLost => info(EventBody::PowerLost(Empty {})),
            Message::Heartbeat => Ok((Vec::new(), None)),
        }
    }

    fn find(&mut self, dose: &Dose) -> Option<&mut Tracked> {
        self.state
            .doses
            .iter_mut()
            .find(|t| t.dose.dose_id == dose.dose_id && t.dose.scheduled == dose.scheduled)
    }

    fn due(
        &mut self,
        ts: Timestamp,
        dose: Dose,
    ) -> Result<(Vec<NewEvent>, Option<String>), String> {
        if let Some(known) = self.find(&dose) {
            return Err(format!(
                "duplicate dose_due for {} (the dose is {})",
                dose_name(&dose),
                stage_words(known.stage)
            ));
        }
        let spread = dose.scheduled.duration_since(ts).abs();
        if spread > MAX_DUE_SPREAD {
            return Err(format!(
                "dose_due at {ts} for {}: scheduled is {spread:#} from the line's ts (at most {MAX_DUE_SPREAD:#}); a dose_due comes when the dose is due",
                dose_name(&dose)
            ));
        }
        if self.open_doses().count() >= MAX_OPEN {
            return Err(format!(
                "dose_due for {}: already {MAX_OPEN} doses open; is the bridge sending dose_taken?",
                dose_name(&dose)
            ));
        }
        let grace_end = after(dose.scheduled, self.rules.grace_for(&dose.medication));
        let at = self.state.doses.partition_point(|t| t.grace_end <= grace_end);
        let body = EventBody::DoseDue(dose.clone());
        self.state
            .doses
            .insert(at, Tracked { dose, grace_end, stage: Stage::Open, dispensed: false });
        Ok((vec![NewEvent::new(body)], None))
    }

    fn progress(
        &mut self,
        dose: Dose,
        step: Step,
    ) -> Result<(Vec<NewEvent>, Option<String>), String> {
        let event = step.event();
        let Some(known) = self.find(&dose) else {
            return Err(format!(
                "{event} for {}: no dose_due for this dose_id and scheduled time is known",
                dose_name(&dose)
            ));
        };
        let (stage, dispensed) = (known.stage, known.dispensed);
        let next = match (step, stage) {
            (Step::Dispensed, Stage::Open | Stage::Missed) if !dispensed => stage,
            (Step::Taken, Stage::Open) => Stage::Taken,
            (Step::Taken, Stage::Missed) => Stage::TakenAfterMiss,
            (Step::Skipped, Stage::Open) => Stage::Skipped,
            (Step::Skipped, Stage::Missed) => Stage::SkippedAfterMiss,
            _ => {
                let what = if step == Step::Dispensed && dispensed {
                    "already dispensed".to_string()
                } else {
                    stage_words(stage).to_string()
                };
                return Err(format!("{event} for {}: the dose is {what}", dose_name(&dose)));
            }
        };
        known.stage = next;
        known.dispensed |= step == Step::Dispensed;
        let note = (stage == Stage::Missed).then(|| {
            format!(
                "{event} for {} after its grace ended at {}; the dose_missed already raised stands",
                dose_name(&dose),
                known.grace_end
            )
        });
        let body = match step {
            Step::Dispensed => EventBody::DoseDispensed(dose),
            Step::Taken => EventBody::DoseTaken(dose),
            Step::Skipped => EventBody::DoseSkipped(dose),
        };
        Ok((vec![NewEvent::new(body)], note))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Dispensed,
    Taken,
    Skipped,
}

impl Step {
    fn event(self) -> &'static str {
        match self {
            Step::Dispensed => "dose_dispensed",
            Step::Taken => "dose_taken",
            Step::Skipped => "dose_skipped",
        }
    }
}

fn stage_words(stage: Stage) -> &'static str {
    match stage {
        Stage::Open => "open",
        Stage::Taken => "already taken",
        Stage::Skipped => "already skipped",
        Stage::Missed => "missed",
        Stage::TakenAfterMiss => "already taken (after the miss)",
        Stage::SkippedAfterMiss => "already skipped (after the miss)",
    }
}

#[cfg(test)]
mod tests;
