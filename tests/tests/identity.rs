//! Device identity against real processes: a certificate issued from the device's own signing
//! request (the key never leaves it), and revocation that takes effect at once.
//!
//! On a real Mosquitto run from `vaka-hub broker-files` (device certificates, ACL, the hub's
//! revocation list): a device with a certificate from its own request delivers events;
//! revoking one of two certificates leaves the other working; revoking the device ends its
//! live session (the hub takes over its client id after Mosquitto read the new list on
//! SIGHUP) and every later handshake with the revoked certificate is refused, so nothing it
//! sends after that is stored.
//!
//! On the embedded broker's device listener: the same certificate gets a device in; a
//! connection without a certificate is refused at the handshake; a device publishing to
//! another device's topic or subscribing to `#` is cut off and nothing of it is stored;
//! revocation closes the live connection and the next handshake fails.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vaka_e2e::*;

const INSTALLER: &str = "installer-token-0123456789abcdef";
const SITE: &str = "testsite";

fn installer_http() -> String {
    format!("[[http.tokens]]\nname = \"ivar\"\nrole = \"installer\"\ntoken = \"{INSTALLER}\"\n")
}

fn register(hub: &Hub, device: &str) {
    let (status, body) = hub.send("POST", "/api/v1/registrations", INSTALLER, &json!({"device": device, "site": SITE}));
    assert_eq!(status, 201, "{body}");
}

/// The device makes its key and request (`vaka-agent identity request`); the hub signs it.
/// Returns the certificate and key files and the certificate's serial.
fn enrol(hub: &Hub, dir: &Path, device: &str, name: &str) -> ((PathBuf, PathBuf), String) {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let out = Command::new(bin("vaka-agent"))
        .args(["identity", "request", "--device", device, "--key"])
        .arg(&key)
        .arg("--out")
        .arg(&csr)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let request = std::fs::read_to_string(&csr).unwrap();
    let before = certificates(hub, device).len();
    let (status, cert) = hub.post_text(&format!("/api/v1/devices/{device}/certificate"), INSTALLER, &request);
    assert_eq!(status, 200, "{cert}");
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
    let cert_path = dir.join(format!("{name}.pem"));
    std::fs::write(&cert_path, &cert).unwrap();
    let list = certificates(hub, device);
    assert_eq!(list.len(), before + 1);
    let newest = list.last().unwrap();
    assert_eq!(newest["origin"], "csr");
    ((cert_path, key), newest["serial"].as_str().unwrap().to_string())
}

fn certificates(hub: &Hub, device: &str) -> Vec<Value> {
    let r = hub.request("GET", &format!("/api/v1/devices/{device}/certificates"), INSTALLER);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json().as_array().cloned().unwrap_or_default()
}

