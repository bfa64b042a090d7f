use super::*;
use proptest::prelude::*;
use std::collections::VecDeque;

const T: Duration = Duration::from_secs(30);

fn limits(max_in_flight: usize, max_bytes: u64) -> Limits {
    Limits { max_in_flight, ack_timeout: T, max_bytes }
}

/// Accepts an event the way the shell does: plan, then feed the committed result.
fn accept(
    core: &mut OutboxCore,
    now: Instant,
    seq: u64,
    severity: Severity,
    size: usize,
) -> (Admission, Vec<Action>) {
    let admission = core.admit(severity, size as u64);
    let actions = match &admission {
        Admission::Admit { evict, .. } => core.handle(
            now,
            Input::Accepted { seq, severity, size: size as u64, evicted: evict.clone() },
        ),
        Admission::Refuse => Vec::new(),
    };
    (admission, actions)
}

fn sent(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { seq, .. } => Some(*seq),
            Action::Delete { .. } => None,
        })
        .collect()
}

#[test]
fn nothing_is_sent_before_the_first_connection() {
    let now = Instant::now();
    let mut core = OutboxCore::new(limits(10, 1_000));
    let (_, actions) = accept(&mut core, now, 1, Severity::Alarm, 10);
    assert!(actions.is_empty());
    assert_eq!(sent(&core.handle(now, Input::Connected)), vec![1]);
}

#[test]
fn alarms_go_before_warnings_before_info_and_older_first_within_a_severity() {
    let now = Instant::now();
    let mut core = OutboxCore::new(limits(10, 1_000));
    for (seq, s) in [
        (1, Severity::Info),
        (2, Severity::Warning),
        (3, Severity::Alarm),
        (4, Severity::Info),
        (5, Severity::Alarm),
    ] {
        accept(&mut core, now, seq, s, 10);
    }
    assert_eq!(sent(&core.handle(now, Input::Connected)), vec![3, 5, 2, 1, 4]);
}

#[test]
fn a_new_alarm_is_sent_at_once_while_connected() {
    let now = Instant::now();
    let mut core = OutboxCore::new(limits(10, 1_000));
    core.handle(now, Input::Connected);
    let (_, actions) = accept(&mut core, now, 1, Severity::Alarm, 10);
    assert_eq!(sent(&actions), vec![1]);
}

#[test]
fn in_flight_is_capped_and_an_ack_makes_room_for_the_next_event() {
    let now = Instant::now();
    let mut core = OutboxCore::new(limits(2, 1_000));
    for seq in 1..=4 {
        accept(&mut core, now, seq, Severity::Info, 10);
    }
    assert_eq!(sent(&core.handle(now, Input::Connected)), vec![1, 2]);
    let actions = core.handle(now, Input::Acked { seqs: vec![1] });
    assert_eq!(actions[0], Action::Delete { seq: 1 });
    assert_eq!(sent(&actions), vec![3]);
    assert_eq!(core.len(), 3);
}

#[test]
fn alarm_accepted_while_in_flight_is_full_jumps_the_waiting_info_events() {
    let now = Instant::now();
    let mut core = OutboxCore::new(limits(1, 1_000));
    core.handle(now, Input::Connected);
    for seq in 1..=3 {
        accept(&mut core, now, seq, Severity::Info, 10);
    }
    accept(&mut core, now, 4, Severity::Alarm, 10);
    assert_eq!(sent(&core.handle(now, Input::Acked { seqs: vec![1] })), vec![4]);
}

#[test]
fn event_not_acked_within_the_ack_timeout_is_resent() {
    let t0 = Instant::now();
    let mut core = OutboxCore::new(limits(10, 1_000));
    core.handle(t0, Input::Connected);
    accept(&mut core, t0, 1, Severity::Warning, 10);
    assert!(sent(&core.handle(t0 + T - Duration::from_millis(1), Input::Tick)).is_empty());
    assert_eq!(sent(&core.handle(t0 + T, Input::Tick)), vec![1]);
    // The resend restarts the timer.
    assert!(sent(&core.handle(t0 + T + Duration::from_secs(1), Input::Tick)).is_empty());
}

