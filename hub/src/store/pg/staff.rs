//! What staff and the rounds engine keep, on PostgreSQL: care plans, patrols and rounds
//! ([`RoundStore`]), console accounts ([`UserStore`]), alarm handling and registrations
//! ([`HandlingStore`]), device certificates ([`CertStore`]). Same behaviour as the SQLite
//! files of the same names; every change that writes an audit line does so in its own
//! transaction, holding the audit lock (see `mod.rs`).

use super::{alarm_from_row, insert_audit, insert_camera_check, micros, opt_ts, ts, PgStore, ALARM_COLS};
use crate::rounds::{Patrol, Recipient, RoundCheck};
use crate::store::{
    AlarmAction, AlarmRow, AuditEntry, BedZoneRow, CertOrigin, CertRow, CertStore, HandlingRefused, HandlingStore, Registration, RoundStore,
    RoundWrite, SessionRow, StoreError, UserRow, UserStore,
};
use jiff::civil::Date;
use jiff::Timestamp;
use postgres::{Row, Transaction};

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("stored {what} does not read back: {e}")))
}

fn upsert_check(tx: &mut Transaction<'_>, c: &RoundCheck) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO round_checks (id, night, team, state, outcome, planned_at, doc)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, outcome = excluded.outcome, doc = excluded.doc",
        &[
            &c.id,
            &c.night.to_string(),
            &c.team,
            &c.state.as_str(),
            &c.outcome.as_ref().map(|o| o.outcome.as_str()),
            &micros(c.planned_at),
            &json(c)?,
        ],
    )?;
    Ok(())
}

impl PgStore {
    fn put_plan(&self, table: &str, id: &str, team: &str, plan: String, audit: &AuditEntry) -> Result<(), StoreError> {
        self.transaction(true, |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO {table} (id, team, plan, updated_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (id) DO UPDATE SET team = excluded.team, plan = excluded.plan, updated_at = excluded.updated_at"
                ),
                &[&id, &team, &plan, &micros(audit.at)],
            )?;
            insert_audit(tx, audit)
        })
    }

    fn delete_plan(&self, table: &str, id: &str, audit: &AuditEntry) -> Result<bool, StoreError> {
        self.transaction(true, |tx| {
            let n = tx.execute(&format!("DELETE FROM {table} WHERE id = $1"), &[&id])?;
            if n > 0 {
                insert_audit(tx, audit)?;
            }
            Ok(n > 0)
        })
    }

    fn plans<T: serde::de::DeserializeOwned>(&self, table: &str) -> Result<Vec<T>, StoreError> {
        let rows = self.with(|c| Ok(c.query(&format!("SELECT plan FROM {table} ORDER BY team, id"), &[])?))?;
        rows.iter().map(|r| parse(table, r.try_get(0)?)).collect()
    }

    fn checks_where(&self, filter: &str, args: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<Vec<RoundCheck>, StoreError> {
        let rows = self.with(|c| Ok(c.query(&format!("SELECT doc FROM round_checks WHERE {filter} ORDER BY night, planned_at, id"), args)?))?;
        rows.iter().map(|r| parse("round check", r.try_get(0)?)).collect()
    }

    fn round_column(&self, night: Date, column: &str) -> Result<Option<Row>, StoreError> {
        self.with(|c| Ok(c.query_opt(&format!("SELECT {column} FROM rounds WHERE night = $1"), &[&night.to_string()])?))
    }
}

