//! The README's first command: `vaka-hub demo` runs the hub, its embedded broker, SQLite in a
//! temporary directory and five simulated homes running the real agent code; within 10 s the
//! console shows all five homes and their events, a camera check asked through the API is
//! answered by a home's simulated camera, and tonight's round runs on the demo's clock.
//! By default the console is served over HTTPS with a self-signed certificate whose SHA-256
//! fingerprint the demo prints.

use rustls::pki_types::pem::PemObject;
use sha2::Digest;
use std::time::{Duration, Instant};
use vaka_e2e::*;

#[test]
fn demo_shows_five_homes_and_their_events_within_ten_seconds() {
    let dir = temp_dir("demo");
    let http = free_port();
    let mqtt = free_port();
    let demo = Proc::spawn(
        "vaka-hub demo",
        bin("vaka-hub"),
        // Plain HTTP keeps this test's many requests simple; HTTPS is the next test's.
        &["demo", "--http", &format!("127.0.0.1:{http}"), "--mqtt-port", &mqtt.to_string(), "--plain-http"],
        dir.path().join("demo.log"),
    );
    let started = Instant::now();
    // The demo prints the console URL, the password of its accounts and an API token.
    let printed = |label: &str| {
        demo.log_text().lines().find_map(|l| {
            l.trim().strip_prefix(label).and_then(|rest| rest.split_whitespace().next()).map(str::to_string)
        })
    };
    let token = wait_until(Duration::from_secs(30), "the demo to print its token", || printed("token:"));
    let password = printed("password:").unwrap_or_else(|| panic!("no password printed:\n{}", demo.log_text()));
    let get = |path: &str| -> Option<serde_json::Value> {
        let url = format!("http://127.0.0.1:{http}{path}");
        ureq::get(&url).header("Authorization", &format!("Bearer {token}")).call().ok()?.body_mut().read_json().ok()
    };
    let devices = wait_until(Duration::from_secs(10), "five demo homes online with events", || {
        let devices = get("/api/v1/devices")?.as_array()?.clone();
        let ready = devices.iter().filter(|d| d["online"] == true).count() == 5
            && devices.iter().all(|d| {
                let id = d["id"].as_str().unwrap_or_default();
                get(&format!("/api/v1/events?device={id}&limit=1")).and_then(|e| e.as_array().map(|a| !a.is_empty())) == Some(true)
            });
        ready.then_some(devices)
    });
    eprintln!("demo ready {:?} after start", started.elapsed());
    assert_eq!(devices.len(), 5);

    // Night staff log in as a browser does (login form, its cookie, then the session cookie);
    // the console's devices page lists the homes.
    let session = login(http, "natt", &password);
    let url = format!("http://127.0.0.1:{http}/devices");
    let mut page = ureq::get(&url)
        .header("Cookie", &format!("vaka_session={session}"))
        .call()
        .unwrap_or_else(|e| panic!("console page: {e}"));
    let html = page.body_mut().read_to_string().unwrap_or_default();
    assert!(html.contains("natt (night_staff)"), "{html}");
    for d in &devices {
        let id = d["id"].as_str().unwrap_or_default();
        assert!(html.contains(id), "console page does not show {id}");
    }
    // A camera check asked by the night-staff token is run by the home's simulated camera
    // inside the demo's consent window and its outcome stored with the check.
    let url = format!("http://127.0.0.1:{http}/api/v1/devices/home-001/camera-check");
    let mut resp = ureq::post(&url)
        .header("Authorization", &format!("Bearer {token}"))
        .send_json(serde_json::json!({}))
        .unwrap_or_else(|e| panic!("camera-check: {e}"));
    let check: serde_json::Value = resp.body_mut().read_json().unwrap_or_default();
    let id = check["check_id"].as_str().unwrap_or_else(|| panic!("{check}")).to_string();
    let done = wait_until(Duration::from_secs(30), "the demo check's outcome", || {
        get(&format!("/api/v1/checks/{id}")).filter(|c| c["status"] == "answered")
    });
    assert_ne!(done["verdict"], "refused_outside_consent", "{done}");
    assert!(done["figures"]["frames"].as_u64().is_some(), "{done}");

    // Tonight's round runs on the demo's compressed clock: every planned check of the five
    // homes and the visit-only person, the planned visits routed for the patrol, and the first
    // camera checks settled by the homes' cameras within a minute.
    let round = wait_until(Duration::from_secs(60), "the demo round's first camera checks to settle", || {
        let round = get("/api/v1/rounds/current")?;
        let checks = round["checks"].as_array()?;
        let settled = checks.iter().filter(|c| c["outcome"]["outcome"] == "checked_by_camera").count();
        (settled >= 2).then_some(round)
    });
    // The simulated dispensers and GPS also raise alarms whose rules add checks to the round
    // (a missed dose → a camera check now); those come on top of the care plans' checks.
    let checks = round["checks"].as_array().unwrap();
    let (planned, added): (Vec<_>, Vec<_>) = checks.iter().partition(|c| c["origin"]["type"] == "plan");
    assert_eq!(planned.len(), 5 * 3 + 2, "{round}");
    assert!(added.iter().all(|c| c["origin"]["type"] == "alarm" && c["origin"]["alarm_id"].is_i64()), "{added:?}");
    let visits: Vec<_> = planned.iter().filter(|c| c["method"] == "visit").collect();
    assert_eq!(visits.len(), 2);
    assert!(visits.iter().all(|c| c["visit"]["patrol"] == "bil-1" && c["visit"]["planned_arrival"].is_string()), "{visits:?}");

    // Without the token the console is not shown.
    let anonymous = ureq::get(&format!("http://127.0.0.1:{http}/api/v1/devices")).call();
    assert!(anonymous.is_err(), "the API answered without a token");
}

