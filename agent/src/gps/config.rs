//! `[gps]` in the agent config: where positions come from, when a fix is good enough, how
//! often to report, and the person's safe areas (`config/agent.toml` is the
//! annotated example).
//!
//! Read in the usual two steps: serde reads a [`RawGps`] that refuses unknown keys, and the
//! pure [`RawGps::validate`] collects every problem, each naming its field
//! (`gps.areas[1].radius_m: …`), and returns typed [`GpsSettings`]. That files and devices
//! exist, and that gpsd answers, is the shell's business when it starts, not this module's.

use super::geofence::{Area, Schedule, Shape};
use crate::camera::consent::{time_zone, ConsentWindow, DEFAULT_TIME_ZONE};
use crate::config::duration;
use geo::{LineString, Polygon, Validation};
use jiff::tz::TimeZone;
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_GPSD_ADDRESS: &str = "127.0.0.1:2947";
pub const DEFAULT_BAUD: u32 = 9600;
const BAUDS: [u32; 9] = [4800, 9600, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 921_600];

/// `[gps]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGps {
    /// `"nmea"` or `"gpsd"`.
    pub source: Option<String>,
    /// nmea: a serial device (`/dev/ttyACM0`) or a recorded file.
    pub path: Option<PathBuf>,
    /// nmea, serial device only.
    pub baud: Option<u32>,
    /// nmea, recorded file only: the pause between epochs. Its presence makes `path` a file.
    pub replay_interval: Option<SignedDuration>,
    /// gpsd: `host:port`.
    pub address: Option<String>,
    /// Line input for SOS presses and battery levels: a Unix socket path, or `-` for stdin.
    pub buttons: Option<PathBuf>,
    pub require_3d: Option<bool>,
    pub max_hdop: Option<f64>,
    pub no_fix_after: Option<SignedDuration>,
    pub battery_low_percent: Option<i64>,
    pub report_idle: Option<SignedDuration>,
    pub report_alarm: Option<SignedDuration>,
    pub margin_m: Option<f64>,
    pub dwell: Option<SignedDuration>,
    pub alarm_hold: Option<SignedDuration>,
    pub time_zone: Option<String>,
    #[serde(default)]
    pub areas: Vec<RawArea>,
}

/// One `[[gps.areas]]`. The hub keeps a person's safe areas in this same shape (in JSON) and
/// writes them into the agent's configuration, so both judge them by [`RawArea::validate`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawArea {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circle: Option<RawCircle>,
    /// `[[lat, lon], …]`, at least three corners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polygon: Option<Vec<Vec<f64>>>,
    /// Local wall-clock windows such as `"20:00-08:00"`; absent: always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCircle {
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
}

/// Where NMEA lines come from.
#[derive(Debug, Clone, PartialEq)]
pub enum NmeaInput {
    /// A live receiver on a serial line.
    Serial { baud: u32 },
    /// A recorded file, replayed with this pause between epochs.
    Replay { interval: Duration },
}

#[derive(Debug, Clone, PartialEq)]
pub enum GpsSource {
    Nmea { path: PathBuf, input: NmeaInput },
    Gpsd { address: String },
}

/// Where SOS presses and battery levels come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ButtonsInput {
    Stdin,
    /// A Unix socket the agent listens on.
    Socket(PathBuf),
}

/// The validated `[gps]` section.
#[derive(Debug, Clone)]
pub struct GpsSettings {
    pub source: GpsSource,
    pub buttons: Option<ButtonsInput>,
    /// Refuse 2D fixes (they assume an altitude and can be tens of metres off).
    pub require_3d: bool,
    /// Refuse fixes with a higher HDOP; a fix without HDOP is accepted.
    pub max_hdop: f64,
    /// `gps_no_fix` when no good fix has come for this long.
    pub no_fix_after: Duration,
    /// `battery_low` below this; re-armed at this + 5.
    pub battery_low_percent: u8,
    /// Position reports this often while no alarm is active…
    pub report_idle: Duration,
    /// …and this often while one is.
    pub report_alarm: Duration,
    /// Hysteresis band on each side of an area's border.
    pub margin_m: f64,
    /// How long positions must stay beyond the band before leaving or returning counts.
    pub dwell: Duration,
    /// How long an SOS alarm stays active (further presses within it are repeats).
    pub alarm_hold: Duration,
    pub time_zone: TimeZone,
    pub areas: Vec<Area>,
}

