//! [`Store`] on SQLite: one file, WAL journal, `synchronous=FULL`, so a committed transaction
//! survives a power cut. Timestamps are stored as integer microseconds since the Unix epoch
//! (sortable); event bodies as JSON text.
//!
//! The schema is created or migrated at open, guarded by `PRAGMA user_version`. A database
//! written by a newer hub is refused rather than misread.
//!
//! One `SqliteStore` is one connection. The hub opens one for its single writer thread and one
//! for readers (the HTTP API); WAL lets them run at the same time.

use super::{
    AlarmRow, DeviceRow, EventRow, Inserted, RejectRow, Store, StoreError, WriteBatch,
    SUPERVISION_LOST,
};
use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::Path;
use std::time::Duration;
use uuid::Uuid;

const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE devices (
    id               TEXT PRIMARY KEY,
    site             TEXT NOT NULL,
    online           INTEGER NOT NULL,
    last_seen        INTEGER NOT NULL,
    outbox_depth     INTEGER,
    supervision_lost INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE events (
    event_id    TEXT PRIMARY KEY,
    device      TEXT NOT NULL,
    site        TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    ts          INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    severity    TEXT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX events_device_seq ON events (device, seq);
CREATE TABLE rejects (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at     INTEGER NOT NULL,
    topic           TEXT NOT NULL,
    reason          TEXT NOT NULL,
    label           TEXT NOT NULL,
    payload_excerpt TEXT NOT NULL,
    device          TEXT
);
CREATE TABLE alarms (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    device     TEXT NOT NULL,
    site       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    raised_at  INTEGER NOT NULL,
    cleared_at INTEGER
);
CREATE INDEX alarms_open ON alarms (device, kind) WHERE cleared_at IS NULL;
";

pub struct SqliteStore {
    conn: Connection,
}

fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn timestamp(us: i64) -> Result<Timestamp, rusqlite::Error> {
    Timestamp::from_microsecond(us).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

fn conversion(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = SqliteStore { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let found: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found < 1 {
            let tx = self.conn.transaction()?;
            tx.execute_batch(SCHEMA_V1)?;
            tx.pragma_update(None, "user_version", 1)?;
            tx.commit()?;
        }
        Ok(())
    }
}

fn event_from_row(r: &Row<'_>) -> Result<EventRow, rusqlite::Error> {
    let id: String = r.get(0)?;
    let body: String = r.get(8)?;
    Ok(EventRow {
        id: Uuid::parse_str(&id).map_err(conversion)?,
        device: r.get(1)?,
        site: r.get(2)?,
        seq: r.get::<_, i64>(3)? as u64,
        ts: timestamp(r.get(4)?)?,
        received_at: timestamp(r.get(5)?)?,
        kind: r.get(6)?,
        severity: r.get(7)?,
        body: serde_json::from_str(&body).map_err(conversion)?,
    })
}

fn device_from_row(r: &Row<'_>) -> Result<DeviceRow, rusqlite::Error> {
    Ok(DeviceRow {
        id: r.get(0)?,
        site: r.get(1)?,
        online: r.get(2)?,
        last_seen: timestamp(r.get(3)?)?,
        outbox_depth: r.get::<_, Option<i64>>(4)?.map(|d| d.max(0) as u64),
        supervision_lost: r.get(5)?,
    })
}

impl Store for SqliteStore {
    fn commit(&mut self, batch: &WriteBatch) -> Result<Vec<Inserted>, StoreError> {
        let tx = self.conn.transaction()?;
        let mut inserted = Vec::with_capacity(batch.events.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO events
                 (event_id, device, site, seq, ts, received_at, kind, severity, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for e in &batch.events {
                let n = insert.execute(params![
                    e.id.to_string(),
                    e.device,
                    e.site,
                    e.seq as i64,
                    micros(e.ts),
                    micros(e.received_at),
                    e.kind,
                    e.severity,
                    e.body.to_string(),
                ])?;
                inserted.push(if n == 1 {
                    Inserted::New
                } else {
                    Inserted::Duplicate
                });
            }
            let mut reject = tx.prepare_cached(
                "INSERT INTO rejects (received_at, topic, reason, label, payload_excerpt, device)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for r in &batch.rejects {
                reject.execute(params![
                    micros(r.received_at),
                    r.topic,
                    r.reason,
                    r.label,
                    r.payload_excerpt,
                    r.device
                ])?;
            }
            let mut device = tx.prepare_cached(
                "INSERT INTO devices (id, site, online, last_seen, outbox_depth, supervision_lost)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET site = excluded.site, online = excluded.online,
                   last_seen = excluded.last_seen,
                   outbox_depth = COALESCE(excluded.outbox_depth, devices.outbox_depth),
                   supervision_lost = excluded.supervision_lost",
            )?;
            for d in &batch.devices {
                device.execute(params![
                    d.id,
                    d.site,
                    d.online,
                    micros(d.last_seen),
                    d.outbox_depth.map(|n| n.min(i64::MAX as u64) as i64),
                    d.supervision_lost
                ])?;
            }
            let mut raise = tx.prepare_cached(
                "INSERT INTO alarms (device, site, kind, raised_at) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (dev, site, at) in &batch.raise_alarms {
                raise.execute(params![dev, site, SUPERVISION_LOST, micros(*at)])?;
            }
            let mut clear = tx.prepare_cached(
                "UPDATE alarms SET cleared_at = ?2
                 WHERE device = ?1 AND kind = ?3 AND cleared_at IS NULL",
            )?;
            for (dev, at) in &batch.clear_alarms {
                clear.execute(params![dev, micros(*at), SUPERVISION_LOST])?;
            }
        }
        tx.commit()?;
        Ok(inserted)
    }

    fn devices(&self) -> Result<Vec<DeviceRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, site, online, last_seen, outbox_depth, supervision_lost
             FROM devices ORDER BY site, id",
        )?;
        let rows = stmt
            .query_map([], device_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn events(&self, device: Option<&str>, limit: usize) -> Result<Vec<EventRow>, StoreError> {
        const COLS: &str = "event_id, device, site, seq, ts, received_at, kind, severity, body";
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows = match device {
            Some(device) => {
                let mut stmt = self.conn.prepare_cached(&format!(
                    "SELECT {COLS} FROM events WHERE device = ?1 ORDER BY seq DESC LIMIT ?2"
                ))?;
                let rows = stmt.query_map(params![device, limit], event_from_row)?;
                rows.collect::<Result<Vec<_>, _>>()?
            }
            None => {
                let mut stmt = self.conn.prepare_cached(&format!(
                    "SELECT {COLS} FROM events ORDER BY rowid DESC LIMIT ?1"
                ))?;
                let rows = stmt.query_map(params![limit], event_from_row)?;
                rows.collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok(rows)
    }

    fn rejects(&self, limit: usize) -> Result<Vec<RejectRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT received_at, topic, reason, label, payload_excerpt, device
             FROM rejects ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt
            .query_map(params![limit.min(i64::MAX as usize) as i64], |r| {
                Ok(RejectRow {
                    received_at: timestamp(r.get(0)?)?,
                    topic: r.get(1)?,
                    reason: r.get(2)?,
                    label: r.get(3)?,
                    payload_excerpt: r.get(4)?,
                    device: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn alarms(&self, limit: usize) -> Result<Vec<AlarmRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, device, site, kind, raised_at, cleared_at FROM alarms ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt
            .query_map(params![limit.min(i64::MAX as usize) as i64], |r| {
                Ok(AlarmRow {
                    id: r.get(0)?,
                    device: r.get(1)?,
                    site: r.get(2)?,
                    kind: r.get(3)?,
                    raised_at: timestamp(r.get(4)?)?,
                    cleared_at: r.get::<_, Option<i64>>(5)?.map(timestamp).transpose()?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn ping(&self) -> Result<(), StoreError> {
        let one: Option<i64> = self
            .conn
            .query_row("SELECT 1", [], |r| r.get(0))
            .optional()?;
        match one {
            Some(1) => Ok(()),
            _ => Err(StoreError::Corrupt("SELECT 1 did not answer 1".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(device: &str, seq: u64) -> EventRow {
        EventRow {
            id: Uuid::now_v7(),
            device: device.into(),
            site: "skelleftea".into(),
            seq,
            ts: "2026-11-23T01:00:00Z".parse().unwrap(),
            received_at: "2026-11-23T01:00:01.123456Z".parse().unwrap(),
            kind: "test_alarm".into(),
            severity: "alarm".into(),
            body: serde_json::json!({"note": "x"}),
        }
    }

    #[test]
    fn the_same_event_twice_is_stored_once_and_reported_as_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("hub.db")).unwrap();
        let e = event("home-1", 1);
        let batch = WriteBatch {
            events: vec![e.clone(), e.clone()],
            ..Default::default()
        };
        assert_eq!(
            store.commit(&batch).unwrap(),
            vec![Inserted::New, Inserted::Duplicate]
        );
        let again = WriteBatch {
            events: vec![e.clone()],
            ..Default::default()
        };
        assert_eq!(store.commit(&again).unwrap(), vec![Inserted::Duplicate]);
        assert_eq!(store.events(None, 10).unwrap(), vec![e]);
    }

    #[test]
    fn reopening_the_database_keeps_events_devices_rejects_and_alarms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let now: Timestamp = "2026-11-23T02:00:00Z".parse().unwrap();
        let device = DeviceRow {
            id: "home-1".into(),
            site: "skelleftea".into(),
            online: false,
            last_seen: now,
            outbox_depth: Some(3),
            supervision_lost: true,
        };
        {
            let mut store = SqliteStore::open(&path).unwrap();
            store
                .commit(&WriteBatch {
                    events: vec![event("home-1", 1), event("home-1", 2)],
                    rejects: vec![RejectRow {
                        received_at: now,
                        topic: "vaka/v1/s/d/events".into(),
                        reason: "payload is not valid JSON".into(),
                        label: "not_json".into(),
                        payload_excerpt: "garbage".into(),
                        device: Some("d".into()),
                    }],
                    devices: vec![device.clone()],
                    raise_alarms: vec![("home-1".into(), "skelleftea".into(), now)],
                    clear_alarms: vec![],
                })
                .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let seqs: Vec<u64> = store
            .events(Some("home-1"), 10)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![2, 1]);
        assert_eq!(store.devices().unwrap(), vec![device]);
        assert_eq!(store.rejects(10).unwrap()[0].label, "not_json");
        let alarms = store.alarms(10).unwrap();
        assert_eq!((alarms.len(), alarms[0].cleared_at), (1, None));
    }

    #[test]
    fn clearing_closes_only_the_open_alarm_and_keeps_the_outbox_depth_when_not_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("hub.db")).unwrap();
        let t1: Timestamp = "2026-11-23T02:00:00Z".parse().unwrap();
        let t2: Timestamp = "2026-11-23T02:05:00Z".parse().unwrap();
        let mut d = DeviceRow {
            id: "home-1".into(),
            site: "s".into(),
            online: true,
            last_seen: t1,
            outbox_depth: Some(7),
            supervision_lost: false,
        };
        store
            .commit(&WriteBatch {
                devices: vec![d.clone()],
                raise_alarms: vec![("home-1".into(), "s".into(), t1)],
                ..Default::default()
            })
            .unwrap();
        d.outbox_depth = None;
        store
            .commit(&WriteBatch {
                devices: vec![d],
                clear_alarms: vec![("home-1".into(), t2)],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(store.devices().unwrap()[0].outbox_depth, Some(7));
        assert_eq!(store.alarms(10).unwrap()[0].cleared_at, Some(t2));
    }
}
