//! The provisioning bundle against real processes: an installer registers a device with a real
//! hub and downloads its bundle; unpacked with `tar`, it holds the agent configuration, the
//! device's own key (readable by its owner alone) and certificate, and the hub's device CA.
//! A real Mosquitto that trusts that CA for client certificates lets the device in with the
//! bundle's certificate, and with a second bundle's too (rotation: the first stays valid); a
//! certificate from another CA is refused at the TLS handshake. Each bundle is audited with its
//! certificate's serial number.
//!
//! Then the broker as production runs it, from `vaka-hub broker-files`: device certificates
//! required, the common name as user, the generated ACL. A device publishes only to its own
//! topics (its events reach the hub; what it sends on another device's topic does not), and
//! subscribing to `#` or to another device's commands gets it nothing of the other device.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
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

fn unpack(hub: &Hub, dir: &Path, name: &str) -> (PathBuf, String) {
    unpack_device(hub, dir, "home-p1", name)
}

fn unpack_device(hub: &Hub, dir: &Path, device: &str, name: &str) -> (PathBuf, String) {
    let r = hub.request("GET", &format!("/devices/{device}/bundle.tar"), INSTALLER);
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

/// A client certificate and key on the broker: the device's bundle, or the hub's files.
struct Client {
    cert: PathBuf,
    key: PathBuf,
}

impl Client {
    fn args(&self, port: u16, server_ca: &Path, id: &str) -> Vec<String> {
        let mut a: Vec<String> = ["-h", "127.0.0.1", "-p", &port.to_string(), "-i", id].iter().map(|s| s.to_string()).collect();
        for (flag, path) in [("--cafile", server_ca), ("--cert", &self.cert), ("--key", &self.key)] {
            a.push(flag.into());
            a.push(path.display().to_string());
        }
        a
    }

    /// Subscribes (verbose: topic and payload per line) for `seconds`.
    fn subscribe(&self, port: u16, server_ca: &Path, id: &str, topics: &[&str], seconds: u32) -> Child {
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args(self.args(port, server_ca, id)).args(["-v", "-q", "1", "-W", &seconds.to_string()]);
        for t in topics {
            cmd.args(["-t", t]);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("mosquitto_sub runs")
    }

    fn publish(&self, port: u16, server_ca: &Path, id: &str, topic: &str, message: &str) {
        let out = Command::new("timeout")
            .arg("20")
            .arg("mosquitto_pub")
            .args(self.args(port, server_ca, id))
            .args(["-q", "1", "-t", topic, "-m", message])
            .output()
            .expect("mosquitto_pub runs");
        // A publish the ACL forbids is dropped by the broker without an error (MQTT 3.1.1).
        assert!(out.status.success(), "{topic}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn lines_of(child: Child) -> Vec<String> {
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn the_generated_acl_keeps_each_device_to_its_own_topics_on_a_real_mosquitto() {
    let dir = temp_dir("broker-acl");
    let http = format!("[[http.tokens]]\nname = \"ivar\"\nrole = \"installer\"\ntoken = \"{INSTALLER}\"\n");
    let hub = Hub::start(dir.path(), HubOpts { http, ..HubOpts::default() });
    for device in ["home-a", "home-b"] {
        let (status, body) = hub.send("POST", "/api/v1/registrations", INSTALLER, &json!({"device": device, "site": "skelleftea"}));
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = hub.send("POST", "/api/v1/registrations", INSTALLER, &json!({"device": "vaka-hub", "site": "skelleftea"}));
    assert_eq!(status, 422, "the hub's own broker name is no device id: {body}");
    let bundle = |device: &str| {
        let (files, _) = unpack_device(&hub, dir.path(), device, device);
        Client { cert: files.join("device.pem"), key: files.join("device.key") }
    };
    let (a, b) = (bundle("home-a"), bundle("home-b"));

    // The broker files, from the hub's CLI with the hub's own config (so the same CA).
    let pki = Pki::new(dir.path(), "broker");
    let port = free_port();
    let out_dir = dir.path().join("broker-files");
    let status = Command::new(bin("vaka-hub"))
        .args(["broker-files", "--config"])
        .arg(dir.path().join("hub/hub.toml"))
        .arg("--out")
        .arg(&out_dir)
        .args(["--port", &port.to_string(), "--server-cert"])
        .arg(&pki.server_cert)
        .arg("--server-key")
        .arg(&pki.server_key)
        .status()
        .unwrap();
    assert!(status.success());
    let acl = std::fs::read_to_string(out_dir.join("vaka.acl")).unwrap();
    assert!(acl.contains("pattern write vaka/v1/+/%u/events") && acl.contains("user vaka-hub"), "{acl}");
    let conf = out_dir.join("vaka.conf").display().to_string();
    let _broker = Proc::spawn("mosquitto", "mosquitto", &["-c", &conf], dir.path().join("mosquitto.log"));
    wait_until(Duration::from_secs(20), "mosquitto on the generated config", || port_open(port).then_some(()));
    let hub_client = Client { cert: out_dir.join("vaka-hub.pem"), key: out_dir.join("vaka-hub.key") };
    let ca = pki.ca_file.clone();

    // The hub listens to everything; home-a listens to everything it can ask for.
    let hub_sub = hub_client.subscribe(port, &ca, "hub-sub", &["vaka/v1/#"], 6);
    let a_sub = a.subscribe(port, &ca, "a-sub", &["#", "vaka/v1/+/home-b/cmd", "vaka/v1/skelleftea/home-a/cmd"], 6);
    std::thread::sleep(Duration::from_millis(1500));
    a.publish(port, &ca, "a-pub", "vaka/v1/skelleftea/home-a/events", "a-own");
    a.publish(port, &ca, "a-pub", "vaka/v1/skelleftea/home-b/events", "a-as-b");
    a.publish(port, &ca, "a-pub", "vaka/v1/skelleftea/home-a/cmd", "a-forges-a-command");
    b.publish(port, &ca, "b-pub", "vaka/v1/skelleftea/home-b/events", "b-own");
    hub_client.publish(port, &ca, "hub-pub", "vaka/v1/skelleftea/home-b/cmd", "cmd-for-b");
    hub_client.publish(port, &ca, "hub-pub", "vaka/v1/skelleftea/home-a/cmd", "cmd-for-a");

    let seen_by_hub = lines_of(hub_sub);
    let seen_by_a = lines_of(a_sub);
    println!("hub saw: {seen_by_hub:?}\nhome-a saw: {seen_by_a:?}");
    assert!(seen_by_hub.contains(&"vaka/v1/skelleftea/home-a/events a-own".to_string()), "{seen_by_hub:?}");
    assert!(seen_by_hub.contains(&"vaka/v1/skelleftea/home-b/events b-own".to_string()), "{seen_by_hub:?}");
    assert!(!seen_by_hub.iter().any(|l| l.ends_with("a-as-b")), "home-a spoke for home-b: {seen_by_hub:?}");
    assert!(!seen_by_hub.iter().any(|l| l.ends_with("a-forges-a-command")), "home-a wrote a command: {seen_by_hub:?}");
    assert_eq!(seen_by_a, ["vaka/v1/skelleftea/home-a/cmd cmd-for-a"], "home-a got only its own command");
}
