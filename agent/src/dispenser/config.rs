//! `[dispenser]` in the agent config: where the bridge's lines come from, and the timing
//! rules of the [`DoseBook`](super::DoseBook). `config/agent.toml` is the
//! annotated example.
//!
//! ```toml
//! [dispenser]
//! source = "socket"               # "serial" | "socket" | "stdin" | "simulator"
//! path = "/run/vaka/dispenser.sock"
//! grace = "30m"                   # 1m..=6h after the scheduled time
//! offline_after = "10m"           # 1m..=6h without a line (heartbeats count)
//! future_tolerance = "5m"         # 1s..=1h: lines further ahead of the agent's clock are refused
//! [dispenser.medications."Waran 2,5 mg"]
//! grace = "45m"
//! ```
//! Validation is pure and collects every problem, each naming its field; that a serial port or
//! socket path can be opened is the shell's business when it starts.

use super::core::{Rules, DEFAULT_FUTURE_TOLERANCE, DEFAULT_GRACE, DEFAULT_OFFLINE_AFTER};
use crate::config::duration;
use jiff::SignedDuration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use vaka_protocol::kinds::MAX_TEXT;

pub const DEFAULT_BAUD: u32 = 9600;
const BAUDS: [u32; 9] = [1200, 2400, 4800, 9600, 19_200, 38_400, 57_600, 115_200, 230_400];
/// Longest Unix socket path accepted (the kernel's limit is 108 bytes with the terminator).
const MAX_SOCKET_PATH: usize = 100;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDispenser {
    pub source: Option<String>,
    /// serial: the device (`/dev/ttyUSB0`); socket: where the agent listens for the bridge.
    pub path: Option<PathBuf>,
    /// serial only.
    pub baud: Option<i64>,
    /// simulator only.
    pub seed: Option<u64>,
    /// simulator only: clock compression, 60.0 makes a simulated hour pass in a minute.
    pub speed: Option<f64>,
    pub grace: Option<SignedDuration>,
    pub offline_after: Option<SignedDuration>,
    pub future_tolerance: Option<SignedDuration>,
    /// Grace by medication name, exactly as the dispenser writes it in `medication`.
    #[serde(default)]
    pub medications: BTreeMap<String, RawMedication>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMedication {
    pub grace: Option<SignedDuration>,
}

/// Where the bridge's lines come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSettings {
    Serial {
        path: PathBuf,
        baud: u32,
    },
    /// A Unix socket the agent listens on; the bridge connects and writes lines.
    Socket {
        path: PathBuf,
    },
    Stdin,
    Simulator {
        seed: u64,
        speed: f64,
    },
}

/// The validated `[dispenser]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct DispenserSettings {
    pub source: SourceSettings,
    pub rules: Rules,
}

impl DispenserSettings {
    /// A one-line summary for `check-config` and the start-up log.
    pub fn summary(&self) -> String {
        let source = match &self.source {
            SourceSettings::Serial { path, baud } => {
                format!("serial {} at {baud} baud", path.display())
            }
            SourceSettings::Socket { path } => format!("socket {}", path.display()),
            SourceSettings::Stdin => "stdin".into(),
            SourceSettings::Simulator { seed, speed } => {
                format!("simulated (seed {seed}, speed {speed})")
            }
        };
        let r = &self.rules;
        format!(
            "dispenser {source}, grace {:#} ({} by medication), offline after {:#}",
            r.grace,
            r.grace_by_medication.len(),
            r.offline_after
        )
    }
}

/// [`duration`] for settings kept as `SignedDuration`.
fn signed(
    problems: &mut Vec<String>,
    field: &str,
    value: Option<SignedDuration>,
    default: SignedDuration,
    min: SignedDuration,
    max: SignedDuration,
) -> SignedDuration {
    let d = duration(
        problems,
        field,
        value,
        default.unsigned_abs(),
        min.unsigned_abs(),
        max.unsigned_abs(),
    );
    SignedDuration::try_from(d).unwrap_or(default)
}

const MINUTE: SignedDuration = SignedDuration::from_mins(1);

