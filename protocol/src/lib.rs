//! Vaka's wire contract, shared by the agent and the hub and nothing else.
//!
//! Everything that crosses MQTT is defined here: topic names ([`topic`]), the event envelope
//! and its kinds ([`envelope`], [`kinds`]), the hub's application acks ([`ack`]), device
//! status / heartbeats ([`status`]) and commands to devices ([`command`]).
//!
//! This crate is pure: no IO, no clock, no async. Decoding validates everything a device or a
//! broker could get wrong (size, version, ids, ranges, unknown kinds and fields) and returns a
//! typed [`DecodeError`] that says what is wrong, so the hub can store the reason with the
//! rejected payload. `protocol/README.md` documents the same contract for third parties.

pub mod ack;
pub mod calibration;
pub mod command;
pub mod envelope;
mod error;
pub mod ids;
pub mod kinds;
pub mod snapshot;
pub mod status;
pub mod topic;

pub use ack::{Ack, Rejection};
pub use calibration::{CalibrationMessage, CalibrationPicture, CalibrationRefusal, PictureMessage};
pub use command::{Command, CommandBody};
pub use envelope::{Envelope, Severity};
pub use error::DecodeError;
pub use ids::{CheckId, DeviceId, IdError, SiteId};
pub use kinds::EventBody;
pub use snapshot::{SnapshotFilter, SnapshotMessage};
pub use status::{DeviceState, Status};
pub use topic::{Channel, Topic, TopicError};

/// The protocol version this crate speaks. It is both the `v` field of every message and the
/// `v1` segment of every topic, so a v2 can run beside v1 on the same broker.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest event envelope accepted, in bytes. Real events are a few hundred bytes; the cap
/// keeps a faulty device from filling the hub's memory or database.
pub const MAX_EVENT_BYTES: usize = 16 * 1024;

/// Largest ack, status or command message accepted, in bytes.
pub const MAX_CONTROL_BYTES: usize = 64 * 1024;
