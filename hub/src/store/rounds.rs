//! Care plans, patrols and night rounds in SQLite (schema version 4).
//!
//! Plans and checks are stored as the JSON of their types (`rounds::plan`, `rounds::state`),
//! with the columns the hub queries by (team, night, state, outcome) beside them. A night's
//! round is created in one transaction with all its checks ([`RoundStore::create_round`]), so a
//! round is either wholly in the database or not at all; a second hub (or a restarted one)
//! that tries to create it again finds it there and loads it instead.
//!
//! [`RoundStore::save_round`] writes changed checks together with the camera-check rows they
//! send and the audit lines of the staff who acted, in one transaction, before anything goes
//! out.

use super::sqlite::{insert_audit, insert_camera_check};
use super::{AlarmRow, AuditEntry, CheckRow, SqliteStore, StoreError};
use crate::rounds::{Patrol, Recipient, RoundCheck};
use jiff::civil::Date;
use jiff::Timestamp;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

pub(super) const SCHEMA_V4: &str = "
CREATE TABLE care_recipients (
    id         TEXT PRIMARY KEY,
    team       TEXT NOT NULL,
    plan       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE patrols (
    id         TEXT PRIMARY KEY,
    team       TEXT NOT NULL,
    plan       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE rounds (
    night        TEXT PRIMARY KEY,
    generated_at INTEGER NOT NULL,
    routes       TEXT,
    routes_at    INTEGER,
    alarms_seen  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE round_checks (
    id         TEXT PRIMARY KEY,
    night      TEXT NOT NULL REFERENCES rounds (night),
    team       TEXT NOT NULL,
    state      TEXT NOT NULL,
    outcome    TEXT,
    planned_at INTEGER NOT NULL,
    doc        TEXT NOT NULL
);
CREATE INDEX round_checks_night ON round_checks (night, planned_at);
";

/// Everything one change of a round writes, in one transaction.
#[derive(Debug, Default)]
pub struct RoundWrite<'a> {
    pub checks: Vec<&'a RoundCheck>,
    /// Camera checks sent by this change (`requested`).
    pub camera_checks: Vec<CheckRow>,
    /// The night's routes, as JSON, when they changed.
    pub routes: Option<(Date, serde_json::Value, Timestamp)>,
    pub audit: Vec<AuditEntry>,
    /// The newest alarm the night's round has looked at.
    pub alarms_seen: Option<(Date, i64)>,
}

pub trait RoundStore {
    /// Stores (or replaces) a care plan with the audit line of whoever changed it.
    fn put_recipient(&mut self, r: &Recipient, audit: &AuditEntry) -> Result<(), StoreError>;
    /// Removes a care plan; false if there was none.
    fn delete_recipient(&mut self, id: &str, audit: &AuditEntry) -> Result<bool, StoreError>;
    fn recipients(&self) -> Result<Vec<Recipient>, StoreError>;
    fn put_patrol(&mut self, p: &Patrol, audit: &AuditEntry) -> Result<(), StoreError>;
    fn delete_patrol(&mut self, id: &str, audit: &AuditEntry) -> Result<bool, StoreError>;
    fn patrols(&self) -> Result<Vec<Patrol>, StoreError>;
    /// Stores a night's round with all its checks and routes; false (and nothing written) if
    /// the night already has one.
    fn create_round(&mut self, night: Date, at: Timestamp, checks: &[RoundCheck], routes: &serde_json::Value) -> Result<bool, StoreError>;
    /// The night's checks by planned moment, or `None` if it has no round.
    fn round(&self, night: Date) -> Result<Option<Vec<RoundCheck>>, StoreError>;
    fn routes(&self, night: Date) -> Result<Option<serde_json::Value>, StoreError>;
    /// The newest alarm the night's round has looked at (0 if none or no round).
    fn round_alarms_seen(&self, night: Date) -> Result<i64, StoreError>;
    /// The checks of every night from `first` to `last` (inclusive).
    fn round_checks_between(&self, first: Date, last: Date) -> Result<Vec<RoundCheck>, StoreError>;
    fn save_round(&mut self, write: &RoundWrite<'_>) -> Result<(), StoreError>;
    /// Alarms with an id above `after`, oldest first.
    fn alarms_after(&self, after: i64) -> Result<Vec<AlarmRow>, StoreError>;
    /// Alarms raised in `[from, to)`, oldest first, with their handling (for reports).
    fn alarms_raised_between(&self, from: Timestamp, to: Timestamp) -> Result<Vec<AlarmRow>, StoreError>;
    /// How many events of each kind in `kinds` each device sent with `ts` in `[from, to)`.
    fn event_counts(&self, kinds: &[&str], from: Timestamp, to: Timestamp) -> Result<Vec<(String, String, u64)>, StoreError>;
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("stored {what} does not read back: {e}")))
}

fn upsert_check(tx: &rusqlite::Connection, c: &RoundCheck) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO round_checks (id, night, team, state, outcome, planned_at, doc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, outcome = excluded.outcome, doc = excluded.doc",
    )?
    .execute(params![
        c.id,
        c.night.to_string(),
        c.team,
        c.state.as_str(),
        c.outcome.as_ref().map(|o| o.outcome.as_str()),
        c.planned_at.as_microsecond(),
        json(c)?
    ])?;
    Ok(())
}

