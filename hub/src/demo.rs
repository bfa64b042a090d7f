//! `vaka-hub demo`: the whole system on one machine with nothing installed.
//!
//! Starts the hub with its embedded broker and a SQLite database in a temporary directory,
//! and five simulated homes that run the real agent code ([`vaka_agent::run`]: outbox on disk,
//! MQTT uplink, acks) with the simulator's compressed clock, so a night's camera checks,
//! doses and GPS positions arrive within minutes. Each home has a simulated camera (a
//! synthetic bedroom analysed by the agent's real code) with demo consent covering the hours
//! around the demo's start, so that checks and snapshots can be tried at any time of day, and a
//! simulated medication dispenser whose doses go through the agent's real dose book.
//! The hub runs tonight's round on its own compressed clock (also [`SPEED`]× real time, from two
//! round-minutes before the night shift), with care plans for the five homes and one visit-only
//! person, and one patrol: camera checks, escalations and the patrol's route show up within the
//! first minutes. Everything is deleted when the demo stops.
//!
//! The console is served over HTTPS with a certificate made at start for `localhost` and
//! 127.0.0.1 (self-signed, so the browser asks once; [`DemoCertificate`] has its SHA-256
//! fingerprint to compare), unless the demo is asked for plain HTTP.

use crate::access::Role;
use crate::config::{BrokerConfig, HubConfig, SupervisionConfig, TokenConfig};
use crate::console::HttpsConfig;
use crate::rounds::config::{RoundClock, RoundsConfig};
use crate::rounds::plan::{Patrol, Recipient};
use crate::store::{AuditEntry, StoreConfig, UserRow};
use crate::{Hub, HubError};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use vaka_agent::camera::config::CameraSettings;
use vaka_agent::camera::consent::Consent;
use vaka_agent::config::SimulatorSettings;
use vaka_agent::dispenser::{DispenserSettings, Rules, SourceSettings};
use vaka_agent::link::MqttLink;
use vaka_agent::AgentConfig;
use vaka_protocol::{DeviceId, IdError, SiteId};

/// How many simulated homes the demo runs.
pub const HOMES: usize = 5;

/// The demo's simulated clock runs this many times faster than the wall clock.
pub const SPEED: f64 = 60.0;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error("cannot listen for HTTP on {addr}: {source} (try --http 127.0.0.1:0 for any free port)")]
    Http { addr: SocketAddr, source: std::io::Error },
    #[error("cannot create the demo's temporary directory: {0}")]
    TempDir(std::io::Error),
    #[error(transparent)]
    Id(#[from] IdError),
    #[error("the hub started without its embedded broker")]
    NoBroker,
    #[error("cannot store the demo's care plans: {0}")]
    Plans(String),
    #[error("cannot make the console's self-signed certificate: {0}")]
    Certificate(String),
}

/// How the demo serves its console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS with a self-signed certificate made at start.
    Https,
    /// Plain HTTP, as before the hub served HTTPS (scripts and tests without TLS).
    PlainHttp,
}

/// The demo console's self-signed certificate.
#[derive(Debug, Clone)]
pub struct DemoCertificate {
    /// SHA-256 of the certificate, as browsers show it (`AB:12:…`).
    pub fingerprint: String,
    /// The certificate as PEM, in the demo's data directory (for `curl --cacert`).
    pub file: PathBuf,
}

/// A self-signed certificate for `localhost`, 127.0.0.1, ::1 and `listen`'s address when it
/// names another one; written to `dir` as PEM, the key kept in memory only.
pub fn self_signed(dir: &Path, listen: IpAddr) -> Result<(HttpsConfig, DemoCertificate), DemoError> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if !listen.is_loopback() && !listen.is_unspecified() {
        names.push(listen.to_string());
    }
    let certified = rcgen::generate_simple_self_signed(names).map_err(|e| DemoError::Certificate(e.to_string()))?;
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    let cert = certified.cert.der().clone();
    let https = HttpsConfig::new(vec![cert], key.into()).map_err(|e| DemoError::Certificate(e.to_string()))?;
    let file = dir.join("console-cert.pem");
    std::fs::write(&file, certified.cert.pem()).map_err(|e| DemoError::Certificate(format!("{}: {e}", file.display())))?;
    let fingerprint = https.fingerprint().to_string();
    Ok((https, DemoCertificate { fingerprint, file }))
}

/// The demo's rounds: the default night shift, on a clock that starts two round-minutes
/// before tonight's shift at `now` and runs [`SPEED`]× real time.
pub fn night_rounds(now: jiff::Timestamp) -> RoundsConfig {
    let mut rounds = RoundsConfig::default();
    let today = now.to_zoned(rounds.shift.tz.clone()).date();
    let start = rounds.shift.span(today).0 - jiff::SignedDuration::from_mins(2);
    rounds.clock = RoundClock::Simulated { start, anchor: now, speed: SPEED };
    rounds
}

