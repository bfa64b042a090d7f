//! The outbox: every device event waits here, on disk, until the hub says it has it.
//!
//! # Why it exists
//! Night supervision fails silently when an alarm "was sent" but never arrived. The outbox
//! makes the agent's side of the path honest: an event is either still in the outbox, or the
//! hub has acknowledged storing it (or explicitly refused it). Nothing in between.
//!
//! # The durability promise, in plain words
//! - [`Outbox::accept_batch`] (and the async [`OutboxHandle::accept`] in front of it) returns
//!   `Accepted { seq, id }` only after the event is committed to the SQLite file with
//!   `synchronous = FULL`, i.e. fsynced. That moment is when an event *counts as accepted*: a
//!   crash, `kill -9` or power cut afterwards does not lose it. The intake socket answers a
//!   producer only after this moment.
//! - An accepted event is deleted only when the hub's application ack
//!   ([`vaka_protocol::Ack`] on the device's `acks` topic) names its seq, as committed or as
//!   rejected. An MQTT PUBACK only means "the broker has it" and changes nothing here.
//! - Every accepted event gets the next per-device `seq` (1, 2, 3, … with no gaps among
//!   accepted events) and a fresh UUIDv7 `id`. The seq counter is stored in the same
//!   transaction as the event, so a restart neither repeats nor skips a seq.
//! - On start the outbox reloads every pending event and sends it again; the hub recognises
//!   a resend by `id` and stores it once.
//!
//! # Bounded on disk, and what is given up first
//! `max_bytes` bounds what the outbox takes on disk: the SQLite file plus its WAL (a device
//! can be offline for days). The WAL gets a share of it and is checkpointed and truncated when
//! it passes that share; each event counts at its payload plus a measured per-row overhead
//! ([`store::DiskBudget`] has the arithmetic). When an accept would exceed the rest, the same transaction that inserts the new event deletes
//! the oldest *info* events first, then the oldest *warnings*. A new event never evicts a more
//! severe one. **Alarms are never evicted**, and a new alarm is accepted even beyond the budget
//! (logged at ERROR: a person must look at a device whose disk budget is full of alarms). A new
//! info or warning that still does not fit is itself dropped and the caller is told so with
//! [`Acceptance::Dropped`] — an expected outcome, not an error. Every drop is counted, logged
//! at ERROR and reported to the hub as an `outbox_overflow` warning event, at most one report
//! per [`OVERFLOW_REPORT_INTERVAL`] (drops in between are summed into the next report). The
//! pending tally of drops lives in memory: a crash before the report loses the report, never
//! an accepted event that was not evicted.
//!
//! Counting is an estimate, so after every commit the shell also measures the file's pages in
//! use; if they pass the budget (rows of evicted events leave pages partly filled), more is
//! evicted in the same order (oldest info, then oldest warnings, never alarms) until they fit.
//! The file and its WAL therefore stay within `max_bytes` plus at most one transaction's new
//! pages, unless alarms alone fill it.
//!
//! # Memory
//! Only metadata of pending events (seq, severity, size, state) is kept in memory; a payload
//! is read from the file when it is sent. A full outbox costs memory per event, not per
//! payload byte.
//!
//! # A full disk
//! The budget above is the outbox's own; the file system can fill up before it (another
//! program, logs). The outbox keeps space in reserve for that case ([`reserve`]): when a commit
//! fails with a full disk, the reserve is given back, the batch's alarms are committed again in
//! that space, and until the reserve can be written again the outbox takes alarms only. Info
//! and warnings are dropped at the door like any other drop: ERROR, counted
//! (`dropped_disk_full`), reported to the hub.
//!
//! # Sending
//! The pure [`core::OutboxCore`] decides what goes on the wire: alarms before warnings before
//! info, oldest first within a severity, at most `max_in_flight` unacked at a time. On every
//! new MQTT session everything in flight is sent again; an event not acked within
//! `ack_timeout` is sent again. The uplink carries out the resulting [`Publish`]es.
//!
//! # Threads
//! SQLite calls block, so the outbox lives on its own OS thread ([`spawn`]); everyone else
//! holds a cheap [`OutboxHandle`]. The thread commits all accepts that queued up while it was
//! busy in one transaction (group commit), which keeps a burst of a thousand events from
//! costing a thousand fsyncs, without weakening the promise above.

