//! One position estimate from a GPS receiver, whatever protocol it came in.
//!
//! Both decoders ([`nmea`](super::nmea) and [`gpsd`](super::gpsd)) produce a [`Fix`]; the
//! [`tracker`](super::tracker) decides whether it is good enough to use.
//!
//! # Invariants
//! - When `quality` is [`FixQuality::NoFix`], `lat` and `lon` are `0.0` and mean nothing; the
//!   fix only says "the receiver is alive but does not know where it is". Build such a fix
//!   with [`Fix::no_fix`].
//! - Otherwise `lat` is finite in −90..=90 and `lon` finite in −180..=180 (degrees, WGS 84,
//!   north and east positive). The decoders refuse to build anything else.
//! - `hdop`, `speed_mps`, `accuracy_m` are finite and non-negative when present.

use jiff::Timestamp;

/// How much the receiver knows: no position, a position assuming a fixed altitude (2D, fewer
/// satellites, typically worse), or a full 3D solution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FixQuality {
    NoFix,
    TwoD,
    ThreeD,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fix {
    /// The receiver's own UTC time of the fix, when it said (NMEA needs an RMC sentence for
    /// the date). Informational only: the tracker times everything by the shell's clock,
    /// because a replayed file carries old receiver times.
    pub time: Option<Timestamp>,
    pub lat: f64,
    pub lon: f64,
    pub quality: FixQuality,
    /// Horizontal dilution of precision (unitless; 1 is excellent, above 5 is poor).
    pub hdop: Option<f64>,
    /// Ground speed in metres per second.
    pub speed_mps: Option<f64>,
    /// Satellites used in the solution.
    pub satellites: Option<u32>,
    /// The receiver's own horizontal error estimate in metres (gpsd's `eph`), when it gave one.
    pub accuracy_m: Option<f64>,
}

impl Fix {
    /// A report that the receiver has no position.
    pub fn no_fix(time: Option<Timestamp>) -> Fix {
        Fix {
            time,
            lat: 0.0,
            lon: 0.0,
            quality: FixQuality::NoFix,
            hdop: None,
            speed_mps: None,
            satellites: None,
            accuracy_m: None,
        }
    }

    /// Whether the fix carries a position at all (2D or 3D).
    pub fn has_position(&self) -> bool {
        self.quality != FixQuality::NoFix
    }
}

/// Whether a latitude/longitude pair is a position on Earth (finite and in range).
pub(crate) fn valid_lat_lon(lat: f64, lon: f64) -> bool {
    lat.is_finite()
        && lon.is_finite()
        && (-90.0..=90.0).contains(&lat)
        && (-180.0..=180.0).contains(&lon)
}

/// A non-negative finite measurement, or nothing (a receiver's `-1` or NaN is "unknown").
pub(crate) fn measurement(value: Option<f64>) -> Option<f64> {
    value.filter(|v| v.is_finite() && *v >= 0.0)
}

/// One knot is one nautical mile (1852 m) per hour.
pub(crate) const MPS_PER_KNOT: f64 = 1852.0 / 3600.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_no_fix_report_has_no_position() {
        let f = Fix::no_fix(None);
        assert!(!f.has_position());
        assert_eq!((f.lat, f.lon), (0.0, 0.0));
    }

    #[test]
    fn positions_off_the_earth_and_negative_measurements_are_refused() {
        assert!(valid_lat_lon(64.75, 20.95));
        assert!(!valid_lat_lon(90.5, 0.0) && !valid_lat_lon(0.0, -181.0));
        assert!(!valid_lat_lon(f64::NAN, 0.0));
        assert_eq!(measurement(Some(-1.0)), None);
        assert_eq!(measurement(Some(f64::INFINITY)), None);
        assert_eq!(measurement(Some(1.5)), Some(1.5));
    }

    #[test]
    fn ten_knots_is_about_five_metres_per_second() {
        assert!((10.0 * MPS_PER_KNOT - 5.144_444).abs() < 1e-6);
    }
}
