//! Leader election through the database: of several hubs on one database, exactly one runs
//! the singleton jobs at a time.
//!
//! Leader-only: the round scheduler's ticks (`rounds::engine::run`), raising
//! `supervision_lost` alarms and marking camera checks `no_answer` at their deadline (the
//! writer's ticks). Everything else runs on every hub: ingest (each hub commits and acks what
//! the broker gave it), clearing a `supervision_lost` alarm when the device is heard (whichever
//! hub hears it), the console and its API, the CRL file beside each hub.
//!
//! How: a lease row ([`crate::store::LeaseStore`], name [`LEASE`], holder = the hub's MQTT
//! client id, which is unique per hub) is taken or renewed every [`RENEW`] with a TTL of
//! [`TTL`]. A hub counts itself leader until `asked_at + TTL - SAFETY`, measured on its own
//! monotonic clock from the moment *before* it asked, so it stops before the database lets
//! anyone else in (clock steps do not matter to the holder; the database compares wall
//! clocks, which must agree within `SAFETY`). When the leader dies, another hub takes the
//! lease at its first attempt after the expiry: within `TTL + RENEW` = 18 s. A hub stopping
//! cleanly releases the lease, so the other takes over within `RENEW`.
//!
//! Stale leader: the round ticker asks [`Leadership::may_start`] before every tick, which wants
//! at least [`TICK_MARGIN`] of the lease left, so a tick starts only when it can finish inside
//! the lease; a tick that still outlasts it is logged at WARN. A hub whose database is away
//! cannot renew and steps down when its lease runs out. The round's state is in the database
//! and every outcome is a conditional write there, so a new leader resumes where the old one
//! stopped (`rounds::engine`).
//!
//! Transitions are logged (INFO: became leader; WARN: lost the lease) and shown in
//! `/api/v1/status` under `leader`.

use crate::store::{Lease, LeaseStore};
use jiff::Timestamp;
use serde::Serialize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{info, warn};

/// The lease's name in the database.
pub const LEASE: &str = "scheduler";
/// How long a lease lasts without renewal.
pub const TTL: Duration = Duration::from_secs(15);
/// How often the lease is taken or renewed.
pub const RENEW: Duration = Duration::from_secs(3);
/// The holder stops counting itself leader this long before the lease runs out.
pub const SAFETY: Duration = Duration::from_secs(2);
/// A tick starts only with this much lease left.
pub const TICK_MARGIN: Duration = Duration::from_secs(5);

/// The hub's view of the lease, shared by the renewing task, the writer and the round ticker.
#[derive(Clone)]
pub struct Leadership {
    me: String,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Until when this hub counts itself leader (its own monotonic clock).
    until: Option<Instant>,
    /// The lease as last read.
    seen: Option<Lease>,
    /// How many times this hub became leader.
    terms_won: u64,
    error: Option<String>,
}

/// What changed at an attempt to take or renew the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Became { term: i64 },
    Lost { to: Option<String> },
}

/// `GET /api/v1/status` → `leader`.
#[derive(Debug, Clone, Serialize)]
pub struct LeaderStatus {
    /// This hub's holder name (its MQTT client id).
    pub me: String,
    pub is_leader: bool,
    /// Who holds the lease, as last read.
    pub holder: Option<String>,
    pub term: Option<i64>,
    pub since: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub terms_won: u64,
    pub error: Option<String>,
}

