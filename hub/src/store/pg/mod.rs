//! [`Store`] on PostgreSQL, chosen by `[store] database_url`. Several hubs may share one
//! database: everything here stays correct when they write at once.
//!
//! One `PgStore` is one connection (the synchronous `postgres` client, which runs its own
//! small runtime: it must be called from blocking threads only — the ingest writer's thread,
//! `spawn_blocking` — never from an async task; dropping it inside a runtime hands the
//! connection to a plain thread to close). A connection found closed (the server restarted)
//! is opened again on the next call.
//!
//! Durability: [`Store::commit`] writes its batch in one transaction and returns after
//! `COMMIT`, which with PostgreSQL's default `synchronous_commit = on` is flushed to the WAL.
//!
//! What several writers need, and how it is had:
//! - the same event stored by two hubs: `INSERT … ON CONFLICT (event_id) DO NOTHING`, so the
//!   second one waits for the first and reports [`Inserted::Duplicate`];
//! - one open alarm per device and kind: a unique partial index (`schema.rs`) and
//!   `ON CONFLICT … DO UPDATE` / `DO NOTHING`;
//! - an unbroken audit chain: every transaction that appends audit lines takes the
//!   transaction-level advisory lock [`AUDIT_LOCK`] first, so appends are serialised and each
//!   reads the true newest line before chaining to it;
//! - a transaction PostgreSQL aborts as a deadlock or serialisation failure (two hubs'
//!   batches touching the same rows in a different order) is run again, up to
//!   [`ATTEMPTS`] times.

mod lease;
mod schema;
mod staff;

#[cfg(test)]
pub(crate) mod testdb;

pub use schema::SCHEMA_VERSION;

use super::{
    audit_hash, AlarmHandling, AlarmRow, AuditChain, AuditEntry, AuditRow, AuditVerdict, CheckRow, CheckStatus, Committed,
    DeviceRow, EventRow, Inserted, RejectRow, Store, StoreError, WriteBatch, AUDIT_GENESIS, SUPERVISION_LOST,
};
use jiff::Timestamp;
use postgres::error::SqlState;
use postgres::{Client, NoTls, Row, Transaction};
use std::sync::{Mutex, MutexGuard};

/// Key of the advisory lock held by every transaction that appends to the audit log.
const AUDIT_LOCK: i64 = 0x7661_6b61_0002;

/// How often a transaction aborted as a deadlock or serialisation failure is tried.
const ATTEMPTS: u32 = 4;

pub struct PgStore {
    config: postgres::Config,
    /// `None` only while dropping.
    client: Mutex<Option<Client>>,
}

/// Where a URL points, for messages: hosts, port, database and user, never the password.
pub fn describe(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "host {} port {} database {} user {}",
        hosts.join(","),
        if ports.is_empty() { "5432".to_string() } else { ports.join(",") },
        config.get_dbname().unwrap_or("(the user's)"),
        config.get_user().unwrap_or("(none)")
    )
}

/// Parses a `database_url` (`postgres://user@host:port/db`), with a message naming the problem.
pub fn parse_url(url: &str) -> Result<postgres::Config, String> {
    let config: postgres::Config = url.parse().map_err(|e| format!("not a PostgreSQL URL like postgres://user@host:5432/vaka: {e}"))?;
    if config.get_hosts().is_empty() {
        return Err("names no host, e.g. postgres://user@127.0.0.1:5432/vaka".into());
    }
    Ok(config)
}

/// Connects to `url` and says where it is and at which schema version, changing nothing.
pub fn probe(url: &str) -> Result<String, StoreError> {
    let config = parse_url(url).map_err(StoreError::BadUrl)?;
    let mut client = connect(&config)?;
    let has_schema: bool = client.query_one("SELECT to_regclass('vaka_schema') IS NOT NULL", &[])?.try_get(0)?;
    let version: Option<i64> = if has_schema {
        client.query_opt("SELECT version FROM vaka_schema", &[])?.map(|r| r.try_get(0)).transpose()?
    } else {
        None
    };
    let state = match version {
        None => "empty: the hub creates its schema at start".to_string(),
        Some(v) if v > SCHEMA_VERSION => return Err(StoreError::SchemaTooNew { found: v, supported: SCHEMA_VERSION }),
        Some(v) if v < SCHEMA_VERSION => format!("schema version {v}: the hub migrates it to {SCHEMA_VERSION} at start"),
        Some(v) => format!("schema version {v}, current"),
    };
    Ok(format!("PostgreSQL {}: reachable, {state}", describe(&config)))
}

