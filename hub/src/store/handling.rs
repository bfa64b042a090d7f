//! What staff do about alarms, and the devices installers register.
//!
//! An alarm (opened by ingest, see `sqlite.rs`) is handled in three steps, each with who and
//! when and its audit line in the same transaction: acknowledged ("I have seen it"), assigned
//! (to a member of staff or a patrol), resolved (with an [`AlarmOutcome`] and a note).
//! Assigning or resolving an alarm nobody acknowledged acknowledges it too, so the response
//! time "alarm → acknowledged" is always there. Resolving also closes the alarm, so that the
//! next trigger of that kind opens a new one instead of counting on a handled one.
//!
//! A registration is an installer's record of a device set up in a home: its id, site, the
//! person it belongs to, who registered it and when. The device itself appears in `devices`
//! when it first talks to the hub. A camera's bed zone, drawn by an installer on the
//! calibration picture, is kept per device (schema 8) with who set it and when, and goes into
//! the device's agent configuration; the picture it was drawn on is never stored.

use super::{sqlite::insert_audit, AlarmRow, AuditEntry, SqliteStore, StoreError};
use jiff::Timestamp;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

pub(super) const SCHEMA_V7: &str = "
ALTER TABLE alarms ADD COLUMN acked_at INTEGER;
ALTER TABLE alarms ADD COLUMN acked_by TEXT;
ALTER TABLE alarms ADD COLUMN assigned_to TEXT;
ALTER TABLE alarms ADD COLUMN assigned_at INTEGER;
ALTER TABLE alarms ADD COLUMN resolved_at INTEGER;
ALTER TABLE alarms ADD COLUMN resolved_by TEXT;
ALTER TABLE alarms ADD COLUMN outcome TEXT;
ALTER TABLE alarms ADD COLUMN note TEXT;
CREATE INDEX alarms_unresolved ON alarms (raised_at) WHERE resolved_at IS NULL;
CREATE TABLE registrations (
    device        TEXT PRIMARY KEY,
    site          TEXT NOT NULL,
    recipient     TEXT,
    registered_by TEXT NOT NULL,
    registered_at INTEGER NOT NULL
);
";

pub(super) const SCHEMA_V8: &str = "
CREATE TABLE bed_zones (
    device  TEXT PRIMARY KEY,
    corners TEXT NOT NULL,
    set_by  TEXT NOT NULL,
    set_at  INTEGER NOT NULL
);
";

/// A camera's bed zone as an installer drew it: corners in picture coordinates 0..1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BedZoneRow {
    pub device: String,
    pub corners: Vec<[f64; 2]>,
    pub set_by: String,
    pub set_at: Timestamp,
}

/// How an alarm ended, as staff record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmOutcome {
    /// Staff went or called and helped the person.
    Helped,
    /// The person was fine; nothing needed doing.
    NoActionNeeded,
    /// Triggered by mistake (a pressed button, a tracker left behind).
    FalseAlarm,
    /// Handed on: ambulance (112), police, a relative.
    HandedOver,
}

impl AlarmOutcome {
    pub const ALL: [AlarmOutcome; 4] =
        [AlarmOutcome::Helped, AlarmOutcome::NoActionNeeded, AlarmOutcome::FalseAlarm, AlarmOutcome::HandedOver];

    pub fn as_str(self) -> &'static str {
        match self {
            AlarmOutcome::Helped => "helped",
            AlarmOutcome::NoActionNeeded => "no_action_needed",
            AlarmOutcome::FalseAlarm => "false_alarm",
            AlarmOutcome::HandedOver => "handed_over",
        }
    }
}

/// One step of handling an alarm.
#[derive(Debug, Clone, PartialEq)]
pub enum AlarmAction {
    Acknowledge,
    /// To a user's name or `patrol:<id>`.
    Assign(String),
    Resolve { outcome: AlarmOutcome, note: Option<String> },
}

/// A device an installer set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    pub device: String,
    pub site: String,
    /// The person whose home it is in (their care plan lists it).
    pub recipient: Option<String>,
    pub registered_by: String,
    pub registered_at: Timestamp,
}

/// Why a handling step was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlingRefused {
    NoSuchAlarm,
    /// Already resolved, by whom.
    Resolved(String),
}

pub trait HandlingStore {
    /// Unresolved alarms raised at or after `since`, oldest first.
    fn unresolved_alarms(&self, since: Timestamp) -> Result<Vec<AlarmRow>, StoreError>;
    fn alarm(&self, id: i64) -> Result<Option<AlarmRow>, StoreError>;
    /// Takes one handling step by `who` at `audit.at`, with its audit line; the alarm as it is
    /// then, or why not.
    fn handle_alarm(&mut self, id: i64, action: &AlarmAction, who: &str, audit: &AuditEntry) -> Result<Result<AlarmRow, HandlingRefused>, StoreError>;
    /// Creates or replaces a registration, with its audit line.
    fn register_device(&mut self, r: &Registration, audit: &AuditEntry) -> Result<(), StoreError>;
    fn registrations(&self) -> Result<Vec<Registration>, StoreError>;
    /// Creates or replaces a device's bed zone, with its audit line.
    fn set_bed_zone(&mut self, zone: &BedZoneRow, audit: &AuditEntry) -> Result<(), StoreError>;
    fn bed_zone(&self, device: &str) -> Result<Option<BedZoneRow>, StoreError>;
}

