//! S3 of the fault suite: a bounded fuzz of the wire contract's decoders.
//!
//! Every decoding entry point of `vaka-protocol` (event envelope, ack, command, status,
//! snapshot, calibration answer, the `snapshot` topic's either-or, and topic names) is fed
//!
//! - arbitrary bytes, and
//! - valid messages of every kind, structurally mutated: fields removed, renamed, duplicated
//!   under unknown names, values replaced by values of other types or at the edges of their
//!   ranges, `kind`/`cmd` swapped for another kind's name, then sometimes the JSON text itself
//!   truncated, a byte changed or bytes spliced in.
//!
//! The properties: no decoder panics, and whatever a decoder accepts re-encodes to a message
//! the same decoder accepts again with the same identity (id, device, seq, kind). A mutated
//! corpus where almost nothing decodes would only exercise the first few checks of each
//! decoder, so the run also asserts that a fair share of mutated envelopes still decodes.
//!
//! The case count is bounded for CI (see [`cases`]); `VAKA_FUZZ_CASES=1000000` runs a longer
//! fuzz locally. Figures (cases, accepted, refused, seconds) are printed per entry point.

use jiff::Timestamp;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use std::time::Instant;
use uuid::Uuid;
use vaka_protocol::kinds::*;
use vaka_protocol::*;

/// Cases per property: `VAKA_FUZZ_CASES`, or `default`.
fn cases(default: u32) -> u32 {
    std::env::var("VAKA_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn runner(cases: u32) -> TestRunner {
    // A fixed seed per run would hide nothing proptest's persistence would find; the default
    // (random) seed explores more across CI runs, and a failure prints its minimal input.
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00];

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// One valid envelope of every kind.
fn envelopes() -> Vec<Envelope> {
    let at = ts("2026-11-24T01:02:03.5Z");
    let dose = Dose { dose_id: "d-1".into(), medication: "Waran 2.5 mg".into(), scheduled: at };
    let bodies = vec![
        EventBody::CameraCheck(CameraCheck {
            check_id: Some(CheckId::new("chk-1").unwrap_or_else(|e| panic!("{e}"))),
            verdict: Verdict::Resting,
            refusal: None,
            confidence: 0.9,
            detail: Some("still".into()),
            frames: 12,
            brightness: Some(0.4),
            motion_in_zone: Some(0.1),
            motion_outside: Some(0.0),
            presence: Some(0.8),
            presence_strong: Some(0.7),
            duration_ms: 900,
        }),
        EventBody::DoseDue(dose.clone()),
        EventBody::DoseDispensed(dose.clone()),
        EventBody::DoseTaken(dose.clone()),
        EventBody::DoseMissed(dose.clone()),
        EventBody::DoseSkipped(dose),
        EventBody::LowStock(LowStock { doses_left: 3 }),
        EventBody::DeviceError(DeviceError { code: "E42".into(), message: Some("jam".into()) }),
        EventBody::Tamper(Empty {}),
        EventBody::PowerLost(Empty {}),
        EventBody::DispenserOffline(Silence { since: at }),
        EventBody::Position(Position { lat: 64.75, lon: 20.95, accuracy_m: Some(5.0), speed_mps: Some(1.2) }),
        EventBody::GeofenceLeft(GeofenceLeft {
            area: "home".into(),
            lat: 64.76,
            lon: 20.96,
            distance_outside_m: 120.0,
            speed_mps: Some(1.0),
            repeat: 2,
        }),
        EventBody::GeofenceReturned(GeofenceReturned { area: "home".into(), lat: 64.75, lon: 20.95 }),
        EventBody::Sos(Sos { lat: Some(64.75), lon: Some(20.95), repeat: 1 }),
        EventBody::GpsNoFix(Silence { since: at }),
        EventBody::BatteryLow(BatteryLow { source: BatterySource::Gps, percent: Some(9) }),
        EventBody::OutboxOverflow(OutboxOverflow { dropped: 4, first_dropped_seq: 10, last_dropped_seq: 13 }),
        EventBody::TestAlarm(TestAlarm { note: Some("drill".into()) }),
        EventBody::InstallerMode(InstallerMode { until: at }),
    ];
    let device = DeviceId::new("home-7").unwrap_or_else(|e| panic!("{e}"));
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| Envelope::new(device.clone(), i as u64 + 1, Uuid::now_v7(), at, body))
        .collect()
}

