//! The pure core of one person's GPS tracker: fixes, button presses and battery levels in,
//! events for the outbox out.
//!
//! The shell feeds [`Tracker::handle`] with `now` (its clock) and one [`Input`]: every fix
//! from a decoder, every SOS press, every battery reading, and a [`Input::Tick`] at
//! [`Tracker::next_wake`] at the latest. The tracker never reads a clock, a device or a file.
//! After every call the shell persists [`Tracker::state`]; [`Tracker::restore`] takes it back
//! after a restart, so no alarm is raised twice and none is forgotten.
//!
//! # Rules
//! - **Good fixes only.** A fix is used only if it has a position, is 3D when `require_3d`,
//!   and its HDOP is at most `max_hdop` (a fix without HDOP is accepted). Others are counted
//!   in [`Counters`] and otherwise ignored.
//! - **`gps_no_fix`** (warning) when no good fix has come for `no_fix_after`; `since` is the
//!   last good fix (or, if there never was one, when the tracker started). Raised once per
//!   outage; the next good fix ends it and is reported as a position at once. After a
//!   restart the receiver gets a fresh `no_fix_after` before it is raised (the agent was
//!   down, not the receiver); `since` still names the last good fix.
//! - **Geofences** (see [`geofence`](super::geofence)): `geofence_left` (alarm, with the
//!   position, the distance outside and the speed) and `geofence_returned` (info), per area.
//! - **`sos`** (alarm) with the last good position, however old (none if there never was one).
//! - **`battery_low`** (warning, source `gps`) when a reading is below `battery_low_percent`;
//!   once, armed again by a reading at or above `battery_low_percent + 5`.
//! - **Position reports** from good fixes, every `report_alarm` while an alarm is active and
//!   every `report_idle` otherwise; the first good fix is reported at once. Reports are made
//!   when a good fix arrives, so a report is never an old position.
//!
//! # One active alarm per kind
//! A repeated trigger updates the active alarm instead of raising another; the update is the
//! same kind with `repeat` 1, 2, … (see `protocol/README.md`):
//! - **SOS** is active for `alarm_hold` after a press. A press while it is active sends `sos`
//!   with the next `repeat` and the fresh position, and restarts the hold. A press after the
//!   hold has ended raises a new alarm (`repeat` 0). No event marks the end of the hold.
//! - **Geofence**: the person's geofence alarm is active while they count as outside any
//!   area. Leaving a further area while it is active sends `geofence_left` for that area with
//!   the next `repeat`. Each area's return is reported with its own `geofence_returned`; when
//!   no area is left outside, the alarm has ended and the next departure is `repeat` 0 again.
//! - **`gps_no_fix`** and **`battery_low`** are raised once per episode (above).
//!
//! "An alarm is active" for the report rate means: SOS within its hold, or outside an area.

use super::config::GpsSettings;
use super::fix::{Fix, FixQuality};
use super::geofence::{later, FenceState, Geofence, Transition};
use crate::outbox::NewEvent;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use vaka_protocol::kinds::{
    BatteryLow, BatterySource, EventBody, GeofenceLeft, GeofenceReturned, Position, Silence, Sos,
};

/// What the shell hands the tracker.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Fix(Fix),
    /// The SOS button was pressed.
    Sos,
    /// The tracker's battery level.
    Battery {
        percent: u8,
    },
    /// Time has passed (at [`Tracker::next_wake`] at the latest).
    Tick,
}

/// A fix the tracker used, stamped with the shell's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoodFix {
    pub at: Timestamp,
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
    pub speed_mps: Option<f64>,
}

/// The SOS alarm while it is active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SosAlarm {
    pub until: Timestamp,
    /// Repeats sent so far.
    pub repeats: u32,
}

