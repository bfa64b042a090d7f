//! The hub's configuration file (`config/hub.toml` is the annotated example and the spec).
//!
//! Read in two steps: [`RawConfig`] is what serde reads (unknown keys are refused), then the
//! pure [`RawConfig::validate`] collects *every* problem into one [`ConfigReport`] and returns
//! a typed [`HubConfig`]. `HubConfig` has public fields so tests and the demo can build one in
//! code without a file.

use crate::access::Role;
use crate::console::HttpsConfig;
use crate::rounds::config::{RawRounds, RoundsConfig};
use jiff::SignedDuration;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;
use vaka_agent::link::{MqttLink, RawMqtt};
use vaka_protocol::DeviceId;

/// The default MQTT client id of the hub. It keeps a persistent session under this id.
pub const DEFAULT_CLIENT_ID: &str = "vaka-hub";
/// EN 50136 reporting-time class T4.
pub const DEFAULT_SUPERVISION: Duration = Duration::from_secs(180);
const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub mqtt: Option<RawMqtt>,
    pub embedded_broker: Option<RawEmbeddedBroker>,
    #[serde(default)]
    pub device_ca: RawDeviceCa,
    pub store: RawStore,
    pub http: RawHttp,
    #[serde(default)]
    pub supervision: RawSupervision,
    #[serde(default)]
    pub cameras: RawCameras,
    #[serde(default)]
    pub rounds: RawRounds,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmbeddedBroker {
    pub listen: String,
    /// Where devices connect with TLS and their device certificate (see `broker/gateway.rs`);
    /// needs `device_tls_cert` and `device_tls_key`.
    pub device_listen: Option<String>,
    pub device_tls_cert: Option<PathBuf>,
    pub device_tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeviceCa {
    /// A command (program and arguments) run after each change of the revocation list, so the
    /// broker reads it again, e.g. `["systemctl", "reload", "mosquitto"]`.
    pub crl_reload: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// The SQLite database; with `database_url`, only its directory is used (the device CA).
    pub path: PathBuf,
    /// `postgres://user[:password]@host[:port]/database`: keep the data in PostgreSQL.
    pub database_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub listen: String,
    pub api_token: String,
    #[serde(default)]
    pub tokens: Vec<RawToken>,
    /// A console session ends after this long without a request.
    pub session_idle: Option<SignedDuration>,
    /// A console session ends this long after its login.
    pub session_max: Option<SignedDuration>,
    /// Mark session cookies `Secure` (the console is reached over HTTPS). Default: on when
    /// the hub serves HTTPS itself (`tls_cert`), off otherwise.
    pub secure_cookies: Option<bool>,
    /// PEM certificate (chain, server certificate first): with `tls_key`, the HTTP listener
    /// serves HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// The Now view repeats its visible and audible signal this often while an alarm is
    /// unacknowledged (default 30 s).
    pub alarm_signal: Option<SignedDuration>,
}

/// One `[[http.tokens]]` entry: a named person (or shared shift account) with a role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    pub name: String,
    pub role: String,
    pub token: String,
    /// The teams whose homes the token sees; all when absent.
    pub teams: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCameras {
    pub check_open: Option<SignedDuration>,
    pub snapshot_view_span: Option<SignedDuration>,
    pub calibration_span: Option<SignedDuration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSupervision {
    pub default_interval: Option<SignedDuration>,
    #[serde(default)]
    pub devices: BTreeMap<String, SignedDuration>,
}

/// Where the hub's MQTT client connects.
#[derive(Debug, Clone)]
pub enum BrokerConfig {
    /// Run rumqttd inside the hub, listening here; the hub connects to it on loopback. With
    /// `devices`, devices also connect with their certificates through the device listener.
    Embedded { listen: SocketAddr, devices: Option<DeviceListener> },
    /// Connect to an external broker (Mosquitto in production). With `shared_group`, several
    /// hubs share the ingest through `$share/{group}/...` subscriptions (`ingest::session`).
    External { link: MqttLink, client_id: String, shared_group: Option<String> },
}

/// Checks `mqtt.shared_group`: MQTT forbids `/`, `+` and `#` in a share name; Vaka allows
/// only letters, digits, `-` and `_` (1-64), so the name reads the same in every broker's ACL.
pub fn check_shared_group(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("mqtt.shared_group: `{name}` must be 1-64 letters, digits, '-' or '_'"))
    }
}