#[test]
fn alarm_is_resent_after_reconnect_when_broker_lost_session() {
    let now = Instant::now();
    let mut core = OutboxCore::new(limits(10, 1_000));
    core.handle(now, Input::Connected);
    accept(&mut core, now, 1, Severity::Alarm, 10);
    assert!(core.handle(now, Input::Disconnected).is_empty());
    assert_eq!(core.in_flight(), 0);
    accept(&mut core, now, 2, Severity::Info, 10);
    assert_eq!(sent(&core.handle(now, Input::Connected)), vec![1, 2]);
}

#[test]
fn puback_like_silence_never_removes_an_event_only_the_hubs_ack_does() {
    let now = Instant::now();
    let mut core = OutboxCore::new(limits(10, 1_000));
    core.handle(now, Input::Connected);
    accept(&mut core, now, 1, Severity::Info, 10);
    core.handle(now + T * 10, Input::Tick);
    assert_eq!(core.len(), 1);
    core.handle(now, Input::Acked { seqs: vec![1, 99] });
    assert!(core.is_empty());
    assert_eq!(core.bytes(), 0);
}

#[test]
fn full_outbox_evicts_oldest_info_first_then_oldest_warning() {
    let now = Instant::now();
    let mut core = OutboxCore::new(limits(10, 40));
    accept(&mut core, now, 1, Severity::Warning, 10);
    accept(&mut core, now, 2, Severity::Info, 10);
    accept(&mut core, now, 3, Severity::Info, 10);
    accept(&mut core, now, 4, Severity::Alarm, 10);
    let (a, _) = accept(&mut core, now, 5, Severity::Warning, 20);
    assert_eq!(a, Admission::Admit { evict: vec![2, 3], over_budget: false });
    let (a, _) = accept(&mut core, now, 6, Severity::Warning, 10);
    assert_eq!(a, Admission::Admit { evict: vec![1], over_budget: false });
    assert_eq!(core.bytes(), 40);
}

#[test]
fn info_never_evicts_a_warning_and_is_refused_instead() {
    let now = Instant::now();
    let mut core = OutboxCore::new(limits(10, 20));
    accept(&mut core, now, 1, Severity::Warning, 10);
    accept(&mut core, now, 2, Severity::Alarm, 10);
    let (a, _) = accept(&mut core, now, 3, Severity::Info, 5);
    assert_eq!(a, Admission::Refuse);
    assert_eq!(core.len(), 2);
}

#[test]
fn alarms_are_never_evicted_and_are_admitted_beyond_the_budget() {
    let now = Instant::now();
    let mut core = OutboxCore::new(limits(10, 20));
    accept(&mut core, now, 1, Severity::Alarm, 15);
    accept(&mut core, now, 2, Severity::Info, 5);
    let (a, _) = accept(&mut core, now, 3, Severity::Alarm, 15);
    assert_eq!(a, Admission::Admit { evict: vec![2], over_budget: true });
    let (a, _) = accept(&mut core, now, 4, Severity::Warning, 1);
    assert_eq!(a, Admission::Refuse);
    assert_eq!(core.len(), 2);
    assert_eq!(core.bytes(), 30);
}

// ---- Model-based property test ---------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Accept(Severity, usize),
    Ack(Vec<u64>),
    Connect,
    Disconnect,
    Tick(u64),
}

fn severity() -> impl Strategy<Value = Severity> {
    prop_oneof![Just(Severity::Info), Just(Severity::Warning), Just(Severity::Alarm)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (severity(), 1usize..40).prop_map(|(s, n)| Op::Accept(s, n)),
        3 => proptest::collection::vec(1u64..60, 0..6).prop_map(Op::Ack),
        1 => Just(Op::Connect),
        1 => Just(Op::Disconnect),
        2 => (0u64..40).prop_map(Op::Tick),
    ]
}

/// The obvious, slow outbox: a queue of pending events in seq order, scanned every time.
#[derive(Default)]
struct Model {
    pending: VecDeque<(u64, Severity, u64, Option<Instant>)>,
    connected: bool,
}

impl Model {
    fn bytes(&self) -> u64 {
        self.pending.iter().map(|p| p.2).sum()
    }

