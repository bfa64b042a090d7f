use super::*;
use crate::rounds::night::{generate, Shift};
use crate::rounds::plan::tests::anna;
use jiff::civil::{date, time, Time};
use jiff::tz::TimeZone;
use proptest::prelude::*;

fn shift() -> Shift {
    Shift { start: time(21, 0, 0, 0), end: time(7, 0, 0, 0), tz: TimeZone::get("Europe/Stockholm").unwrap() }
}

fn local(s: &str) -> Timestamp {
    format!("{s}[Europe/Stockholm]").parse::<jiff::Zoned>().unwrap().timestamp()
}

fn person(id: &str, checks: &[(&str, &str)]) -> Recipient {
    let mut plan = anna();
    plan["id"] = id.into();
    plan["camera_device"] = format!("cam-{id}").into();
    plan["devices"] = serde_json::json!([format!("cam-{id}")]);
    plan["consent"]["windows"] = serde_json::json!(["20:00-08:00"]);
    plan["checks"] = checks.iter().map(|(at, m)| serde_json::json!({"at": at, "method": m})).collect();
    let r: Recipient = serde_json::from_value(plan).unwrap();
    assert_eq!(r.validate(), Vec::<String>::new());
    r
}

fn round(night: Date, people: &[Recipient]) -> Round {
    let s = shift();
    let now = s.span(night).0;
    Round::new(night, generate(night, &s, people, now), Settings::default(), s.span(night).1)
}

fn ids() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("cc-{n}")
    }
}

fn none() -> HashSet<String> {
    HashSet::new()
}

fn sends(a: &Actions) -> Vec<String> {
    a.actions
        .iter()
        .filter_map(|a| match a {
            Action::SendCamera { camera_check, .. } => Some(camera_check.clone()),
            Action::RouteVisit { .. } => None,
        })
        .collect()
}

fn routed(a: &Actions) -> Vec<String> {
    a.actions
        .iter()
        .filter_map(|a| match a {
            Action::RouteVisit { check } => Some(check.clone()),
            Action::SendCamera { .. } => None,
        })
        .collect()
}

const NIGHT: Date = date(2026, 11, 23);

#[test]
fn a_camera_check_goes_out_at_its_time_and_resting_settles_it_without_a_visit() {
    let mut r = round(NIGHT, &[person("anna", &[("23:00", "camera")])]);
    let mut new_id = ids();
    assert!(sends(&r.tick(local("2026-11-23T22:59:59"), &none(), &mut new_id)).is_empty());
    let out = r.tick(local("2026-11-23T23:00"), &none(), &mut new_id);
    assert_eq!(sends(&out), vec!["cc-1"]);
    assert_eq!(out.changed.len(), 1);
    assert!(sends(&r.tick(local("2026-11-23T23:01"), &none(), &mut new_id)).is_empty(), "sent once");
    r.answer(local("2026-11-23T23:00:30"), "cc-1", "resting", None);
    let c = &r.checks["2026-11-23-anna-2300"];
    assert_eq!(c.state, State::Done);
    let o = c.outcome.as_ref().unwrap();
    assert_eq!((o.outcome, o.by.as_str()), (Outcome::CheckedByCamera, "camera"));
    assert!(c.visit.is_none());
}