/// One valid message of every other kind, as JSON.
fn control_messages() -> Vec<Value> {
    let at = ts("2026-11-24T01:02:03Z");
    let check = CheckId::new("chk-1").unwrap_or_else(|e| panic!("{e}"));
    let mut out: Vec<Vec<u8>> = vec![
        Ack::new(vec![1, 2, 3], vec![Rejection { seq: 4, reason: "bad".into() }]).encode(),
        Status::online(at, 12, 60, "0.1.0").encode(),
        Status::offline().encode(),
        SnapshotMessage::new(check.clone(), at, (160, 120), SnapshotFilter::Silhouette, JPEG.to_vec()).encode(),
        CalibrationMessage::picture(
            check.clone(),
            at,
            CalibrationPicture {
                width: 160,
                height: 120,
                filter: SnapshotFilter::Silhouette,
                jpeg: JPEG.to_vec(),
                bed_zone: Some(vec![[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]),
            },
        )
        .encode(),
        CalibrationMessage::refused(check.clone(), at, CalibrationRefusal::InstallerModeOff, "off".into()).encode(),
    ];
    for body in [
        CommandBody::Ping(Empty {}),
        CommandBody::CameraCheck { check_id: check.clone(), deadline: at },
        CommandBody::Snapshot { check_id: check.clone() },
        CommandBody::Calibrate { request_id: check.clone() },
        CommandBody::SetBedZone { bed_zone: vec![[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]] },
    ] {
        out.push(Command::new(Uuid::now_v7(), at, body).encode());
    }
    out.iter().map(|b| serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}"))).collect()
}

const KINDS: &[&str] = &[
    "camera_check", "dose_due", "dose_dispensed", "dose_taken", "dose_missed", "dose_skipped",
    "low_stock", "device_error", "tamper", "power_lost", "dispenser_offline", "position",
    "geofence_left", "geofence_returned", "sos", "gps_no_fix", "battery_low", "outbox_overflow",
    "test_alarm", "installer_mode", "ping", "snapshot", "calibrate", "set_bed_zone",
];

/// Values at the edges of what the decoders check: other types, extreme numbers, odd
/// strings, other kinds' names, timestamps outside the plausible years, other UUID versions.
fn interesting(i: usize) -> Value {
    static VALUES: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    let values = VALUES.get_or_init(|| (0..).map_while(interesting_uncached).collect());
    values[i % values.len()].clone()
}

fn interesting_uncached(i: usize) -> Option<Value> {
    let deep = (0..200).fold(json!(0), |v, _| json!([v]));
    let fixed = [
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1),
        json!(2),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1e308),
        json!(-1e308),
        json!(0.5),
        json!(-0.0),
        json!(90.000001),
        json!(-180.0),
        json!(4294967296u64),
        json!(""),
        json!("x".repeat(300)),
        json!("\u{0}"),
        json!("🦀 ÅÄÖ"),
        json!("2026-11-24T01:02:03Z"),
        json!("1970-01-01T00:00:00Z"),
        json!("9999-12-31T23:59:59Z"),
        json!("not a time"),
        json!(Uuid::nil().to_string()),
        json!("6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
        json!(Uuid::now_v7().to_string()),
        json!("HOME-7"),
        json!("-home"),
        json!("alarm"),
        json!("loud"),
        json!([]),
        json!({}),
        json!([[0.0, 0.0], [1.0, 0.0]]),
        json!([[0.0, 0.0], [2.0, 0.0], [1.0, 1.0]]),
        json!({"v": 1}),
        json!("/9j/4AAQ"),
        json!("not base64!"),
        deep,
    ];
    match i {
        k if k < fixed.len() => Some(fixed[k].clone()),
        k => KINDS.get(k - fixed.len()).map(|kind| json!(kind)),
    }
}

/// A path to a node of a JSON tree: object keys and array indexes.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

fn paths(v: &Value, prefix: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(Seg::Key(k.clone()));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate().take(8) {
                prefix.push(Seg::Index(i));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn node<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, seg| match seg {
        Seg::Key(k) => v.get_mut(k.as_str()),
        Seg::Index(i) => v.get_mut(*i),
    })
}

