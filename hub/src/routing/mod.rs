//! Night-patrol routing: which patrol car drives to which physical visit, in what order and
//! when. A vehicle routing problem with time windows (VRPTW), solved as a pure library: no
//! clock, no async, no IO except [`OsrmTable::load`] reading a matrix file.
//!
//! # Time
//! Every time is a whole number of **seconds from a night origin** chosen by the caller (e.g.
//! 18:00 local on the evening the night begins), as `i64`. The caller converts to and from
//! `jiff::Timestamp`; the router never sees a calendar, so daylight-saving nights need no care
//! here. Durations (`service_s`, `travel_s`) are seconds too.
//!
//! # Contract
//! - [`plan`] routes a whole night: minimise unassigned visits first, then total driving time
//!   (not the number of patrols used: a patrol costs nothing to send out). Time windows are on
//!   the *start of the visit* (a patrol that would be early waits where it is and leaves just
//!   in time); every patrol leaves its `start` no earlier than `shift_start` and is back at its
//!   `end` by `shift_end`.
//! - [`insert`] puts one escalation into running routes (see [`insert`]): stops already done or
//!   being driven to at `now` keep their order and times; only stops not yet started may move.
//! - An **urgent** visit is never left unassigned: if no patrol can make its window it goes to
//!   the patrol that gets there first and its [`Stop::late_s`] says by how much it is late. Any
//!   planned stop pushed late by it says so too. Non-urgent visits that cannot be served are in
//!   [`Plan::unassigned`] with a reason.
//! - Schedules in a [`Plan`] are recomputed here from the visit order with the integer matrix,
//!   so `arrival`, `start` and `departure` are exact and consistent with [`Plan::check`].
//!
//! # Why vrp-core
//! Evaluated: `vrp-core` 1.25 (reinterpretcat/vrp, built on the `rosomaxa` evolutionary
//! framework), its JSON front end `vrp-pragmatic`, and PyVRP (Python only: used as the
//! reference in the benchmark, not shippable in the hub). `vrp-core` is a Rust library with no
//! C code and no SQLite; it builds on rustc 1.95; it supports time windows on jobs, shifts with
//! their own start/end places and times, locked/fixed job sequences, any duration/distance
//! matrix we give it, and a lexicographic goal that we set to "fewest unassigned, then least
//! travel" (no fleet-size objective). Its raw builder API is practical, so the JSON layer of
//! `vrp-pragmatic` is not needed. Fixed stops at insertion are modelled by starting the patrol
//! where it will be when its fixed stops are done, which is exact and simpler than locks.
//! Sub-second insertions are done by our own exact cheapest insertion ([`insert`]); the solver
//! is only called when that fails.
//!
//! Files: `travel.rs` (travel-time matrices: straight line, OSRM table file), `schedule.rs`
//! (integer schedules, cheapest and forced insertion), `solve.rs` (the vrp-core model),
//! `trips.rs` (the "one trip per village" constraint on `plan`'s search), `insert.rs`
//! (escalations into running routes), `check.rs` (plan validation).

mod check;
mod insert;
mod schedule;
mod solve;
#[cfg(test)]
mod testkit;
mod travel;
mod trips;

pub use check::PlanProblem;
pub use insert::insert;
pub use solve::plan;
pub use travel::{OsrmTable, Straight, TravelTimes};

use serde::{Deserialize, Serialize};
use std::time::Duration;
use thiserror::Error;

/// A point on the Earth in WGS84 degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Place {
    pub lat: f64,
    pub lon: f64,
}

/// A physical visit to a person's home.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    pub id: String,
    pub place: Place,
    /// The visit may start at `earliest` at the soonest and should start by `latest` (s).
    pub earliest: i64,
    pub latest: i64,
    /// Time spent in the home (s).
    pub service_s: i64,
    /// A person may be in need (an escalation): assigned even if late, never dropped.
    pub urgent: bool,
}

/// A patrol car and its crew for the night.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patrol {
    pub id: String,
    pub start: Place,
    pub end: Place,
    /// Leaves `start` no earlier than this (s).
    pub shift_start: i64,
    /// Back at `end` by this (s).
    pub shift_end: i64,
}

/// One visit on a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stop {
    pub visit: String,
    /// When the car arrives at the door (s). Patrols wait where they are and leave just in
    /// time, so this is when the visit starts.
    pub arrival: i64,
    /// When the visit starts: `arrival`, or the visit's `earliest` if the car came early.
    pub start: i64,
    /// `start` + service time.
    pub departure: i64,
    /// How far `start` is past the visit's `latest` (0 when on time).
    pub late_s: i64,
}

/// One patrol's night. Patrols with no stops stay at their start (`travel_s` 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub patrol: String,
    /// When the car leaves its start: just in time for the first visit, not before the shift.
    pub depart_at: i64,
    pub stops: Vec<Stop>,
    /// Driving time start → stops → end (s), waiting and service excluded.
    pub travel_s: i64,
    /// When the car is back at its end place.
    pub end_at: i64,
}

/// A visit the plan does not serve, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unassigned {
    pub visit: String,
    pub reason: String,
}

/// Routes for every patrol (in the order the patrols were given) and what is left over.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Plan {
    pub routes: Vec<Route>,
    pub unassigned: Vec<Unassigned>,
}

impl Plan {
    /// Total driving time of all routes (s).
    pub fn travel_s(&self) -> i64 {
        self.routes.iter().map(|r| r.travel_s).sum()
    }

    /// Stops that start after their window (urgent visits that could not be made in time,
    /// and stops pushed late by them).
    pub fn late_stops(&self) -> impl Iterator<Item = &Stop> {
        self.routes.iter().flat_map(|r| &r.stops).filter(|s| s.late_s > 0)
    }

    /// The stop serving `visit`, with its patrol.
    pub fn find(&self, visit: &str) -> Option<(&Route, &Stop)> {
        self.routes.iter().find_map(|r| r.stops.iter().find(|s| s.visit == visit).map(|s| (r, s)))
    }
}

/// How long the solver may search. It stops at whichever limit comes first.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Wall time for the whole call, problem set-up included.
    pub time: Duration,
    /// Evolution generations (per run); `None` = until `time` runs out.
    pub generations: Option<usize>,
    /// Independent solver runs sharing `time` (at least 1); [`plan`] keeps the best.
    pub restarts: u32,
}

impl Budget {
    /// A night plan made before the shift starts: up to 30 s, three runs of 10 s.
    pub fn night() -> Self {
        Budget { time: Duration::from_secs(30), generations: None, restarts: 3 }
    }

    /// For unit tests and quick previews.
    pub fn quick() -> Self {
        Budget { time: Duration::from_secs(2), generations: Some(200), restarts: 1 }
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::night()
    }
}

#[derive(Debug, Error)]
pub enum RoutingError {
    #[error("invalid input: {0}")]
    Input(String),
    #[error("travel times: {0}")]
    Travel(String),
    #[error("place {lat},{lon} is not in the matrix file (nearest is {nearest_m:.0} m away)")]
    PlaceNotInMatrix { lat: f64, lon: f64, nearest_m: f64 },
    #[error("matrix file {path}: {reason}")]
    MatrixFile { path: String, reason: String },
    #[error("solver: {0}")]
    Solver(String),
}
