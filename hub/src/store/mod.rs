//! The hub's durable store: devices, events, rejected payloads, supervision alarms, camera
//! checks and the audit log.
//!
//! [`Store`] is the interface the rest of the hub uses. Two engines implement it with the same
//! behaviour, chosen by the config ([`StoreConfig`], [`open`]): [`SqliteStore`] (one file, one
//! hub) and [`PgStore`] (PostgreSQL, which several hubs may share). Each creates or migrates
//! its own schema when opened. The trait is synchronous: the ingest writer runs it on a
//! blocking thread, the HTTP API and the rounds engine through `spawn_blocking`.
//!
//! Durability promise: [`Store::commit`] returns only after its whole [`WriteBatch`] is
//! committed in one transaction and durable (SQLite WAL with `synchronous=FULL`; PostgreSQL's
//! `COMMIT` with `synchronous_commit = on`). The hub acks
//! events to devices only after `commit` returned `Ok`. Events are keyed by their UUIDv7 id, so
//! writing the same event twice stores one row and reports a [`Inserted::Duplicate`]. A
//! camera check's answer ([`WriteBatch::check_answers`]) is written in the same transaction
//! as the event that carries it, so a device is never acked for an answer the check lacks.
//!
//! The HTTP side writes too, on its own connection: new camera checks and audit rows
//! ([`Store::open_check`], [`Store::append_audit`]). These are small single transactions;
//! SQLite serialises them with the ingest writer's (WAL, busy timeout).
//!
//! The audit log is append-only: the schema refuses `UPDATE` and `DELETE` on it. Each line
//! also carries a hash chaining it to the line before ([`audit_hash`]), so a line changed or
//! removed behind the hub's back (with the database file in hand) shows when the chain is
//! checked ([`Store::verify_audit`], `GET /api/v1/audit/verify`).
//!
//! Never stored anywhere: camera pictures. They live only in memory (`camera/`).

mod certs;
mod handling;
mod lease;
mod pg;
mod rounds;
mod sqlite;
mod users;

#[cfg(test)]
pub(crate) mod engines;

pub use certs::{CertOrigin, CertRow, CertStore};
pub use lease::{Lease, LeaseStore};
pub use handling::{AlarmAction, AlarmOutcome, BedZoneRow, HandlingRefused, HandlingStore, Registration};
pub use rounds::{RoundStore, RoundWrite};
pub use users::{SessionRow, UserRow, UserStore};
pub use pg::PgStore;
pub use sqlite::SqliteStore;

use jiff::Timestamp;
use serde::Serialize;
use std::path::PathBuf;
use thiserror::Error;
use uuid::Uuid;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Its message has the whole cause (the server's message, the OS error), since
    /// `postgres::Error` alone only says "db error".
    #[error("database error: {}", pg::error_chain(.0))]
    Postgres(postgres::Error),
    #[error("cannot connect to PostgreSQL ({target}): {}", pg::error_chain(.error))]
    Connect { target: String, error: postgres::Error },
    #[error("store.database_url: {0}")]
    BadUrl(String),
    #[error("database schema version {found} is newer than this hub understands ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Postgres(e)
    }
}

/// Which database the hub keeps its data in (`[store]` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// `store.path`: a SQLite file, created with its schema if missing.
    Sqlite { path: PathBuf },
    /// `store.database_url`: a PostgreSQL database (which must exist); its schema is created
    /// or migrated at open.
    Postgres { url: String },
}

impl StoreConfig {
    /// For logs: the file, or where the database is (without a password).
    pub fn describe(&self) -> String {
        match self {
            StoreConfig::Sqlite { path } => format!("SQLite {}", path.display()),
            StoreConfig::Postgres { url } => match pg::parse_url(url) {
                Ok(config) => format!("PostgreSQL {}", pg::describe(&config)),
                Err(e) => format!("PostgreSQL (bad URL: {e})"),
            },
        }
    }
}

/// Opens the configured store, bringing its schema up to date. Blocks: call it from a
/// blocking thread.
pub fn open(config: &StoreConfig) -> Result<Box<dyn Store>, StoreError> {
    Ok(match config {
        StoreConfig::Sqlite { path } => Box::new(SqliteStore::open(path)?),
        StoreConfig::Postgres { url } => Box::new(PgStore::open(url)?),
    })
}

