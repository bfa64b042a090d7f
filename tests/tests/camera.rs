//! Issue 3 end to end: a staff member asks for a camera check through the hub's API; the real
//! agent (simulated camera) checks the consent lock, captures, judges on the device and answers
//! through its outbox; the hub stores the outcome with the check. Staff ask for the one
//! snapshot within the open check, get it once, and after the viewing span it is gone. No
//! image bytes are ever found in the agent's or the hub's data directories.

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use vaka_e2e::*;

const STAFF: &str = "staff-token-0123456789abcdef";
const INSTALLER: &str = "installer-token-0123456789abcdef";
const VIEW_SPAN_S: u64 = 5;

fn camera_section(window: &str) -> String {
    format!(
        "[camera]\nsource = \"simulator\"\nscenario = \"lying_still\"\nseed = 4\nframes = 4\nspan = \"1s\"\nwidth = 320\nheight = 240\n\n[camera.consent]\nwindows = [\"{window}\"]\n[camera.consent.record]\ngiven = 2026-09-14\nbasis = \"samtycke\"\n"
    )
}

fn hub_with_roles(dir: &Path) -> Hub {
    let extra = format!(
        "[cameras]\ncheck_open = \"5m\"\nsnapshot_view_span = \"{VIEW_SPAN_S}s\"\n\n[[http.tokens]]\nname = \"anna.natt\"\nrole = \"night_staff\"\ntoken = \"{STAFF}\"\n\n[[http.tokens]]\nname = \"ivar.installer\"\nrole = \"installer\"\ntoken = \"{INSTALLER}\"\n"
    );
    Hub::start(dir, HubOpts { extra, ..HubOpts::default() })
}

fn agent_with_camera(dir: &Path, hub: &Hub, device: &str, window: &str) -> Agent {
    let mut opts = AgentOpts::new(device, hub.broker());
    opts.extra = camera_section(window);
    let agent = Agent::start(dir, opts);
    wait_until(Duration::from_secs(60), "the hub to know the device", || hub.device(device).map(|_| ()));
    agent
}

/// Asks for a check as night staff and waits until its outcome is stored.
fn check_now(hub: &Hub, device: &str) -> Value {
    let r = hub.request("POST", &format!("/api/v1/devices/{device}/camera-check"), STAFF);
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["check_id"].as_str().unwrap_or_else(|| panic!("no check_id: {:?}", r.json())).to_string();
    wait_until(Duration::from_secs(60), "the check's outcome at the hub", || {
        let c = hub.get(&format!("/api/v1/checks/{id}"));
        (c["status"] == "answered").then_some(c)
    })
}

fn snapshot_state(hub: &Hub, check_id: &str) -> String {
    hub.get(&format!("/api/v1/checks/{check_id}"))["snapshot"].as_str().unwrap_or_default().to_string()
}