/// Everything that must survive an agent restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackerState {
    /// Per area, by name. Areas no longer configured are dropped on restore; new ones start
    /// inside.
    pub areas: BTreeMap<String, FenceState>,
    /// Repeats sent for the active geofence alarm.
    pub geofence_repeats: u32,
    pub sos: Option<SosAlarm>,
    pub last_good_fix: Option<GoodFix>,
    pub no_fix_raised: bool,
    pub battery_low_raised: bool,
    pub last_report: Option<Timestamp>,
}

/// Fixes seen, in pairs of used and refused so that a gap is visible.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub used: u64,
    pub no_fix: u64,
    pub refused_2d: u64,
    pub refused_hdop: u64,
}

/// The tracker for one person; see the module note.
#[derive(Debug, Clone)]
pub struct Tracker {
    settings: Rules,
    fences: Vec<Geofence>,
    state: TrackerState,
    /// When this run began watching for fixes: the no-fix deadline counts from here at the
    /// earliest.
    watching_since: Timestamp,
    counters: Counters,
}

/// The settings the core needs, as jiff durations.
#[derive(Debug, Clone)]
struct Rules {
    require_3d: bool,
    max_hdop: f64,
    no_fix_after: SignedDuration,
    battery_low_percent: u8,
    report_idle: SignedDuration,
    report_alarm: SignedDuration,
    alarm_hold: SignedDuration,
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

impl Tracker {
    pub fn new(settings: &GpsSettings, now: Timestamp) -> Tracker {
        Tracker::restore(settings, TrackerState::default(), now)
    }

    pub fn restore(settings: &GpsSettings, mut state: TrackerState, now: Timestamp) -> Tracker {
        let fences = settings
            .areas
            .iter()
            .map(|area| {
                let saved = state.areas.remove(&area.name).unwrap_or_default();
                Geofence::restore(area.clone(), settings.margin_m, signed(settings.dwell), saved)
            })
            .collect();
        let rules = Rules {
            require_3d: settings.require_3d,
            max_hdop: settings.max_hdop,
            no_fix_after: signed(settings.no_fix_after),
            battery_low_percent: settings.battery_low_percent,
            report_idle: signed(settings.report_idle),
            report_alarm: signed(settings.report_alarm),
            alarm_hold: signed(settings.alarm_hold),
        };
        let mut tracker = Tracker {
            settings: rules,
            fences,
            state,
            watching_since: now,
            counters: Counters::default(),
        };
        tracker.state.areas = tracker.fence_states();
        tracker
    }

