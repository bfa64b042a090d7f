//! The device certificates the hub's CA issued (schema 9): every one, with who asked for it and
//! how, and whether and why it was revoked. The revocation list the brokers read is made from
//! this table (`pki::DeviceCa::crl`), so a revoked certificate stays revoked across restarts.

use super::{sqlite::insert_audit, AuditEntry, SqliteStore, StoreError};
use jiff::Timestamp;
use rusqlite::{params, Row, TransactionBehavior};
use serde::Serialize;

pub(super) const SCHEMA_V9: &str = "
CREATE TABLE device_certificates (
    serial     TEXT PRIMARY KEY,
    device     TEXT NOT NULL,
    origin     TEXT NOT NULL,
    issued_by  TEXT NOT NULL,
    issued_at  INTEGER NOT NULL,
    not_after  INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_by TEXT,
    reason     TEXT
);
CREATE INDEX device_certificates_device ON device_certificates (device, issued_at);
";

/// How the device came by its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertOrigin {
    /// The hub made the key and handed it over in the provisioning bundle.
    Bundle,
    /// The device made its key and sent a signing request; the key never left it.
    Csr,
    /// The hub's own client certificate for the broker.
    Hub,
}

impl CertOrigin {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            CertOrigin::Bundle => "bundle",
            CertOrigin::Csr => "csr",
            CertOrigin::Hub => "hub",
        }
    }

    pub(super) fn parse(s: &str) -> Option<CertOrigin> {
        [CertOrigin::Bundle, CertOrigin::Csr, CertOrigin::Hub].into_iter().find(|o| o.as_str() == s)
    }
}

/// One issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertRow {
    /// Hex, as `openssl x509 -serial` prints it.
    pub serial: String,
    pub device: String,
    pub origin: CertOrigin,
    pub issued_by: String,
    pub issued_at: Timestamp,
    pub not_after: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub revoked_by: Option<String>,
    pub reason: Option<String>,
}

pub trait CertStore {
    /// Records a newly issued certificate, with its audit line.
    fn record_certificate(&mut self, cert: &CertRow, audit: &AuditEntry) -> Result<(), StoreError>;
    /// A device's certificates, oldest first; with `None`, every device's.
    fn certificates(&self, device: Option<&str>) -> Result<Vec<CertRow>, StoreError>;
    /// Revokes the device's certificate `serial`, or with `None` every certificate of the
    /// device not yet revoked, with one audit line; the certificates it revoked (none when
    /// there was nothing left to revoke).
    fn revoke_certificates(&mut self, device: &str, serial: Option<&str>, by: &str, reason: &str, audit: &AuditEntry) -> Result<Vec<CertRow>, StoreError>;
}

const COLUMNS: &str = "serial, device, origin, issued_by, issued_at, not_after, revoked_at, revoked_by, reason";

fn cert_from_row(r: &Row<'_>) -> Result<CertRow, rusqlite::Error> {
    let bad = |i: usize, e: String| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into());
    let time = |i: usize, v: i64| Timestamp::from_microsecond(v).map_err(|e| bad(i, e.to_string()));
    let origin: String = r.get(2)?;
    Ok(CertRow {
        serial: r.get(0)?,
        device: r.get(1)?,
        origin: CertOrigin::parse(&origin).ok_or_else(|| bad(2, format!("unknown origin {origin:?}")))?,
        issued_by: r.get(3)?,
        issued_at: time(4, r.get(4)?)?,
        not_after: time(5, r.get(5)?)?,
        revoked_at: r.get::<_, Option<i64>>(6)?.map(|v| time(6, v)).transpose()?,
        revoked_by: r.get(7)?,
        reason: r.get(8)?,
    })
}

