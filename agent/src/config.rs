//! The agent's configuration file (`config/agent.toml` is the annotated specification).
//!
//! Read in two steps: serde reads a [`RawConfig`] that refuses unknown keys (a typo must not
//! silently turn a setting off); the pure [`RawConfig::validate`] then checks every value,
//! collects *all* problems into one report, and returns a typed [`AgentConfig`]. The fields of
//! [`AgentConfig`] are public so that tests and the hub's demo can build one in code
//! ([`AgentConfig::new`] fills in the defaults).

use crate::camera::config::{CameraSettings, RawCamera};
use crate::dispenser::{DispenserSettings, RawDispenser};
use crate::gps::config::{GpsSettings, RawGps};
use crate::link::{MqttLink, RawMqtt};
use jiff::SignedDuration;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;
use vaka_protocol::{DeviceId, SiteId};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub device_id: String,
    pub site: String,
    pub mqtt: RawMqtt,
    #[serde(default)]
    pub uplink: RawUplink,
    pub outbox: RawOutbox,
    #[serde(default)]
    pub intake: RawIntake,
    #[serde(default)]
    pub simulator: RawSimulator,
    /// Leave out for a device without a camera (hub requests are then answered camera_fault).
    pub camera: Option<RawCamera>,
    /// Leave out for a device without a GPS tracker.
    pub gps: Option<RawGps>,
    /// Leave out for a device without a medication dispenser.
    pub dispenser: Option<RawDispenser>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUplink {
    pub heartbeat: Option<SignedDuration>,
    pub reconnect_min: Option<SignedDuration>,
    pub reconnect_max: Option<SignedDuration>,
    pub ack_timeout: Option<SignedDuration>,
    pub max_in_flight: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutbox {
    pub path: PathBuf,
    pub max_bytes: Option<i64>,
    /// Disk space kept for alarms when the disk fills up; 0 keeps none.
    pub reserve_bytes: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIntake {
    pub socket: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSimulator {
    #[serde(default)]
    pub enabled: bool,
    pub speed: Option<f64>,
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UplinkSettings {
    /// Retained `online` status with outbox depth, this often.
    pub heartbeat: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// An in-flight event not acked by the hub within this is sent again.
    pub ack_timeout: Duration,
    pub max_in_flight: usize,
}

impl Default for UplinkSettings {
    fn default() -> Self {
        UplinkSettings {
            heartbeat: Duration::from_secs(60),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            ack_timeout: Duration::from_secs(30),
            max_in_flight: 100,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxSettings {
    pub path: PathBuf,
    /// Payload bytes of pending events; see the `outbox` module note.
    pub max_bytes: u64,
    /// Disk space kept for alarms when the disk fills up (`crate::outbox::reserve`).
    pub reserve_bytes: u64,
}

/// Default disk budget: 64 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorSettings {
    /// Clock compression: 60.0 makes a simulated hour pass in a minute.
    pub speed: f64,
    pub seed: u64,
}

/// A validated agent configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub device_id: DeviceId,
    pub site: SiteId,
    pub link: MqttLink,
    /// MQTT client id; `{site}-{device_id}` unless configured.
    pub client_id: String,
    pub uplink: UplinkSettings,
    pub outbox: OutboxSettings,
    pub intake_socket: Option<PathBuf>,
    pub simulator: Option<SimulatorSettings>,
    pub camera: Option<CameraSettings>,
    pub gps: Option<GpsSettings>,
    pub dispenser: Option<DispenserSettings>,
}

impl AgentConfig {
    /// A configuration with every default: no intake socket, no simulator.
    pub fn new(device_id: DeviceId, site: SiteId, link: MqttLink, outbox_path: PathBuf) -> Self {
        AgentConfig {
            client_id: format!("{site}-{device_id}"),
            device_id,
            site,
            link,
            uplink: UplinkSettings::default(),
            outbox: OutboxSettings {
                path: outbox_path,
                max_bytes: DEFAULT_MAX_BYTES,
                reserve_bytes: crate::outbox::DEFAULT_RESERVE_BYTES,
            },
            intake_socket: None,
            simulator: None,
            camera: None,
            gps: None,
            dispenser: None,
        }
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        raw.validate()
            .map_err(|problems| ConfigError::Invalid { path: path.to_path_buf(), problems })
    }

    /// Problems outside the file itself: files it names that cannot be read. `check-config`
    /// reports them as errors; `run` logs them and goes on, because a device whose camera is
    /// not calibrated must still forward its alarms (its camera checks report `camera_fault`).
    pub fn preflight(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(reference) = self.camera.as_ref().and_then(|c| c.reference.as_ref()) {
            if let Err(e) = image::image_dimensions(reference) {
                problems.push(format!(
                    "camera.reference: {} cannot be read as an image: {e}",
                    reference.display()
                ));
            }
        }
        problems
    }

    /// Where the agent keeps its state beside the outbox: installer mode and the bed zone the
    /// hub sent (`camera::calibration`).
    pub fn data_dir(&self) -> PathBuf {
        match self.outbox.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// The home's time zone for local times (the simulated dispenser's dose hours): the GPS
    /// section's, else Europe/Stockholm.
    pub fn time_zone(&self) -> jiff::tz::TimeZone {
        match &self.gps {
            Some(gps) => gps.time_zone.clone(),
            None => crate::camera::consent::time_zone(crate::camera::consent::DEFAULT_TIME_ZONE)
                .unwrap_or(jiff::tz::TimeZone::UTC),
        }
    }

    /// A one-line summary for `check-config` and the start-up log.
    pub fn summary(&self) -> String {
        format!(
            "device {} at site {}, broker {}:{} ({}), outbox {}{}{}{}",
            self.device_id,
            self.site,
            self.link.host,
            self.link.port,
            if self.link.tls.is_some() { "TLS" } else { "plain TCP" },
            self.outbox.path.display(),
            self.intake_socket
                .as_ref()
                .map(|p| format!(", intake {}", p.display()))
                .unwrap_or_default(),
            self.simulator
                .as_ref()
                .map(|s| format!(", simulator speed {} seed {}", s.speed, s.seed))
                .unwrap_or_default(),
            self.camera.as_ref().map(|c| format!(", {}", c.summary())).unwrap_or_default(),
        ) + &self.gps.as_ref().map(|g| format!(", {}", g.summary())).unwrap_or_default()
            + &self.dispenser.as_ref().map(|d| format!(", {}", d.summary())).unwrap_or_default()
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path} is not valid TOML for the agent:\n{message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config {path} has {n} problem(s):\n{list}", n = problems.len(), list = problems.join("\n"))]
    Invalid { path: PathBuf, problems: Vec<String> },
}

/// A duration setting: `default` when absent, else it must lie in `min..=max`; a problem is
/// pushed (and the default used, so validation can go on) otherwise.
pub(crate) fn duration(
    problems: &mut Vec<String>,
    field: &str,
    value: Option<SignedDuration>,
    default: Duration,
    min: Duration,
    max: Duration,
) -> Duration {
    let Some(value) = value else { return default };
    match Duration::try_from(value) {
        Ok(d) if d >= min && d <= max => d,
        _ => {
            problems.push(format!(
                "{field}: {value:#} must be between {:#} and {:#}",
                SignedDuration::try_from(min).unwrap_or_default(),
                SignedDuration::try_from(max).unwrap_or_default()
            ));
            default
        }
    }
}

impl RawConfig {
    /// Checks everything and returns either a typed config or every problem found.
    pub fn validate(&self) -> Result<AgentConfig, Vec<String>> {
        let mut problems = Vec::new();
        let device_id = DeviceId::new(self.device_id.clone())
            .map_err(|e| problems.push(format!("device_id: {e}")))
            .ok();
        let site =
            SiteId::new(self.site.clone()).map_err(|e| problems.push(format!("site: {e}"))).ok();
        let link = self.mqtt.validate(&mut problems);
        if self.mqtt.shared_group.is_some() {
            problems.push("mqtt.shared_group: a hub setting; an agent publishes, it does not share subscriptions".into());
        }
        if let Some(id) = &self.mqtt.client_id {
            if id.is_empty() || id.len() > 128 || id.contains(['/', '+', '#']) {
                problems.push(
                    "mqtt.client_id: must be 1–128 characters without '/', '+' or '#'".into(),
                );
            }
        }

        let u = &self.uplink;
        let d = UplinkSettings::default();
        let s = Duration::from_secs;
        let heartbeat =
            duration(&mut problems, "uplink.heartbeat", u.heartbeat, d.heartbeat, s(1), s(3600));
        let reconnect_min = duration(
            &mut problems,
            "uplink.reconnect_min",
            u.reconnect_min,
            d.reconnect_min,
            Duration::from_millis(10),
            s(3600),
        );
        let reconnect_max = duration(
            &mut problems,
            "uplink.reconnect_max",
            u.reconnect_max,
            d.reconnect_max,
            Duration::from_millis(10),
            s(3600),
        );
        if reconnect_min > reconnect_max {
            problems.push(format!(
                "uplink.reconnect_min ({reconnect_min:?}) must not be larger than uplink.reconnect_max ({reconnect_max:?})"
            ));
        }
        let ack_timeout = duration(
            &mut problems,
            "uplink.ack_timeout",
            u.ack_timeout,
            d.ack_timeout,
            Duration::from_millis(100),
            s(3600),
        );
        let max_in_flight = match u.max_in_flight {
            None => d.max_in_flight,
            Some(n) if (1..=65_535).contains(&n) => n as usize,
            Some(n) => {
                problems.push(format!("uplink.max_in_flight: {n} must be between 1 and 65535"));
                d.max_in_flight
            }
        };

        if self.outbox.path.as_os_str().is_empty() {
            problems.push("outbox.path: must name a file".into());
        }
        let max_bytes = match self.outbox.max_bytes {
            None => DEFAULT_MAX_BYTES,
            Some(n) if n >= 64 * 1024 => n as u64,
            Some(n) => {
                problems.push(format!("outbox.max_bytes: {n} is below the minimum of 65536"));
                DEFAULT_MAX_BYTES
            }
        };

        let reserve_bytes = match self.outbox.reserve_bytes {
            None => crate::outbox::DEFAULT_RESERVE_BYTES,
            Some(n) if (0..=1 << 30).contains(&n) => n as u64,
            Some(n) => {
                problems.push(format!("outbox.reserve_bytes: {n} must be between 0 and 1073741824"));
                crate::outbox::DEFAULT_RESERVE_BYTES
            }
        };

        if let Some(socket) = &self.intake.socket {
            if socket.as_os_str().is_empty() {
                problems.push("intake.socket: must name a path; leave it out to disable".into());
            } else if socket.as_os_str().len() > 100 {
                problems.push(format!(
                    "intake.socket: {} is too long for a Unix socket path (max 100 bytes)",
                    socket.display()
                ));
            }
        }

        let sim = &self.simulator;
        let speed = sim.speed.unwrap_or(1.0);
        if !(speed.is_finite() && (0.01..=100_000.0).contains(&speed)) {
            problems.push(format!("simulator.speed: {speed} must be between 0.01 and 100000"));
        }
        let simulator =
            sim.enabled.then(|| SimulatorSettings { speed, seed: sim.seed.unwrap_or(1) });
        let camera = self.camera.as_ref().and_then(|c| c.validate(&mut problems));
        let gps = self.gps.as_ref().and_then(|g| g.validate(&mut problems));
        let dispenser = self.dispenser.as_ref().and_then(|d| d.validate(&mut problems));

        match (device_id, site, link, problems.is_empty()) {
            (Some(device_id), Some(site), Some(link), true) => Ok(AgentConfig {
                client_id: self
                    .mqtt
                    .client_id
                    .clone()
                    .unwrap_or_else(|| format!("{site}-{device_id}")),
                device_id,
                site,
                link,
                uplink: UplinkSettings {
                    heartbeat,
                    reconnect_min,
                    reconnect_max,
                    ack_timeout,
                    max_in_flight,
                },
                outbox: OutboxSettings { path: self.outbox.path.clone(), max_bytes, reserve_bytes },
                intake_socket: self.intake.socket.clone(),
                simulator,
                camera,
                gps,
                dispenser,
            }),
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> RawConfig {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    const MINIMAL: &str = r#"
device_id = "home-7"
site = "skelleftea"
[mqtt]
url = "mqtt://127.0.0.1:1883"
allow_plaintext = true
[outbox]
path = "/tmp/outbox.db"
"#;

    #[test]
    fn minimal_config_gets_defaults_and_a_client_id_from_site_and_device() {
        let c = parse(MINIMAL).validate().unwrap();
        assert_eq!(c.client_id, "skelleftea-home-7");
        assert_eq!(c.uplink, UplinkSettings::default());
        assert_eq!(c.outbox.max_bytes, DEFAULT_MAX_BYTES);
        assert_eq!(c.outbox.reserve_bytes, crate::outbox::DEFAULT_RESERVE_BYTES);
        assert!(c.intake_socket.is_none() && c.simulator.is_none());
    }

    #[test]
    fn annotated_example_config_is_valid_toml_with_every_section() {
        let text = include_str!("../../config/agent.toml");
        let raw = parse(text);
        assert_eq!(raw.uplink.heartbeat, Some(SignedDuration::from_secs(60)));
        assert_eq!(raw.outbox.max_bytes, Some(67_108_864));
        assert_eq!(raw.outbox.reserve_bytes, Some(4_194_304));
        // It names TLS files that do not exist here, so only those problems may be reported,
        // and the V4L2 camera when the agent is built without it.
        let camera = raw.camera.clone().unwrap();
        assert_eq!(camera.consent.unwrap().windows, ["21:00-07:00"]);
        let problems = raw.validate().unwrap_err();
        let v4l2 = "camera.source: \"v4l2\" needs";
        assert!(
            problems.iter().all(|p| p.starts_with("mqtt.") || p.starts_with(v4l2)),
            "{problems:?}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
device_id = "Home 7"
site = "skelleftea"
[mqtt]
url = "mqtt://127.0.0.1:1883"
[uplink]
heartbeat = "0s"
reconnect_min = "2m"
reconnect_max = "1m"
max_in_flight = 0
[outbox]
path = "/tmp/o.db"
max_bytes = 5
[simulator]
enabled = true
speed = -1.0
"#;
        let problems = parse(text).validate().unwrap_err();
        let all = problems.join("\n");
        for field in [
            "device_id",
            "allow_plaintext",
            "uplink.heartbeat",
            "reconnect_min",
            "max_in_flight",
            "max_bytes",
            "simulator.speed",
        ] {
            assert!(all.contains(field), "{field} missing in:\n{all}");
        }
    }

    #[test]
    fn unknown_key_and_syntax_errors_name_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, MINIMAL.replace("[outbox]", "[outbox]\nmax_byte = 5")).unwrap();
        let err = AgentConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("max_byte") && err.contains("line"), "{err}");
        std::fs::write(&path, "device_id = \n").unwrap();
        let err = AgentConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn durations_are_read_in_friendly_form() {
        let text = MINIMAL.replace(
            "[outbox]",
            "[uplink]\nheartbeat = \"1m 30s\"\nack_timeout = \"500ms\"\n[outbox]",
        );
        let c = parse(&text).validate().unwrap();
        assert_eq!(c.uplink.heartbeat, Duration::from_secs(90));
        assert_eq!(c.uplink.ack_timeout, Duration::from_millis(500));
    }
}
