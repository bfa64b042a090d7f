//! The README's first command: `vaka-hub demo` runs the hub, its embedded broker, SQLite in a
//! temporary directory and five simulated homes running the real agent code; within 10 s the
//! console shows all five homes and their events, and a camera check asked through the API is
//! answered by a home's simulated camera.

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
        &["demo", "--http", &format!("127.0.0.1:{http}"), "--mqtt-port", &mqtt.to_string()],
        dir.path().join("demo.log"),
    );
    let started = Instant::now();
    // The demo prints the console URL and the token to log in with.
    let token = wait_until(Duration::from_secs(30), "the demo to print its token", || {
        let log = demo.log_text();
        log.lines().find_map(|l| l.split("token:").nth(1).map(|t| t.trim().to_string())).filter(|t| !t.is_empty())
    });
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

    // The console page itself (authenticated by cookie, as a browser after logging in) lists them.
    let url = format!("http://127.0.0.1:{http}/");
    let mut page = ureq::get(&url)
        .header("Cookie", &format!("vaka_token={token}"))
        .call()
        .unwrap_or_else(|e| panic!("console page: {e}"));
    let html = page.body_mut().read_to_string().unwrap_or_default();
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

    // Without the token the console is not shown.
    let anonymous = ureq::get(&format!("http://127.0.0.1:{http}/api/v1/devices")).call();
    assert!(anonymous.is_err(), "the API answered without a token");
}
