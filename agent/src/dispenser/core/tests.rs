use super::*;
use proptest::prelude::*;
use vaka_protocol::Severity;

/// 2026-11-23 at `hh:mm:ss` UTC.
fn at(hms: &str) -> Timestamp {
    format!("2026-11-23T{hms}Z").parse().unwrap()
}

fn mins(m: i64) -> SignedDuration {
    SignedDuration::from_mins(m)
}

fn evening() -> Dose {
    dose("evening", "Waran 2,5 mg", at("20:00:00"))
}

fn dose(id: &str, medication: &str, scheduled: Timestamp) -> Dose {
    Dose { dose_id: id.into(), medication: medication.into(), scheduled }
}

/// Rules where silence takes six hours, for tests about doses.
fn patient() -> Rules {
    Rules { offline_after: SignedDuration::from_hours(6), ..Rules::default() }
}

fn line(ts: Timestamp, message: Message) -> Input {
    Input::Line { number: 1, line: DispenserLine { ts, message } }
}

fn kinds(outcome: &Outcome) -> Vec<&'static str> {
    outcome.events.iter().map(|e| e.body.kind()).collect()
}

/// A book that has accepted `dose_due` for the evening dose at 20:00:05.
fn book_with_evening_due(rules: Rules) -> DoseBook {
    let mut book = DoseBook::new(rules, at("19:55:00"));
    let out = book.handle(at("20:00:05"), line(at("20:00:05"), Message::DoseDue(evening())));
    assert_eq!(kinds(&out), ["dose_due"]);
    book
}

#[test]
fn dose_due_is_forwarded_as_info_and_opens_grace_until_scheduled_plus_grace() {
    let mut book = DoseBook::new(patient(), at("19:55:00"));
    let out = book.handle(at("20:00:05"), line(at("20:00:05"), Message::DoseDue(evening())));
    assert_eq!(out.events, [NewEvent::new(EventBody::DoseDue(evening()))]);
    assert_eq!(out.events[0].severity, Severity::Info);
    assert_eq!(book.open_doses().collect::<Vec<_>>(), [(&evening(), at("20:30:00"))]);
    assert_eq!(book.next_deadline(), Some(at("20:30:00")));
}

#[test]
fn missed_dose_is_raised_as_an_alarm_at_the_grace_end_and_not_a_moment_before() {
    let mut book = book_with_evening_due(patient());
    let just_before = at("20:30:00") - SignedDuration::from_millis(1);
    assert_eq!(book.handle(just_before, Input::Tick), Outcome::default());
    let out = book.handle(at("20:30:00"), Input::Tick);
    assert_eq!(out.events, [NewEvent::new(EventBody::DoseMissed(evening()))]);
    assert_eq!(out.events[0].severity, Severity::Alarm);
    assert!(book.handle(at("20:30:00"), Input::Tick).events.is_empty());
    assert!(book.handle(at("23:00:00"), Input::Tick).events.is_empty());
}

#[test]
fn dose_taken_in_time_cancels_the_miss() {
    let mut book = book_with_evening_due(patient());
    let out = book.handle(at("20:10:00"), line(at("20:10:00"), Message::DoseTaken(evening())));
    assert_eq!(kinds(&out), ["dose_taken"]);
    assert_eq!(book.open_doses().count(), 0);
    assert!(book.handle(at("21:00:00"), Input::Tick).events.is_empty());
}

#[test]
fn dose_skipped_cancels_the_miss_and_is_forwarded_as_info() {
    let mut book = book_with_evening_due(patient());
    let out = book.handle(at("20:05:00"), line(at("20:05:00"), Message::DoseSkipped(evening())));
    assert_eq!(kinds(&out), ["dose_skipped"]);
    assert_eq!(out.events[0].severity, Severity::Info);
    assert!(book.handle(at("21:00:00"), Input::Tick).events.is_empty());
}