#[test]
fn staff_check_gets_a_verdict_and_one_snapshot_that_is_gone_after_the_viewing_span() {
    let dir = temp_dir("camera-e2e");
    let hub = hub_with_roles(dir.path());
    let agent = agent_with_camera(dir.path(), &hub, "home-cam", &window_around(0, 2));

    // 1. Hub requests a check → agent verdict → hub stores the outcome with the check.
    let check = check_now(&hub, "home-cam");
    let id = check["check_id"].as_str().unwrap().to_string();
    let verdict = check["verdict"].as_str().unwrap_or_default();
    assert!(["resting", "moving_in_bed", "unclear"].contains(&verdict), "{check}");
    assert!(check["confidence"].as_f64().is_some_and(|c| (0.0..=1.0).contains(&c)), "{check}");
    let events = hub.events("home-cam");
    let event = events.iter().find(|e| e["kind"] == "camera_check" && e["body"]["check_id"] == id.as_str());
    let event = event.unwrap_or_else(|| panic!("no camera_check event for {id} in {events:?}"));
    assert_eq!(event["body"]["verdict"], verdict);
    assert_eq!(event["body"]["frames"], 4);

    // 2. A role that is not care staff may neither ask for nor view the snapshot; refused.
    let r = hub.request("POST", &format!("/api/v1/checks/{id}/snapshot"), INSTALLER);
    assert_eq!(r.status, 403);
    let r = hub.request("GET", &format!("/api/v1/checks/{id}/snapshot"), INSTALLER);
    assert_eq!(r.status, 403);

    // 3. Staff ask within the open check; the agent sends one snapshot; staff get it once.
    let r = hub.request("POST", &format!("/api/v1/checks/{id}/snapshot"), STAFF);
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    wait_until(Duration::from_secs(30), "the snapshot at the hub", || {
        (snapshot_state(&hub, &id) == "available").then_some(())
    });
    let r = hub.request("GET", &format!("/api/v1/checks/{id}/snapshot"), STAFF);
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "image/jpeg");
    assert!(r.cache_control.contains("no-store"), "{r:?}");
    assert_eq!(r.view_seconds, VIEW_SPAN_S.to_string());
    let picture = image::load_from_memory_with_format(&r.body, image::ImageFormat::Jpeg).unwrap();
    let (w, h) = (picture.width(), picture.height());
    assert!(w <= 160 && h <= 120 && w > 0, "{w}×{h}");
    assert_eq!(picture.color(), image::ColorType::L8, "greyscale");
    let again = hub.request("GET", &format!("/api/v1/checks/{id}/snapshot"), STAFF);
    assert_eq!(again.status, 404, "a snapshot is handed out once");
    assert_eq!(snapshot_state(&hub, &id), "viewed");

    // 4. A second check's snapshot, never viewed, is gone after the viewing span.
    let second = check_now(&hub, "home-cam");
    let id2 = second["check_id"].as_str().unwrap().to_string();
    assert_eq!(hub.request("POST", &format!("/api/v1/checks/{id2}/snapshot"), STAFF).status, 202);
    wait_until(Duration::from_secs(30), "the second snapshot", || {
        (snapshot_state(&hub, &id2) == "available").then_some(())
    });
    wait_until(Duration::from_secs(VIEW_SPAN_S + 10), "the snapshot to expire", || {
        (snapshot_state(&hub, &id2) == "expired").then_some(())
    });
    assert_eq!(hub.request("GET", &format!("/api/v1/checks/{id2}/snapshot"), STAFF).status, 404);

    // 5. Every view and refusal is audited: who, which check.
    let audit = hub.get("/api/v1/audit?limit=100");
    let rows = audit.as_array().unwrap_or_else(|| panic!("{audit}"));
    let has = |action: &str, actor: &str, check: &str| {
        rows.iter().any(|r| r["action"] == action && r["actor"] == actor && r["check_id"] == check)
    };
    assert!(has("snapshot_viewed", "anna.natt", &id), "{audit}");
    assert!(has("snapshot_refused_role", "ivar.installer", &id), "{audit}");
    assert!(has("snapshot_not_available", "anna.natt", &id), "{audit}");
    // Each line is chained to the one before; the chain holds over the whole log, its head is
    // the newest line's hash, and checking it is for administrators only (and is itself logged).
    let verdict = hub.get("/api/v1/audit/verify");
    assert_eq!(verdict["status"], "intact", "{verdict}");
    assert!(verdict["entries"].as_u64().unwrap_or(0) >= rows.len() as u64, "{verdict}");
    assert_eq!(hub.request("GET", "/api/v1/audit/verify", STAFF).status, 403);
    let after = hub.get("/api/v1/audit?limit=100");
    let after = after.as_array().unwrap_or_else(|| panic!("{after}"));
    assert!(after.iter().any(|r| r["hash"] == verdict["head"]), "{verdict}");
    assert!(after.iter().any(|r| r["action"] == "audit_verified"), "{after:?}");
    let csv = hub.request("GET", "/api/v1/audit?format=csv", &hub.token);
    assert_eq!(csv.status, 200);
    let text = String::from_utf8_lossy(&csv.body);
    assert!(text.starts_with("id,at,actor,role,action,check_id,device,detail,hash"), "{text}");
    assert!(text.contains("snapshot_viewed"), "{text}");

    // 6. No image bytes anywhere in either side's directory: databases, WAL, logs.
    let found: Vec<String> = [dir.path().join("hub"), agent.outbox.parent().unwrap().to_path_buf()]
        .iter()
        .flat_map(|d| files_with_image_bytes(d))
        .collect();
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn check_outside_the_consent_window_is_refused_and_the_hub_records_why() {
    let dir = temp_dir("camera-refused");
    let hub = hub_with_roles(dir.path());
    // A window that closed two hours ago and opens again in eight.
    let _agent = agent_with_camera(dir.path(), &hub, "home-asleep", &window_around(-5, 3));
    let check = check_now(&hub, "home-asleep");
    assert_eq!(check["verdict"], "refused_outside_consent", "{check}");
    assert_eq!(check["refusal"], "outside_window", "{check}");
    let id = check["check_id"].as_str().unwrap();
    // No snapshot of a refused check: the camera stays closed.
    let log = || std::fs::read_to_string(dir.path().join("agent-home-asleep/agent.log")).unwrap_or_default();
    let r = hub.request("POST", &format!("/api/v1/checks/{id}/snapshot"), STAFF);
    if r.status == 202 {
        // The hub passed the request on; the agent must refuse it.
        wait_until(Duration::from_secs(30), "the agent to refuse the snapshot", || {
            log().contains("Snapshot not taken: the check was refused").then_some(())
        });
        assert_ne!(snapshot_state(&hub, id), "available");
    } else {
        assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    }
    assert!(log().contains("Camera check refused"), "{}", log());
    assert!(!log().contains("Snapshot taken"), "{}", log());
}