impl SqliteStore {
    fn put_plan(&mut self, table: &str, id: &str, team: &str, plan: String, audit: &AuditEntry) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            &format!(
                "INSERT INTO {table} (id, team, plan, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET team = excluded.team, plan = excluded.plan, updated_at = excluded.updated_at"
            ),
            params![id, team, plan, audit.at.as_microsecond()],
        )?;
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn delete_plan(&mut self, table: &str, id: &str, audit: &AuditEntry) -> Result<bool, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(&format!("DELETE FROM {table} WHERE id = ?1"), params![id])?;
        if n > 0 {
            insert_audit(&tx, audit)?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    fn plans<T: serde::de::DeserializeOwned>(&self, table: &str) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!("SELECT plan FROM {table} ORDER BY team, id"))?;
        let texts = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
        texts.iter().map(|t| parse(table, t)).collect()
    }

    fn checks_where(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<RoundCheck>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!("SELECT doc FROM round_checks WHERE {sql} ORDER BY night, planned_at, id"))?;
        let texts = stmt.query_map(args, |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
        texts.iter().map(|t| parse("round check", t)).collect()
    }
}

impl RoundStore for SqliteStore {
    fn put_recipient(&mut self, r: &Recipient, audit: &AuditEntry) -> Result<(), StoreError> {
        self.put_plan("care_recipients", &r.id, &r.team, json(r)?, audit)
    }

    fn delete_recipient(&mut self, id: &str, audit: &AuditEntry) -> Result<bool, StoreError> {
        self.delete_plan("care_recipients", id, audit)
    }

    fn recipients(&self) -> Result<Vec<Recipient>, StoreError> {
        self.plans("care_recipients")
    }

    fn put_patrol(&mut self, p: &Patrol, audit: &AuditEntry) -> Result<(), StoreError> {
        self.put_plan("patrols", &p.id, &p.team, json(p)?, audit)
    }

    fn delete_patrol(&mut self, id: &str, audit: &AuditEntry) -> Result<bool, StoreError> {
        self.delete_plan("patrols", id, audit)
    }

    fn patrols(&self) -> Result<Vec<Patrol>, StoreError> {
        self.plans("patrols")
    }

    fn create_round(&mut self, night: Date, at: Timestamp, checks: &[RoundCheck], routes: &serde_json::Value) -> Result<bool, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let created = tx.execute(
            "INSERT INTO rounds (night, generated_at, routes, routes_at) VALUES (?1, ?2, ?3, ?2) ON CONFLICT (night) DO NOTHING",
            params![night.to_string(), at.as_microsecond(), routes.to_string()],
        )?;
        if created == 0 {
            return Ok(false);
        }
        for c in checks {
            upsert_check(&tx, c)?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn round(&self, night: Date) -> Result<Option<Vec<RoundCheck>>, StoreError> {
        let exists: Option<i64> = self
            .conn
            .query_row("SELECT generated_at FROM rounds WHERE night = ?1", params![night.to_string()], |r| r.get(0))
            .optional()?;
        match exists {
            None => Ok(None),
            Some(_) => Ok(Some(self.checks_where("night = ?1", params![night.to_string()])?)),
        }
    }

    fn routes(&self, night: Date) -> Result<Option<serde_json::Value>, StoreError> {
        let text: Option<Option<String>> = self
            .conn
            .query_row("SELECT routes FROM rounds WHERE night = ?1", params![night.to_string()], |r| r.get(0))
            .optional()?;
        text.flatten().map(|t| parse("routes", &t)).transpose()
    }

    fn round_alarms_seen(&self, night: Date) -> Result<i64, StoreError> {
        let seen: Option<i64> = self
            .conn
            .query_row("SELECT alarms_seen FROM rounds WHERE night = ?1", params![night.to_string()], |r| r.get(0))
            .optional()?;
        Ok(seen.unwrap_or(0))
    }

    fn round_checks_between(&self, first: Date, last: Date) -> Result<Vec<RoundCheck>, StoreError> {
        self.checks_where("night BETWEEN ?1 AND ?2", params![first.to_string(), last.to_string()])
    }

    fn save_round(&mut self, w: &RoundWrite<'_>) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for c in &w.checks {
            upsert_check(&tx, c)?;
        }
        for c in &w.camera_checks {
            insert_camera_check(&tx, c)?;
        }
        if let Some((night, routes, at)) = &w.routes {
            tx.execute(
                "UPDATE rounds SET routes = ?2, routes_at = ?3 WHERE night = ?1",
                params![night.to_string(), routes.to_string(), at.as_microsecond()],
            )?;
        }
        if let Some((night, seen)) = &w.alarms_seen {
            tx.execute("UPDATE rounds SET alarms_seen = max(alarms_seen, ?2) WHERE night = ?1", params![night.to_string(), seen])?;
        }
        for a in &w.audit {
            insert_audit(&tx, a)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn alarms_after(&self, after: i64) -> Result<Vec<AlarmRow>, StoreError> {
        self.alarms_where("id > ?1 ORDER BY id", params![after])
    }

    fn alarms_raised_between(&self, from: Timestamp, to: Timestamp) -> Result<Vec<AlarmRow>, StoreError> {
        self.alarms_where("raised_at >= ?1 AND raised_at < ?2 ORDER BY raised_at, id", params![from.as_microsecond(), to.as_microsecond()])
    }

    fn event_counts(&self, kinds: &[&str], from: Timestamp, to: Timestamp) -> Result<Vec<(String, String, u64)>, StoreError> {
        let mut out = Vec::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT device, count(*) FROM events WHERE kind = ?1 AND ts >= ?2 AND ts < ?3 GROUP BY device ORDER BY device",
        )?;
        for kind in kinds {
            let rows = stmt
                .query_map(params![kind, from.as_microsecond(), to.as_microsecond()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            out.extend(rows.into_iter().map(|(d, n)| (d, kind.to_string(), n.max(0) as u64)));
        }
        Ok(out)
    }
}
