use super::*;

fn t(s: u64) -> Timestamp {
    Timestamp::from_second(1_795_000_000 + s as i64).unwrap()
}

fn config(default_s: u64) -> SupervisionConfig {
    SupervisionConfig {
        default_interval: Duration::from_secs(default_s),
        devices: HashMap::new(),
    }
}

fn heard(device: &str, at: Timestamp, what: Heard) -> Input {
    Input::Heard {
        device: DeviceId::new(device).unwrap(),
        site: SiteId::new("skelleftea").unwrap(),
        at,
        what,
    }
}

fn raised(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::AlarmRaised { device, .. } => Some(device.clone()),
            _ => None,
        })
        .collect()
}

fn cleared(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::AlarmCleared { .. }))
        .count()
}

#[test]
fn a_device_appears_online_when_first_heard() {
    let mut p = Presence::new(config(180));
    let actions = p.handle(
        t(0),
        heard(
            "home-1",
            t(0),
            Heard::Online {
                outbox_depth: Some(2),
            },
        ),
    );
    let Action::Changed(row) = &actions[1] else {
        panic!("{actions:?}")
    };
    assert!(row.online && !row.supervision_lost);
    assert_eq!(row.outbox_depth, Some(2));
}

#[test]
fn silent_device_raises_one_alarm_after_its_interval_and_not_before() {
    let mut p = Presence::new(config(180));
    p.handle(t(0), heard("home-1", t(0), Heard::Event));
    assert!(raised(&p.handle(t(180), Input::Tick)).is_empty());
    let actions = p.handle(t(181), Input::Tick);
    assert_eq!(raised(&actions), vec!["home-1"]);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Changed(r) if !r.online && r.supervision_lost)));
    assert!(
        raised(&p.handle(t(500), Input::Tick)).is_empty(),
        "raised twice"
    );
}

#[test]
fn alarm_is_cleared_when_the_device_is_heard_again() {
    let mut p = Presence::new(config(60));
    p.handle(t(0), heard("home-1", t(0), Heard::Event));
    p.handle(t(61), Input::Tick);
    let actions = p.handle(
        t(70),
        heard(
            "home-1",
            t(70),
            Heard::Online {
                outbox_depth: Some(0),
            },
        ),
    );
    assert_eq!(cleared(&actions), 1);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Changed(r) if r.online && !r.supervision_lost)));
    // Silent again: a new alarm, one interval after it was last heard.
    assert!(raised(&p.handle(t(130), Input::Tick)).is_empty());
    assert_eq!(raised(&p.handle(t(131), Input::Tick)), vec!["home-1"]);
}

#[test]
fn last_will_marks_offline_at_once_but_does_not_clear_an_alarm() {
    let mut p = Presence::new(config(60));
    p.handle(t(0), heard("home-1", t(0), Heard::Event));
    let actions = p.handle(t(5), heard("home-1", t(5), Heard::Offline));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Changed(r) if !r.online)));
    assert_eq!(raised(&p.handle(t(66), Input::Tick)), vec!["home-1"]);
    assert_eq!(
        cleared(&p.handle(t(70), heard("home-1", t(70), Heard::Offline))),
        0
    );
}

#[test]
fn per_device_interval_overrides_the_default() {
    let mut c = config(180);
    c.devices
        .insert(DeviceId::new("home-42").unwrap(), Duration::from_secs(600));
    let mut p = Presence::new(c);
    p.handle(t(0), heard("home-1", t(0), Heard::Event));
    p.handle(t(0), heard("home-42", t(0), Heard::Event));
    assert_eq!(raised(&p.handle(t(200), Input::Tick)), vec!["home-1"]);
    assert_eq!(raised(&p.handle(t(601), Input::Tick)), vec!["home-42"]);
}

#[test]
fn restored_open_alarm_is_not_raised_again_after_a_restart() {
    let row = DeviceRow {
        id: "home-1".into(),
        site: "skelleftea".into(),
        online: false,
        last_seen: t(0),
        outbox_depth: None,
        supervision_lost: true,
    };
    let mut p = Presence::restore(config(60), vec![row], t(1000));
    assert!(raised(&p.handle(t(2000), Input::Tick)).is_empty());
    assert_eq!(
        cleared(&p.handle(t(2001), heard("home-1", t(2001), Heard::Event))),
        1
    );
}

