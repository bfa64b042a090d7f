//! The consent lock: may the camera open at this moment?
//!
//! A person (or whoever decides on their behalf) consents to camera checks inside agreed
//! local wall-clock windows, e.g. `21:00-07:00` in Europe/Stockholm, may opt out of chosen
//! nights, and the consent itself is recorded (when, on what basis, by whom). The agent asks
//! [`Consent::decide`] before every check, whatever the hub asked for, and reports a refusal
//! with its [`RefusalReason`] (protocol outcome [`REFUSED_OUTCOME`], detail
//! [`RefusalReason::label`]).
//!
//! Configuration comes in the usual two steps: [`RawConsent`] is what serde reads from
//! `[camera.consent]` (unknown keys refused), and the pure [`RawConsent::validate`] collects
//! every problem and returns a typed [`Consent`].
//!
//! # Invariants
//! - **The camera is never allowed outside consent.** `decide(now)` returns
//!   [`ConsentDecision::Allowed`] only if the local clock reading of `now` lies inside a window,
//!   on a night that is not opted out, with a consent record. When the calendar is ambiguous
//!   the lock chooses the reading that opens *less*.
//! - `Allowed { window_ends }` has `now < window_ends`, every instant in `[now, window_ends)` is
//!   allowed too, and `window_ends - now` is at most the window's wall-clock length plus one
//!   daylight-saving shift (so under 25 h). A check must be capped to end by `window_ends`.
//! - `decide` never reads the clock; the same `now` always gives the same answer.
//!
//! # Nights
//! The night of date *N* runs from 12:00 on *N* to 12:00 on *N + 1* (local). A window belongs
//! to the night in which it **starts**: `21:00-07:00` starting on 24 October is the night of
//! 24 October, so opting out that night also refuses 03:00 on the 25th. A window starting
//! before noon (`01:00-05:00` on the 25th) belongs to the night that began the evening before
//! (the 24th).
//!
//! # Daylight saving (rules, chosen so the camera can never open outside consent)
//! Window edges are wall-clock times; each night they are turned into instants with the time
//! zone database (jiff), never with hand-made offset arithmetic:
//! - **Gap** (spring, Europe/Stockholm 2026-03-29: 02:00 jumps to 03:00, so 02:30 never
//!   happens): an edge in the gap resolves to the transition itself, the first instant the
//!   clock reads at or after the edge (03:00 CEST). For a start this is the first moment the
//!   clock shows a consented time; for an end it is the last moment before the clock shows a
//!   time past the end. (jiff's `Disambiguation::Later` would give 03:30 — for an end edge
//!   that would leave the camera open half an hour past consent; `Earlier` would give 01:30
//!   and lose half an hour of consent.)
//! - **Fold** (autumn, 2026-10-25: 03:00 goes back to 02:00, so 02:30 happens twice): an end
//!   resolves to the **earlier** 02:30 (`Disambiguation::Earlier`) and a start to the
//!   **later** one (`Disambiguation::Later`). Anything else would let the camera open while the
//!   clock reads a time outside the window (e.g. 02:15 the second time round for a window
//!   ending at 02:30). The window never re-opens in the repeated hour.
//! - A window lying wholly inside the fold (`02:00-02:30`) would be empty under that rule;
//!   it is instead kept on the first pass (earlier start and earlier end), where the clock
//!   reads inside the window throughout. A window wholly inside the gap does not happen that
//!   night, as the clock never shows those times.
//!
//! So `21:00-07:00` covers the whole night on both dates and lasts 9 h on the spring night and
//! 11 h on the autumn night.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, Disambiguation, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// The zone used when the config names none.
pub const DEFAULT_TIME_ZONE: &str = "Europe/Stockholm";

/// The `camera_check` outcome for every refusal; [`RefusalReason::label`] says which one.
pub const REFUSED_OUTCOME: &str = "refused_outside_consent";

/// Prefix of every problem reported by [`RawConsent::validate`].
const FIELD: &str = "camera.consent";

/// Minutes in a wall-clock day.
const DAY_MINUTES: u16 = 24 * 60;

/// `[camera.consent]` as written in the agent config.
///
/// ```toml
/// [camera.consent]
/// time_zone = "Europe/Stockholm"          # the default
/// windows = ["21:00-07:00"]               # local wall-clock; may cross midnight; several allowed
/// opted_out_nights = [2026-12-24]         # the night that starts on that evening
/// [camera.consent.record]
/// given = 2026-09-14
/// basis = "samtycke"                      # or a decision reference
/// recorded_by = "Anna Berg, biståndshandläggare"   # optional
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsent {
    pub time_zone: Option<String>,
    #[serde(default)]
    pub windows: Vec<String>,
    #[serde(default)]
    pub opted_out_nights: Vec<RawDate>,
    pub record: Option<RawConsentRecord>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsentRecord {
    pub given: RawDate,
    /// Free text: "samtycke", or the reference of a decision when the person cannot consent.
    pub basis: String,
    pub recorded_by: Option<String>,
}

/// A date as written: a TOML local date (`2026-12-24`) or a string (`"2026-12-24"`). Kept as
/// text so that [`RawConsent::validate`] can report a bad one alongside every other problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDate(pub String);

impl<'de> Deserialize<'de> for RawDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawDate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a date such as 2026-12-24")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawDate, E> {
                Ok(RawDate(v.to_string()))
            }
            // TOML hands its native dates over as a one-entry map holding the text.
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawDate, A::Error> {
                match map.next_entry::<String, String>()? {
                    Some((_, text)) => Ok(RawDate(text)),
                    None => Err(serde::de::Error::custom("expected a date such as 2026-12-24")),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Typed errors of this module's constructors; [`RawConsent::validate`] turns them into lines.
#[derive(Debug, Error)]
pub enum ConsentError {
    #[error(
        "time zone {name:?} is not known on this device (is the time zone database installed \
         in /usr/share/zoneinfo?): {source}"
    )]
    UnknownTimeZone { name: String, source: jiff::Error },
    #[error("window {text:?} is not HH:MM-HH:MM (e.g. 21:00-07:00)")]
    WindowSyntax { text: String },
    #[error("window {text:?} has a time that does not exist (hours 00–23, minutes 00–59)")]
    WindowTime { text: String },
    #[error("window {text:?} is empty: it starts and ends at the same time")]
    EmptyWindow { text: String },
    #[error("windows {a} and {b} overlap")]
    Overlap { a: ConsentWindow, b: ConsentWindow },
    #[error("windows {a} and {b} touch; write them as one window")]
    Touch { a: ConsentWindow, b: ConsentWindow },
    #[error("no consent window is configured; the camera could never open")]
    NoWindows,
}