#[test]
fn not_in_bed_twice_retries_after_twenty_minutes_then_promises_a_visit_within_45() {
    let mut r = round(NIGHT, &[person("anna", &[("23:00", "camera")])]);
    let mut new_id = ids();
    r.tick(local("2026-11-23T23:00"), &none(), &mut new_id);
    r.answer(local("2026-11-23T23:00:20"), "cc-1", "not_in_bed", None);
    let c = &r.checks["2026-11-23-anna-2300"];
    assert_eq!((c.state, c.next_at), (State::RetryWait, Some(local("2026-11-23T23:20:20"))));
    assert!(sends(&r.tick(local("2026-11-23T23:20:19"), &none(), &mut new_id)).is_empty());
    assert_eq!(sends(&r.tick(local("2026-11-23T23:20:20"), &none(), &mut new_id)), vec!["cc-2"]);
    let out = r.answer(local("2026-11-23T23:20:40"), "cc-2", "not_in_bed", None);
    assert_eq!(routed(&out), vec!["2026-11-23-anna-2300"]);
    let c = &r.checks["2026-11-23-anna-2300"];
    let v = c.visit.as_ref().unwrap();
    assert_eq!(c.state, State::Visit);
    assert!(v.urgent);
    assert_eq!((v.earliest, v.latest), (local("2026-11-23T23:20:40"), local("2026-11-24T00:05:40")));
    assert_eq!(v.reason, "camera not_in_bed");
}

#[test]
fn camera_then_visit_goes_to_a_visit_after_one_failed_attempt() {
    let mut r = round(NIGHT, &[person("anna", &[("23:00", "camera_then_visit")])]);
    let mut new_id = ids();
    r.tick(local("2026-11-23T23:00"), &none(), &mut new_id);
    let out = r.answer(local("2026-11-23T23:00:20"), "cc-1", "camera_fault", None);
    assert_eq!(routed(&out).len(), 1);
    assert_eq!(r.checks["2026-11-23-anna-2300"].state, State::Visit);
}

#[test]
fn no_answer_by_the_deadline_fails_the_attempt_and_a_late_resting_answer_still_settles_it() {
    let mut r = round(NIGHT, &[person("anna", &[("23:00", "camera")])]);
    let mut new_id = ids();
    r.tick(local("2026-11-23T23:00"), &none(), &mut new_id);
    r.tick(local("2026-11-23T23:09:59"), &none(), &mut new_id);
    assert_eq!(r.checks["2026-11-23-anna-2300"].state, State::CameraSent);
    r.tick(local("2026-11-23T23:10"), &none(), &mut new_id);
    assert_eq!(r.checks["2026-11-23-anna-2300"].state, State::RetryWait);
    // The answer was on its way (e.g. the hub restarted): it settles the check.
    r.answer(local("2026-11-23T23:10:05"), "cc-1", "resting", None);
    assert_eq!(r.checks["2026-11-23-anna-2300"].outcome.as_ref().unwrap().outcome, Outcome::CheckedByCamera);
    assert!(sends(&r.tick(local("2026-11-23T23:40"), &none(), &mut new_id)).is_empty(), "no retry after it settled");
}

#[test]
fn unclear_waits_for_staff_who_settle_it_or_send_a_visit_and_no_decision_fails_it() {
    let people = [person("a", &[("23:00", "camera")]), person("b", &[("23:00", "camera")]), person("c", &[("23:00", "camera")])];
    let mut r = round(NIGHT, &people);
    let mut new_id = ids();
    r.tick(local("2026-11-23T23:00"), &none(), &mut new_id);
    for cc in ["cc-1", "cc-2", "cc-3"] {
        r.answer(local("2026-11-23T23:00:30"), cc, "unclear", None);
    }
    let (a, b, c) = ("2026-11-23-a-2300", "2026-11-23-b-2300", "2026-11-23-c-2300");
    assert!(r.checks.values().all(|c| c.state == State::AwaitingStaff));
    r.decide(local("2026-11-23T23:02"), a, true, "Omar", None).unwrap();
    let out = r.decide(local("2026-11-23T23:03"), b, false, "Omar", Some("lying on the floor?".into())).unwrap();
    assert_eq!(routed(&out), vec![b]);
    assert_eq!(r.checks[a].outcome.as_ref().unwrap().by, "Omar");
    assert!(r.checks[b].visit.as_ref().unwrap().reason.contains("lying on the floor?"));
    assert_eq!(
        r.decide(local("2026-11-23T23:04"), a, true, "Omar", None),
        Err(InputError::NotAwaitingStaff { id: a.into(), state: "done" })
    );
    r.tick(local("2026-11-23T23:15:30"), &none(), &mut new_id);
    assert_eq!(r.checks[c].state, State::RetryWait);
}