impl RawDispenser {
    /// Every problem of the section, each naming its field, or the settings.
    pub fn validate(&self, problems: &mut Vec<String>) -> Option<DispenserSettings> {
        let before = problems.len();
        let source = self.source(problems);
        let hours = SignedDuration::from_hours;
        let grace =
            signed(problems, "dispenser.grace", self.grace, DEFAULT_GRACE, MINUTE, hours(6));
        let offline_after = signed(
            problems,
            "dispenser.offline_after",
            self.offline_after,
            DEFAULT_OFFLINE_AFTER,
            MINUTE,
            hours(6),
        );
        let future_tolerance = signed(
            problems,
            "dispenser.future_tolerance",
            self.future_tolerance,
            DEFAULT_FUTURE_TOLERANCE,
            SignedDuration::from_secs(1),
            hours(1),
        );
        let mut grace_by_medication = BTreeMap::new();
        for (name, medication) in &self.medications {
            let field = format!("dispenser.medications.{name:?}");
            if name.trim().is_empty()
                || name.chars().count() > MAX_TEXT
                || name.chars().any(char::is_control)
            {
                problems.push(format!(
                    "{field}: a medication name is 1–{MAX_TEXT} characters without control \
                     characters, exactly as the dispenser writes it"
                ));
            }
            match medication.grace {
                None => problems.push(format!(
                    "{field}.grace: required (leave the medication out to use dispenser.grace)"
                )),
                Some(g) => {
                    let g = signed(
                        problems,
                        &format!("{field}.grace"),
                        Some(g),
                        grace,
                        MINUTE,
                        hours(6),
                    );
                    grace_by_medication.insert(name.clone(), g);
                }
            }
        }
        if problems.len() > before {
            return None;
        }
        Some(DispenserSettings {
            source: source?,
            rules: Rules { grace, grace_by_medication, offline_after, future_tolerance },
        })
    }