fn connect(config: &postgres::Config) -> Result<Client, StoreError> {
    config.connect(NoTls).map_err(|error| StoreError::Connect { target: describe(config), error })
}

/// A PostgreSQL error with its causes, e.g. "error connecting to server: Connection refused
/// (os error 111)" or "db error: ERROR: the audit log is append-only".
pub fn error_chain(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = cause.source();
    }
    text
}

fn ts(us: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(us).map_err(|e| StoreError::Corrupt(format!("timestamp {us}: {e}")))
}

fn opt_ts(us: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    us.map(ts).transpose()
}

fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn limit(n: usize) -> i64 {
    n.min(i64::MAX as usize) as i64
}

fn json_text(what: &str, text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("stored {what} does not read back: {e}")))
}

/// Whether PostgreSQL aborted the transaction only because of another one: trying again helps.
fn is_transient(e: &StoreError) -> bool {
    match e {
        StoreError::Postgres(e) => matches!(e.code(), Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE),
        _ => false,
    }
}

impl PgStore {
    /// Connects to the database at `url` and brings its schema up to date.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let config = parse_url(url).map_err(StoreError::BadUrl)?;
        let mut client = connect(&config)?;
        schema::migrate(&mut client)?;
        Ok(PgStore { config, client: Mutex::new(Some(client)) })
    }

    /// The connection, opened again if the server closed it.
    fn lock(&self) -> Result<MutexGuard<'_, Option<Client>>, StoreError> {
        let mut guard = self.client.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(connect(&self.config)?);
        }
        Ok(guard)
    }

    /// Runs `f` on the connection.
    pub(super) fn with<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut guard = self.lock()?;
        let client = guard.as_mut().ok_or_else(|| StoreError::Corrupt("connection missing".into()))?;
        f(client)
    }

    /// Runs `f` in a transaction and commits it, trying again when PostgreSQL aborted it as a
    /// deadlock or serialisation failure. With `audited`, the transaction first takes the
    /// audit lock (before any row lock, so audited transactions cannot deadlock on it).
    pub(super) fn transaction<T>(&self, audited: bool, mut f: impl FnMut(&mut Transaction<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.with(|client| {
            let mut attempt = 1;
            loop {
                let result = (|| {
                    let mut tx = client.transaction()?;
                    if audited {
                        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])?;
                    }
                    let out = f(&mut tx)?;
                    tx.commit()?;
                    Ok(out)
                })();
                match result {
                    Err(e) if attempt < ATTEMPTS && is_transient(&e) => {
                        tracing::warn!(attempt, error = %e, "Store transaction aborted by a concurrent one; trying again");
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        let client = self.client.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        // Closing blocks on the client's own runtime, which may not happen on a runtime thread.
        if let (Some(client), Ok(_)) = (client, tokio::runtime::Handle::try_current()) {
            let _ = std::thread::Builder::new().name("vaka-pg-close".into()).spawn(move || drop(client));
        }
    }
}

/// Appends one audit line chained to the newest one. The transaction must hold the audit lock
/// (see [`PgStore::transaction`]); it is taken here too, which is a no-op when already held.
pub(super) fn insert_audit(tx: &mut Transaction<'_>, e: &AuditEntry) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])?;
    let last = tx.query_opt("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", &[])?;
    let (id, previous) = match last {
        Some(row) => (row.try_get::<_, i64>(0)? + 1, row.try_get::<_, Option<String>>(1)?.unwrap_or_default()),
        None => (1, AUDIT_GENESIS.to_string()),
    };
    tx.execute(
        "INSERT INTO audit (id, at, actor, role, action, check_id, device, detail, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[&id, &micros(e.at), &e.actor, &e.role, &e.action, &e.check_id, &e.device, &e.detail, &audit_hash(&previous, id, e)],
    )?;
    Ok(())
}

pub(super) fn insert_camera_check(tx: &mut Transaction<'_>, c: &CheckRow) -> Result<(), StoreError> {
    tx.execute(
        &format!("INSERT INTO camera_checks ({CHECK_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"),
        &[
            &c.check_id,
            &c.site,
            &c.device,
            &c.requested_by,
            &c.requested_role,
            &micros(c.requested_at),
            &micros(c.deadline),
            &c.status.as_str(),
            &c.verdict,
            &c.refusal,
            &c.confidence,
            &c.detail,
            &c.figures.as_ref().map(|f| f.to_string()),
            &c.event_id,
            &c.answered_at.map(micros),
            &c.late,
        ],
    )?;
    Ok(())
}

const AUDIT_COLS: &str = "id, at, actor, role, action, check_id, device, detail, hash";
const CHECK_COLS: &str = "check_id, site, device, requested_by, requested_role, requested_at,
    deadline, status, verdict, refusal, confidence, detail, figures, event_id, answered_at, late";
const EVENT_COLS: &str = "event_id, device, site, seq, ts, received_at, kind, severity, body";
const DEVICE_COLS: &str = "id, site, online, last_seen, outbox_depth, supervision_lost";
pub(super) const ALARM_COLS: &str = "id, device, site, kind, raised_at, cleared_at, occurrences, last_event,
    updated_at, acked_at, acked_by, assigned_to, assigned_at, resolved_at, resolved_by, outcome, note";

fn audit_from_row(r: &Row) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        id: r.try_get(0)?,
        entry: AuditEntry {
            at: ts(r.try_get(1)?)?,
            actor: r.try_get(2)?,
            role: r.try_get(3)?,
            action: r.try_get(4)?,
            check_id: r.try_get(5)?,
            device: r.try_get(6)?,
            detail: r.try_get(7)?,
        },
        hash: r.try_get(8)?,
    })
}

