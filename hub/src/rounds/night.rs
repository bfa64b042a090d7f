//! Nights and their round: which night a moment belongs to, and the checks of a night.
//!
//! A night is named by the date of its evening (the night of 2026-10-24 runs into the morning
//! of 2026-10-25). The night shift is a span of local wall-clock times in the hub's time zone
//! (Europe/Stockholm), e.g. 21:00–07:00. An agreed check time belongs to the evening part of
//! the night when it is at or after the shift's start, else to its morning part.
//!
//! Daylight saving, the two nights a year that matter:
//! - spring (2026-03-29, 02:00 → 03:00): a check agreed for 02:30 has no wall-clock moment;
//!   it is planned at 03:30 (the moment an hour after 01:30, jiff's "compatible" rule). It is
//!   not lost.
//! - autumn (2026-10-25, 03:00 → 02:00): 02:30 happens twice; the check is planned once, at the
//!   first 02:30 (summer time). It is not doubled.
//!
//! Tolerance windows are real durations around the planned moment (±15 min is 30 minutes
//! even across a change), so a window never collapses or doubles either.

use super::plan::{Method, Recipient};
use super::state::{Origin, RoundCheck};
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

/// The night shift of every night.
#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    pub start: Time,
    pub end: Time,
    pub tz: TimeZone,
}

impl Shift {
    /// The local moment of wall-clock `t` on `date` (compatible rule: a time in the spring gap
    /// moves forward by the gap, a time in the autumn fold takes its first occurrence).
    pub fn moment(&self, date: Date, t: Time) -> Timestamp {
        match date.to_datetime(t).to_zoned(self.tz.clone()) {
            Ok(z) => z.timestamp(),
            // Only dates near the ends of jiff's range fail; nights are never there.
            Err(_) => Timestamp::UNIX_EPOCH,
        }
    }

    fn crosses_midnight(&self) -> bool {
        self.end <= self.start
    }

    /// The date on which wall-clock `t` falls in `night`.
    fn date_of(&self, night: Date, t: Time) -> Date {
        if self.crosses_midnight() && t < self.start {
            night.tomorrow().unwrap_or(night)
        } else {
            night
        }
    }

    /// A span of wall-clock times that starts in the evening (from noon) or after midnight of
    /// `night`, e.g. a patrol's 21:45–06:30: its start and its end after that start.
    pub fn span_of(&self, night: Date, (start, end): (Time, Time)) -> (Timestamp, Timestamp) {
        let noon = Time::constant(12, 0, 0, 0);
        let date = if start >= noon { night } else { night.tomorrow().unwrap_or(night) };
        let from = self.moment(date, start);
        let mut to = self.moment(date, end);
        if to <= from {
            to = self.moment(date.tomorrow().unwrap_or(date), end);
        }
        (from, to)
    }

    /// The moment of the agreed wall-clock time `t` in `night`.
    pub fn at(&self, night: Date, t: Time) -> Timestamp {
        self.moment(self.date_of(night, t), t)
    }

    /// The shift of `night`: from its start to its end.
    pub fn span(&self, night: Date) -> (Timestamp, Timestamp) {
        (self.moment(night, self.start), self.at(night, self.end))
    }

    /// Whether wall-clock `t` lies within the shift (start inclusive, end exclusive).
    pub fn contains_clock(&self, t: Time) -> bool {
        if self.crosses_midnight() {
            t >= self.start || t < self.end
        } else {
            t >= self.start && t < self.end
        }
    }

    /// The night whose shift contains `now`, if any.
    pub fn night_at(&self, now: Timestamp) -> Option<Date> {
        let today = self.tz.to_datetime(now).date();
        [today.yesterday().ok(), Some(today)].into_iter().flatten().find(|night| {
            let (start, end) = self.span(*night);
            start <= now && now < end
        })
    }

    /// The next night whose shift starts after `now`.
    pub fn next_night(&self, now: Timestamp) -> Date {
        let today = self.tz.to_datetime(now).date();
        let mut night = today.yesterday().unwrap_or(today);
        while self.span(night).0 <= now {
            match night.checked_add(1.day()) {
                Ok(next) => night = next,
                Err(_) => break,
            }
        }
        night
    }
}

fn minutes(n: u32) -> SignedDuration {
    SignedDuration::from_mins(i64::from(n))
}

/// The id of a planned check: night, person and agreed time, e.g. `2026-11-23-anna-berg-0200`.
pub fn check_id(night: Date, recipient: &str, at: Time) -> String {
    format!("{night}-{recipient}-{:02}{:02}", at.hour(), at.minute())
}

