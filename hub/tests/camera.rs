//! Camera checks end to end, in-process: the hub with its embedded broker, a rumqttc client
//! playing the agent, and staff calling the HTTP API with tokens of different roles.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use jiff::{SignedDuration, Timestamp};
use rumqttc::QoS;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use vaka_hub::access::Role;
use vaka_hub::{Hub, HubConfig, TokenConfig};
use vaka_protocol::kinds::{CameraCheck, Verdict};
use vaka_protocol::{
    CheckId, CommandBody, DeviceId, Envelope, EventBody, SnapshotFilter, SnapshotMessage,
};

const NIGHT: &str = "night-anna-0123456789abcdef";
const INSTALLER: &str = "installer-olle-0123456789";

fn camera_config(db: &Path) -> HubConfig {
    let mut c = config(db, Duration::from_secs(180));
    c.tokens = vec![
        TokenConfig {
            name: "anna.berg".into(),
            role: Role::NightStaff,
            token: NIGHT.into(),
            teams: None,
        },
        TokenConfig {
            name: "olle.installer".into(),
            role: Role::Installer,
            token: INSTALLER.into(),
            teams: None,
        },
    ];
    c
}

async fn call(web: SocketAddr, method: &str, path: &str, token: &str) -> Response {
    let auth = format!("Bearer {token}");
    http(web, method, path, &[("Authorization", &auth)], "").await
}

