//! The outbox's SQLite file: pending events and the next sequence number.
//!
//! Durability promise: [`Batch::commit`] returns only after SQLite has committed the
//! transaction with `synchronous = FULL` in WAL mode, i.e. after the WAL has been fsynced. An
//! event inserted in a committed batch survives a crash or a power cut. The next sequence
//! number lives in the same file and is written in the same transaction as the events that
//! consumed it, so seqs never repeat and never skip for accepted events, across restarts.
//!
//! Schema (version 1):
//! - `meta(id = 1, next_seq)`: one row;
//! - `events(seq PRIMARY KEY, id, severity, payload)`: the encoded envelope exactly as it is
//!   published, so a resend is byte-identical to the first send;
//! - `state(key PRIMARY KEY, value)`: the small state of on-device decisions (dose grace
//!   timers, geofence and alarm state), written in the same transaction as the events those
//!   decisions raise, so that after a crash the state and the outbox always agree: a raised
//!   `dose_missed` is never raised twice, and a pending grace timer is never forgotten.
//!
//! # What `max_bytes` bounds
//! The cap is for what is on disk: the database file plus its WAL (not the alarm reserve,
//! [`super::reserve`], which is configured on its own). [`DiskBudget`] splits it: the WAL may
//! grow to [`DiskBudget::wal_bytes`] before [`Store::limit_wal`] checkpoints it and truncates
//! it to zero; the rest holds the schema's pages ([`FIXED_BYTES`]) and the events, each
//! counted at its payload plus [`ROW_OVERHEAD`]. Counting is an estimate (rows of evicted
//! events can leave pages partly filled), so the shell also measures the pages in use
//! ([`Store::used_bytes`]) after each commit and evicts more when they pass the budget.
//!
//! A power cut during a commit leaves a torn tail in the WAL, which SQLite's recovery drops
//! (it was never committed, so no accepted event is in it). [`Store::open`] reads the WAL
//! first ([`super::wal`]) so that such a tail is reported rather than silently dropped.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use super::wal::{self, WalTail};
use vaka_protocol::Severity;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot create the outbox directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("outbox database {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("outbox database {path} holds an event with unknown severity {value} at seq {seq}")]
    Corrupt { path: PathBuf, seq: u64, value: i64 },
}

impl StoreError {
    /// Whether SQLite found the file system full.
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite { source: rusqlite::Error::SqliteFailure(e, _), .. }
                if e.code == rusqlite::ErrorCode::DiskFull
        )
    }
}

/// One pending event as stored, without its payload (read it with [`Store::payload`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    pub severity: Severity,
    /// Payload bytes.
    pub len: u64,
}

/// What one event's row costs on disk beyond its payload: the id as text (36 bytes), the
/// record and cell headers, the cell pointer, and a share of the b-tree's interior pages and
/// page headers. Measured for this schema with payloads of 100–300 bytes (see the test
/// `outbox_file_and_wal_stay_within_max_bytes_when_filled_far_past_it`).
pub const ROW_OVERHEAD: u64 = 64;

/// The pages every outbox file has whatever it holds: the schema, `meta`, the roots of
/// `events` and `state`, the index of `state`, and room for the small state rows.
pub const FIXED_BYTES: u64 = 8 * 4096;

/// Smallest and largest WAL allowance.
const MIN_WAL_BYTES: u64 = 16 * 1024;
const MAX_WAL_BYTES: u64 = 4 * 1024 * 1024;

/// How `max_bytes` (database file plus WAL) is shared out; see the module note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskBudget {
    /// The cap: database file plus WAL.
    pub max_bytes: u64,
    /// The WAL is checkpointed and truncated once it passes this.
    pub wal_bytes: u64,
}

impl DiskBudget {
    pub fn new(max_bytes: u64) -> DiskBudget {
        DiskBudget { max_bytes, wal_bytes: (max_bytes / 16).clamp(MIN_WAL_BYTES, MAX_WAL_BYTES) }
    }

    /// What the database file's pages in use may take.
    pub fn file_bytes(&self) -> u64 {
        self.max_bytes.saturating_sub(self.wal_bytes)
    }

