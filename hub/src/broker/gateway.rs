//! The embedded broker's device listener: MQTT over TLS with a client certificate from the
//! hub's device CA, and the same rules the generated Mosquitto ACL gives (`pki::mosquitto_acl`).
//!
//! rumqttd has no per-client topic rules, so devices do not reach it directly: they connect
//! here, the TLS handshake requires a certificate that chains to the device CA and is not on
//! its revocation list (a missing, expired, revoked or foreign certificate ends the handshake),
//! and the certificate's common name is the device's identity. Every packet the device sends
//! is read and checked before it is passed on to rumqttd on loopback:
//! - `CONNECT`: its last will, if any, must be on the device's own `status` topic; its client
//!   id is prefixed with the device id, so no device can take over another's session;
//! - `PUBLISH`: only to the device's own `events`, `status` and `snapshot` topics;
//! - `SUBSCRIBE`: only the device's own `acks` and `cmd` topics, no wildcards.
//!
//! A packet that breaks a rule closes the connection (nothing of it reaches the broker), with
//! a WARN naming the device and the topic, and a count (`identity_refused`). What the broker
//! sends to the device is passed through as it is.
//!
//! Revocation takes effect at once: [`Gateway::revoke`] swaps in the new list for the next
//! handshakes and closes the live connections made with a revoked certificate.

use crate::ingest::Stats;
use bytes::BytesMut;
use rumqttc::mqttbytes::v4::Packet;
use rumqttc::mqttbytes::Error as MqttError;
use rustls::pki_types::{pem::PemObject, CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};
use vaka_protocol::topic::{Channel, Topic};

/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who a connection belongs to, from its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub device: String,
    /// Upper-case hex without leading zero bytes, as the hub's certificate table keeps it
    /// (compared with [`same_serial`]).
    pub serial: String,
}

struct Live {
    serial: String,
    task: AbortHandle,
}

/// The running device listener.
#[derive(Clone)]
pub struct Gateway {
    pub addr: SocketAddr,
    tls: Arc<RwLock<Arc<ServerConfig>>>,
    live: Arc<Mutex<HashMap<u64, (String, Live)>>>,
    server: Arc<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    roots: Arc<RootCertStore>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("addr", &self.addr).finish_non_exhaustive()
    }
}

fn server_config(
    server: &(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    roots: &Arc<RootCertStore>,
    crl_pem: &str,
) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let crl = CertificateRevocationListDer::from_pem_slice(crl_pem.as_bytes()).map_err(|e| format!("the revocation list is not PEM: {e}"))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .with_crls([crl])
        .only_check_end_entity_revocation()
        .build()
        .map_err(|e| format!("cannot check device certificates: {e}"))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(server.0.clone(), server.1.clone_key())
        .map_err(|e| format!("the listener's certificate and key do not fit together: {e}"))?;
    Ok(Arc::new(config))
}

/// The device, by its certificate's common name, and the certificate's serial.
pub fn peer_identity(der: &[u8]) -> Result<PeerIdentity, String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("unreadable certificate: {e}"))?;
    let device = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or("the certificate has no common name")?
        .to_string();
    let serial = cert.tbs_certificate.raw_serial().iter().map(|b| format!("{b:02X}")).collect();
    Ok(PeerIdentity { device, serial })
}

/// Serials as hex compare equal with or without leading zero bytes.
pub fn same_serial(a: &str, b: &str) -> bool {
    let trim = |s: &str| {
        let mut s = s.to_ascii_uppercase();
        while s.starts_with("00") && s.len() > 2 {
            s.drain(..2);
        }
        s
    };
    trim(a) == trim(b)
}

