//! Leases (schema 10): named, time-limited claims that several hubs on one database take and
//! renew, so exactly one of them runs a singleton job (the round scheduler, supervision alarms,
//! camera-check deadlines; see `crate::leader`).
//!
//! Semantics of [`LeaseStore::try_lease`] (the PostgreSQL store must keep them exactly):
//! - one atomic statement (a conditional UPSERT) per call: the row `name` is created for
//!   `holder`, or taken over when it has expired (`expires_at <= now`), or renewed when
//!   `holder` already holds it; otherwise it is left as it is;
//! - taking it over from another holder increments `term` and sets `since = now`; a renewal
//!   (or the same holder coming back after a restart) keeps both;
//! - the row as it is after the statement is returned, so the caller sees who holds it;
//! - `now` is the caller's clock: hubs must keep their clocks in step (NTP). A stale holder
//!   cannot renew once another has taken the lease over (its `holder` no longer matches).
//!
//! [`LeaseStore::release_lease`] expires the lease at once if `holder` holds it (a hub
//! stopping cleanly), so another hub takes over at its next attempt instead of after the TTL.

use super::{SqliteStore, StoreError};
use jiff::Timestamp;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use std::time::Duration;

pub(super) const SCHEMA_V10: &str = "
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    since      INTEGER NOT NULL,
    term       INTEGER NOT NULL
);
";

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub expires_at: Timestamp,
    /// When the current holder took it.
    pub since: Timestamp,
    /// How many times it changed hands (1 for the first holder).
    pub term: i64,
}

pub trait LeaseStore: Send {
    /// Takes or renews `name` for `holder` until `now + ttl` if it is free, expired or held by
    /// `holder`; returns the lease as it is now (held by `holder` or by someone else).
    fn try_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Lease, StoreError>;
    /// Expires `name` at once if `holder` holds it; whether it did.
    fn release_lease(&mut self, name: &str, holder: &str) -> Result<bool, StoreError>;
    /// The lease as stored, if it was ever taken.
    fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError>;
}

fn lease_from_row(r: &rusqlite::Row<'_>) -> Result<Lease, rusqlite::Error> {
    let ts = |i: usize| -> Result<Timestamp, rusqlite::Error> {
        let us: i64 = r.get(i)?;
        Timestamp::from_microsecond(us).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                i,
                rusqlite::types::Type::Integer,
                Box::new(e),
            )
        })
    };
    Ok(Lease {
        name: r.get(0)?,
        holder: r.get(1)?,
        expires_at: ts(2)?,
        since: ts(3)?,
        term: r.get(4)?,
    })
}

impl LeaseStore for SqliteStore {
    fn try_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Lease, StoreError> {
        let ttl = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
        let now_us = now.as_microsecond();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO leases (name, holder, expires_at, since, term) VALUES (?1, ?2, ?3, ?4, 1)
             ON CONFLICT (name) DO UPDATE SET
               holder = excluded.holder,
               expires_at = excluded.expires_at,
               since = CASE WHEN leases.holder = excluded.holder THEN leases.since ELSE excluded.since END,
               term = CASE WHEN leases.holder = excluded.holder THEN leases.term ELSE leases.term + 1 END
             WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.since",
            params![name, holder, now_us.saturating_add(ttl), now_us],
        )?;
        let lease = tx.query_row(
            "SELECT name, holder, expires_at, since, term FROM leases WHERE name = ?1",
            [name],
            lease_from_row,
        )?;
        tx.commit()?;
        Ok(lease)
    }

    fn release_lease(&mut self, name: &str, holder: &str) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE leases SET expires_at = 0 WHERE name = ?1 AND holder = ?2",
            params![name, holder],
        )?;
        Ok(n > 0)
    }

    fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT name, holder, expires_at, since, term FROM leases WHERE name = ?1",
                [name],
                lease_from_row,
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::engines::on_both_engines;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    const TTL: Duration = Duration::from_secs(15);

    on_both_engines! {
    fn only_one_holder_at_a_time_and_an_expired_lease_changes_hands_with_a_new_term(db: &TestDb) {
        let (mut a, mut b) = (db.open(), db.open());
        let first = a.try_lease("rounds", "hub-a", at(0), TTL).unwrap();
        assert_eq!(
            (first.holder.as_str(), first.term, first.expires_at),
            ("hub-a", 1, at(15))
        );
        let refused = b.try_lease("rounds", "hub-b", at(5), TTL).unwrap();
        assert_eq!(refused, first, "hub-b must not take a live lease");
        let renewed = a.try_lease("rounds", "hub-a", at(10), TTL).unwrap();
        assert_eq!(
            (renewed.expires_at, renewed.since, renewed.term),
            (at(25), at(0), 1)
        );
        assert_eq!(
            b.try_lease("rounds", "hub-b", at(24), TTL).unwrap().holder,
            "hub-a"
        );
        let taken = b.try_lease("rounds", "hub-b", at(25), TTL).unwrap();
        assert_eq!(
            (taken.holder.as_str(), taken.since, taken.term),
            ("hub-b", at(25), 2)
        );
        let stale = a.try_lease("rounds", "hub-a", at(26), TTL).unwrap();
        assert_eq!(
            stale.holder, "hub-b",
            "the old holder cannot renew a lease taken over"
        );
        assert_eq!(a.lease("rounds").unwrap(), Some(taken));
        assert_eq!(a.lease("other").unwrap(), None);
    }

    fn a_released_lease_is_free_at_once_but_only_its_holder_can_release_it(db: &TestDb) {
        let mut s = db.open();
        s.try_lease("rounds", "hub-a", at(0), TTL).unwrap();
        assert!(!s.release_lease("rounds", "hub-b").unwrap());
        assert_eq!(
            s.try_lease("rounds", "hub-b", at(1), TTL).unwrap().holder,
            "hub-a"
        );
        assert!(s.release_lease("rounds", "hub-a").unwrap());
        assert_eq!(
            s.try_lease("rounds", "hub-b", at(1), TTL).unwrap().holder,
            "hub-b"
        );
    }

    fn hubs_racing_for_a_free_lease_all_see_the_same_single_winner(db: &TestDb) {
        let stores: Vec<_> = (0..6).map(|_| db.open()).collect();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(stores.len()));
        let seen: Vec<Lease> = std::thread::scope(|scope| {
            let racers: Vec<_> = stores
                .into_iter()
                .enumerate()
                .map(|(i, mut store)| {
                    let barrier = barrier.clone();
                    scope.spawn(move || {
                        barrier.wait();
                        store.try_lease("rounds", &format!("hub-{i}"), at(0), TTL).unwrap()
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let winner = &seen[0];
        assert!(seen.iter().all(|l| l == winner), "every racer reads back the one winner: {seen:?}");
        assert_eq!(winner.term, 1);
        assert_eq!(db.open().lease("rounds").unwrap().as_ref(), Some(winner));
    }
    }
}