    fn admit(&self, severity: Severity, size: u64, max: u64) -> Option<Vec<u64>> {
        let mut evict = Vec::new();
        let mut bytes = self.bytes() + size;
        let allowed: &[Severity] = if severity == Severity::Info {
            &[Severity::Info]
        } else {
            &[Severity::Info, Severity::Warning]
        };
        for s in allowed {
            for p in self.pending.iter().filter(|p| p.1 == *s) {
                if bytes <= max {
                    break;
                }
                bytes -= p.2;
                evict.push(p.0);
            }
        }
        if bytes > max && severity != Severity::Alarm {
            return None;
        }
        Some(evict)
    }

    /// Marks what should be sent now and returns it in send order.
    fn fill(&mut self, now: Instant, max_in_flight: usize) -> Vec<u64> {
        let mut out = Vec::new();
        if !self.connected {
            return out;
        }
        loop {
            let in_flight = self.pending.iter().filter(|p| p.3.is_some()).count();
            if in_flight >= max_in_flight {
                return out;
            }
            let next = self
                .pending
                .iter_mut()
                .filter(|p| p.3.is_none())
                .max_by_key(|p| (p.1, std::cmp::Reverse(p.0)));
            match next {
                None => return out,
                Some(p) => {
                    p.3 = Some(now);
                    out.push(p.0);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn core_behaves_like_the_simple_model(
        ops in proptest::collection::vec(op(), 1..120),
        max_in_flight in 1usize..6,
        max_bytes in 20u64..200,
    ) {
        let lim = limits(max_in_flight, max_bytes);
        let mut core = OutboxCore::new(lim);
        let mut model = Model::default();
        let mut now = Instant::now();
        let mut next_seq = 1u64;
        for op in ops {
            let actions = match op {
                Op::Accept(severity, size) => {
                    let expected = model.admit(severity, size as u64, max_bytes);
                    let admission = core.admit(severity, size as u64);
                    match (expected, admission) {
                        (None, Admission::Refuse) => Vec::new(),
                        (Some(evict), Admission::Admit { evict: got, over_budget }) => {
                            prop_assert_eq!(&evict, &got);
                            prop_assert_eq!(over_budget, severity == Severity::Alarm
                                && model.bytes() + size as u64 - evict.iter().map(|s| model.pending.iter().find(|p| p.0 == *s).map_or(0, |p| p.2)).sum::<u64>() > max_bytes);
                            model.pending.retain(|p| !evict.contains(&p.0));
                            model.pending.push_back((next_seq, severity, size as u64, None));
                            let seq = next_seq;
                            next_seq += 1;
                            core.handle(now, Input::Accepted { seq, severity, size: size as u64, evicted: got })
                        }
                        (e, a) => return Err(TestCaseError::fail(format!("model {e:?} vs core {a:?}"))),
                    }
                }
                Op::Ack(seqs) => {
                    model.pending.retain(|p| !seqs.contains(&p.0));
                    core.handle(now, Input::Acked { seqs })
                }
                Op::Connect => {
                    model.connected = true;
                    model.pending.iter_mut().for_each(|p| p.3 = None);
                    core.handle(now, Input::Connected)
                }
                Op::Disconnect => {
                    model.connected = false;
                    model.pending.iter_mut().for_each(|p| p.3 = None);
                    core.handle(now, Input::Disconnected)
                }
                Op::Tick(secs) => {
                    now += Duration::from_secs(secs);
                    for p in model.pending.iter_mut() {
                        if p.3.is_some_and(|t| t + T <= now) {
                            p.3 = None;
                        }
                    }
                    core.handle(now, Input::Tick)
                }
            };
            let expected_sends = model.fill(now, max_in_flight);
            prop_assert_eq!(sent(&actions), expected_sends);
            prop_assert_eq!(core.len(), model.pending.len());
            prop_assert_eq!(core.bytes(), model.bytes());
            let in_flight = model.pending.iter().filter(|p| p.3.is_some()).count();
            prop_assert_eq!(core.in_flight(), in_flight);
            prop_assert!(core.in_flight() <= max_in_flight);
            if !model.connected {
                prop_assert_eq!(core.in_flight(), 0);
            }
            // Nothing but info and warnings ever leaves except by ack: alarms stay until acked.
            for p in &model.pending {
                prop_assert_eq!(core.severity_of(p.0), Some(p.1));
            }
        }
    }
}
