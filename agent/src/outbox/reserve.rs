//! Disk space held back for alarms.
//!
//! A full disk (a runaway log, another program, the outbox itself after days offline) must not
//! stop alarms. SQLite needs free space for every commit: its WAL grows by whole pages. So the
//! outbox keeps a file of `bytes` zeros beside its database, `outbox.db.reserve`, written for
//! real (not sparse) and fsynced. When a commit fails because the disk is full, the outbox
//! deletes this file, which hands its space back to the file system, and goes *alarms only*:
//! it commits the alarms of the failed batch again in the freed space and drops every info and
//! warning at the door (ERROR log, `dropped_disk_full` counter, and an `outbox_overflow`
//! report to the hub, itself admitted like an alarm). Every [`RESTORE_INTERVAL`] it tries to
//! write the reserve again; once that succeeds there is room again and every event is
//! accepted as before.
//!
//! Sizing: one transaction costs about two to three WAL pages (4 KiB each) whatever the size
//! of its events, so the default of 4 MiB holds several hundred alarm commits, more than a
//! night of alarms; group commit shares the cost in a burst.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a spent reserve is written again to find out whether there is room again.
pub const RESTORE_INTERVAL: Duration = Duration::from_secs(5);

/// Default reserve: 4 MiB.
pub const DEFAULT_RESERVE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct Reserve {
    path: PathBuf,
    bytes: u64,
    spent: bool,
    last_try: Option<Instant>,
}

impl Reserve {
    /// The reserve beside `db`; written now if it is not there yet. If it cannot be written,
    /// the disk is already full and the reserve starts out spent.
    pub fn open(db: &Path, bytes: u64) -> (Reserve, Option<io::Error>) {
        let mut name = db.as_os_str().to_owned();
        name.push(".reserve");
        let mut reserve = Reserve { path: PathBuf::from(name), bytes, spent: false, last_try: None };
        if bytes == 0 {
            let _ = std::fs::remove_file(&reserve.path);
            return (reserve, None);
        }
        let error = reserve.fill().err();
        reserve.spent = error.is_some();
        (reserve, error)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether the outbox is alarms only: the reserve was given up for a full disk.
    pub fn is_spent(&self) -> bool {
        self.spent
    }

    /// Gives the reserve's space back to the file system and goes alarms only. Returns whether
    /// any space was freed (false without a reserve, or when it was already spent).
    pub fn spend(&mut self, now: Instant) -> bool {
        let was_there = !self.spent && self.bytes > 0;
        self.spent = true;
        self.last_try = Some(now);
        was_there && std::fs::remove_file(&self.path).is_ok()
    }

    /// When spent and [`RESTORE_INTERVAL`] has passed, writes the reserve again. Returns true
    /// when it is back (there is room again).
    pub fn try_restore(&mut self, now: Instant) -> bool {
        if !self.spent || self.last_try.is_some_and(|t| now.duration_since(t) < RESTORE_INTERVAL) {
            return false;
        }
        self.last_try = Some(now);
        if self.bytes > 0 && self.fill().is_err() {
            return false;
        }
        self.spent = false;
        true
    }

    /// Writes `bytes` zeros and fsyncs them; removes the file again if that fails.
    fn fill(&self) -> io::Result<()> {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() == self.bytes) {
            return Ok(());
        }
        let result = (|| {
            let mut file = std::fs::File::create(&self.path)?;
            let chunk = vec![0u8; 64 * 1024];
            let mut left = self.bytes;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                file.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            file.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&self.path);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_written_spent_and_restored() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("outbox.db");
        let (mut r, error) = Reserve::open(&db, 100_000);
        assert!(error.is_none() && !r.is_spent());
        let file = dir.path().join("outbox.db.reserve");
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 100_000);
        let now = Instant::now();
        assert!(r.spend(now), "space freed");
        assert!(!file.exists() && r.is_spent());
        assert!(!r.spend(now), "nothing more to free");
        assert!(!r.try_restore(now + RESTORE_INTERVAL / 2), "not before the interval");
        assert!(r.try_restore(now + RESTORE_INTERVAL));
        assert!(!r.is_spent() && file.exists());
    }

    #[test]
    fn without_a_reserve_a_full_disk_still_goes_alarms_only() {
        let dir = tempfile::tempdir().unwrap();
        let (mut r, _) = Reserve::open(&dir.path().join("outbox.db"), 0);
        assert!(!r.spend(Instant::now()));
        assert!(r.is_spent());
    }
}
