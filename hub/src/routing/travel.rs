//! Travel times between places, in whole seconds, behind one trait so the router does not care
//! where they come from: [`Straight`] (great-circle distance times a road factor, no data
//! needed) or [`OsrmTable`] (a matrix precomputed by OSRM's table service and saved to a file).
//!
//! Invariants of every matrix returned: square, one row and column per place in the order
//! given, zero on the diagonal, no negative entries. A pair that cannot be driven is
//! [`UNREACHABLE`] seconds, far beyond any night, so no window can be met across it.

use super::{Place, RoutingError};
use geo::{Distance, Haversine, Point};
use serde::Deserialize;
use std::path::Path;

/// Seconds standing in for "no road": about eleven days.
pub const UNREACHABLE: i64 = 1_000_000;

/// A source of driving times between places.
pub trait TravelTimes {
    /// `m[i][j]` = seconds to drive from `places[i]` to `places[j]`.
    fn matrix(&self, places: &[Place]) -> Result<Vec<Vec<i64>>, RoutingError>;
}

/// Great-circle (Haversine) distance × `road_factor`, driven at `speed_kmh`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Straight {
    /// Roads are longer than the straight line: 1.3 is typical for a rural road network.
    pub road_factor: f64,
    pub speed_kmh: f64,
}

impl Default for Straight {
    fn default() -> Self {
        Straight { road_factor: 1.3, speed_kmh: 60.0 }
    }
}

impl Straight {
    /// Seconds from `a` to `b`, rounded to the nearest second.
    pub fn seconds(&self, a: Place, b: Place) -> i64 {
        let metres = Haversine.distance(point(a), point(b));
        (metres * self.road_factor / (self.speed_kmh / 3.6)).round() as i64
    }
}

impl TravelTimes for Straight {
    fn matrix(&self, places: &[Place]) -> Result<Vec<Vec<i64>>, RoutingError> {
        if !(self.road_factor > 0.0 && self.speed_kmh > 0.0) {
            return Err(RoutingError::Travel(format!(
                "road factor {} and speed {} km/h must be positive",
                self.road_factor, self.speed_kmh
            )));
        }
        Ok(places.iter().map(|&a| places.iter().map(|&b| self.seconds(a, b)).collect()).collect())
    }
}

fn point(p: Place) -> Point<f64> {
    Point::new(p.lon, p.lat)
}

/// A duration matrix in the format of OSRM's table service response, loaded from a file:
/// `{"code":"Ok","durations":[[...]],"sources":[{"location":[lon,lat]},..],"destinations":[..]}`.
/// Durations are seconds (floats, rounded here); `null` means unreachable. Places are looked up
/// by location: the nearest source/destination within `tolerance_m`.
#[derive(Debug, Clone)]
pub struct OsrmTable {
    durations: Vec<Vec<Option<f64>>>,
    sources: Vec<Place>,
    destinations: Vec<Place>,
    /// How far a place may be from a location in the file and still be that location.
    pub tolerance_m: f64,
}

#[derive(Deserialize)]
struct RawTable {
    code: String,
    #[serde(default)]
    message: Option<String>,
    durations: Option<Vec<Vec<Option<f64>>>>,
    sources: Option<Vec<RawWaypoint>>,
    destinations: Option<Vec<RawWaypoint>>,
}

#[derive(Deserialize)]
struct RawWaypoint {
    /// OSRM order: longitude, latitude.
    location: [f64; 2],
}

impl OsrmTable {
    /// Default lookup tolerance: a house and the road point OSRM snapped it to.
    pub const DEFAULT_TOLERANCE_M: f64 = 50.0;