/// For `check-config`: whether the configured PostgreSQL database answers, and at which
/// schema version, without changing it. `None` for SQLite, which is opened (or created) only
/// at start.
pub fn probe(config: &StoreConfig) -> Result<Option<String>, StoreError> {
    match config {
        StoreConfig::Sqlite { .. } => Ok(None),
        StoreConfig::Postgres { url } => pg::probe(url).map(Some),
    }
}

/// Checks a `database_url`'s syntax without connecting; the problem in words.
pub fn check_database_url(url: &str) -> Result<(), String> {
    pg::parse_url(url).map(|_| ())
}

/// One valid event to store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    pub id: Uuid,
    pub device: String,
    pub site: String,
    pub seq: u64,
    pub ts: Timestamp,
    pub received_at: Timestamp,
    pub kind: String,
    pub severity: String,
    pub body: serde_json::Value,
}

/// One refused payload, kept so that a person can see what a device sent and why it was refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectRow {
    pub received_at: Timestamp,
    pub topic: String,
    pub reason: String,
    pub label: String,
    /// The payload's first 4 KiB, lossily as UTF-8.
    pub payload_excerpt: String,
    pub device: Option<String>,
}

/// A device as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceRow {
    pub id: String,
    pub site: String,
    pub online: bool,
    pub last_seen: Timestamp,
    /// `None` until the device reported its outbox depth in a status message.
    pub outbox_depth: Option<u64>,
    pub supervision_lost: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmRow {
    pub id: i64,
    pub device: String,
    pub site: String,
    pub kind: String,
    pub raised_at: Timestamp,
    pub cleared_at: Option<Timestamp>,
    /// How often it was triggered while open (1 for the first trigger); a repeated trigger
    /// updates the open alarm instead of opening another (one open alarm per device and kind).
    pub occurrences: u64,
    /// The event that last triggered it (none for `supervision_lost`, raised by the hub).
    pub last_event: Option<Uuid>,
    /// When it was last triggered.
    pub updated_at: Timestamp,
    /// What staff did about it (see [`HandlingStore`]).
    pub handling: AlarmHandling,
}

/// Staff's handling of an alarm: acknowledged, assigned to a person or a patrol, resolved with
/// an outcome. Each step records who and when; a resolved alarm is closed for good (a new
/// trigger of the same kind opens a new alarm).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AlarmHandling {
    pub acked_at: Option<Timestamp>,
    pub acked_by: Option<String>,
    /// A user's name, or `patrol:<id>`.
    pub assigned_to: Option<String>,
    pub assigned_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub resolved_by: Option<String>,
    /// An [`AlarmOutcome`]'s wire name.
    pub outcome: Option<String>,
    pub note: Option<String>,
}

/// What a newly stored event does to the device's alarms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmEffect {
    /// An alarm-severity event: opens an alarm of its kind, or updates the open one.
    Trigger,
    /// Closes the open alarm of this kind (e.g. `geofence_returned` closes `geofence_left`).
    Clear(&'static str),
}

/// The alarm effect of an event of `kind` and `severity`, if any. Pure.
pub fn alarm_effect(kind: &str, severity: &str) -> Option<AlarmEffect> {
    match kind {
        "geofence_returned" => Some(AlarmEffect::Clear("geofence_left")),
        _ if severity == "alarm" => Some(AlarmEffect::Trigger),
        _ => None,
    }
}

