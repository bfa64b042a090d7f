//! A GPS tracker worn by the person: positions, safe areas, SOS and battery, as events.
//!
//! The pure parts, each unit-tested on its own:
//! - [`nmea`] ([`NmeaDecoder`](nmea::NmeaDecoder)) and [`gpsd`]
//!   ([`GpsdDecoder`](gpsd::GpsdDecoder)) turn a receiver's lines into [`Fix`](fix::Fix)es;
//! - [`geofence`] measures a position against a safe area on the Earth and decides, with
//!   hysteresis and dwell, when the person has left or is back;
//! - [`tracker`] ([`Tracker`](tracker::Tracker)) combines fixes, SOS presses and battery
//!   readings into `position`, `geofence_left`, `geofence_returned`, `sos`, `gps_no_fix` and
//!   `battery_low` events, one active alarm per kind;
//! - [`config`] reads and validates `[gps]`.
//!
//! # Invariants
//! - None of these modules reads a clock, a device, the network or the disk. The shell passes
//!   `now` (its clock) into every call, reads lines from the receiver and hands them to a
//!   decoder, hands fixes and button presses to the tracker, offers the events to the
//!   outbox, ticks the tracker at [`Tracker::next_wake`](tracker::Tracker::next_wake), and
//!   persists [`TrackerState`](tracker::TrackerState) after each call.
//! - Times that decide anything (dwell, report rates, no-fix deadline, SOS hold) are the
//!   shell's clock, never the receiver's: a replayed file carries old receiver times.
//! - Every event the tracker makes passes the protocol's validation (positions on Earth,
//!   speeds 0–350 m/s, percentages 0–100).

pub mod buttons;
pub mod config;
pub mod fix;
pub mod geofence;
pub mod gpsd;
pub mod nmea;
pub mod service;
pub mod tracker;
