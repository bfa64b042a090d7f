//! The Vaka hub: receives device events over MQTT, stores them durably, supervises that
//! devices stay in touch, and serves the JSON API and the night staff's console.
//!
//! [`serve`] runs a hub until a shutdown future completes; [`Hub::start`] gives the running
//! hub to the caller (tests, the demo) with the embedded broker's address. Both take the HTTP
//! listener already bound, so tests bind port 0 and run the real thing in-process.
//!
//! Folders: `ingest/` (MQTT session, pipeline, group-committing writer, commands to devices),
//! `store/` (the store interface and SQLite), `presence/` (online/offline and supervision),
//! `camera/` (camera checks' rules and the in-memory snapshot vault), `broker/` (embedded
//! rumqttd), `console/` (HTTP), `access.rs` (roles and who may do what), `config.rs` (the
//! config file).

// Tests may unwrap; the library itself may not (workspace lint `unwrap_used`).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod access;
pub mod broker;
pub mod camera;
pub mod config;
pub mod console;
pub mod demo;
pub mod identity;
pub mod ingest;
pub mod leader;
pub mod pki;
pub mod presence;
pub mod rounds;
pub mod routing;
pub mod store;

pub use config::{BrokerConfig, CameraConfig, HubConfig, SupervisionConfig, TokenConfig};
pub use ingest::StatsSnapshot;

use camera::Snapshots;
use ingest::{spawn_session, AckOut, Feed, SessionHandles, Stats, Writer, WriterMsg};
use jiff::Timestamp;
use presence::Presence;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::StoreError;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use vaka_agent::link::MqttLink;

/// Messages waiting for the store writer. When full, the MQTT session stops reading.
const WRITER_QUEUE: usize = 16 * 1024;
/// Live-feed messages buffered per console client before it is told it lagged.
const FEED_BUFFER: usize = 4096;

#[derive(Debug, Error)]
pub enum HubError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("rounds: {0}")]
    Rounds(String),
}

/// A running hub.
pub struct Hub {
    http_addr: SocketAddr,
    broker_addr: Option<SocketAddr>,
    device_addr: Option<SocketAddr>,
    stats: Arc<Stats>,
    shutdown: watch::Sender<bool>,
    session: SessionHandles,
    ticker: JoinHandle<()>,
    rounds_ticker: JoinHandle<()>,
    leader_task: JoinHandle<()>,
    vault_sweeper: JoinHandle<()>,
    writer: std::thread::JoinHandle<()>,
    http: JoinHandle<std::io::Result<()>>,
}

/// Runs a hub until `shutdown` completes, then stops it gracefully.
pub async fn serve(
    config: HubConfig,
    http: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), HubError> {
    let hub = Hub::start(config, http).await?;
    shutdown.await;
    hub.stop().await;
    Ok(())
}

