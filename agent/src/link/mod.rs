//! The MQTT connection settings shared by the agent and the hub (`[mqtt]` in both configs).
//!
//! A link is TLS by default: the server certificate is verified against the configured CA,
//! and a client certificate is presented when configured. Plain TCP is allowed only when the
//! config says `allow_plaintext = true`, which is meant for loopback and test benches, and even
//! then the URL must say `mqtt://` so the choice is visible.
//!
//! Configuration is read in two steps (see `crate::config`): [`RawMqtt`] is what serde
//! reads; [`RawMqtt::validate`] collects every problem into the caller's report and returns a
//! typed [`MqttLink`].

use rumqttc::{AsyncClient, EventLoop, MqttOptions, NetworkOptions, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Installs ring as the process's rustls crypto provider. Call once at start-up; mixing
/// providers (ring and aws-lc-rs) in one process makes rustls panic, so Vaka names one.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed (e.g. a second call in tests).
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    /// `mqtts://host:port` (TLS) or `mqtt://host:port` (plain TCP, needs `allow_plaintext`).
    pub url: String,
    #[serde(default)]
    pub allow_plaintext: bool,
    /// PEM file with the CA certificate(s) that sign the broker's certificate.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate (chain) presented to the broker; needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// MQTT keep-alive; the broker declares the client gone after 1.5 × this.
    pub keep_alive: Option<jiff::SignedDuration>,
    /// MQTT client id. The agent defaults to `{site}-{device_id}`, the hub to `vaka-hub`.
    pub client_id: Option<String>,
    /// Hub only (the agent refuses it): share the ingest subscriptions among several hubs
    /// through `$share/{shared_group}/...` (see the hub's `ingest::session`).
    pub shared_group: Option<String>,
}

/// A validated link: where to connect and how.
#[derive(Clone)]
pub struct MqttLink {
    pub host: String,
    pub port: u16,
    /// `None` is plain TCP (only when explicitly allowed).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub credentials: Option<(String, String)>,
    pub keep_alive: Duration,
}

impl std::fmt::Debug for MqttLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttLink")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("keep_alive", &self.keep_alive)
            .finish()
    }
}

impl MqttLink {
    /// A plain-TCP link, for in-process use on loopback (the demo, tests).
    pub fn plaintext(host: impl Into<String>, port: u16) -> Self {
        MqttLink {
            host: host.into(),
            port,
            tls: None,
            credentials: None,
            keep_alive: Duration::from_secs(30),
        }
    }

    /// rumqttc options for this link with the given client id.
    pub fn options(&self, client_id: &str) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, &self.host, self.port);
        options.set_keep_alive(self.keep_alive);
        options.set_max_packet_size(256 * 1024, 256 * 1024);
        if let Some(tls) = &self.tls {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls.clone())));
        }
        if let Some((user, password)) = &self.credentials {
            options.set_credentials(user, password);
        }
        options
    }
}

/// Creates the MQTT client and its event loop for `options`, with Nagle's algorithm off:
/// alarms are small packets, and Nagle plus the peer's delayed ACK would hold some of them
/// back by tens of milliseconds.
pub fn client(options: MqttOptions, capacity: usize) -> (AsyncClient, EventLoop) {
    let (client, mut eventloop) = AsyncClient::new(options, capacity);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    (client, eventloop)
}

