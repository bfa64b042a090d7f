//! Night and month reports per team: what was planned, how it was done, what was missed, how
//! many people were not woken, how quickly escalations and alarms got a person on site, and the
//! night's missed doses and GPS alarms.
//!
//! Pure: [`report`] takes a period's round checks, the counts of device events and the alarms
//! raised with what staff did about them ([`Inputs`]), and adds up.
//! Invariant, checked by the tests: for every row, `planned` equals the sum of the outcomes plus
//! `open` (checks still running), so a report always adds up.

use super::state::{Origin, Outcome, RoundCheck};
use crate::store::AlarmRow;
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
    /// Alarms raised in the period (SOS, geofence, falls, supervision lost, …), one per
    /// alarm however often it was triggered while open.
    pub alarms: u64,
    /// Of those, the ones nobody has acknowledged (yet).
    pub alarms_unacknowledged: u64,
    /// From an alarm to its acknowledgement by staff, in minutes.
    pub alarm_to_acknowledged_min: Stats,
    /// From an alarm to the recorded outcome of the check its rule added, in minutes.
    pub alarm_to_on_site_min: Stats,
    /// From an alarm to staff resolving it, in minutes.
    pub alarm_to_resolved_min: Stats,
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

/// What a period's report is made from.
pub struct Inputs<'a> {
    pub checks: &'a [RoundCheck],
    /// (device, kind, count) of the period's device events.
    pub device_events: &'a [(String, String, u64)],
    /// The alarms raised in the period, with their handling.
    pub alarms: &'a [AlarmRow],
    /// Device → the team of the person whose plan lists it. Events and alarms of a device in
    /// nobody's plan (or of a team the caller does not see) count for no team.
    pub team_of_device: &'a BTreeMap<String, String>,
}

/// A team's figures while they are being added up, with the response times seen so far.
#[derive(Default)]
struct Tally {
    t: TeamReport,
    escalation_min: Vec<f64>,
    alarm_on_site_min: Vec<f64>,
    acknowledged_min: Vec<f64>,
    resolved_min: Vec<f64>,
}

fn minutes(from: jiff::Timestamp, to: jiff::Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64() / 60.0
}

/// Adds up a period's checks, device events and alarms.
pub fn report(period: &str, (first_night, last_night): (Date, Date), inputs: &Inputs) -> Report {
    let mut teams: BTreeMap<String, Tally> = BTreeMap::new();
    for c in inputs.checks {
        let tally = teams.entry(c.team.clone()).or_default();
        let t = &mut tally.t;
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
                tally.escalation_min.push(minutes(v.requested_at, o.at));
                if o.at <= v.latest {
                    t.escalations_within_promise += 1;
                }
            }
        }
        if let (true, Origin::Alarm { raised_at, .. }) = (on_site, &c.origin) {
            tally.alarm_on_site_min.push(minutes(*raised_at, o.at));
        }
    }
    for (device, kind, n) in inputs.device_events {
        let Some(team) = inputs.team_of_device.get(device) else { continue };
        let t = &mut teams.entry(team.clone()).or_default().t;
        if kind == DOSE_MISSED {
            t.missed_doses += n;
        } else if GPS_ALARM_KINDS.contains(&kind.as_str()) {
            t.gps_alarms += n;
        }
    }
    for a in inputs.alarms {
        let Some(team) = inputs.team_of_device.get(&a.device) else { continue };
        let tally = teams.entry(team.clone()).or_default();
        tally.t.alarms += 1;
        match a.handling.acked_at {
            Some(at) => tally.acknowledged_min.push(minutes(a.raised_at, at)),
            None => tally.t.alarms_unacknowledged += 1,
        }
        if let Some(at) = a.handling.resolved_at {
            tally.resolved_min.push(minutes(a.raised_at, at));
        }
    }
    let mut total = TeamReport { team: "all".into(), ..TeamReport::default() };
    let mut all = Tally::default();
    let teams: Vec<TeamReport> = teams
        .into_iter()
        .map(|(team, tally)| {
            let mut t = tally.t;
            t.team = team;
            t.escalation_to_on_site_min = Stats::of(&tally.escalation_min);
            t.alarm_to_on_site_min = Stats::of(&tally.alarm_on_site_min);
            t.alarm_to_acknowledged_min = Stats::of(&tally.acknowledged_min);
            t.alarm_to_resolved_min = Stats::of(&tally.resolved_min);
            all.escalation_min.extend(tally.escalation_min);
            all.alarm_on_site_min.extend(tally.alarm_on_site_min);
            all.acknowledged_min.extend(tally.acknowledged_min);
            all.resolved_min.extend(tally.resolved_min);
            add(&mut total, &t);
            t
        })
        .collect();
    total.escalation_to_on_site_min = Stats::of(&all.escalation_min);
    total.alarm_to_on_site_min = Stats::of(&all.alarm_on_site_min);
    total.alarm_to_acknowledged_min = Stats::of(&all.acknowledged_min);
    total.alarm_to_resolved_min = Stats::of(&all.resolved_min);
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
    total.alarms += t.alarms;
    total.alarms_unacknowledged += t.alarms_unacknowledged;
    total.missed_doses += t.missed_doses;
    total.gps_alarms += t.gps_alarms;
}