impl RoundStore for PgStore {
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
        self.transaction(false, |tx| {
            let created = tx.execute(
                "INSERT INTO rounds (night, generated_at, routes, routes_at) VALUES ($1, $2, $3, $2) ON CONFLICT (night) DO NOTHING",
                &[&night.to_string(), &micros(at), &routes.to_string()],
            )?;
            if created == 0 {
                return Ok(false);
            }
            for c in checks {
                upsert_check(tx, c)?;
            }
            Ok(true)
        })
    }

    fn round(&self, night: Date) -> Result<Option<Vec<RoundCheck>>, StoreError> {
        match self.round_column(night, "generated_at")? {
            None => Ok(None),
            Some(_) => Ok(Some(self.checks_where("night = $1", &[&night.to_string()])?)),
        }
    }

    fn routes(&self, night: Date) -> Result<Option<serde_json::Value>, StoreError> {
        let text: Option<String> = match self.round_column(night, "routes")? {
            Some(row) => row.try_get(0)?,
            None => None,
        };
        text.map(|t| parse("routes", &t)).transpose()
    }

    fn round_alarms_seen(&self, night: Date) -> Result<i64, StoreError> {
        match self.round_column(night, "alarms_seen")? {
            Some(row) => Ok(row.try_get(0)?),
            None => Ok(0),
        }
    }

    fn round_checks_between(&self, first: Date, last: Date) -> Result<Vec<RoundCheck>, StoreError> {
        self.checks_where("night BETWEEN $1 AND $2", &[&first.to_string(), &last.to_string()])
    }

    fn save_round(&mut self, w: &RoundWrite<'_>) -> Result<(), StoreError> {
        self.transaction(!w.audit.is_empty(), |tx| {
            for c in &w.checks {
                upsert_check(tx, c)?;
            }
            for c in &w.camera_checks {
                insert_camera_check(tx, c)?;
            }
            if let Some((night, routes, at)) = &w.routes {
                tx.execute(
                    "UPDATE rounds SET routes = $2, routes_at = $3 WHERE night = $1",
                    &[&night.to_string(), &routes.to_string(), &micros(*at)],
                )?;
            }
            if let Some((night, seen)) = &w.alarms_seen {
                tx.execute("UPDATE rounds SET alarms_seen = GREATEST(alarms_seen, $2) WHERE night = $1", &[&night.to_string(), seen])?;
            }
            for a in &w.audit {
                insert_audit(tx, a)?;
            }
            Ok(())
        })
    }

    fn alarms_after(&self, after: i64) -> Result<Vec<AlarmRow>, StoreError> {
        self.alarms_where("id > $1 ORDER BY id", &[&after])
    }

    fn alarms_raised_between(&self, from: Timestamp, to: Timestamp) -> Result<Vec<AlarmRow>, StoreError> {
        self.alarms_where("raised_at >= $1 AND raised_at < $2 ORDER BY raised_at, id", &[&micros(from), &micros(to)])
    }

    fn event_counts(&self, kinds: &[&str], from: Timestamp, to: Timestamp) -> Result<Vec<(String, String, u64)>, StoreError> {
        self.with(|c| {
            let stmt = c.prepare("SELECT device, count(*) FROM events WHERE kind = $1 AND ts >= $2 AND ts < $3 GROUP BY device ORDER BY device")?;
            let mut out = Vec::new();
            for kind in kinds {
                for row in c.query(&stmt, &[kind, &micros(from), &micros(to)])? {
                    out.push((row.try_get(0)?, kind.to_string(), row.try_get::<_, i64>(1)?.max(0) as u64));
                }
            }
            Ok(out)
        })
    }
}

const USER_COLS: &str = "u.name, u.role, u.teams, u.password_hash, u.failed_logins, u.locked_until";

fn user_from_row(r: &Row, at: usize) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        name: r.try_get(at)?,
        role: r.try_get(at + 1)?,
        teams: parse("user's teams", r.try_get(at + 2)?)?,
        password_hash: r.try_get(at + 3)?,
        failed_logins: r.try_get::<_, i64>(at + 4)?.clamp(0, u32::MAX as i64) as u32,
        locked_until: opt_ts(r.try_get(at + 5)?)?,
    })
}

impl UserStore for PgStore {
    fn put_user(&mut self, u: &UserRow, audit: &AuditEntry) -> Result<(), StoreError> {
        let teams = json(&u.teams)?;
        self.transaction(true, |tx| {
            let old = tx.query_opt("SELECT name FROM users WHERE name = $1 FOR UPDATE", &[&u.name])?;
            tx.execute(
                "INSERT INTO users (name, role, teams, password_hash, failed_logins, locked_until, updated_at)
                 VALUES ($1, $2, $3, $4, 0, NULL, $5)
                 ON CONFLICT (name) DO UPDATE SET role = excluded.role, teams = excluded.teams,
                   password_hash = excluded.password_hash, failed_logins = 0, locked_until = NULL,
                   updated_at = excluded.updated_at",
                &[&u.name, &u.role, &teams, &u.password_hash, &micros(audit.at)],
            )?;
            if old.is_some() {
                tx.execute("DELETE FROM sessions WHERE username = $1", &[&u.name])?;
            }
            insert_audit(tx, audit)
        })
    }

    fn delete_user(&mut self, name: &str, audit: &AuditEntry) -> Result<bool, StoreError> {
        self.transaction(true, |tx| {
            tx.execute("DELETE FROM sessions WHERE username = $1", &[&name])?;
            let n = tx.execute("DELETE FROM users WHERE name = $1", &[&name])?;
            if n > 0 {
                insert_audit(tx, audit)?;
            }
            Ok(n > 0)
        })
    }

    fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        self.with(|c| c.query_opt(&format!("SELECT {USER_COLS} FROM users u WHERE u.name = $1"), &[&name])?.map(|r| user_from_row(&r, 0)).transpose())
    }

    fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        self.with(|c| c.query(&format!("SELECT {USER_COLS} FROM users u ORDER BY u.name"), &[])?.iter().map(|r| user_from_row(r, 0)).collect())
    }

    fn login_failed(&mut self, name: &str, failed: u32, locked_until: Option<Timestamp>, audit: &AuditEntry) -> Result<(), StoreError> {
        self.transaction(true, |tx| {
            tx.execute(
                "UPDATE users SET failed_logins = $2, locked_until = $3 WHERE name = $1",
                &[&name, &i64::from(failed), &locked_until.map(micros)],
            )?;
            insert_audit(tx, audit)
        })
    }

    fn login_succeeded(&mut self, s: &SessionRow, audit: &AuditEntry) -> Result<(), StoreError> {
        self.transaction(true, |tx| {
            tx.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE name = $1", &[&s.user])?;
            tx.execute(
                "INSERT INTO sessions (id_hash, username, csrf, created_at, last_seen) VALUES ($1, $2, $3, $4, $5)",
                &[&s.id_hash, &s.user, &s.csrf, &micros(s.created_at), &micros(s.last_seen)],
            )?;
            insert_audit(tx, audit)
        })
    }

    fn session(&self, id_hash: &str) -> Result<Option<(SessionRow, UserRow)>, StoreError> {
        let row = self.with(|c| {
            Ok(c.query_opt(
                &format!(
                    "SELECT s.id_hash, s.username, s.csrf, s.created_at, s.last_seen, {USER_COLS}
                     FROM sessions s JOIN users u ON u.name = s.username WHERE s.id_hash = $1"
                ),
                &[&id_hash],
            )?)
        })?;
        let Some(r) = row else { return Ok(None) };
        let session = SessionRow {
            id_hash: r.try_get(0)?,
            user: r.try_get(1)?,
            csrf: r.try_get(2)?,
            created_at: ts(r.try_get(3)?)?,
            last_seen: ts(r.try_get(4)?)?,
        };
        Ok(Some((session, user_from_row(&r, 5)?)))
    }

    fn touch_session(&mut self, id_hash: &str, at: Timestamp) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("UPDATE sessions SET last_seen = GREATEST(last_seen, $2) WHERE id_hash = $1", &[&id_hash, &micros(at)])?;
            Ok(())
        })
    }

    fn end_session(&mut self, id_hash: &str, audit: &AuditEntry) -> Result<bool, StoreError> {
        self.transaction(true, |tx| {
            let n = tx.execute("DELETE FROM sessions WHERE id_hash = $1", &[&id_hash])?;
            if n > 0 {
                insert_audit(tx, audit)?;
            }
            Ok(n > 0)
        })
    }
}

impl HandlingStore for PgStore {
    fn unresolved_alarms(&self, since: Timestamp) -> Result<Vec<AlarmRow>, StoreError> {
        self.alarms_where("resolved_at IS NULL AND raised_at >= $1 ORDER BY raised_at, id", &[&micros(since)])
    }

    fn alarm(&self, id: i64) -> Result<Option<AlarmRow>, StoreError> {
        Ok(self.alarms_where("id = $1", &[&id])?.into_iter().next())
    }

    fn handle_alarm(&mut self, id: i64, action: &AlarmAction, who: &str, audit: &AuditEntry) -> Result<Result<AlarmRow, HandlingRefused>, StoreError> {
        let at = micros(audit.at);
        self.transaction(true, |tx| {
            // The row lock makes a concurrent step (another hub, another person) wait and then
            // see this one's outcome: an alarm is resolved once.
            let found = tx.query_opt("SELECT resolved_by FROM alarms WHERE id = $1 FOR UPDATE", &[&id])?;
            match found.map(|r| r.try_get::<_, Option<String>>(0)).transpose()? {
                None => return Ok(Err(HandlingRefused::NoSuchAlarm)),
                Some(Some(by)) => return Ok(Err(HandlingRefused::Resolved(by))),
                Some(None) => {}
            }
            // Every step acknowledges an alarm nobody acknowledged yet.
            tx.execute("UPDATE alarms SET acked_at = $2, acked_by = $3 WHERE id = $1 AND acked_at IS NULL", &[&id, &at, &who])?;
            match action {
                AlarmAction::Acknowledge => {}
                AlarmAction::Assign(to) => {
                    tx.execute("UPDATE alarms SET assigned_to = $2, assigned_at = $3 WHERE id = $1", &[&id, to, &at])?;
                }
                AlarmAction::Resolve { outcome, note } => {
                    tx.execute(
                        "UPDATE alarms SET resolved_at = $2, resolved_by = $3, outcome = $4, note = $5,
                           cleared_at = COALESCE(cleared_at, $2) WHERE id = $1",
                        &[&id, &at, &who, &outcome.as_str(), note],
                    )?;
                }
            }
            insert_audit(tx, audit)?;
            let row = tx.query_one(&format!("SELECT {ALARM_COLS} FROM alarms WHERE id = $1"), &[&id])?;
            Ok(Ok(alarm_from_row(&row)?))
        })
    }

