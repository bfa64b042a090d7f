//! Device identity at run time: issuing certificates (recorded in the store), revoking them,
//! keeping the revocation list current, and ending a revoked device's live session.
//!
//! The revocation list (`crl.pem` beside the device CA) is written at start-up, after each
//! revocation, and every day (it is valid for `pki::CRL_DAYS`; brokers refuse every device
//! once it has expired). After each write the hub runs `device_ca.crl_reload`, when set (e.g.
//! `systemctl reload mosquitto`: Mosquitto reads its `crlfile` again on SIGHUP), so the next
//! handshake of a revoked device fails.
//!
//! A session that is already up outlives a new revocation list on Mosquitto, so the hub ends
//! it: it connects to the external broker with the device's client id (`{site}-{device}`, the
//! agent's default), which makes the broker close the device's connection (session takeover),
//! and disconnects at once; when the device dials again its handshake meets the new list. On
//! the embedded broker's device listener the hub closes the connection itself.

use crate::broker::gateway::Gateway;
use crate::pki::{DeviceCa, Issued};
use crate::store::{CertOrigin, CertRow, Store, StoreError};
use jiff::Timestamp;
use rumqttc::{AsyncClient, Event, Packet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing::{error, info, warn};
use vaka_agent::link::MqttLink;
use vaka_protocol::DeviceId;

/// How long the hub waits for the broker to read its new list before ending the session.
const RELOAD_SETTLE: Duration = Duration::from_millis(500);

/// What revoking did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Revoked {
    pub serials: Vec<String>,
    /// The broker was told to read the new list (`crl_reload` ran and succeeded).
    pub broker_reloaded: bool,
    /// Live sessions ended: connections closed by the device listener, or a takeover on the
    /// external broker.
    pub sessions_ended: usize,
}

pub struct Identity {
    ca: Arc<DeviceCa>,
    dir: PathBuf,
    crl_reload: Option<Vec<String>>,
    /// The external broker, to end a revoked device's session by takeover.
    external: Option<MqttLink>,
    /// The embedded broker's device listener, once started.
    gateway: OnceLock<Gateway>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// The revoked certificates of `certs` as the revocation list takes them.
pub fn revoked_list(certs: &[CertRow]) -> Vec<(String, Timestamp)> {
    certs.iter().filter_map(|c| c.revoked_at.map(|at| (c.serial.clone(), at))).collect()
}

impl Identity {
    pub fn new(ca: Arc<DeviceCa>, dir: PathBuf, crl_reload: Option<Vec<String>>, external: Option<MqttLink>) -> Identity {
        Identity { ca, dir, crl_reload, external, gateway: OnceLock::new() }
    }

    pub fn ca(&self) -> &DeviceCa {
        &self.ca
    }

    /// Where the revocation list is.
    pub fn crl_path(&self) -> PathBuf {
        self.dir.join(crate::pki::CRL_FILE)
    }

    pub fn set_gateway(&self, gateway: Gateway) {
        let _ = self.gateway.set(gateway);
    }

    pub fn gateway(&self) -> Option<&Gateway> {
        self.gateway.get()
    }

    /// Writes the revocation list from the store's revoked certificates and tells the broker;
    /// the list (PEM) and whether the broker was told.
    pub fn publish_crl(&self, store: &dyn Store, now: Timestamp) -> Result<(String, bool), String> {
        let certs = store.certificates(None).map_err(|e| e.to_string())?;
        let revoked = revoked_list(&certs);
        let (path, pem) = self.ca.write_crl(&self.dir, &revoked, now).map_err(|e| e.to_string())?;
        info!(revoked = revoked.len(), path = %path.display(), "Device revocation list written");
        Ok((pem, self.reload_broker()))
    }

    fn reload_broker(&self) -> bool {
        let Some(argv) = &self.crl_reload else { return false };
        let Some((program, args)) = argv.split_first() else { return false };
        match std::process::Command::new(program).args(args).output() {
            Ok(out) if out.status.success() => true,
            Ok(out) => {
                error!(command = ?argv, status = %out.status, stderr = %String::from_utf8_lossy(&out.stderr).trim(), "device_ca.crl_reload failed: the broker may still take revoked certificates");
                false
            }
            Err(e) => {
                error!(command = ?argv, error = %e, "device_ca.crl_reload could not run: the broker may still take revoked certificates");
                false
            }
        }
    }

