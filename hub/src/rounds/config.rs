//! `[rounds]` in the hub config: the night shift, the escalation delays, where travel times
//! come from, and (for demos and simulated nights only) a compressed clock.
//!
//! ```toml
//! [rounds]
//! enabled = true                 # generate and run rounds (default true)
//! time_zone = "Europe/Stockholm" # the default
//! shift = "21:00-07:00"          # the night shift, local wall-clock
//! retry_after = "20m"            # a camera check that did not settle: one retry after this
//! visit_promise = "45m"          # then a visit, staff on site within this
//! answer_within = "10m"          # a camera check without an answer by then failed
//! staff_within = "15m"           # an unclear snapshot nobody decided on by then failed
//! close_after = "60m"            # after the shift, open checks end `missed`
//! [rounds.travel]
//! source = "straight"            # or "osrm_table" with path = "/etc/vaka/osrm-table.json"
//! road_factor = 1.3
//! speed_kmh = 60
//! [rounds.simulated_clock]       # simulation only: never in production
//! start = "2026-11-23T21:55:00+01:00"   # the round's time at `anchor`
//! anchor = "2026-11-23T09:00:00Z"       # a real moment (so a restarted hub keeps the same time)
//! speed = 120
//! ```

use super::night::Shift;
use super::scheduler::Settings;
use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRounds {
    pub enabled: Option<bool>,
    pub time_zone: Option<String>,
    pub shift: Option<String>,
    pub retry_after: Option<SignedDuration>,
    pub visit_promise: Option<SignedDuration>,
    pub answer_within: Option<SignedDuration>,
    pub staff_within: Option<SignedDuration>,
    pub close_after: Option<SignedDuration>,
    #[serde(default)]
    pub travel: RawTravel,
    pub simulated_clock: Option<RawSimulatedClock>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTravel {
    pub source: Option<String>,
    pub road_factor: Option<f64>,
    pub speed_kmh: Option<f64>,
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSimulatedClock {
    pub start: Timestamp,
    pub anchor: Timestamp,
    pub speed: f64,
}

/// Where travel times between homes come from.
#[derive(Debug, Clone, PartialEq)]
pub enum TravelSource {
    /// Great-circle distance × `road_factor`, driven at `speed_kmh`.
    Straight { road_factor: f64, speed_kmh: f64 },
    /// A precomputed matrix in the format of OSRM's table service.
    OsrmTable { path: PathBuf },
}

/// The round's clock: real time, or a compressed simulated night.
#[derive(Clone)]
pub enum RoundClock {
    System,
    /// Round time = `start + (real now − anchor) × speed`.
    Simulated { start: Timestamp, anchor: Timestamp, speed: f64 },
}

impl RoundClock {
    pub fn now(&self) -> Timestamp {
        match self {
            RoundClock::System => Timestamp::now(),
            RoundClock::Simulated { start, anchor, speed } => {
                let real = Timestamp::now().duration_since(*anchor);
                let scaled = SignedDuration::try_from_secs_f64(real.as_secs_f64() * speed).unwrap_or_default();
                start.checked_add(scaled).unwrap_or(*start)
            }
        }
    }

    /// How many round seconds pass per real second.
    pub fn speed(&self) -> f64 {
        match self {
            RoundClock::System => 1.0,
            RoundClock::Simulated { speed, .. } => *speed,
        }
    }
}

impl std::fmt::Debug for RoundClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoundClock::System => f.write_str("system"),
            RoundClock::Simulated { start, anchor, speed } => write!(f, "simulated {speed}x from {start} at {anchor}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RoundsConfig {
    pub enabled: bool,
    pub shift: Shift,
    pub settings: Settings,
    pub travel: TravelSource,
    pub clock: RoundClock,
}

pub const DEFAULT_SHIFT: (Time, Time) = (Time::constant(21, 0, 0, 0), Time::constant(7, 0, 0, 0));

impl Default for RoundsConfig {
    fn default() -> Self {
        RoundsConfig {
            enabled: true,
            shift: Shift { start: DEFAULT_SHIFT.0, end: DEFAULT_SHIFT.1, tz: stockholm() },
            settings: Settings::default(),
            travel: TravelSource::Straight { road_factor: 1.3, speed_kmh: 60.0 },
            clock: RoundClock::System,
        }
    }
}

fn stockholm() -> TimeZone {
    TimeZone::get("Europe/Stockholm").unwrap_or(TimeZone::UTC)
}

/// Parses `HH:MM-HH:MM`.
pub fn parse_span(text: &str) -> Option<(Time, Time)> {
    let (a, b) = text.split_once('-')?;
    let t = |s: &str| -> Option<Time> {
        let (h, m) = s.trim().split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
    };
    Some((t(a)?, t(b)?))
}

fn minutes(field: &str, d: Option<SignedDuration>, default: SignedDuration, (min, max): (i64, i64), problems: &mut Vec<String>) -> SignedDuration {
    let Some(d) = d else { return default };
    if d < SignedDuration::from_mins(min) || d > SignedDuration::from_mins(max) {
        problems.push(format!("rounds.{field}: {d:#} must be between {min} and {max} minutes"));
        return default;
    }
    d
}

impl RawRounds {
    pub fn validate(&self, problems: &mut Vec<String>) -> RoundsConfig {
        let d = RoundsConfig::default();
        let tz = match &self.time_zone {
            None => d.shift.tz.clone(),
            Some(name) => TimeZone::get(name).unwrap_or_else(|e| {
                problems.push(format!("rounds.time_zone: `{name}` is not a known time zone: {e}"));
                d.shift.tz.clone()
            }),
        };
        let (start, end) = match &self.shift {
            None => DEFAULT_SHIFT,
            Some(text) => match parse_span(text) {
                Some((a, b)) if a != b => (a, b),
                _ => {
                    problems.push(format!("rounds.shift: `{text}` is not a span like 21:00-07:00"));
                    DEFAULT_SHIFT
                }
            },
        };
        let ds = d.settings;
        let settings = Settings {
            retry_after: minutes("retry_after", self.retry_after, ds.retry_after, (1, 120), problems),
            visit_promise: minutes("visit_promise", self.visit_promise, ds.visit_promise, (5, 240), problems),
            answer_within: minutes("answer_within", self.answer_within, ds.answer_within, (1, 60), problems),
            staff_within: minutes("staff_within", self.staff_within, ds.staff_within, (1, 120), problems),
            close_after: minutes("close_after", self.close_after, ds.close_after, (0, 600), problems),
        };
        let t = &self.travel;
        let travel = match t.source.as_deref().unwrap_or("straight") {
            "straight" => {
                if t.path.is_some() {
                    problems.push("rounds.travel.path: only for source = \"osrm_table\"".into());
                }
                let road_factor = t.road_factor.unwrap_or(1.3);
                let speed_kmh = t.speed_kmh.unwrap_or(60.0);
                if !(1.0..=3.0).contains(&road_factor) {
                    problems.push(format!("rounds.travel.road_factor: {road_factor} must be between 1.0 and 3.0"));
                }
                if !(5.0..=130.0).contains(&speed_kmh) {
                    problems.push(format!("rounds.travel.speed_kmh: {speed_kmh} must be between 5 and 130"));
                }
                TravelSource::Straight { road_factor, speed_kmh }
            }
            "osrm_table" => match &t.path {
                Some(path) => TravelSource::OsrmTable { path: path.clone() },
                None => {
                    problems.push("rounds.travel.path: the OSRM table file is required for source = \"osrm_table\"".into());
                    d.travel.clone()
                }
            },
            other => {
                problems.push(format!("rounds.travel.source: `{other}` is not \"straight\" or \"osrm_table\""));
                d.travel.clone()
            }
        };
        let clock = match &self.simulated_clock {
            None => RoundClock::System,
            Some(s) if s.speed.is_finite() && (0.1..=10_000.0).contains(&s.speed) => {
                RoundClock::Simulated { start: s.start, anchor: s.anchor, speed: s.speed }
            }
            Some(s) => {
                problems.push(format!("rounds.simulated_clock.speed: {} must be between 0.1 and 10000", s.speed));
                RoundClock::System
            }
        };
        RoundsConfig { enabled: self.enabled.unwrap_or(true), shift: Shift { start, end, tz }, settings, travel, clock }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (RoundsConfig, Vec<String>) {
        let raw: RawRounds = toml::from_str(text).unwrap();
        let mut problems = Vec::new();
        (raw.validate(&mut problems), problems)
    }

    #[test]
    fn defaults_are_the_stockholm_night_shift_with_twenty_and_forty_five_minutes() {
        let (c, problems) = parse("");
        assert!(problems.is_empty());
        assert_eq!((c.shift.start, c.shift.end), DEFAULT_SHIFT);
        assert_eq!(c.settings.retry_after, SignedDuration::from_mins(20));
        assert_eq!(c.settings.visit_promise, SignedDuration::from_mins(45));
        assert_eq!(c.travel, TravelSource::Straight { road_factor: 1.3, speed_kmh: 60.0 });
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let (_, problems) = parse(
            "shift = \"21:00-21:00\"\ntime_zone = \"Mars/Olympus\"\nretry_after = \"0s\"\n[travel]\nsource = \"osrm_table\"\n[simulated_clock]\nstart = \"2026-11-23T20:00:00Z\"\nanchor = \"2026-11-23T20:00:00Z\"\nspeed = 0\n",
        );
        let fields: Vec<&str> = problems.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            vec!["rounds.time_zone", "rounds.shift", "rounds.retry_after", "rounds.travel.path", "rounds.simulated_clock.speed"],
            "{problems:?}"
        );
    }

    #[test]
    fn a_simulated_clock_keeps_its_time_line_across_a_restart() {
        let anchor = Timestamp::now() - SignedDuration::from_secs(10);
        let start: Timestamp = "2026-11-23T20:55:00Z".parse().unwrap();
        let a = RoundClock::Simulated { start, anchor, speed: 60.0 };
        let b = RoundClock::Simulated { start, anchor, speed: 60.0 };
        let (ta, tb) = (a.now(), b.now());
        assert!(tb.duration_since(ta).abs() < SignedDuration::from_secs(5));
        assert!(ta >= start + SignedDuration::from_mins(10));
    }
}