    fn source(&self, problems: &mut Vec<String>) -> Option<SourceSettings> {
        let kind = self.source.as_deref();
        let serial = kind == Some("serial");
        let simulator = kind == Some("simulator");
        let with_path = matches!(kind, Some("serial" | "socket"));
        let mut only = |field: &str, given: bool, allowed: bool, for_what: &str| {
            if given && !allowed {
                problems.push(format!("dispenser.{field}: only for source = {for_what}"));
            }
        };
        only("path", self.path.is_some(), with_path, "\"serial\" or \"socket\"");
        only("baud", self.baud.is_some(), serial, "\"serial\"");
        only("seed", self.seed.is_some(), simulator, "\"simulator\"");
        only("speed", self.speed.is_some(), simulator, "\"simulator\"");

        let path = |problems: &mut Vec<String>, what: &str| match &self.path {
            Some(p) if !p.as_os_str().is_empty() => Some(p.clone()),
            _ => {
                problems.push(format!("dispenser.path: required with source = {what}"));
                None
            }
        };
        match kind {
            Some("serial") => {
                let path = path(problems, "\"serial\" (the device, e.g. /dev/ttyUSB0)");
                let baud = match self.baud {
                    None => DEFAULT_BAUD,
                    Some(b) => match BAUDS.iter().find(|&&ok| i64::from(ok) == b) {
                        Some(&b) => b,
                        None => {
                            problems.push(format!(
                                "dispenser.baud: {b} is not one of {}",
                                BAUDS.map(|b| b.to_string()).join(", ")
                            ));
                            DEFAULT_BAUD
                        }
                    },
                };
                Some(SourceSettings::Serial { path: path?, baud })
            }
            Some("socket") => {
                let path = path(problems, "\"socket\" (where the agent listens for the bridge)")?;
                if path.as_os_str().len() > MAX_SOCKET_PATH {
                    problems.push(format!(
                        "dispenser.path: {} is too long for a Unix socket path (max {MAX_SOCKET_PATH} bytes)",
                        path.display()
                    ));
                }
                Some(SourceSettings::Socket { path })
            }
            Some("stdin") => Some(SourceSettings::Stdin),
            Some("simulator") => {
                let speed = self.speed.unwrap_or(1.0);
                if !(speed.is_finite() && (0.01..=100_000.0).contains(&speed)) {
                    problems
                        .push(format!("dispenser.speed: {speed} must be between 0.01 and 100000"));
                }
                Some(SourceSettings::Simulator { seed: self.seed.unwrap_or(1), speed })
            }
            other => {
                let given =
                    other.map(|o| format!("{o:?} is not one of")).unwrap_or("required:".into());
                problems.push(format!(
                    "dispenser.source: {given} \"serial\", \"socket\", \"stdin\", \"simulator\""
                ));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        dispenser: RawDispenser,
    }

    fn parse(text: &str) -> RawDispenser {
        toml::from_str::<File>(text).unwrap_or_else(|e| panic!("{e}")).dispenser
    }

    fn problems(text: &str) -> Vec<String> {
        let mut problems = Vec::new();
        assert!(parse(text).validate(&mut problems).is_none(), "expected problems");
        problems
    }

    fn settings(text: &str) -> DispenserSettings {
        let mut problems = Vec::new();
        let settings = parse(text).validate(&mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        settings.unwrap()
    }

    #[test]
    fn socket_source_alone_gets_the_default_rules() {
        let s = settings("[dispenser]\nsource = \"socket\"\npath = \"/run/vaka/dispenser.sock\"");
        assert_eq!(s.source, SourceSettings::Socket { path: "/run/vaka/dispenser.sock".into() });
        assert_eq!(s.rules, Rules::default());
        assert_eq!(s.rules.grace, SignedDuration::from_mins(30));
        assert_eq!(s.rules.offline_after, SignedDuration::from_mins(10));
    }

    #[test]
    fn grace_by_medication_overrides_the_section_grace_for_that_name_only() {
        let s = settings(
            r#"[dispenser]
source = "stdin"
grace = "20m"
[dispenser.medications."Waran 2,5 mg"]
grace = "45m"
"#,
        );
        assert_eq!(s.rules.grace_for("Waran 2,5 mg"), SignedDuration::from_mins(45));
        assert_eq!(s.rules.grace_for("waran 2,5 mg"), SignedDuration::from_mins(20));
    }

    #[test]
    fn serial_defaults_to_9600_baud_and_simulator_to_seed_1() {
        let s = settings("[dispenser]\nsource = \"serial\"\npath = \"/dev/ttyUSB0\"");
        assert_eq!(s.source, SourceSettings::Serial { path: "/dev/ttyUSB0".into(), baud: 9600 });
        let s = settings("[dispenser]\nsource = \"simulator\"\nspeed = 60.0");
        assert_eq!(s.source, SourceSettings::Simulator { seed: 1, speed: 60.0 });
    }

    #[test]
    fn every_problem_of_the_section_is_reported_at_once_with_its_field() {
        let all = problems(
            r#"[dispenser]
source = "serial"
baud = 9601
seed = 3
grace = "10s"
offline_after = "7h"
future_tolerance = "0s"
[dispenser.medications."Waran 2,5 mg"]
grace = "8h"
[dispenser.medications."Alvedon"]
[dispenser.medications."  "]
grace = "40m"
"#,
        )
        .join("\n");
        for expected in [
            "dispenser.path: required with source = \"serial\"",
            "dispenser.baud: 9601 is not one of 1200, 2400",
            "dispenser.seed: only for source = \"simulator\"",
            "dispenser.grace: 10s must be between 1m and 6h",
            "dispenser.offline_after: 7h must be between 1m and 6h",
            "dispenser.future_tolerance: 0s must be between 1s and 1h",
            "dispenser.medications.\"Waran 2,5 mg\".grace: 8h must be between 1m and 6h",
            "dispenser.medications.\"Alvedon\".grace: required",
            "dispenser.medications.\"  \": a medication name is 1–200 characters",
        ] {
            assert!(all.contains(expected), "{expected:?} missing in:\n{all}");
        }
    }

    #[test]
    fn missing_or_unknown_source_and_misplaced_keys_are_named() {
        let all = problems("[dispenser]\npath = \"/tmp/x\"\nspeed = 2.0").join("\n");
        assert!(all.contains("dispenser.source: required: \"serial\""), "{all}");
        assert!(all.contains("dispenser.speed: only for source = \"simulator\""), "{all}");
        let all = problems("[dispenser]\nsource = \"usb\"").join("\n");
        assert!(all.contains("dispenser.source: \"usb\" is not one of"), "{all}");
        let all = problems("[dispenser]\nsource = \"stdin\"\npath = \"/tmp/x\"").join("\n");
        assert_eq!(all, "dispenser.path: only for source = \"serial\" or \"socket\"");
        let long = format!("/run/{}.sock", "d".repeat(120));
        let all =
            problems(&format!("[dispenser]\nsource = \"socket\"\npath = \"{long}\"")).join("\n");
        assert!(all.contains("too long for a Unix socket path"), "{all}");
    }

    #[test]
    fn unknown_keys_are_refused_by_the_reader() {
        let err = toml::from_str::<File>("[dispenser]\nsource = \"stdin\"\ngrase = \"5m\"")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("grase"), "{err}");
        let err = toml::from_str::<File>(
            "[dispenser]\nsource = \"stdin\"\n[dispenser.medications.\"A\"]\ngrace = \"5m\"\nnote = 1",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("note"), "{err}");
    }

    #[test]
    fn annotated_example_is_valid() {
        let file: crate::config::RawConfig =
            toml::from_str(include_str!("../../../config/agent.toml")).unwrap();
        let mut problems = Vec::new();
        let s = file.dispenser.unwrap().validate(&mut problems).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.source, SourceSettings::Socket { path: "/run/vaka/dispenser.sock".into() });
        assert_eq!(s.rules.grace_for("Waran 2,5 mg"), SignedDuration::from_mins(45));
        assert_eq!(s.rules.future_tolerance, SignedDuration::from_mins(5));
    }
}