    /// Issues and records a certificate for `device`: from its signing request (`csr`), or
    /// with a new key the hub hands over. The key, when the hub made it, is returned with it.
    pub fn issue(&self, store: &mut dyn Store, device: &DeviceId, csr: Option<&str>, by: &str, audit: &crate::store::AuditEntry) -> Result<(Issued, Option<String>), IssueError> {
        let now = audit.at;
        let (issued, key, origin) = match csr {
            Some(csr) => (self.ca.issue_for_csr(device, csr, now).map_err(|e| IssueError::BadRequest(e.to_string()))?, None, CertOrigin::Csr),
            None => {
                let (issued, key) = self.ca.issue(device, now).map_err(|e| IssueError::Internal(e.to_string()))?;
                (issued, Some(key), CertOrigin::Bundle)
            }
        };
        let row = CertRow {
            serial: issued.serial.clone(),
            device: device.as_str().to_string(),
            origin,
            issued_by: by.to_string(),
            issued_at: now,
            not_after: issued.not_after,
            revoked_at: None,
            revoked_by: None,
            reason: None,
        };
        let mut audit = audit.clone();
        audit.detail = Some(format!("serial {}, {}, valid until {}", issued.serial, if key.is_some() { "key made by the hub" } else { "key kept on the device (signing request)" }, issued.not_after));
        store.record_certificate(&row, &audit).map_err(IssueError::Store)?;
        Ok((issued, key))
    }

    /// After `revoked` certificates of `device` were marked in the store: a new list, the
    /// broker told, and the device's live sessions ended. `client_id` is the device's MQTT
    /// client id on the external broker.
    pub async fn after_revocation(&self, crl_pem: String, broker_reloaded: bool, device: &str, client_id: &str, serials: Vec<String>) -> Revoked {
        let mut sessions_ended = 0;
        if let Some(gateway) = self.gateway.get() {
            match gateway.revoke(&crl_pem, device, &serials) {
                Ok(n) => sessions_ended += n,
                Err(e) => error!(error = %e, "The device listener cannot take the new revocation list"),
            }
        }
        if let Some(link) = &self.external {
            if broker_reloaded {
                tokio::time::sleep(RELOAD_SETTLE).await;
            }
            match take_over(link, client_id).await {
                Ok(()) => sessions_ended += 1,
                Err(e) => warn!(device, client_id, error = %e, "Could not end the revoked device's session on the broker"),
            }
        }
        Revoked { serials, broker_reloaded, sessions_ended }
    }

    /// Writes a fresh list now and then every `pki::CRL_REFRESH`, until `shutdown`.
    pub async fn refresh_until(self: Arc<Self>, store: Arc<std::sync::Mutex<Box<dyn Store>>>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(crate::pki::CRL_REFRESH) => {}
                _ = shutdown.changed() => return,
            }
            let me = self.clone();
            let store = store.clone();
            let result = tokio::task::spawn_blocking(move || {
                let store = store.lock().map_err(|_| "store lock poisoned".to_string())?;
                me.publish_crl(store.as_ref(), Timestamp::now())
            })
            .await;
            match result {
                Ok(Ok((pem, _))) => {
                    if let Some(g) = self.gateway.get() {
                        if let Err(e) = g.set_crl(&pem) {
                            error!(error = %e, "The device listener cannot take the new revocation list");
                        }
                    }
                }
                Ok(Err(e)) => error!(error = %e, "Cannot renew the device revocation list; brokers refuse every device once it expires"),
                Err(e) => error!(error = %e, "Revocation list task failed"),
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(StoreError),
}

/// Connects to the broker as `client_id` and leaves at once: the broker ends the session of
/// whoever held that client id.
async fn take_over(link: &MqttLink, client_id: &str) -> Result<(), String> {
    let mut options = link.options(client_id);
    options.set_clean_session(true);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(options, 4);
    let connected = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "no answer from the broker within 5 s".to_string())?;
    connected?;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async { while events.poll().await.is_ok() {} }).await;
    info!(client_id, "Revoked device's session ended on the broker");
    Ok(())
}