    fn register_device(&mut self, r: &Registration, audit: &AuditEntry) -> Result<(), StoreError> {
        self.transaction(true, |tx| {
            tx.execute(
                "INSERT INTO registrations (device, site, recipient, registered_by, registered_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (device) DO UPDATE SET site = excluded.site, recipient = excluded.recipient,
                   registered_by = excluded.registered_by, registered_at = excluded.registered_at",
                &[&r.device, &r.site, &r.recipient, &r.registered_by, &micros(r.registered_at)],
            )?;
            insert_audit(tx, audit)
        })
    }

    fn registrations(&self) -> Result<Vec<Registration>, StoreError> {
        let rows = self.with(|c| Ok(c.query("SELECT device, site, recipient, registered_by, registered_at FROM registrations ORDER BY device", &[])?))?;
        rows.iter()
            .map(|r| {
                Ok(Registration {
                    device: r.try_get(0)?,
                    site: r.try_get(1)?,
                    recipient: r.try_get(2)?,
                    registered_by: r.try_get(3)?,
                    registered_at: ts(r.try_get(4)?)?,
                })
            })
            .collect()
    }

    fn set_bed_zone(&mut self, zone: &BedZoneRow, audit: &AuditEntry) -> Result<(), StoreError> {
        let corners = json(&zone.corners)?;
        self.transaction(true, |tx| {
            tx.execute(
                "INSERT INTO bed_zones (device, corners, set_by, set_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (device) DO UPDATE SET corners = excluded.corners, set_by = excluded.set_by,
                   set_at = excluded.set_at",
                &[&zone.device, &corners, &zone.set_by, &micros(zone.set_at)],
            )?;
            insert_audit(tx, audit)
        })
    }

    fn bed_zone(&self, device: &str) -> Result<Option<BedZoneRow>, StoreError> {
        let row = self.with(|c| Ok(c.query_opt("SELECT corners, set_by, set_at FROM bed_zones WHERE device = $1", &[&device])?))?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(BedZoneRow {
            device: device.to_string(),
            corners: parse(&format!("bed zone of {device}"), r.try_get(0)?)?,
            set_by: r.try_get(1)?,
            set_at: ts(r.try_get(2)?)?,
        }))
    }
}

const CERT_COLS: &str = "serial, device, origin, issued_by, issued_at, not_after, revoked_at, revoked_by, reason";

fn cert_from_row(r: &Row) -> Result<CertRow, StoreError> {
    let origin: String = r.try_get(2)?;
    Ok(CertRow {
        serial: r.try_get(0)?,
        device: r.try_get(1)?,
        origin: CertOrigin::parse(&origin).ok_or_else(|| StoreError::Corrupt(format!("unknown certificate origin {origin:?}")))?,
        issued_by: r.try_get(3)?,
        issued_at: ts(r.try_get(4)?)?,
        not_after: ts(r.try_get(5)?)?,
        revoked_at: opt_ts(r.try_get(6)?)?,
        revoked_by: r.try_get(7)?,
        reason: r.try_get(8)?,
    })
}

impl CertStore for PgStore {
    fn record_certificate(&mut self, c: &CertRow, audit: &AuditEntry) -> Result<(), StoreError> {
        self.transaction(true, |tx| {
            tx.execute(
                &format!("INSERT INTO device_certificates ({CERT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
                &[
                    &c.serial,
                    &c.device,
                    &c.origin.as_str(),
                    &c.issued_by,
                    &micros(c.issued_at),
                    &micros(c.not_after),
                    &c.revoked_at.map(micros),
                    &c.revoked_by,
                    &c.reason,
                ],
            )?;
            insert_audit(tx, audit)
        })
    }

    fn certificates(&self, device: Option<&str>) -> Result<Vec<CertRow>, StoreError> {
        self.with(|c| {
            c.query(
                &format!("SELECT {CERT_COLS} FROM device_certificates WHERE $1::TEXT IS NULL OR device = $1 ORDER BY issued_at, serial"),
                &[&device],
            )?
            .iter()
            .map(cert_from_row)
            .collect()
        })
    }

    fn revoke_certificates(&mut self, device: &str, serial: Option<&str>, by: &str, reason: &str, audit: &AuditEntry) -> Result<Vec<CertRow>, StoreError> {
        self.transaction(true, |tx| {
            let revoked = tx
                .query(
                    &format!(
                        "UPDATE device_certificates SET revoked_at = $3, revoked_by = $4, reason = $5
                         WHERE device = $1 AND ($2::TEXT IS NULL OR serial = $2) AND revoked_at IS NULL
                         RETURNING {CERT_COLS}"
                    ),
                    &[&device, &serial, &micros(audit.at), &by, &reason],
                )?
                .iter()
                .map(cert_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            if !revoked.is_empty() {
                insert_audit(tx, audit)?;
            }
            Ok(revoked)
        })
    }
}
