//! What only PostgreSQL has to get right: several hubs (here: connections on threads) writing
//! one database at once, migrations racing at start-up, a newer schema, a lost connection.
//! The behaviour both engines share is tested on both beside the SQLite code.

use super::testdb::PgTestDb;
use super::*;
use crate::store::{HandlingStore, Store};

fn db() -> Option<PgTestDb> {
    if std::env::var("VAKA_TEST_PG").is_ok_and(|v| v == "off") {
        eprintln!("VAKA_TEST_PG=off: skipped");
        return None;
    }
    Some(PgTestDb::create().unwrap_or_else(|e| panic!("{e}")))
}

fn event(device: &str, seq: u64, kind: &str) -> EventRow {
    EventRow {
        id: uuid::Uuid::now_v7(),
        device: device.into(),
        site: "skelleftea".into(),
        seq,
        ts: Timestamp::from_microsecond(1_790_000_000_000_000 + seq as i64).unwrap(),
        received_at: Timestamp::from_microsecond(1_790_000_000_000_123 + seq as i64).unwrap(),
        kind: kind.into(),
        severity: "alarm".into(),
        body: serde_json::json!({"seq": seq}),
    }
}

#[test]
fn two_hubs_storing_the_same_events_at_once_store_each_once_and_report_the_other_copy_as_duplicate() {
    let Some(db) = db() else { return };
    PgStore::open(&db.url).unwrap();
    let events: Vec<EventRow> = (1..=300).map(|seq| event("home-1", seq, "position")).collect();
    // The second hub gets them in the opposite order, as a resend after a reconnect might.
    let reports: Vec<Vec<(uuid::Uuid, Inserted)>> = std::thread::scope(|scope| {
        let hubs: Vec<_> = [false, true]
            .into_iter()
            .map(|reversed| {
                let (url, events) = (&db.url, &events);
                scope.spawn(move || {
                    let mut store = PgStore::open(url).unwrap();
                    let mut mine: Vec<EventRow> = events.clone();
                    if reversed {
                        mine.reverse();
                    }
                    let mut out = Vec::new();
                    for chunk in mine.chunks(25) {
                        let done = store.commit(&WriteBatch { events: chunk.to_vec(), ..WriteBatch::default() }).unwrap();
                        out.extend(chunk.iter().map(|e| e.id).zip(done.events));
                    }
                    out
                })
            })
            .collect();
        hubs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for e in &events {
        let new = reports.iter().flatten().filter(|(id, i)| *id == e.id && *i == Inserted::New).count();
        let duplicate = reports.iter().flatten().filter(|(id, i)| *id == e.id && *i == Inserted::Duplicate).count();
        assert_eq!((new, duplicate), (1, 1), "event {}", e.seq);
    }
    let store = PgStore::open(&db.url).unwrap();
    assert_eq!(store.events(None, 1000).unwrap().len(), 300);
    let back = store.events(Some("home-1"), 1).unwrap();
    assert_eq!(back, [events[299].clone()], "stored exactly as given, timestamps to the microsecond");
}

#[test]
fn two_hubs_triggering_one_alarm_at_once_keep_one_open_alarm_that_counts_every_trigger() {
    let Some(db) = db() else { return };
    PgStore::open(&db.url).unwrap();
    std::thread::scope(|scope| {
        for hub in 0..2u64 {
            let url = &db.url;
            scope.spawn(move || {
                let mut store = PgStore::open(url).unwrap();
                for i in 0..40 {
                    let batch = WriteBatch {
                        events: vec![event("home-1", hub * 1000 + i, "sos")],
                        raise_alarms: vec![("home-1".into(), "skelleftea".into(), Timestamp::now())],
                        ..WriteBatch::default()
                    };
                    store.commit(&batch).unwrap();
                }
            });
        }
    });
    let store = PgStore::open(&db.url).unwrap();
    let alarms = store.alarms(100).unwrap();
    let open = |kind: &str| alarms.iter().filter(|a| a.kind == kind && a.cleared_at.is_none()).collect::<Vec<_>>();
    assert_eq!(open("sos").len(), 1, "{alarms:?}");
    assert_eq!(open("sos")[0].occurrences, 80);
    assert_eq!(open(SUPERVISION_LOST).len(), 1, "{alarms:?}");
}

#[test]
fn hubs_handling_and_auditing_at_once_keep_one_unbroken_chain() {
    let Some(db) = db() else { return };
    let mut first = PgStore::open(&db.url).unwrap();
    first.commit(&WriteBatch { events: vec![event("home-1", 1, "sos")], ..WriteBatch::default() }).unwrap();
    let alarm = first.alarms(1).unwrap()[0].id;
    let entry = |action: String| AuditEntry { at: Timestamp::now(), actor: "anna".into(), role: "night_staff".into(), action, check_id: None, device: None, detail: None };
    std::thread::scope(|scope| {
        for hub in 0..3 {
            let url = &db.url;
            scope.spawn(move || {
                let mut store = PgStore::open(url).unwrap();
                for i in 0..30 {
                    match i % 3 {
                        0 => store.append_audit(&entry(format!("hub{hub}_{i}"))).unwrap(),
                        1 => {
                            let _ = store.handle_alarm(alarm, &crate::store::AlarmAction::Acknowledge, "anna", &entry(format!("ack{hub}_{i}"))).unwrap();
                        }
                        _ => store.open_check(&CheckRow::requested(format!("c-{hub}-{i}"), ("s", "home-1"), ("anna", "night_staff"), Timestamp::now(), Timestamp::now()), &entry(format!("check{hub}_{i}"))).unwrap(),
                    }
                }
            });
        }
    });
    assert!(matches!(first.verify_audit().unwrap(), AuditVerdict::Intact { entries: 90, .. }), "{:?}", first.verify_audit());
}

#[test]
fn hubs_starting_at_once_migrate_a_new_database_once() {
    let Some(db) = db() else { return };
    let opened: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let hubs: Vec<_> = (0..4).map(|_| scope.spawn(|| PgStore::open(&db.url).map(drop).map_err(|e| e.to_string()))).collect();
        hubs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(opened.iter().all(Result::is_ok), "{opened:?}");
    let mut client = postgres::Client::connect(&db.url, NoTls).unwrap();
    let versions: Vec<i64> = client.query("SELECT version FROM vaka_schema", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, [SCHEMA_VERSION]);
}

#[test]
fn a_database_written_by_a_newer_hub_is_refused() {
    let Some(db) = db() else { return };
    PgStore::open(&db.url).unwrap();
    let mut client = postgres::Client::connect(&db.url, NoTls).unwrap();
    client.execute("UPDATE vaka_schema SET version = 99", &[]).unwrap();
    match PgStore::open(&db.url) {
        Err(StoreError::SchemaTooNew { found: 99, supported }) => assert_eq!(supported, SCHEMA_VERSION),
        other => panic!("expected SchemaTooNew, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_connection_the_server_closed_is_opened_again_on_the_next_call() {
    let Some(db) = db() else { return };
    let store = PgStore::open(&db.url).unwrap();
    store.ping().unwrap();
    let mut admin = postgres::Client::connect(&db.url, NoTls).unwrap();
    let killed = admin
        .query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()", &[])
        .unwrap();
    assert_eq!(killed.len(), 1);
    // The call that finds the connection gone fails (the hub retries); the next one reconnects.
    let _ = store.ping();
    store.ping().unwrap();
}

#[test]
fn an_unreachable_database_is_a_clear_error_naming_where_without_the_password() {
    let err = PgStore::open("postgres://vaka:secret@127.0.0.1:9/vaka").map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("cannot connect to PostgreSQL") && err.contains("127.0.0.1") && err.contains("port 9"), "{err}");
    assert!(!err.contains("secret"), "{err}");
    let err = PgStore::open("mysql://x").map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("store.database_url"), "{err}");
}