    /// What to persist.
    pub fn state(&self) -> TrackerState {
        TrackerState { areas: self.fence_states(), ..self.state.clone() }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Whether an alarm is active (SOS within its hold, or outside an area).
    pub fn alarm_active(&self, now: Timestamp) -> bool {
        self.state.sos.as_ref().is_some_and(|s| now < s.until)
            || self.fences.iter().any(Geofence::is_outside)
    }

    /// Handles one input at `now`; returns the events to offer to the outbox, alarms first.
    pub fn handle(&mut self, now: Timestamp, input: Input) -> Vec<NewEvent> {
        let mut out = Vec::new();
        match input {
            Input::Fix(fix) => self.fix(now, fix, &mut out),
            Input::Sos => self.sos(now, &mut out),
            Input::Battery { percent } => self.battery(percent, &mut out),
            Input::Tick => {}
        }
        self.timers(now, &mut out);
        out.into_iter().map(NewEvent::new).collect()
    }

    /// When the shell must call [`Tracker::handle`] with [`Input::Tick`] at the latest: a
    /// dwell ends, the SOS hold ends, or the no-fix deadline.
    pub fn next_wake(&self) -> Option<Timestamp> {
        let fences = self.fences.iter().filter_map(Geofence::next_wake);
        let sos = self.state.sos.as_ref().map(|s| s.until);
        let no_fix = (!self.state.no_fix_raised).then(|| self.no_fix_deadline());
        fences.chain(sos).chain(no_fix).min()
    }

    fn fence_states(&self) -> BTreeMap<String, FenceState> {
        self.fences.iter().map(|f| (f.area().name.clone(), f.state().clone())).collect()
    }

    fn no_fix_deadline(&self) -> Timestamp {
        let base = match &self.state.last_good_fix {
            Some(f) => f.at.max(self.watching_since),
            None => self.watching_since,
        };
        later(base, self.settings.no_fix_after)
    }

    fn fix(&mut self, now: Timestamp, fix: Fix, out: &mut Vec<EventBody>) {
        let rules = &self.settings;
        if !fix.has_position() {
            self.counters.no_fix += 1;
            return;
        }
        if rules.require_3d && fix.quality != FixQuality::ThreeD {
            self.counters.refused_2d += 1;
            return;
        }
        if fix.hdop.is_some_and(|h| h > rules.max_hdop) {
            self.counters.refused_hdop += 1;
            return;
        }
        self.counters.used += 1;
        self.state.last_good_fix = Some(GoodFix {
            at: now,
            lat: fix.lat,
            lon: fix.lon,
            accuracy_m: fix.accuracy_m.filter(|a| *a <= 100_000.0),
            speed_mps: fix.speed_mps.filter(|s| *s <= 350.0),
        });
        let regained = std::mem::take(&mut self.state.no_fix_raised);
        for i in 0..self.fences.len() {
            if let Some(t) = self.fences[i].observe(now, fix.lat, fix.lon) {
                self.transition(i, t, out);
            }
        }
        let interval = if self.alarm_active(now) {
            self.settings.report_alarm
        } else {
            self.settings.report_idle
        };
        let due = self.state.last_report.is_none_or(|last| now >= later(last, interval));
        if due || regained {
            self.state.last_report = Some(now);
            if let Some(p) = self.position() {
                out.push(EventBody::Position(Position {
                    lat: p.lat,
                    lon: p.lon,
                    accuracy_m: p.accuracy_m,
                    speed_mps: p.speed_mps,
                }));
            }
        }
    }

    fn position(&self) -> Option<&GoodFix> {
        self.state.last_good_fix.as_ref()
    }

    fn sos(&mut self, now: Timestamp, out: &mut Vec<EventBody>) {
        let until = later(now, self.settings.alarm_hold);
        let repeat = match &mut self.state.sos {
            Some(active) if now < active.until => {
                active.repeats = active.repeats.saturating_add(1);
                active.until = until;
                active.repeats
            }
            _ => {
                self.state.sos = Some(SosAlarm { until, repeats: 0 });
                0
            }
        };
        let p = self.position();
        out.push(EventBody::Sos(Sos { lat: p.map(|p| p.lat), lon: p.map(|p| p.lon), repeat }));
    }

    fn battery(&mut self, percent: u8, out: &mut Vec<EventBody>) {
        let threshold = self.settings.battery_low_percent;
        if percent < threshold && !self.state.battery_low_raised {
            self.state.battery_low_raised = true;
            out.push(EventBody::BatteryLow(BatteryLow {
                source: BatterySource::Gps,
                percent: Some(percent.min(100)),
            }));
        } else if u16::from(percent) >= u16::from(threshold) + 5 {
            self.state.battery_low_raised = false;
        }
    }

    /// Deadlines that pass with time: SOS hold, no fix, dwells.
    fn timers(&mut self, now: Timestamp, out: &mut Vec<EventBody>) {
        if self.state.sos.as_ref().is_some_and(|s| now >= s.until) {
            self.state.sos = None;
        }
        if !self.state.no_fix_raised && now >= self.no_fix_deadline() {
            self.state.no_fix_raised = true;
            let since = self.position().map_or(self.watching_since, |f| f.at);
            out.push(EventBody::GpsNoFix(Silence { since }));
        }
        for i in 0..self.fences.len() {
            if let Some(t) = self.fences[i].tick(now) {
                self.transition(i, t, out);
            }
        }
    }

    /// Turns area `i`'s transition into an event under the one-alarm-per-kind rule.
    fn transition(&mut self, i: usize, t: Transition, out: &mut Vec<EventBody>) {
        let area = self.fences[i].area().name.clone();
        // A dwell only begins with a good fix, so there is one; a restored state that
        // disagrees has nothing to report a position with.
        let Some(p) = self.position().cloned() else { return };
        match t {
            Transition::Left { distance_m } => {
                let others_outside =
                    self.fences.iter().enumerate().any(|(j, f)| j != i && f.is_outside());
                let repeat = if others_outside {
                    self.state.geofence_repeats = self.state.geofence_repeats.saturating_add(1);
                    self.state.geofence_repeats
                } else {
                    self.state.geofence_repeats = 0;
                    0
                };
                out.push(EventBody::GeofenceLeft(GeofenceLeft {
                    area,
                    lat: p.lat,
                    lon: p.lon,
                    distance_outside_m: distance_m.min(40_075_000.0),
                    speed_mps: p.speed_mps,
                    repeat,
                }));
            }
            Transition::Returned => {
                if !self.fences.iter().any(Geofence::is_outside) {
                    self.state.geofence_repeats = 0;
                }
                out.push(EventBody::GeofenceReturned(GeofenceReturned {
                    area,
                    lat: p.lat,
                    lon: p.lon,
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gps::config::GpsSource;
    use crate::gps::geofence::tests::{away, circle, near_border, nights, pentagon, HOME};
    use crate::gps::geofence::{destination, Area, Schedule, Shape};
    use proptest::prelude::*;
    use vaka_protocol::Severity;

    fn area(name: &str, shape: Shape) -> Area {
        Area { name: name.into(), shape, schedule: Schedule::Always }
    }

    fn settings(areas: Vec<Area>) -> GpsSettings {
        let mut s = GpsSettings::new(GpsSource::Gpsd { address: "127.0.0.1:2947".into() });
        s.areas = areas;
        s
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn secs(t: Timestamp, s: i64) -> Timestamp {
        t + SignedDuration::from_secs(s)
    }

    const T0: &str = "2026-11-03T01:00:00Z";

    fn fix_at((lat, lon): (f64, f64)) -> Input {
        Input::Fix(Fix {
            time: None,
            lat,
            lon,
            quality: FixQuality::ThreeD,
            hdop: Some(1.0),
            speed_mps: Some(1.2),
            satellites: Some(9),
            accuracy_m: None,
        })
    }

    fn home_fix() -> Input {
        fix_at(HOME)
    }

    fn kinds(events: &[NewEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.body.kind()).collect()
    }

    /// Fixes every `step` seconds from `from` to `to` (seconds after `start`) at `pos`.
    fn feed(
        t: &mut Tracker,
        start: Timestamp,
        (from, to, step): (i64, i64, i64),
        pos: (f64, f64),
    ) -> Vec<NewEvent> {
        (from..=to)
            .step_by(step as usize)
            .flat_map(|s| t.handle(secs(start, s), fix_at(pos)))
            .collect()
    }

    #[test]
    fn a_first_good_fix_is_reported_at_once_and_then_every_report_idle() {
        let t0 = at(T0);
        let mut t = Tracker::new(&settings(vec![]), t0);
        let events = feed(&mut t, t0, (0, 1800, 1), HOME);
        assert_eq!(kinds(&events), ["position", "position", "position"], "0, 15 and 30 min");
        let EventBody::Position(p) = &events[0].body else { panic!() };
        assert_eq!((p.lat, p.lon, p.speed_mps), (HOME.0, HOME.1, Some(1.2)));
        assert_eq!(events[0].severity, Severity::Info);
    }

    #[test]
    fn while_an_alarm_is_active_positions_are_reported_every_report_alarm() {
        let t0 = at(T0);
        let mut t = Tracker::new(&settings(vec![]), t0);
        t.handle(t0, home_fix());
        assert_eq!(kinds(&t.handle(secs(t0, 5), Input::Sos)), ["sos"]);
        let events = feed(&mut t, t0, (6, 65, 1), HOME);
        // Reports at 10, 20, … 60 s after the last one (at 0 s).
        assert_eq!(events.len(), 6, "{:?}", kinds(&events));
        // After the hold (15 min) the idle rate is back.
        let later_events = feed(&mut t, t0, (960, 1500, 1), HOME);
        assert_eq!(later_events.len(), 1, "one report at 960 s, the next due at 1860 s");
    }

    #[test]
    fn fixes_that_are_not_good_enough_are_ignored_and_counted() {
        let t0 = at(T0);
        let mut s = settings(vec![]);
        s.require_3d = true;
        let mut t = Tracker::new(&s, t0);
        let Input::Fix(good) = home_fix() else { unreachable!() };
        let two_d = Fix { quality: FixQuality::TwoD, ..good.clone() };
        let poor = Fix { hdop: Some(7.5), ..good.clone() };
        for f in [Fix::no_fix(None), two_d, poor] {
            assert!(t.handle(t0, Input::Fix(f)).is_empty());
        }
        assert_eq!(t.state().last_good_fix, None);
        let no_hdop = Fix { hdop: None, ..good };
        assert_eq!(kinds(&t.handle(t0, Input::Fix(no_hdop))), ["position"]);
        assert_eq!(t.counters(), Counters { used: 1, no_fix: 1, refused_2d: 1, refused_hdop: 1 });
    }

    #[test]
    fn no_good_fix_for_no_fix_after_raises_gps_no_fix_once_and_a_good_fix_ends_it() {
        let t0 = at(T0);
        let mut t = Tracker::new(&settings(vec![]), t0);
        t.handle(t0, home_fix());
        assert_eq!(t.next_wake(), Some(secs(t0, 600)));
        assert!(t.handle(secs(t0, 599), Input::Fix(Fix::no_fix(None))).is_empty());
        let events = t.handle(secs(t0, 600), Input::Tick);
        assert_eq!(kinds(&events), ["gps_no_fix"]);
        assert_eq!(events[0].body, EventBody::GpsNoFix(Silence { since: t0 }));
        assert_eq!(events[0].severity, Severity::Warning);
        assert!(t.handle(secs(t0, 1200), Input::Tick).is_empty(), "once");
        assert_eq!(t.next_wake(), None);
        // The fix is back: reported at once, and the deadline runs again.
        assert_eq!(kinds(&t.handle(secs(t0, 1300), home_fix())), ["position"]);
        assert_eq!(t.next_wake(), Some(secs(t0, 1900)));
        assert_eq!(kinds(&t.handle(secs(t0, 1900), Input::Tick)), ["gps_no_fix"]);
    }

    #[test]
    fn a_tracker_that_never_had_a_fix_reports_no_fix_since_it_started() {
        let t0 = at(T0);
        let mut t = Tracker::new(&settings(vec![]), t0);
        let events = t.handle(secs(t0, 600), Input::Tick);
        assert_eq!(events[0].body, EventBody::GpsNoFix(Silence { since: t0 }));
    }

    #[test]
    fn sos_carries_the_last_good_position_and_a_press_while_active_updates_that_alarm() {
        let t0 = at(T0);
        let mut t = Tracker::new(&settings(vec![]), t0);
        // The SOS event of a press (a press may come with other news, such as gps_no_fix).
        let sos = |t: &mut Tracker, s: i64| {
            let events = t.handle(secs(t0, s), Input::Sos);
            let sos: Vec<_> = events
                .iter()
                .filter_map(|e| match &e.body {
                    EventBody::Sos(sos) if e.severity == Severity::Alarm => Some(sos.clone()),
                    _ => None,
                })
                .collect();
            let [one] = &sos[..] else { panic!("{events:?}") };
            one.clone()
        };
        assert_eq!(sos(&mut t, 0), Sos { lat: None, lon: None, repeat: 0 }, "no fix yet");
        t.handle(secs(t0, 1), home_fix());
        assert_eq!(sos(&mut t, 60), Sos { lat: Some(HOME.0), lon: Some(HOME.1), repeat: 1 });
        // Each press restarts the 15 min hold: 60 s + 15 min.
        assert_eq!(t.state().sos.map(|s| s.until), Some(secs(t0, 960)));
        assert_eq!(sos(&mut t, 959).repeat, 2);
        t.handle(secs(t0, 959 + 900), Input::Tick);
        assert!(!t.alarm_active(secs(t0, 959 + 900)));
        assert_eq!(sos(&mut t, 2000).repeat, 0, "a new alarm after the hold");
    }

    #[test]
    fn battery_low_is_raised_once_and_armed_again_five_points_above_the_threshold() {
        let t0 = at(T0);
        let mut t = Tracker::new(&settings(vec![]), t0);
        let mut battery = |p: u8| kinds(&t.handle(t0, Input::Battery { percent: p }));
        assert!(battery(40).is_empty());
        assert_eq!(battery(19), ["battery_low"]);
        assert!(battery(18).is_empty() && battery(22).is_empty() && battery(12).is_empty());
        assert!(battery(25).is_empty(), "re-armed");
        assert_eq!(battery(19), ["battery_low"]);
    }

    #[test]
    fn leaving_a_second_area_while_outside_the_first_updates_the_geofence_alarm() {
        let t0 = at(T0);
        // A small circle (150 m) inside the pentagon (162–200 m).
        let mut t =
            Tracker::new(&settings(vec![area("hemma", circle()), area("gården", pentagon())]), t0);
        // The circle lies inside the pentagon, closer than two margins to its sides, so a
        // walk leaves both (the circle's dwell completes first) and comes back to both.
        let far = destination(HOME.0, HOME.1, 36.0, 400.0);
        let near = destination(HOME.0, HOME.1, 36.0, 10.0);
        let events = feed(&mut t, t0, (0, 120, 10), far);
        let left: Vec<_> = events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::GeofenceLeft(g) => Some((g.area.clone(), g.repeat)),
                _ => None,
            })
            .collect();
        assert_eq!(left, [("hemma".to_string(), 0), ("gården".to_string(), 1)]);
        assert!(t.alarm_active(secs(t0, 120)));
        let events = feed(&mut t, t0, (130, 250, 10), near);
        let returned: Vec<_> = events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::GeofenceReturned(g) => Some(g.area.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(returned, ["hemma", "gården"]);
        assert!(!t.alarm_active(secs(t0, 250)));
        // The alarm has ended: the next departure raises a new one.
        let events = feed(&mut t, t0, (260, 400, 10), far);
        assert!(events
            .iter()
            .any(|e| matches!(&e.body, EventBody::GeofenceLeft(g) if g.repeat == 0)));
        assert_eq!(t.state().geofence_repeats, 1);
    }

    #[test]
    fn next_wake_is_the_earliest_of_dwell_end_sos_hold_and_no_fix_deadline() {
        let t0 = at(T0);
        let mut t = Tracker::new(&settings(vec![area("hemma", circle())]), t0);
        assert_eq!(t.next_wake(), Some(secs(t0, 600)), "no-fix deadline");
        t.handle(secs(t0, 10), fix_at(destination(HOME.0, HOME.1, 0.0, 400.0)));
        assert_eq!(t.next_wake(), Some(secs(t0, 70)), "the dwell ends");
        let events = t.handle(secs(t0, 70), Input::Tick);
        assert_eq!(kinds(&events), ["geofence_left"]);
        let EventBody::GeofenceLeft(g) = &events[0].body else { panic!() };
        assert!((g.distance_outside_m - 250.0).abs() < 1e-6 && g.speed_mps == Some(1.2));
        assert_eq!(t.next_wake(), Some(secs(t0, 610)));
        t.handle(secs(t0, 100), Input::Sos);
        assert_eq!(t.next_wake(), Some(secs(t0, 610)), "the SOS hold ends later");
    }

    #[test]
    fn state_survives_a_restart_and_nothing_is_raised_twice() {
        let t0 = at(T0);
        let s = settings(vec![area("hemma", circle())]);
        let mut t = Tracker::new(&s, t0);
        let far = destination(HOME.0, HOME.1, 0.0, 400.0);
        let events = feed(&mut t, t0, (0, 60, 30), far);
        // At 60 s the alarm is active, so a report is due (10 s after the one at 0 s).
        assert_eq!(kinds(&events), ["position", "geofence_left", "position"]);
        t.handle(secs(t0, 61), Input::Sos);
        t.handle(secs(t0, 62), Input::Battery { percent: 5 });
        let json = serde_json::to_string(&t.state()).unwrap();
        let saved: TrackerState = serde_json::from_str(&json).unwrap();
        assert_eq!(saved, t.state());

        let mut r = Tracker::restore(&s, saved, secs(t0, 300));
        assert!(r.alarm_active(secs(t0, 300)));
        assert!(feed(&mut r, t0, (300, 400, 10), far).iter().all(|e| e.body.kind() == "position"));
        assert!(r.handle(secs(t0, 400), Input::Battery { percent: 4 }).is_empty());
        assert_eq!(r.handle(secs(t0, 401), Input::Sos)[0].body.kind(), "sos");
        assert!(
            matches!(&r.handle(secs(t0, 402), Input::Sos)[0].body, EventBody::Sos(s) if s.repeat == 2)
        );
        // A renamed area is a new area: its old state is dropped, the new one starts inside.
        let renamed = settings(vec![area("hem", circle())]);
        let r2 = Tracker::restore(&renamed, r.state(), secs(t0, 500));
        assert_eq!(r2.state().areas.keys().collect::<Vec<_>>(), ["hem"]);
        assert!(!r2.state().areas["hem"].outside);
    }

    #[test]
    fn after_a_restart_the_receiver_gets_a_fresh_no_fix_after_and_since_is_the_last_fix() {
        let t0 = at(T0);
        let s = settings(vec![]);
        let mut t = Tracker::new(&s, t0);
        t.handle(t0, home_fix());
        // The agent was down for two hours.
        let restart = secs(t0, 7200);
        let mut r = Tracker::restore(&s, t.state(), restart);
        assert!(r.handle(restart, Input::Tick).is_empty());
        assert_eq!(r.next_wake(), Some(secs(restart, 600)));
        let events = r.handle(secs(restart, 600), Input::Tick);
        assert_eq!(events[0].body, EventBody::GpsNoFix(Silence { since: t0 }));
    }

    #[test]
    fn an_area_outside_its_schedule_raises_nothing_at_noon() {
        let t0 = at("2026-11-03T11:00:00Z"); // 12:00 in Stockholm
        let night_area = Area { name: "hemma".into(), shape: circle(), schedule: nights() };
        let mut t = Tracker::new(&settings(vec![night_area]), t0);
        let far = destination(HOME.0, HOME.1, 0.0, 400.0);
        let events = feed(&mut t, t0, (0, 3600, 5), far);
        assert!(events.iter().all(|e| e.body.kind() == "position"), "{:?}", kinds(&events));
    }

    #[test]
    fn every_event_the_tracker_makes_passes_protocol_validation() {
        let t0 = at(T0);
        let mut t = Tracker::new(&settings(vec![area("hemma", circle())]), t0);
        let mut events = t.handle(t0, Input::Sos);
        events.extend(feed(&mut t, t0, (0, 120, 10), destination(HOME.0, HOME.1, 10.0, 900.0)));
        events.extend(t.handle(secs(t0, 121), Input::Sos));
        events.extend(t.handle(secs(t0, 122), Input::Battery { percent: 255 }));
        events.extend(t.handle(secs(t0, 123), Input::Battery { percent: 3 }));
        events.extend(feed(&mut t, t0, (130, 250, 10), HOME));
        events.extend(t.handle(secs(t0, 2000), Input::Tick));
        let seen: std::collections::BTreeSet<_> = kinds(&events).into_iter().collect();
        assert_eq!(seen.len(), 6, "{seen:?}");
        for e in events {
            e.body.validate().unwrap_or_else(|err| panic!("{:?}: {err}", e.body));
        }
    }

    #[test]
    fn recorded_receiver_output_drives_the_tracker_through_the_nmea_decoder() {
        use crate::gps::nmea::NmeaDecoder;
        let fixtures = [
            include_str!("../../tests/fixtures/nmea/stationary-receiver.nmea"),
            include_str!("../../tests/fixtures/nmea/ublox-neo6-no-fix.nmea"),
        ];
        let t0 = at(T0);
        let mut t = Tracker::new(&settings(vec![]), t0);
        let mut events = Vec::new();
        let mut now = t0;
        for text in fixtures {
            let mut decoder = NmeaDecoder::new();
            let mut fixes: Vec<Fix> =
                text.lines().filter_map(|l| decoder.push_line(l).unwrap()).collect();
            fixes.extend(decoder.flush());
            for fix in fixes {
                now = secs(now, 1);
                events.extend(t.handle(now, Input::Fix(fix)));
            }
        }
        events.extend(t.handle(secs(now, 600), Input::Tick));
        assert_eq!(kinds(&events), ["position", "gps_no_fix"]);
        assert_eq!(t.counters(), Counters { used: 7, no_fix: 2, refused_2d: 0, refused_hdop: 0 });
    }

    proptest! {
        #[test]
        fn a_wobbling_track_never_raises_geofence_left(
            polygon in any::<bool>(),
            steps in prop::collection::vec((1i64..=60, 0.0..1.0, 0.0..360.0, -15.0..15.0), 1..150),
        ) {
            let shape = if polygon { pentagon() } else { circle() };
            let t0 = at(T0);
            let mut t = Tracker::new(&settings(vec![area("hemma", shape)]), t0);
            let mut now = t0;
            for (dt, along, bearing, offset) in steps {
                now = secs(now, dt);
                let events = t.handle(now, fix_at(near_border(polygon, along, bearing, offset)));
                prop_assert!(events.iter().all(|e| e.body.kind() == "position"));
            }
        }

        #[test]
        fn leaving_for_longer_than_the_dwell_raises_one_alarm_and_one_return(
            polygon in any::<bool>(),
            outside in prop::collection::vec((1i64..=30, 0.0..360.0, 0.0..1.0), 1..30),
            back in prop::collection::vec((1i64..=30, 0.0..360.0, 0.0..1.0), 1..30),
        ) {
            let shape = if polygon { pentagon() } else { circle() };
            let t0 = at(T0);
            let mut t = Tracker::new(&settings(vec![area("hemma", shape)]), t0);
            let mut now = t0;
            let mut events = t.handle(now, home_fix());
            for (phase, far) in [(&outside, true), (&back, false)] {
                let start = now;
                for &(dt, bearing, x) in phase.iter().cycle() {
                    now = secs(now, dt);
                    events.extend(t.handle(now, fix_at(away(polygon, far, bearing, x))));
                    if now.duration_since(start) > SignedDuration::from_secs(150) {
                        break;
                    }
                }
            }
            let alarms: Vec<_> = events.iter().map(|e| e.body.kind()).filter(|k| *k != "position").collect();
            prop_assert_eq!(alarms, ["geofence_left", "geofence_returned"]);
        }
    }
}
