//! Shared fixtures for the routing tests: places around Skellefteå, times in seconds from
//! 18:00, and small constructors.

use super::{Budget, Patrol, Place, Visit};
use std::time::Duration;

pub const H: i64 = 3600;
pub const MIN: i64 = 60;

/// The night patrol's base in Skellefteå centre.
pub const BASE: Place = Place { lat: 64.7507, lon: 20.9528 };

/// A place `km_north` and `km_east` of the base (flat-earth approximation, fine for tests).
pub fn near(km_north: f64, km_east: f64) -> Place {
    let lat = BASE.lat + km_north / 111.2;
    let lon = BASE.lon + km_east / (111.2 * BASE.lat.to_radians().cos());
    Place { lat, lon }
}

pub fn visit(id: &str, place: Place, earliest: i64, latest: i64) -> Visit {
    Visit { id: id.into(), place, earliest, latest, service_s: 10 * MIN, urgent: false }
}

pub fn patrol(id: &str, shift_start: i64, shift_end: i64) -> Patrol {
    Patrol { id: id.into(), start: BASE, end: BASE, shift_start, shift_end }
}

/// Small enough for debug builds: each test solves in well under a second or two.
pub fn budget() -> Budget {
    Budget { time: Duration::from_millis(1500), generations: Some(100), restarts: 1 }
}
