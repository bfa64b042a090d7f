//! [`Store`] on SQLite: one file, WAL journal, `synchronous=FULL`, so a committed transaction
//! survives a power cut. Timestamps are stored as integer microseconds since the Unix epoch
//! (sortable); event bodies and camera-check figures as JSON text.
//!
//! The schema is created or migrated at open, guarded by `PRAGMA user_version` (1: devices,
//! events, rejects, alarms; 2: camera checks and the audit log; 3: alarm counts; 4: care plans,
//! patrols and rounds, see `rounds.rs`; 5: the audit log's hash chain, computed for the lines
//! already there; 6: console users and sessions, see `users.rs`; 7: staff's handling of alarms and the device
//! registrations of installers, see `handling.rs`; 8: cameras' bed zones, ibid.; 9: issued device certificates and
//! their revocation, see `certs.rs`; 10: leases for leader election, see `lease.rs`). A database written by a newer hub is refused rather than
//! misread.
//!
//! One `SqliteStore` is one connection. The hub opens one for its single writer thread and one
//! for readers (the HTTP API); WAL lets them run at the same time.

use super::{
    audit_hash, AlarmRow, AuditChain, AuditEntry, AuditRow, AuditVerdict, AUDIT_GENESIS, CheckRow, CheckStatus, Committed, DeviceRow, EventRow,
    Inserted, RejectRow, Store, StoreError, WriteBatch, SUPERVISION_LOST,
};
use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use std::path::Path;
use std::time::Duration;
use uuid::Uuid;

const SCHEMA_VERSION: i64 = 10;

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

const SCHEMA_V2: &str = "
CREATE TABLE camera_checks (
    check_id       TEXT PRIMARY KEY,
    site           TEXT NOT NULL,
    device         TEXT NOT NULL,
    requested_by   TEXT NOT NULL,
    requested_role TEXT NOT NULL,
    requested_at   INTEGER NOT NULL,
    deadline       INTEGER NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('requested', 'answered', 'no_answer')),
    verdict        TEXT,
    refusal        TEXT,
    confidence     REAL,
    detail         TEXT,
    figures        TEXT,
    event_id       TEXT,
    answered_at    INTEGER,
    late           INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX camera_checks_open ON camera_checks (deadline) WHERE status = 'requested';
CREATE TABLE audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    role     TEXT NOT NULL,
    action   TEXT NOT NULL,
    check_id TEXT,
    device   TEXT,
    detail   TEXT
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

/// Device alarms: one open alarm per device and kind, updated by repeated triggers.
const SCHEMA_V3: &str = "
ALTER TABLE alarms ADD COLUMN occurrences INTEGER NOT NULL DEFAULT 1;
ALTER TABLE alarms ADD COLUMN last_event TEXT;
ALTER TABLE alarms ADD COLUMN updated_at INTEGER;
";

/// The audit log's hash chain (see [`super::audit_hash`]). The lines already there get their
/// hashes in the migration, the only time the append-only triggers are lifted.
const SCHEMA_V5: &str = "ALTER TABLE audit ADD COLUMN hash TEXT;";

const AUDIT_COLS: &str = "id, at, actor, role, action, check_id, device, detail, hash";

const CHECK_COLS: &str = "check_id, site, device, requested_by, requested_role, requested_at,
    deadline, status, verdict, refusal, confidence, detail, figures, event_id, answered_at, late";