/// Care plans of the demo: the five homes with three camera checks a night each (the fifth
/// with a visit when the camera does not settle it), one person with two planned visits, and
/// the night patrol, all in one team around Skellefteå's centre.
pub fn plans() -> (Vec<Recipient>, Vec<Patrol>) {
    const NAMES: [&str; 5] = ["Astrid", "Bertil", "Gun", "Sture", "Inga"];
    let mut people: Vec<serde_json::Value> = (1..=HOMES)
        .map(|n| {
            let device = format!("home-{n:03}");
            let minutes = 10 * n as i64;
            let at = |h: i64| format!("{:02}:{:02}", (h + minutes / 60) % 24, minutes % 60);
            let method = if n == HOMES { "camera_then_visit" } else { "camera" };
            let checks: Vec<_> = [21, 0, 3].iter().map(|&h| serde_json::json!({"at": at(h), "method": method})).collect();
            serde_json::json!({
                "id": format!("person-{n}"),
                "name": NAMES[(n - 1) % NAMES.len()],
                "address": format!("Nygatan {}", 10 + n),
                "position": {"lat": 64.750 + 0.004 * n as f64, "lon": 20.950 + 0.006 * (n % 3) as f64},
                "team": "centrum",
                "devices": [device],
                "camera_device": device,
                "checks": checks,
                "consent": {"windows": ["21:00-07:00"], "record": {"given": "2026-09-14", "basis": "samtycke"}},
                "rules": [{"on": "dose_missed", "action": "camera_check"}, {"on": "geofence_left", "action": "search"}],
            })
        })
        .collect();
    people.push(serde_json::json!({
        "id": "person-6",
        "name": "Karl",
        "address": "Storgatan 3",
        "position": {"lat": 64.742, "lon": 20.962},
        "team": "centrum",
        "checks": [
            {"at": "22:30", "method": "visit", "notes": "Vända i sängen"},
            {"at": "04:30", "method": "visit"}
        ],
    }));
    let recipients = people.into_iter().filter_map(|p| serde_json::from_value(p).ok()).collect();
    let patrol = serde_json::json!({
        "id": "bil-1", "team": "centrum", "name": "Nattpatrull 1",
        "start": {"lat": 64.7507, "lon": 20.9528}, "end": {"lat": 64.7507, "lon": 20.9528},
        "shift_start": "21:00", "shift_end": "07:00",
    });
    (recipients, serde_json::from_value(patrol).into_iter().collect())
}

/// Stores [`plans`] before the hub starts, as an administrator would have entered them.
/// Care plans, patrols and console accounts for the demo, written before the hub starts.
fn seed_plans(store: &StoreConfig, password: &str) -> Result<(), DemoError> {
    let mut store = crate::store::open(store).map_err(|e| DemoError::Plans(e.to_string()))?;
    let (recipients, patrols) = plans();
    let audit = |action: &str, what: String| AuditEntry {
        at: jiff::Timestamp::now(),
        actor: "demo".into(),
        role: "admin".into(),
        action: action.into(),
        check_id: None,
        device: None,
        detail: Some(what),
    };
    for r in &recipients {
        store.put_recipient(r, &audit("care_plan_changed", format!("recipient {}, team {}", r.id, r.team))).map_err(|e| DemoError::Plans(e.to_string()))?;
    }
    for p in &patrols {
        store.put_patrol(p, &audit("patrol_changed", format!("patrol {}, team {}", p.id, p.team))).map_err(|e| DemoError::Plans(e.to_string()))?;
    }
    let hash = crate::console::hash_password(password).map_err(DemoError::Plans)?;
    for (name, role) in DEMO_USERS {
        let teams = if role == "admin" { vec![] } else { vec!["centrum".to_string()] };
        let user = UserRow { name: name.into(), role: role.into(), teams, password_hash: hash.clone(), failed_logins: 0, locked_until: None };
        store.put_user(&user, &audit("user_changed", format!("user {name}, role {role}"))).map_err(|e| DemoError::Plans(e.to_string()))?;
    }
    Ok(())
}

/// The demo's console accounts (name, role); all share the password the demo prints.
pub const DEMO_USERS: [(&str, &str); 4] =
    [("natt", "night_staff"), ("sjukskoterska", "nurse"), ("installator", "installer"), ("admin", "admin")];

pub struct Demo {
    hub: Hub,
    homes: Vec<JoinHandle<()>>,
    stop_homes: watch::Sender<bool>,
    /// A night-staff token: sees the console, asks for camera checks and snapshots.
    pub token: String,
    /// The administrator's token (`api_token`): may read the audit log, never see pictures.
    pub admin_token: String,
    /// The password of the demo's console accounts ([`DEMO_USERS`]).
    pub password: String,
    pub broker: SocketAddr,
    /// The console's certificate; `None` when it is served over plain HTTP.
    pub certificate: Option<DemoCertificate>,
    /// Kept so the directory lives as long as the demo and is removed after it.
    data: tempfile::TempDir,
}