/// The embedded broker's TLS listener for devices (`embedded_broker.device_*`).
#[derive(Debug, Clone)]
pub struct DeviceListener {
    pub listen: SocketAddr,
    /// The listener's own certificate and key (PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct SupervisionConfig {
    /// A device silent for longer than this raises `supervision_lost`.
    pub default_interval: Duration,
    /// Per-device overrides of `default_interval`.
    pub devices: HashMap<DeviceId, Duration>,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        SupervisionConfig {
            default_interval: DEFAULT_SUPERVISION,
            devices: HashMap::new(),
        }
    }
}

/// A bearer token and whom it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    pub name: String,
    pub role: Role,
    pub token: String,
    /// `None`: every team.
    pub teams: Option<Vec<String>>,
}

/// Camera checks asked for from the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraConfig {
    /// A check stays open on the device this long: its deadline is the request time plus
    /// this. A snapshot can be asked for only while the check is open.
    pub check_open: Duration,
    /// A snapshot that arrived is kept in memory this long, and the console may show it this
    /// long once it is fetched.
    pub snapshot_view_span: Duration,
    /// An installer's calibration picture is kept in memory this long after it arrives (or
    /// the request, if none came), for the installer to draw the bed zone on.
    pub calibration_span: Duration,
}

pub const CHECK_OPEN_DEFAULT: Duration = Duration::from_secs(5 * 60);
pub const CHECK_OPEN_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(30), Duration::from_secs(15 * 60));
/// Console session lengths (`http.session_idle`, `http.session_max`).
pub const SESSION_BOUNDS: (Duration, Duration) = (Duration::from_secs(10), Duration::from_secs(24 * 3600));
/// `http.alarm_signal`: often enough to be heard, not so often it drowns a phone call.
pub const ALARM_SIGNAL_DEFAULT: Duration = Duration::from_secs(30);
pub const ALARM_SIGNAL_BOUNDS: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(10 * 60));
pub const VIEW_SPAN_DEFAULT: Duration = Duration::from_secs(30);
pub const VIEW_SPAN_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(5), Duration::from_secs(5 * 60));

pub const CALIBRATION_SPAN_DEFAULT: Duration = Duration::from_secs(10 * 60);
pub const CALIBRATION_SPAN_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(5), Duration::from_secs(30 * 60));

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            check_open: CHECK_OPEN_DEFAULT,
            snapshot_view_span: VIEW_SPAN_DEFAULT,
            calibration_span: CALIBRATION_SPAN_DEFAULT,
        }
    }
}

/// The name the audit log gives whoever uses `http.api_token`.
pub const API_TOKEN_NAME: &str = "admin";

/// The validated configuration that [`crate::serve`] runs with.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub broker: BrokerConfig,
    /// `mqtt.ca_file`: the CA of the external broker's certificate, which agents need too.
    pub broker_ca_file: Option<PathBuf>,
    /// SQLite database file; created with its schema if missing. With `database_url` it is
    /// not opened, but its directory still holds the device CA (see `pki::ca_dir`).
    pub store_path: PathBuf,
    /// `store.database_url`: keep the data in this PostgreSQL database instead of SQLite.
    pub database_url: Option<String>,
    /// Where `vaka-hub serve` binds the HTTP listener. `serve` itself takes a bound listener.
    pub http_listen: SocketAddr,
    /// Bearer token for the API and the console, with the role `admin` (name `admin`).
    pub api_token: String,
    /// Further tokens, each with a name and a role.
    pub tokens: Vec<TokenConfig>,
    pub sessions: crate::console::SessionPolicy,
    /// `http.alarm_signal`.
    pub alarm_signal: Duration,
    /// Serve HTTPS with this certificate on the HTTP listener; plain HTTP when `None`.
    pub https: Option<HttpsConfig>,
    pub supervision: SupervisionConfig,
    pub cameras: CameraConfig,
    /// The night rounds (`[rounds]`).
    pub rounds: RoundsConfig,
    /// `device_ca.crl_reload`: run after each change of the device revocation list.
    pub crl_reload: Option<Vec<String>>,
}

impl HubConfig {
    /// Which database to open: PostgreSQL when `store.database_url` is set, else SQLite.
    pub fn store(&self) -> crate::store::StoreConfig {
        match &self.database_url {
            Some(url) => crate::store::StoreConfig::Postgres { url: url.clone() },
            None => crate::store::StoreConfig::Sqlite { path: self.store_path.clone() },
        }
    }
}