pub struct SqliteStore {
    pub(super) conn: Connection,
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
        if found < SCHEMA_VERSION {
            let tx = self.conn.transaction()?;
            if found < 1 {
                tx.execute_batch(SCHEMA_V1)?;
            }
            if found < 2 {
                tx.execute_batch(SCHEMA_V2)?;
            }
            if found < 3 {
                tx.execute_batch(SCHEMA_V3)?;
            }
            if found < 4 {
                tx.execute_batch(super::rounds::SCHEMA_V4)?;
            }
            if found < 5 {
                tx.execute_batch(SCHEMA_V5)?;
                chain_existing_audit(&tx)?;
            }
            if found < 6 {
                tx.execute_batch(super::users::SCHEMA_V6)?;
            }
            if found < 7 {
                tx.execute_batch(super::handling::SCHEMA_V7)?;
            }
            if found < 8 {
                tx.execute_batch(super::handling::SCHEMA_V8)?;
            }
            if found < 9 {
                tx.execute_batch(super::certs::SCHEMA_V9)?;
            }
            if found < 10 {
                tx.execute_batch(super::lease::SCHEMA_V10)?;
            }
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
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

fn check_from_row(r: &Row<'_>) -> Result<CheckRow, rusqlite::Error> {
    let status: String = r.get(7)?;
    let figures: Option<String> = r.get(12)?;
    let event_id: Option<String> = r.get(13)?;
    Ok(CheckRow {
        check_id: r.get(0)?,
        site: r.get(1)?,
        device: r.get(2)?,
        requested_by: r.get(3)?,
        requested_role: r.get(4)?,
        requested_at: timestamp(r.get(5)?)?,
        deadline: timestamp(r.get(6)?)?,
        status: CheckStatus::parse(&status).ok_or_else(|| {
            conversion(std::io::Error::other(format!(
                "unknown check status `{status}`"
            )))
        })?,
        verdict: r.get(8)?,
        refusal: r.get(9)?,
        confidence: r.get(10)?,
        detail: r.get(11)?,
        figures: figures
            .map(|f| serde_json::from_str(&f))
            .transpose()
            .map_err(conversion)?,
        event_id: event_id
            .map(|id| Uuid::parse_str(&id))
            .transpose()
            .map_err(conversion)?,
        answered_at: r.get::<_, Option<i64>>(14)?.map(timestamp).transpose()?,
        late: r.get(15)?,
    })
}

/// Applies a newly stored event's effect on its device's alarms (see `alarm_effect`), in the
/// event's own transaction.
fn alarm_for_event(tx: &Connection, e: &EventRow) -> Result<(), rusqlite::Error> {
    match super::alarm_effect(&e.kind, &e.severity) {
        Some(super::AlarmEffect::Trigger) => {
            let (id, at) = (e.id.to_string(), micros(e.ts));
            let updated = tx
                .prepare_cached(
                    "UPDATE alarms SET occurrences = occurrences + 1, last_event = ?3,
                       updated_at = ?4
                     WHERE device = ?1 AND kind = ?2 AND cleared_at IS NULL",
                )?
                .execute(params![e.device, e.kind, id, at])?;
            if updated == 0 {
                tx.prepare_cached(
                    "INSERT INTO alarms (device, site, kind, raised_at, last_event, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?4)",
                )?
                .execute(params![e.device, e.site, e.kind, at, id])?;
            }
        }
        Some(super::AlarmEffect::Clear(kind)) => {
            tx.prepare_cached(
                "UPDATE alarms SET cleared_at = ?3 WHERE device = ?1 AND kind = ?2
                   AND cleared_at IS NULL",
            )?
            .execute(params![e.device, kind, micros(e.ts)])?;
        }
        None => {}
    }
    Ok(())
}

/// Appends one audit line chained to the newest one. Call it inside a write transaction
/// (begun `IMMEDIATE`), so that no other connection appends between the read and the insert.
pub(super) fn insert_audit(conn: &Connection, e: &AuditEntry) -> Result<(), rusqlite::Error> {
    let last: Option<(i64, Option<String>)> = conn
        .prepare_cached("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (id, previous) = match last {
        Some((id, hash)) => (id + 1, hash.unwrap_or_default()),
        None => (1, AUDIT_GENESIS.to_string()),
    };
    conn.prepare_cached(
        "INSERT INTO audit (id, at, actor, role, action, check_id, device, detail, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        id,
        micros(e.at),
        e.actor,
        e.role,
        e.action,
        e.check_id,
        e.device,
        e.detail,
        audit_hash(&previous, id, e)
    ])?;
    Ok(())
}

fn audit_from_row(r: &Row<'_>) -> Result<AuditRow, rusqlite::Error> {
    Ok(AuditRow {
        id: r.get(0)?,
        entry: AuditEntry {
            at: timestamp(r.get(1)?)?,
            actor: r.get(2)?,
            role: r.get(3)?,
            action: r.get(4)?,
            check_id: r.get(5)?,
            device: r.get(6)?,
            detail: r.get(7)?,
        },
        hash: r.get(8)?,
    })
}

/// Migration to version 5: hashes for the audit lines written before the chain existed, in
/// id order. The triggers that refuse changes are dropped for this and created again.
fn chain_existing_audit(tx: &Connection) -> Result<(), rusqlite::Error> {
    tx.execute_batch("DROP TRIGGER audit_no_update;")?;
    let rows = tx
        .prepare(&format!("SELECT {AUDIT_COLS} FROM audit ORDER BY id"))?
        .query_map([], audit_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut previous = AUDIT_GENESIS.to_string();
    for row in rows {
        let hash = audit_hash(&previous, row.id, &row.entry);
        tx.execute("UPDATE audit SET hash = ?2 WHERE id = ?1", params![row.id, hash])?;
        previous = hash;
    }
    tx.execute_batch(
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
             BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
    )
}

pub(super) fn insert_camera_check(conn: &Connection, c: &CheckRow) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(&format!(
        "INSERT INTO camera_checks ({CHECK_COLS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
    ))?
    .execute(params![
        c.check_id,
        c.site,
        c.device,
        c.requested_by,
        c.requested_role,
        micros(c.requested_at),
        micros(c.deadline),
        c.status.as_str(),
        c.verdict,
        c.refusal,
        c.confidence,
        c.detail,
        c.figures.as_ref().map(|f| f.to_string()),
        c.event_id.map(|id| id.to_string()),
        c.answered_at.map(micros),
        c.late
    ])?;
    Ok(())
}

impl SqliteStore {
    /// Alarms matching `filter` (an SQL condition, possibly followed by ORDER/LIMIT).
    pub(super) fn alarms_where(&self, filter: &str, args: impl rusqlite::Params) -> Result<Vec<AlarmRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, device, site, kind, raised_at, cleared_at, occurrences, last_event,
                    updated_at, acked_at, acked_by, assigned_to, assigned_at, resolved_at,
                    resolved_by, outcome, note
             FROM alarms WHERE {filter}"
        ))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok(AlarmRow {
                    id: r.get(0)?,
                    device: r.get(1)?,
                    site: r.get(2)?,
                    kind: r.get(3)?,
                    raised_at: timestamp(r.get(4)?)?,
                    cleared_at: r.get::<_, Option<i64>>(5)?.map(timestamp).transpose()?,
                    occurrences: r.get::<_, i64>(6)?.max(1) as u64,
                    last_event: r
                        .get::<_, Option<String>>(7)?
                        .map(|s| Uuid::parse_str(&s).map_err(conversion))
                        .transpose()?,
                    updated_at: match r.get::<_, Option<i64>>(8)? {
                        Some(us) => timestamp(us)?,
                        None => timestamp(r.get(4)?)?,
                    },
                    handling: super::AlarmHandling {
                        acked_at: r.get::<_, Option<i64>>(9)?.map(timestamp).transpose()?,
                        acked_by: r.get(10)?,
                        assigned_to: r.get(11)?,
                        assigned_at: r.get::<_, Option<i64>>(12)?.map(timestamp).transpose()?,
                        resolved_at: r.get::<_, Option<i64>>(13)?.map(timestamp).transpose()?,
                        resolved_by: r.get(14)?,
                        outcome: r.get(15)?,
                        note: r.get(16)?,
                    },
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

impl Store for SqliteStore {
    fn commit(&mut self, batch: &WriteBatch) -> Result<Committed, StoreError> {
        let tx = self.conn.transaction()?;
        let mut inserted = Vec::with_capacity(batch.events.len());
        let (mut answered, mut unanswered) = (Vec::new(), Vec::new());
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
                if n == 1 {
                    alarm_for_event(&tx, e)?;
                }
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
                   last_seen = MAX(devices.last_seen, excluded.last_seen),
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
            let mut answer = tx.prepare_cached(
                "UPDATE camera_checks SET status = 'answered', verdict = ?2, refusal = ?3,
                   confidence = ?4, detail = ?5, figures = ?6, event_id = ?7, answered_at = ?8,
                   late = ?9
                 WHERE check_id = ?1 AND status <> 'answered'",
            )?;
            for a in &batch.check_answers {
                let n = answer.execute(params![
                    a.check_id,
                    a.verdict,
                    a.refusal,
                    a.confidence,
                    a.detail,
                    a.figures.to_string(),
                    a.event_id.to_string(),
                    micros(a.received_at),
                    a.late
                ])?;
                if n == 1 {
                    answered.push(a.check_id.clone());
                }
            }
            let mut expire = tx.prepare_cached(
                "UPDATE camera_checks SET status = 'no_answer'
                 WHERE check_id = ?1 AND status = 'requested'",
            )?;
            for id in &batch.checks_unanswered {
                if expire.execute(params![id])? == 1 {
                    unanswered.push(id.clone());
                }
            }
        }
        tx.commit()?;
        Ok(Committed {
            events: inserted,
            answered,
            unanswered,
        })
    }

    fn device(&self, id: &str) -> Result<Option<DeviceRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, site, online, last_seen, outbox_depth, supervision_lost
             FROM devices WHERE id = ?1",
        )?;
        Ok(stmt.query_row(params![id], device_from_row).optional()?)
    }

    fn check(&self, check_id: &str) -> Result<Option<CheckRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CHECK_COLS} FROM camera_checks WHERE check_id = ?1"
        ))?;
        Ok(stmt
            .query_row(params![check_id], check_from_row)
            .optional()?)
    }

    fn open_checks(&self) -> Result<Vec<CheckRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CHECK_COLS} FROM camera_checks WHERE status = 'requested' ORDER BY deadline"
        ))?;
        let rows = stmt
            .query_map([], check_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn open_check(&mut self, c: &CheckRow, audit: &AuditEntry) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_camera_check(&tx, c)?;
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn append_audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_audit(&tx, entry)?;
        tx.commit()?;
        Ok(())
    }

    fn audit(&self, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {AUDIT_COLS} FROM audit ORDER BY id DESC LIMIT ?1"))?;
        let rows = stmt
            .query_map(params![limit.min(i64::MAX as usize) as i64], audit_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn verify_audit(&self) -> Result<AuditVerdict, StoreError> {
        // One read transaction, so lines appended meanwhile are simply not part of this check.
        let mut stmt = self.conn.prepare(&format!("SELECT {AUDIT_COLS} FROM audit ORDER BY id"))?;
        let mut rows = stmt.query([])?;
        let mut chain = AuditChain::default();
        while let Some(row) = rows.next()? {
            if let Err(broken) = chain.feed(&audit_from_row(row)?) {
                return Ok(broken);
            }
        }
        Ok(chain.finish())
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
        self.alarms_where("1 ORDER BY id DESC LIMIT ?1", params![limit.min(i64::MAX as usize) as i64])
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
    use crate::store::engines::on_both_engines;

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

    fn check(id: &str, deadline: Timestamp) -> CheckRow {
        CheckRow::requested(
            id,
            ("skelleftea", "home-1"),
            ("anna.berg", "night_staff"),
            "2026-11-23T02:00:00Z".parse().unwrap(),
            deadline,
        )
    }

    fn audit(action: &str) -> AuditEntry {
        AuditEntry {
            at: "2026-11-23T02:00:00Z".parse().unwrap(),
            actor: "anna.berg".into(),
            role: "night_staff".into(),
            action: action.into(),
            check_id: Some("c-1".into()),
            device: Some("home-1".into()),
            detail: None,
        }
    }

    fn answer(check_id: &str, event: &EventRow, late: bool) -> super::super::CheckAnswer {
        super::super::CheckAnswer {
            check_id: check_id.into(),
            event_id: event.id,
            received_at: event.received_at,
            verdict: "resting".into(),
            refusal: None,
            confidence: 0.9,
            detail: Some("calm".into()),
            figures: serde_json::json!({"frames": 8, "duration_ms": 2500}),
            late,
        }
    }

    #[test]
    fn a_version_1_database_gains_camera_checks_the_audit_log_and_alarm_counts_and_keeps_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO events VALUES ('019a0000-0000-7000-8000-000000000001', 'home-1', 's', 1, 0, 0, 'test_alarm', 'alarm', '{}')",
                [],
            )
            .unwrap();
        }
        let mut store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.events(None, 10).unwrap().len(), 1);
        store
            .append_audit(&audit("camera_check_requested"))
            .unwrap();
        let version: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // Version 3 gave alarms their trigger count; a new alarm event opens one.
        store
            .commit(&WriteBatch { events: vec![event("home-1", 2)], ..Default::default() })
            .unwrap();
        assert_eq!(store.alarms(10).unwrap()[0].occurrences, 1);
    }

    fn broken_at(verdict: AuditVerdict) -> (i64, String) {
        match verdict {
            AuditVerdict::Broken { at, reason, .. } => (at, reason),
            intact => panic!("expected a broken chain, got {intact:?}"),
        }
    }

    #[test]
    fn audit_lines_written_before_the_chain_existed_are_chained_by_the_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.execute_batch(SCHEMA_V2).unwrap();
            conn.execute_batch(SCHEMA_V3).unwrap();
            conn.execute_batch(super::super::rounds::SCHEMA_V4).unwrap();
            conn.pragma_update(None, "user_version", 4).unwrap();
            for action in ["snapshot_requested", "snapshot_viewed"] {
                conn.execute(
                    "INSERT INTO audit (at, actor, role, action) VALUES (1, 'anna', 'night_staff', ?1)",
                    params![action],
                )
                .unwrap();
            }
        }
        let mut store = SqliteStore::open(&path).unwrap();
        store.append_audit(&audit("login")).unwrap();
        assert_eq!(
            store.verify_audit().unwrap(),
            AuditVerdict::Intact { entries: 3, head: store.audit(1).unwrap()[0].hash.clone().unwrap() }
        );
        // The migration put the append-only triggers back.
        assert!(store.conn.execute("UPDATE audit SET actor = 'x'", []).is_err());
        assert!(store.conn.execute("DELETE FROM audit", []).is_err());
    }

    on_both_engines! {
        fn the_same_event_twice_is_stored_once_and_reported_as_duplicate(db: &TestDb) {
            let mut store = db.open();
            let e = event("home-1", 1);
            let batch = WriteBatch {
                events: vec![e.clone(), e.clone()],
                ..Default::default()
            };
            assert_eq!(
                store.commit(&batch).unwrap().events,
                vec![Inserted::New, Inserted::Duplicate]
            );
            let again = WriteBatch {
                events: vec![e.clone()],
                ..Default::default()
            };
            assert_eq!(
                store.commit(&again).unwrap().events,
                vec![Inserted::Duplicate]
            );
            assert_eq!(store.events(None, 10).unwrap(), vec![e]);
        }

        fn reopening_the_database_keeps_events_devices_rejects_and_alarms(db: &TestDb) {
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
                let mut store = db.open();
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
                        ..Default::default()
                    })
                    .unwrap();
            }
            let store = db.open();
            let seqs: Vec<u64> = store
                .events(Some("home-1"), 10)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect();
            assert_eq!(seqs, vec![2, 1]);
            assert_eq!(store.devices().unwrap(), vec![device]);
            assert_eq!(store.rejects(10).unwrap()[0].label, "not_json");
            // The two test alarms are one open alarm triggered twice; supervision_lost the other.
            let alarms = store.alarms(10).unwrap();
            let open: Vec<(&str, u64)> = alarms
                .iter()
                .filter(|a| a.cleared_at.is_none())
                .map(|a| (a.kind.as_str(), a.occurrences))
                .collect();
            assert_eq!(open, [("supervision_lost", 1), ("test_alarm", 2)]);
        }

        fn clearing_closes_only_the_open_alarm_and_keeps_the_outbox_depth_when_not_reported(db: &TestDb) {
            let mut store = db.open();
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

        fn a_repeated_alarm_updates_the_open_one_and_a_return_closes_the_geofence_alarm(db: &TestDb) {
            let mut store = db.open();
            let of = |seq, kind: &str, severity: &str| EventRow {
                kind: kind.into(),
                severity: severity.into(),
                ..event("home-1", seq)
            };
            let left = of(1, "geofence_left", "alarm");
            let again = of(2, "geofence_left", "alarm");
            let position = of(3, "position", "info");
            let commit = |store: &mut Box<dyn Store>, events: Vec<EventRow>| {
                store.commit(&WriteBatch { events, ..Default::default() }).unwrap();
            };
            // The first trigger, a resend of it (same id), a repeat and an unrelated info event.
            commit(&mut store, vec![left.clone(), left.clone(), again.clone(), position]);
            let alarms = store.alarms(10).unwrap();
            assert_eq!(alarms.len(), 1, "{alarms:?}");
            assert_eq!((alarms[0].occurrences, alarms[0].last_event), (2, Some(again.id)));
            assert_eq!((alarms[0].kind.as_str(), alarms[0].cleared_at), ("geofence_left", None));

            commit(&mut store, vec![of(4, "geofence_returned", "info"), of(5, "sos", "alarm")]);
            let alarms = store.alarms(10).unwrap();
            let open: Vec<&str> =
                alarms.iter().filter(|a| a.cleared_at.is_none()).map(|a| a.kind.as_str()).collect();
            assert_eq!(open, ["sos"], "{alarms:?}");

            // Leaving again after the return is a new alarm.
            commit(&mut store, vec![of(6, "geofence_left", "alarm")]);
            let alarms = store.alarms(10).unwrap();
            assert_eq!(alarms.iter().filter(|a| a.kind == "geofence_left").count(), 2);
        }

        fn a_check_is_answered_by_the_first_answer_only_and_a_late_one_turns_no_answer_into_answered(db: &TestDb) {
            let mut store = db.open();
            let deadline: Timestamp = "2026-11-23T02:05:00Z".parse().unwrap();
            store
                .open_check(&check("c-1", deadline), &audit("camera_check_requested"))
                .unwrap();
            store
                .open_check(&check("c-2", deadline), &audit("camera_check_requested"))
                .unwrap();
            assert_eq!(store.open_checks().unwrap().len(), 2);

            let (e1, e2) = (event("home-1", 1), event("home-1", 2));
            let done = store
                .commit(&WriteBatch {
                    events: vec![e1.clone(), e2.clone()],
                    check_answers: vec![answer("c-1", &e1, false), answer("c-1", &e2, false)],
                    checks_unanswered: vec!["c-1".into(), "c-2".into()],
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(
                done.answered,
                vec!["c-1".to_string()],
                "the second answer must not overwrite"
            );
            assert_eq!(
                done.unanswered,
                vec!["c-2".to_string()],
                "an answered check is not unanswered"
            );
            let c1 = store.check("c-1").unwrap().unwrap();
            assert_eq!(
                (c1.status, c1.verdict.as_deref(), c1.event_id),
                (CheckStatus::Answered, Some("resting"), Some(e1.id))
            );
            assert_eq!(c1.figures.unwrap()["frames"], 8);
            assert!(store.open_checks().unwrap().is_empty());

            let e3 = event("home-1", 3);
            let done = store
                .commit(&WriteBatch {
                    events: vec![e3.clone()],
                    check_answers: vec![answer("c-2", &e3, true)],
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(done.answered, vec!["c-2".to_string()]);
            let c2 = store.check("c-2").unwrap().unwrap();
            assert_eq!((c2.status, c2.late), (CheckStatus::Answered, true));
            assert_eq!(store.check("nope").unwrap(), None);
        }

        fn the_audit_log_can_be_appended_to_but_not_changed_or_emptied(db: &TestDb) {
            let mut store = db.open();
            store.append_audit(&audit("snapshot_requested")).unwrap();
            store.append_audit(&audit("snapshot_viewed")).unwrap();
            let rows = store.audit(10).unwrap();
            let actions: Vec<&str> = rows.iter().map(|r| r.entry.action.as_str()).collect();
            assert_eq!(
                actions,
                vec!["snapshot_viewed", "snapshot_requested"],
                "newest first"
            );
            let refused = |sql: &str| db.sql(sql, sql).expect_err(sql);
            assert!(refused("UPDATE audit SET actor = 'someone'").contains("append-only"));
            assert!(refused("DELETE FROM audit").contains("append-only"));
            if db.is_postgres() {
                assert!(refused("TRUNCATE audit").contains("append-only"));
            }
            assert_eq!(store.audit(10).unwrap().len(), 2);
        }

        fn an_audit_line_changed_behind_the_hubs_back_breaks_the_chain_there(db: &TestDb) {
            let mut store = db.open();
            for action in ["login", "snapshot_viewed", "alarm_acknowledged", "care_plan_changed"] {
                store.append_audit(&audit(action)).unwrap();
            }
            let AuditVerdict::Intact { entries, head } = store.verify_audit().unwrap() else {
                panic!("a fresh log must verify")
            };
            assert_eq!(entries, 4);
            assert_eq!(Some(head), store.audit(1).unwrap()[0].hash);

            // Someone with the database file lifts the trigger and rewrites who looked.
            db.sql("DROP TRIGGER audit_no_update", "DROP TRIGGER audit_no_update ON audit").unwrap();
            let nobody = "UPDATE audit SET actor = 'nobody' WHERE id = 2";
            assert_eq!(db.sql(nobody, nobody), Ok(1));
            let (at, reason) = broken_at(store.verify_audit().unwrap());
            assert_eq!(at, 2);
            assert!(reason.contains("changed"), "{reason}");

            // Recomputing that line's own hash does not help: the next line still points at the
            // old one.
            let rows = store.audit(10).unwrap();
            let first = rows.iter().find(|r| r.id == 1).unwrap().hash.clone().unwrap();
            let second = rows.iter().find(|r| r.id == 2).unwrap();
            let forged = audit_hash(&first, 2, &second.entry);
            let forge = format!("UPDATE audit SET hash = '{forged}' WHERE id = 2");
            assert_eq!(db.sql(&forge, &forge), Ok(1));
            assert_eq!(broken_at(store.verify_audit().unwrap()).0, 3);
        }

        fn a_removed_audit_line_breaks_the_chain_at_the_next_one(db: &TestDb) {
            let mut store = db.open();
            for action in ["login", "snapshot_viewed", "logout"] {
                store.append_audit(&audit(action)).unwrap();
            }
            db.sql("DROP TRIGGER audit_no_delete", "DROP TRIGGER audit_no_delete ON audit").unwrap();
            let remove = "DELETE FROM audit WHERE id = 2";
            assert_eq!(db.sql(remove, remove), Ok(1));
            let (at, reason) = broken_at(store.verify_audit().unwrap());
            assert_eq!(at, 3);
            assert!(reason.contains("missing"), "{reason}");
        }

        fn two_connections_appending_at_once_keep_one_unbroken_chain(db: &TestDb) {
            let store = db.open();
            std::thread::scope(|scope| {
                for w in 0..2 {
                    scope.spawn(move || {
                        let mut store = db.open();
                        for i in 0..50 {
                            store.append_audit(&audit(&format!("writer{w}_{i}"))).unwrap();
                        }
                    });
                }
            });
            assert!(matches!(store.verify_audit().unwrap(), AuditVerdict::Intact { entries: 100, .. }));
        }
    }
}