fn event_from_row(r: &Row) -> Result<EventRow, StoreError> {
    Ok(EventRow {
        id: r.try_get(0)?,
        device: r.try_get(1)?,
        site: r.try_get(2)?,
        seq: r.try_get::<_, i64>(3)?.max(0) as u64,
        ts: ts(r.try_get(4)?)?,
        received_at: ts(r.try_get(5)?)?,
        kind: r.try_get(6)?,
        severity: r.try_get(7)?,
        body: json_text("event body", r.try_get(8)?)?,
    })
}

fn device_from_row(r: &Row) -> Result<DeviceRow, StoreError> {
    Ok(DeviceRow {
        id: r.try_get(0)?,
        site: r.try_get(1)?,
        online: r.try_get(2)?,
        last_seen: ts(r.try_get(3)?)?,
        outbox_depth: r.try_get::<_, Option<i64>>(4)?.map(|d| d.max(0) as u64),
        supervision_lost: r.try_get(5)?,
    })
}

fn check_from_row(r: &Row) -> Result<CheckRow, StoreError> {
    let status: String = r.try_get(7)?;
    Ok(CheckRow {
        check_id: r.try_get(0)?,
        site: r.try_get(1)?,
        device: r.try_get(2)?,
        requested_by: r.try_get(3)?,
        requested_role: r.try_get(4)?,
        requested_at: ts(r.try_get(5)?)?,
        deadline: ts(r.try_get(6)?)?,
        status: CheckStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("unknown check status `{status}`")))?,
        verdict: r.try_get(8)?,
        refusal: r.try_get(9)?,
        confidence: r.try_get(10)?,
        detail: r.try_get(11)?,
        figures: r.try_get::<_, Option<&str>>(12)?.map(|f| json_text("check figures", f)).transpose()?,
        event_id: r.try_get(13)?,
        answered_at: opt_ts(r.try_get(14)?)?,
        late: r.try_get(15)?,
    })
}

pub(super) fn alarm_from_row(r: &Row) -> Result<AlarmRow, StoreError> {
    let raised_at = ts(r.try_get(4)?)?;
    Ok(AlarmRow {
        id: r.try_get(0)?,
        device: r.try_get(1)?,
        site: r.try_get(2)?,
        kind: r.try_get(3)?,
        raised_at,
        cleared_at: opt_ts(r.try_get(5)?)?,
        occurrences: r.try_get::<_, i64>(6)?.max(1) as u64,
        last_event: r.try_get(7)?,
        updated_at: opt_ts(r.try_get(8)?)?.unwrap_or(raised_at),
        handling: AlarmHandling {
            acked_at: opt_ts(r.try_get(9)?)?,
            acked_by: r.try_get(10)?,
            assigned_to: r.try_get(11)?,
            assigned_at: opt_ts(r.try_get(12)?)?,
            resolved_at: opt_ts(r.try_get(13)?)?,
            resolved_by: r.try_get(14)?,
            outcome: r.try_get(15)?,
            note: r.try_get(16)?,
        },
    })
}