#[test]
fn dose_taken_handled_at_the_grace_end_is_late_even_without_a_tick_before_it() {
    let mut book = book_with_evening_due(patient());
    let out = book.handle(at("20:30:00"), line(at("20:29:59"), Message::DoseTaken(evening())));
    assert_eq!(kinds(&out), ["dose_missed", "dose_taken"]);
    assert!(out.note.unwrap().contains("the dose_missed already raised stands"));
}

#[test]
fn late_dose_taken_is_forwarded_with_a_note_but_does_not_cancel_the_miss() {
    let mut book = book_with_evening_due(patient());
    assert_eq!(kinds(&book.handle(at("20:30:00"), Input::Tick)), ["dose_missed"]);
    let out = book.handle(at("20:50:00"), line(at("20:50:00"), Message::DoseTaken(evening())));
    assert_eq!(out.events, [NewEvent::new(EventBody::DoseTaken(evening()))]);
    assert_eq!(out.refused, None);
    let note = out.note.unwrap();
    assert!(note.contains("after its grace ended at 2026-11-23T20:30:00Z"), "{note}");
    let again = book.handle(at("20:51:00"), line(at("20:51:00"), Message::DoseTaken(evening())));
    assert!(again.events.is_empty());
    assert!(again.refused.unwrap().contains("already taken (after the miss)"));
}

#[test]
fn grace_of_the_medication_is_used_when_configured() {
    let mut rules = patient();
    rules.grace_by_medication.insert("Waran 2,5 mg".into(), mins(45));
    let mut book = book_with_evening_due(rules);
    assert!(book.handle(at("20:44:59"), Input::Tick).events.is_empty());
    assert_eq!(kinds(&book.handle(at("20:45:00"), Input::Tick)), ["dose_missed"]);
    let other = dose("evening", "Alvedon 500 mg", at("21:00:00"));
    book.handle(at("21:00:01"), line(at("21:00:01"), Message::DoseDue(other)));
    assert_eq!(kinds(&book.handle(at("21:30:00"), Input::Tick)), ["dose_missed"]);
}

#[test]
fn dose_due_that_arrives_after_its_grace_end_is_forwarded_then_missed_at_once() {
    let mut book = DoseBook::new(patient(), at("20:40:00"));
    let out = book.handle(at("20:40:00"), line(at("20:40:00"), Message::DoseDue(evening())));
    assert_eq!(kinds(&out), ["dose_due", "dose_missed"]);
}

#[test]
fn restore_mid_grace_still_misses_on_time() {
    let book = book_with_evening_due(patient());
    let stored = serde_json::to_string(&book.state()).unwrap();
    // The agent is down from 20:10 to 20:20.
    let state: DoseState = serde_json::from_str(&stored).unwrap();
    let mut book = DoseBook::restore(patient(), state, at("20:20:00"));
    assert_eq!(book.next_deadline(), Some(at("20:30:00")));
    assert!(book.handle(at("20:20:00"), Input::Tick).events.is_empty());
    assert!(book.handle(at("20:29:59"), Input::Tick).events.is_empty());
    assert_eq!(kinds(&book.handle(at("20:30:00"), Input::Tick)), ["dose_missed"]);
}

#[test]
fn restore_after_the_grace_end_misses_at_the_first_step_and_only_once() {
    let state = book_with_evening_due(patient()).state();
    // Down from 20:10 to 21:00: the grace ended at 20:30 while nobody watched.
    let mut book = DoseBook::restore(patient(), state, at("21:00:00"));
    assert_eq!(book.next_deadline(), Some(at("20:30:00")));
    assert_eq!(kinds(&book.handle(at("21:00:00"), Input::Tick)), ["dose_missed"]);
    // The state stored with that miss is restored after a second restart.
    let mut book = DoseBook::restore(patient(), book.state(), at("21:05:00"));
    assert!(book.handle(at("21:05:00"), Input::Tick).events.is_empty());
    assert!(book.handle(at("22:00:00"), Input::Tick).events.is_empty());
}

