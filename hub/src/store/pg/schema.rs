//! The PostgreSQL schema and its migrations.
//!
//! The version lives in the one-row table `vaka_schema`. A fresh database gets the current
//! schema at once (PostgreSQL's history starts at version 1; SQLite's nine steps are not
//! replayed). Migrating runs in one transaction under a transaction-level advisory lock, so
//! several hubs starting against one database at the same time migrate it once: the others
//! wait, then find it current. A database written by a newer hub is refused rather than
//! misread.
//!
//! The tables are SQLite's with the same meaning and representation: timestamps as `BIGINT`
//! microseconds since the Unix epoch (round-trips are exact), JSON as text (read back as
//! written), event ids as `UUID`. What differs is what several writers need:
//! - `alarms_open` is a *unique* partial index, so one device has at most one open alarm of a
//!   kind even when two hubs trigger it at once (they meet in `INSERT … ON CONFLICT`);
//! - `events.pos`, an identity column, gives "newest first" (SQLite's `rowid`);
//! - audit ids are assigned by the appender under an advisory lock (see `mod.rs`), so the
//!   hash chain has no gaps; triggers refuse `UPDATE`, `DELETE` and `TRUNCATE` on it;
//! - `sessions.username` (SQLite: `user`, a reserved word here).

use crate::store::StoreError;

/// The schema this hub writes and understands.
pub const SCHEMA_VERSION: i64 = 1;

/// Key of the advisory lock that serialises migrations (any fixed number; "vaka" in ASCII).
const MIGRATION_LOCK: i64 = 0x7661_6b61_0001;

const SCHEMA_V1: &str = "
CREATE TABLE devices (
    id               TEXT PRIMARY KEY,
    site             TEXT NOT NULL,
    online           BOOLEAN NOT NULL,
    last_seen        BIGINT NOT NULL,
    outbox_depth     BIGINT,
    supervision_lost BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE events (
    pos         BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    event_id    UUID PRIMARY KEY,
    device      TEXT NOT NULL,
    site        TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    ts          BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    severity    TEXT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX events_device_seq ON events (device, seq);
CREATE INDEX events_kind_ts ON events (kind, ts);
CREATE TABLE rejects (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at     BIGINT NOT NULL,
    topic           TEXT NOT NULL,
    reason          TEXT NOT NULL,
    label           TEXT NOT NULL,
    payload_excerpt TEXT NOT NULL,
    device          TEXT
);
CREATE TABLE alarms (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device      TEXT NOT NULL,
    site        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    raised_at   BIGINT NOT NULL,
    cleared_at  BIGINT,
    occurrences BIGINT NOT NULL DEFAULT 1,
    last_event  UUID,
    updated_at  BIGINT,
    acked_at    BIGINT,
    acked_by    TEXT,
    assigned_to TEXT,
    assigned_at BIGINT,
    resolved_at BIGINT,
    resolved_by TEXT,
    outcome     TEXT,
    note        TEXT
);
CREATE UNIQUE INDEX alarms_open ON alarms (device, kind) WHERE cleared_at IS NULL;
CREATE INDEX alarms_unresolved ON alarms (raised_at) WHERE resolved_at IS NULL;
CREATE INDEX alarms_raised ON alarms (raised_at);
CREATE TABLE camera_checks (
    check_id       TEXT PRIMARY KEY,
    site           TEXT NOT NULL,
    device         TEXT NOT NULL,
    requested_by   TEXT NOT NULL,
    requested_role TEXT NOT NULL,
    requested_at   BIGINT NOT NULL,
    deadline       BIGINT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('requested', 'answered', 'no_answer')),
    verdict        TEXT,
    refusal        TEXT,
    confidence     DOUBLE PRECISION,
    detail         TEXT,
    figures        TEXT,
    event_id       UUID,
    answered_at    BIGINT,
    late           BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX camera_checks_open ON camera_checks (deadline) WHERE status = 'requested';
CREATE TABLE audit (
    id       BIGINT PRIMARY KEY,
    at       BIGINT NOT NULL,
    actor    TEXT NOT NULL,
    role     TEXT NOT NULL,
    action   TEXT NOT NULL,
    check_id TEXT,
    device   TEXT,
    detail   TEXT,
    hash     TEXT
);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the audit log is append-only'; END
$$;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TABLE care_recipients (
    id         TEXT PRIMARY KEY,
    team       TEXT NOT NULL,
    plan       TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE patrols (
    id         TEXT PRIMARY KEY,
    team       TEXT NOT NULL,
    plan       TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE rounds (
    night        TEXT PRIMARY KEY,
    generated_at BIGINT NOT NULL,
    routes       TEXT,
    routes_at    BIGINT,
    alarms_seen  BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE round_checks (
    id         TEXT PRIMARY KEY,
    night      TEXT NOT NULL REFERENCES rounds (night),
    team       TEXT NOT NULL,
    state      TEXT NOT NULL,
    outcome    TEXT,
    planned_at BIGINT NOT NULL,
    doc        TEXT NOT NULL
);
CREATE INDEX round_checks_night ON round_checks (night, planned_at);
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    teams         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until  BIGINT,
    updated_at    BIGINT NOT NULL
);
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (username);
CREATE TABLE registrations (
    device        TEXT PRIMARY KEY,
    site          TEXT NOT NULL,
    recipient     TEXT,
    registered_by TEXT NOT NULL,
    registered_at BIGINT NOT NULL
);
CREATE TABLE bed_zones (
    device  TEXT PRIMARY KEY,
    corners TEXT NOT NULL,
    set_by  TEXT NOT NULL,
    set_at  BIGINT NOT NULL
);
CREATE TABLE device_certificates (
    serial     TEXT PRIMARY KEY,
    device     TEXT NOT NULL,
    origin     TEXT NOT NULL,
    issued_by  TEXT NOT NULL,
    issued_at  BIGINT NOT NULL,
    not_after  BIGINT NOT NULL,
    revoked_at BIGINT,
    revoked_by TEXT,
    reason     TEXT
);
CREATE INDEX device_certificates_device ON device_certificates (device, issued_at);
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    since      BIGINT NOT NULL,
    term       BIGINT NOT NULL
);
";

/// Brings the database's schema to [`SCHEMA_VERSION`], or refuses a newer one.
pub fn migrate(client: &mut postgres::Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS vaka_schema (version BIGINT NOT NULL)")?;
    let found: i64 = match tx.query_opt("SELECT version FROM vaka_schema", &[])? {
        Some(row) => row.try_get(0)?,
        None => 0,
    };
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION });
    }
    if found < 1 {
        tx.batch_execute(SCHEMA_V1)?;
    }
    if found < SCHEMA_VERSION {
        tx.execute("DELETE FROM vaka_schema", &[])?;
        tx.execute("INSERT INTO vaka_schema (version) VALUES ($1)", &[&SCHEMA_VERSION])?;
    }
    tx.commit()?;
    Ok(())
}