pub mod core;
pub mod reserve;
pub mod store;
pub mod wal;
mod worker;

pub use self::core::{Action, Admission, Input, Limits, OutboxCore};
pub use reserve::{Reserve, DEFAULT_RESERVE_BYTES};
pub use store::{DiskBudget, Store, StoreError};
pub use worker::{spawn, OutboxHandle, Publish};

use jiff::Timestamp;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tracing::{error, info, warn};
use uuid::Uuid;
use vaka_protocol::kinds::OutboxOverflow;
use vaka_protocol::{Ack, DeviceId, Envelope, EventBody, Severity};

/// At most one `outbox_overflow` report per this interval.
pub const OVERFLOW_REPORT_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Error)]
pub enum OutboxError {
    #[error(transparent)]
    Store(Arc<StoreError>),
    #[error("the outbox has stopped")]
    Stopped,
}

impl OutboxError {
    /// Whether the file system is full (SQLite's `SQLITE_FULL`).
    pub fn is_disk_full(&self) -> bool {
        match self {
            OutboxError::Store(e) => e.is_disk_full(),
            OutboxError::Stopped => false,
        }
    }
}

impl From<StoreError> for OutboxError {
    fn from(e: StoreError) -> Self {
        OutboxError::Store(Arc::new(e))
    }
}

/// An event offered to the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub body: EventBody,
    pub severity: Severity,
}

impl NewEvent {
    /// An event with its kind's default severity.
    pub fn new(body: EventBody) -> Self {
        let severity = body.default_severity();
        NewEvent { body, severity }
    }
}

/// State of an on-device decision (e.g. the dose grace timers) to store with the events it
/// raises, in the same transaction: see [`Outbox::record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWrite {
    /// One key per deciding component, e.g. `dispenser`.
    pub key: &'static str,
    pub value: Vec<u8>,
}

/// The expected outcomes of offering an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    /// On disk; will reach the hub.
    Accepted { seq: u64, id: Uuid },
    /// Not stored: an info or warning that does not fit the disk budget.
    Dropped { reason: String },
}

/// Counters in pairs, so that a gap is visible.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub accepted: u64,
    pub acked: u64,
    pub rejected_by_hub: u64,
    pub evicted: u64,
    pub refused: u64,
    /// Unfinished transactions (cut by a crash or power cut) dropped when the outbox was
    /// opened: 0 or 1. None of them held an accepted event.
    pub torn_tails_dropped: u64,
    /// Info and warnings dropped because the disk was full (the reserve is for alarms); pairs
    /// with `disk_full_alarms`, the alarms accepted meanwhile.
    pub dropped_disk_full: u64,
    pub disk_full_alarms: u64,
}

/// Drops not yet reported to the hub.
#[derive(Debug, Default)]
struct OverflowTally {
    dropped: u64,
    seqs: Option<(u64, u64)>,
    last_report: Option<Instant>,
}

/// The sends of a step that comes after a commit; a failure is logged, not returned. An
/// unsent event stays in flight in the core and is sent again after `ack_timeout`.
fn logged(result: Result<Vec<Publish>, OutboxError>) -> Vec<Publish> {
    result.unwrap_or_else(|e| {
        error!(error = %e, "Outbox step after a commit failed; the commit stands");
        Vec::new()
    })
}

/// The outbox shell: the SQLite [`Store`] and the pure [`OutboxCore`] kept in step.
pub struct Outbox {
    store: Store,
    core: OutboxCore,
    next_seq: u64,
    device: DeviceId,
    tally: OverflowTally,
    counters: Counters,
    reserve: Reserve,
    budget: DiskBudget,
}

impl Outbox {
    /// Opens the file and reloads every pending event, without disk space in reserve (see
    /// [`Outbox::open_with_reserve`]).
    pub fn open(path: &Path, device: DeviceId, limits: Limits) -> Result<Outbox, OutboxError> {
        Outbox::open_with_reserve(path, device, limits, 0)
    }

