//! Ingest: device messages from MQTT into the store, durably, with nothing lost.
//!
//! ```text
//!  broker ──► session task (polls the rumqttc event loop, never awaits a publish)
//!                │ └─ `snapshot` topics ──► camera vault, in memory only (never below)
//!                │ bounded queue (back-pressure: when full, the session stops reading)
//!                ▼
//!            store writer thread (classify → presence → camera-check answers and deadlines
//!                │                     → one SQLite transaction per batch)
//!                │ after commit: unbounded queue of acks, broadcast feed to the console
//!                ▼
//!            ack publisher task (client.publish QoS 1 on vaka/v1/{site}/{device}/acks)
//! ```
//!
//! Promises:
//! - an event is acked (`committed`) only after the transaction holding it returned from
//!   commit, i.e. is fsynced; a duplicate (same event id) is counted, not stored again, and
//!   still acked, so a device that missed an ack can empty its outbox;
//! - anything invalid goes to the `rejects` table with its reason and never stops ingest; when
//!   its `seq` can be read, the device gets it back under `rejected` so it stops resending;
//! - the MQTT session is persistent (`clean_session = false`), so a broker queues QoS 1 events
//!   while the hub restarts. The hub's MQTT PUBACK is automatic and promises nothing: it is the
//!   application ack above that lets a device delete an event from its outbox.
//!
//! There is no deadlock: the session task only ever waits on the writer queue, which the writer
//! drains without waiting on anything but the database; acks go out on a separate task.

mod classify;
pub mod fault;
pub mod relay;
mod session;
mod writer;

pub use classify::{classify, is_snapshot_topic, Inbound, Rejected, EXCERPT_BYTES};
pub use session::{spawn_session, CommandError, Commands, SessionHandles, Sharing};
pub use writer::{Writer, WriterMsg, BATCH_MAX};

use crate::store::{DeviceRow, EventRow};
use jiff::Timestamp;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// One message as it came off the broker.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retained: bool,
    pub received_at: Timestamp,
}

/// An ack ready to publish.
#[derive(Debug, Clone)]
pub struct AckOut {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// A supervision alarm raised or cleared, as the live feed announces it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmNotice {
    pub device: String,
    pub site: String,
    pub kind: &'static str,
    /// `raised` or `cleared`.
    pub state: &'static str,
    pub at: Timestamp,
    pub last_seen: Option<Timestamp>,
}

/// What the console's live stream carries.
#[derive(Debug, Clone)]
pub enum Feed {
    Event(Arc<EventRow>),
    Device(DeviceRow),
    Alarm(AlarmNotice),
    /// Staff took a step on an alarm (acknowledged, assigned, resolved): the alarm as it is now.
    Handled(Box<crate::store::AlarmRow>),
    /// Any of the above from another hub of the group, as its stream sends it ([`relay`]).
    Relayed(relay::Wire),
}

/// Ingest counters. They come in pairs so a gap shows: `received` should equal
/// `stored + duplicates + rejected + statuses` once the queue is empty, and
/// `snapshots_received` should equal `snapshots_accepted + snapshots_dropped`; every accepted
/// snapshot ends `viewed` or `expired` (or is still held).
#[derive(Debug, Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
    pub statuses: AtomicU64,
    pub commits: AtomicU64,
    pub commit_failures: AtomicU64,
    pub acks_sent: AtomicU64,
    pub commands_sent: AtomicU64,
    pub snapshots_received: AtomicU64,
    pub snapshots_accepted: AtomicU64,
    pub snapshots_dropped: AtomicU64,
    pub snapshots_viewed: AtomicU64,
    pub snapshots_expired: AtomicU64,
    /// HTTPS connections through their TLS handshake, and those that failed it (plain HTTP
    /// to the HTTPS port, a client refusing the certificate, a timeout).
    pub tls_handshakes: AtomicU64,
    pub tls_handshakes_failed: AtomicU64,
    /// Device connections the embedded broker's device listener refused: a handshake without
    /// a valid, unrevoked device certificate, or a packet outside the device's own topics.
    pub identity_refused: AtomicU64,
    pub mqtt_connected: AtomicBool,
    /// The broker confirmed the subscriptions of the current connection.
    pub mqtt_subscribed: AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub received: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub statuses: u64,
    pub commits: u64,
    pub commit_failures: u64,
    pub acks_sent: u64,
    pub commands_sent: u64,
    pub snapshots_received: u64,
    pub snapshots_accepted: u64,
    pub snapshots_dropped: u64,
    pub snapshots_viewed: u64,
    pub snapshots_expired: u64,
    pub tls_handshakes: u64,
    pub tls_handshakes_failed: u64,
    pub identity_refused: u64,
    pub mqtt_connected: bool,
    pub mqtt_subscribed: bool,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            received: self.received.load(Relaxed),
            stored: self.stored.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            statuses: self.statuses.load(Relaxed),
            commits: self.commits.load(Relaxed),
            commit_failures: self.commit_failures.load(Relaxed),
            acks_sent: self.acks_sent.load(Relaxed),
            commands_sent: self.commands_sent.load(Relaxed),
            snapshots_received: self.snapshots_received.load(Relaxed),
            snapshots_accepted: self.snapshots_accepted.load(Relaxed),
            snapshots_dropped: self.snapshots_dropped.load(Relaxed),
            snapshots_viewed: self.snapshots_viewed.load(Relaxed),
            snapshots_expired: self.snapshots_expired.load(Relaxed),
            tls_handshakes: self.tls_handshakes.load(Relaxed),
            tls_handshakes_failed: self.tls_handshakes_failed.load(Relaxed),
            identity_refused: self.identity_refused.load(Relaxed),
            mqtt_connected: self.mqtt_connected.load(Relaxed),
            mqtt_subscribed: self.mqtt_subscribed.load(Relaxed),
        }
    }
}
