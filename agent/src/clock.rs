//! The agent's clocks. Services that decide by time (camera checks, dose grace, geofence
//! dwell) take a [`Clock`] instead of reading the system time, so tests can run them on a
//! fixed or paused clock and the demo on a compressed one.

use jiff::{SignedDuration, Timestamp};
use std::sync::Arc;

/// A source of the current time.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(Timestamp::now)
}

/// A clock that runs `speed` times faster than real time from `start` (simulated devices).
pub fn simulated(start: Timestamp, speed: f64) -> Clock {
    let origin = std::time::Instant::now();
    Arc::new(move || after(start, origin.elapsed().mul_f64(speed)))
}

/// A clock that follows tokio's (possibly paused) time from `start`: for tests.
pub fn tokio_clock(start: Timestamp) -> Clock {
    let origin = tokio::time::Instant::now();
    Arc::new(move || after(start, origin.elapsed()))
}

fn after(start: Timestamp, elapsed: std::time::Duration) -> Timestamp {
    start.checked_add(SignedDuration::try_from(elapsed).unwrap_or_default()).unwrap_or(start)
}
