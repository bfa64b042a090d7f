//! The camera service: runs the checks the hub (or the device itself) asks for.
//!
//! (Being written: request types first.)

use jiff::Timestamp;
use vaka_protocol::CheckId;

/// A camera check to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRequest {
    /// The hub's check id; `None` for a check the device runs on its own.
    pub check_id: Option<CheckId>,
    /// The verdict is due by then, and the check stays open for a snapshot until then.
    pub deadline: Option<Timestamp>,
}

impl CheckRequest {
    /// A check the device runs on its own (the simulator's periodic checks).
    pub fn own() -> Self {
        CheckRequest { check_id: None, deadline: None }
    }
}

/// What the uplink hands to the camera service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Check(CheckRequest),
    /// One privacy-filtered snapshot of an open check.
    Snapshot { check_id: CheckId },
}