/// One QoS 1 publish with a client certificate: whether it went through.
fn mosquitto_pub(port: u16, ca: &Path, cert: Option<&(PathBuf, PathBuf)>, id: &str, topic: &str) -> (bool, String) {
    let mut cmd = Command::new("timeout");
    cmd.args(["15", "mosquitto_pub", "-h", "localhost", "-p", &port.to_string(), "-q", "1", "-i", id, "-t", topic, "-m", "{}"]).arg("--cafile").arg(ca);
    if let Some((c, k)) = cert {
        cmd.arg("--cert").arg(c).arg("--key").arg(k);
    }
    let out = cmd.output().expect("mosquitto_pub runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).trim().to_string())
}

/// Waits for `n` stored events of `device`.
fn wait_stored(hub: &Hub, device: &str, n: usize) {
    wait_until(Duration::from_secs(60), &format!("{n} events of {device} at the hub"), || (hub.events(device).len() >= n).then_some(()));
}

#[test]
fn revocation_on_mosquitto_ends_the_live_session_and_refuses_the_next_handshake() {
    let dir = temp_dir("revoke-mosquitto");
    let pki = Pki::new(dir.path(), "broker");
    // The hub's config is written first so `broker-files` makes the CA where the hub finds it.
    let port = free_port();
    let hub_dir = dir.path().join("hub");
    std::fs::create_dir_all(&hub_dir).unwrap();
    let pre = hub_dir.join("pre.toml");
    std::fs::write(&pre, format!("[store]\npath = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\napi_token = \"unused-token-0123456789\"\n", hub_dir.join("hub.db").display())).unwrap();
    let files = dir.path().join("broker-files");
    let status = Command::new(bin("vaka-hub"))
        .args(["broker-files", "--config"])
        .arg(&pre)
        .arg("--out")
        .arg(&files)
        .args(["--port", &port.to_string(), "--server-cert"])
        .arg(&pki.server_cert)
        .arg("--server-key")
        .arg(&pki.server_key)
        .status()
        .unwrap();
    assert!(status.success());
    let conf = std::fs::read_to_string(files.join("vaka.conf")).unwrap();
    assert!(conf.contains("crlfile ") && conf.contains("crl.pem"), "{conf}");
    let conf_arg = files.join("vaka.conf").display().to_string();
    let mosquitto = Proc::spawn("mosquitto", "mosquitto", &["-c", &conf_arg], dir.path().join("mosquitto.log"));
    wait_until(Duration::from_secs(20), "mosquitto on the generated config", || port_open(port).then_some(()));
    let pid = mosquitto.pid().unwrap();

    let broker = Broker::Mosquitto { port, ca: Some(pki.ca_file.clone()) };
    let hub = Hub::start(
        dir.path(),
        HubOpts {
            external: Some(broker.clone()),
            client_cert: Some((files.join("vaka-hub.pem"), files.join("vaka-hub.key"))),
            http: installer_http(),
            extra: format!("[device_ca]\ncrl_reload = [\"kill\", \"-HUP\", \"{pid}\"]\n"),
            ..HubOpts::default()
        },
    );
    wait_until(Duration::from_secs(30), "the hub subscribed on mosquitto", || hub.get("/api/v1/stats")["mqtt_subscribed"].as_bool().filter(|s| *s));
    register(&hub, "home-r");

    // Two certificates, both from the device's own requests (two keys): rotation.
    let (old, old_serial) = enrol(&hub, dir.path(), "home-r", "old");
    let (new, new_serial) = enrol(&hub, dir.path(), "home-r", "new");
    assert_ne!(old_serial, new_serial);
    let events_topic = format!("vaka/v1/{SITE}/home-r/status");
    for cert in [&old, &new] {
        let (ok, err) = mosquitto_pub(port, &pki.ca_file, Some(cert), "probe", &events_topic);
        assert!(ok, "{err}");
    }

    // Revoking the old one by serial: refused at the handshake from then on; the new one works.
    let (status, body) = hub.send("POST", "/api/v1/devices/home-r/revoke", INSTALLER, &json!({"serial": old_serial, "reason": "rotated to a new key"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["serials"], json!([old_serial]));
    assert_eq!(body["broker_reloaded"], true, "{body}");
    let refused = wait_until(Duration::from_secs(10), "mosquitto to refuse the revoked certificate", || {
        let (ok, err) = mosquitto_pub(port, &pki.ca_file, Some(&old), "probe", &events_topic);
        (!ok).then_some(err)
    });
    println!("revoked certificate refused by mosquitto: {refused}");
    let (ok, err) = mosquitto_pub(port, &pki.ca_file, Some(&new), "probe", &events_topic);
    assert!(ok, "the certificate not revoked stopped working: {err}");

    // A running agent with the new certificate delivers.
    let agent = Agent::start(dir.path(), AgentOpts { client_cert: Some(new.clone()), ..AgentOpts::new("home-r", broker.clone()) });
    let first = agent.intake().accept(r#"{"kind":"test_alarm","body":{"note":"before"}}"#);
    wait_stored(&hub, "home-r", first.seq as usize);
    let stored_before = hub.events("home-r").len();

    // Stolen: every certificate of the device revoked. The live session ends at once.
    let lost = |agent: &Agent| agent.proc.log_text().matches("Connection to broker lost").count();
    let lost_before = lost(&agent);
    let started = Instant::now();
    let (status, body) = hub.send("POST", "/api/v1/devices/home-r/revoke", INSTALLER, &json!({"reason": "device stolen"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["serials"], json!([new_serial]));
    assert!(body["sessions_ended"].as_u64() >= Some(1), "{body}");
    let cut = wait_until(Duration::from_secs(20), "the agent to lose its connection", || (lost(&agent) > lost_before).then(|| started.elapsed()));
    println!("revoked device's session ended {:.1} s after the request", cut.as_secs_f64());
    // What the agent accepts now never reaches the hub: every reconnect is refused.
    for i in 0..5 {
        agent.intake().accept(&format!(r#"{{"kind":"test_alarm","body":{{"note":"after {i}"}}}}"#));
    }
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(hub.events("home-r").len(), stored_before, "a revoked device's events were stored");
    let log = agent.proc.log_text();
    let after_cut = log.rsplit("Connection to broker lost").next().unwrap_or_default();
    assert!(!after_cut.contains("Reconnected to broker"), "the revoked device got back in:\n{after_cut}");
    let refusal = after_cut.lines().find(|l| l.contains("Reconnect attempt failed")).unwrap_or_else(|| panic!("the agent does not say why it cannot reconnect:\n{after_cut}"));
    println!("agent: {}", refusal.rsplit("reason=").next().unwrap_or_default());
    // Nothing left to revoke; the list shows both, with who and why; the audit log has both.
    let (status, body) = hub.send("POST", "/api/v1/devices/home-r/revoke", INSTALLER, &json!({"reason": "again"}));
    assert_eq!(status, 409, "{body}");
    let list = certificates(&hub, "home-r");
    assert!(list.iter().all(|c| c["revoked_by"] == "ivar" && c["revoked_at"].is_string()), "{list:?}");
    assert_eq!(list[0]["reason"], "rotated to a new key");
    assert_eq!(list[1]["reason"], "device stolen");
    // The device page lists both for the installer, revoked, with who and why.
    let page = hub.request("GET", "/devices/home-r", INSTALLER);
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("id=\"certs\"") && html.matches("spärrat").count() == 2 && html.contains("device stolen"), "{html}");
    assert!(!html.contains("class=\"secondary revoke\""), "a revoked certificate still offers a revoke button");
    let audit = hub.get("/api/v1/audit");
    let revocations = audit.as_array().unwrap().iter().filter(|a| a["action"] == "device_certificate_revoked").count();
    assert_eq!(revocations, 2, "{audit}");
    // A bad request is refused with what is wrong; night staff may not revoke.
    let (status, body) = hub.post_text("/api/v1/devices/home-r/certificate", INSTALLER, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n");
    assert_eq!(status, 422, "{body}");
    let (status, _) = hub.send("POST", "/api/v1/devices/home-r/revoke", &hub.token, &json!({"reason": ""}));
    assert_eq!(status, 422, "a revocation needs a reason");
    drop(agent);
}

#[test]
fn the_embedded_broker_device_listener_takes_only_valid_certificates_and_own_topics() {
    let dir = temp_dir("device-listener");
    let pki = Pki::new(dir.path(), "listener");
    let device_port = free_port();
    let hub = Hub::start(
        dir.path(),
        HubOpts {
            http: installer_http(),
            extra: String::new(),
            embedded_extra: format!(
                "device_listen = \"127.0.0.1:{device_port}\"\ndevice_tls_cert = \"{}\"\ndevice_tls_key = \"{}\"\n",
                pki.server_cert.display(),
                pki.server_key.display()
            ),
            ..HubOpts::default()
        },
    );
    wait_until(Duration::from_secs(20), "the device listener", || port_open(device_port).then_some(()));
    register(&hub, "home-a");
    register(&hub, "home-b");
    let (a, _) = enrol(&hub, dir.path(), "home-a", "a");
    let listener = Broker::Mosquitto { port: device_port, ca: Some(pki.ca_file.clone()) };
    let refused_before = hub.get("/api/v1/stats")["identity_refused"].as_u64().unwrap();

    // A real agent through the listener delivers its events.
    let agent = Agent::start(dir.path(), AgentOpts { client_cert: Some(a.clone()), ..AgentOpts::new("home-a", listener.clone()) });
    let first = agent.intake().accept(r#"{"kind":"test_alarm","body":{"note":"through the listener"}}"#);
    wait_stored(&hub, "home-a", first.seq as usize);

    // No certificate: refused at the handshake.
    let (ok, err) = mosquitto_pub(device_port, &pki.ca_file, None, "nocert", &format!("vaka/v1/{SITE}/home-a/events"));
    assert!(!ok, "a client without a certificate got in");
    println!("no certificate: {err}");
    // A certificate from another CA: refused.
    let stranger = pki.issue("home-a", &[]);
    let (ok, _) = mosquitto_pub(device_port, &pki.ca_file, Some(&stranger), "stranger", &format!("vaka/v1/{SITE}/home-a/events"));
    assert!(!ok, "a certificate from another CA got in");
    // home-a speaking for home-b: cut off, nothing stored for home-b.
    let envelope = r#"{"v":1,"id":"0190a000-0000-7000-8000-000000000001","device":"home-b","seq":1,"kind":"test_alarm","severity":"alarm","at":"2026-11-24T02:00:00Z","body":{}}"#;
    let out = Command::new("timeout")
        .args(["15", "mosquitto_pub", "-h", "localhost", "-p", &device_port.to_string(), "-q", "1", "-i", "forger", "-t", &format!("vaka/v1/{SITE}/home-b/events"), "-m", envelope])
        .arg("--cafile")
        .arg(&pki.ca_file)
        .arg("--cert")
        .arg(&a.0)
        .arg("--key")
        .arg(&a.1)
        .output()
        .unwrap();
    assert!(!out.status.success(), "publishing to another device's topic was acknowledged");
    // Subscribing to everything: cut off before the broker sees it.
    let out = Command::new("timeout")
        .args(["15", "mosquitto_sub", "-h", "localhost", "-p", &device_port.to_string(), "-q", "1", "-i", "snoop", "-t", "#", "-W", "5"])
        .arg("--cafile")
        .arg(&pki.ca_file)
        .arg("--cert")
        .arg(&a.0)
        .arg("--key")
        .arg(&a.1)
        .output()
        .unwrap();
    assert!(out.stdout.is_empty(), "a device read other topics: {}", String::from_utf8_lossy(&out.stdout));
    let refused = hub.get("/api/v1/stats")["identity_refused"].as_u64().unwrap() - refused_before;
    assert!(refused >= 4, "refusals counted: {refused}");
    assert!(hub.events("home-b").is_empty(), "home-a's forged event for home-b was stored");
    let log = std::fs::read_to_string(hub.proc.log.clone()).unwrap();
    assert!(log.contains("home-b/events") && log.contains("not one of its own topics"), "the hub does not say what it refused");

    // Revocation closes the live connection; the agent cannot come back.
    let stored = hub.events("home-a").len();
    let started = Instant::now();
    let (status, body) = hub.send("POST", "/api/v1/devices/home-a/revoke", INSTALLER, &json!({"reason": "device stolen"}));
    assert_eq!(status, 200, "{body}");
    assert!(body["sessions_ended"].as_u64() >= Some(1), "{body}");
    println!("revoked: {body} in {:.0} ms", started.elapsed().as_secs_f64() * 1000.0);
    for i in 0..3 {
        agent.intake().accept(&format!(r#"{{"kind":"test_alarm","body":{{"note":"after {i}"}}}}"#));
    }
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(hub.events("home-a").len(), stored, "a revoked device's events were stored");
    let (ok, _) = mosquitto_pub(device_port, &pki.ca_file, Some(&a), "again", &format!("vaka/v1/{SITE}/home-a/status"));
    assert!(!ok, "the revoked certificate got through a new handshake");
    drop(agent);
}