impl GpsSettings {
    /// Every default, no areas, for tests and the simulator.
    pub fn new(source: GpsSource) -> GpsSettings {
        GpsSettings {
            source,
            buttons: None,
            require_3d: false,
            max_hdop: 5.0,
            no_fix_after: Duration::from_secs(600),
            battery_low_percent: 20,
            report_idle: Duration::from_secs(15 * 60),
            report_alarm: Duration::from_secs(10),
            margin_m: 25.0,
            dwell: Duration::from_secs(60),
            alarm_hold: Duration::from_secs(15 * 60),
            time_zone: TimeZone::UTC,
            areas: Vec::new(),
        }
    }

    /// One line for `check-config` and the start-up log.
    pub fn summary(&self) -> String {
        let source = match &self.source {
            GpsSource::Nmea { path, input: NmeaInput::Serial { baud } } => {
                format!("NMEA from {} at {baud} baud", path.display())
            }
            GpsSource::Nmea { path, input: NmeaInput::Replay { interval } } => {
                format!("NMEA replayed from {} every {interval:?}", path.display())
            }
            GpsSource::Gpsd { address } => format!("gpsd at {address}"),
        };
        let names: Vec<&str> = self.areas.iter().map(|a| a.name.as_str()).collect();
        format!(
            "GPS {source}, {} safe area(s){}",
            names.len(),
            if names.is_empty() { String::new() } else { format!(" ({})", names.join(", ")) }
        )
    }
}

impl RawGps {
    /// Every problem of the section, each naming its field, or the settings.
    pub fn validate(&self, problems: &mut Vec<String>) -> Option<GpsSettings> {
        let before = problems.len();
        let source = self.source(problems);
        let buttons = match &self.buttons {
            None => None,
            Some(p) if p.as_os_str() == "-" => Some(ButtonsInput::Stdin),
            Some(p) if p.as_os_str().is_empty() => {
                problems.push("gps.buttons: must name a socket path or \"-\" for stdin".into());
                None
            }
            Some(p) if p.as_os_str().len() > 100 => {
                problems.push(format!(
                    "gps.buttons: {} is too long for a Unix socket path (max 100 bytes)",
                    p.display()
                ));
                None
            }
            Some(p) => Some(ButtonsInput::Socket(p.clone())),
        };

        let d = GpsSettings::new(GpsSource::Gpsd { address: String::new() });
        let max_hdop = self.max_hdop.unwrap_or(d.max_hdop);
        if !(max_hdop.is_finite() && (0.5..=50.0).contains(&max_hdop)) {
            problems.push(format!("gps.max_hdop: {max_hdop} must be between 0.5 and 50"));
        }
        let (s, m) = (Duration::from_secs, |n: u64| Duration::from_secs(n * 60));
        let no_fix_after = duration(
            problems,
            "gps.no_fix_after",
            self.no_fix_after,
            d.no_fix_after,
            s(10),
            m(1440),
        );
        let battery_low_percent = match self.battery_low_percent {
            None => d.battery_low_percent,
            Some(p) if (1..=95).contains(&p) => p as u8,
            Some(p) => {
                problems.push(format!("gps.battery_low_percent: {p} must be between 1 and 95"));
                d.battery_low_percent
            }
        };
        let report_idle =
            duration(problems, "gps.report_idle", self.report_idle, d.report_idle, s(10), m(1440));
        let report_alarm =
            duration(problems, "gps.report_alarm", self.report_alarm, d.report_alarm, s(1), m(10));
        if report_alarm > report_idle {
            problems.push(format!(
                "gps.report_alarm ({report_alarm:?}) must not be longer than gps.report_idle \
                 ({report_idle:?}): alarms report more often, not less"
            ));
        }
        let margin_m = self.margin_m.unwrap_or(d.margin_m);
        if !(margin_m.is_finite() && (0.0..=1000.0).contains(&margin_m)) {
            problems.push(format!("gps.margin_m: {margin_m} must be between 0 and 1000"));
        }
        let dwell = duration(problems, "gps.dwell", self.dwell, d.dwell, s(1), m(60));
        let alarm_hold =
            duration(problems, "gps.alarm_hold", self.alarm_hold, d.alarm_hold, m(1), m(1440));
        let zone_name = self.time_zone.as_deref().unwrap_or(DEFAULT_TIME_ZONE);
        let tz =
            time_zone(zone_name).map_err(|e| problems.push(format!("gps.time_zone: {e}"))).ok();

        let mut names = BTreeSet::new();
        let mut areas = Vec::new();
        for (i, raw) in self.areas.iter().enumerate() {
            if !names.insert(raw.name.as_str()) {
                problems.push(format!("gps.areas[{i}].name: {:?} is used twice", raw.name));
            }
            if let Some(area) = raw.validate(&format!("gps.areas[{i}]"), tz.as_ref(), problems) {
                areas.push(area);
            }
        }

        match (source, tz, problems.len() == before) {
            (Some(source), Some(time_zone), true) => Some(GpsSettings {
                source,
                buttons,
                require_3d: self.require_3d.unwrap_or(d.require_3d),
                max_hdop,
                no_fix_after,
                battery_low_percent,
                report_idle,
                report_alarm,
                margin_m,
                dwell,
                alarm_hold,
                time_zone,
                areas,
            }),
            _ => None,
        }
    }