/// A consented span of local wall-clock time, whole minutes, repeated every day. It crosses
/// midnight when it ends before its start (`21:00-07:00`). Never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConsentWindow {
    /// Minutes after local midnight, 0..1440.
    start: u16,
    end: u16,
}

impl ConsentWindow {
    /// `start` and `end` in minutes after midnight (0–1439); refused if equal.
    fn from_minutes(start: u16, end: u16, text: &str) -> Result<Self, ConsentError> {
        if start >= DAY_MINUTES || end >= DAY_MINUTES {
            return Err(ConsentError::WindowTime { text: text.to_string() });
        }
        if start == end {
            return Err(ConsentError::EmptyWindow { text: text.to_string() });
        }
        Ok(ConsentWindow { start, end })
    }

    /// A window from whole-minute wall-clock times; `21:00`–`07:00` crosses midnight.
    pub fn new(start: Time, end: Time) -> Result<Self, ConsentError> {
        let text = format!("{start}-{end}");
        if [start, end].iter().any(|t| t.second() != 0 || t.subsec_nanosecond() != 0) {
            return Err(ConsentError::WindowSyntax { text });
        }
        ConsentWindow::from_minutes(time_minutes(start), time_minutes(end), &text)
    }

    pub fn start(&self) -> Time {
        minutes_to_time(self.start)
    }

    pub fn end(&self) -> Time {
        minutes_to_time(self.end)
    }

    pub fn crosses_midnight(&self) -> bool {
        self.end < self.start
    }

    /// Length on the wall clock (the real length differs on daylight-saving nights).
    pub fn wall_clock_length(&self) -> SignedDuration {
        let minutes = (self.end + DAY_MINUTES - self.start) % DAY_MINUTES;
        SignedDuration::from_mins(i64::from(minutes))
    }

    /// Whether a wall-clock reading lies in the window (start inclusive, end exclusive).
    pub fn contains_clock(&self, t: Time) -> bool {
        // Edges are whole minutes, so the reading's minute decides (06:59:59 is inside 21-07).
        let m = time_minutes(t);
        if self.crosses_midnight() {
            m >= self.start || m < self.end
        } else {
            m >= self.start && m < self.end
        }
    }

    /// Minutes of the day covered, as one or two half-open intervals.
    fn intervals(&self) -> Vec<(u16, u16)> {
        if self.crosses_midnight() {
            [(self.start, DAY_MINUTES), (0, self.end)].into_iter().filter(|(a, b)| a < b).collect()
        } else {
            vec![(self.start, self.end)]
        }
    }
}

fn minutes_to_time(m: u16) -> Time {
    // m < 1440 by construction, so both parts are in range.
    Time::constant((m / 60) as i8, (m % 60) as i8, 0, 0)
}

fn time_minutes(t: Time) -> u16 {
    t.hour() as u16 * 60 + t.minute() as u16
}

impl FromStr for ConsentWindow {
    type Err = ConsentError;

    /// `HH:MM-HH:MM`; an en dash (`21:00–07:00`) and spaces around the dash are accepted.
    fn from_str(text: &str) -> Result<Self, ConsentError> {
        let syntax = || ConsentError::WindowSyntax { text: text.to_string() };
        let (a, b) = text.split_once(['-', '–']).ok_or_else(syntax)?;
        let start = parse_clock(a.trim()).ok_or_else(syntax)?;
        let end = parse_clock(b.trim()).ok_or_else(syntax)?;
        ConsentWindow::from_minutes(start, end, text)
    }
}

/// `H:MM` or `HH:MM` into minutes after midnight; out-of-range values come back as ≥ 1440 so
/// the caller can tell "not a time" from "a time that does not exist".
fn parse_clock(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if !(1..=2).contains(&h.len()) || m.len() != 2 || !digits(h) || !digits(m) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    Some(if h > 23 || m > 59 { DAY_MINUTES } else { h * 60 + m })
}

impl fmt::Display for ConsentWindow {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// Who consented to what, when. Kept for the audit trail; the lock only needs it to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub given: Date,
    pub basis: String,
    pub recorded_by: Option<String>,
}

/// Resolves a zone name with the device's time zone database.
pub fn time_zone(name: &str) -> Result<TimeZone, ConsentError> {
    TimeZone::get(name)
        .map_err(|source| ConsentError::UnknownTimeZone { name: name.to_string(), source })
}

/// The validated consent lock. See the module note for its rules.
#[derive(Debug, Clone)]
pub struct Consent {
    tz: TimeZone,
    /// Sorted, pairwise neither overlapping nor touching, at least one (unless no record).
    windows: Vec<ConsentWindow>,
    opted_out: BTreeSet<Date>,
    record: Option<ConsentRecord>,
}