impl Gateway {
    /// Binds `listen` and serves devices, passing checked traffic on to the broker at
    /// `upstream`. `cert`/`key`: the listener's own certificate (PEM); `ca_pem`: the device CA;
    /// `crl_pem`: its current revocation list.
    pub async fn start(listen: SocketAddr, cert: &Path, key: &Path, ca_pem: &str, crl_pem: &str, upstream: SocketAddr, stats: Arc<Stats>) -> Result<Gateway, String> {
        let certs = CertificateDer::pem_file_iter(cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("embedded_broker.device_tls_cert {}: {e}", cert.display()))?;
        if certs.is_empty() {
            return Err(format!("embedded_broker.device_tls_cert {}: no certificate in it", cert.display()));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("embedded_broker.device_tls_key {}: {e}", key.display()))?;
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let ca = ca.map_err(|e| format!("the device CA is not PEM: {e}"))?;
            roots.add(ca).map_err(|e| format!("the device CA is not usable: {e}"))?;
        }
        let roots = Arc::new(roots);
        let server = Arc::new((certs, key));
        let tls = Arc::new(RwLock::new(server_config(&server, &roots, crl_pem)?));
        let listener = TcpListener::bind(listen).await.map_err(|e| format!("embedded_broker.device_listen {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let gateway = Gateway { addr, tls, live: Arc::new(Mutex::new(HashMap::new())), server, roots };
        tokio::spawn(gateway.clone().accept(listener, upstream, stats));
        info!(%addr, "Device listener (TLS, device certificates) for the embedded broker");
        Ok(gateway)
    }

    async fn accept(self, listener: TcpListener, upstream: SocketAddr, stats: Arc<Stats>) {
        let mut next_id = 0u64;
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "Device listener cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            next_id += 1;
            let id = next_id;
            let config = self.tls.read().map(|c| c.clone());
            let Ok(config) = config else { return };
            let gateway = self.clone();
            let stats = stats.clone();
            // The task registers itself (with its abort handle) once the handshake names the device.
            let (handle_tx, handle_rx) = tokio::sync::oneshot::channel::<AbortHandle>();
            let task = tokio::spawn(async move {
                let Ok(me) = handle_rx.await else { return };
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        stats.identity_refused.fetch_add(1, Relaxed);
                        warn!(%peer, error = %e, "Device refused at the TLS handshake");
                        return;
                    }
                    Err(_) => {
                        stats.identity_refused.fetch_add(1, Relaxed);
                        warn!(%peer, "Device TLS handshake timed out");
                        return;
                    }
                };
                let identity = match tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| peer_identity(c)) {
                    Some(Ok(identity)) => identity,
                    Some(Err(e)) => {
                        stats.identity_refused.fetch_add(1, Relaxed);
                        warn!(%peer, error = %e, "Device certificate without a usable identity");
                        return;
                    }
                    None => return,
                };
                if let Ok(mut live) = gateway.live.lock() {
                    live.insert(id, (identity.device.clone(), Live { serial: identity.serial.clone(), task: me }));
                }
                debug!(%peer, device = %identity.device, "Device connected through the device listener");
                if let Err(e) = relay(tls, &identity, upstream).await {
                    match e {
                        Relay::Refused(why) => {
                            stats.identity_refused.fetch_add(1, Relaxed);
                            warn!(%peer, device = %identity.device, "Device connection closed: {why}");
                        }
                        Relay::Io(e) => debug!(%peer, device = %identity.device, error = %e, "Device connection ended"),
                    }
                }
                if let Ok(mut live) = gateway.live.lock() {
                    live.remove(&id);
                }
            });
            let _ = handle_tx.send(task.abort_handle());
        }
    }

    /// Takes `crl_pem` for every later handshake.
    pub fn set_crl(&self, crl_pem: &str) -> Result<(), String> {
        let config = server_config(&self.server, &self.roots, crl_pem)?;
        if let Ok(mut tls) = self.tls.write() {
            *tls = config;
        }
        Ok(())
    }

    /// Takes `crl_pem` for every later handshake and closes the live connections of `device`
    /// made with one of `serials`. Returns how many it closed.
    pub fn revoke(&self, crl_pem: &str, device: &str, serials: &[String]) -> Result<usize, String> {
        self.set_crl(crl_pem)?;
        let mut closed = 0;
        if let Ok(mut live) = self.live.lock() {
            live.retain(|_, (d, conn)| {
                let revoked = d == device && serials.iter().any(|s| same_serial(s, &conn.serial));
                if revoked {
                    conn.task.abort();
                    closed += 1;
                }
                !revoked
            });
        }
        if closed > 0 {
            info!(device, closed, "Live connections of a revoked certificate closed");
        }
        Ok(closed)
    }
}

enum Relay {
    Refused(String),
    Io(std::io::Error),
}

impl From<std::io::Error> for Relay {
    fn from(e: std::io::Error) -> Self {
        Relay::Io(e)
    }
}

