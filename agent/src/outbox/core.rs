//! The outbox's pure core: which pending events to send, when to resend, what to evict.
//!
//! No IO and no clock: time comes in as `now` with every input, and everything the core wants
//! done comes out as [`Action`]s for the shell to carry out. The shell ([`super::Outbox`])
//! calls [`OutboxCore::admit`] *before* it commits an insert (to learn what the insert may
//! evict) and feeds [`Input::Accepted`] *after* the commit, so the core never knows of an event
//! that is not on disk.
//!
//! Invariants (checked by the model-based property test at the bottom of this file):
//! - every pending event is either waiting or in flight, never both;
//! - at most `max_in_flight` events are in flight, and none while disconnected;
//! - sends go out alarms first, then warnings, then info; within a severity by ascending seq;
//! - an event leaves the core only by the hub's ack or by eviction, never by a send or PUBACK;
//! - `bytes()` is the sum of the sizes of pending events, as the shell counted them (their
//!   cost on disk: payload plus the row's overhead).
//!
//! The core keeps only metadata (seq, severity, size, state) in memory, never payloads: a
//! device offline for days may hold tens of megabytes of events, and the agent must stay
//! small. [`Action::Send`] names a seq; the shell reads its payload from disk.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use vaka_protocol::Severity;

/// The core's knobs, from `[uplink]` and `[outbox]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_in_flight: usize,
    pub ack_timeout: Duration,
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// An event was committed to disk; `evicted` are the seqs the same transaction deleted
    /// (as planned by [`OutboxCore::admit`]).
    /// `size` is what the event counts against `max_bytes`.
    Accepted { seq: u64, severity: Severity, size: u64, evicted: Vec<u64> },
    /// The shell deleted these pending events to keep the file within its cap (as planned by
    /// [`OutboxCore::plan_eviction`]).
    Evicted { seqs: Vec<u64> },
    /// The hub's ack named these seqs (committed or rejected).
    Acked { seqs: Vec<u64> },
    /// A new MQTT session is up: everything in flight is resent.
    Connected,
    /// The session is gone: nothing is sent until the next `Connected`.
    Disconnected,
    /// Time passed: resend what waited longer than `ack_timeout` for its ack.
    Tick,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Publish this pending event (QoS 1) now; the shell reads its payload from disk.
    Send { seq: u64 },
    /// The hub acked this pending event: delete it from disk.
    Delete { seq: u64 },
}

/// What accepting an event of a given severity and size would do to the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Insert, deleting `evict` (oldest info first, then oldest warnings) in the same
    /// transaction. `over_budget` is set when an alarm is admitted beyond `max_bytes`.
    Admit { evict: Vec<u64>, over_budget: bool },
    /// An info or warning event that does not fit even after evicting everything it may
    /// evict. It is not stored and gets no seq.
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    InFlight { sent_at: Instant },
}

#[derive(Debug, Clone)]
struct Entry {
    severity: Severity,
    size: u64,
    state: State,
}

#[derive(Debug)]
pub struct OutboxCore {
    limits: Limits,
    entries: BTreeMap<u64, Entry>,
    /// Waiting seqs per severity, indexed by `severity_index`.
    waiting: [BTreeSet<u64>; 3],
    /// In-flight events ordered by send time, for the ack timeout.
    in_flight: BTreeSet<(Instant, u64)>,
    /// Seqs per severity (waiting or in flight), oldest first, for eviction.
    by_severity: [BTreeSet<u64>; 3],
    connected: bool,
    bytes: u64,
}

fn severity_index(s: Severity) -> usize {
    match s {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Alarm => 2,
    }
}

impl OutboxCore {
    pub fn new(limits: Limits) -> Self {
        OutboxCore {
            limits,
            entries: BTreeMap::new(),
            waiting: Default::default(),
            in_flight: BTreeSet::new(),
            by_severity: Default::default(),
            connected: false,
            bytes: 0,
        }
    }