/// Where a camera check stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Sent to the device; no answer yet and the deadline has not passed.
    Requested,
    /// The device's `camera_check` event arrived (possibly after the deadline: `late`).
    Answered,
    /// The deadline passed without an answer: a person may need a visit.
    NoAnswer,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Requested => "requested",
            CheckStatus::Answered => "answered",
            CheckStatus::NoAnswer => "no_answer",
        }
    }

    pub fn parse(s: &str) -> Option<CheckStatus> {
        [
            CheckStatus::Requested,
            CheckStatus::Answered,
            CheckStatus::NoAnswer,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// A camera check the hub asked a device for, with its answer once it came.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckRow {
    pub check_id: String,
    pub site: String,
    pub device: String,
    /// The principal's name and role.
    pub requested_by: String,
    pub requested_role: String,
    pub requested_at: Timestamp,
    /// The check is open on the device until then.
    pub deadline: Timestamp,
    pub status: CheckStatus,
    /// From the answer: the wire names of the verdict and the consent refusal.
    pub verdict: Option<String>,
    pub refusal: Option<String>,
    pub confidence: Option<f64>,
    pub detail: Option<String>,
    /// The answer's measurements: frames, brightness, motion, presence, duration_ms.
    pub figures: Option<serde_json::Value>,
    /// The `camera_check` event that answered.
    pub event_id: Option<Uuid>,
    /// When the hub received the answer.
    pub answered_at: Option<Timestamp>,
    /// The answer arrived after the deadline.
    pub late: bool,
}

impl CheckRow {
    /// A check just asked for: `requested`, no answer yet.
    pub fn requested(
        check_id: impl Into<String>,
        (site, device): (impl Into<String>, impl Into<String>),
        (requested_by, requested_role): (impl Into<String>, impl Into<String>),
        requested_at: Timestamp,
        deadline: Timestamp,
    ) -> CheckRow {
        CheckRow {
            check_id: check_id.into(),
            site: site.into(),
            device: device.into(),
            requested_by: requested_by.into(),
            requested_role: requested_role.into(),
            requested_at,
            deadline,
            status: CheckStatus::Requested,
            verdict: None,
            refusal: None,
            confidence: None,
            detail: None,
            figures: None,
            event_id: None,
            answered_at: None,
            late: false,
        }
    }
}

/// The answer to a camera check, carried by the event `event_id` of the same batch.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckAnswer {
    pub check_id: String,
    pub event_id: Uuid,
    pub received_at: Timestamp,
    pub verdict: String,
    pub refusal: Option<String>,
    pub confidence: f64,
    pub detail: Option<String>,
    pub figures: serde_json::Value,
    pub late: bool,
}

/// One line of the audit log, to append.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub at: Timestamp,
    /// The principal's name.
    pub actor: String,
    pub role: String,
    /// What happened, e.g. `snapshot_viewed`, `snapshot_refused_role`.
    pub action: String,
    pub check_id: Option<String>,
    pub device: Option<String>,
    /// E.g. `view_span_s=30`.
    pub detail: Option<String>,
}

/// One stored line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    pub id: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
    /// [`audit_hash`] of this line and the one before; `None` only in a damaged database.
    pub hash: Option<String>,
}

/// The "previous hash" of the first line of the audit log.
pub const AUDIT_GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of audit line `id`: SHA-256 (hex) over the previous line's hash and this line's
/// fields as a JSON array (`[id, at µs, actor, role, action, check_id, device, detail]`).
/// Changing any field of any line, or removing a line, changes every hash after it.
pub fn audit_hash(previous: &str, id: i64, e: &AuditEntry) -> String {
    use sha2::{Digest, Sha256};
    let fields = serde_json::json!([
        id,
        e.at.as_microsecond(),
        e.actor,
        e.role,
        e.action,
        e.check_id,
        e.device,
        e.detail
    ]);
    let mut hasher = Sha256::new();
    hasher.update(previous.as_bytes());
    hasher.update(b"\n");
    hasher.update(fields.to_string().as_bytes());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What checking the audit log's hash chain found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AuditVerdict {
    /// Every line is as written. `head` is the newest line's hash: lines cut off the end
    /// leave the chain intact, so compare `head` and `entries` with an earlier export.
    Intact { entries: u64, head: String },
    /// The first line that is not as written (or the first after a removed line).
    Broken { entries_checked: u64, at: i64, reason: String },
}

/// Checks audit lines fed to it in id order (see [`audit_hash`]).
pub struct AuditChain {
    last_id: i64,
    head: String,
    entries: u64,
}

impl Default for AuditChain {
    fn default() -> Self {
        AuditChain { last_id: 0, head: AUDIT_GENESIS.to_string(), entries: 0 }
    }
}

