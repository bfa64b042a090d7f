//! Night and month reports per team: what was planned, how it was done, what was missed, how
//! many people were not woken, how quickly escalations and alarms got a person on site, and the
//! night's missed doses and GPS alarms.
//!
//! Pure: [`report`] takes a period's round checks and the counts of device events, and adds up.
//! Invariant, checked by the tests: for every row, `planned` equals the sum of the outcomes plus
//! `open` (checks still running), so a report always adds up.

use super::state::{Origin, Outcome, RoundCheck};
use jiff::civil::Date;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Event kinds counted as GPS alarms.
pub const GPS_ALARM_KINDS: [&str; 2] = ["geofence_left", "sos"];
pub const DOSE_MISSED: &str = "dose_missed";

/// One team's figures for a night or a month.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TeamReport {
    pub team: String,
    /// Every check of the period: agreed in the plans, and added by alarm rules.
    pub planned: u64,
    pub from_alarms: u64,
    pub by_camera: u64,
    pub by_visit: u64,
    pub declined: u64,
    pub not_at_home: u64,
    pub refused_by_consent: u64,
    pub missed: u64,
    /// Not ended yet (a night still running).
    pub open: u64,
    /// Camera checks that settled a check: people not woken by a visit.
    pub wakeups_avoided: u64,
    /// Checks the camera could not settle that became a visit.
    pub escalations: u64,
    /// Escalated visits recorded within their promise (on site by the promised time).
    pub escalations_within_promise: u64,
    /// From escalation to the visit's recorded outcome, in minutes.
    pub escalation_to_on_site_min: Stats,
    /// From an alarm to the recorded outcome of the check its rule added, in minutes.
    pub alarm_to_on_site_min: Stats,
    pub missed_doses: u64,
    pub gps_alarms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub count: u64,
    pub mean: Option<f64>,
    pub max: Option<f64>,
}