    fn source(&self, problems: &mut Vec<String>) -> Option<GpsSource> {
        let not_for = |problems: &mut Vec<String>, field: &str, kind: &str| {
            problems.push(format!("gps.{field}: not used with source = \"{kind}\""));
        };
        match self.source.as_deref() {
            Some("nmea") => {
                if self.address.is_some() {
                    not_for(problems, "address", "nmea");
                }
                let path = match &self.path {
                    Some(p) if !p.as_os_str().is_empty() => Some(p.clone()),
                    _ => {
                        problems.push(
                            "gps.path: required with source = \"nmea\" (a serial device such \
                             as /dev/ttyACM0, or a recorded file with replay_interval)"
                                .into(),
                        );
                        None
                    }
                };
                let input = match (self.replay_interval, self.baud) {
                    (Some(_), Some(_)) => {
                        problems.push(
                            "gps.baud: only for a serial device; a file with replay_interval \
                             has no baud rate"
                                .into(),
                        );
                        None
                    }
                    (Some(interval), None) => Some(NmeaInput::Replay {
                        interval: duration(
                            problems,
                            "gps.replay_interval",
                            Some(interval),
                            Duration::ZERO,
                            Duration::ZERO,
                            Duration::from_secs(60),
                        ),
                    }),
                    (None, baud) => {
                        let baud = baud.unwrap_or(DEFAULT_BAUD);
                        if !BAUDS.contains(&baud) {
                            problems.push(format!("gps.baud: {baud} is not one of {BAUDS:?}"));
                        }
                        Some(NmeaInput::Serial { baud })
                    }
                };
                Some(GpsSource::Nmea { path: path?, input: input? })
            }
            Some("gpsd") => {
                for (field, present) in [
                    ("path", self.path.is_some()),
                    ("baud", self.baud.is_some()),
                    ("replay_interval", self.replay_interval.is_some()),
                ] {
                    if present {
                        not_for(problems, field, "gpsd");
                    }
                }
                let address = self.address.as_deref().unwrap_or(DEFAULT_GPSD_ADDRESS);
                let ok = address
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !ok {
                    problems.push(format!(
                        "gps.address: {address:?} is not host:port (e.g. {DEFAULT_GPSD_ADDRESS:?})"
                    ));
                    return None;
                }
                Some(GpsSource::Gpsd { address: address.to_string() })
            }
            Some(other) => {
                problems.push(format!("gps.source: {other:?} is not \"nmea\" or \"gpsd\""));
                None
            }
            None => {
                problems.push(
                    "gps.source: required: \"nmea\" (a receiver's serial line or a recorded \
                     file) or \"gpsd\""
                        .into(),
                );
                None
            }
        }
    }
}

impl RawArea {
    /// Every problem of this area, each prefixed with `field` (e.g. `gps.areas[1]`), or the
    /// area; `tz` is the zone of its `active` windows (`None`: the zone itself was refused).
    pub fn validate(
        &self,
        field: &str,
        tz: Option<&TimeZone>,
        problems: &mut Vec<String>,
    ) -> Option<Area> {
        let before = problems.len();
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            problems.push(format!(
                "{field}.name: {:?} must be 1–200 characters without control characters",
                self.name
            ));
        }
        let shape = match (&self.circle, &self.polygon) {
            (Some(c), None) => circle(field, c, problems),
            (None, Some(points)) => polygon(field, points, problems),
            _ => {
                problems.push(format!(
                    "{field}: give exactly one of circle = {{ lat, lon, radius_m }} or \
                     polygon = [[lat, lon], …]"
                ));
                None
            }
        };
        let schedule = match &self.active {
            None => Some(Schedule::Always),
            Some(texts) if texts.is_empty() => {
                problems.push(format!(
                    "{field}.active: empty, so the area would never raise; leave it out for \
                     always"
                ));
                None
            }
            Some(texts) => {
                let mut windows = Vec::new();
                for (j, text) in texts.iter().enumerate() {
                    match text.parse::<ConsentWindow>() {
                        Ok(w) => windows.push(w),
                        Err(e) => problems.push(format!("{field}.active[{j}]: {e}")),
                    }
                }
                tz.map(|tz| Schedule::Windows { tz: tz.clone(), windows })
            }
        };
        match (shape, schedule, problems.len() == before) {
            (Some(shape), Some(schedule), true) => {
                Some(Area { name: name.to_string(), shape, schedule })
            }
            _ => None,
        }
    }
}