#[test]
fn after_a_restart_silence_is_measured_from_the_hub_start() {
    let row = DeviceRow {
        id: "home-1".into(),
        site: "skelleftea".into(),
        online: true,
        last_seen: t(0),
        outbox_depth: None,
        supervision_lost: false,
    };
    let mut p = Presence::restore(config(60), vec![row], t(1000));
    assert!(raised(&p.handle(t(1060), Input::Tick)).is_empty());
    assert_eq!(raised(&p.handle(t(1061), Input::Tick)), vec!["home-1"]);
}

#[test]
fn heartbeat_that_changes_nothing_is_persisted_but_not_announced() {
    let mut p = Presence::new(config(60));
    p.handle(t(0), heard("home-1", t(0), Heard::Event));
    let actions = p.handle(t(10), heard("home-1", t(10), Heard::Event));
    assert_eq!(actions.len(), 1);
    assert!(matches!(&actions[0], Action::Persist(r) if r.last_seen == t(10)));
}

#[test]
fn tick_period_is_a_tenth_of_the_shortest_interval_at_most_a_second() {
    assert_eq!(
        Presence::new(config(180)).tick_period(),
        Duration::from_secs(1)
    );
    assert_eq!(
        Presence::new(config(2)).tick_period(),
        Duration::from_millis(200)
    );
}

#[test]
fn a_hub_that_hears_half_the_heartbeats_raises_no_alarm_once_it_takes_in_the_other_hubs_rows() {
    // Heartbeats every 60 s, split between two hubs; supervision after 100 s.
    let mut a = Presence::new(config(100));
    let mut b = Presence::new(config(100));
    let mut stored: Vec<DeviceRow> = Vec::new();
    let mut raised_on_a = Vec::new();
    for i in 0..10u64 {
        let at = t(i * 60);
        let hub = if i % 2 == 0 { &mut a } else { &mut b };
        for action in hub.handle(
            at,
            heard("home-1", at, Heard::Online { outbox_depth: None }),
        ) {
            if let Action::Persist(row) = action {
                stored = vec![row];
            }
        }
        a.merge(stored.clone());
        raised_on_a.extend(raised(
            &a.handle(at + SignedDuration::from_secs(59), Input::Tick),
        ));
    }
    assert!(raised_on_a.is_empty(), "{raised_on_a:?}");
    // Without merging, a hub with every second heartbeat sees 120 s of silence.
    let mut alone = Presence::new(config(100));
    alone.handle(
        t(0),
        heard("home-1", t(0), Heard::Online { outbox_depth: None }),
    );
    assert_eq!(raised(&alone.handle(t(119), Input::Tick)), ["home-1"]);
}

#[test]
fn an_alarm_raised_by_the_leader_is_cleared_by_whichever_hub_hears_the_device_next() {
    let mut leader = Presence::new(config(100));
    let mut other = Presence::new(config(100));
    let first = leader.handle(t(0), heard("home-1", t(0), Heard::Event));
    let Action::Persist(row) = &first[0] else {
        panic!("{first:?}")
    };
    other.merge(vec![row.clone()]);
    let tick = leader.handle(t(101), Input::Tick);
    assert_eq!(raised(&tick), ["home-1"]);
    let Action::Persist(lost) = &tick[0] else {
        panic!("{tick:?}")
    };
    other.merge(vec![lost.clone()]);
    let back = other.handle(
        t(105),
        heard("home-1", t(105), Heard::Online { outbox_depth: None }),
    );
    assert_eq!(cleared(&back), 1, "{back:?}");
    // A stored row older than what this hub heard itself changes nothing.
    let Action::Persist(newer) = &back[0] else {
        panic!("{back:?}")
    };
    other.merge(vec![lost.clone()]);
    assert_eq!(
        raised(&other.handle(t(150), Input::Tick)),
        Vec::<String>::new()
    );
    assert!(!newer.supervision_lost);
}