impl Demo {
    /// Starts the hub on `http` with its embedded broker on `127.0.0.1:mqtt_port` (0: any free
    /// port), then the simulated homes.
    pub async fn start(http: SocketAddr, mqtt_port: u16, transport: Transport) -> Result<Demo, DemoError> {
        let data = tempfile::Builder::new().prefix("vaka-demo-").tempdir().map_err(DemoError::TempDir)?;
        let (https, certificate) = match transport {
            Transport::Https => {
                let (https, cert) = self_signed(data.path(), http.ip())?;
                (Some(https), Some(cert))
            }
            Transport::PlainHttp => (None, None),
        };
        let secure_cookies = https.is_some();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let admin_token = uuid::Uuid::new_v4().simple().to_string();
        let config = HubConfig {
            broker: BrokerConfig::Embedded { listen: SocketAddr::from(([127, 0, 0, 1], mqtt_port)), devices: None },
            broker_ca_file: None,
            store_path: data.path().join("hub.db"),
            database_url: None,
            http_listen: http,
            api_token: admin_token.clone(),
            tokens: vec![TokenConfig { name: "natt".into(), role: Role::NightStaff, token: token.clone(), teams: None }],
            sessions: crate::console::SessionPolicy { secure_cookies, ..Default::default() },
            https,
            alarm_signal: crate::config::ALARM_SIGNAL_DEFAULT,
            supervision: SupervisionConfig::default(),
            cameras: Default::default(),
            rounds: night_rounds(jiff::Timestamp::now()),
            crl_reload: None,
        };
        let password = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        seed_plans(&config.store(), &password)?;
        let listener = tokio::net::TcpListener::bind(http)
            .await
            .map_err(|source| DemoError::Http { addr: http, source })?;
        let hub = Hub::start(config, listener).await?;
        let broker = hub.embedded_broker_addr().ok_or(DemoError::NoBroker)?;

        let (stop_homes, stopped) = watch::channel(false);
        let site = SiteId::new("demo")?;
        let mut homes = Vec::with_capacity(HOMES);
        for n in 1..=HOMES {
            let device = DeviceId::new(format!("home-{n:03}"))?;
            let outbox: PathBuf = data.path().join(format!("{device}-outbox.db"));
            let link = MqttLink::plaintext(broker.ip().to_string(), broker.port());
            let mut agent = AgentConfig::new(device.clone(), site.clone(), link, outbox);
            agent.uplink.heartbeat = std::time::Duration::from_secs(15);
            agent.simulator = Some(SimulatorSettings { speed: SPEED, seed: n as u64 });
            let consent = Consent::around(jiff::Timestamp::now(), 11, "demo");
            agent.camera = Some(CameraSettings::simulated(n as u64, None, consent));
            // Doses come from a simulated dispenser through the agent's real dose book, so a
            // dose not taken in time is raised as dose_missed by the agent itself.
            agent.dispenser = Some(DispenserSettings {
                source: SourceSettings::Simulator { seed: n as u64, speed: SPEED },
                rules: Rules::default(),
            });
            let mut stop = stopped.clone();
            homes.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = vaka_agent::run(agent, shutdown).await {
                    warn!(%device, "Simulated home stopped: {e}");
                }
            }));
        }
        info!(homes = HOMES, speed = SPEED, data = %data.path().display(), "Demo started");
        Ok(Demo { hub, homes, stop_homes, token, admin_token, password, broker, certificate, data })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.hub.http_addr()
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.data.path()
    }

    /// Stops the homes first (they say goodbye with an offline status), then the hub.
    pub async fn stop(self) {
        let _ = self.stop_homes.send(true);
        for home in self.homes {
            let _ = home.await;
        }
        self.hub.stop().await;
        drop(self.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn demo_plans_are_valid_and_inside_the_night_shift() {
        let (recipients, patrols) = plans();
        assert_eq!(recipients.len(), HOMES + 1, "every plan parses");
        assert_eq!(patrols.len(), 1);
        let shift = RoundsConfig::default().shift;
        for r in &recipients {
            assert_eq!(r.validate(), Vec::<String>::new(), "{}", r.id);
            assert!(r.checks.iter().all(|c| shift.contains_clock(c.at)), "{}", r.id);
        }
        assert_eq!(patrols[0].validate(), Vec::<String>::new());
    }

    #[test]
    fn demo_certificate_is_usable_and_its_printed_fingerprint_is_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let (https, cert) = self_signed(dir.path(), "127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(https.fingerprint(), cert.fingerprint);
        let der = rustls::pki_types::CertificateDer::from_pem_file(&cert.file).unwrap();
        assert_eq!(crate::console::tls::fingerprint(&der), cert.fingerprint);
        // 32 bytes, as browsers show them.
        assert_eq!(cert.fingerprint.split(':').count(), 32, "{}", cert.fingerprint);
    }

    #[test]
    fn demo_night_starts_two_round_minutes_before_tonights_shift() {
        let now: jiff::Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let rounds = night_rounds(now);
        let start: jiff::Timestamp = "2026-11-23T20:58:00+01:00".parse().unwrap();
        assert_eq!(rounds.clock.speed(), SPEED);
        match rounds.clock {
            RoundClock::Simulated { start: s, anchor, .. } => assert_eq!((s, anchor), (start, now)),
            RoundClock::System => panic!("the demo runs on a simulated clock"),
        }
    }
}
