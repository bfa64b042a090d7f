//! The hub end to end, in-process: embedded broker on a free port, temp SQLite, HTTP on
//! port 0, a device talking MQTT.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::Duration;
use vaka_protocol::Status;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_event_is_acked_only_after_it_is_stored_and_shows_in_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(config(&dir.path().join("hub.db"), Duration::from_secs(180))).await;
    let web = hub.http_addr();
    let mut dev = Device::connect(
        hub.embedded_broker_addr().unwrap(),
        "skelleftea",
        "home-1",
        None,
    )
    .await;

    let e = envelope("home-1", 1);
    dev.publish("events", e.encode(), false).await;
    let ack = dev.next_ack().await;
    assert_eq!(ack.committed, vec![1]);
    assert!(ack.rejected.is_empty());
    // The ack came, so the row must already be readable (committed before acking).
    let events = api(web, "/api/v1/events?device=home-1").await;
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
    let row = &events[0];
    assert_eq!(row["id"], e.id.to_string());
    assert_eq!(
        (
            row["device"].as_str(),
            row["site"].as_str(),
            row["seq"].as_u64()
        ),
        (Some("home-1"), Some("skelleftea"), Some(1))
    );
    assert_eq!(
        (row["kind"].as_str(), row["severity"].as_str()),
        (Some("test_alarm"), Some("alarm"))
    );
    assert_eq!(row["body"]["note"], "test 1");

    // The same event again: acked again, stored once, counted as a duplicate.
    dev.publish("events", e.encode(), false).await;
    assert_eq!(dev.next_ack().await.committed, vec![1]);
    assert_eq!(
        api(web, "/api/v1/events").await.as_array().unwrap().len(),
        1
    );
    let stats = api(web, "/api/v1/stats").await;
    assert_eq!(
        (stats["stored"].as_u64(), stats["duplicates"].as_u64()),
        (Some(1), Some(1)),
        "{stats}"
    );

    let devices = api(web, "/api/v1/devices").await;
    assert_eq!(devices[0]["id"], "home-1");
    assert_eq!(devices[0]["online"], true);
    assert_eq!(devices[0]["supervision_lost"], false);
    assert!(devices[0]["outbox_depth"].is_null());
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversize_and_wrong_version_payloads_land_in_rejects_and_the_hub_keeps_answering()
{
    let dir = tempfile::tempdir().unwrap();
    let hub = start(config(&dir.path().join("hub.db"), Duration::from_secs(180))).await;
    let web = hub.http_addr();
    let mut dev = Device::connect(
        hub.embedded_broker_addr().unwrap(),
        "skelleftea",
        "home-2",
        None,
    )
    .await;

    dev.publish("events", b"{not json".to_vec(), false).await;
    dev.publish("events", vec![b'x'; 40 * 1024], false).await;
    let mut v2: serde_json::Value =
        serde_json::from_slice(&envelope("home-2", 5).encode()).unwrap();
    v2["v"] = 2.into();
    dev.publish("events", serde_json::to_vec(&v2).unwrap(), false)
        .await;
    // An envelope of another device on this device's topic.
    dev.publish("events", envelope("home-99", 6).encode(), false)
        .await;

    // Rejections with a readable seq come back in acks so the device stops resending.
    let mut rejected = Vec::new();
    while rejected.len() < 2 {
        rejected.extend(dev.next_ack().await.rejected);
    }
    rejected.sort_by_key(|r| r.seq);
    assert_eq!(
        rejected.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![5, 6]
    );
    assert!(
        rejected[0].reason.contains("version 2"),
        "{:?}",
        rejected[0]
    );
    assert!(rejected[1].reason.contains("home-99"), "{:?}", rejected[1]);

    wait_until("4 rejects", Duration::from_secs(5), || async {
        api(web, "/api/v1/stats").await["rejected"] == 4
    })
    .await;
    let rejects = api(web, "/api/v1/rejects").await;
    let mut labels: Vec<&str> = rejects
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    labels.sort();
    assert_eq!(
        labels,
        vec![
            "device_mismatch",
            "not_json",
            "too_large",
            "unsupported_version"
        ]
    );
    let big = rejects
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label"] == "too_large")
        .unwrap();
    assert_eq!(big["payload_excerpt"].as_str().unwrap().len(), 4096);
    assert_eq!(big["device"], "home-2");
    assert_eq!(big["topic"], "vaka/v1/skelleftea/home-2/events");

    let health = http(web, "GET", "/healthz", &[], "").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(health.json()["store_ok"], true);
    assert_eq!(
        api(web, "/api/v1/events").await.as_array().unwrap().len(),
        0
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_needs_the_token_and_the_browser_logs_in_with_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(config(&dir.path().join("hub.db"), Duration::from_secs(180))).await;
    let web = hub.http_addr();

    let r = http(web, "GET", "/api/v1/devices", &[], "").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "unauthorized");
    let r = http(
        web,
        "GET",
        "/api/v1/devices",
        &[("Authorization", "Bearer wrong-token-wrong-token")],
        "",
    )
    .await;
    assert_eq!(r.status, 401);

    let r = http(web, "GET", "/", &[], "").await;
    assert_eq!(r.status, 303, "{}", r.head);
    assert!(
        r.head.to_lowercase().contains("location: /login"),
        "{}",
        r.head
    );

    // An administrator (the api_token) creates a console account.
    let admin = format!("Bearer {TOKEN}");
    let json = [("Authorization", admin.as_str()), ("Content-Type", "application/json")];
    let body = r#"{"role": "night_staff", "teams": ["centrum"], "password": "natt-lösen-2026"}"#;
    let r = http(web, "PUT", "/api/v1/users/anna", &json, body).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The browser gets the login form with its own cookie, and posts it back.
    let r = http(web, "GET", "/login", &[], "").await;
    assert_eq!(r.status, 200);
    let login_cookie = r
        .head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: vaka_login=").and_then(|c| c.split(';').next()))
        .unwrap_or_else(|| panic!("{}", r.head))
        .to_string();
    let csrf = r.body.split("name=\"login_csrf\" value=\"").nth(1).and_then(|c| c.split('"').next()).unwrap_or_default();
    let cookie = format!("vaka_login={login_cookie}");
    let form = [("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", cookie.as_str())];
    let r = http(web, "POST", "/login", &form, &format!("name=anna&password=nope-nope-nope&login_csrf={csrf}")).await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("<form"), "{}", r.body);

    let r = http(web, "POST", "/login", &form, &format!("name=anna&password=natt-l%C3%B6sen-2026&login_csrf={csrf}")).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let head = r.head.to_lowercase();
    let session = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: vaka_session="))
        .unwrap_or_else(|| panic!("{}", r.head))
        .to_string();
    assert!(
        session.contains("httponly") && session.contains("samesite=strict") && session.contains("path=/"),
        "{session}"
    );
    assert!(session.contains("max-age=43200"), "a login lasts a night shift: {session}");
    let id = r
        .head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: vaka_session=").and_then(|c| c.split(';').next()))
        .unwrap_or_default()
        .to_string();

    let cookie = format!("vaka_session={id}");
    let page = http(web, "GET", "/", &[("Cookie", &cookie)], "").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<script src=\"/assets/console.js\">"), "{}", page.body);
    let script = http(web, "GET", "/assets/console.js", &[], "").await;
    assert_eq!(script.status, 200);
    assert!(script.body.contains("new EventSource(\"/api/v1/stream\")"));
    let r = http(web, "GET", "/api/v1/alarms", &[("Cookie", &cookie)], "").await;
    assert_eq!((r.status, r.body.as_str()), (200, "[]"));
    // The API token is not a cookie credential.
    let r = http(web, "GET", "/api/v1/alarms", &[("Cookie", &format!("vaka_token={TOKEN}"))], "").await;
    assert_eq!(r.status, 401);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stream_pushes_new_events_and_device_changes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let hub = start(config(&dir.path().join("hub.db"), Duration::from_secs(180))).await;
    let web = hub.http_addr();
    let mut sse = tokio::net::TcpStream::connect(web).await.unwrap();
    let req =
        format!("GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    sse.write_all(req.as_bytes()).await.unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    // Wait for the response head so the subscription exists before publishing.
    while !seen.contains("text/event-stream") {
        let n = sse.read(&mut buf).await.unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }

    let mut dev = Device::connect(
        hub.embedded_broker_addr().unwrap(),
        "skelleftea",
        "home-3",
        None,
    )
    .await;
    dev.publish("events", envelope("home-3", 1).encode(), false)
        .await;
    dev.next_ack().await;
    tokio::time::timeout(Duration::from_secs(5), async {
        while !(seen.contains("event: event") && seen.contains("event: device")) {
            let n = sse.read(&mut buf).await.unwrap();
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("stream did not carry the event: {seen}"));
    assert!(seen.contains("\"device\":\"home-3\""), "{seen}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_heartbeat_sets_outbox_depth_and_last_will_marks_the_device_offline() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(config(&dir.path().join("hub.db"), Duration::from_secs(180))).await;
    let web = hub.http_addr();
    let broker = hub.embedded_broker_addr().unwrap();
    let will = rumqttc::LastWill::new(
        "vaka/v1/umea/tracker-1/status",
        Status::offline().encode(),
        rumqttc::QoS::AtLeastOnce,
        true,
    );
    let mut dev = Device::connect(broker, "umea", "tracker-1", Some(will)).await;
    let online = Status::online(jiff::Timestamp::now(), 4, 60, "test");
    dev.publish("status", online.encode(), true).await;
    dev.flush(Duration::from_millis(200)).await;
    wait_until(
        "device online with depth 4",
        Duration::from_secs(5),
        || async {
            let d = api(web, "/api/v1/devices").await;
            d[0]["online"] == true && d[0]["outbox_depth"] == 4
        },
    )
    .await;
    drop(dev); // vanishes without DISCONNECT: the broker publishes the will
    wait_until("device offline", Duration::from_secs(15), || async {
        api(web, "/api/v1/devices").await[0]["online"] == false
    })
    .await;
    let d = api(web, "/api/v1/devices").await;
    assert_eq!(
        d[0]["supervision_lost"], false,
        "a last will alone is not a supervision alarm"
    );
    assert_eq!(d[0]["outbox_depth"], 4, "the last known depth is kept");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_over_the_broker_limit_is_refused_there_and_ingest_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(config(&dir.path().join("hub.db"), Duration::from_secs(180))).await;
    let broker = hub.embedded_broker_addr().unwrap();
    let mut rogue = Device::connect(broker, "skelleftea", "rogue-1", None).await;
    rogue.publish("events", vec![b'x'; 300 * 1024], false).await;
    rogue.flush(Duration::from_millis(500)).await;

    let mut dev = Device::connect(broker, "skelleftea", "home-4", None).await;
    dev.publish("events", envelope("home-4", 1).encode(), false)
        .await;
    assert_eq!(dev.next_ack().await.committed, vec![1]);
    let stats = api(hub.http_addr(), "/api/v1/stats").await;
    assert_eq!(stats["mqtt_connected"], true, "{stats}");
    assert_eq!(stats["stored"], 1, "{stats}");
    assert_eq!(
        stats["received"], 1,
        "the broker passed the oversize publish on: {stats}"
    );
    hub.stop().await;
}
