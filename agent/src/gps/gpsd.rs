//! gpsd's JSON protocol into [`Fix`]es, for a receiver shared through gpsd.
//!
//! The shell connects to gpsd (TCP, `127.0.0.1:2947` by default), sends [`WATCH_COMMAND`] and
//! feeds every line it receives to [`GpsdDecoder::push_line`]. gpsd answers with one JSON
//! object per line; its `class` says what it is:
//! - `TPV` (time-position-velocity) becomes a [`Fix`]: `mode` 0 or 1 is no fix, 2 is 2D,
//!   3 is 3D; `speed` is already m/s; `eph` (or, from older gpsd, `epx`/`epy`) is the
//!   horizontal error estimate in metres. `time` is ISO 8601, or seconds since 1970 from
//!   gpsd before protocol 3.4.
//! - `SKY` carries the HDOP and the satellites used; the decoder remembers them and puts
//!   them on the following TPVs (a TPV has neither).
//! - `ERROR` is gpsd refusing a request: returned as [`GpsdError::Reported`] so that the shell
//!   logs it.
//! - Everything else (`VERSION`, `DEVICES`, `DEVICE`, `WATCH`, `PPS`, `TOFF`, `GST`, `ATT`…)
//!   is ignored.
//!
//! Fixes keep the invariants of [`fix`](super::fix): a TPV with mode 2 or 3 but no sane
//! position is refused rather than passed on. Unknown fields are ignored (gpsd adds fields in
//! minor versions). Each error concerns one line; the decoder stays usable.

use super::fix::{measurement, valid_lat_lon, Fix, FixQuality};
use jiff::Timestamp;
use serde::Deserialize;
use thiserror::Error;

/// Asks gpsd to stream reports as JSON (sent once after connecting).
pub const WATCH_COMMAND: &str = "?WATCH={\"enable\":true,\"json\":true};";

/// Longest line gpsd sends (its documented response limit is 10 240 characters).
const MAX_LINE: usize = 10_240;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum GpsdError {
    #[error("not a gpsd JSON report: {0}")]
    NotJson(String),
    #[error("gpsd {class} report is malformed: {reason}")]
    Malformed { class: String, reason: String },
    #[error("gpsd reported an error: {0}")]
    Reported(String),
}

/// The fields of gpsd's reports the tracker reads; the rest are ignored.
#[derive(Debug, Deserialize)]
struct Report {
    class: String,
    mode: Option<u8>,
    time: Option<Time>,
    lat: Option<f64>,
    lon: Option<f64>,
    speed: Option<f64>,
    eph: Option<f64>,
    epx: Option<f64>,
    epy: Option<f64>,
    hdop: Option<f64>,
    #[serde(rename = "uSat")]
    used_satellites: Option<u32>,
    satellites: Option<Vec<Satellite>>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Time {
    Iso(String),
    /// Protocol before 3.4: seconds since 1970.
    Seconds(f64),
}

#[derive(Debug, Deserialize)]
struct Satellite {
    #[serde(default)]
    used: bool,
}

/// Reads gpsd's reports one line at a time, remembering the last SKY's HDOP and satellites.
#[derive(Debug, Default)]
pub struct GpsdDecoder {
    hdop: Option<f64>,
    satellites: Option<u32>,
}

impl GpsdDecoder {
    pub fn new() -> GpsdDecoder {
        GpsdDecoder::default()
    }

    /// One line from gpsd: a fix for a TPV, nothing for other reports.
    pub fn push_line(&mut self, line: &str) -> Result<Option<Fix>, GpsdError> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(None);
        }
        if line.len() > MAX_LINE {
            return Err(GpsdError::NotJson(format!("{} characters is too long", line.len())));
        }
        let report: Report =
            serde_json::from_str(line).map_err(|e| GpsdError::NotJson(e.to_string()))?;
        match report.class.as_str() {
            "TPV" => tpv(report, self.hdop, self.satellites).map(Some),
            "SKY" => {
                self.hdop = measurement(report.hdop);
                self.satellites = report.used_satellites.or_else(|| {
                    let used = report.satellites.as_ref()?.iter().filter(|s| s.used).count();
                    u32::try_from(used).ok()
                });
                Ok(None)
            }
            "ERROR" => Err(GpsdError::Reported(
                report.message.unwrap_or_else(|| "(no message)".to_string()),
            )),
            _ => Ok(None),
        }
    }
}

/// One line without remembering anything: a TPV's fix (without HDOP), or nothing.
pub fn parse_gpsd_line(line: &str) -> Result<Option<Fix>, GpsdError> {
    GpsdDecoder::new().push_line(line)
}