/// Every problem found in a config file, one line each.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", .problems.join("\n"))]
pub struct ConfigReport {
    pub problems: Vec<String>,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path} has problems:\n{report}")]
    Invalid { path: PathBuf, report: ConfigReport },
}

impl ConfigError {
    /// The problems as separate lines, for `check-config`.
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { report, .. } => report.problems.clone(),
            other => vec![other.to_string()],
        }
    }
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<HubConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let raw: RawConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    raw.validate().map_err(|report| ConfigError::Invalid {
        path: path.to_path_buf(),
        report,
    })
}

/// Checks a token's length and characters.
fn check_token(field: &str, token: &str, problems: &mut Vec<String>) {
    if token.chars().count() < MIN_TOKEN_LEN {
        problems.push(format!(
            "{field}: must be at least {MIN_TOKEN_LEN} characters (use a long random string)"
        ));
    }
    // The token travels in a header and a cookie: keep it to characters safe in both.
    if !token
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b";,\\\"".contains(&b))
    {
        problems.push(format!(
            "{field}: use only printable ASCII without spaces, quotes, `;`, `,` or `\\`"
        ));
    }
}

/// A duration within `(min, max)`; `default` when absent or out of bounds (with a problem).
fn bounded(
    field: &str,
    d: Option<SignedDuration>,
    default: Duration,
    (min, max): (Duration, Duration),
    problems: &mut Vec<String>,
) -> Duration {
    let Some(d) = d else { return default };
    match Duration::try_from(d) {
        Ok(d) if (min..=max).contains(&d) => d,
        _ => {
            problems.push(format!(
                "{field}: {d:#} must be between {:#} and {:#}",
                SignedDuration::try_from(min).unwrap_or_default(),
                SignedDuration::try_from(max).unwrap_or_default()
            ));
            default
        }
    }
}

fn positive(field: &str, d: SignedDuration, problems: &mut Vec<String>) -> Duration {
    match Duration::try_from(d) {
        Ok(d) if d >= Duration::from_secs(1) => d,
        _ => {
            problems.push(format!("{field}: {d:#} must be at least 1s"));
            DEFAULT_SUPERVISION
        }
    }
}

impl RawEmbeddedBroker {
    fn device_listener(&self, problems: &mut Vec<String>) -> Option<DeviceListener> {
        let (listen, cert, key) = match (&self.device_listen, &self.device_tls_cert, &self.device_tls_key) {
            (None, None, None) => return None,
            (Some(l), Some(c), Some(k)) => (l, c, k),
            _ => {
                problems.push("embedded_broker.device_listen, device_tls_cert and device_tls_key come together".to_string());
                return None;
            }
        };
        for (field, path) in [("embedded_broker.device_tls_cert", cert), ("embedded_broker.device_tls_key", key)] {
            if !path.is_file() {
                problems.push(format!("{field}: {} is not a readable file", path.display()));
            }
        }
        match listen.parse::<SocketAddr>() {
            Ok(listen) => Some(DeviceListener { listen, cert: cert.clone(), key: key.clone() }),
            Err(e) => {
                problems.push(format!("embedded_broker.device_listen: `{listen}` is not an address like 0.0.0.0:8883: {e}"));
                None
            }
        }
    }
}

