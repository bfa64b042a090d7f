//! HTTPS for the console and API: the server certificate (`http.tls_cert`/`http.tls_key`, or
//! the demo's self-signed one) and a listener that hands axum connections already through
//! their TLS handshake.
//!
//! Invariants:
//! - With a certificate configured the HTTP listener speaks TLS only; a client speaking plain
//!   HTTP (or failing the handshake in any other way) is logged at debug, counted in
//!   `Stats::tls_handshakes_failed` and dropped. Nothing a client sends stops the listener.
//! - Handshakes run in their own tasks with a time limit, so a slow or silent client holds up
//!   neither the accept loop nor other clients' handshakes.
//! - The rustls config is built with the ring provider by name, so it never depends on which
//!   process-wide provider is installed (mixing ring and aws-lc-rs makes rustls panic).
//! - Graceful shutdown is axum's: [`TlsListener`] is an [`axum::serve::Listener`], so
//!   `axum::serve(..).with_graceful_shutdown(..)` works for HTTPS exactly as for HTTP. When
//!   axum drops the listener, the accept task ends with it.

use crate::ingest::Stats;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections through their handshake, waiting for axum to take them.
const READY_QUEUE: usize = 64;

/// The console's TLS server settings: a certificate chain and its key, checked to fit.
#[derive(Clone)]
pub struct HttpsConfig {
    server: Arc<rustls::ServerConfig>,
    /// SHA-256 of the end-entity certificate, as browsers show it (`AB:12:…`).
    fingerprint: String,
}

impl std::fmt::Debug for HttpsConfig {
    /// The fingerprint only: the server config holds the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsConfig").field("fingerprint", &self.fingerprint).finish()
    }
}

impl HttpsConfig {
    /// Settings from a certificate chain (end-entity first) and its private key; fails if the
    /// chain is empty or the key does not belong to the first certificate.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Self, rustls::Error> {
        let fingerprint = match chain.first() {
            Some(cert) => fingerprint(cert),
            None => return Err(rustls::Error::General("no certificate".into())),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        // axum serves HTTP/1.1 only (its `http2` feature is off).
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(HttpsConfig { server: Arc::new(server), fingerprint })
    }

    /// Reads `http.tls_cert` and `http.tls_key`. The error names the key and the file, and
    /// says what is wrong, for the config report.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, String> {
        let chain: Result<Vec<_>, _> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| format!("http.tls_cert: {}: cannot read: {e}", cert.display()))?
            .collect();
        let chain = chain.map_err(|e| format!("http.tls_cert: {}: bad PEM: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!("http.tls_cert: {}: holds no PEM certificate", cert.display()));
        }
        // Read the key file first ourselves: `from_pem_file` reports a missing file and a file
        // without a key alike.
        std::fs::metadata(key).map_err(|e| format!("http.tls_key: {}: cannot read: {e}", key.display()))?;
        let key_der = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("http.tls_key: {}: no PEM private key: {e}", key.display()))?;
        HttpsConfig::new(chain, key_der).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "http.tls_key: {} is not the key of the certificate in {}",
                key.display(),
                cert.display()
            ),
            e => format!("http.tls_cert/http.tls_key: {} and {}: not usable: {e}", cert.display(), key.display()),
        })
    }

    /// SHA-256 of the server certificate, colon-separated upper-case hex.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// SHA-256 of a DER certificate as browsers show it: `AB:12:…` (32 bytes).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = Sha256::digest(cert.as_ref());
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// An [`axum::serve::Listener`] that yields connections after their TLS handshake.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    /// Takes over `tcp`; handshakes start at once, in the background.
    pub fn new(tcp: TcpListener, https: &HttpsConfig, stats: Arc<Stats>) -> std::io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let tls = TlsAcceptor::from(https.server.clone());
        let acceptor = tokio::spawn(accept_loop(tcp, tls, tx, stats));
        Ok(TlsListener { ready, local_addr, acceptor })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task only ends when this listener is dropped (it is aborted then);
            // should it end otherwise, take no more connections rather than spin.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(
    tcp: TcpListener,
    tls: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    stats: Arc<Stats>,
) {
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin (as axum does).
                warn!(error = %e, "HTTPS listener could not accept a connection");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let tls = tls.clone();
        let ready = ready.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                Ok(Ok(conn)) => {
                    stats.tls_handshakes.fetch_add(1, Relaxed);
                    let _ = ready.send((conn, peer)).await;
                }
                Ok(Err(e)) => {
                    stats.tls_handshakes_failed.fetch_add(1, Relaxed);
                    debug!(%peer, error = %e, "TLS handshake failed (plain HTTP to the HTTPS port?)");
                }
                Err(_) => {
                    stats.tls_handshakes_failed.fetch_add(1, Relaxed);
                    debug!(%peer, "TLS handshake not finished within {HANDSHAKE_TIMEOUT:?}; connection dropped");
                }
            }
        });
    }
}