fn tpv(r: Report, hdop: Option<f64>, satellites: Option<u32>) -> Result<Fix, GpsdError> {
    let time = match r.time {
        Some(Time::Iso(text)) => text.parse::<Timestamp>().ok(),
        // gpsd gives at most millisecond precision; rounding drops the float's noise.
        Some(Time::Seconds(s)) if s.is_finite() && s.abs() < 1e15 => {
            Timestamp::from_millisecond((s * 1000.0).round() as i64).ok()
        }
        _ => None,
    };
    let quality = match r.mode {
        Some(2) => FixQuality::TwoD,
        Some(3) => FixQuality::ThreeD,
        Some(0 | 1) => return Ok(Fix::no_fix(time)),
        other => {
            return Err(GpsdError::Malformed {
                class: "TPV".into(),
                reason: format!("mode {other:?} is not 0, 1, 2 or 3"),
            })
        }
    };
    let (lat, lon) = match (r.lat, r.lon) {
        (Some(lat), Some(lon)) if valid_lat_lon(lat, lon) => (lat, lon),
        (lat, lon) => {
            return Err(GpsdError::Malformed {
                class: "TPV".into(),
                reason: format!("a {quality:?} fix needs a position, got lat {lat:?} lon {lon:?}"),
            })
        }
    };
    let horizontal = match (measurement(r.epx), measurement(r.epy)) {
        (Some(x), Some(y)) => Some(x.hypot(y)),
        _ => None,
    };
    Ok(Fix {
        time,
        lat,
        lon,
        quality,
        hdop,
        speed_mps: measurement(r.speed),
        satellites,
        accuracy_m: measurement(r.eph).or(horizontal),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLES: &str = include_str!("../../tests/fixtures/gpsd/gpsd-json-examples.jsonl");
    const VERSIONS: &str = include_str!("../../tests/fixtures/gpsd/gpsd-protocol-versions.jsonl");
    const NO_FIX: &str = include_str!("../../tests/fixtures/gpsd/gpsd-foretrex-no-fix.jsonl");

    fn decode(text: &str) -> Vec<Fix> {
        let mut d = GpsdDecoder::new();
        text.lines().filter_map(|l| d.push_line(l).unwrap()).collect()
    }

    #[test]
    fn a_gpsd_session_gives_one_3d_fix_with_the_sky_reports_hdop() {
        let fixes = decode(EXAMPLES);
        let [fix] = fixes.as_slice() else { panic!("{fixes:?}") };
        assert_eq!((fix.lat, fix.lon), (46.498293369, 7.567411672));
        assert_eq!(fix.quality, FixQuality::ThreeD);
        assert_eq!(fix.time, Some("2005-06-08T10:34:48.283Z".parse().unwrap()));
        assert_eq!((fix.speed_mps, fix.accuracy_m), (Some(0.091), Some(36.0)));
        assert_eq!((fix.hdop, fix.satellites), (Some(1.24), Some(5)));
    }

    #[test]
    fn older_protocols_with_numeric_time_and_epx_epy_are_read() {
        let fixes = decode(VERSIONS);
        assert_eq!(fixes.len(), 3);
        assert_eq!(fixes[0].quality, FixQuality::TwoD);
        assert_eq!(fixes[0].time, Some("2009-09-22T04:18:05.470Z".parse().unwrap()));
        assert_eq!(fixes[1].quality, FixQuality::ThreeD);
        assert_eq!((fixes[2].lat, fixes[2].lon), (37.371427205, -122.015179890));
        assert_eq!(fixes[2].time, Some("2011-03-20T06:51:59.12Z".parse().unwrap()));
        let accuracy = fixes[2].accuracy_m.unwrap();
        assert!((accuracy - 1.926f64.hypot(1.808)).abs() < 1e-9, "{accuracy}");
        assert_eq!(fixes[2].hdop, None, "no SKY came first");
    }

    #[test]
    fn mode_1_is_a_no_fix_report() {
        let fixes = decode(NO_FIX);
        assert_eq!(fixes.len(), 2);
        assert!(fixes.iter().all(|f| !f.has_position()));
    }

    #[test]
    fn session_reports_are_ignored_and_errors_are_passed_on() {
        assert_eq!(parse_gpsd_line(EXAMPLES.lines().next().unwrap()), Ok(None));
        assert_eq!(parse_gpsd_line(""), Ok(None));
        let err = parse_gpsd_line(r#"{"class":"ERROR","message":"Unrecognized request '?FOO'"}"#);
        assert_eq!(err, Err(GpsdError::Reported("Unrecognized request '?FOO'".into())));
    }

    #[test]
    fn a_fix_without_a_position_or_with_an_unknown_mode_is_refused() {
        let err = parse_gpsd_line(r#"{"class":"TPV","mode":3,"lat":91.0,"lon":7.5}"#).unwrap_err();
        assert!(err.to_string().contains("needs a position"), "{err}");
        let err = parse_gpsd_line(r#"{"class":"TPV","mode":7}"#).unwrap_err();
        assert!(err.to_string().contains("mode Some(7)"), "{err}");
        assert!(matches!(parse_gpsd_line("$GPGGA,,,"), Err(GpsdError::NotJson(_))));
        assert!(matches!(parse_gpsd_line(r#"{"mode":3}"#), Err(GpsdError::NotJson(_))));
    }

    #[test]
    fn the_watch_command_asks_for_json() {
        let json = WATCH_COMMAND.strip_prefix("?WATCH=").unwrap().strip_suffix(';').unwrap();
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(value, serde_json::json!({"enable": true, "json": true}));
    }

    proptest! {
        #[test]
        fn arbitrary_lines_never_panic(line in prop_oneof![
            any::<String>(),
            r#"\{"class":"(TPV|SKY)","mode":[0-9],"lat":-?[0-9]{1,4}\.[0-9],"lon":-?[0-9]{1,4}\.[0-9](,"speed":-?[0-9.e]{1,6})?(,"time":"[0-9T:.Z-]{0,25}")?\}"#,
        ]) {
            if let Ok(Some(f)) = GpsdDecoder::new().push_line(&line) {
                prop_assert!(!f.has_position() || valid_lat_lon(f.lat, f.lon));
                prop_assert!(f.speed_mps.is_none_or(|s| s >= 0.0));
            }
        }
    }
}