/// Checks one packet from `device` and returns what to pass on (a CONNECT gets its client id
/// prefixed), or why the connection must close.
pub fn check_packet(device: &str, packet: Packet) -> Result<Packet, String> {
    let own = |topic: &str, allowed: &[Channel]| match Topic::parse(topic) {
        Ok(t) => t.device.as_str() == device && allowed.contains(&t.channel),
        Err(_) => false,
    };
    match packet {
        Packet::Connect(mut c) => {
            if let Some(will) = &c.last_will {
                if !own(&will.topic, &[Channel::Status]) {
                    return Err(format!("last will on `{}`, not its own status topic", will.topic));
                }
            }
            c.client_id = format!("{device}:{}", c.client_id);
            Ok(Packet::Connect(c))
        }
        Packet::Publish(p) => {
            if own(&p.topic, &[Channel::Events, Channel::Status, Channel::Snapshot]) {
                Ok(Packet::Publish(p))
            } else {
                Err(format!("publish to `{}`, not one of its own topics", p.topic.chars().take(200).collect::<String>()))
            }
        }
        Packet::Subscribe(s) => match s.filters.iter().find(|f| !own(&f.path, &[Channel::Acks, Channel::Cmd])) {
            Some(f) => Err(format!("subscribe to `{}`, not its own acks or cmd topic", f.path)),
            None => Ok(Packet::Subscribe(s)),
        },
        Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => Err("sent a packet only a broker sends".into()),
        other => Ok(other),
    }
}

async fn relay(tls: tokio_rustls::server::TlsStream<TcpStream>, who: &PeerIdentity, upstream: SocketAddr) -> Result<(), Relay> {
    let broker = TcpStream::connect(upstream).await?;
    broker.set_nodelay(true)?;
    let (mut from_device, mut to_device) = tokio::io::split(tls);
    let (mut from_broker, mut to_broker) = broker.into_split();
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_broker, &mut to_device).await;
        let _ = to_device.shutdown().await;
    });
    let _down = AbortOnDrop(down.abort_handle());
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = BytesMut::with_capacity(4096);
    let mut first = true;
    loop {
        loop {
            match Packet::read(&mut buf, super::MAX_PAYLOAD + 1024) {
                Ok(packet) => {
                    if first && !matches!(packet, Packet::Connect(_)) {
                        return Err(Relay::Refused("first packet is not CONNECT".into()));
                    }
                    first = false;
                    let packet = check_packet(&who.device, packet).map_err(Relay::Refused)?;
                    out.clear();
                    packet.write(&mut out, usize::MAX).map_err(|e| Relay::Refused(format!("cannot pass a packet on: {e}")))?;
                    to_broker.write_all(&out).await?;
                }
                Err(MqttError::InsufficientBytes(_)) => break,
                Err(e) => return Err(Relay::Refused(format!("malformed MQTT: {e}"))),
            }
        }
        if from_device.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::v4::{Connect, LastWill, Publish, Subscribe, SubscribeFilter};
    use rumqttc::mqttbytes::QoS;

    #[test]
    fn a_device_may_use_only_its_own_topics_and_gets_its_own_client_id_space() {
        let own = "vaka/v1/skelleftea/home-1";
        let other = "vaka/v1/skelleftea/home-2";
        let publish = |t: String| check_packet("home-1", Packet::Publish(Publish::new(t, QoS::AtLeastOnce, vec![1u8])));
        for ch in ["events", "status", "snapshot"] {
            assert!(publish(format!("{own}/{ch}")).is_ok(), "{ch}");
            assert!(publish(format!("{other}/{ch}")).is_err(), "{ch} of another device");
        }
        for ch in ["acks", "cmd"] {
            assert!(publish(format!("{own}/{ch}")).is_err(), "a device does not write its {ch}");
        }
        assert!(publish("vaka/v1/skelleftea/home-1".into()).is_err());
        let subscribe = |f: &str| check_packet("home-1", Packet::Subscribe(Subscribe::new_many([SubscribeFilter::new(f.into(), QoS::AtLeastOnce)])));
        assert!(subscribe(&format!("{own}/acks")).is_ok());
        assert!(subscribe(&format!("{own}/cmd")).is_ok());
        for bad in ["#", "vaka/v1/+/+/cmd", "vaka/v1/skelleftea/+/acks", &format!("{other}/acks"), &format!("{own}/events")] {
            let e = subscribe(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        let mut connect = Connect::new("skelleftea-home-1");
        connect.last_will = Some(LastWill::new(format!("{own}/status"), "offline", QoS::AtLeastOnce, true));
        let Ok(Packet::Connect(c)) = check_packet("home-1", Packet::Connect(connect.clone())) else { panic!("own will refused") };
        assert_eq!(c.client_id, "home-1:skelleftea-home-1");
        connect.last_will = Some(LastWill::new(format!("{other}/status"), "offline", QoS::AtLeastOnce, true));
        assert!(check_packet("home-1", Packet::Connect(connect)).is_err(), "a will on another device's topic");
    }

    #[test]
    fn serials_match_with_or_without_leading_zero_bytes() {
        assert!(same_serial("000A1B", "0a1b"));
        assert!(!same_serial("0A1B", "0A1C"));
    }
}
