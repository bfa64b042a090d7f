//! The hub serves HTTPS with the certificate from its config: a client trusting that
//! certificate gets answers, plain HTTP to the same port gets none and does not stop the
//! listener, and the hub still stops promptly with an HTTPS connection open.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use vaka_hub::console::HttpsConfig;

/// A certificate for `localhost`, and the hub settings serving it.
fn certificate() -> (CertificateDer<'static>, HttpsConfig) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = c.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(c.signing_key.serialize_der());
    let https = HttpsConfig::new(vec![cert.clone()], key.into()).unwrap();
    (cert, https)
}

/// A TLS client that trusts `cert` only.
fn connector(cert: &CertificateDer<'static>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// `GET path` over TLS with `Connection: close`; the whole response as text.
async fn https_get(tls: &TlsConnector, addr: std::net::SocketAddr, path: &str) -> String {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut stream = tls.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await.unwrap().unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn hub_with_a_certificate_answers_https_and_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, https) = certificate();
    let mut config = config(&dir.path().join("hub.db"), Duration::from_secs(60));
    config.https = Some(https);
    let hub = start(config).await;
    let addr = hub.http_addr();
    let tls = connector(&cert);

    let response = https_get(&tls, addr, "/healthz").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"store_ok\":true"), "{response}");

    // Plain HTTP to the HTTPS port: no HTTP answer, the connection is closed.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer)).await.unwrap();
    assert!(!answer.starts_with(b"HTTP/"), "plain HTTP was served: {}", String::from_utf8_lossy(&answer));
    wait_until("the failed handshake counted", Duration::from_secs(5), || async {
        hub.stats().tls_handshakes_failed == 1
    })
    .await;

    // A client that does not trust the certificate fails its handshake; the server goes on.
    let (other, _) = certificate();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let refused = connector(&other).connect(ServerName::try_from("localhost").unwrap(), tcp).await;
    assert!(refused.is_err(), "a certificate the client does not trust was accepted");
    let response = https_get(&tls, addr, "/healthz").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    wait_until("handshakes counted", Duration::from_secs(5), || async {
        let s = hub.stats();
        (s.tls_handshakes, s.tls_handshakes_failed) == (2, 2)
    })
    .await;

    // An idle HTTPS keep-alive connection does not hold up the hub's graceful stop.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut idle = tls.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let stopping = std::time::Instant::now();
    hub.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(4), "stop took {:?}", stopping.elapsed());
    assert!(TcpStream::connect(addr).await.is_err(), "still listening after stop");
}
