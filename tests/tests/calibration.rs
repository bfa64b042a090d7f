//! Calibrating a camera's bed zone from the console, end to end: the hub asks a real agent
//! (simulated camera) for a calibration picture. Outside installer mode the agent refuses and
//! the camera stays closed; after `vaka-agent camera installer-mode` at the device, one
//! privacy-filtered picture with the zone in use arrives, the installer saves a zone (judged by
//! the agent's rules, every problem listed), the zone is in the device's agent configuration
//! and reaches the running agent, and the picture is gone after its span and never on a disk.

use serde_json::{json, Value};
use std::time::Duration;
use vaka_e2e::*;

const STAFF: &str = "staff-token-0123456789abcdef";
const INSTALLER: &str = "installer-token-0123456789abcdef";
const SPAN_S: u64 = 8;
const DEVICE: &str = "home-bed";

fn state(hub: &Hub) -> Value {
    let r = hub.request("GET", &format!("/api/v1/devices/{DEVICE}/calibration"), INSTALLER);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// Asks for a calibration picture as the installer and waits until the answer is in.
fn calibrate(hub: &Hub) -> Value {
    let r = hub.request("POST", &format!("/api/v1/devices/{DEVICE}/calibration"), INSTALLER);
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    wait_until(Duration::from_secs(30), "the device's answer", || {
        let s = state(hub);
        (s["state"] != "requested").then_some(s)
    })
}

#[test]
fn calibration_picture_needs_installer_mode_and_the_zone_drawn_on_it_reaches_the_device() {
    let dir = temp_dir("calibration");
    let extra = format!(
        "[cameras]\ncalibration_span = \"{SPAN_S}s\"\n\n[[http.tokens]]\nname = \"anna.natt\"\nrole = \"night_staff\"\ntoken = \"{STAFF}\"\n\n[[http.tokens]]\nname = \"ivar.installer\"\nrole = \"installer\"\ntoken = \"{INSTALLER}\"\n"
    );
    let hub = Hub::start(dir.path(), HubOpts { extra, ..HubOpts::default() });
    let mut opts = AgentOpts::new(DEVICE, hub.broker());
    // Daytime installation: the consented window is hours away, so only installer mode can
    // let the camera open.
    opts.extra = format!(
        "[camera]\nsource = \"simulator\"\nscenario = \"bed_empty\"\nseed = 3\nwidth = 320\nheight = 240\n\n[camera.consent]\nwindows = [\"{}\"]\n[camera.consent.record]\ngiven = 2026-09-14\nbasis = \"samtycke\"\n",
        window_around(-6, 2)
    );
    let agent = Agent::start(dir.path(), opts);
    wait_until(Duration::from_secs(60), "the hub to know the device", || hub.device(DEVICE).map(|_| ()));
    let (status, body) = hub.send("POST", "/api/v1/registrations", INSTALLER, &json!({"device": DEVICE, "site": "testsite"}));
    assert_eq!(status, 201, "{body}");
    let log = || std::fs::read_to_string(agent.outbox.parent().unwrap().join("agent.log")).unwrap_or_default();

    // 1. Night staff may not calibrate; the installer may ask, but installer mode is off at
    //    the device: a refusal that says how to switch it on, and the camera never opened.
    assert_eq!(hub.request("POST", &format!("/api/v1/devices/{DEVICE}/calibration"), STAFF).status, 403);
    let refused = calibrate(&hub);
    assert_eq!(refused["state"], "refused", "{refused}");
    assert_eq!(refused["refusal"], "installer_mode_off", "{refused}");
    assert!(refused["detail"].as_str().unwrap_or_default().contains("installer-mode"), "{refused}");
    assert_eq!(hub.request("GET", &format!("/api/v1/devices/{DEVICE}/calibration/picture"), INSTALLER).status, 404);
    assert!(!log().contains("Calibration picture taken"), "{}", log());

    // 2. At the device, the installer switches installer mode on; the hub hears of it.
    let config = agent.config.display().to_string();
    let out = std::process::Command::new(bin("vaka-agent"))
        .args(["camera", "installer-mode", "--config", &config, "--minutes", "5"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("installer mode on until"), "{said}");
    wait_until(Duration::from_secs(30), "the installer_mode event at the hub", || {
        hub.events(DEVICE).into_iter().find(|e| e["kind"] == "installer_mode")
    });

    // 3. Now the picture arrives: small, greyscale, with the zone the device uses.
    let ready = calibrate(&hub);
    assert_eq!(ready["state"], "available", "{ready}");
    let device_zone = ready["device_zone"].as_array().unwrap_or_else(|| panic!("{ready}"));
    assert!(device_zone.len() >= 3, "{ready}");
    for _ in 0..2 {
        let r = hub.request("GET", &format!("/api/v1/devices/{DEVICE}/calibration/picture"), INSTALLER);
        assert_eq!((r.status, r.content_type.as_str()), (200, "image/jpeg"));
        assert!(r.cache_control.contains("no-store"), "{r:?}");
        let picture = image::load_from_memory_with_format(&r.body, image::ImageFormat::Jpeg).unwrap();
        assert!(picture.width() <= 160 && picture.height() <= 120, "{}×{}", picture.width(), picture.height());
        assert_eq!(picture.color(), image::ColorType::L8, "greyscale");
    }
    assert_eq!(hub.request("GET", &format!("/api/v1/devices/{DEVICE}/calibration/picture"), STAFF).status, 403);

    // 4. A zone with corners outside the picture is refused with every problem; a good one is
    //    stored, sent to the agent, which keeps it, and is in the agent configuration.
    let path = format!("/api/v1/devices/{DEVICE}/bed-zone");
    let (status, body) = hub.send("PUT", &path, INSTALLER, &json!([[0.2, 0.2], [1.3, 0.2], [0.8, -0.1], [0.2, 0.9]]));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["problems"].as_array().map(Vec::len), Some(2), "{body}");
    let zone = json!([[0.25, 0.2], [0.75, 0.2], [0.75, 0.85], [0.25, 0.85]]);
    assert_eq!(hub.send("PUT", &path, STAFF, &zone).0, 403);
    let (status, body) = hub.send("PUT", &path, INSTALLER, &zone);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sent_to_device"], true, "{body}");
    let kept = agent.outbox.parent().unwrap().join("bed-zone.json");
    wait_until(Duration::from_secs(30), "the agent to keep the zone", || {
        let text = std::fs::read_to_string(&kept).ok()?;
        (serde_json::from_str::<Value>(&text).ok()? == zone).then_some(())
    });
    assert!(log().contains("Bed zone from the hub used from the next check"), "{}", log());
    // The next calibration picture comes with the zone the agent now uses.
    let again = calibrate(&hub);
    assert_eq!(again["device_zone"], zone, "{again}");
    let r = hub.request("GET", &format!("/devices/{DEVICE}/agent.toml"), INSTALLER);
    assert_eq!(r.status, 200);
    let toml_text = String::from_utf8_lossy(&r.body).to_string();
    // A TOML array of number pairs reads as JSON.
    let camera = toml_text.split("\n[camera]\n").nth(1).unwrap_or_else(|| panic!("no [camera]:\n{toml_text}"));
    let line = camera.lines().find_map(|l| l.strip_prefix("bed_zone = ")).unwrap_or_else(|| panic!("{toml_text}"));
    assert_eq!(serde_json::from_str::<Value>(line).unwrap(), zone, "{toml_text}");

    // 5. After its span the picture is gone from the hub, and no image was ever written to a
    //    disk on either side (databases, WAL, logs, the agent's data directory).
    wait_until(Duration::from_secs(SPAN_S + 10), "the picture to expire", || (state(&hub)["state"] == "expired").then_some(()));
    assert_eq!(hub.request("GET", &format!("/api/v1/devices/{DEVICE}/calibration/picture"), INSTALLER).status, 404);
    let found: Vec<String> = [dir.path().join("hub"), agent.outbox.parent().unwrap().to_path_buf()]
        .iter()
        .flat_map(|d| files_with_image_bytes(d))
        .collect();
    assert!(found.is_empty(), "{found:?}");

    // 6. Every step is in the audit log, by whom.
    let audit = hub.get("/api/v1/audit?limit=200");
    let rows = audit.as_array().unwrap_or_else(|| panic!("{audit}"));
    let count = |action: &str, actor: &str| rows.iter().filter(|r| r["action"] == action && r["actor"] == actor && r["device"] == DEVICE).count();
    assert_eq!(count("calibration_requested", "ivar.installer"), 3, "{audit}");
    assert_eq!(count("calibration_picture_viewed", "ivar.installer"), 2, "{audit}");
    assert_eq!(count("calibration_picture_refused_role", "anna.natt"), 1, "{audit}");
    assert_eq!(count("bed_zone_set", "ivar.installer"), 1, "{audit}");
}