/// The answer to "may the camera open now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentDecision {
    /// Open it, and close it by `window_ends` at the latest.
    Allowed {
        window_ends: Timestamp,
    },
    Refused {
        reason: RefusalReason,
    },
}

/// Why the camera stays closed. An expected outcome, reported to the hub, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// No window covers this moment; `None` if none opens within the look-ahead.
    OutsideWindow { next_window_starts: Option<Timestamp> },
    /// Inside a window, but the person opted out of this night (named by its evening).
    OptedOutTonight { night: Date },
    /// There is no consent record at all (e.g. no `[camera.consent]` section).
    NoConsentRecord,
}

impl RefusalReason {
    /// A stable snake_case name for the protocol and the hub's records.
    pub fn label(&self) -> &'static str {
        match self {
            RefusalReason::OutsideWindow { .. } => "outside_window",
            RefusalReason::OptedOutTonight { .. } => "opted_out_tonight",
            RefusalReason::NoConsentRecord => "no_consent_record",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            RefusalReason::OutsideWindow { next_window_starts: Some(next) } => write!(
                f,
                "The camera stays closed: this moment is outside the consented check windows; \
                 the next window opens at {next}."
            ),
            RefusalReason::OutsideWindow { next_window_starts: None } => f.write_str(
                "The camera stays closed: this moment is outside the consented check windows, \
                 and no window opens in the coming days.",
            ),
            RefusalReason::OptedOutTonight { night } => write!(
                f,
                "The camera stays closed: the person opted out of camera checks on the night \
                 of {night}."
            ),
            RefusalReason::NoConsentRecord => f.write_str(
                "The camera stays closed: there is no record of consent to camera checks.",
            ),
        }
    }
}

/// One window on one night, as real instants: `[start, end)`, `start < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Occurrence {
    night: Date,
    start: Timestamp,
    end: Timestamp,
}

/// How far ahead `next_window_starts` looks, on top of one day per opted-out night.
const LOOKAHEAD_DAYS: i64 = 8;

impl Consent {
    /// A lock with a record; `windows` must be non-empty and neither overlap nor touch.
    pub fn new(
        tz: TimeZone,
        windows: impl IntoIterator<Item = ConsentWindow>,
        opted_out_nights: impl IntoIterator<Item = Date>,
        record: ConsentRecord,
    ) -> Result<Consent, Vec<ConsentError>> {
        let mut windows: Vec<ConsentWindow> = windows.into_iter().collect();
        windows.sort();
        let problems = window_problems(&windows);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Consent {
            tz,
            windows,
            opted_out: opted_out_nights.into_iter().collect(),
            record: Some(record),
        })
    }

    /// Consent for a demo or a test bench, whatever the time of day: one window from `hours`
    /// before to `hours` after the local (Europe/Stockholm) clock reading of `now`
    /// (`hours` 1..=11), recorded as given today on `basis`. Never for a real person.
    pub fn around(now: Timestamp, hours: u16, basis: &str) -> Consent {
        let tz = time_zone(DEFAULT_TIME_ZONE).unwrap_or(TimeZone::UTC);
        let local = tz.to_datetime(now);
        let minute = time_minutes(local.time());
        let h = hours.clamp(1, 11) * 60;
        let window = ConsentWindow {
            start: (minute + DAY_MINUTES - h) % DAY_MINUTES,
            end: (minute + h) % DAY_MINUTES,
        };
        let record =
            ConsentRecord { given: local.date(), basis: basis.to_string(), recorded_by: None };
        Consent {
            tz,
            windows: vec![window],
            opted_out: BTreeSet::new(),
            record: Some(record),
        }
    }

    /// No consent recorded: every check is refused with [`RefusalReason::NoConsentRecord`].
    pub fn absent() -> Consent {
        Consent { tz: TimeZone::UTC, windows: Vec::new(), opted_out: BTreeSet::new(), record: None }
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    pub fn windows(&self) -> &[ConsentWindow] {
        &self.windows
    }

    pub fn record(&self) -> Option<&ConsentRecord> {
        self.record.as_ref()
    }

    pub fn is_opted_out(&self, night: Date) -> bool {
        self.opted_out.contains(&night)
    }

    /// The refusal as a sentence for staff, with times on the person's local clock (the
    /// [`Display`](fmt::Display) of [`RefusalReason`] has no zone and shows UTC).
    pub fn explain(&self, reason: &RefusalReason) -> String {
        match reason {
            RefusalReason::OutsideWindow { next_window_starts: Some(next) } => format!(
                "The camera stays closed: this moment is outside the consented check windows; \
                 the next window opens at {}.",
                next.to_zoned(self.tz.clone()).strftime("%Y-%m-%d %H:%M %Z")
            ),
            other => other.to_string(),
        }
    }

    /// May the camera open at `now`? Pure: reads no clock.
    pub fn decide(&self, now: Timestamp) -> ConsentDecision {
        if self.record.is_none() {
            return ConsentDecision::Refused { reason: RefusalReason::NoConsentRecord };
        }
        let today = self.tz.to_datetime(now).date();
        // An occurrence anchored two days back cannot reach `now` (windows are shorter than a
        // day), but checking it costs little and keeps this right in zones with odd shifts.
        for occ in self.occurrences(today, -2..=0) {
            if occ.start <= now && now < occ.end {
                return if self.opted_out.contains(&occ.night) {
                    ConsentDecision::Refused {
                        reason: RefusalReason::OptedOutTonight { night: occ.night },
                    }
                } else {
                    ConsentDecision::Allowed { window_ends: occ.end }
                };
            }
        }
        let horizon = LOOKAHEAD_DAYS + self.opted_out.len() as i64;
        let next_window_starts = self
            .occurrences(today, -1..=horizon)
            .filter(|o| o.start > now && !self.opted_out.contains(&o.night))
            .map(|o| o.start)
            .min();
        ConsentDecision::Refused { reason: RefusalReason::OutsideWindow { next_window_starts } }
    }

    /// Every window occurrence anchored on `today + d` for `d` in `days`. An occurrence that
    /// cannot be computed (dates at the end of jiff's range) is skipped: it stays closed.
    fn occurrences(
        &self,
        today: Date,
        days: std::ops::RangeInclusive<i64>,
    ) -> impl Iterator<Item = Occurrence> + '_ {
        days.filter_map(move |d| today.checked_add(d.days()).ok())
            .flat_map(move |date| self.windows.iter().filter_map(move |w| self.occurrence(w, date)))
    }

    /// The window `w` starting on the local date `date`, as instants (see the module note).
    fn occurrence(&self, w: &ConsentWindow, date: Date) -> Option<Occurrence> {
        let night = if w.start >= 12 * 60 { date } else { date.yesterday().ok()? };
        let start_dt = date.to_datetime(w.start());
        let end_date = if w.crosses_midnight() { date.tomorrow().ok()? } else { date };
        let end_dt = end_date.to_datetime(w.end());
        let end = resolve(&self.tz, end_dt, Disambiguation::Earlier)?;
        let start = resolve(&self.tz, start_dt, Disambiguation::Later)?;
        if start < end {
            return Some(Occurrence { night, start, end });
        }
        // Both edges in one fold: keep the window on the first pass, where it is contiguous.
        let start = resolve(&self.tz, start_dt, Disambiguation::Earlier)?;
        (start < end).then_some(Occurrence { night, start, end })
    }
}

