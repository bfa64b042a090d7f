//! The embedded MQTT broker (rumqttd), for a hub that runs alone without Mosquitto.
//!
//! It listens for MQTT 3.1.1 on the configured address, with limits sized for a municipality:
//! thousands of device connections, payloads up to 256 KiB (larger publishes are refused by the
//! broker before they reach the hub), QoS 1, retained messages, last wills and persistent
//! sessions. The hub's own ingest client connects to it on loopback like any device.
//!
//! rumqttd binds its listener itself, so a port of 0 is resolved here first: a free port is
//! picked by binding and releasing it, then handed to rumqttd. rumqttd has no stop: the broker
//! threads live until the process exits (a hub process runs one broker for its whole life).
//! Its state is in memory: sessions and retained messages do not survive a hub restart; the
//! devices' outboxes cover that, and production uses an external broker.

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};
use thiserror::Error;
use tracing::{error, info};

/// Largest publish the broker accepts.
pub const MAX_PAYLOAD: usize = 256 * 1024;
pub const MAX_CONNECTIONS: usize = 10_000;

#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("embedded broker cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("embedded broker did not start listening on {0} within 5 s")]
    NotListening(SocketAddr),
    #[error("embedded broker thread could not start: {0}")]
    Thread(std::io::Error),
}

/// A running embedded broker.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedBroker {
    /// Where it listens, with the real port when 0 was asked for.
    pub addr: SocketAddr,
}

fn config(addr: SocketAddr) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: MAX_PAYLOAD,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "vaka-v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: MAX_CONNECTIONS,
            max_outgoing_packet_count: 1000,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 4,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Config::default()
    }
}

/// Starts the broker on its own thread and returns once it accepts connections.
pub fn start(listen: SocketAddr) -> Result<EmbeddedBroker, BrokerError> {
    // Resolve port 0 and report "address in use" here, as rumqttd would only log it.
    let addr = TcpListener::bind(listen)
        .and_then(|l| l.local_addr())
        .map_err(|source| BrokerError::Bind {
            addr: listen,
            source,
        })?;
    let mut broker = Broker::new(config(addr));
    std::thread::Builder::new()
        .name("vaka-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                error!(error = %e, "Embedded MQTT broker stopped; devices cannot reach the hub");
            }
        })
        .map_err(BrokerError::Thread)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err(BrokerError::NotListening(addr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    info!(%addr, "Embedded MQTT broker listening");
    Ok(EmbeddedBroker { addr })
}

pub mod gateway;

#[cfg(test)]
mod tests;