/// One structural mutation, chosen by `op`, at the node chosen by `at`, using `arg`.
fn mutate(v: &mut Value, op: u8, at: usize, arg: usize) {
    let mut all = Vec::new();
    paths(v, &mut Vec::new(), &mut all);
    let path = all[at % all.len()].clone();
    let (parent_path, last) = match path.split_last() {
        Some((last, parent)) => (parent.to_vec(), Some(last.clone())),
        None => (Vec::new(), None),
    };
    match (op % 6, last) {
        // Replace the node by an interesting value.
        (0 | 1, _) => {
            if let Some(n) = node(v, &path) {
                *n = interesting(arg);
            }
        }
        // Remove it.
        (2, Some(seg)) => match (node(v, &parent_path), seg) {
            (Some(Value::Object(m)), Seg::Key(k)) => {
                m.remove(&k);
            }
            (Some(Value::Array(a)), Seg::Index(i)) if i < a.len() => {
                a.remove(i);
            }
            _ => {}
        },
        // Rename the key (or duplicate the array element).
        (3, Some(seg)) => match (node(v, &parent_path), seg) {
            (Some(Value::Object(m)), Seg::Key(k)) => {
                if let Some(child) = m.remove(&k) {
                    let names = ["v", "id", "kind", "body", "cmd", "args", "seq", "ts", "Kind", "bodyy", "extra"];
                    m.insert(names[arg % names.len()].to_string(), child);
                }
            }
            (Some(Value::Array(a)), Seg::Index(i)) if i < a.len() => {
                let copy = a[i].clone();
                a.insert(i, copy);
            }
            _ => {}
        },
        // Copy the node into an unknown (or known) field of the root object.
        (4, _) => {
            let copy = node(v, &path).cloned().unwrap_or(Value::Null);
            if let Value::Object(m) = v {
                let names = ["unknown", "severity", "device", "committed", "rejected", "state", "picture", "refusal"];
                m.insert(names[arg % names.len()].to_string(), copy);
            }
        }
        // Wrap the node in an array.
        _ => {
            if let Some(n) = node(v, &path) {
                *n = Value::Array(vec![n.take()]);
            }
        }
    }
}

/// A byte-level change of the serialised text, chosen by `op`.
fn mangle(bytes: &mut Vec<u8>, op: u8, at: usize, byte: u8) {
    if bytes.is_empty() {
        return;
    }
    let at = at % bytes.len();
    match op % 8 {
        0 => bytes.truncate(at),
        1 => bytes[at] = byte,
        2 => bytes.insert(at, byte),
        3 => bytes.splice(at..at, b"\"\\u0000\",".iter().copied()).for_each(drop),
        // Most cases keep valid JSON so that the structural mutations reach the decoders'
        // value checks.
        _ => {}
    }
}

/// Tallies per entry point: (accepted, refused).
#[derive(Default, Debug)]
struct Tally {
    envelope: (u64, u64),
    ack: (u64, u64),
    command: (u64, u64),
    status: (u64, u64),
    snapshot: (u64, u64),
    calibration: (u64, u64),
    picture: (u64, u64),
    topic: (u64, u64),
}

fn count<T>(slot: &mut (u64, u64), r: &Result<T, impl std::fmt::Debug>) {
    if r.is_ok() {
        slot.0 += 1;
    } else {
        slot.1 += 1;
    }
}

/// Runs every decoder on `bytes`; checks the round trip of whatever is accepted.
fn decode_all(bytes: &[u8], tally: &mut Tally) -> Result<(), TestCaseError> {
    let e = Envelope::decode(bytes);
    count(&mut tally.envelope, &e);
    if let Ok(e) = e {
        let again = Envelope::decode(&e.encode())
            .map_err(|err| TestCaseError::fail(format!("accepted envelope does not re-decode: {err}")))?;
        prop_assert_eq!((again.id, &again.device, again.seq, again.kind(), again.severity), (e.id, &e.device, e.seq, e.kind(), e.severity));
    }
    let a = Ack::decode(bytes);
    count(&mut tally.ack, &a);
    if let Ok(a) = a {
        prop_assert_eq!(Ack::decode(&a.encode()).ok(), Some(a));
    }
    let c = Command::decode(bytes);
    count(&mut tally.command, &c);
    if let Ok(c) = c {
        let again = Command::decode(&c.encode())
            .map_err(|err| TestCaseError::fail(format!("accepted command does not re-decode: {err}")))?;
        prop_assert_eq!(again.id, c.id);
    }
    let s = Status::decode(bytes);
    count(&mut tally.status, &s);
    if let Ok(s) = s {
        prop_assert_eq!(Status::decode(&s.encode()).ok(), Some(s));
    }
    let snap = SnapshotMessage::decode(bytes);
    count(&mut tally.snapshot, &snap);
    if let Ok(m) = snap {
        prop_assert!(SnapshotMessage::decode(&m.encode()).is_ok_and(|again| again.jpeg == m.jpeg));
    }
    let cal = CalibrationMessage::decode(bytes);
    count(&mut tally.calibration, &cal);
    if let Ok(m) = cal {
        prop_assert!(CalibrationMessage::decode(&m.encode()).is_ok_and(|again| again.request_id == m.request_id));
    }
    let p = PictureMessage::decode(bytes);
    count(&mut tally.picture, &p);
    if let Ok(p) = p {
        prop_assert!(PictureMessage::decode(&p.encode()).is_ok());
    }
    let t = std::str::from_utf8(bytes).map_err(|e| e.to_string()).and_then(|s| Topic::parse(s).map_err(|e| e.to_string()));
    count(&mut tally.topic, &t);
    if let Ok(t) = t {
        prop_assert_eq!(Topic::parse(&t.to_string()).ok(), Some(t));
    }
    Ok(())
}