/// Every check of `night` for these people, one per agreed time, ordered by planned moment.
/// A person opted out of the night gets their checks with the outcome `refused_by_consent`
/// already set, so the round shows that nobody was checked and why.
pub fn generate(night: Date, shift: &Shift, recipients: &[Recipient], now: Timestamp) -> Vec<RoundCheck> {
    let mut checks = Vec::new();
    for r in recipients {
        let opted_out = r.opted_out_nights.contains(&night);
        for c in &r.checks {
            let planned_at = shift.at(night, c.at);
            let tolerance = minutes(c.tolerance_min());
            let mut check = RoundCheck::new(
                check_id(night, &r.id, c.at),
                night,
                r,
                Origin::Plan { at: c.at },
                c.method,
                planned_at,
                (planned_at - tolerance, planned_at + tolerance),
            );
            check.visit_min = c.visit_min();
            check.notes = c.notes.clone();
            if c.method == Method::Visit {
                check.plan_visit(now);
            }
            if opted_out {
                check.opted_out(now);
            }
            checks.push(check);
        }
    }
    checks.sort_by(|a, b| (a.planned_at, &a.id).cmp(&(b.planned_at, &b.id)));
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rounds::plan::tests::anna;
    use crate::rounds::state::{Outcome, State};
    use jiff::civil::{date, time};

    pub(crate) fn stockholm(start: Time, end: Time) -> Shift {
        Shift { start, end, tz: TimeZone::get("Europe/Stockholm").unwrap() }
    }

    fn local(s: &str) -> Timestamp {
        format!("{s}[Europe/Stockholm]").parse::<jiff::Zoned>().unwrap().timestamp()
    }

    fn recipient(times: &[&str]) -> Recipient {
        let mut plan = anna();
        plan["checks"] = times.iter().map(|t| serde_json::json!({"at": t, "method": "camera"})).collect();
        plan["consent"]["windows"] = serde_json::json!(["20:00-08:00"]);
        serde_json::from_value(plan).unwrap()
    }

    #[test]
    fn check_times_after_midnight_belong_to_the_morning_of_the_night() {
        let shift = stockholm(time(21, 0, 0, 0), time(7, 0, 0, 0));
        let night = date(2026, 11, 23);
        assert_eq!(shift.at(night, time(23, 0, 0, 0)), local("2026-11-23T23:00"));
        assert_eq!(shift.at(night, time(2, 0, 0, 0)), local("2026-11-24T02:00"));
        assert_eq!(shift.span(night), (local("2026-11-23T21:00"), local("2026-11-24T07:00")));
        assert_eq!(shift.night_at(local("2026-11-24T06:59")), Some(night));
        assert_eq!(shift.night_at(local("2026-11-23T21:00")), Some(night));
        assert_eq!(shift.night_at(local("2026-11-24T07:00")), None);
        assert_eq!(shift.night_at(local("2026-11-23T12:00")), None);
        assert_eq!(shift.next_night(local("2026-11-23T12:00")), night);
        assert_eq!(shift.next_night(local("2026-11-23T22:00")), date(2026, 11, 24));
    }

    #[test]
    fn a_patrol_starting_before_the_round_shift_starts_that_evening_not_the_next() {
        let shift = stockholm(time(22, 0, 0, 0), time(6, 0, 0, 0));
        let night = date(2026, 11, 23);
        assert_eq!(
            shift.span_of(night, (time(21, 45, 0, 0), time(6, 30, 0, 0))),
            (local("2026-11-23T21:45"), local("2026-11-24T06:30"))
        );
        assert_eq!(
            shift.span_of(night, (time(0, 30, 0, 0), time(5, 0, 0, 0))),
            (local("2026-11-24T00:30"), local("2026-11-24T05:00"))
        );
    }

    #[test]
    fn in_the_spring_gap_a_check_at_0230_is_planned_at_0330_and_none_is_lost() {
        let shift = stockholm(time(21, 0, 0, 0), time(7, 0, 0, 0));
        let night = date(2026, 3, 28);
        let checks = generate(night, &shift, &[recipient(&["01:30", "02:00", "02:30", "03:00", "03:30"])], local("2026-03-28T21:00"));
        let planned: Vec<Timestamp> = checks.iter().map(|c| c.planned_at).collect();
        assert_eq!(checks.len(), 5, "one check per agreed time");
        // 02:00 and 02:30 do not exist that night: they move forward by the gap.
        assert_eq!(
            planned,
            vec![
                local("2026-03-29T01:30"),
                local("2026-03-29T03:00"),
                local("2026-03-29T03:00"),
                local("2026-03-29T03:30"),
                local("2026-03-29T03:30"),
            ]
        );
        let ids: std::collections::BTreeSet<&str> = checks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), 5, "distinct ids: {ids:?}");
        // The shift is an hour shorter, and still ends at 07:00.
        let (start, end) = shift.span(night);
        assert_eq!(end.duration_since(start).as_hours(), 9);
    }

    #[test]
    fn in_the_autumn_fold_a_check_at_0230_is_planned_once_at_its_first_occurrence() {
        let shift = stockholm(time(21, 0, 0, 0), time(7, 0, 0, 0));
        let night = date(2026, 10, 24);
        let checks = generate(night, &shift, &[recipient(&["02:00", "02:30", "03:00"])], local("2026-10-24T21:00"));
        assert_eq!(checks.len(), 3);
        let first_0230: Timestamp = "2026-10-25T00:30:00Z".parse().unwrap();
        assert_eq!(checks[1].planned_at, first_0230, "02:30 CEST, not 02:30 CET");
        // 03:00 CET comes two hours after 02:00 CEST.
        assert_eq!(checks[2].planned_at.duration_since(checks[0].planned_at).as_hours(), 2);
        // Its tolerance window is 30 real minutes.
        assert_eq!(checks[1].window.1.duration_since(checks[1].window.0).as_mins(), 30);
        let (start, end) = shift.span(night);
        assert_eq!(end.duration_since(start).as_hours(), 11);
    }

    #[test]
    fn a_person_opted_out_of_the_night_has_checks_that_end_refused_by_consent_at_once() {
        let shift = stockholm(time(21, 0, 0, 0), time(7, 0, 0, 0));
        let mut r = recipient(&["23:00", "03:00"]);
        r.opted_out_nights = vec![date(2026, 12, 24)];
        let now = local("2026-12-24T21:00");
        let checks = generate(date(2026, 12, 24), &shift, std::slice::from_ref(&r), now);
        assert!(checks.iter().all(|c| c.state == State::Done));
        assert!(checks.iter().all(|c| c.outcome.as_ref().map(|o| o.outcome) == Some(Outcome::RefusedByConsent)));
        let other = generate(date(2026, 12, 25), &shift, &[r], now);
        assert!(other.iter().all(|c| c.state == State::Planned));
    }
}
