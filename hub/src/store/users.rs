//! Console accounts and their login sessions.
//!
//! A user has a name, a role, the teams whose people they look after, and an argon2 password
//! hash (PHC string; the password itself is never stored). Failed logins are counted on the
//! user; enough in a row lock the account for a while (`console/login.rs` decides).
//!
//! A session is stored under the SHA-256 of its id, so the database alone does not let anyone
//! log in; the id lives only in the browser's cookie. Each session has its own CSRF token.
//! Sessions survive a hub restart (a tablet in the car need not log in again) and end on
//! logout, on expiry, or when the user is removed.

use super::{sqlite::insert_audit, AuditEntry, SqliteStore, StoreError};
use jiff::Timestamp;
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};
use serde::Serialize;

pub(super) const SCHEMA_V6: &str = "
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    teams         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  INTEGER,
    updated_at    INTEGER NOT NULL
);
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    user       TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user);
";

/// A console account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRow {
    pub name: String,
    /// A [`crate::access::Role`]'s wire name.
    pub role: String,
    /// The teams whose people and devices this user sees.
    pub teams: Vec<String>,
    /// argon2 PHC string; never shown.
    #[serde(skip)]
    pub password_hash: String,
    pub failed_logins: u32,
    pub locked_until: Option<Timestamp>,
}

/// A login session as stored (its id only as a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id_hash: String,
    pub user: String,
    pub csrf: String,
    pub created_at: Timestamp,
    pub last_seen: Timestamp,
}

pub trait UserStore {
    /// Creates or replaces an account, with the audit line of whoever did it. A changed
    /// account (new password, role or teams) starts afresh: its sessions end, its failed
    /// logins and lock are cleared.
    fn put_user(&mut self, user: &UserRow, audit: &AuditEntry) -> Result<(), StoreError>;
    /// Removes an account and its sessions; false if there was none.
    fn delete_user(&mut self, name: &str, audit: &AuditEntry) -> Result<bool, StoreError>;
    fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError>;
    fn users(&self) -> Result<Vec<UserRow>, StoreError>;
    /// Records a failed login: the new count and, if it locks the account, until when.
    fn login_failed(&mut self, name: &str, failed: u32, locked_until: Option<Timestamp>, audit: &AuditEntry) -> Result<(), StoreError>;
    /// A successful login: resets the failure count and opens the session.
    fn login_succeeded(&mut self, session: &SessionRow, audit: &AuditEntry) -> Result<(), StoreError>;
    /// The session and its user.
    fn session(&self, id_hash: &str) -> Result<Option<(SessionRow, UserRow)>, StoreError>;
    fn touch_session(&mut self, id_hash: &str, at: Timestamp) -> Result<(), StoreError>;
    /// Ends a session (logout or expiry); the audit line says which.
    fn end_session(&mut self, id_hash: &str, audit: &AuditEntry) -> Result<bool, StoreError>;
}

const USER_COLS: &str = "name, role, teams, password_hash, failed_logins, locked_until";

fn user_from_row(r: &Row<'_>, at: usize) -> Result<UserRow, rusqlite::Error> {
    let teams: String = r.get(at + 2)?;
    Ok(UserRow {
        name: r.get(at)?,
        role: r.get(at + 1)?,
        teams: serde_json::from_str(&teams).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(at + 2, rusqlite::types::Type::Text, Box::new(e))
        })?,
        password_hash: r.get(at + 3)?,
        failed_logins: r.get(at + 4)?,
        locked_until: r.get::<_, Option<i64>>(at + 5)?.map(stamp).transpose()?,
    })
}

fn stamp(us: i64) -> Result<Timestamp, rusqlite::Error> {
    Timestamp::from_microsecond(us)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e)))
}

impl UserStore for SqliteStore {
    fn put_user(&mut self, u: &UserRow, audit: &AuditEntry) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let old: Option<String> =
            tx.query_row("SELECT name FROM users WHERE name = ?1", params![u.name], |r| r.get(0)).optional()?;
        let teams = serde_json::to_string(&u.teams).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        tx.execute(
            "INSERT INTO users (name, role, teams, password_hash, failed_logins, locked_until, updated_at)
             VALUES (?1, ?2, ?3, ?4, 0, NULL, ?5)
             ON CONFLICT (name) DO UPDATE SET role = excluded.role, teams = excluded.teams,
               password_hash = excluded.password_hash, failed_logins = 0, locked_until = NULL,
               updated_at = excluded.updated_at",
            params![u.name, u.role, teams, u.password_hash, audit.at.as_microsecond()],
        )?;
        if old.is_some() {
            tx.execute("DELETE FROM sessions WHERE user = ?1", params![u.name])?;
        }
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn delete_user(&mut self, name: &str, audit: &AuditEntry) -> Result<bool, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM sessions WHERE user = ?1", params![name])?;
        let n = tx.execute("DELETE FROM users WHERE name = ?1", params![name])?;
        if n > 0 {
            insert_audit(&tx, audit)?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        Ok(self
            .conn
            .query_row(&format!("SELECT {USER_COLS} FROM users WHERE name = ?1"), params![name], |r| {
                user_from_row(r, 0)
            })
            .optional()?)
    }

    fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let mut stmt = self.conn.prepare(&format!("SELECT {USER_COLS} FROM users ORDER BY name"))?;
        let rows = stmt.query_map([], |r| user_from_row(r, 0))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn login_failed(&mut self, name: &str, failed: u32, locked_until: Option<Timestamp>, audit: &AuditEntry) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE users SET failed_logins = ?2, locked_until = ?3 WHERE name = ?1",
            params![name, failed, locked_until.map(|t| t.as_microsecond())],
        )?;
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn login_succeeded(&mut self, s: &SessionRow, audit: &AuditEntry) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE name = ?1", params![s.user])?;
        tx.execute(
            "INSERT INTO sessions (id_hash, user, csrf, created_at, last_seen) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![s.id_hash, s.user, s.csrf, s.created_at.as_microsecond(), s.last_seen.as_microsecond()],
        )?;
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn session(&self, id_hash: &str) -> Result<Option<(SessionRow, UserRow)>, StoreError> {
        let cols = USER_COLS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ");
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT s.id_hash, s.user, s.csrf, s.created_at, s.last_seen, {cols}
                     FROM sessions s JOIN users u ON u.name = s.user WHERE s.id_hash = ?1"
                ),
                params![id_hash],
                |r| {
                    let session = SessionRow {
                        id_hash: r.get(0)?,
                        user: r.get(1)?,
                        csrf: r.get(2)?,
                        created_at: stamp(r.get(3)?)?,
                        last_seen: stamp(r.get(4)?)?,
                    };
                    Ok((session, user_from_row(r, 5)?))
                },
            )
            .optional()?)
    }

    fn touch_session(&mut self, id_hash: &str, at: Timestamp) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE sessions SET last_seen = max(last_seen, ?2) WHERE id_hash = ?1",
            params![id_hash, at.as_microsecond()],
        )?;
        Ok(())
    }

    fn end_session(&mut self, id_hash: &str, audit: &AuditEntry) -> Result<bool, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute("DELETE FROM sessions WHERE id_hash = ?1", params![id_hash])?;
        if n > 0 {
            insert_audit(&tx, audit)?;
        }
        tx.commit()?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::engines::on_both_engines;

    fn audit(action: &str) -> AuditEntry {
        AuditEntry {
            at: "2026-11-23T22:00:00Z".parse().unwrap(),
            actor: "admin".into(),
            role: "admin".into(),
            action: action.into(),
            check_id: None,
            device: None,
            detail: None,
        }
    }

    fn anna(hash: &str) -> UserRow {
        UserRow {
            name: "anna".into(),
            role: "night_staff".into(),
            teams: vec!["centrum".into()],
            password_hash: hash.into(),
            failed_logins: 0,
            locked_until: None,
        }
    }

    fn session(id: &str) -> SessionRow {
        let at: Timestamp = "2026-11-23T22:05:00Z".parse().unwrap();
        SessionRow { id_hash: id.into(), user: "anna".into(), csrf: "c".into(), created_at: at, last_seen: at }
    }

    on_both_engines! {
        fn a_new_password_ends_the_sessions_of_the_old_one_and_removal_ends_all(db: &TestDb) {
            let mut store = db.open();
            store.put_user(&anna("h1"), &audit("user_created")).unwrap();
            store.login_succeeded(&session("s1"), &audit("login")).unwrap();
            let (s, u) = store.session("s1").unwrap().unwrap();
            assert_eq!((s.user.as_str(), u.teams.clone()), ("anna", vec!["centrum".to_string()]));

            store.login_failed("anna", 3, None, &audit("login_failed")).unwrap();
            assert_eq!(store.user("anna").unwrap().unwrap().failed_logins, 3);
            store.put_user(&anna("h2"), &audit("user_changed")).unwrap();
            assert!(store.session("s1").unwrap().is_none());
            assert_eq!(store.user("anna").unwrap().unwrap().failed_logins, 0);

            store.login_succeeded(&session("s2"), &audit("login")).unwrap();
            assert!(store.delete_user("anna", &audit("user_removed")).unwrap());
            assert!(store.session("s2").unwrap().is_none());
            assert!(!store.delete_user("anna", &audit("user_removed")).unwrap());
            let actions: Vec<String> = store.audit(10).unwrap().into_iter().rev().map(|r| r.entry.action).collect();
            assert_eq!(actions, ["user_created", "login", "login_failed", "user_changed", "login", "user_removed"]);
        }
    }
}