fn on_earth(field: &str, lat: f64, lon: f64, problems: &mut Vec<String>) -> bool {
    let ok = super::fix::valid_lat_lon(lat, lon);
    if !ok {
        problems.push(format!(
            "{field}: {lat}, {lon} is not a position (lat −90..90, lon −180..180, in degrees)"
        ));
    }
    ok
}

fn circle(field: &str, c: &RawCircle, problems: &mut Vec<String>) -> Option<Shape> {
    let mut ok = on_earth(&format!("{field}.circle"), c.lat, c.lon, problems);
    if !(c.radius_m.is_finite() && (10.0..=100_000.0).contains(&c.radius_m)) {
        problems.push(format!(
            "{field}.circle.radius_m: {} must be between 10 and 100000 metres",
            c.radius_m
        ));
        ok = false;
    }
    ok.then_some(Shape::Circle { centre: (c.lat, c.lon), radius_m: c.radius_m })
}

fn polygon(field: &str, raw: &[Vec<f64>], problems: &mut Vec<String>) -> Option<Shape> {
    let before = problems.len();
    let mut points = Vec::new();
    for (j, p) in raw.iter().enumerate() {
        let here = format!("{field}.polygon[{j}]");
        match p.as_slice() {
            &[lat, lon] => {
                if on_earth(&here, lat, lon, problems) {
                    points.push((lat, lon));
                }
            }
            _ => problems.push(format!("{here}: must be [lat, lon]")),
        }
    }
    // A ring written closed (last corner = first) is the same polygon.
    if points.len() > 1 && points.first() == points.last() {
        points.pop();
    }
    if problems.len() != before {
        return None;
    }
    if points.len() < 3 {
        problems.push(format!(
            "{field}.polygon: has {} corner(s); a polygon needs at least 3",
            points.len()
        ));
        return None;
    }
    let ring: LineString<f64> = points.iter().map(|&(lat, lon)| (lon, lat)).collect();
    if let Err(e) = Polygon::new(ring, Vec::new()).check_validation() {
        problems.push(format!("{field}.polygon: {e} (corners must go round the area in order)"));
        return None;
    }
    Some(Shape::Polygon { points })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        gps: RawGps,
    }

    fn parse(text: &str) -> RawGps {
        toml::from_str::<File>(text).unwrap_or_else(|e| panic!("{e}")).gps
    }

    fn check(text: &str) -> Result<GpsSettings, Vec<String>> {
        let mut problems = Vec::new();
        parse(text).validate(&mut problems).ok_or(problems)
    }

    #[test]
    fn the_annotated_example_is_valid_with_every_setting() {
        let file: crate::config::RawConfig =
            toml::from_str(include_str!("../../../config/agent.toml")).unwrap();
        let mut problems = Vec::new();
        let s = file.gps.unwrap().validate(&mut problems).unwrap_or_else(|| panic!("{problems:?}"));
        assert_eq!(
            s.source,
            GpsSource::Nmea {
                path: "/dev/ttyACM0".into(),
                input: NmeaInput::Serial { baud: 9600 }
            }
        );
        assert_eq!(s.buttons, Some(ButtonsInput::Socket("/run/vaka/gps-buttons.sock".into())));
        assert_eq!(s.areas.len(), 2);
        assert!(matches!(s.areas[0].schedule, Schedule::Windows { .. }));
        assert!(matches!(s.areas[1].shape, Shape::Polygon { ref points } if points.len() == 5));
        assert_eq!(s.time_zone.iana_name(), Some("Europe/Stockholm"));
    }

    #[test]
    fn a_minimal_section_gets_the_documented_defaults() {
        let s = check("[gps]\nsource = \"gpsd\"").unwrap();
        assert_eq!(s.source, GpsSource::Gpsd { address: DEFAULT_GPSD_ADDRESS.into() });
        assert_eq!((s.require_3d, s.max_hdop, s.battery_low_percent), (false, 5.0, 20));
        assert_eq!(s.no_fix_after, Duration::from_secs(600));
        assert_eq!(
            (s.report_idle, s.report_alarm),
            (Duration::from_secs(900), Duration::from_secs(10))
        );
        assert_eq!((s.margin_m, s.dwell), (25.0, Duration::from_secs(60)));
        assert_eq!(s.alarm_hold, Duration::from_secs(900));
        assert!(s.areas.is_empty() && s.buttons.is_none());
    }

    #[test]
    fn a_recorded_file_is_replayed_and_stdin_can_carry_the_buttons() {
        let s = check(
            "[gps]\nsource = \"nmea\"\npath = \"track.nmea\"\nreplay_interval = \"200ms\"\nbuttons = \"-\"",
        )
        .unwrap();
        assert_eq!(
            s.source,
            GpsSource::Nmea {
                path: "track.nmea".into(),
                input: NmeaInput::Replay { interval: Duration::from_millis(200) }
            }
        );
        assert_eq!(s.buttons, Some(ButtonsInput::Stdin));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_field() {
        let problems = check(
            r#"
[gps]
source = "nmea"
baud = 1234
address = "x"
max_hdop = 0
no_fix_after = "1s"
battery_low_percent = 100
report_idle = "15s"
report_alarm = "30s"
margin_m = -1
dwell = "0s"
time_zone = "Mars/Olympus"

[[gps.areas]]
name = "hemma"
circle = { lat = 64.75, lon = 20.95, radius_m = 5 }
active = ["20:00-08:00", "25:00-26:00"]

[[gps.areas]]
name = "hemma"
polygon = [[64.75, 20.95], [64.76, 20.95], [64.75, 20.96], [64.76, 20.96]]

[[gps.areas]]
name = ""
polygon = [[64.75, 20.95], [95.0, 20.95], [64.75]]

[[gps.areas]]
name = "both"
circle = { lat = 64.75, lon = 20.95, radius_m = 50 }
polygon = [[64.75, 20.95], [64.76, 20.95], [64.75, 20.96]]
active = []
"#,
        )
        .unwrap_err();
        let expect = [
            "gps.address: not used with source = \"nmea\"",
            "gps.path: required",
            "gps.baud: 1234 is not one of",
            "gps.max_hdop: 0 must be between",
            "gps.no_fix_after: 1s must be between",
            "gps.battery_low_percent: 100",
            "gps.report_alarm (30s) must not be longer than gps.report_idle (15s)",
            "gps.margin_m: -1",
            "gps.dwell: 0s must be between",
            "gps.time_zone: time zone \"Mars/Olympus\" is not known",
            "gps.areas[0].circle.radius_m: 5 must be between 10 and 100000",
            "gps.areas[0].active[1]: window \"25:00-26:00\"",
            "gps.areas[1].name: \"hemma\" is used twice",
            "gps.areas[1].polygon: exterior ring has a self-intersection",
            "gps.areas[2].name: \"\" must be",
            "gps.areas[2].polygon[1]: 95, 20.95 is not a position",
            "gps.areas[2].polygon[2]: must be [lat, lon]",
            "gps.areas[3]: give exactly one of circle",
            "gps.areas[3].active: empty",
        ];
        for e in expect {
            assert!(problems.iter().any(|p| p.starts_with(e)), "missing {e:?} in {problems:#?}");
        }
        assert_eq!(problems.len(), expect.len(), "{problems:#?}");
    }

    #[test]
    fn gpsd_refuses_serial_settings_and_a_bad_address() {
        let problems =
            check("[gps]\nsource = \"gpsd\"\naddress = \"localhost\"\nbaud = 9600").unwrap_err();
        assert_eq!(
            problems,
            [
                "gps.baud: not used with source = \"gpsd\"",
                "gps.address: \"localhost\" is not host:port (e.g. \"127.0.0.1:2947\")"
            ]
        );
        let problems = check("[gps]\nsource = \"serial\"").unwrap_err();
        assert_eq!(problems, ["gps.source: \"serial\" is not \"nmea\" or \"gpsd\""]);
    }

    #[test]
    fn a_polygon_written_closed_is_the_same_polygon_and_two_corners_are_too_few() {
        let closed = r#"
[gps]
source = "gpsd"
[[gps.areas]]
name = "gård"
polygon = [[64.75, 20.95], [64.76, 20.95], [64.76, 20.96], [64.75, 20.95]]
"#;
        let s = check(closed).unwrap();
        assert!(matches!(&s.areas[0].shape, Shape::Polygon { points } if points.len() == 3));
        let two = closed.replace("[64.76, 20.96], ", "");
        let problems = check(&two).unwrap_err();
        assert_eq!(problems, ["gps.areas[0].polygon: has 2 corner(s); a polygon needs at least 3"]);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = toml::from_str::<File>("[gps]\nsource = \"gpsd\"\nmax_hdpo = 3.0").err().unwrap();
        assert!(err.to_string().contains("max_hdpo"), "{err}");
    }
}