#[test]
fn state_round_trips_through_serde_json() {
    let mut book = book_with_evening_due(Rules::default());
    let morning = dose("morning", "Levaxin 100 mikrog", at("19:30:00"));
    book.handle(at("20:00:06"), line(at("20:00:06"), Message::DoseDispensed(evening())));
    book.handle(at("20:00:07"), line(at("20:00:07"), Message::LowStock { doses_left: 3 }));
    book.handle(at("20:00:08"), line(at("20:00:08"), Message::DoseDue(morning.clone())));
    book.handle(at("20:00:09"), line(at("20:00:09"), Message::DoseTaken(morning)));
    book.handle(at("20:30:00"), Input::Tick); // evening missed, dispenser offline
    let state = book.state();
    assert!(state.offline && state.low_stock.is_some() && state.doses.len() == 2);
    let json = serde_json::to_string(&state).unwrap();
    assert_eq!(serde_json::from_str::<DoseState>(&json).unwrap(), state);
    assert_eq!(serde_json::from_str::<DoseState>("{}").unwrap(), DoseState::default());
}

#[test]
fn every_line_is_forwarded_with_the_dispenser_severities_of_the_issue() {
    // Missed dose and device error are alarms, low stock a warning, the rest info.
    use Severity::*;
    let mut book = book_with_evening_due(patient());
    let cases = [
        (Message::DoseDispensed(evening()), "dose_dispensed", Info),
        (Message::LowStock { doses_left: 4 }, "low_stock", Warning),
        (Message::DeviceError { code: "E-JAM".into(), message: None }, "device_error", Alarm),
        (Message::Tamper, "tamper", Info),
        (Message::BatteryLow { percent: Some(12) }, "battery_low", Info),
        (Message::PowerLost, "power_lost", Info),
        (Message::DoseTaken(evening()), "dose_taken", Info),
    ];
    for (i, (message, kind, severity)) in cases.into_iter().enumerate() {
        let t = at("20:01:00") + SignedDuration::from_secs(i as i64);
        let out = book.handle(t, line(t, message));
        assert_eq!(kinds(&out), [kind]);
        assert_eq!(out.events[0].severity, severity, "{kind}");
    }
    let out =
        book.handle(at("20:02:00"), line(at("20:02:00"), Message::BatteryLow { percent: None }));
    let expected = BatteryLow { source: BatterySource::Dispenser, percent: None };
    let body = EventBody::BatteryLow(expected);
    assert_eq!(out.events, [NewEvent { body, severity: Info }]);
    assert_eq!(
        book.handle(at("20:03:00"), line(at("20:03:00"), Message::Heartbeat)),
        Outcome::default()
    );
}

#[test]
fn silence_raises_dispenser_offline_once_since_the_last_line_and_a_line_rearms_it() {
    let mut book = DoseBook::new(Rules::default(), at("19:00:00"));
    book.handle(at("19:01:00"), line(at("19:01:00"), Message::Heartbeat));
    assert_eq!(book.next_deadline(), Some(at("19:11:00")));
    assert!(book.handle(at("19:10:59"), Input::Tick).events.is_empty());
    let out = book.handle(at("19:11:00"), Input::Tick);
    let silent = Silence { since: at("19:01:00") };
    assert_eq!(out.events, [NewEvent::new(EventBody::DispenserOffline(silent))]);
    assert_eq!(out.events[0].severity, Severity::Warning);
    assert_eq!(book.next_deadline(), None);
    assert!(book.handle(at("19:30:00"), Input::Tick).events.is_empty());
    let back = book.handle(at("19:40:00"), line(at("19:40:00"), Message::Heartbeat));
    assert!(back.note.unwrap().contains("heard again"));
    assert_eq!(kinds(&book.handle(at("19:50:00"), Input::Tick)), ["dispenser_offline"]);
}

#[test]
fn heartbeats_keep_the_dispenser_from_looking_offline() {
    let mut book = DoseBook::new(Rules::default(), at("19:00:00"));
    for m in (5..=120).step_by(5) {
        let t = at("19:00:00") + mins(m);
        assert_eq!(book.handle(t, line(t, Message::Heartbeat)), Outcome::default(), "{t}");
    }
}