/// Acceptance 4: the agent built with the real-camera feature (as `scripts/test` builds it),
/// configured for a V4L2 camera that is not there, answers the check with `camera_fault`
/// naming the device, and goes on working.
#[test]
fn agent_without_its_camera_answers_camera_fault_and_keeps_running() {
    let dir = temp_dir("camera-missing");
    let hub = hub_with_roles(dir.path());
    // An installer's reference frame: any picture with some structure.
    let reference = dir.path().join("reference.png");
    let picture = image::GrayImage::from_fn(160, 120, |x, y| image::Luma([(40 + x / 2 + (y % 7) * 9) as u8]));
    picture.save(&reference).unwrap();
    let mut opts = AgentOpts::new("home-nocam", hub.broker());
    opts.extra = format!(
        "[camera]\nsource = \"v4l2\"\ndevice = \"/dev/video57\"\nreference = \"{}\"\nbed_zone = [[0.2, 0.2], [0.8, 0.2], [0.8, 0.9], [0.2, 0.9]]\n\n[camera.consent]\nwindows = [\"{}\"]\n[camera.consent.record]\ngiven = 2026-09-14\nbasis = \"samtycke\"\n",
        reference.display(),
        window_around(0, 2)
    );
    let mut agent = Agent::start(dir.path(), opts);
    wait_until(Duration::from_secs(60), "the hub to know the device", || hub.device("home-nocam").map(|_| ()));
    let check = check_now(&hub, "home-nocam");
    assert_eq!(check["verdict"], "camera_fault", "{check}");
    assert!(check["detail"].as_str().unwrap_or_default().contains("/dev/video57"), "{check}");
    // Still running, still delivering.
    assert!(!agent.proc.has_exited());
    let accepted = agent.intake().accept(r#"{"kind":"test_alarm","body":{"note":"after the camera fault"}}"#);
    let events = wait_for_events(&hub, "home-nocam", 2, Duration::from_secs(30));
    assert!(events.iter().any(|e| e["id"] == accepted.id.as_str()));
}