impl HandlingStore for SqliteStore {
    fn unresolved_alarms(&self, since: Timestamp) -> Result<Vec<AlarmRow>, StoreError> {
        self.alarms_where("resolved_at IS NULL AND raised_at >= ?1 ORDER BY raised_at, id", params![since.as_microsecond()])
    }

    fn alarm(&self, id: i64) -> Result<Option<AlarmRow>, StoreError> {
        Ok(self.alarms_where("id = ?1", params![id])?.into_iter().next())
    }

    fn handle_alarm(&mut self, id: i64, action: &AlarmAction, who: &str, audit: &AuditEntry) -> Result<Result<AlarmRow, HandlingRefused>, StoreError> {
        let at = audit.at.as_microsecond();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: Option<Option<String>> = tx
            .query_row("SELECT resolved_by FROM alarms WHERE id = ?1", params![id], |r| r.get(0))
            .optional()?;
        match found {
            None => return Ok(Err(HandlingRefused::NoSuchAlarm)),
            Some(Some(by)) => return Ok(Err(HandlingRefused::Resolved(by))),
            Some(None) => {}
        }
        // Every step acknowledges an alarm nobody acknowledged yet.
        tx.execute("UPDATE alarms SET acked_at = ?2, acked_by = ?3 WHERE id = ?1 AND acked_at IS NULL", params![id, at, who])?;
        match action {
            AlarmAction::Acknowledge => {}
            AlarmAction::Assign(to) => {
                tx.execute("UPDATE alarms SET assigned_to = ?2, assigned_at = ?3 WHERE id = ?1", params![id, to, at])?;
            }
            AlarmAction::Resolve { outcome, note } => {
                tx.execute(
                    "UPDATE alarms SET resolved_at = ?2, resolved_by = ?3, outcome = ?4, note = ?5,
                       cleared_at = COALESCE(cleared_at, ?2) WHERE id = ?1",
                    params![id, at, who, outcome.as_str(), note],
                )?;
            }
        }
        insert_audit(&tx, audit)?;
        tx.commit()?;
        self.alarm(id)?.map(Ok).ok_or_else(|| StoreError::Corrupt(format!("alarm {id} vanished")))
    }