impl Hub {
    /// Opens the store, starts the embedded broker if configured, connects ingest and serves
    /// HTTP on `http`. Returns once everything is started (MQTT may still be connecting).
    pub async fn start(config: HubConfig, http: TcpListener) -> Result<Hub, HubError> {
        let store_config = config.store();
        let (writer_store, reader_store, devices) = {
            let store_config = store_config.clone();
            tokio::task::spawn_blocking(move || {
                let writer = store::open(&store_config)?;
                let reader = store::open(&store_config)?;
                let devices = writer.devices()?;
                Ok::<_, StoreError>((writer, reader, devices))
            })
            .await
            .map_err(std::io::Error::other)??
        };
        info!(store = %store_config.describe(), devices = devices.len(), "Store opened");

        let shared_group = match &config.broker {
            BrokerConfig::External { shared_group, .. } => shared_group.clone(),
            BrokerConfig::Embedded { .. } => None,
        };
        let shared = shared_group.is_some();
        // The lease holder is the MQTT client id: unique per hub, and the same after a restart,
        // so a restarted hub takes its own lease back at once.
        let leadership = leader::Leadership::new(match &config.broker {
            BrokerConfig::External { client_id, .. } => client_id.clone(),
            BrokerConfig::Embedded { .. } => config::DEFAULT_CLIENT_ID.to_string(),
        });
        let lease_store: Box<dyn store::LeaseStore> = {
            let store_config = store_config.clone();
            tokio::task::spawn_blocking(move || store::open(&store_config))
                .await
                .map_err(std::io::Error::other)??
        };
        let (options, broker_addr) = match &config.broker {
            BrokerConfig::Embedded { listen, .. } => {
                let listen = *listen;
                let b = tokio::task::spawn_blocking(move || broker::start(listen))
                    .await
                    .map_err(std::io::Error::other)??;
                let host = match b.addr.ip() {
                    ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    ip => ip,
                };
                let link = MqttLink::plaintext(host.to_string(), b.addr.port());
                (link.options(config::DEFAULT_CLIENT_ID), Some(b.addr))
            }
            BrokerConfig::External { link, client_id, .. } => (link.options(client_id), None),
        };
        let broker_ca = match &config.broker_ca_file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| std::io::Error::other(format!("mqtt.ca_file {}: {e}", path.display())))?),
            None => None,
        };
        let agent_broker = match (&config.broker, broker_addr) {
            (BrokerConfig::External { link, .. }, _) => console::AgentBroker { host: Some(link.host.clone()), port: link.port, tls: link.tls.is_some(), ca_pem: broker_ca },
            (_, addr) => console::AgentBroker { host: None, port: addr.map_or(1883, |a| a.port()), tls: false, ca_pem: None },
        };
        let stats = Arc::new(Stats::default());
        // The device CA lives beside the database, with its revocation list, written now so
        // that brokers and the device listener start with the current one.
        let ca_dir = pki::ca_dir(&config.store_path);
        let device_ca = Arc::new(pki::DeviceCa::load_or_create(&ca_dir).map_err(std::io::Error::other)?);
        let external = match &config.broker {
            BrokerConfig::External { link, .. } => Some(link.clone()),
            BrokerConfig::Embedded { .. } => None,
        };
        let identity = Arc::new(identity::Identity::new(device_ca.clone(), ca_dir, config.crl_reload.clone(), external));
        let crl_pem = {
            let store_config = store_config.clone();
            let identity = identity.clone();
            tokio::task::spawn_blocking(move || {
                let store = store::open(&store_config).map_err(|e| e.to_string())?;
                identity.publish_crl(store.as_ref(), Timestamp::now()).map(|(pem, _)| pem)
            })
            .await
            .map_err(std::io::Error::other)?
            .map_err(|e| std::io::Error::other(format!("device revocation list: {e}")))?
        };
        if let (BrokerConfig::Embedded { devices: Some(d), .. }, Some(upstream)) = (&config.broker, broker_addr) {
            let upstream = match upstream.ip() {
                ip if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), upstream.port()),
                _ => upstream,
            };
            let gateway = broker::gateway::Gateway::start(d.listen, &d.cert, &d.key, device_ca.ca_pem(), &crl_pem, upstream, stats.clone())
                .await
                .map_err(std::io::Error::other)?;
            identity.set_gateway(gateway);
        }

        let presence = Presence::restore(config.supervision.clone(), devices, Timestamp::now());
        let tick_period = presence.tick_period();
        let (feed, _) = broadcast::channel::<Feed>(FEED_BUFFER);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (writer_tx, writer_rx) = mpsc::channel::<WriterMsg>(WRITER_QUEUE);
        let leader_task = tokio::spawn(leader::run(leadership.clone(), lease_store, shutdown_rx.clone()));
        let (acks_tx, acks_rx) = mpsc::unbounded_channel::<AckOut>();

        let writer = Writer {
            store: writer_store,
            presence,
            stats: stats.clone(),
            acks: acks_tx,
            feed: feed.clone(),
            abort_after_commit: crate::ingest::fault::AbortAfterCommit::from_env(),
            leader: Some(leadership.clone()),
            shared,
        };
        let writer = std::thread::Builder::new()
            .name("vaka-store-writer".into())
            .spawn(move || writer.run(writer_rx))?;
        let ticker = tokio::spawn(tick(writer_tx.clone(), tick_period, shutdown_rx.clone()));
        let snapshots = Snapshots::new(config.cameras.snapshot_view_span, config.cameras.calibration_span, stats.clone());
        let vault_sweeper = tokio::spawn(snapshots.clone().sweep_until(shutdown_rx.clone()));
        let sharing = shared_group.map(|group| ingest::Sharing { group, me: leadership.me().to_string(), feed: feed.clone() });
        let session = spawn_session(
            options,
            sharing,
            writer_tx,
            acks_rx,
            snapshots.clone(),
            stats.clone(),
            shutdown_rx.clone(),
        );

        let rounds_store = {
            let store_config = store_config.clone();
            tokio::task::spawn_blocking(move || store::open(&store_config))
                .await
                .map_err(std::io::Error::other)??
        };
        let travel = rounds::routes::travel(&config.rounds.travel).map_err(HubError::Rounds)?;
        let engine = rounds::engine::Engine::new(
            rounds_store,
            config.rounds.clone(),
            config.cameras.check_open,
            Box::new(rounds::engine::MqttSender(session.commands.clone())),
            travel,
        );
        let engine = Arc::new(Mutex::new(engine));
        let connected = {
            let stats = stats.clone();
            move || stats.mqtt_connected.load(std::sync::atomic::Ordering::Relaxed)
        };
        let rounds_ticker = tokio::spawn(rounds::engine::run(
            engine.clone(),
            rounds::engine::tick_period(config.rounds.clock.speed()),
            connected,
            leadership.clone(),
            shared,
            shutdown_rx.clone(),
        ));
        info!(clock = ?config.rounds.clock, shift = %format!("{}-{}", config.rounds.shift.start, config.rounds.shift.end), enabled = config.rounds.enabled, "Rounds started");

        let state = console::AppState {
            store: Arc::new(Mutex::new(reader_store)),
            stats: stats.clone(),
            feed,
            tokens: Arc::new(console::Tokens::new(&config.api_token, &config.tokens)),
            commands: session.commands.clone(),
            snapshots,
            cameras: config.cameras,
            shutdown: shutdown_rx.clone(),
            rounds: engine,
            shift: config.rounds.shift.clone(),
            sessions: config.sessions,
            alarm_signal: config.alarm_signal,
            agent_broker,
            identity: identity.clone(),
            leader: leadership,
            shared,
        };
        tokio::spawn(identity.clone().refresh_until(state.store.clone(), shutdown_rx.clone()));
        let device_addr = identity.gateway().map(|g| g.addr);
        let http_addr = http.local_addr()?;
        let app = console::router(state);
        let scheme = if config.https.is_some() { "https" } else { "http" };
        let http = match &config.https {
            None => tokio::spawn(serve_http(http, app, shutdown_rx)),
            Some(https) => {
                let tls = console::tls::TlsListener::new(http, https, stats.clone())?;
                tokio::spawn(serve_http(tls, app, shutdown_rx))
            }
        };
        info!(%http_addr, scheme, broker = ?broker_addr, "Hub started");
        Ok(Hub {
            http_addr,
            broker_addr,
            device_addr,
            stats,
            shutdown,
            session,
            ticker,
            rounds_ticker,
            leader_task,
            vault_sweeper,
            writer,
            http,
        })
    }

    /// The address the HTTP API and console answer on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The embedded broker's device listener (TLS, device certificates), when configured.
    pub fn device_listener_addr(&self) -> Option<SocketAddr> {
        self.device_addr
    }

    /// The embedded broker's address (with its real port), or `None` with an external broker.
    pub fn embedded_broker_addr(&self) -> Option<SocketAddr> {
        self.broker_addr
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Stops taking messages, lets the writer commit what it has, closes HTTP. Acks not yet
    /// published are dropped; their devices resend and get them as duplicates.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.session.poller.await;
        let _ = self.ticker.await;
        let _ = self.rounds_ticker.await;
        // After the last round tick: releases the lease so another hub takes over at once.
        let _ = self.leader_task.await;
        let _ = self.vault_sweeper.await;
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        let mut acker = self.session.acker;
        if tokio::time::timeout(Duration::from_secs(2), &mut acker)
            .await
            .is_err()
        {
            acker.abort();
        }
        let mut http = self.http;
        match tokio::time::timeout(Duration::from_secs(5), &mut http).await {
            Ok(Ok(Err(e))) => warn!(error = %e, "HTTP server ended with an error"),
            Err(_) => {
                warn!("HTTP connections did not close within 5 s; closing them");
                http.abort();
            }
            _ => {}
        }
        info!(stats = ?self.stats.snapshot(), "Hub stopped");
    }
}

/// Serves the console on `listener` (plain TCP, or TLS with `http.tls_cert`) until the hub's
/// shutdown, then lets open requests finish.
async fn serve_http<L>(listener: L, app: axum::Router, mut stop: watch::Receiver<bool>) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        })
        .await
}

/// Wakes the writer so an idle hub still checks supervision and camera-check deadlines.
async fn tick(
    writer: mpsc::Sender<WriterMsg>,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = interval.tick() => {
                // A full queue means the writer is busy and checks the time itself.
                let _ = writer.try_send(WriterMsg::Tick);
            }
        }
    }
}