impl CertStore for SqliteStore {
    fn record_certificate(&mut self, c: &CertRow, audit: &AuditEntry) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            &format!("INSERT INTO device_certificates ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
            params![
                c.serial,
                c.device,
                c.origin.as_str(),
                c.issued_by,
                c.issued_at.as_microsecond(),
                c.not_after.as_microsecond(),
                c.revoked_at.map(|t| t.as_microsecond()),
                c.revoked_by,
                c.reason
            ],
        )?;
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn certificates(&self, device: Option<&str>) -> Result<Vec<CertRow>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM device_certificates WHERE ?1 IS NULL OR device = ?1 ORDER BY issued_at, serial"
        ))?;
        let rows = stmt.query_map(params![device], cert_from_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn revoke_certificates(&mut self, device: &str, serial: Option<&str>, by: &str, reason: &str, audit: &AuditEntry) -> Result<Vec<CertRow>, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let revoked = {
            let mut stmt = tx.prepare(&format!(
                "UPDATE device_certificates SET revoked_at = ?3, revoked_by = ?4, reason = ?5
                 WHERE device = ?1 AND (?2 IS NULL OR serial = ?2) AND revoked_at IS NULL
                 RETURNING {COLUMNS}"
            ))?;
            let rows = stmt
                .query_map(params![device, serial, audit.at.as_microsecond(), by, reason], cert_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        if !revoked.is_empty() {
            insert_audit(&tx, audit)?;
        }
        tx.commit()?;
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::engines::on_both_engines;

    fn at(micros: i64) -> Timestamp {
        Timestamp::from_microsecond(1_790_000_000_000_000 + micros).unwrap()
    }

    fn cert(serial: &str, device: &str, issued: i64) -> CertRow {
        CertRow {
            serial: serial.into(),
            device: device.into(),
            origin: CertOrigin::Csr,
            issued_by: "ivar".into(),
            issued_at: at(issued),
            not_after: at(issued + 1_000_000),
            revoked_at: None,
            revoked_by: None,
            reason: None,
        }
    }

    fn entry(action: &str) -> AuditEntry {
        AuditEntry { at: at(500), actor: "ivar".into(), role: "installer".into(), action: action.into(), check_id: None, device: Some("home-1".into()), detail: None }
    }

    on_both_engines! {
        fn certificates_are_kept_and_revoked_one_or_all_once_with_an_audit_line(db: &TestDb) {
            let mut store = db.open();
            for c in [cert("0A", "home-1", 1), cert("0B", "home-1", 2), cert("0C", "home-1", 3), cert("1A", "home-2", 1)] {
                store.record_certificate(&c, &entry("device_certificate_issued")).unwrap();
            }
            assert_eq!(store.certificates(Some("home-1")).unwrap().iter().map(|c| c.serial.as_str()).collect::<Vec<_>>(), ["0A", "0B", "0C"]);
            assert_eq!(store.certificates(None).unwrap().len(), 4);

            let one = store.revoke_certificates("home-1", Some("0A"), "ivar", "rotated", &entry("device_certificate_revoked")).unwrap();
            assert_eq!(one.len(), 1);
            assert_eq!((one[0].revoked_at, one[0].revoked_by.as_deref(), one[0].reason.as_deref()), (Some(at(500)), Some("ivar"), Some("rotated")));
            // Another device's serial is not this device's to revoke.
            assert!(store.revoke_certificates("home-2", Some("0B"), "ivar", "x", &entry("device_certificate_revoked")).unwrap().is_empty());
            let rest = store.revoke_certificates("home-1", None, "ivar", "stolen", &entry("device_certificate_revoked")).unwrap();
            assert_eq!(rest.iter().map(|c| c.serial.as_str()).collect::<Vec<_>>(), ["0B", "0C"]);
            assert!(store.revoke_certificates("home-1", None, "ivar", "again", &entry("device_certificate_revoked")).unwrap().is_empty(), "nothing is revoked twice");
            let kept = store.certificates(Some("home-1")).unwrap();
            assert_eq!(kept[0].reason.as_deref(), Some("rotated"), "the first reason stays");
            assert!(store.certificates(Some("home-2")).unwrap()[0].revoked_at.is_none());
            let actions: Vec<String> = store.audit(10).unwrap().into_iter().map(|a| a.entry.action).collect();
            assert_eq!(actions.iter().filter(|a| *a == "device_certificate_revoked").count(), 2, "{actions:?}");
            assert_eq!(actions.iter().filter(|a| *a == "device_certificate_issued").count(), 4);
        }
    }
}