impl AuditChain {
    /// Takes the next line; on a broken link, the verdict naming it.
    pub fn feed(&mut self, row: &AuditRow) -> Result<(), AuditVerdict> {
        let broken = |reason: String| AuditVerdict::Broken { entries_checked: self.entries, at: row.id, reason };
        if row.id != self.last_id + 1 {
            return Err(broken(format!("lines {} to {} are missing", self.last_id + 1, row.id - 1)));
        }
        let expected = audit_hash(&self.head, row.id, &row.entry);
        match &row.hash {
            Some(hash) if *hash == expected => {}
            Some(_) => return Err(broken("the line was changed after it was written (its hash does not match)".into())),
            None => return Err(broken("the line has no hash".into())),
        }
        self.last_id = row.id;
        self.head = expected;
        self.entries += 1;
        Ok(())
    }

    pub fn finish(self) -> AuditVerdict {
        AuditVerdict::Intact { entries: self.entries, head: self.head }
    }
}

/// Everything one group commit writes, in one transaction.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    pub events: Vec<EventRow>,
    pub rejects: Vec<RejectRow>,
    /// Device rows to upsert as they are after this batch (presence decides `online` etc.).
    pub devices: Vec<DeviceRow>,
    /// Alarms to open: (device, site, raised_at).
    pub raise_alarms: Vec<(String, String, Timestamp)>,
    /// Open `supervision_lost` alarms of these devices to close at the given time.
    pub clear_alarms: Vec<(String, Timestamp)>,
    /// Camera checks answered by events of this batch; applied only to checks not yet
    /// answered (the first answer wins).
    pub check_answers: Vec<CheckAnswer>,
    /// Camera checks whose deadline passed: marked `no_answer` if still `requested` (after
    /// the answers above, so an answer in the same batch wins).
    pub checks_unanswered: Vec<String>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.rejects.is_empty()
            && self.devices.is_empty()
            && self.raise_alarms.is_empty()
            && self.clear_alarms.is_empty()
            && self.check_answers.is_empty()
            && self.checks_unanswered.is_empty()
    }
}

/// What a commit did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Committed {
    /// For each of `batch.events`, in order: whether it was new.
    pub events: Vec<Inserted>,
    /// The checks of `batch.check_answers` that this commit answered.
    pub answered: Vec<String>,
    /// The checks of `batch.checks_unanswered` that this commit marked `no_answer`.
    pub unanswered: Vec<String>,
}

/// Whether an event was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New,
    Duplicate,
}

/// The kind of alarm raised when a device goes silent.
pub const SUPERVISION_LOST: &str = "supervision_lost";

/// Care plans and rounds are in [`RoundStore`], console accounts in [`UserStore`], alarm
/// handling and device registrations in [`HandlingStore`], device certificates in
/// [`CertStore`]; every store implements all four.
pub trait Store: RoundStore + UserStore + HandlingStore + CertStore + LeaseStore + Send {
    /// Writes the batch in one transaction and says what it did. Returns only after the
    /// commit is durable.
    fn commit(&mut self, batch: &WriteBatch) -> Result<Committed, StoreError>;
    fn devices(&self) -> Result<Vec<DeviceRow>, StoreError>;
    fn device(&self, id: &str) -> Result<Option<DeviceRow>, StoreError>;
    /// Newest first; with `device`, that device's events by `seq` descending.
    fn events(&self, device: Option<&str>, limit: usize) -> Result<Vec<EventRow>, StoreError>;
    /// Newest first.
    fn rejects(&self, limit: usize) -> Result<Vec<RejectRow>, StoreError>;
    /// Newest first.
    fn alarms(&self, limit: usize) -> Result<Vec<AlarmRow>, StoreError>;
    /// A cheap query proving the database answers.
    fn ping(&self) -> Result<(), StoreError>;
    fn check(&self, check_id: &str) -> Result<Option<CheckRow>, StoreError>;
    /// Checks still `requested`, oldest deadline first.
    fn open_checks(&self) -> Result<Vec<CheckRow>, StoreError>;
    /// Stores a new check and the audit line of whoever asked for it, in one transaction.
    fn open_check(&mut self, check: &CheckRow, audit: &AuditEntry) -> Result<(), StoreError>;
    /// Appends one audit line; returns only after it is durable.
    fn append_audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// Newest first.
    fn audit(&self, limit: usize) -> Result<Vec<AuditRow>, StoreError>;
    /// Checks the whole audit log's hash chain, oldest line first.
    fn verify_audit(&self) -> Result<AuditVerdict, StoreError>;
}