/// A wall-clock edge to an instant: in a fold as `fold` says; in a gap, the transition.
fn resolve(tz: &TimeZone, dt: DateTime, fold: Disambiguation) -> Option<Timestamp> {
    let ambiguous = tz.to_ambiguous_timestamp(dt);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { .. } => ambiguous.compatible().ok(),
        AmbiguousOffset::Fold { .. } => ambiguous.disambiguate(fold).ok(),
        AmbiguousOffset::Gap { .. } => {
            // `Earlier` in a gap is an instant before the jump; the next transition is the jump.
            let before = ambiguous.disambiguate(Disambiguation::Earlier).ok()?;
            tz.following(before).next().map(|t| t.timestamp())
        }
    }
}

/// Overlapping or touching windows, each pair once. `windows` is sorted.
fn window_problems(windows: &[ConsentWindow]) -> Vec<ConsentError> {
    if windows.is_empty() {
        return vec![ConsentError::NoWindows];
    }
    let mut problems = Vec::new();
    for (i, a) in windows.iter().enumerate() {
        for b in &windows[i + 1..] {
            let overlap =
                a.intervals().iter().any(|x| b.intervals().iter().any(|y| x.0 < y.1 && y.0 < x.1));
            if overlap {
                problems.push(ConsentError::Overlap { a: *a, b: *b });
            } else if a.end == b.start || b.end == a.start {
                problems.push(ConsentError::Touch { a: *a, b: *b });
            }
        }
    }
    problems
}

impl RawConsent {
    /// Checks everything and returns either the lock or every problem found, one per line,
    /// each naming its field.
    pub fn validate(&self) -> Result<Consent, Vec<String>> {
        let mut problems = Vec::new();
        let zone_name = self.time_zone.as_deref().unwrap_or(DEFAULT_TIME_ZONE);
        let tz =
            time_zone(zone_name).map_err(|e| problems.push(format!("{FIELD}.time_zone: {e}"))).ok();

        let mut windows = Vec::new();
        for (i, text) in self.windows.iter().enumerate() {
            match text.parse::<ConsentWindow>() {
                Ok(w) => windows.push(w),
                Err(e) => problems.push(format!("{FIELD}.windows[{i}]: {e}")),
            }
        }
        windows.sort();
        for e in window_problems(&windows) {
            // When windows were listed but none parsed, "none configured" is noise.
            if matches!(e, ConsentError::NoWindows) && !self.windows.is_empty() {
                continue;
            }
            problems.push(format!("{FIELD}.windows: {e}"));
        }

        let mut opted_out = BTreeSet::new();
        for (i, raw) in self.opted_out_nights.iter().enumerate() {
            match raw.0.parse::<Date>() {
                Ok(d) => {
                    opted_out.insert(d);
                }
                Err(e) => problems.push(format!(
                    "{FIELD}.opted_out_nights[{i}]: {:?} is not a date such as 2026-12-24 ({e})",
                    raw.0
                )),
            }
        }

        let record = match &self.record {
            None => {
                problems.push(format!(
                    "{FIELD}.record: missing; the date consent was given and its basis are \
                     required (leave out [camera.consent] entirely to keep the camera off)"
                ));
                None
            }
            Some(r) => r.validate(&mut problems),
        };

        match (tz, record, problems.is_empty()) {
            (Some(tz), Some(record), true) => {
                Ok(Consent { tz, windows, opted_out, record: Some(record) })
            }
            _ => Err(problems),
        }
    }
}