#[test]
fn a_device_offline_at_its_check_time_becomes_a_visit_at_once_and_no_camera_check_is_sent() {
    let mut r = round(NIGHT, &[person("anna", &[("23:00", "camera")])]);
    let offline = HashSet::from(["cam-anna".to_string()]);
    let out = r.tick(local("2026-11-23T23:00"), &offline, &mut ids());
    assert!(sends(&out).is_empty());
    assert_eq!(routed(&out).len(), 1);
    assert_eq!(r.checks["2026-11-23-anna-2300"].visit.as_ref().unwrap().reason, "camera device offline at its check time");
}

#[test]
fn opted_out_tonight_from_the_device_ends_the_check_refused_by_consent() {
    let mut r = round(NIGHT, &[person("anna", &[("23:00", "camera")])]);
    r.tick(local("2026-11-23T23:00"), &none(), &mut ids());
    r.answer(local("2026-11-23T23:00:01"), "cc-1", "refused_outside_consent", Some("opted_out_tonight"));
    assert_eq!(r.checks["2026-11-23-anna-2300"].outcome.as_ref().unwrap().outcome, Outcome::RefusedByConsent);
}

#[test]
fn staff_record_one_outcome_and_a_second_is_refused() {
    let mut r = round(NIGHT, &[person("anna", &[("03:00", "visit")])]);
    let id = "2026-11-24-anna-0300";
    let id = if r.checks.contains_key(id) { id.to_string() } else { r.checks.keys().next().unwrap().clone() };
    assert_eq!(r.checks[&id].state, State::Visit);
    r.record(local("2026-11-24T03:05"), &id, Outcome::CheckedByVisit, "Bil 1", None).unwrap();
    assert_eq!(
        r.record(local("2026-11-24T03:06"), &id, Outcome::NotAtHome, "Bil 2", None),
        Err(InputError::AlreadyDone(id.clone()))
    );
    assert_eq!(
        r.record(local("2026-11-24T03:06"), &id, Outcome::CheckedByCamera, "Bil 2", None),
        Err(InputError::NotStaffOutcome("checked_by_camera"))
    );
}

#[test]
fn at_closing_every_open_check_ends_missed_with_the_reason() {
    let mut r = round(NIGHT, &[person("a", &[("06:50", "camera"), ("06:00", "visit"), ("05:00", "camera")])]);
    let mut new_id = ids();
    r.tick(local("2026-11-24T05:00"), &none(), &mut new_id);
    r.answer(local("2026-11-24T05:00:10"), "cc-1", "resting", None);
    r.tick(local("2026-11-24T06:50"), &none(), &mut new_id);
    r.answer(local("2026-11-24T06:50:10"), "cc-2", "bed_empty_typo", None);
    r.tick(local("2026-11-24T07:59:59"), &none(), &mut new_id);
    assert!(!r.is_closed());
    r.tick(local("2026-11-24T08:00"), &none(), &mut new_id);
    assert!(r.is_closed());
    let reasons: BTreeMap<&str, (Outcome, Option<&str>)> = r
        .checks
        .values()
        .map(|c| {
            let o = c.outcome.as_ref().unwrap();
            (c.id.as_str(), (o.outcome, o.reason.as_deref()))
        })
        .collect();
    assert_eq!(reasons["2026-11-23-a-0500"].0, Outcome::CheckedByCamera);
    assert_eq!(reasons["2026-11-23-a-0600"], (Outcome::Missed, Some("planned visit not recorded by the end of the shift")));
    assert_eq!(reasons["2026-11-23-a-0650"], (Outcome::Missed, Some("the camera retry was due after the shift ended")));
}