    /// Reads a saved table response.
    pub fn load(path: &Path) -> Result<OsrmTable, RoutingError> {
        let text = std::fs::read_to_string(path).map_err(|e| RoutingError::MatrixFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_json(&text)
            .map_err(|reason| RoutingError::MatrixFile { path: path.display().to_string(), reason })
    }

    /// Parses a table response; the error says what is wrong with it.
    pub fn from_json(text: &str) -> Result<OsrmTable, String> {
        let raw: RawTable = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if raw.code != "Ok" {
            return Err(format!("code {} ({})", raw.code, raw.message.unwrap_or_default()));
        }
        let durations = raw.durations.ok_or("no durations")?;
        let sources: Vec<Place> = raw.sources.ok_or("no sources")?.iter().map(place).collect();
        let destinations = match raw.destinations {
            Some(d) => d.iter().map(place).collect(),
            None => sources.clone(),
        };
        if durations.len() != sources.len()
            || durations.iter().any(|row| row.len() != destinations.len())
        {
            return Err(format!(
                "durations are not {} x {} (sources x destinations)",
                sources.len(),
                destinations.len()
            ));
        }
        if durations.iter().flatten().flatten().any(|d| !d.is_finite() || *d < 0.0) {
            return Err("a duration is negative or not finite".into());
        }
        Ok(OsrmTable { durations, sources, destinations, tolerance_m: Self::DEFAULT_TOLERANCE_M })
    }

    /// Index of the location in `among` nearest to `p`, if within the tolerance.
    fn lookup(&self, among: &[Place], p: Place) -> Result<usize, RoutingError> {
        let mut best = (usize::MAX, f64::INFINITY);
        for (i, &q) in among.iter().enumerate() {
            let d = Haversine.distance(point(p), point(q));
            if d < best.1 {
                best = (i, d);
            }
        }
        if best.1 <= self.tolerance_m {
            Ok(best.0)
        } else {
            Err(RoutingError::PlaceNotInMatrix { lat: p.lat, lon: p.lon, nearest_m: best.1 })
        }
    }
}

fn place(w: &RawWaypoint) -> Place {
    Place { lon: w.location[0], lat: w.location[1] }
}

impl TravelTimes for OsrmTable {
    fn matrix(&self, places: &[Place]) -> Result<Vec<Vec<i64>>, RoutingError> {
        let rows =
            places.iter().map(|&p| self.lookup(&self.sources, p)).collect::<Result<Vec<_>, _>>()?;
        let cols = places
            .iter()
            .map(|&p| self.lookup(&self.destinations, p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .iter()
            .enumerate()
            .map(|(i, &r)| {
                cols.iter()
                    .enumerate()
                    .map(|(j, &c)| match self.durations[r][c] {
                        _ if i == j => 0,
                        Some(d) => d.round() as i64,
                        None => UNREACHABLE,
                    })
                    .collect()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("testdata/osrm_table.json");

    fn p(lat: f64, lon: f64) -> Place {
        Place { lat, lon }
    }

    #[test]
    fn straight_line_time_is_distance_times_road_factor_at_speed() {
        // Skellefteå centre to Kusmark: about 31 km as the crow flies.
        let s = Straight::default();
        let secs = s.seconds(p(64.7507, 20.9528), p(65.0236, 20.9944));
        let km = secs as f64 / 3600.0 * 60.0 / 1.3;
        assert!((30.0..31.5).contains(&km), "{km} km");
        let m = s.matrix(&[p(64.75, 20.95), p(64.76, 20.95)]).unwrap();
        assert_eq!(m[0][0], 0);
        assert_eq!(m[0][1], m[1][0]);
        assert!(m[0][1] > 0);
    }

    #[test]
    fn osrm_file_is_read_by_location_with_rounding() {
        let t = OsrmTable::from_json(FIXTURE).unwrap();
        // Given in another order than the file, and 20 m off the snapped location.
        let places = [p(64.7700, 20.9000), p(64.75018, 20.95)];
        let m = t.matrix(&places).unwrap();
        assert_eq!(m, vec![vec![0, 421], vec![433, 0]]);
    }

    #[test]
    fn osrm_null_duration_is_unreachable() {
        let t = OsrmTable::from_json(FIXTURE).unwrap();
        let m = t.matrix(&[p(64.75, 20.95), p(65.02, 20.99)]).unwrap();
        assert_eq!(m[0][1], UNREACHABLE);
        assert_eq!(m[1][0], 1800);
    }

    #[test]
    fn place_missing_from_osrm_file_is_an_error_naming_it() {
        let t = OsrmTable::from_json(FIXTURE).unwrap();
        let err = t.matrix(&[p(64.75, 20.95), p(64.80, 21.10)]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("64.8,21.1"), "{text}");
        assert!(matches!(err, RoutingError::PlaceNotInMatrix { .. }));
    }

    #[test]
    fn osrm_error_response_and_ragged_matrix_are_rejected() {
        let e = OsrmTable::from_json(r#"{"code":"NoTable","message":"no route"}"#).unwrap_err();
        assert!(e.contains("NoTable"), "{e}");
        let ragged = r#"{"code":"Ok","durations":[[0,1],[1]],
            "sources":[{"location":[20.9,64.7]},{"location":[20.8,64.7]}]}"#;
        assert!(OsrmTable::from_json(ragged).unwrap_err().contains("2 x 2"));
    }

    #[test]
    fn osrm_file_loads_from_disk_and_a_missing_file_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table.json");
        std::fs::write(&path, FIXTURE).unwrap();
        assert!(OsrmTable::load(&path).is_ok());
        let err = OsrmTable::load(&dir.path().join("nope.json")).unwrap_err();
        assert!(err.to_string().contains("nope.json"));
    }
}
