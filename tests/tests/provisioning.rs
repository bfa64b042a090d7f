//! The provisioning bundle against real processes: an installer registers a device with a real
//! hub and downloads its bundle; unpacked with `tar`, it holds the agent configuration, the
//! device's own key (readable by its owner alone) and certificate, and the hub's device CA.
//! A real Mosquitto that trusts that CA for client certificates lets the device in with the
//! bundle's certificate, and with a second bundle's too (rotation: the first stays valid); a
//! certificate from another CA is refused at the TLS handshake. Each bundle is audited with its
//! certificate's serial number.

use serde_json::json;
use std::path::Path;
use std::process::Command;
use vaka_e2e::*;

const INSTALLER: &str = "installer-token-0123456789abcdef";

/// Publishes one message over TLS with a client certificate; whether the broker took it.
fn publish(port: u16, server_ca: &Path, cert: &Path, key: &Path) -> (bool, String) {
    let out = Command::new("timeout")
        .args(["20", "mosquitto_pub", "-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", "vaka/test", "-m", "hej", "-i", "provisioning-test"])
        .arg("--cafile")
        .arg(server_ca)
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .output()
        .expect("mosquitto_pub runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn unpack(hub: &Hub, dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let r = hub.request("GET", "/devices/home-p1/bundle.tar", INSTALLER);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.content_type, "application/x-tar");
    assert_eq!(r.cache_control, "no-store", "a private key is not cached");
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    let file = dir.join(format!("{name}.tar"));
    std::fs::write(&file, &r.body).unwrap();
    let listing = Command::new("tar").arg("-tvf").arg(&file).output().unwrap();
    assert!(listing.status.success());
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(Command::new("tar").arg("-xf").arg(&file).arg("-C").arg(&out).status().unwrap().success());
    (out, listing)
}

#[test]
fn a_device_joins_a_broker_that_trusts_the_hub_ca_with_its_bundle_and_a_stranger_does_not() {
    let dir = temp_dir("provisioning");
    let http = format!("[[http.tokens]]\nname = \"ivar\"\nrole = \"installer\"\ntoken = \"{INSTALLER}\"\n");
    let hub = Hub::start(dir.path(), HubOpts { http, ..HubOpts::default() });
    let (status, body) = hub.send("POST", "/api/v1/registrations", INSTALLER, &json!({"device": "home-p1", "site": "skelleftea"}));
    assert_eq!(status, 201, "{body}");

    let (first, listing) = unpack(&hub, dir.path(), "first");
    for file in ["agent.toml", "device.pem", "device.key", "device-ca.pem", "README.txt"] {
        assert!(first.join(file).is_file(), "{file} missing from the bundle:\n{listing}");
    }
    let key_line = listing.lines().find(|l| l.ends_with("device.key")).unwrap();
    assert!(key_line.starts_with("-rw-------"), "the key is for its owner alone: {key_line}");
    let toml = std::fs::read_to_string(first.join("agent.toml")).unwrap();
    assert!(toml.contains("device_id = \"home-p1\""), "{toml}");
    // Without a valid token the console sends the browser to its login page (which the client
    // follows), not a bundle; who may have one is checked in tests/tests/access.rs.
    let refused = hub.request("GET", "/devices/home-p1/bundle.tar", "wrong-token");
    assert!(refused.content_type.starts_with("text/html") && !refused.body.windows(10).any(|w| w == b"device.key"), "{}", refused.content_type);

    // A Mosquitto with its own server certificate that takes client certificates from the
    // hub's device CA.
    let pki = Pki::new(dir.path(), "broker");
    let broker = Mosquitto::start_with_client_ca(dir.path(), &pki, &first.join("device-ca.pem"));
    let (ok, err) = publish(broker.port, &pki.ca_file, &first.join("device.pem"), &first.join("device.key"));
    assert!(ok, "the bundle's certificate was refused: {err}");

    // A second bundle: a new certificate (another serial); the first still works.
    let (second, _) = unpack(&hub, dir.path(), "second");
    assert_ne!(std::fs::read(first.join("device.pem")).unwrap(), std::fs::read(second.join("device.pem")).unwrap());
    assert_eq!(std::fs::read(first.join("device-ca.pem")).unwrap(), std::fs::read(second.join("device-ca.pem")).unwrap(), "one CA");
    for bundle in [&second, &first] {
        let (ok, err) = publish(broker.port, &pki.ca_file, &bundle.join("device.pem"), &bundle.join("device.key"));
        assert!(ok, "{}: {err}", bundle.display());
    }

    // A certificate for the same name from another CA is refused at the handshake.
    let (stranger_cert, stranger_key) = pki.issue("home-p1", &[]);
    let (ok, err) = publish(broker.port, &pki.ca_file, &stranger_cert, &stranger_key);
    assert!(!ok, "a certificate from another CA got in");
    println!("stranger refused: {}", err.trim());

    let audit = hub.get("/api/v1/audit");
    let issued: Vec<&str> = audit.as_array().unwrap().iter().filter(|a| a["action"] == "device_certificate_issued").filter_map(|a| a["detail"].as_str()).collect();
    assert_eq!(issued.len(), 2, "{audit}");
    assert!(issued.iter().all(|d| d.starts_with("serial ") && d.contains("valid until")), "{issued:?}");
    println!("bundles: 2 issued, both accepted by mosquitto, stranger refused; {issued:?}");
}