impl Leadership {
    pub fn new(me: impl Into<String>) -> Leadership {
        Leadership {
            me: me.into(),
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How much of this hub's lease is left (zero when it is not the leader).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.lock()
            .until
            .map_or(Duration::ZERO, |u| u.saturating_duration_since(now))
    }

    pub fn is_leader(&self) -> bool {
        !self.remaining(Instant::now()).is_zero()
    }

    /// Whether a tick may start now: leader with at least [`TICK_MARGIN`] left.
    pub fn may_start(&self) -> bool {
        self.remaining(Instant::now()) >= TICK_MARGIN
    }

    /// Takes in the result of an attempt started at `asked_at`; the transition, if any.
    pub fn observe(&self, asked_at: Instant, result: Result<Lease, String>) -> Option<Transition> {
        let mut s = self.lock();
        let was = s.until.is_some_and(|u| u > asked_at);
        match result {
            Ok(lease) => {
                s.error = None;
                let mine = lease.holder == self.me;
                s.until = mine.then(|| asked_at + TTL.saturating_sub(SAFETY));
                let term = lease.term;
                let to = (!mine).then(|| lease.holder.clone());
                s.seen = Some(lease);
                match (was, mine) {
                    (false, true) => {
                        s.terms_won += 1;
                        Some(Transition::Became { term })
                    }
                    (true, false) => Some(Transition::Lost { to }),
                    _ => None,
                }
            }
            Err(e) => {
                // Keep what we had: the lease may still be ours until it runs out.
                s.error = Some(e);
                let still = s.until.is_some_and(|u| u > Instant::now());
                if was && !still {
                    s.until = None;
                    Some(Transition::Lost { to: None })
                } else {
                    None
                }
            }
        }
    }

    /// Gives up the lease (the caller then releases it in the database).
    fn step_down(&self) {
        self.lock().until = None;
    }

    pub fn status(&self) -> LeaderStatus {
        let is_leader = self.is_leader();
        let s = self.lock();
        LeaderStatus {
            me: self.me.clone(),
            is_leader,
            holder: s.seen.as_ref().map(|l| l.holder.clone()),
            term: s.seen.as_ref().map(|l| l.term),
            since: s.seen.as_ref().map(|l| l.since),
            expires_at: s.seen.as_ref().map(|l| l.expires_at),
            terms_won: s.terms_won,
            error: s.error.clone(),
        }
    }
}

/// Takes or renews the lease every [`RENEW`] until shutdown; then releases it if held.
pub async fn run(
    leadership: Leadership,
    store: Box<dyn LeaseStore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let store = Arc::new(Mutex::new(store));
    let mut interval = tokio::time::interval(RENEW);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            _ = interval.tick() => {}
        }
        let asked_at = Instant::now();
        let me = leadership.me.clone();
        let s = store.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut s = s.lock().unwrap_or_else(PoisonError::into_inner);
            s.try_lease(LEASE, &me, Timestamp::now(), TTL)
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        if let Err(e) = &result {
            warn!(error = %e, "Could not take or renew the scheduler lease");
        }
        let previous = leadership.lock().seen.as_ref().map(|l| l.holder.clone());
        match leadership.observe(asked_at, result) {
            Some(Transition::Became { term }) => {
                info!(me = %leadership.me, term, previous = ?previous, "Became leader: this hub runs the round scheduler and supervision alarms")
            }
            Some(Transition::Lost { to }) => {
                warn!(me = %leadership.me, to = ?to, "Lost the scheduler lease: this hub stops running the round scheduler")
            }
            None => {}
        }
    }
    if leadership.is_leader() {
        leadership.step_down();
        let me = leadership.me.clone();
        let released = tokio::task::spawn_blocking(move || {
            let mut s = store.lock().unwrap_or_else(PoisonError::into_inner);
            s.release_lease(LEASE, &me)
        })
        .await;
        match released {
            Ok(Ok(_)) => info!(me = %leadership.me, "Released the scheduler lease"),
            Ok(Err(e)) => {
                warn!(error = %e, "Could not release the scheduler lease; another hub takes it when it runs out")
            }
            Err(e) => warn!(error = %e, "Could not release the scheduler lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, term: i64) -> Lease {
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        Lease {
            name: LEASE.into(),
            holder: holder.into(),
            expires_at: t,
            since: t,
            term,
        }
    }

    #[test]
    fn holding_the_lease_makes_a_leader_until_the_ttl_less_the_safety_margin() {
        let l = Leadership::new("hub-a");
        let asked = Instant::now();
        assert_eq!(
            l.observe(asked, Ok(lease("hub-a", 1))),
            Some(Transition::Became { term: 1 })
        );
        assert!(l.is_leader() && l.may_start());
        assert_eq!(l.remaining(asked), TTL - SAFETY);
        assert_eq!(l.remaining(asked + TTL - SAFETY), Duration::ZERO);
        assert_eq!(
            l.observe(Instant::now(), Ok(lease("hub-a", 1))),
            None,
            "a renewal is no transition"
        );
        assert_eq!(l.status().terms_won, 1);
    }

    #[test]
    fn another_holder_ends_leadership_and_a_store_error_keeps_it_only_until_it_runs_out() {
        let l = Leadership::new("hub-a");
        assert_eq!(l.observe(Instant::now(), Ok(lease("hub-b", 1))), None);
        assert!(!l.is_leader());
        assert_eq!(l.status().holder.as_deref(), Some("hub-b"));
        l.observe(Instant::now(), Ok(lease("hub-a", 2)));
        assert_eq!(
            l.observe(Instant::now(), Err("database is locked".into())),
            None,
            "the lease is still ours"
        );
        assert!(l.is_leader());
        assert_eq!(l.status().error.as_deref(), Some("database is locked"));
        assert_eq!(
            l.observe(Instant::now(), Ok(lease("hub-b", 3))),
            Some(Transition::Lost {
                to: Some("hub-b".into())
            })
        );
        assert!(!l.is_leader());
        // An old grant that already ran out is no leadership.
        let long_ago = Instant::now().checked_sub(TTL).unwrap();
        l.observe(long_ago, Ok(lease("hub-a", 4)));
        assert!(!l.is_leader() && !l.may_start());
    }
}