/// A real greyscale JPEG.
fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = image::GrayImage::from_fn(width, height, |x, y| image::Luma([(x * 7 + y * 3) as u8]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn snapshot(check_id: &CheckId, declared: (u32, u32), jpeg: Vec<u8>) -> Vec<u8> {
    SnapshotMessage::new(
        check_id.clone(),
        Timestamp::now(),
        declared,
        SnapshotFilter::Blur,
        jpeg,
    )
    .encode()
}

fn answer(device: &str, seq: u64, check_id: &CheckId) -> Envelope {
    Envelope::new(
        DeviceId::new(device).unwrap(),
        seq,
        uuid::Uuid::now_v7(),
        Timestamp::now(),
        EventBody::CameraCheck(CameraCheck {
            check_id: Some(check_id.clone()),
            verdict: Verdict::Resting,
            refusal: None,
            confidence: 0.92,
            detail: Some("in bed, calm".into()),
            frames: 8,
            brightness: Some(41.5),
            motion_in_zone: Some(0.01),
            motion_outside: Some(0.0),
            presence: Some(0.4),
            presence_strong: Some(0.1),
            duration_ms: 2400,
        }),
    )
}

/// A device the hub has heard from (so it may be checked), listening for its commands.
async fn known_device(hub: &Hub, id: &str) -> Device {
    let mut dev =
        Device::connect(hub.embedded_broker_addr().unwrap(), "skelleftea", id, None).await;
    dev.listen_for_commands().await;
    dev.publish("events", envelope(id, 1).encode(), false).await;
    assert_eq!(dev.next_ack_only().await.committed, vec![1]);
    dev
}

/// Asks for a check as night staff; returns the check JSON and the command the device got.
async fn request_check(
    web: SocketAddr,
    dev: &mut Device,
) -> (serde_json::Value, CheckId, Timestamp) {
    let r = call(
        web,
        "POST",
        &format!("/api/v1/devices/{}/camera-check", dev.id),
        NIGHT,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let check = r.json();
    let cmd = dev.next_command().await;
    let CommandBody::CameraCheck { check_id, deadline } = cmd.body else {
        panic!("expected a camera_check command, got {cmd:?}")
    };
    assert_eq!(check["check_id"], check_id.as_str());
    (check, check_id, deadline)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn night_staff_checks_a_home_gets_the_answer_and_sees_its_snapshot_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(camera_config(&dir.path().join("hub.db"))).await;
    let web = hub.http_addr();
    let mut dev = known_device(&hub, "home-1").await;

    let r = call(web, "POST", "/api/v1/devices/home-404/camera-check", NIGHT).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("not_found")),
        "{}",
        r.body
    );

    let asked_at = Timestamp::now();
    let (check, check_id, deadline) = request_check(web, &mut dev).await;
    let expected = asked_at + SignedDuration::from_secs(300);
    assert!(
        deadline.duration_since(expected).abs() < SignedDuration::from_secs(5),
        "deadline {deadline}, expected ≈ {expected}"
    );
    assert_eq!(check["status"], "requested");
    assert_eq!(check["deadline"], deadline.to_string());
    assert_eq!(
        (
            check["requested_by"].as_str(),
            check["requested_role"].as_str()
        ),
        (Some("anna.berg"), Some("night_staff"))
    );
    assert_eq!(
        (check["device"].as_str(), check["site"].as_str()),
        (Some("home-1"), Some("skelleftea"))
    );
    assert_eq!(check["snapshot"], "none");

    // The agent answers through its outbox; once acked, the check shows the answer.
    let e = answer("home-1", 2, &check_id);
    dev.publish("events", e.encode(), false).await;
    assert_eq!(dev.next_ack_only().await.committed, vec![2]);
    let path = format!("/api/v1/checks/{check_id}");
    let got = call(web, "GET", &path, INSTALLER).await.json();
    assert_eq!(
        (got["status"].as_str(), got["verdict"].as_str()),
        (Some("answered"), Some("resting")),
        "{got}"
    );
    assert_eq!(
        (got["late"].as_bool(), got["event_id"].as_str()),
        (Some(false), Some(e.id.to_string().as_str()))
    );
    assert_eq!(
        (
            got["figures"]["frames"].as_u64(),
            got["confidence"].as_f64()
        ),
        (Some(8), Some(0.92))
    );
    assert!(got["refusal"].is_null());
    // An answer to a check this hub never asked for is just an event.
    dev.publish(
        "events",
        answer("home-1", 3, &CheckId::new("made-up").unwrap()).encode(),
        false,
    )
    .await;
    assert_eq!(dev.next_ack_only().await.committed, vec![3]);
    assert_eq!(
        call(web, "GET", "/api/v1/checks/made-up", NIGHT)
            .await
            .status,
        404
    );

    // Only care staff may ask for the snapshot, once.
    let snap = format!("/api/v1/checks/{check_id}/snapshot");
    assert_eq!(call(web, "POST", &snap, INSTALLER).await.status, 403);
    let r = call(web, "POST", &snap, NIGHT).await;
    assert_eq!(
        (r.status, r.json()["snapshot"].as_str()),
        (202, Some("requested")),
        "{}",
        r.body
    );
    let r = call(web, "POST", &snap, NIGHT).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (409, Some("snapshot_already_requested"))
    );
    let cmd = dev.next_command().await;
    assert_eq!(
        cmd.body,
        CommandBody::Snapshot {
            check_id: check_id.clone()
        }
    );

    // An unsolicited picture and an oversized one are dropped; the real one is kept.
    let big = jpeg(320, 240);
    let small = jpeg(160, 120);
    let topic = dev.topic("snapshot");
    for payload in [
        snapshot(
            &CheckId::new("not-asked").unwrap(),
            (160, 120),
            small.clone(),
        ),
        snapshot(&check_id, (160, 120), big.clone()),
        snapshot(&check_id, (160, 120), small.clone()),
    ] {
        dev.client
            .publish(&topic, QoS::AtMostOnce, false, payload)
            .await
            .unwrap();
    }
    dev.flush(Duration::from_millis(200)).await;
    wait_until("three snapshots judged", Duration::from_secs(5), || async {
        let s = hub.stats();
        s.snapshots_accepted + s.snapshots_dropped == 3
    })
    .await;
    let s = hub.stats();
    assert_eq!(
        (
            s.snapshots_received,
            s.snapshots_accepted,
            s.snapshots_dropped
        ),
        (3, 1, 2)
    );
    assert_eq!(
        call(web, "GET", &path, NIGHT).await.json()["snapshot"],
        "available"
    );

    // An installer may not see it, and that is recorded.
    let r = call(web, "GET", &snap, INSTALLER).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (403, Some("forbidden"))
    );

    let r = call(web, "GET", &snap, NIGHT).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let head = r.head.to_lowercase();
    assert!(head.contains("content-type: image/jpeg"), "{}", r.head);
    assert!(head.contains("cache-control: no-store"), "{}", r.head);
    assert!(head.contains("x-vaka-view-seconds: 30"), "{}", r.head);
    assert_eq!(
        r.bytes, small,
        "the picture is the one the device sent, the right one"
    );

    let r = call(web, "GET", &snap, NIGHT).await;
    assert_eq!(r.status, 404, "a picture is shown once");
    assert_eq!(
        (r.json()["error"].as_str(), r.json()["reason"].as_str()),
        (Some("snapshot_not_available"), Some("already_viewed"))
    );
    assert_eq!(
        call(web, "GET", &path, NIGHT).await.json()["snapshot"],
        "viewed"
    );
    assert_eq!(hub.stats().snapshots_viewed, 1);

    // The audit log: for admins only, newest first, every snapshot fetch in it.
    assert_eq!(call(web, "GET", "/api/v1/audit", NIGHT).await.status, 403);
    let audit = api(web, "/api/v1/audit").await;
    let lines: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_string(),
                a["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("snapshot_not_available", "anna.berg"),
        ("snapshot_viewed", "anna.berg"),
        ("snapshot_refused_role", "olle.installer"),
        ("snapshot_requested", "anna.berg"),
        ("snapshot_request_refused_role", "olle.installer"),
        ("camera_check_requested", "anna.berg"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(lines, expected, "{audit}");
    let viewed = &audit[1];
    assert_eq!(
        (
            viewed["role"].as_str(),
            viewed["check_id"].as_str(),
            viewed["device"].as_str()
        ),
        (Some("night_staff"), Some(check_id.as_str()), Some("home-1"))
    );
    assert!(
        viewed["detail"]
            .as_str()
            .unwrap()
            .contains("view_span_s=30"),
        "{viewed}"
    );
    assert_eq!(audit[2]["role"], "installer");

    // Nothing of any picture was written anywhere: not the rejects, not the database files.
    assert_eq!(api(web, "/api/v1/rejects").await, serde_json::json!([]));
    let base64_of = |payload: &[u8]| -> String {
        let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
        v["jpeg"].as_str().unwrap().to_string()
    };
    // The JPEG and PNG signatures, base64 of a JPEG's start, and a stretch of each picture's
    // base64 from past the header (as a snapshot message carries it).
    let mut needles: Vec<Vec<u8>> = vec![
        vec![0xFF, 0xD8, 0xFF],
        vec![0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A],
        b"/9j/".to_vec(),
    ];
    for picture in [&small, &big] {
        let b64 = base64_of(&snapshot(&check_id, (160, 120), picture.clone()));
        needles.push(b64.as_bytes()[b64.len() / 2..b64.len() / 2 + 64].to_vec());
    }
    let scan = |dir: &Path| {
        let mut scanned = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            // The device CA's folder (`device-ca/`) holds keys, not pictures.
            if path.is_dir() {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            for needle in &needles {
                assert!(
                    !contains(&bytes, needle),
                    "{} holds picture bytes {:02X?}",
                    path.display(),
                    &needle[..4]
                );
            }
            scanned += 1;
        }
        scanned
    };
    assert!(
        scan(dir.path()) >= 2,
        "the database and its WAL were scanned"
    );
    hub.stop().await;
    assert!(scan(dir.path()) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_nobody_answers_turns_no_answer_at_its_deadline_and_a_late_answer_still_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = camera_config(&dir.path().join("hub.db"));
    // Below the config file's 30 s minimum, so the test need not wait: the fields are public.
    config.cameras.check_open = Duration::from_secs(1);
    let hub = start(config).await;
    let web = hub.http_addr();
    let mut dev = known_device(&hub, "home-2").await;

    let (_, check_id, _) = request_check(web, &mut dev).await;
    let path = format!("/api/v1/checks/{check_id}");
    wait_until(
        "the check to turn no_answer",
        Duration::from_secs(10),
        || async { call(web, "GET", &path, NIGHT).await.json()["status"] == "no_answer" },
    )
    .await;
    let r = call(web, "POST", &format!("{path}/snapshot"), NIGHT).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (409, Some("check_closed")),
        "{}",
        r.body
    );

    dev.publish("events", answer("home-2", 2, &check_id).encode(), false)
        .await;
    assert_eq!(dev.next_ack_only().await.committed, vec![2]);
    let got = call(web, "GET", &path, NIGHT).await.json();
    assert_eq!(
        (got["status"].as_str(), got["late"].as_bool()),
        (Some("answered"), Some(true)),
        "{got}"
    );

    // Another device's answer to this check changes nothing.
    let mut other = known_device(&hub, "home-3").await;
    let (_, check_3, _) = request_check(web, &mut other).await;
    dev.publish("events", answer("home-2", 3, &check_3).encode(), false)
        .await;
    assert_eq!(dev.next_ack_only().await.committed, vec![3]);
    let got = call(web, "GET", &format!("/api/v1/checks/{check_3}"), NIGHT)
        .await
        .json();
    assert_ne!(got["status"], "answered", "{got}");
    hub.stop().await;
}