#[test]
fn a_bridge_that_never_speaks_is_offline_since_the_agent_started() {
    let mut book = DoseBook::new(Rules::default(), at("19:00:00"));
    let out = book.handle(at("19:10:00"), Input::Tick);
    let silent = Silence { since: at("19:00:00") };
    assert_eq!(out.events, [NewEvent::new(EventBody::DispenserOffline(silent))]);
}

#[test]
fn a_restart_alone_does_not_make_the_dispenser_offline_but_silence_after_it_does() {
    let mut book = DoseBook::new(Rules::default(), at("19:00:00"));
    book.handle(at("19:01:00"), line(at("19:01:00"), Message::Heartbeat));
    // Down from 19:02 to 20:00.
    let mut book = DoseBook::restore(Rules::default(), book.state(), at("20:00:00"));
    assert!(book.handle(at("20:00:00"), Input::Tick).events.is_empty());
    let out = book.handle(at("20:10:00"), Input::Tick);
    let silent = Silence { since: at("19:01:00") };
    assert_eq!(out.events, [NewEvent::new(EventBody::DispenserOffline(silent))]);
    // Already reported: a further restart does not report it again.
    let mut book = DoseBook::restore(Rules::default(), book.state(), at("21:00:00"));
    assert!(book.handle(at("23:00:00"), Input::Tick).events.is_empty());
}

#[test]
fn line_too_far_ahead_of_the_agent_clock_is_refused_and_does_not_count_as_heard() {
    let mut book = DoseBook::new(Rules::default(), at("19:00:00"));
    let ahead = book.handle(at("19:05:00"), line(at("19:10:01"), Message::Tamper));
    assert!(ahead.events.is_empty());
    let why = ahead.refused.unwrap();
    assert!(why.contains("5m 1s ahead of the agent's clock (tolerance 5m)"), "{why}");
    assert_eq!(kinds(&book.handle(at("19:10:00"), Input::Tick)), ["dispenser_offline"]);
    let within = book.handle(at("19:11:00"), line(at("19:16:00"), Message::Tamper));
    assert_eq!(kinds(&within), ["tamper"]);
}

#[test]
fn line_earlier_than_the_last_accepted_one_beyond_two_seconds_is_refused() {
    let mut book = DoseBook::new(Rules::default(), at("19:00:00"));
    let mut number = 0;
    let mut send = |book: &mut DoseBook, ts: &str| {
        number += 1;
        let line = DispenserLine { ts: at(ts), message: Message::Tamper };
        book.handle(at("19:01:00"), Input::Line { number, line })
    };
    assert_eq!(kinds(&send(&mut book, "19:00:10")), ["tamper"]);
    assert_eq!(kinds(&send(&mut book, "19:00:08")), ["tamper"], "within the tolerance");
    let out = send(&mut book, "19:00:07");
    assert!(out.events.is_empty());
    let why = out.refused.unwrap();
    assert!(
        why.contains("3s before the last accepted line (line 2) at 2026-11-23T19:00:10Z"),
        "{why}"
    );
}

#[test]
fn duplicate_dose_due_is_refused_while_open_and_after_it_closed() {
    let mut book = book_with_evening_due(patient());
    let out = book.handle(at("20:00:06"), line(at("20:00:06"), Message::DoseDue(evening())));
    assert_eq!(out.refused.unwrap(), "duplicate dose_due for evening (Waran 2,5 mg) scheduled 2026-11-23T20:00:00Z (the dose is open)");
    book.handle(at("20:01:00"), line(at("20:01:00"), Message::DoseTaken(evening())));
    let out = book.handle(at("20:02:00"), line(at("20:02:00"), Message::DoseDue(evening())));
    assert!(out.events.is_empty() && out.refused.unwrap().contains("already taken"));
    // The same dose_id on another day is another dose.
    let tomorrow = dose("evening", "Waran 2,5 mg", at("20:00:00") + SignedDuration::from_hours(24));
    let t = tomorrow.scheduled;
    assert_eq!(kinds(&book.handle(t, line(t, Message::DoseDue(tomorrow)))), ["dose_due"]);
}