impl RawConsentRecord {
    fn validate(&self, problems: &mut Vec<String>) -> Option<ConsentRecord> {
        let given = self
            .given
            .0
            .parse::<Date>()
            .map_err(|e| {
                problems.push(format!(
                    "{FIELD}.record.given: {:?} is not a date such as 2026-09-14 ({e})",
                    self.given.0
                ))
            })
            .ok();
        let basis = self.basis.trim();
        if basis.is_empty() {
            problems.push(format!(
                "{FIELD}.record.basis: must say what the consent rests on (e.g. \"samtycke\" or \
                 a decision reference)"
            ));
        }
        let recorded_by = self.recorded_by.as_deref().map(str::trim);
        if recorded_by == Some("") {
            problems.push(format!("{FIELD}.record.recorded_by: empty; leave it out or name who"));
        }
        match (given, basis.is_empty(), recorded_by) {
            (Some(given), false, recorded_by) if recorded_by != Some("") => Some(ConsentRecord {
                given,
                basis: basis.to_string(),
                recorded_by: recorded_by.map(str::to_string),
            }),
            _ => None,
        }
    }
}

/// Fixtures shared by the camera modules' tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// `21:00-07:00` in Europe/Stockholm, opted out on the night of 2026-12-24, with a record.
    pub fn nights() -> Consent {
        let raw: RawConsent = toml::from_str(
            r#"
            windows = ["21:00-07:00"]
            opted_out_nights = [2026-12-24]
            [record]
            given = 2026-09-14
            basis = "samtycke"
            "#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        raw.validate().unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// The instant a Stockholm wall clock shows `local` (`2026-11-23T02:00`).
    pub fn local(text: &str) -> Timestamp {
        let dt: DateTime = text.parse().unwrap_or_else(|e| panic!("{e}"));
        dt.in_tz(DEFAULT_TIME_ZONE).unwrap_or_else(|e| panic!("{e}")).timestamp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    const STOCKHOLM: &str = "Europe/Stockholm";

    fn stockholm() -> TimeZone {
        time_zone(STOCKHOLM).unwrap()
    }

    fn record() -> ConsentRecord {
        ConsentRecord { given: date(2026, 9, 14), basis: "samtycke".into(), recorded_by: None }
    }

    fn lock(windows: &[&str], opted_out: &[Date]) -> Consent {
        let windows = windows.iter().map(|w| w.parse::<ConsentWindow>().unwrap());
        Consent::new(stockholm(), windows, opted_out.iter().copied(), record()).unwrap()
    }

    /// A local wall-clock time in Stockholm; `Later` picks the second pass in the fold.
    fn local(dt: DateTime, d: Disambiguation) -> Timestamp {
        stockholm().to_ambiguous_timestamp(dt).disambiguate(d).unwrap()
    }

    fn utc(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn ends(d: ConsentDecision) -> Timestamp {
        match d {
            ConsentDecision::Allowed { window_ends } => window_ends,
            other => panic!("expected Allowed, got {other:?}"),
        }
    }

    /// Walks one night every 5 minutes, from 12:00 local on `evening` to 12:00 the next day,
    /// and checks that the lock allows exactly the instants whose clock reads inside 21–07.
    /// Returns (instants checked, instants allowed, the window's real length).
    fn walk_night(evening: Date) -> (usize, usize, SignedDuration) {
        let consent = lock(&["21:00-07:00"], &[]);
        let window = "21:00-07:00".parse::<ConsentWindow>().unwrap();
        let tz = stockholm();
        let from = local(evening.at(12, 0, 0, 0), Disambiguation::Compatible);
        let to = local(evening.tomorrow().unwrap().at(12, 0, 0, 0), Disambiguation::Compatible);
        let opens = local(evening.at(21, 0, 0, 0), Disambiguation::Compatible);
        let closes = local(evening.tomorrow().unwrap().at(7, 0, 0, 0), Disambiguation::Compatible);
        let (mut checked, mut allowed) = (0, 0);
        let mut now = from;
        while now < to {
            let reading = tz.to_datetime(now).time();
            let decision = consent.decide(now);
            if window.contains_clock(reading) {
                assert_eq!(decision, ConsentDecision::Allowed { window_ends: closes }, "at {now}");
                allowed += 1;
            } else {
                assert!(
                    matches!(
                        decision,
                        ConsentDecision::Refused {
                            reason: RefusalReason::OutsideWindow { next_window_starts: Some(_) }
                        }
                    ),
                    "at {now} ({reading}): {decision:?}"
                );
            }
            checked += 1;
            now = now.checked_add(SignedDuration::from_mins(5)).unwrap();
        }
        (checked, allowed, closes.duration_since(opens))
    }

    #[test]
    fn stockholm_time_zone_resolves_on_this_machine() {
        assert_eq!(stockholm().iana_name(), Some(STOCKHOLM));
    }

    #[test]
    fn spring_night_is_covered_whole_and_lasts_nine_hours() {
        let (checked, allowed, length) = walk_night(date(2026, 3, 28));
        // 24 h of clock time minus the skipped hour: 23 h of instants.
        assert_eq!(checked, 23 * 12);
        assert_eq!(allowed, 9 * 12);
        assert_eq!(length, SignedDuration::from_hours(9));
    }

    #[test]
    fn autumn_night_is_covered_whole_and_lasts_eleven_hours() {
        let (checked, allowed, length) = walk_night(date(2026, 10, 24));
        assert_eq!(checked, 25 * 12);
        assert_eq!(allowed, 11 * 12);
        assert_eq!(length, SignedDuration::from_hours(11));
    }

    #[test]
    fn ordinary_night_lasts_ten_hours() {
        let (checked, allowed, length) = walk_night(date(2026, 11, 22));
        assert_eq!((checked, allowed), (24 * 12, 10 * 12));
        assert_eq!(length, SignedDuration::from_hours(10));
    }

    #[test]
    fn window_ending_in_the_spring_gap_ends_when_the_clock_jumps() {
        let consent = lock(&["22:00-02:30"], &[]);
        // 2026-03-29 01:00 UTC is the jump from 02:00 CET to 03:00 CEST.
        let jump = utc("2026-03-29T01:00:00Z");
        assert_eq!(ends(consent.decide(utc("2026-03-29T00:59:59Z"))), jump);
        assert!(matches!(consent.decide(jump), ConsentDecision::Refused { .. }));
    }

    #[test]
    fn window_starting_in_the_spring_gap_opens_when_the_clock_jumps() {
        let consent = lock(&["02:30-06:00"], &[]);
        let jump = utc("2026-03-29T01:00:00Z");
        let before = consent.decide(utc("2026-03-29T00:59:59Z"));
        assert_eq!(
            before,
            ConsentDecision::Refused {
                reason: RefusalReason::OutsideWindow { next_window_starts: Some(jump) }
            }
        );
        // 06:00 CEST is 04:00 UTC: the window lasts 3 h instead of 3 h 30.
        assert_eq!(ends(consent.decide(jump)), utc("2026-03-29T04:00:00Z"));
    }

    #[test]
    fn window_wholly_inside_the_spring_gap_does_not_happen_that_night() {
        let consent = lock(&["02:10-02:50"], &[]);
        let d = consent.decide(utc("2026-03-28T23:00:00Z"));
        // Next opening is the following night at 02:10 CEST = 00:10 UTC.
        assert_eq!(
            d,
            ConsentDecision::Refused {
                reason: RefusalReason::OutsideWindow {
                    next_window_starts: Some(utc("2026-03-30T00:10:00Z"))
                }
            }
        );
    }

    #[test]
    fn window_ending_in_the_autumn_fold_ends_at_the_first_pass_and_stays_closed() {
        let consent = lock(&["22:00-02:30"], &[]);
        // 02:30 CEST (first pass) is 00:30 UTC; 02:30 CET (second pass) is 01:30 UTC.
        assert_eq!(ends(consent.decide(utc("2026-10-25T00:29:00Z"))), utc("2026-10-25T00:30:00Z"));
        for minute in [30, 45, 59, 60 + 15, 60 + 29] {
            let now =
                utc("2026-10-25T00:00:00Z").checked_add(SignedDuration::from_mins(minute)).unwrap();
            // Symptom this guards against: 02:15 CET reads inside 22–02:30 and would re-open.
            assert!(matches!(consent.decide(now), ConsentDecision::Refused { .. }), "at {now}");
        }
    }

    #[test]
    fn window_starting_in_the_autumn_fold_opens_at_the_second_pass() {
        let consent = lock(&["02:30-06:00"], &[]);
        let first_pass = local(date(2026, 10, 25).at(2, 45, 0, 0), Disambiguation::Earlier);
        assert_eq!(first_pass, utc("2026-10-25T00:45:00Z"));
        assert_eq!(
            consent.decide(first_pass),
            ConsentDecision::Refused {
                reason: RefusalReason::OutsideWindow {
                    next_window_starts: Some(utc("2026-10-25T01:30:00Z"))
                }
            }
        );
        // 06:00 CET is 05:00 UTC: 3 h 30 of real time.
        assert_eq!(ends(consent.decide(utc("2026-10-25T01:30:00Z"))), utc("2026-10-25T05:00:00Z"));
    }

    #[test]
    fn window_wholly_inside_the_autumn_fold_is_kept_on_the_first_pass() {
        let consent = lock(&["02:00-02:30"], &[]);
        assert_eq!(ends(consent.decide(utc("2026-10-25T00:00:00Z"))), utc("2026-10-25T00:30:00Z"));
        assert!(matches!(
            consent.decide(utc("2026-10-25T01:10:00Z")),
            ConsentDecision::Refused { .. }
        ));
    }

    #[test]
    fn opted_out_night_is_refused_all_night_including_after_midnight() {
        let night = date(2026, 10, 24);
        let consent = lock(&["21:00-07:00"], &[night]);
        let window = "21:00-07:00".parse::<ConsentWindow>().unwrap();
        let tz = stockholm();
        let mut now = local(night.at(12, 0, 0, 0), Disambiguation::Compatible);
        let end = local(date(2026, 10, 25).at(12, 0, 0, 0), Disambiguation::Compatible);
        let mut refused_inside = 0;
        while now < end {
            let d = consent.decide(now);
            if window.contains_clock(tz.to_datetime(now).time()) {
                let reason = RefusalReason::OptedOutTonight { night };
                assert_eq!(d, ConsentDecision::Refused { reason }, "at {now}");
                refused_inside += 1;
            } else {
                // Outside the window the next opening skips the opted-out night.
                let next = local(date(2026, 10, 25).at(21, 0, 0, 0), Disambiguation::Compatible);
                let reason = RefusalReason::OutsideWindow { next_window_starts: Some(next) };
                assert_eq!(d, ConsentDecision::Refused { reason }, "at {now}");
            }
            now = now.checked_add(SignedDuration::from_mins(5)).unwrap();
        }
        assert_eq!(refused_inside, 11 * 12);
        // The following night is allowed again.
        let next_night = local(date(2026, 10, 26).at(1, 0, 0, 0), Disambiguation::Compatible);
        assert!(matches!(consent.decide(next_night), ConsentDecision::Allowed { .. }));
    }

    #[test]
    fn a_window_before_noon_belongs_to_the_night_that_began_the_evening_before() {
        let consent = lock(&["22:00-23:30", "01:00-05:00"], &[date(2026, 11, 22)]);
        let at = |d: Date, h, m| local(d.at(h, m, 0, 0), Disambiguation::Compatible);
        let reason = RefusalReason::OptedOutTonight { night: date(2026, 11, 22) };
        assert_eq!(
            consent.decide(at(date(2026, 11, 22), 22, 30)),
            ConsentDecision::Refused { reason }
        );
        assert_eq!(
            consent.decide(at(date(2026, 11, 23), 3, 0)),
            ConsentDecision::Refused { reason }
        );
        // The window of the 22nd's morning belongs to the night of the 21st: allowed.
        assert!(matches!(
            consent.decide(at(date(2026, 11, 22), 3, 0)),
            ConsentDecision::Allowed { .. }
        ));
    }

    #[test]
    fn several_windows_crossing_midnight_each_cap_their_own_check() {
        let consent = lock(&["23:30-00:30", "02:00-02:40", "04:55-05:25"], &[]);
        let at = |d: Date, h, m| local(d.at(h, m, 0, 0), Disambiguation::Compatible);
        let (d1, d2) = (date(2026, 11, 22), date(2026, 11, 23));
        assert_eq!(ends(consent.decide(at(d1, 23, 45))), at(d2, 0, 30));
        assert_eq!(ends(consent.decide(at(d2, 0, 29))), at(d2, 0, 30));
        assert_eq!(
            consent.decide(at(d2, 0, 30)),
            ConsentDecision::Refused {
                reason: RefusalReason::OutsideWindow { next_window_starts: Some(at(d2, 2, 0)) }
            }
        );
        assert_eq!(ends(consent.decide(at(d2, 5, 0))), at(d2, 5, 25));
    }

    #[test]
    fn refusal_explained_to_staff_names_the_next_opening_on_the_local_clock() {
        let consent = lock(&["21:00-07:00"], &[]);
        let ConsentDecision::Refused { reason } = consent.decide(utc("2026-11-23T12:00:00Z"))
        else {
            panic!("expected a refusal at noon")
        };
        let text = consent.explain(&reason);
        assert!(text.ends_with("the next window opens at 2026-11-23 21:00 CET."), "{text}");
        assert!(reason.to_string().contains("2026-11-23T20:00:00Z"), "{reason}");
    }

    #[test]
    fn window_built_from_times_matches_the_parsed_one_and_refuses_seconds() {
        let w =
            ConsentWindow::new(Time::constant(21, 0, 0, 0), Time::constant(7, 0, 0, 0)).unwrap();
        assert_eq!(w, "21:00-07:00".parse().unwrap());
        assert!(w.crosses_midnight());
        assert_eq!(w.wall_clock_length(), SignedDuration::from_hours(10));
        assert!(
            ConsentWindow::new(Time::constant(21, 0, 30, 0), Time::constant(7, 0, 0, 0)).is_err()
        );
    }

    #[test]
    fn without_a_consent_record_every_check_is_refused() {
        let d = Consent::absent().decide(utc("2026-11-23T02:00:00Z"));
        assert_eq!(d, ConsentDecision::Refused { reason: RefusalReason::NoConsentRecord });
    }

    #[test]
    fn refusals_have_stable_labels_and_sentences() {
        let cases = [
            (RefusalReason::OutsideWindow { next_window_starts: None }, "outside_window"),
            (RefusalReason::OptedOutTonight { night: date(2026, 12, 24) }, "opted_out_tonight"),
            (RefusalReason::NoConsentRecord, "no_consent_record"),
        ];
        for (reason, label) in cases {
            assert_eq!(reason.label(), label);
            let sentence = reason.to_string();
            assert!(sentence.starts_with("The camera stays closed") && sentence.ends_with('.'));
        }
        assert!(RefusalReason::OptedOutTonight { night: date(2026, 12, 24) }
            .to_string()
            .contains("2026-12-24"));
        assert_eq!(REFUSED_OUTCOME, "refused_outside_consent");
    }

    fn parse(text: &str) -> RawConsent {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn config_with_toml_dates_and_an_en_dash_validates() {
        let raw = parse(
            r#"
windows = ["21:00–07:00", "12:30 - 13:00"]
opted_out_nights = [2026-12-24, "2026-12-31"]
[record]
given = 2026-09-14
basis = "samtycke"
recorded_by = "Anna Berg"
"#,
        );
        let c = raw.validate().unwrap();
        assert_eq!(c.time_zone().iana_name(), Some(DEFAULT_TIME_ZONE));
        let shown: Vec<String> = c.windows().iter().map(|w| w.to_string()).collect();
        assert_eq!(shown, ["12:30-13:00", "21:00-07:00"]);
        assert!(c.is_opted_out(date(2026, 12, 24)) && c.is_opted_out(date(2026, 12, 31)));
        assert_eq!(c.record().unwrap().recorded_by.as_deref(), Some("Anna Berg"));
    }

    #[test]
    fn every_consent_problem_is_reported_at_once() {
        let raw = parse(
            r#"
time_zone = "Europe/Skelleftea"
windows = ["21:00-07:00", "25:00-06:00", "9pm-7am", "05:00-05:00", "06:00-08:00", "07:00-07:30", "21:00-07:00"]
opted_out_nights = ["2026-02-30"]
"#,
        );
        let problems = raw.validate().unwrap_err();
        let all = problems.join("\n");
        for needle in [
            "camera.consent.time_zone: time zone \"Europe/Skelleftea\" is not known",
            "windows[1]: window \"25:00-06:00\" has a time that does not exist",
            "windows[2]: window \"9pm-7am\" is not HH:MM-HH:MM",
            "windows[3]: window \"05:00-05:00\" is empty",
            "windows 06:00-08:00 and 21:00-07:00 overlap",
            "windows 21:00-07:00 and 21:00-07:00 overlap",
            "opted_out_nights[0]: \"2026-02-30\"",
            "camera.consent.record: missing",
        ] {
            assert!(all.contains(needle), "{needle:?} missing in:\n{all}");
        }
        // 07:00-07:30 touches 21:00-07:00 (and overlaps 06:00-08:00).
        assert!(all.contains("overlap") && problems.len() >= 8, "{all}");
    }

    #[test]
    fn touching_windows_and_a_blank_basis_are_refused() {
        let raw = parse(
            r#"
windows = ["21:00-00:00", "00:00-07:00"]
[record]
given = 2026-09-14
basis = "  "
"#,
        );
        let all = raw.validate().unwrap_err().join("\n");
        assert!(all.contains("touch; write them as one window"), "{all}");
        assert!(all.contains("record.basis"), "{all}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<RawConsent>("window = [\"21:00-07:00\"]").unwrap_err();
        assert!(err.to_string().contains("window"), "{err}");
        let err =
            toml::from_str::<RawConsent>("[record]\ngiven = 2026-01-01\nbasis = \"x\"\nby = \"y\"")
                .unwrap_err();
        assert!(err.to_string().contains("by"), "{err}");
    }

    #[test]
    fn demo_consent_covers_now_whatever_the_time_of_day() {
        let base: Timestamp = "2026-11-23T00:00:00Z".parse().unwrap();
        for minutes in (0..24 * 60).step_by(7) {
            let now = base + SignedDuration::from_mins(minutes);
            let c = Consent::around(now, 2, "demo");
            assert!(matches!(c.decide(now), ConsentDecision::Allowed { .. }), "at {now}");
            assert!(matches!(
                c.decide(now + SignedDuration::from_hours(3)),
                ConsentDecision::Refused { .. }
            ));
        }
    }

    #[test]
    fn no_windows_at_all_is_a_problem() {
        let raw = parse("[record]\ngiven = 2026-09-14\nbasis = \"samtycke\"\n");
        let all = raw.validate().unwrap_err().join("\n");
        assert!(all.contains("no consent window is configured"), "{all}");
    }

    /// One to three random windows (whole minutes, 1 min – 23 h 59 min long); half the edges
    /// are drawn near the small hours, where both daylight-saving shifts happen. Draws that
    /// overlap or touch are rejected by the test.
    fn windows_strategy() -> impl Strategy<Value = Vec<(u16, u16)>> {
        let start = prop_oneof![0..DAY_MINUTES, 60u16..(4 * 60)];
        let length = prop_oneof![1..DAY_MINUTES, 1u16..180];
        prop::collection::vec((start, length), 1..=3)
    }

    /// Seconds after 2026-01-01T00:00Z: anywhere in the year, or the 24 h before either
    /// daylight-saving night (probes then reach up to 36 h further).
    fn base_strategy() -> impl Strategy<Value = i64> {
        const DAY: i64 = 24 * 3600;
        let spring = 86 * DAY; // 2026-03-28T00:00Z
        let autumn = 296 * DAY; // 2026-10-24T00:00Z
        prop_oneof![0..366 * DAY, spring..spring + DAY, autumn..autumn + DAY]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]

        #[test]
        fn allowed_only_inside_a_window_and_refused_outside_only_when_outside(
            draws in windows_strategy(),
            second_of_year in base_strategy(),
            probes in prop::collection::vec(0i64..(36 * 3600), 8),
        ) {
            let windows: Vec<ConsentWindow> = draws
                .iter()
                .map(|&(start, len)| ConsentWindow { start, end: (start + len) % DAY_MINUTES })
                .collect();
            let consent = Consent::new(stockholm(), windows.clone(), [], record());
            prop_assume!(consent.is_ok());
            let consent = consent.unwrap();
            let tz = stockholm();
            let base = utc("2026-01-01T00:00:00Z")
                .checked_add(SignedDuration::from_secs(second_of_year)).unwrap();
            for probe in probes {
                let now = base.checked_add(SignedDuration::from_secs(probe)).unwrap();
                let reading = tz.to_datetime(now);
                let inside: Vec<&ConsentWindow> =
                    windows.iter().filter(|w| w.contains_clock(reading.time())).collect();
                let in_fold = matches!(
                    tz.to_ambiguous_timestamp(reading).offset(),
                    AmbiguousOffset::Fold { .. }
                );
                match consent.decide(now) {
                    ConsentDecision::Allowed { window_ends } => {
                        // Never open outside consent.
                        prop_assert_eq!(inside.len(), 1, "allowed at {} reading {}", now, reading);
                        prop_assert!(window_ends > now);
                        let longest = inside[0].wall_clock_length() + SignedDuration::from_hours(1);
                        prop_assert!(window_ends.duration_since(now) <= longest);
                        // Contiguous: the last second before the end is allowed with the same end.
                        let last = window_ends.checked_sub(SignedDuration::from_secs(1)).unwrap();
                        prop_assert_eq!(consent.decide(last), ConsentDecision::Allowed { window_ends });
                        let at_end = consent.decide(window_ends);
                        prop_assert_ne!(at_end, ConsentDecision::Allowed { window_ends });
                    }
                    ConsentDecision::Refused {
                        reason: RefusalReason::OutsideWindow { next_window_starts },
                    } => {
                        // Outside by the clock, except the repeated hour, where the lock may
                        // stay closed although the clock reads inside (see the module note).
                        prop_assert!(inside.is_empty() || in_fold, "refused at {} reading {}", now, reading);
                        let next = next_window_starts.unwrap();
                        prop_assert!(next > now);
                        prop_assert!(
                            matches!(consent.decide(next), ConsentDecision::Allowed { .. }),
                            "next window at {} does not open", next
                        );
                    }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
    }
}