impl RawConfig {
    /// Checks everything and returns the typed config, or every problem at once.
    pub fn validate(&self) -> Result<HubConfig, ConfigReport> {
        let mut problems = Vec::new();
        let broker = match &self.mqtt {
            Some(raw) => {
                let client_id = raw
                    .client_id
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CLIENT_ID.into());
                if client_id.is_empty() || client_id.len() > 64 {
                    problems.push("mqtt.client_id: must be 1-64 characters".to_string());
                }
                if let Some(group) = &raw.shared_group {
                    if let Err(p) = check_shared_group(group) {
                        problems.push(p);
                    }
                    if raw.client_id.is_none() {
                        problems.push(
                            "mqtt.client_id: required with mqtt.shared_group: each hub needs its own \
                             (two hubs under one id throw each other off the broker)"
                                .to_string(),
                        );
                    }
                }
                let shared_group = raw.shared_group.clone();
                raw.validate(&mut problems)
                    .map(|link| BrokerConfig::External { link, client_id, shared_group })
            }
            None => {
                let listen = self
                    .embedded_broker
                    .as_ref()
                    .map_or("127.0.0.1:1883", |e| e.listen.as_str());
                let devices = self.embedded_broker.as_ref().and_then(|e| e.device_listener(&mut problems));
                match listen.parse::<SocketAddr>() {
                    Ok(listen) => Some(BrokerConfig::Embedded { listen, devices }),
                    Err(e) => {
                        problems.push(format!(
                            "embedded_broker.listen: `{listen}` is not an address like 127.0.0.1:1883: {e}"
                        ));
                        None
                    }
                }
            }
        };
        if self.store.path.as_os_str().is_empty() {
            problems.push("store.path: must not be empty".to_string());
        }
        if let Some(url) = &self.store.database_url {
            if let Err(e) = crate::store::check_database_url(url) {
                problems.push(format!("store.database_url: {e}"));
            }
        }
        let http_listen = match self.http.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(e) => {
                problems.push(format!(
                    "http.listen: `{}` is not an address like 127.0.0.1:8080: {e}",
                    self.http.listen
                ));
                None
            }
        };
        check_token("http.api_token", &self.http.api_token, &mut problems);
        let tokens = self.tokens(&mut problems);
        let default_interval = self
            .supervision
            .default_interval
            .map_or(DEFAULT_SUPERVISION, |d| {
                positive("supervision.default_interval", d, &mut problems)
            });
        let mut devices = HashMap::new();
        for (id, d) in &self.supervision.devices {
            let interval = positive(&format!("supervision.devices.{id}"), *d, &mut problems);
            match DeviceId::new(id.clone()) {
                Ok(id) => {
                    devices.insert(id, interval);
                }
                Err(e) => problems.push(format!("supervision.devices: {e}")),
            }
        }
        let cameras = CameraConfig {
            check_open: bounded(
                "cameras.check_open",
                self.cameras.check_open,
                CHECK_OPEN_DEFAULT,
                CHECK_OPEN_BOUNDS,
                &mut problems,
            ),
            snapshot_view_span: bounded(
                "cameras.snapshot_view_span",
                self.cameras.snapshot_view_span,
                VIEW_SPAN_DEFAULT,
                VIEW_SPAN_BOUNDS,
                &mut problems,
            ),
            calibration_span: bounded(
                "cameras.calibration_span",
                self.cameras.calibration_span,
                CALIBRATION_SPAN_DEFAULT,
                CALIBRATION_SPAN_BOUNDS,
                &mut problems,
            ),
        };
        let https = self.https(&mut problems);
        let defaults = crate::console::SessionPolicy::default();
        let sessions = crate::console::SessionPolicy {
            idle: bounded("http.session_idle", self.http.session_idle, defaults.idle, SESSION_BOUNDS, &mut problems),
            max: bounded("http.session_max", self.http.session_max, defaults.max, SESSION_BOUNDS, &mut problems),
            secure_cookies: self.http.secure_cookies.unwrap_or(https.is_some()),
        };
        let alarm_signal = bounded("http.alarm_signal", self.http.alarm_signal, ALARM_SIGNAL_DEFAULT, ALARM_SIGNAL_BOUNDS, &mut problems);
        let rounds = self.rounds.validate(&mut problems);
        let crl_reload = self.device_ca.crl_reload.clone();
        if crl_reload.as_ref().is_some_and(|argv| argv.first().is_none_or(|p| p.is_empty())) {
            problems.push("device_ca.crl_reload: name a program, e.g. [\"systemctl\", \"reload\", \"mosquitto\"]".to_string());
        }
        match (broker, http_listen, problems.is_empty()) {
            (Some(broker), Some(http_listen), true) => Ok(HubConfig {
                broker,
                broker_ca_file: self.mqtt.as_ref().and_then(|m| m.ca_file.clone()),
                store_path: self.store.path.clone(),
                database_url: self.store.database_url.clone(),
                http_listen,
                api_token: self.http.api_token.clone(),
                tokens,
                sessions,
                alarm_signal,
                https,
                supervision: SupervisionConfig {
                    default_interval,
                    devices,
                },
                cameras,
                rounds,
                crl_reload,
            }),
            _ => Err(ConfigReport { problems }),
        }
    }

    /// `http.tls_cert` and `http.tls_key`: both or neither; read and checked to fit together.
    fn https(&self, problems: &mut Vec<String>) -> Option<HttpsConfig> {
        match (&self.http.tls_cert, &self.http.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => HttpsConfig::from_pem_files(cert, key)
                .map_err(|e| problems.push(e))
                .ok(),
            (Some(_), None) => {
                problems.push("http.tls_key: missing; http.tls_cert and http.tls_key come together (both for HTTPS, neither for plain HTTP)".to_string());
                None
            }
            (None, Some(_)) => {
                problems.push("http.tls_cert: missing; http.tls_cert and http.tls_key come together (both for HTTPS, neither for plain HTTP)".to_string());
                None
            }
        }
    }

    /// The `[[http.tokens]]`: each valid, no token or name used twice (the `api_token` counts,
    /// under the name `admin`).
    fn tokens(&self, problems: &mut Vec<String>) -> Vec<TokenConfig> {
        let mut names = HashSet::from([API_TOKEN_NAME]);
        let mut secrets = HashSet::from([self.http.api_token.as_str()]);
        let mut tokens = Vec::new();
        for (i, raw) in self.http.tokens.iter().enumerate() {
            let field = format!("http.tokens[{i}]");
            let name = raw.name.trim();
            if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
                problems.push(format!(
                    "{field}.name: must be 1-64 characters without control characters"
                ));
            } else if !names.insert(name) {
                problems.push(format!(
                    "{field}.name: `{name}` is used twice (`{API_TOKEN_NAME}` is the api_token's)"
                ));
            }
            let role = Role::parse(&raw.role);
            if role.is_none() {
                let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                problems.push(format!(
                    "{field}.role: `{}` is not one of {}",
                    raw.role,
                    known.join(", ")
                ));
            }
            check_token(&format!("{field}.token"), &raw.token, problems);
            if !secrets.insert(raw.token.as_str()) {
                problems.push(format!("{field}.token: the same token is given twice"));
            }
            if let Some(role) = role {
                tokens.push(TokenConfig {
                    name: name.to_string(),
                    role,
                    token: raw.token.clone(),
                    teams: raw.teams.clone(),
                });
            }
        }
        tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HubConfig, ConfigReport> {
        toml::from_str::<RawConfig>(text)
            .map_err(|e| ConfigReport {
                problems: vec![e.to_string()],
            })?
            .validate()
    }

    const MINIMAL: &str = r#"
        [store]
        path = "/tmp/hub.db"
        [http]
        listen = "127.0.0.1:8080"
        api_token = "0123456789abcdef0123"
    "#;

    #[test]
    fn minimal_config_runs_the_embedded_broker_with_t4_supervision() {
        let c = parse(MINIMAL).unwrap();
        assert!(matches!(c.broker, BrokerConfig::Embedded { listen, devices: None } if listen.port() == 1883));
        assert_eq!(c.supervision.default_interval, Duration::from_secs(180));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
            [embedded_broker]
            listen = "nowhere"
            [store]
            path = ""
            [http]
            listen = "localhost"
            api_token = "short; x"
            [supervision]
            default_interval = "0s"
            [supervision.devices]
            "Bad/Id" = "10s"
        "#;
        let problems = parse(text).unwrap_err().problems.join("\n");
        for field in [
            "embedded_broker.listen",
            "store.path",
            "http.listen",
            "http.api_token",
            "supervision.default_interval: 0s must be at least 1s",
            "supervision.devices",
        ] {
            assert!(problems.contains(field), "{field} missing in:\n{problems}");
        }
    }

    #[test]
    fn a_database_url_chooses_postgresql_and_a_malformed_one_is_a_problem() {
        let sqlite = parse(MINIMAL).unwrap();
        assert_eq!(sqlite.store(), crate::store::StoreConfig::Sqlite { path: "/tmp/hub.db".into() });
        let url = "postgres://vaka@127.0.0.1:5432/vaka";
        let pg = parse(&MINIMAL.replace("[http]", &format!("database_url = \"{url}\"\n[http]"))).unwrap();
        assert_eq!(pg.store(), crate::store::StoreConfig::Postgres { url: url.into() });
        let bad = parse(&MINIMAL.replace("[http]", "database_url = \"postgres://vaka@127.0.0.1:notaport/vaka\"\n[http]"));
        let problems = bad.unwrap_err().problems.join("\n");
        assert!(problems.contains("store.database_url"), "{problems}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<RawConfig>(&format!("{MINIMAL}\n[extra]\nx = 1\n")).unwrap_err();
        assert!(err.to_string().contains("extra"), "{err}");
    }

    #[test]
    fn per_device_supervision_overrides_are_read() {
        let text = format!("{MINIMAL}\n[supervision]\ndefault_interval = \"60s\"\n[supervision.devices]\nhome-042 = \"10m\"\n");
        let c = parse(&text).unwrap();
        assert_eq!(c.supervision.default_interval, Duration::from_secs(60));
        let id = DeviceId::new("home-042").unwrap();
        assert_eq!(
            c.supervision.devices.get(&id),
            Some(&Duration::from_secs(600))
        );
    }

    #[test]
    fn external_broker_over_plaintext_needs_explicit_permission_and_takes_the_client_id() {
        let text = format!("{MINIMAL}\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n");
        assert!(parse(&text)
            .unwrap_err()
            .problems
            .join("")
            .contains("allow_plaintext"));
        let text = format!("{MINIMAL}\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\nallow_plaintext = true\nclient_id = \"hub-2\"\n");
        let c = parse(&text).unwrap();
        assert!(
            matches!(c.broker, BrokerConfig::External { ref client_id, .. } if client_id == "hub-2")
        );
    }

    #[test]
    fn a_shared_group_needs_a_clean_name_and_an_own_client_id() {
        let base = format!("{MINIMAL}\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\nallow_plaintext = true\n");
        let c = parse(&format!("{base}client_id = \"hub-a\"\nshared_group = \"vaka-hubs\"\n")).unwrap();
        assert!(
            matches!(c.broker, BrokerConfig::External { shared_group: Some(ref g), .. } if g == "vaka-hubs")
        );
        let problems = parse(&format!("{base}shared_group = \"vaka/hubs\"\n")).unwrap_err().problems.join("\n");
        assert!(problems.contains("mqtt.shared_group: `vaka/hubs`"), "{problems}");
        assert!(problems.contains("mqtt.client_id: required with mqtt.shared_group"), "{problems}");
        for bad in ["", "a+b", "a#", "x".repeat(65).as_str()] {
            assert!(check_shared_group(bad).is_err(), "{bad:?} accepted");
        }
        let c = parse(&format!("{base}client_id = \"hub-a\"\n")).unwrap();
        assert!(matches!(c.broker, BrokerConfig::External { shared_group: None, .. }));
    }

    #[test]
    fn named_tokens_carry_their_role_and_every_token_problem_is_reported() {
        let ok = format!(
            "{MINIMAL}\n[[http.tokens]]\nname = \"anna.berg\"\nrole = \"night_staff\"\ntoken = \"anna-0123456789abcdef\"\n"
        );
        let c = parse(&ok).unwrap();
        assert_eq!(
            c.tokens,
            vec![TokenConfig {
                name: "anna.berg".into(),
                role: Role::NightStaff,
                token: "anna-0123456789abcdef".into(),
                teams: None,
            }]
        );
        let bad = format!(
            "{MINIMAL}
            [[http.tokens]]
            name = \"anna\"
            role = \"doctor\"
            token = \"short\"
            [[http.tokens]]
            name = \"anna\"
            role = \"nurse\"
            token = \"0123456789abcdef0123\"
            [[http.tokens]]
            name = \"admin\"
            role = \"installer\"
            token = \"installer-0123456789\"
            "
        );
        let problems = parse(&bad).unwrap_err().problems.join("\n");
        for expected in [
            "http.tokens[0].role: `doctor` is not one of night_staff, nurse, installer, admin",
            "http.tokens[0].token: must be at least 16",
            "http.tokens[1].name: `anna` is used twice",
            "http.tokens[1].token: the same token is given twice",
            "http.tokens[2].name: `admin` is used twice",
        ] {
            assert!(
                problems.contains(expected),
                "{expected} missing in:\n{problems}"
            );
        }
    }

    #[test]
    fn camera_durations_have_defaults_and_bounds() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.cameras, CameraConfig::default());
        assert_eq!(c.cameras.check_open, Duration::from_secs(300));
        let text =
            format!("{MINIMAL}\n[cameras]\ncheck_open = \"2m\"\nsnapshot_view_span = \"5s\"\n");
        let c = parse(&text).unwrap();
        assert_eq!(
            (c.cameras.check_open, c.cameras.snapshot_view_span),
            (Duration::from_secs(120), Duration::from_secs(5))
        );
        let text =
            format!("{MINIMAL}\n[cameras]\ncheck_open = \"29s\"\nsnapshot_view_span = \"6m\"\n");
        let problems = parse(&text).unwrap_err().problems.join("\n");
        assert!(
            problems.contains("cameras.check_open: 29s must be between 30s and 15m"),
            "{problems}"
        );
        assert!(
            problems.contains("cameras.snapshot_view_span: 6m must be between 5s and 5m"),
            "{problems}"
        );
    }

    /// A self-signed certificate and its key as PEM files in `dir`, named `name.pem`/`name.key`.
    fn cert_files(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
        std::fs::write(&cert, c.cert.pem()).unwrap();
        std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    fn with_tls(cert: Option<&Path>, key: Option<&Path>, extra: &str) -> String {
        let mut http = String::new();
        if let Some(c) = cert {
            http += &format!("tls_cert = {:?}\n", c.display().to_string());
        }
        if let Some(k) = key {
            http += &format!("tls_key = {:?}\n", k.display().to_string());
        }
        format!("{MINIMAL}{http}{extra}")
    }

    #[test]
    fn certificate_and_key_turn_on_https_and_secure_cookies() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = cert_files(dir.path(), "hub");
        let c = parse(&with_tls(Some(&cert), Some(&key), "")).unwrap();
        assert!(c.https.is_some());
        assert!(c.sessions.secure_cookies, "Secure cookies by default over HTTPS");
        let c = parse(&with_tls(Some(&cert), Some(&key), "secure_cookies = false\n")).unwrap();
        assert!(!c.sessions.secure_cookies, "an explicit setting wins");
        let c = parse(MINIMAL).unwrap();
        assert!(c.https.is_none() && !c.sessions.secure_cookies, "plain HTTP as before");
    }

    #[test]
    fn certificate_without_key_or_key_without_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = cert_files(dir.path(), "hub");
        let problems = parse(&with_tls(Some(&cert), None, "")).unwrap_err().problems.join("\n");
        assert!(problems.contains("http.tls_key: missing; http.tls_cert and http.tls_key come together"), "{problems}");
        let problems = parse(&with_tls(None, Some(&key), "")).unwrap_err().problems.join("\n");
        assert!(problems.contains("http.tls_cert: missing"), "{problems}");
    }

    #[test]
    fn key_of_another_certificate_is_refused_naming_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = cert_files(dir.path(), "hub");
        let (_, other_key) = cert_files(dir.path(), "other");
        let problems = parse(&with_tls(Some(&cert), Some(&other_key), "")).unwrap_err().problems.join("\n");
        let expected = format!("http.tls_key: {} is not the key of the certificate in {}", other_key.display(), cert.display());
        assert!(problems.contains(&expected), "{problems}");
    }

    #[test]
    fn unreadable_or_empty_certificate_files_are_named_in_the_report() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = cert_files(dir.path(), "hub");
        let missing = dir.path().join("missing.pem");
        let problems = parse(&with_tls(Some(&missing), Some(&key), "")).unwrap_err().problems.join("\n");
        assert!(problems.contains(&format!("http.tls_cert: {}: cannot read", missing.display())), "{problems}");
        let problems = parse(&with_tls(Some(&cert), Some(&missing), "")).unwrap_err().problems.join("\n");
        assert!(problems.contains(&format!("http.tls_key: {}: cannot read", missing.display())), "{problems}");
        // The key file given as the certificate: PEM, but no certificate in it.
        let problems = parse(&with_tls(Some(&key), Some(&key), "")).unwrap_err().problems.join("\n");
        assert!(problems.contains(&format!("http.tls_cert: {}: holds no PEM certificate", key.display())), "{problems}");
        let problems = parse(&with_tls(Some(&cert), Some(&cert), "")).unwrap_err().problems.join("\n");
        assert!(problems.contains(&format!("http.tls_key: {}: no PEM private key", cert.display())), "{problems}");
    }

    #[test]
    fn the_example_config_parses_and_only_misses_its_certificates() {
        let text = include_str!("../../config/hub.toml");
        let problems = parse(text).unwrap_err().problems;
        assert!(
            problems.iter().all(|p| p.starts_with("mqtt.")),
            "{problems:?}"
        );
    }
}