impl PgStore {
    /// Alarms matching `filter` (an SQL condition, possibly followed by ORDER/LIMIT).
    pub(super) fn alarms_where(&self, filter: &str, args: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<Vec<AlarmRow>, StoreError> {
        self.with(|c| c.query(&format!("SELECT {ALARM_COLS} FROM alarms WHERE {filter}"), args)?.iter().map(alarm_from_row).collect())
    }
}

/// Applies a newly stored event's effect on its device's alarms (see `alarm_effect`), in the
/// event's own transaction. The unique open-alarm index makes "update the open one or open
/// one" a single atomic statement, also against another hub doing the same.
fn alarm_for_event(tx: &mut Transaction<'_>, e: &EventRow) -> Result<(), StoreError> {
    match super::alarm_effect(&e.kind, &e.severity) {
        Some(super::AlarmEffect::Trigger) => {
            tx.execute(
                "INSERT INTO alarms (device, site, kind, raised_at, last_event, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $4)
                 ON CONFLICT (device, kind) WHERE cleared_at IS NULL DO UPDATE
                   SET occurrences = alarms.occurrences + 1, last_event = excluded.last_event,
                       updated_at = excluded.updated_at",
                &[&e.device, &e.site, &e.kind, &micros(e.ts), &e.id],
            )?;
        }
        Some(super::AlarmEffect::Clear(kind)) => {
            tx.execute(
                "UPDATE alarms SET cleared_at = $3 WHERE device = $1 AND kind = $2 AND cleared_at IS NULL",
                &[&e.device, &kind, &micros(e.ts)],
            )?;
        }
        None => {}
    }
    Ok(())
}

fn commit_batch(tx: &mut Transaction<'_>, batch: &WriteBatch) -> Result<Committed, StoreError> {
    let mut done = Committed { events: Vec::with_capacity(batch.events.len()), ..Committed::default() };
    let insert = tx.prepare(
        "INSERT INTO events (event_id, device, site, seq, ts, received_at, kind, severity, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id) DO NOTHING",
    )?;
    for e in &batch.events {
        let seq = e.seq.min(i64::MAX as u64) as i64;
        let body = e.body.to_string();
        let n = tx.execute(&insert, &[&e.id, &e.device, &e.site, &seq, &micros(e.ts), &micros(e.received_at), &e.kind, &e.severity, &body])?;
        if n == 1 {
            alarm_for_event(tx, e)?;
        }
        done.events.push(if n == 1 { Inserted::New } else { Inserted::Duplicate });
    }
    for r in &batch.rejects {
        tx.execute(
            "INSERT INTO rejects (received_at, topic, reason, label, payload_excerpt, device) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&micros(r.received_at), &r.topic, &r.reason, &r.label, &r.payload_excerpt, &r.device],
        )?;
    }
    for d in &batch.devices {
        tx.execute(
            "INSERT INTO devices (id, site, online, last_seen, outbox_depth, supervision_lost)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET site = excluded.site, online = excluded.online,
               last_seen = GREATEST(devices.last_seen, excluded.last_seen),
               outbox_depth = COALESCE(excluded.outbox_depth, devices.outbox_depth),
               supervision_lost = excluded.supervision_lost",
            &[&d.id, &d.site, &d.online, &micros(d.last_seen), &d.outbox_depth.map(|n| n.min(i64::MAX as u64) as i64), &d.supervision_lost],
        )?;
    }
    for (dev, site, at) in &batch.raise_alarms {
        // Another hub may have raised it already: one open alarm per device and kind.
        tx.execute(
            "INSERT INTO alarms (device, site, kind, raised_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (device, kind) WHERE cleared_at IS NULL DO NOTHING",
            &[dev, site, &SUPERVISION_LOST, &micros(*at)],
        )?;
    }
    for (dev, at) in &batch.clear_alarms {
        tx.execute(
            "UPDATE alarms SET cleared_at = $2 WHERE device = $1 AND kind = $3 AND cleared_at IS NULL",
            &[dev, &micros(*at), &SUPERVISION_LOST],
        )?;
    }
    for a in &batch.check_answers {
        let n = tx.execute(
            "UPDATE camera_checks SET status = 'answered', verdict = $2, refusal = $3, confidence = $4,
               detail = $5, figures = $6, event_id = $7, answered_at = $8, late = $9
             WHERE check_id = $1 AND status <> 'answered'",
            &[&a.check_id, &a.verdict, &a.refusal, &a.confidence, &a.detail, &a.figures.to_string(), &a.event_id, &micros(a.received_at), &a.late],
        )?;
        if n == 1 {
            done.answered.push(a.check_id.clone());
        }
    }
    for id in &batch.checks_unanswered {
        if tx.execute("UPDATE camera_checks SET status = 'no_answer' WHERE check_id = $1 AND status = 'requested'", &[id])? == 1 {
            done.unanswered.push(id.clone());
        }
    }
    Ok(done)
}

impl Store for PgStore {
    fn commit(&mut self, batch: &WriteBatch) -> Result<Committed, StoreError> {
        self.transaction(false, |tx| commit_batch(tx, batch))
    }