    /// Opens the file, reloads every pending event, and keeps `reserve_bytes` of disk space
    /// for alarms (see [`reserve`]).
    pub fn open_with_reserve(
        path: &Path,
        device: DeviceId,
        limits: Limits,
        reserve_bytes: u64,
    ) -> Result<Outbox, OutboxError> {
        let budget = DiskBudget::new(limits.max_bytes);
        let limits = Limits { max_bytes: budget.event_bytes(), ..limits };
        let mut store = Store::open(path)?;
        store.set_wal_limit(budget.wal_bytes)?;
        let (reserve, reserve_error) = Reserve::open(path, reserve_bytes);
        if let Some(e) = reserve_error {
            error!(
                path = %path.display(),
                bytes = reserve_bytes,
                error = %e,
                "Cannot write the disk reserve for alarms: the disk is full; only alarms are accepted until there is room"
            );
        }
        let wal = store.wal_at_open();
        let mut outbox = Outbox {
            store,
            core: OutboxCore::new(limits),
            next_seq: 1,
            device,
            tally: OverflowTally::default(),
            counters: Counters::default(),
            reserve,
            budget,
        };
        if wal.torn() {
            // ERROR: the cut transaction was never answered, so no accepted event is lost, but
            // a producer waiting for that answer must send its event again, and a device
            // whose power is cut mid-write deserves a look.
            outbox.counters.torn_tails_dropped = 1;
            error!(
                path = %path.display(),
                discarded_frames = wal.discarded_frames,
                partial_bytes = wal.partial_bytes,
                bad_header = wal.bad_header,
                kept_frames = wal.committed_frames,
                "Outbox store ends in a write cut short (crash or power cut); the unfinished transaction is dropped, every accepted event is kept"
            );
        }
        outbox.reload(Instant::now())?;
        // A file written before the cap counted on-disk bytes may be over it.
        outbox.keep_within_cap(Instant::now())?;
        info!(
            path = %path.display(),
            pending = outbox.core.len(),
            bytes = outbox.core.bytes(),
            next_seq = outbox.next_seq,
            "Outbox opened"
        );
        Ok(outbox)
    }

    /// Rebuilds the core from disk; used at start and after a failed transaction.
    fn reload(&mut self, now: Instant) -> Result<Vec<Publish>, OutboxError> {
        let (next_seq, events) = self.store.load()?;
        let connected = self.core.is_connected();
        let mut core = OutboxCore::new(self.core.limits());
        for e in events {
            core.handle(
                now,
                Input::Accepted {
                    seq: e.seq,
                    severity: e.severity,
                    size: e.len + store::ROW_OVERHEAD,
                    evicted: Vec::new(),
                },
            );
        }
        self.core = core;
        self.next_seq = next_seq;
        let actions = if connected { self.core.handle(now, Input::Connected) } else { Vec::new() };
        self.publishes(actions)
    }

    /// Reads the payloads of the core's sends from disk. Deletes need no IO here: the core
    /// asks for them only from [`Outbox::ack`], which carries them out itself.
    fn publishes(&self, actions: Vec<Action>) -> Result<Vec<Publish>, OutboxError> {
        let mut out = Vec::new();
        for a in actions {
            if let Action::Send { seq } = a {
                match self.store.payload(seq)? {
                    Some(payload) => out.push(Publish { seq, payload }),
                    // Cannot happen while the core and the file agree; the event stays in
                    // flight and is sent again after `ack_timeout`.
                    None => error!(seq, "Pending event missing from the outbox file; not sent"),
                }
            }
        }
        Ok(out)
    }

    /// Evicts oldest info, then oldest warnings, until the file's pages in use fit the
    /// budget (see the module note), and keeps the WAL within its share.
    fn keep_within_cap(&mut self, now: Instant) -> Result<Vec<Publish>, OutboxError> {
        let target = self.budget.file_bytes();
        let mut actions = Vec::new();
        loop {
            let used = self.store.used_bytes()?;
            if used <= target {
                break;
            }
            // A little more than the excess, so that a full outbox does not pay an extra
            // transaction for every commit.
            let evict = self.core.plan_eviction(used - target + 4 * 4096);
            if evict.is_empty() {
                // Only alarms are left; they are never evicted (logged at accept).
                break;
            }
            let mut batch = self.store.batch()?;
            batch.delete(&evict)?;
            batch.commit()?;
            self.note_evicted(&evict);
            self.counters.evicted += evict.len() as u64;
            error!(
                evicted = evict.len(),
                first = evict.first().copied().unwrap_or_default(),
                used_bytes = used,
                file_budget = target,
                "Outbox file is over its disk budget; oldest low-severity events dropped"
            );
            actions.extend(self.core.handle(now, Input::Evicted { seqs: evict }));
        }
        self.store.limit_wal(self.budget.wal_bytes)?;
        self.publishes(actions)
    }