    fn register_device(&mut self, r: &Registration, audit: &AuditEntry) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO registrations (device, site, recipient, registered_by, registered_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (device) DO UPDATE SET site = excluded.site, recipient = excluded.recipient,
               registered_by = excluded.registered_by, registered_at = excluded.registered_at",
            params![r.device, r.site, r.recipient, r.registered_by, r.registered_at.as_microsecond()],
        )?;
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn registrations(&self) -> Result<Vec<Registration>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT device, site, recipient, registered_by, registered_at FROM registrations ORDER BY device",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Registration {
                    device: r.get(0)?,
                    site: r.get(1)?,
                    recipient: r.get(2)?,
                    registered_by: r.get(3)?,
                    registered_at: Timestamp::from_microsecond(r.get(4)?).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Integer, Box::new(e))
                    })?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn set_bed_zone(&mut self, zone: &BedZoneRow, audit: &AuditEntry) -> Result<(), StoreError> {
        let corners = serde_json::to_string(&zone.corners).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO bed_zones (device, corners, set_by, set_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (device) DO UPDATE SET corners = excluded.corners, set_by = excluded.set_by,
               set_at = excluded.set_at",
            params![zone.device, corners, zone.set_by, zone.set_at.as_microsecond()],
        )?;
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn bed_zone(&self, device: &str) -> Result<Option<BedZoneRow>, StoreError> {
        let row: Option<(String, String, i64)> = self
            .conn
            .query_row("SELECT corners, set_by, set_at FROM bed_zones WHERE device = ?1", params![device], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let Some((corners, set_by, set_at)) = row else { return Ok(None) };
        let corrupt = |e: String| StoreError::Corrupt(format!("bed zone of {device}: {e}"));
        Ok(Some(BedZoneRow {
            device: device.to_string(),
            corners: serde_json::from_str(&corners).map_err(|e| corrupt(e.to_string()))?,
            set_by,
            set_at: Timestamp::from_microsecond(set_at).map_err(|e| corrupt(e.to_string()))?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::engines::{on_both_engines, TestDb};
    use crate::store::{Store, WriteBatch};

    fn entry(action: &str) -> AuditEntry {
        AuditEntry { at: Timestamp::now(), actor: "anna".into(), role: "night_staff".into(), action: action.into(), check_id: None, device: None, detail: None }
    }

    fn store_with_alarm(db: &TestDb) -> (Box<dyn Store>, i64) {
        let mut store = db.open();
        let batch = WriteBatch { raise_alarms: vec![("home-1".into(), "s".into(), Timestamp::now())], ..WriteBatch::default() };
        store.commit(&batch).unwrap();
        let id = store.alarms(1).unwrap()[0].id;
        (store, id)
    }

    on_both_engines! {
        fn resolving_acknowledges_closes_and_ends_the_handling_with_audit_lines(db: &TestDb) {
            let (mut store, id) = store_with_alarm(db);
            let since = Timestamp::now() - jiff::SignedDuration::from_hours(1);
            assert_eq!(store.unresolved_alarms(since).unwrap().len(), 1);
            let assigned = store.handle_alarm(id, &AlarmAction::Assign("patrol:bil-1".into()), "anna", &entry("alarm_assigned")).unwrap().unwrap();
            assert_eq!(assigned.handling.acked_by.as_deref(), Some("anna"), "assigning acknowledges");
            assert_eq!(assigned.handling.assigned_to.as_deref(), Some("patrol:bil-1"));
            let resolve = AlarmAction::Resolve { outcome: AlarmOutcome::Helped, note: Some("hjälp i säng".into()) };
            let done = store.handle_alarm(id, &resolve, "omar", &entry("alarm_resolved")).unwrap().unwrap();
            assert_eq!(done.handling.acked_by.as_deref(), Some("anna"), "the first acknowledgement stays");
            assert_eq!((done.handling.resolved_by.as_deref(), done.handling.outcome.as_deref()), (Some("omar"), Some("helped")));
            assert!(done.cleared_at.is_some());
            assert!(store.unresolved_alarms(since).unwrap().is_empty());
            assert_eq!(store.handle_alarm(id, &AlarmAction::Acknowledge, "x", &entry("alarm_acknowledged")).unwrap(), Err(HandlingRefused::Resolved("omar".into())));
            assert_eq!(store.handle_alarm(id + 99, &AlarmAction::Acknowledge, "x", &entry("a")).unwrap(), Err(HandlingRefused::NoSuchAlarm));
            let actions: Vec<String> = store.audit(10).unwrap().into_iter().map(|a| a.entry.action).collect();
            assert_eq!(actions, ["alarm_resolved", "alarm_assigned"]);
            // Resolved, it still counts in the reports of when it was raised.
            let raised = done.raised_at;
            let between = |from: Timestamp, to: Timestamp| store.alarms_raised_between(from, to).unwrap().len();
            assert_eq!(between(raised, raised + jiff::SignedDuration::from_secs(1)), 1);
            assert_eq!(between(raised - jiff::SignedDuration::from_secs(60), raised), 0, "the end is exclusive");
            assert_eq!(between(raised + jiff::SignedDuration::from_micros(1), raised + jiff::SignedDuration::from_secs(60)), 0);
        }

        fn a_registration_is_stored_and_replaced(db: &TestDb) {
            let (mut store, _) = store_with_alarm(db);
            let at = Timestamp::from_microsecond(Timestamp::now().as_microsecond()).unwrap();
            let mut r = Registration { device: "home-9".into(), site: "skelleftea".into(), recipient: None, registered_by: "ivan".into(), registered_at: at };
            store.register_device(&r, &entry("device_registered")).unwrap();
            r.recipient = Some("person-9".into());
            store.register_device(&r, &entry("device_registered")).unwrap();
            assert_eq!(store.registrations().unwrap(), [r]);
        }

        fn a_bed_zone_is_stored_replaced_and_audited(db: &TestDb) {
            let (mut store, _) = store_with_alarm(db);
            assert_eq!(store.bed_zone("home-9").unwrap(), None);
            let at = Timestamp::from_microsecond(Timestamp::now().as_microsecond()).unwrap();
            let mut zone = BedZoneRow { device: "home-9".into(), corners: vec![[0.2, 0.15], [0.75, 0.15], [0.75, 0.9]], set_by: "ivar".into(), set_at: at };
            store.set_bed_zone(&zone, &entry("bed_zone_set")).unwrap();
            zone.corners.push([0.2, 0.9]);
            store.set_bed_zone(&zone, &entry("bed_zone_set")).unwrap();
            assert_eq!(store.bed_zone("home-9").unwrap(), Some(zone));
            assert_eq!(store.bed_zone("home-1").unwrap(), None);
            let actions: Vec<String> = store.audit(10).unwrap().into_iter().map(|a| a.entry.action).collect();
            assert_eq!(actions, ["bed_zone_set", "bed_zone_set"]);
        }
    }
}