    fn devices(&self) -> Result<Vec<DeviceRow>, StoreError> {
        self.with(|c| c.query(&format!("SELECT {DEVICE_COLS} FROM devices ORDER BY site, id"), &[])?.iter().map(device_from_row).collect())
    }

    fn device(&self, id: &str) -> Result<Option<DeviceRow>, StoreError> {
        self.with(|c| c.query_opt(&format!("SELECT {DEVICE_COLS} FROM devices WHERE id = $1"), &[&id])?.as_ref().map(device_from_row).transpose())
    }

    fn events(&self, device: Option<&str>, n: usize) -> Result<Vec<EventRow>, StoreError> {
        let rows = self.with(|c| {
            Ok(match device {
                Some(device) => c.query(&format!("SELECT {EVENT_COLS} FROM events WHERE device = $1 ORDER BY seq DESC LIMIT $2"), &[&device, &limit(n)])?,
                None => c.query(&format!("SELECT {EVENT_COLS} FROM events ORDER BY pos DESC LIMIT $1"), &[&limit(n)])?,
            })
        })?;
        rows.iter().map(event_from_row).collect()
    }

    fn rejects(&self, n: usize) -> Result<Vec<RejectRow>, StoreError> {
        let rows = self.with(|c| {
            Ok(c.query("SELECT received_at, topic, reason, label, payload_excerpt, device FROM rejects ORDER BY id DESC LIMIT $1", &[&limit(n)])?)
        })?;
        rows.iter()
            .map(|r| {
                Ok(RejectRow {
                    received_at: ts(r.try_get(0)?)?,
                    topic: r.try_get(1)?,
                    reason: r.try_get(2)?,
                    label: r.try_get(3)?,
                    payload_excerpt: r.try_get(4)?,
                    device: r.try_get(5)?,
                })
            })
            .collect()
    }

    fn alarms(&self, n: usize) -> Result<Vec<AlarmRow>, StoreError> {
        self.alarms_where("TRUE ORDER BY id DESC LIMIT $1", &[&limit(n)])
    }

    fn ping(&self) -> Result<(), StoreError> {
        let one: i32 = self.with(|c| Ok(c.query_one("SELECT 1", &[])?.try_get(0)?))?;
        match one {
            1 => Ok(()),
            _ => Err(StoreError::Corrupt("SELECT 1 did not answer 1".into())),
        }
    }

    fn check(&self, check_id: &str) -> Result<Option<CheckRow>, StoreError> {
        self.with(|c| c.query_opt(&format!("SELECT {CHECK_COLS} FROM camera_checks WHERE check_id = $1"), &[&check_id])?.as_ref().map(check_from_row).transpose())
    }

    fn open_checks(&self) -> Result<Vec<CheckRow>, StoreError> {
        self.with(|c| {
            c.query(&format!("SELECT {CHECK_COLS} FROM camera_checks WHERE status = 'requested' ORDER BY deadline"), &[])?
                .iter()
                .map(check_from_row)
                .collect()
        })
    }

    fn open_check(&mut self, check: &CheckRow, audit: &AuditEntry) -> Result<(), StoreError> {
        self.transaction(true, |tx| {
            insert_camera_check(tx, check)?;
            insert_audit(tx, audit)
        })
    }

    fn append_audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.transaction(true, |tx| insert_audit(tx, entry))
    }

    fn audit(&self, n: usize) -> Result<Vec<AuditRow>, StoreError> {
        self.with(|c| c.query(&format!("SELECT {AUDIT_COLS} FROM audit ORDER BY id DESC LIMIT $1"), &[&limit(n)])?.iter().map(audit_from_row).collect())
    }

    fn verify_audit(&self) -> Result<AuditVerdict, StoreError> {
        // One snapshot (REPEATABLE READ), so lines appended meanwhile are not part of this
        // check; read in pages through a portal rather than all at once.
        self.with(|c| {
            let mut tx = c.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).read_only(true).start()?;
            let portal = tx.bind(&format!("SELECT {AUDIT_COLS} FROM audit ORDER BY id"), &[])?;
            let mut chain = AuditChain::default();
            loop {
                let rows = tx.query_portal(&portal, 1000)?;
                if rows.is_empty() {
                    break;
                }
                for row in &rows {
                    if let Err(broken) = chain.feed(&audit_from_row(row)?) {
                        return Ok(broken);
                    }
                }
            }
            tx.commit()?;
            Ok(chain.finish())
        })
    }
}

#[cfg(test)]
mod tests;