#[test]
fn demo_serves_its_console_over_https_with_the_certificate_it_prints() {
    let dir = temp_dir("demo-https");
    let http = free_port();
    let demo = Proc::spawn(
        "vaka-hub demo",
        bin("vaka-hub"),
        &["demo", "--http", &format!("127.0.0.1:{http}"), "--mqtt-port", &free_port().to_string()],
        dir.path().join("demo.log"),
    );
    let printed = |label: &str| {
        demo.log_text().lines().find_map(|l| {
            l.trim().strip_prefix(label).and_then(|rest| rest.split_whitespace().next()).map(str::to_string)
        })
    };
    let url = wait_until(Duration::from_secs(30), "the demo to print its console URL", || printed("console:"));
    assert_eq!(url, format!("https://127.0.0.1:{http}/"));
    let fingerprint = printed("sha256:").unwrap_or_else(|| panic!("no fingerprint printed:\n{}", demo.log_text()));
    let pem = demo
        .log_text()
        .lines()
        .find_map(|l| l.trim().strip_prefix("(PEM: ").and_then(|r| r.split(';').next()).map(str::to_string))
        .unwrap_or_else(|| panic!("no certificate file printed:\n{}", demo.log_text()));

    // The printed fingerprint is the certificate's, and a client trusting that certificate
    // (as a browser does once the user accepts it) reaches the console.
    let cert = rustls::pki_types::CertificateDer::from_pem_file(&pem).unwrap_or_else(|e| panic!("{pem}: {e}"));
    let digest: Vec<String> = sha2::Sha256::digest(cert.as_ref()).iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(fingerprint, digest.join(":"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    let answer = runtime.block_on(https_get(http, cert, "/healthz"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Plain HTTP to it gets no answer.
    assert!(ureq::get(&format!("http://127.0.0.1:{http}/healthz")).call().is_err(), "plain HTTP answered");
}

/// `GET path` over TLS to 127.0.0.1:`port`, trusting `cert` only; the response as text.
async fn https_get(port: u16, cert: rustls::pki_types::CertificateDer<'static>, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap_or_else(|e| panic!("{e}"));
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("{e}"))
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap_or_else(|e| panic!("{e}"));
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap_or_else(|e| panic!("{e}"));
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake with the demo: {e}"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&response).into_owned()
}

/// Logs in through the login form as a browser would; returns the session cookie's value.
fn login(http: u16, name: &str, password: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    let mut form = agent.get(&format!("http://127.0.0.1:{http}/login")).call().unwrap_or_else(|e| panic!("login form: {e}"));
    let set = form.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let html = form.body_mut().read_to_string().unwrap_or_default();
    let csrf = html.split("name=\"login_csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default();
    let cookie = set.split(';').next().unwrap_or_default().to_string();
    let resp = agent
        .post(&format!("http://127.0.0.1:{http}/login"))
        .header("Cookie", &cookie)
        .send_form([("name", name), ("password", password), ("login_csrf", csrf)])
        .unwrap_or_else(|e| panic!("login: {e}"));
    assert_eq!(resp.status().as_u16(), 303, "login as {name}");
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("vaka_session=").and_then(|c| c.split(';').next()).map(str::to_string))
        .unwrap_or_else(|| panic!("no session cookie"))
}