#[test]
fn an_alarm_rule_adds_one_urgent_visit_per_alarm_even_when_seen_twice() {
    let mut p = person("anna", &[]);
    p.rules = vec![crate::rounds::plan::AlarmRule { on: "geofence_left".into(), action: RuleAction::Search }];
    let mut r = round(NIGHT, std::slice::from_ref(&p));
    let now = local("2026-11-24T01:00");
    let (id, out) = r.add_for_alarm(now, &p, RuleAction::Search, (7, "geofence_left", now)).unwrap();
    assert_eq!(routed(&out), vec![id.clone()]);
    let v = r.checks[&id].visit.clone().unwrap();
    assert!(v.urgent && v.reason.starts_with("search"));
    assert!(r.add_for_alarm(now, &p, RuleAction::Search, (7, "geofence_left", now)).is_none());
}

/// Runs a whole night on a controlled clock: ticks every `step`, a device that answers each
/// camera check `answer_after` later with `verdict(n)`, a patrol that records every visit 20
/// minutes after it is asked for, and a restart (the round rebuilt from its stored JSON) at
/// `restart`. Returns the finished round and every camera check sent, by round check.
fn run_night(night: Date, people: &[Recipient], verdict: &dyn Fn(usize) -> &'static str, restart: Option<Timestamp>) -> (Round, BTreeMap<String, usize>) {
    let s = shift();
    let (start, end) = s.span(night);
    let mut r = Round::new(night, generate(night, &s, people, start), Settings::default(), end);
    let mut new_id = ids();
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    let mut pending: Vec<(Timestamp, String)> = Vec::new();
    let mut n = 0;
    let mut now = start;
    let mut restarted = false;
    while now <= end + SignedDuration::from_mins(61) {
        if restart.is_some_and(|t| now >= t) && !restarted {
            restarted = true;
            // What the database holds: every check as JSON. In-flight answers still arrive.
            let stored: Vec<String> = r.checks.values().map(|c| serde_json::to_string(c).unwrap()).collect();
            let checks = stored.iter().map(|j| serde_json::from_str::<RoundCheck>(j).unwrap());
            r = Round::new(night, checks, Settings::default(), end);
            now += SignedDuration::from_mins(25); // the hub was away 25 minutes
        }
        let due: Vec<(Timestamp, String)> = pending.iter().filter(|(t, _)| *t <= now).cloned().collect();
        pending.retain(|(t, _)| *t > now);
        for (_, cc) in due {
            n += 1;
            r.answer(now, &cc, verdict(n), None);
        }
        let out = r.tick(now, &HashSet::new(), &mut new_id);
        for a in out.actions {
            match a {
                Action::SendCamera { check, camera_check, .. } => {
                    *sent.entry(check).or_default() += 1;
                    pending.push((now + SignedDuration::from_secs(40), camera_check));
                }
                Action::RouteVisit { .. } => {}
            }
        }
        let visits: Vec<String> = r
            .checks
            .values()
            .filter(|c| c.state == State::Visit && c.visit.as_ref().is_some_and(|v| now >= v.requested_at.max(v.earliest) + SignedDuration::from_mins(20)))
            .map(|c| c.id.clone())
            .collect();
        for id in visits {
            r.record(now, &id, Outcome::CheckedByVisit, "Bil 1", None).unwrap();
        }
        now += SignedDuration::from_mins(1);
    }
    (r, sent)
}

fn times(step_min: i64, from: (i8, i8), to: (i8, i8)) -> Vec<String> {
    let mut out = Vec::new();
    let mut t = Time::new(from.0, from.1, 0, 0).unwrap();
    let end = Time::new(to.0, to.1, 0, 0).unwrap();
    loop {
        out.push(format!("{:02}:{:02}", t.hour(), t.minute()));
        if t == end {
            return out;
        }
        t = t.wrapping_add(SignedDuration::from_mins(step_min));
    }
}

fn dst_people() -> Vec<Recipient> {
    // One person per quarter hour from 21:00 to 06:45: the gap and the fold are covered.
    let ts = times(15, (21, 0), (6, 45));
    ts.iter().enumerate().map(|(i, t)| person(&format!("p{i}"), &[(t.as_str(), "camera")])).collect()
}