    /// What the events may take, counted at payload plus [`ROW_OVERHEAD`] each.
    pub fn event_bytes(&self) -> u64 {
        self.file_bytes().saturating_sub(FIXED_BYTES)
    }

    /// The cap that leaves `event_bytes` for events, for small outboxes (up to 256 KiB, where
    /// the WAL gets its smallest share): tests with a few events.
    pub fn for_event_bytes(event_bytes: u64) -> DiskBudget {
        DiskBudget::new(event_bytes + FIXED_BYTES + MIN_WAL_BYTES)
    }
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    wal_at_open: WalTail,
}

fn severity_code(s: Severity) -> i64 {
    match s {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Alarm => 2,
    }
}

fn severity_from_code(code: i64) -> Option<Severity> {
    Some(match code {
        0 => Severity::Info,
        1 => Severity::Warning,
        2 => Severity::Alarm,
        _ => return None,
    })
}

impl Store {
    /// Opens (or creates) the outbox file and its parent directory.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::CreateDir { path: dir.to_path_buf(), source })?;
        }
        let err = |source| StoreError::Sqlite { path: path.to_path_buf(), source };
        let wal_at_open = inspect_wal(path);
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        // A small page cache: the outbox is read once at start and then mostly appended to,
        // and the agent must stay small on the device (goal: idle RSS <= 8 MB).
        conn.pragma_update(None, "cache_size", -256).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 next_seq INTEGER NOT NULL
             );
             INSERT OR IGNORE INTO meta (id, next_seq) VALUES (1, 1);
             CREATE TABLE IF NOT EXISTS events (
                 seq INTEGER PRIMARY KEY,
                 id TEXT NOT NULL,
                 severity INTEGER NOT NULL,
                 payload BLOB NOT NULL
             );
             CREATE TABLE IF NOT EXISTS state (
                 key TEXT PRIMARY KEY,
                 value BLOB NOT NULL
             );",
        )
        .map_err(err)?;
        Ok(Store { conn, path: path.to_path_buf(), wal_at_open })
    }

    /// What the WAL held when the file was opened: committed frames, and what recovery
    /// dropped of a write a crash cut short.
    pub fn wal_at_open(&self) -> WalTail {
        self.wal_at_open
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite { path: self.path.clone(), source }
    }

    /// The next sequence number to assign and every pending event (without payloads), in seq
    /// order.
    pub fn load(&self) -> Result<(u64, Vec<StoredEvent>), StoreError> {
        let next_seq: i64 = self
            .conn
            .query_row("SELECT next_seq FROM meta WHERE id = 1", [], |r| r.get(0))
            .optional()
            .map_err(self.err())?
            .unwrap_or(1);
        let mut stmt = self
            .conn
            .prepare("SELECT seq, severity, length(payload) FROM events ORDER BY seq")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
            .map_err(self.err())?;
        let mut events = Vec::new();
        for row in rows {
            let (seq, code, len) = row.map_err(self.err())?;
            let seq = seq.max(0) as u64;
            let severity = severity_from_code(code).ok_or_else(|| StoreError::Corrupt {
                path: self.path.clone(),
                seq,
                value: code,
            })?;
            events.push(StoredEvent { seq, severity, len: len.max(0) as u64 });
        }
        // A seq counter behind a stored event would hand out a seq twice; never trust it over
        // the events themselves.
        let after_last = events.last().map_or(1, |e| e.seq + 1);
        Ok(((next_seq.max(1) as u64).max(after_last), events))
    }

    /// The payload of the pending event `seq`, exactly as first encoded.
    pub fn payload(&self, seq: u64) -> Result<Option<Arc<[u8]>>, StoreError> {
        self.conn
            .prepare_cached("SELECT payload FROM events WHERE seq = ?1")
            .and_then(|mut s| {
                s.query_row(params![seq as i64], |r| r.get::<_, Vec<u8>>(0)).optional()
            })
            .map(|p| p.map(Arc::from))
            .map_err(self.err())
    }

    /// Bytes of the database file's pages in use (not on the free list), as they will be
    /// once the WAL is checkpointed. The file never shrinks, but a free page is used again
    /// before the file grows.
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        let pragma = |name: &str| {
            self.conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0)).map_err(self.err())
        };
        let (pages, free, size) =
            (pragma("page_count")?, pragma("freelist_count")?, pragma("page_size")?);
        Ok((pages - free).max(0) as u64 * size.max(0) as u64)
    }

    /// Bytes of the database file and of its WAL on disk now.
    pub fn file_sizes(&self) -> (u64, u64) {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        (size(&self.path), size(&wal_path(&self.path)))
    }

    /// Keeps the WAL within `limit` bytes: SQLite truncates it to `limit` when it starts
    /// over, and once it is larger it is checkpointed into the database and truncated now.
    pub fn limit_wal(&mut self, limit: u64) -> Result<(), StoreError> {
        let (_, wal) = self.file_sizes();
        if wal > limit {
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(self.err())?;
        }
        Ok(())
    }

    /// Sets SQLite's own WAL limit (`journal_size_limit`) and checkpoints at half of it.
    pub fn set_wal_limit(&mut self, limit: u64) -> Result<(), StoreError> {
        let limit = limit.min(i64::MAX as u64) as i64;
        self.conn.pragma_update(None, "journal_size_limit", limit).map_err(self.err())?;
        let pages = (limit / 2 / 4096).max(1);
        self.conn.pragma_update(None, "wal_autocheckpoint", pages).map_err(self.err())?;
        Ok(())
    }

    /// The stored state under `key`, if any (see the module note).
    pub fn state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row("SELECT value FROM state WHERE key = ?1", params![key], |r| r.get(0))
            .optional()
            .map_err(self.err())
    }

    /// Starts a write transaction. Nothing is durable until [`Batch::commit`].
    pub fn batch(&mut self) -> Result<Batch<'_>, StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|source| StoreError::Sqlite { path: path.clone(), source })?;
        Ok(Batch { tx, path })
    }

    /// Deletes acked events. Not fsync-critical: an ack lost in a crash only means the event
    /// is sent again and the hub recognises it by id.
    pub fn delete(&mut self, seqs: &[u64]) -> Result<(), StoreError> {
        let mut batch = self.batch()?;
        batch.delete(seqs)?;
        batch.commit()
    }
}