#[test]
fn dose_progress_for_an_unknown_dose_is_refused() {
    let mut book = book_with_evening_due(patient());
    let other_day = dose("evening", "Waran 2,5 mg", at("19:00:00"));
    for message in [
        Message::DoseTaken(other_day.clone()),
        Message::DoseDispensed(other_day.clone()),
        Message::DoseSkipped(other_day),
    ] {
        let out = book.handle(at("20:01:00"), line(at("20:01:00"), message));
        assert!(out.events.is_empty());
        assert!(out.refused.unwrap().contains("no dose_due for this dose_id and scheduled time"));
    }
    // It was still a sign of life.
    assert_eq!(book.state().last_heard, Some(at("20:01:00")));
}

#[test]
fn contradictory_dose_lines_are_refused() {
    let mut book = book_with_evening_due(patient());
    let mut send = |t: &str, m: Message| book.handle(at(t), line(at(t), m));
    assert_eq!(kinds(&send("20:00:30", Message::DoseDispensed(evening()))), ["dose_dispensed"]);
    let why = send("20:00:31", Message::DoseDispensed(evening())).refused.unwrap();
    assert!(why.ends_with("the dose is already dispensed"), "{why}");
    assert_eq!(kinds(&send("20:05:00", Message::DoseSkipped(evening()))), ["dose_skipped"]);
    let why = send("20:06:00", Message::DoseTaken(evening())).refused.unwrap();
    assert!(why.ends_with("the dose is already skipped"), "{why}");
}

#[test]
fn dispensed_and_skipped_after_the_miss_are_forwarded_with_a_note() {
    let mut book = book_with_evening_due(patient());
    book.handle(at("20:30:00"), Input::Tick);
    let out = book.handle(at("20:40:00"), line(at("20:40:00"), Message::DoseDispensed(evening())));
    assert_eq!(kinds(&out), ["dose_dispensed"]);
    assert!(out.note.is_some());
    let out = book.handle(at("20:41:00"), line(at("20:41:00"), Message::DoseSkipped(evening())));
    assert_eq!(kinds(&out), ["dose_skipped"]);
}

#[test]
fn dose_due_whose_scheduled_time_is_far_from_its_ts_is_refused() {
    let mut book = DoseBook::new(patient(), at("20:00:00"));
    let stale = dose("evening", "Waran 2,5 mg", at("20:00:00") - SignedDuration::from_hours(13));
    let out = book.handle(at("20:00:00"), line(at("20:00:00"), Message::DoseDue(stale)));
    assert!(out.events.is_empty());
    assert!(out.refused.unwrap().contains("scheduled is 13h from the line's ts"));
}

#[test]
fn more_than_the_open_dose_limit_is_refused() {
    let mut book = DoseBook::new(patient(), at("20:00:00"));
    for i in 0..=MAX_OPEN {
        let d = dose(&format!("slot-{i}"), "Waran 2,5 mg", at("20:00:00"));
        let out = book.handle(at("20:00:01"), line(at("20:00:01"), Message::DoseDue(d)));
        assert_eq!(out.refused.is_some(), i == MAX_OPEN, "{i}");
    }
}

#[test]
fn unchanged_low_stock_is_not_forwarded_again_within_twelve_hours() {
    let mut book = DoseBook::new(patient(), at("08:00:00"));
    let mut send = |t: Timestamp, n| book.handle(t, line(t, Message::LowStock { doses_left: n }));
    assert_eq!(kinds(&send(at("08:00:00"), 4)), ["low_stock"]);
    let out = send(at("09:00:00"), 4);
    assert!(out.events.is_empty() && out.refused.is_none() && out.note.is_some());
    assert_eq!(kinds(&send(at("13:00:00"), 3)), ["low_stock"]);
    assert_eq!(kinds(&send(at("13:00:00") + SignedDuration::from_hours(12), 3)), ["low_stock"]);
}

