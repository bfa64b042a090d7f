//! [`LeaseStore`] on PostgreSQL: the same semantics as SQLite's (`store/lease.rs`), one
//! conditional UPSERT per attempt. Under READ COMMITTED two hubs racing for a free or expired
//! lease both reach `ON CONFLICT`; PostgreSQL re-checks the `WHERE` of the second against the
//! row the first wrote, so only one of them takes it and both read back the winner.

use super::{micros, ts, PgStore};
use crate::store::{Lease, LeaseStore, StoreError};
use jiff::Timestamp;
use std::time::Duration;

const COLS: &str = "name, holder, expires_at, since, term";

fn lease(r: &postgres::Row) -> Result<Lease, StoreError> {
    Ok(Lease { name: r.try_get(0)?, holder: r.try_get(1)?, expires_at: ts(r.try_get(2)?)?, since: ts(r.try_get(3)?)?, term: r.try_get(4)? })
}

impl LeaseStore for PgStore {
    fn try_lease(&mut self, name: &str, holder: &str, now: Timestamp, ttl: Duration) -> Result<Lease, StoreError> {
        let ttl = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
        let now = micros(now);
        self.transaction(false, |tx| {
            tx.execute(
                "INSERT INTO leases (name, holder, expires_at, since, term) VALUES ($1, $2, $3, $4, 1)
                 ON CONFLICT (name) DO UPDATE SET
                   holder = excluded.holder,
                   expires_at = excluded.expires_at,
                   since = CASE WHEN leases.holder = excluded.holder THEN leases.since ELSE excluded.since END,
                   term = CASE WHEN leases.holder = excluded.holder THEN leases.term ELSE leases.term + 1 END
                 WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.since",
                &[&name, &holder, &now.saturating_add(ttl), &now],
            )?;
            lease(&tx.query_one(&format!("SELECT {COLS} FROM leases WHERE name = $1"), &[&name])?)
        })
    }

    fn release_lease(&mut self, name: &str, holder: &str) -> Result<bool, StoreError> {
        self.with(|c| Ok(c.execute("UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2", &[&name, &holder])? > 0))
    }

    fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        self.with(|c| c.query_opt(&format!("SELECT {COLS} FROM leases WHERE name = $1"), &[&name])?.as_ref().map(lease).transpose())
    }
}