/// Reads `<path>-wal` if there is one. A WAL that cannot be read is SQLite's to judge: the
/// report then says nothing was found.
fn inspect_wal(path: &Path) -> WalTail {
    match std::fs::File::open(wal_path(path)) {
        Ok(file) => wal::inspect(std::io::BufReader::new(file)).unwrap_or_default(),
        Err(_) => WalTail::default(),
    }
}

fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

pub struct Batch<'a> {
    tx: Transaction<'a>,
    path: PathBuf,
}

impl Batch<'_> {
    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite { path: self.path.clone(), source }
    }

    pub fn insert(
        &mut self,
        seq: u64,
        id: &uuid::Uuid,
        severity: Severity,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO events (seq, id, severity, payload) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| {
                s.execute(params![seq as i64, id.to_string(), severity_code(severity), payload])
            })
            .map_err(self.err())?;
        Ok(())
    }

    pub fn delete(&mut self, seqs: &[u64]) -> Result<(), StoreError> {
        let mut stmt =
            self.tx.prepare_cached("DELETE FROM events WHERE seq = ?1").map_err(self.err())?;
        for seq in seqs {
            stmt.execute(params![*seq as i64]).map_err(self.err())?;
        }
        Ok(())
    }

    pub fn set_next_seq(&mut self, next_seq: u64) -> Result<(), StoreError> {
        self.tx
            .execute("UPDATE meta SET next_seq = ?1 WHERE id = 1", params![next_seq as i64])
            .map_err(self.err())?;
        Ok(())
    }

    /// Replaces the state under `key`; durable with the rest of the batch.
    pub fn put_state(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("INSERT OR REPLACE INTO state (key, value) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![key, value]))
            .map_err(self.err())?;
        Ok(())
    }

    /// Commits; returns only once the transaction is durable (see the module note).
    pub fn commit(self) -> Result<(), StoreError> {
        let path = self.path;
        self.tx.commit().map_err(|source| StoreError::Sqlite { path, source })
    }
}