impl Stats {
    fn of(values: &[f64]) -> Stats {
        if values.is_empty() {
            return Stats::default();
        }
        let sum: f64 = values.iter().sum();
        Stats {
            count: values.len() as u64,
            mean: Some((sum / values.len() as f64 * 10.0).round() / 10.0),
            max: values.iter().copied().reduce(f64::max),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `night` or `month`.
    pub period: String,
    pub first_night: Date,
    pub last_night: Date,
    pub teams: Vec<TeamReport>,
    pub total: TeamReport,
}

/// Adds up a period's checks. `device_events`: (device, kind, count) of the period;
/// `team_of_device` maps a device to its person's team.
pub fn report(
    period: &str,
    (first_night, last_night): (Date, Date),
    checks: &[RoundCheck],
    device_events: &[(String, String, u64)],
    team_of_device: &BTreeMap<String, String>,
) -> Report {
    let mut teams: BTreeMap<String, (TeamReport, Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for c in checks {
        let (t, escalation_min, alarm_min) = teams.entry(c.team.clone()).or_default();
        t.planned += 1;
        if matches!(c.origin, Origin::Alarm { .. }) {
            t.from_alarms += 1;
        }
        let escalated = c.escalated() && !matches!(c.origin, Origin::Alarm { .. });
        if escalated {
            t.escalations += 1;
        }
        let Some(o) = &c.outcome else {
            t.open += 1;
            continue;
        };
        match o.outcome {
            Outcome::CheckedByCamera => {
                t.by_camera += 1;
                t.wakeups_avoided += 1;
            }
            Outcome::CheckedByVisit => t.by_visit += 1,
            Outcome::Declined => t.declined += 1,
            Outcome::NotAtHome => t.not_at_home += 1,
            Outcome::RefusedByConsent => t.refused_by_consent += 1,
            Outcome::Missed => t.missed += 1,
        }
        let on_site = matches!(o.outcome, Outcome::CheckedByVisit | Outcome::Declined | Outcome::NotAtHome);
        if let (true, Some(v)) = (on_site, &c.visit) {
            if escalated {
                escalation_min.push(o.at.duration_since(v.requested_at).as_secs_f64() / 60.0);
                if o.at <= v.latest {
                    t.escalations_within_promise += 1;
                }
            }
        }
        if let (true, Origin::Alarm { raised_at, .. }) = (on_site, &c.origin) {
            alarm_min.push(o.at.duration_since(*raised_at).as_secs_f64() / 60.0);
        }
    }
    for (device, kind, n) in device_events {
        let Some(team) = team_of_device.get(device) else { continue };
        let (t, _, _) = teams.entry(team.clone()).or_default();
        if kind == DOSE_MISSED {
            t.missed_doses += n;
        } else if GPS_ALARM_KINDS.contains(&kind.as_str()) {
            t.gps_alarms += n;
        }
    }
    let mut total = TeamReport { team: "all".into(), ..TeamReport::default() };
    let (mut all_escalation, mut all_alarm) = (Vec::new(), Vec::new());
    let teams: Vec<TeamReport> = teams
        .into_iter()
        .map(|(team, (mut t, escalation_min, alarm_min))| {
            t.team = team;
            t.escalation_to_on_site_min = Stats::of(&escalation_min);
            t.alarm_to_on_site_min = Stats::of(&alarm_min);
            all_escalation.extend(escalation_min);
            all_alarm.extend(alarm_min);
            add(&mut total, &t);
            t
        })
        .collect();
    total.escalation_to_on_site_min = Stats::of(&all_escalation);
    total.alarm_to_on_site_min = Stats::of(&all_alarm);
    Report { period: period.to_string(), first_night, last_night, teams, total }
}

fn add(total: &mut TeamReport, t: &TeamReport) {
    total.planned += t.planned;
    total.from_alarms += t.from_alarms;
    total.by_camera += t.by_camera;
    total.by_visit += t.by_visit;
    total.declined += t.declined;
    total.not_at_home += t.not_at_home;
    total.refused_by_consent += t.refused_by_consent;
    total.missed += t.missed;
    total.open += t.open;
    total.wakeups_avoided += t.wakeups_avoided;
    total.escalations += t.escalations;
    total.escalations_within_promise += t.escalations_within_promise;
    total.missed_doses += t.missed_doses;
    total.gps_alarms += t.gps_alarms;
}

pub const CSV_HEADER: &str = "period,first_night,last_night,team,planned,from_alarms,by_camera,by_visit,declined,not_at_home,refused_by_consent,missed,open,wakeups_avoided,escalations,escalations_within_promise,escalation_to_on_site_mean_min,escalation_to_on_site_max_min,alarm_to_on_site_mean_min,alarm_to_on_site_max_min,missed_doses,gps_alarms";

/// One line per team and a last line `all`; the header names every column.
pub fn csv(r: &Report) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
    for t in r.teams.iter().chain(std::iter::once(&r.total)) {
        // Team names are free text: quote them as RFC 4180 asks.
        let team = format!("\"{}\"", t.team.replace('"', "\"\""));
        let _ = writeln!(
            out,
            "{},{},{},{team},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.period,
            r.first_night,
            r.last_night,
            t.planned,
            t.from_alarms,
            t.by_camera,
            t.by_visit,
            t.declined,
            t.not_at_home,
            t.refused_by_consent,
            t.missed,
            t.open,
            t.wakeups_avoided,
            t.escalations,
            t.escalations_within_promise,
            opt(t.escalation_to_on_site_min.mean),
            opt(t.escalation_to_on_site_min.max),
            opt(t.alarm_to_on_site_min.mean),
            opt(t.alarm_to_on_site_min.max),
            t.missed_doses,
            t.gps_alarms
        );
    }
    out
}

impl TeamReport {
    /// Whether the outcomes and the open checks add up to the planned ones.
    pub fn adds_up(&self) -> bool {
        self.planned
            == self.by_camera + self.by_visit + self.declined + self.not_at_home + self.refused_by_consent + self.missed + self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rounds::night::generate;
    use crate::rounds::plan::tests::anna;
    use crate::rounds::plan::Recipient;
    use crate::rounds::scheduler::{Round, Settings};
    use crate::rounds::Shift;
    use jiff::civil::{date, time};
    use jiff::Timestamp;
    use std::collections::HashSet;

    fn local(s: &str) -> Timestamp {
        format!("{s}[Europe/Stockholm]").parse::<jiff::Zoned>().unwrap().timestamp()
    }

    #[test]
    fn a_night_adds_up_per_team_and_in_total_and_the_csv_has_a_line_per_team() {
        let shift = Shift { start: time(21, 0, 0, 0), end: time(7, 0, 0, 0), tz: jiff::tz::TimeZone::get("Europe/Stockholm").unwrap() };
        let night = date(2026, 11, 23);
        let mut people = Vec::new();
        for (i, team) in ["centrum", "centrum", "byar, norr"].iter().enumerate() {
            let mut plan = anna();
            plan["id"] = format!("p{i}").into();
            plan["team"] = (*team).into();
            plan["devices"] = serde_json::json!([format!("cam-{i}")]);
            plan["camera_device"] = format!("cam-{i}").into();
            people.push(serde_json::from_value::<Recipient>(plan).unwrap());
        }
        let mut r = Round::new(night, generate(night, &shift, &people, local("2026-11-23T21:00")), Settings::default(), shift.span(night).1);
        let mut n = 0;
        let mut ids = || {
            n += 1;
            format!("cc-{n}")
        };
        r.tick(local("2026-11-23T23:00"), &HashSet::new(), &mut ids);
        r.answer(local("2026-11-23T23:00:30"), "cc-1", "resting", None);
        r.answer(local("2026-11-23T23:00:30"), "cc-2", "unclear", None);
        r.answer(local("2026-11-23T23:00:30"), "cc-3", "not_in_bed", None);
        r.decide(local("2026-11-23T23:05"), "2026-11-23-p1-2300", false, "Omar", None).unwrap();
        r.record(local("2026-11-23T23:35"), "2026-11-23-p1-2300", Outcome::CheckedByVisit, "Bil 1", None).unwrap();
        let checks: Vec<RoundCheck> = r.checks.values().cloned().collect();
        let events = vec![("cam-0".to_string(), "dose_missed".to_string(), 2), ("cam-2".into(), "geofence_left".into(), 1), ("stranger".into(), "sos".into(), 9)];
        let teams: BTreeMap<String, String> = people.iter().map(|p| (p.devices[0].clone(), p.team.clone())).collect();
        let rep = report("night", (night, night), &checks, &events, &teams);
        assert_eq!(rep.teams.len(), 2);
        let centrum = rep.teams.iter().find(|t| t.team == "centrum").unwrap();
        assert_eq!((centrum.planned, centrum.by_camera, centrum.by_visit, centrum.open), (6, 1, 1, 4));
        assert_eq!((centrum.wakeups_avoided, centrum.escalations, centrum.escalations_within_promise), (1, 1, 1));
        assert_eq!(centrum.escalation_to_on_site_min.mean, Some(30.0));
        assert_eq!(centrum.missed_doses, 2);
        let norr = rep.teams.iter().find(|t| t.team == "byar, norr").unwrap();
        assert_eq!((norr.gps_alarms, norr.open), (1, 3));
        assert!(rep.teams.iter().all(TeamReport::adds_up));
        assert!(rep.total.adds_up());
        assert_eq!(rep.total.planned, 9);
        assert_eq!(rep.total.gps_alarms, 1, "a device of nobody's plan counts for no team");
        let text = csv(&rep);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], CSV_HEADER);
        assert!(lines[2].starts_with("night,2026-11-23,2026-11-23,\"centrum\",6,0,1,1,0,0,0,0,4,1,1,1,30.0,30.0"));
        assert!(lines[1].contains("\"byar, norr\""));
        assert_eq!(lines[0].split(',').count(), lines[3].split(',').count());
    }
}
