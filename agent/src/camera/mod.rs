//! Night camera checks on the device (work in progress, issue 3).
//!
//! The pure parts come first: [`analysis`] turns a short sequence of frames into a verdict
//! (`resting`, `moving_in_bed`, `not_in_bed`, `unclear`, `camera_fault`) with the measured
//! figures; [`snapshot`] makes the one privacy-filtered image staff may look at; [`consent`]
//! decides whether the camera may open at all at a given moment. Frames live in memory for
//! the length of a check and are never written to disk by these modules.

pub mod analysis;
pub mod calibration;
pub mod checks;
pub mod config;
pub mod consent;
pub mod installer;
pub mod service;
pub mod snapshot;
pub mod source;
pub mod synth;