#[test]
fn closed_doses_are_forgotten_a_day_after_their_grace_end_and_open_ones_never() {
    let mut book = book_with_evening_due(patient());
    let later = dose("late", "Alvedon 500 mg", at("20:00:00"));
    book.handle(at("20:01:00"), line(at("20:01:00"), Message::DoseDue(later.clone())));
    book.handle(at("20:02:00"), line(at("20:02:00"), Message::DoseTaken(later)));
    book.handle(at("20:30:00"), Input::Tick); // the evening dose is missed
    let next_day = at("20:30:01") + REMEMBER;
    book.handle(next_day, Input::Tick);
    assert!(book.state().doses.is_empty());
}

#[test]
fn next_deadline_is_the_earliest_of_grace_end_and_offline_deadline() {
    let rules = Rules { offline_after: mins(10), ..Rules::default() };
    let mut book = book_with_evening_due(rules);
    assert_eq!(book.next_deadline(), Some(at("20:10:05")));
    book.handle(at("20:25:00"), line(at("20:25:00"), Message::Heartbeat));
    assert_eq!(book.next_deadline(), Some(at("20:30:00")));
}

#[test]
fn a_tick_at_the_next_deadline_moves_the_deadline_on_so_the_shell_timer_never_spins() {
    let mut book = book_with_evening_due(Rules::default());
    let mut seen = Vec::new();
    while let Some(deadline) = book.next_deadline() {
        assert!(seen.last().is_none_or(|last| deadline > *last), "{seen:?} then {deadline}");
        assert!(!book.handle(deadline, Input::Tick).events.is_empty());
        seen.push(deadline);
    }
    assert_eq!(seen, [at("20:10:05"), at("20:30:00")]);
}

#[derive(Debug, Clone)]
enum Step {
    Wait(i64),
    Line(u8, i64),
    Restart,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        (0i64..2400).prop_map(Step::Wait),
        (0u8..12, -5i64..5).prop_map(|(what, skew)| Step::Line(what, skew)),
        Just(Step::Restart),
    ];
    proptest::collection::vec(step, 0..80)
}

proptest! {
    /// Whatever the bridge sends and whenever the agent restarts, a dose is missed at most once,
    /// never before its grace end, and never after `dose_taken` was accepted for it in time.
    #[test]
    fn a_dose_is_missed_at_most_once_and_never_when_taken_in_time(steps in steps()) {
        let start = at("19:50:00");
        let mut now = start;
        let mut book = DoseBook::new(Rules::default(), now);
        let mut missed = std::collections::HashSet::new();
        let mut taken = std::collections::HashSet::new();
        let doses = [evening(), dose("night", "Zopiklon 5 mg", at("20:10:00"))];
        for step in steps {
            let input = match step {
                Step::Wait(s) => { now += SignedDuration::from_secs(s); Input::Tick }
                Step::Restart => { book = DoseBook::restore(Rules::default(), book.state(), now); Input::Tick }
                Step::Line(what, skew) => {
                    let d = doses[usize::from(what % 2)].clone();
                    let message = match what / 2 {
                        0 => Message::DoseDue(d),
                        1 => Message::DoseDispensed(d),
                        2 => Message::DoseTaken(d),
                        3 => Message::DoseSkipped(d),
                        4 => Message::Heartbeat,
                        _ => Message::LowStock { doses_left: u32::from(what) },
                    };
                    line(now + SignedDuration::from_secs(skew), message)
                }
            };
            for e in book.handle(now, input).events {
                match e.body {
                    EventBody::DoseMissed(d) => {
                        prop_assert!(now >= d.scheduled + DEFAULT_GRACE);
                        prop_assert!(!taken.contains(&d.dose_id), "missed after taken: {d:?}");
                        prop_assert!(missed.insert(d.dose_id.clone()), "missed twice: {d:?}");
                    }
                    EventBody::DoseTaken(d) | EventBody::DoseSkipped(d) if !missed.contains(&d.dose_id) => {
                        taken.insert(d.dose_id);
                    }
                    _ => {}
                }
            }
        }
    }
}