    /// Adds evicted seqs to the tally of drops to report.
    fn note_evicted(&mut self, evict: &[u64]) {
        self.tally.dropped += evict.len() as u64;
        for &s in evict {
            let (lo, hi) = self.tally.seqs.unwrap_or((s, s));
            self.tally.seqs = Some((lo.min(s), hi.max(s)));
        }
    }

    pub fn depth(&self) -> u64 {
        self.core.len() as u64
    }

    pub fn bytes(&self) -> u64 {
        self.core.bytes()
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Accepts one event; returns only after it is durable. See [`Outbox::accept_batch`].
    pub fn accept(
        &mut self,
        now: Instant,
        ts: Timestamp,
        event: NewEvent,
    ) -> Result<(Acceptance, Vec<Publish>), OutboxError> {
        let (mut outcomes, actions) = self.accept_batch(now, ts, vec![event])?;
        let outcome = outcomes.pop().unwrap_or(Acceptance::Dropped { reason: "no outcome".into() });
        Ok((outcome, actions))
    }

    /// Accepts a batch of events in one transaction. Returns one outcome per event, in order,
    /// only after the transaction is durable, and the sends the new events allow.
    pub fn accept_batch(
        &mut self,
        now: Instant,
        ts: Timestamp,
        events: Vec<NewEvent>,
    ) -> Result<(Vec<Acceptance>, Vec<Publish>), OutboxError> {
        self.accept_with_state(now, ts, events, None)
    }

    /// Accepts `events` and replaces the stored `state` in one transaction: both are durable
    /// when this returns, or neither is. The state is written even if an event is
    /// [`Acceptance::Dropped`] (a full disk must not stop a grace timer). Read it back with
    /// [`Outbox::state`].
    pub fn record(
        &mut self,
        now: Instant,
        ts: Timestamp,
        events: Vec<NewEvent>,
        state: &StateWrite,
    ) -> Result<(Vec<Acceptance>, Vec<Publish>), OutboxError> {
        self.accept_with_state(now, ts, events, Some(state))
    }

    /// The state last recorded under `key`.
    pub fn state(&self, key: &str) -> Result<Option<Vec<u8>>, OutboxError> {
        Ok(self.store.state(key)?)
    }

    fn accept_with_state(
        &mut self,
        now: Instant,
        ts: Timestamp,
        events: Vec<NewEvent>,
        state: Option<&StateWrite>,
    ) -> Result<(Vec<Acceptance>, Vec<Publish>), OutboxError> {
        let retry = events.clone();
        match self.try_accept_batch(now, ts, events, state, false) {
            Ok(ok) => Ok(ok),
            Err(e) if e.is_disk_full() && !self.reserve.is_spent() => {
                // The reserve's space goes to the alarms of this batch; everything else is
                // dropped at the door until the reserve can be written again.
                let _ = self.reload(now);
                let freed = self.reserve.spend(now);
                error!(
                    error = %e,
                    reserve_bytes = self.reserve.bytes(),
                    freed,
                    "Disk is full: the reserve is released for alarms; info and warnings are dropped until there is room again"
                );
                self.try_accept_batch(now, ts, retry, state, false).inspect_err(|e| {
                    error!(error = %e, "Outbox transaction failed on a full disk; nothing of it was accepted");
                    if let Err(reload) = self.reload(now) {
                        error!(error = %reload, "Outbox could not reload after a failed transaction");
                    }
                })
            }
            Err(e) => {
                // The core may hold events of the failed transaction: rebuild it from disk.
                error!(error = %e, "Outbox transaction failed; nothing of it was accepted");
                if let Err(reload) = self.reload(now) {
                    error!(error = %reload, "Outbox could not reload after a failed transaction");
                }
                Err(e)
            }
        }
    }

    fn try_accept_batch(
        &mut self,
        now: Instant,
        ts: Timestamp,
        events: Vec<NewEvent>,
        state: Option<&StateWrite>,
        overflow_report: bool,
    ) -> Result<(Vec<Acceptance>, Vec<Publish>), OutboxError> {
        let mut outcomes = Vec::with_capacity(events.len());
        let mut actions = Vec::new();
        let mut next_seq = self.next_seq;
        let mut evicted_total = 0u64;
        let mut refused_total = 0u64;
        let mut disk_full_dropped = 0u64;
        let mut disk_full_alarms = 0u64;
        let disk_full = self.reserve.is_spent();
        let mut batch = self.store.batch()?;
        for event in events {
            if disk_full && !overflow_report && event.severity != Severity::Alarm {
                disk_full_dropped += 1;
                self.tally.dropped += 1;
                error!(
                    kind = event.body.kind(),
                    severity = event.severity.as_str(),
                    dropped_disk_full = self.counters.dropped_disk_full + disk_full_dropped,
                    "Disk is full; new event dropped (the reserved space is for alarms)"
                );
                outcomes.push(Acceptance::Dropped {
                    reason: format!(
                        "the device's disk is full: only alarms are accepted until there is room, this {} is dropped",
                        event.severity.as_str()
                    ),
                });
                continue;
            }
            disk_full_alarms += u64::from(disk_full);
            let id = Uuid::now_v7();
            let envelope = Envelope {
                id,
                device: self.device.clone(),
                seq: next_seq,
                ts,
                severity: event.severity,
                body: event.body,
            };
            let payload = envelope.encode();
            let size = payload.len() as u64 + store::ROW_OVERHEAD;
            // The overflow report is the hub's only way to learn of lost events, so it is
            // admitted like an alarm (beyond the budget if need be); it is rate-limited.
            let admit_as = if overflow_report { Severity::Alarm } else { event.severity };
            match self.core.admit(admit_as, size) {
                Admission::Refuse => {
                    refused_total += 1;
                    self.tally.dropped += 1;
                    error!(
                        kind = envelope.kind(),
                        severity = event.severity.as_str(),
                        bytes = payload.len(),
                        "Outbox is full; new event dropped"
                    );
                    outcomes.push(Acceptance::Dropped {
                        reason: format!(
                            "outbox is full ({} bytes pending) and a {} may not evict more severe events",
                            self.core.bytes(),
                            event.severity.as_str()
                        ),
                    });
                }
                Admission::Admit { evict, over_budget } => {
                    if !evict.is_empty() {
                        batch.delete(&evict)?;
                        evicted_total += evict.len() as u64;
                        self.tally.dropped += evict.len() as u64;
                        for &s in &evict {
                            let (lo, hi) = self.tally.seqs.unwrap_or((s, s));
                            self.tally.seqs = Some((lo.min(s), hi.max(s)));
                        }
                        error!(
                            evicted = evict.len(),
                            first = evict.first().copied().unwrap_or_default(),
                            "Outbox is full; oldest low-severity events dropped"
                        );
                    }
                    if over_budget && !overflow_report {
                        error!(
                            seq = next_seq,
                            bytes = self.core.bytes(),
                            "Outbox is over its disk budget with alarms; alarm accepted anyway"
                        );
                    }
                    batch.insert(next_seq, &id, event.severity, &payload)?;
                    actions.extend(self.core.handle(
                        now,
                        Input::Accepted {
                            seq: next_seq,
                            severity: event.severity,
                            size,
                            evicted: evict,
                        },
                    ));
                    outcomes.push(Acceptance::Accepted { seq: next_seq, id });
                    next_seq += 1;
                }
            }
        }
        if next_seq != self.next_seq {
            batch.set_next_seq(next_seq)?;
        }
        if let Some(state) = state {
            batch.put_state(state.key, &state.value)?;
        }
        batch.commit()?;
        // The batch is accepted from here on: a failure below must not be reported as a
        // failed accept (the producer would send its event again, under a new id).
        let mut actions = logged(self.publishes(actions));
        let accepted = next_seq - self.next_seq;
        self.next_seq = next_seq;
        self.counters.accepted += accepted;
        self.counters.evicted += evicted_total;
        self.counters.refused += refused_total;
        self.counters.dropped_disk_full += disk_full_dropped;
        self.counters.disk_full_alarms += disk_full_alarms;
        actions.extend(logged(self.keep_within_cap(now)));
        actions.extend(self.report_overflow(now, ts)?);
        Ok((outcomes, actions))
    }

    /// Accepts an `outbox_overflow` event if drops are unreported and the last report is old
    /// enough.
    fn report_overflow(&mut self, now: Instant, ts: Timestamp) -> Result<Vec<Publish>, OutboxError> {
        if self.tally.dropped == 0 {
            return Ok(Vec::new());
        }
        if self.tally.last_report.is_some_and(|t| now.duration_since(t) < OVERFLOW_REPORT_INTERVAL)
        {
            return Ok(Vec::new());
        }
        // Events refused at the door never had a seq: they are reported as dropped after the
        // last seq handed out.
        let last_seq = self.next_seq.saturating_sub(1);
        let (first, last) = self.tally.seqs.unwrap_or((last_seq, last_seq));
        let body = EventBody::OutboxOverflow(OutboxOverflow {
            dropped: self.tally.dropped,
            first_dropped_seq: first,
            last_dropped_seq: last,
        });
        warn!(dropped = self.tally.dropped, first, last, "Reporting outbox overflow to the hub");
        self.tally = OverflowTally { dropped: 0, seqs: None, last_report: Some(now) };
        let (_, actions) = self.try_accept_batch(now, ts, vec![NewEvent::new(body)], None, true)?;
        Ok(actions)
    }

    /// Applies the hub's ack: deletes committed and rejected events. Returns the sends the
    /// freed room allows.
    pub fn ack(&mut self, now: Instant, ack: &Ack) -> Result<Vec<Publish>, OutboxError> {
        for r in &ack.rejected {
            if let Some(severity) = self.core.severity_of(r.seq) {
                error!(
                    device = %self.device,
                    seq = r.seq,
                    severity = severity.as_str(),
                    "Hub rejected event: {}",
                    r.reason
                );
            }
        }
        let mut seqs = ack.committed.clone();
        seqs.extend(ack.rejected.iter().map(|r| r.seq));
        let rejected: Vec<u64> = ack.rejected.iter().map(|r| r.seq).collect();
        let actions = self.core.handle(now, Input::Acked { seqs });
        let mut deleted = Vec::new();
        let mut sends = Vec::new();
        for a in actions {
            match a {
                Action::Delete { seq } => deleted.push(seq),
                send @ Action::Send { .. } => sends.push(send),
            }
        }
        let rejected_count = deleted.iter().filter(|s| rejected.contains(s)).count() as u64;
        self.counters.rejected_by_hub += rejected_count;
        self.counters.acked += deleted.len() as u64 - rejected_count;
        if !deleted.is_empty() {
            // If this fails the rows stay and are resent after a restart; the hub dedups.
            self.store.delete(&deleted)?;
        }
        self.publishes(sends)
    }

    /// Connection changes and ticks; also sends a due overflow report.
    pub fn handle(&mut self, now: Instant, input: Input) -> Result<Vec<Publish>, OutboxError> {
        let tick = input == Input::Tick;
        let sends = self.core.handle(now, input);
        let mut actions = self.publishes(sends)?;
        if tick && self.reserve.is_spent() && self.reserve.try_restore(now) {
            info!(
                reserve_bytes = self.reserve.bytes(),
                dropped_disk_full = self.counters.dropped_disk_full,
                disk_full_alarms = self.counters.disk_full_alarms,
                "Disk has room again: reserve for alarms restored; every event is accepted again"
            );
        }
        if tick {
            actions.extend(self.report_overflow(now, Timestamp::now())?);
        }
        Ok(actions)
    }
}

#[cfg(test)]
mod power_cut_tests;
#[cfg(test)]
mod tests;