impl RawMqtt {
    /// Checks the section and loads certificates. Every problem found is pushed to `problems`
    /// (prefixed with `mqtt.`); the link is returned only if there were none.
    pub fn validate(&self, problems: &mut Vec<String>) -> Option<MqttLink> {
        let before = problems.len();
        let (tls, host, port) = match url::Url::parse(&self.url) {
            Err(e) => {
                problems.push(format!("mqtt.url: `{}` is not a URL: {e}", self.url));
                (false, String::new(), 0)
            }
            Ok(u) => {
                let tls = match u.scheme() {
                    "mqtts" => true,
                    "mqtt" => false,
                    other => {
                        problems.push(format!(
                            "mqtt.url: scheme `{other}` is not supported; use mqtts:// (TLS) or mqtt://"
                        ));
                        true
                    }
                };
                let host = u.host_str().unwrap_or_default().to_string();
                if host.is_empty() {
                    problems.push(format!("mqtt.url: `{}` has no host", self.url));
                }
                (tls, host, u.port().unwrap_or(if tls { 8883 } else { 1883 }))
            }
        };
        if !tls && !self.allow_plaintext {
            problems.push(
                "mqtt.url: plain mqtt:// sends alarms unencrypted; use mqtts:// or set \
                 mqtt.allow_plaintext = true (loopback and test benches only)"
                    .to_string(),
            );
        }
        if tls && self.ca_file.is_none() {
            problems.push("mqtt.ca_file: required for mqtts:// (the CA that signs the broker's certificate)".to_string());
        }
        let client_auth = match (&self.client_cert_file, &self.client_key_file) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                problems.push(
                    "mqtt.client_cert_file and mqtt.client_key_file come together".to_string(),
                );
                None
            }
        };
        // MQTT carries keep-alive in 16 bits of seconds.
        let keep_alive = crate::config::duration(
            problems,
            "mqtt.keep_alive",
            self.keep_alive,
            Duration::from_secs(30),
            Duration::from_secs(5),
            Duration::from_secs(65_535),
        );
        let credentials = match (&self.username, &self.password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            (None, None) => None,
            _ => {
                problems.push("mqtt.username and mqtt.password come together".to_string());
                None
            }
        };
        let tls_config = match (tls, &self.ca_file) {
            (true, Some(ca)) => match client_config(ca, client_auth) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    problems.push(e);
                    None
                }
            },
            _ => None,
        };
        if problems.len() > before {
            return None;
        }
        Some(MqttLink { host, port, tls: tls_config, credentials, keep_alive })
    }
}

/// Builds the rustls client config: roots from `ca`, optional client certificate.
fn client_config(
    ca: &Path,
    client_auth: Option<(&PathBuf, &PathBuf)>,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = read_certs(ca, "mqtt.ca_file")?;
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("mqtt.ca_file: {}: not a usable CA certificate: {e}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("mqtt: TLS set-up failed: {e}"))?
        .with_root_certificates(roots);
    match client_auth {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = read_certs(cert, "mqtt.client_cert_file")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                format!("mqtt.client_key_file: {}: no PEM private key: {e}", key.display())
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!("mqtt.client_cert_file: certificate and key do not fit together: {e}")
            })
        }
    }
}

fn read_certs(path: &Path, field: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{field}: {}: cannot read: {e}", path.display()))?
        .collect();
    let certs = certs.map_err(|e| format!("{field}: {}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{field}: {}: holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(url: &str) -> RawMqtt {
        RawMqtt {
            url: url.into(),
            allow_plaintext: false,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            username: None,
            password: None,
            keep_alive: None,
            client_id: None,
            shared_group: None,
        }
    }

    #[test]
    fn plaintext_is_refused_unless_explicitly_allowed() {
        let mut problems = Vec::new();
        assert!(raw("mqtt://127.0.0.1:1883").validate(&mut problems).is_none());
        assert!(problems[0].contains("allow_plaintext"), "{problems:?}");
        let mut ok = raw("mqtt://127.0.0.1:1883");
        ok.allow_plaintext = true;
        let link = ok.validate(&mut Vec::new()).unwrap();
        assert_eq!((link.host.as_str(), link.port, link.tls.is_none()), ("127.0.0.1", 1883, true));
    }

    #[test]
    fn tls_link_reports_every_missing_piece_at_once() {
        let mut r = raw("mqtts://broker.example");
        r.client_cert_file = Some("/nonexistent/cert.pem".into());
        r.username = Some("u".into());
        let mut problems = Vec::new();
        assert!(r.validate(&mut problems).is_none());
        let all = problems.join("\n");
        assert!(all.contains("ca_file"), "{all}");
        assert!(all.contains("client_key_file"), "{all}");
        assert!(all.contains("password"), "{all}");
    }

    #[test]
    fn unreadable_ca_file_is_named_in_the_report() {
        let mut r = raw("mqtts://broker.example:8883");
        r.ca_file = Some("/nonexistent/ca.pem".into());
        let mut problems = Vec::new();
        assert!(r.validate(&mut problems).is_none());
        assert!(problems[0].contains("/nonexistent/ca.pem"), "{problems:?}");
    }
}