fn print(name: &str, cases: u32, started: Instant, tally: &Tally) {
    println!(
        "S3 {name}: {cases} cases in {:.1} s; accepted/refused per decoder: {tally:?}",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn every_decoder_survives_arbitrary_bytes() {
    let n = cases(50_000);
    let tally = std::cell::RefCell::new(Tally::default());
    let started = Instant::now();
    let strategy = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        // Bytes that at least start like JSON, so the parsers get past the first byte.
        proptest::collection::vec(any::<u8>(), 0..512).prop_map(|mut b| {
            b.insert(0, b'{');
            b
        }),
        // Strings of JSON's own punctuation, and topic-shaped strings.
        "[{}\\[\\]\":,0-9a-z\\\\ -]{0,300}".prop_map(String::into_bytes),
        "vaka/v[0-9]/[a-z0-9/#+-]{0,40}".prop_map(String::into_bytes),
        "vaka/v1/[a-z0-9-]{1,12}/[a-z0-9-]{1,12}/(events|acks|cmd|status|snapshot|other)(/x)?".prop_map(String::into_bytes),
    ];
    runner(n)
        .run(&strategy, |bytes| decode_all(&bytes, &mut tally.borrow_mut()))
        .unwrap_or_else(|e| panic!("{e}"));
    let tally = tally.into_inner();
    print("arbitrary bytes", n, started, &tally);
    // Random bytes are refused, not crashed on: the figures must show decoding was attempted.
    assert_eq!(tally.envelope.0 + tally.envelope.1, u64::from(n));
}

#[test]
fn every_decoder_survives_structurally_mutated_valid_messages() {
    let n = cases(40_000);
    let envelopes: Vec<Value> = envelopes().iter().map(|e| serde_json::from_slice(&e.encode()).unwrap()).collect();
    let mut corpus = envelopes.clone();
    corpus.extend(control_messages());
    // The unmutated corpus is valid: a decoder that refused everything would make this whole
    // test vacuous.
    for e in &envelopes {
        Envelope::decode(&serde_json::to_vec(e).unwrap()).unwrap_or_else(|err| panic!("{e}: {err}"));
    }
    for m in &corpus {
        let mut one = Tally::default();
        decode_all(&serde_json::to_vec(m).unwrap(), &mut one).unwrap();
        let accepted = [one.envelope, one.ack, one.command, one.status, one.snapshot, one.calibration];
        assert!(accepted.iter().any(|(ok, _)| *ok == 1), "no decoder takes the corpus entry {m}");
    }
    let tally = std::cell::RefCell::new(Tally::default());
    let started = Instant::now();
    let mutation = (any::<u8>(), any::<usize>(), any::<usize>());
    let strategy = (
        0..corpus.len(),
        proptest::collection::vec(mutation, 0..4),
        (any::<u8>(), any::<usize>(), any::<u8>()),
    );
    runner(n)
        .run(&strategy, |(which, mutations, (op, at, byte))| {
            let mut v = corpus[which].clone();
            for (op, at, arg) in mutations {
                mutate(&mut v, op, at, arg);
            }
            let mut bytes = serde_json::to_vec(&v).unwrap_or_default();
            mangle(&mut bytes, op, at, byte);
            decode_all(&bytes, &mut tally.borrow_mut())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let tally = tally.into_inner();
    print("mutated valid messages", n, started, &tally);
    let (ok, refused) = tally.envelope;
    // Envelopes are 20 of the 31 corpus entries, and a third of the cases have no mutation
    // at all or one that keeps them valid: if almost nothing decodes, the mutations stopped
    // exercising the value checks behind the JSON parser.
    assert!(ok * 20 >= u64::from(n), "only {ok} of {n} mutated messages decoded as envelopes");
    assert!(refused * 4 >= u64::from(n), "only {refused} of {n} mutated messages were refused");
}

#[test]
fn oversized_messages_are_refused_before_parsing() {
    let mut big = envelopes()[0].encode();
    big.truncate(big.len() - 1);
    big.extend(std::iter::repeat_n(b' ', MAX_EVENT_BYTES));
    big.push(b'}');
    assert!(matches!(Envelope::decode(&big), Err(DecodeError::TooLarge { .. })));
}
