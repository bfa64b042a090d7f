//! The hub's durable store: devices, events, rejected payloads and supervision alarms.
//!
//! [`Store`] is the interface the rest of the hub uses; [`SqliteStore`] implements it today
//! and a PostgreSQL backend will later. The trait is synchronous: the ingest writer runs it on
//! a blocking thread, the HTTP API through `spawn_blocking`.
//!
//! Durability promise: [`Store::commit`] returns only after its whole [`WriteBatch`] is
//! committed in one transaction and fsynced (SQLite WAL with `synchronous=FULL`). The hub acks
//! events to devices only after `commit` returned `Ok`. Events are keyed by their UUIDv7 id, so
//! writing the same event twice stores one row and reports a [`Inserted::Duplicate`].

mod sqlite;

pub use sqlite::SqliteStore;

use jiff::Timestamp;
use serde::Serialize;
use thiserror::Error;
use uuid::Uuid;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database schema version {found} is newer than this hub understands ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
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
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.rejects.is_empty()
            && self.devices.is_empty()
            && self.raise_alarms.is_empty()
            && self.clear_alarms.is_empty()
    }
}

/// Whether an event was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New,
    Duplicate,
}

/// The kind of alarm raised when a device goes silent.
pub const SUPERVISION_LOST: &str = "supervision_lost";

pub trait Store: Send {
    /// Writes the batch in one transaction and returns, for each of `batch.events` in order,
    /// whether it was new. Returns only after the commit is durable.
    fn commit(&mut self, batch: &WriteBatch) -> Result<Vec<Inserted>, StoreError>;
    fn devices(&self) -> Result<Vec<DeviceRow>, StoreError>;
    /// Newest first; with `device`, that device's events by `seq` descending.
    fn events(&self, device: Option<&str>, limit: usize) -> Result<Vec<EventRow>, StoreError>;
    /// Newest first.
    fn rejects(&self, limit: usize) -> Result<Vec<RejectRow>, StoreError>;
    /// Newest first.
    fn alarms(&self, limit: usize) -> Result<Vec<AlarmRow>, StoreError>;
    /// A cheap query proving the database answers.
    fn ping(&self) -> Result<(), StoreError>;
}
