//! `vaka-hub demo`: the whole system on one machine with nothing installed.
//!
//! Starts the hub with its embedded broker and a SQLite database in a temporary directory,
//! and five simulated homes that run the real agent code ([`vaka_agent::run`]: outbox on disk,
//! MQTT uplink, acks) with the simulator's compressed clock, so a night's camera checks,
//! doses and GPS positions arrive within minutes. Each home has a simulated camera (a
//! synthetic bedroom analysed by the agent's real code) with demo consent covering the hours
//! around the demo's start, so that checks and snapshots can be tried at any time of day, and a
//! simulated medication dispenser whose doses go through the agent's real dose book.
//! Everything is deleted when the demo stops.

use crate::access::Role;
use crate::config::{BrokerConfig, HubConfig, SupervisionConfig, TokenConfig};
use crate::{Hub, HubError};
use std::net::SocketAddr;
use std::path::PathBuf;
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
}

pub struct Demo {
    hub: Hub,
    homes: Vec<JoinHandle<()>>,
    stop_homes: watch::Sender<bool>,
    /// A night-staff token: sees the console, asks for camera checks and snapshots.
    pub token: String,
    /// The administrator's token (`api_token`): may read the audit log, never see pictures.
    pub admin_token: String,
    pub broker: SocketAddr,
    /// Kept so the directory lives as long as the demo and is removed after it.
    data: tempfile::TempDir,
}

impl Demo {
    /// Starts the hub on `http` with its embedded broker on `127.0.0.1:mqtt_port` (0: any free
    /// port), then the simulated homes.
    pub async fn start(http: SocketAddr, mqtt_port: u16) -> Result<Demo, DemoError> {
        let data = tempfile::Builder::new().prefix("vaka-demo-").tempdir().map_err(DemoError::TempDir)?;
        let token = uuid::Uuid::new_v4().simple().to_string();
        let admin_token = uuid::Uuid::new_v4().simple().to_string();
        let config = HubConfig {
            broker: BrokerConfig::Embedded { listen: SocketAddr::from(([127, 0, 0, 1], mqtt_port)) },
            store_path: data.path().join("hub.db"),
            http_listen: http,
            api_token: admin_token.clone(),
            tokens: vec![TokenConfig { name: "natt".into(), role: Role::NightStaff, token: token.clone() }],
            supervision: SupervisionConfig::default(),
            cameras: Default::default(),
            rounds: Default::default(),
        };
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
        Ok(Demo { hub, homes, stop_homes, token, admin_token, broker, data })
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