    /// Pending events (waiting or in flight).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Counted bytes of pending events, the quantity `max_bytes` bounds.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn severity_of(&self, seq: u64) -> Option<Severity> {
        self.entries.get(&seq).map(|e| e.severity)
    }

    /// Plans the admission of a new event of `size` payload bytes without changing anything.
    ///
    /// A new event may evict only events of lower or equal severity, info before warnings,
    /// oldest first: a chatty info source must not push out a warning, and the newest reading
    /// of a source is worth more than its oldest. Alarms evict what they can and are admitted
    /// anyway.
    pub fn admit(&self, severity: Severity, size: u64) -> Admission {
        let max = self.limits.max_bytes;
        if self.bytes.saturating_add(size) <= max {
            return Admission::Admit { evict: Vec::new(), over_budget: false };
        }
        let mut freed = 0u64;
        let mut evict = Vec::new();
        let evictable: &[Severity] = match severity {
            Severity::Info => &[Severity::Info],
            Severity::Warning | Severity::Alarm => &[Severity::Info, Severity::Warning],
        };
        'outer: for s in evictable {
            for seq in &self.by_severity[severity_index(*s)] {
                if self.bytes - freed + size <= max {
                    break 'outer;
                }
                if let Some(e) = self.entries.get(seq) {
                    freed += e.size;
                    evict.push(*seq);
                }
            }
        }
        let fits = self.bytes - freed + size <= max;
        match (fits, severity) {
            (true, _) => Admission::Admit { evict, over_budget: false },
            (false, Severity::Alarm) => Admission::Admit { evict, over_budget: true },
            // Evicting would only lose more: the new event is refused and nothing is evicted.
            (false, _) => Admission::Refuse,
        }
    }

    /// Plans deleting at least `bytes` counted bytes: oldest info first, then oldest warnings,
    /// never alarms. Used by the shell when the file on disk is over its cap although the
    /// counted bytes are not (rows spread over partly filled pages). May return less.
    pub fn plan_eviction(&self, bytes: u64) -> Vec<u64> {
        let mut freed = 0u64;
        let mut evict = Vec::new();
        for s in [Severity::Info, Severity::Warning] {
            for seq in &self.by_severity[severity_index(s)] {
                if freed >= bytes {
                    return evict;
                }
                if let Some(e) = self.entries.get(seq) {
                    freed += e.size;
                    evict.push(*seq);
                }
            }
        }
        evict
    }

    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut actions = Vec::new();
        match input {
            Input::Accepted { seq, severity, size, evicted } => {
                for seq in evicted {
                    self.remove(seq);
                }
                self.bytes += size;
                self.entries.insert(seq, Entry { severity, size, state: State::Waiting });
                self.waiting[severity_index(severity)].insert(seq);
                self.by_severity[severity_index(severity)].insert(seq);
            }
            Input::Evicted { seqs } => {
                for seq in seqs {
                    self.remove(seq);
                }
            }
            Input::Acked { seqs } => {
                for seq in seqs {
                    if self.remove(seq) {
                        actions.push(Action::Delete { seq });
                    }
                }
            }
            Input::Connected => {
                self.all_back_to_waiting();
                self.connected = true;
            }
            Input::Disconnected => {
                self.all_back_to_waiting();
                self.connected = false;
            }
            Input::Tick => {
                if let Some(deadline) = now.checked_sub(self.limits.ack_timeout) {
                    let expired: Vec<(Instant, u64)> = self
                        .in_flight
                        .iter()
                        .take_while(|(t, _)| *t <= deadline)
                        .copied()
                        .collect();
                    for (_, seq) in expired {
                        self.back_to_waiting(seq);
                    }
                }
            }
        }
        self.fill(now, &mut actions);
        actions
    }

    /// Sends waiting events, most severe and then oldest first, while there is room in flight.
    fn fill(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if !self.connected {
            return;
        }
        while self.in_flight.len() < self.limits.max_in_flight {
            let Some(seq) = self.waiting.iter_mut().rev().find_map(|w| w.pop_first()) else {
                return;
            };
            let Some(entry) = self.entries.get_mut(&seq) else { continue };
            entry.state = State::InFlight { sent_at: now };
            self.in_flight.insert((now, seq));
            actions.push(Action::Send { seq });
        }
    }

    fn all_back_to_waiting(&mut self) {
        let seqs: Vec<u64> = self.in_flight.iter().map(|(_, s)| *s).collect();
        for seq in seqs {
            self.back_to_waiting(seq);
        }
    }

    fn back_to_waiting(&mut self, seq: u64) {
        if let Some(entry) = self.entries.get_mut(&seq) {
            if let State::InFlight { sent_at } = entry.state {
                self.in_flight.remove(&(sent_at, seq));
                entry.state = State::Waiting;
                self.waiting[severity_index(entry.severity)].insert(seq);
            }
        }
    }

    /// Forgets a pending event; returns whether it was pending.
    fn remove(&mut self, seq: u64) -> bool {
        let Some(entry) = self.entries.remove(&seq) else { return false };
        let i = severity_index(entry.severity);
        match entry.state {
            State::Waiting => {
                self.waiting[i].remove(&seq);
            }
            State::InFlight { sent_at } => {
                self.in_flight.remove(&(sent_at, seq));
            }
        }
        self.by_severity[i].remove(&seq);
        self.bytes -= entry.size;
        true
    }
}

#[cfg(test)]
mod tests;