#[test]
fn the_spring_gap_night_loses_no_check_and_sends_each_camera_check_once() {
    let people = dst_people();
    let (r, sent) = run_night(date(2026, 3, 28), &people, &|_| "resting", None);
    assert_eq!(r.checks.len(), people.len(), "one check per agreed time, none lost in the gap");
    assert!(r.is_closed());
    assert!(r.checks.values().all(|c| c.outcome.as_ref().unwrap().outcome == Outcome::CheckedByCamera));
    assert_eq!(sent.len(), people.len());
    assert!(sent.values().all(|n| *n == 1), "{sent:?}");
    // 02:00, 02:15, 02:30, 02:45 move forward an hour; the first camera check after 01:45 goes out at 03:00.
    let c = &r.checks["2026-03-28-p21-0215"];
    assert_eq!(c.attempts[0].sent_at, local("2026-03-29T03:15"));
}

#[test]
fn the_autumn_fold_night_doubles_no_check() {
    let people = dst_people();
    let (r, sent) = run_night(date(2026, 10, 24), &people, &|_| "resting", None);
    assert_eq!(r.checks.len(), people.len());
    assert!(sent.values().all(|n| *n == 1), "{sent:?}");
    assert_eq!(sent.len(), people.len());
    assert_eq!(r.checks["2026-10-24-p22-0230"].attempts[0].sent_at, "2026-10-25T00:30:00Z".parse().unwrap());
    assert!(r.checks.values().all(|c| c.history.iter().filter(|s| s.what.starts_with("outcome")).count() == 1));
}

#[test]
fn a_restart_mid_night_runs_the_checks_that_fell_due_at_once_and_repeats_none() {
    let people = dst_people();
    let restart = local("2026-11-24T02:00");
    let (r, sent) = run_night(NIGHT, &people, &|_| "resting", Some(restart));
    assert!(r.is_closed());
    assert!(sent.values().all(|n| *n == 1), "{sent:?}");
    // 02:00 .. 02:15 fell due while the hub was away; they went out when it came back at 02:25.
    let back = local("2026-11-24T02:25");
    for id in ["2026-11-23-p20-0200", "2026-11-23-p21-0215"] {
        assert_eq!(r.checks[id].attempts[0].sent_at, back, "{id}");
        assert_eq!(r.checks[id].outcome.as_ref().unwrap().outcome, Outcome::CheckedByCamera);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// Whatever the cameras answer, every check ends with exactly one outcome, gets at most two
    /// camera checks, and every escalation is a visit promised 45 minutes after it was asked.
    #[test]
    fn whatever_the_cameras_say_every_check_ends_once(verdicts in proptest::collection::vec(0usize..7, 64), restart_min in 0i64..600) {
        const V: [&str; 7] = ["resting", "moving_in_bed", "not_in_bed", "unclear", "camera_fault", "refused_outside_consent", "resting"];
        let people: Vec<Recipient> = (0..12).map(|i| person(&format!("p{i}"), &[("22:30", if i % 3 == 0 { "camera_then_visit" } else { "camera" }), ("03:00", "camera"), ("05:00", "visit")])).collect();
        let restart = local("2026-11-23T21:00") + SignedDuration::from_mins(restart_min);
        let (r, sent) = run_night(NIGHT, &people, &|n| V[verdicts[n % verdicts.len()]], Some(restart));
        prop_assert!(r.is_closed());
        for c in r.checks.values() {
            prop_assert_eq!(c.history.iter().filter(|s| s.what.starts_with("outcome")).count(), 1);
            prop_assert!(sent.get(&c.id).copied().unwrap_or(0) <= 2);
            if let Some(v) = c.visit.as_ref().filter(|v| v.urgent) {
                prop_assert_eq!(v.latest.duration_since(v.requested_at), SignedDuration::from_mins(45));
            }
        }
    }
}
