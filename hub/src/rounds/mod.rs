//! The night's supervision round: care plans become a round of checks at the start of each
//! night shift, camera checks go out at their agreed times, what the camera cannot settle
//! becomes a physical visit routed for the night patrols, and every check ends with exactly
//! one outcome, across hub restarts and daylight-saving nights.
//!
//! Files: [`plan`] (care plans and patrols, validated), [`night`] (shift times, DST, generating
//! a night's checks), [`state`] (one check, as stored), [`scheduler`] (the pure core that moves
//! checks towards their outcomes), [`routes`] (the patrols' routes, through `crate::routing`),
//! [`engine`] (the IO shell: store, camera commands, ticking), [`report`] (night and month
//! reports), [`config`] (`[rounds]`).
//!
//! Durability promise: a night's round is in the database, one row per check, before any of
//! its checks runs; each change of a check is stored before the camera check or visit it
//! leads to goes out.

pub mod config;
pub mod engine;
pub mod night;
pub mod plan;
pub mod report;
pub mod routes;
pub mod scheduler;
pub mod state;

pub use night::Shift;
pub use plan::{Method, Patrol, Recipient};
pub use scheduler::{Action, Actions, Round, Settings};
pub use state::{Outcome, RoundCheck, State};