pub const CSV_HEADER: &str = "period,first_night,last_night,team,planned,from_alarms,by_camera,by_visit,declined,not_at_home,refused_by_consent,missed,open,wakeups_avoided,escalations,escalations_within_promise,escalation_to_on_site_mean_min,escalation_to_on_site_max_min,alarms,alarms_unacknowledged,alarm_to_acknowledged_mean_min,alarm_to_acknowledged_max_min,alarm_to_on_site_mean_min,alarm_to_on_site_max_min,alarm_to_resolved_mean_min,alarm_to_resolved_max_min,missed_doses,gps_alarms";

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
            "{},{},{},{team},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
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
            t.alarms,
            t.alarms_unacknowledged,
            opt(t.alarm_to_acknowledged_min.mean),
            opt(t.alarm_to_acknowledged_min.max),
            opt(t.alarm_to_on_site_min.mean),
            opt(t.alarm_to_on_site_min.max),
            opt(t.alarm_to_resolved_min.mean),
            opt(t.alarm_to_resolved_min.max),
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
        let alarm = |device: &str, raised: &str, acked: Option<&str>, resolved: Option<&str>| AlarmRow {
            id: 0,
            device: device.into(),
            site: "s".into(),
            kind: "sos".into(),
            raised_at: local(raised),
            cleared_at: None,
            occurrences: 1,
            last_event: None,
            updated_at: local(raised),
            handling: crate::store::AlarmHandling { acked_at: acked.map(local), resolved_at: resolved.map(local), ..Default::default() },
        };
        let alarms = vec![
            alarm("cam-0", "2026-11-23T22:00", Some("2026-11-23T22:02"), Some("2026-11-23T22:40")),
            alarm("cam-1", "2026-11-23T23:00", Some("2026-11-23T23:06"), None),
            alarm("cam-1", "2026-11-24T01:00", None, None),
            alarm("stranger", "2026-11-24T01:00", Some("2026-11-24T01:01"), None),
        ];
        let inputs = Inputs { checks: &checks, device_events: &events, alarms: &alarms, team_of_device: &teams };
        let rep = report("night", (night, night), &inputs);
        assert_eq!(rep.teams.len(), 2);
        let centrum = rep.teams.iter().find(|t| t.team == "centrum").unwrap();
        assert_eq!((centrum.planned, centrum.by_camera, centrum.by_visit, centrum.open), (6, 1, 1, 4));
        assert_eq!((centrum.wakeups_avoided, centrum.escalations, centrum.escalations_within_promise), (1, 1, 1));
        assert_eq!(centrum.escalation_to_on_site_min.mean, Some(30.0));
        assert_eq!(centrum.missed_doses, 2);
        assert_eq!((centrum.alarms, centrum.alarms_unacknowledged), (3, 1));
        assert_eq!(centrum.alarm_to_acknowledged_min, Stats { count: 2, mean: Some(4.0), max: Some(6.0) });
        assert_eq!(centrum.alarm_to_resolved_min, Stats { count: 1, mean: Some(40.0), max: Some(40.0) });
        let norr = rep.teams.iter().find(|t| t.team == "byar, norr").unwrap();
        assert_eq!((norr.gps_alarms, norr.open), (1, 3));
        assert!(rep.teams.iter().all(TeamReport::adds_up));
        assert!(rep.total.adds_up());
        assert_eq!(rep.total.planned, 9);
        assert_eq!(rep.total.gps_alarms, 1, "a device of nobody's plan counts for no team");
        assert_eq!(rep.total.alarms, 3, "nor does its alarm");
        assert_eq!(rep.total.alarm_to_acknowledged_min.count, 2);
        let text = csv(&rep);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], CSV_HEADER);
        assert!(lines[2].starts_with("night,2026-11-23,2026-11-23,\"centrum\",6,0,1,1,0,0,0,0,4,1,1,1,30.0,30.0,3,1,4.0,6.0,,,40.0,40.0,2,0"), "{}", lines[2]);
        assert!(lines[1].contains("\"byar, norr\""));
        assert_eq!(lines[0].split(',').count(), lines[3].split(',').count());
    }
}
