//! Medication dispensers: the agent watches doses itself, so a missed dose is an alarm even
//! while the hub is out of reach.
//!
//! A dispenser bridge (a small program that speaks to the Evondos, Hero, Pivotell or
//! Careousel unit) writes one JSON line per happening to the agent over a serial port, a Unix
//! socket or stdin. The pieces, each pure and tested on its own:
//! - [`line`]: the line protocol (specified for bridge writers in `agent/README.md`,
//!   "Dispenser line protocol") and its parser;
//! - [`core`]: the [`DoseBook`], which forwards lines as events, raises `dose_missed` when a
//!   dose's grace period ends without `dose_taken`, raises `dispenser_offline` when the bridge
//!   goes silent, and refuses lines that come out of order or from a clock far ahead;
//! - [`config`]: the `[dispenser]` section of the agent config;
//! - [`simulator`]: a seeded simulated dispenser writing the same lines.
//!
//! The IO shell (reading the source, ticking at [`DoseBook::next_deadline`], storing
//! [`DoseState`] with the events in one outbox transaction) lives beside them.

pub mod config;
pub mod core;
pub mod line;
pub mod service;
pub mod simulator;

pub use self::config::{DispenserSettings, RawDispenser, SourceSettings};
pub use self::core::{DoseBook, DoseState, Input, Outcome, Rules};
pub use self::line::{parse_line, DispenserLine, LineError, Message};
pub use self::simulator::Simulator;
