//! Path supervision with a short interval, on a real hub.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_device_raises_one_alarm_within_its_interval_which_clears_when_heard_and_survives_restart(
) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let interval = Duration::from_secs(1);
    let hub = start(config(&db, interval)).await;
    let web = hub.http_addr();
    let mut dev = Device::connect(
        hub.embedded_broker_addr().unwrap(),
        "skelleftea",
        "home-5",
        None,
    )
    .await;
    dev.publish("events", envelope("home-5", 1).encode(), false)
        .await;
    dev.next_ack().await;
    let heard = Instant::now();

    wait_until("supervision alarm", Duration::from_secs(5), || async {
        api(web, "/api/v1/devices").await[0]["supervision_lost"] == true
    })
    .await;
    let after = heard.elapsed();
    // Fires after the interval, and within interval + tick (100 ms) + slack.
    assert!(after >= interval, "alarm came early: {after:?}");
    assert!(
        after < interval + Duration::from_millis(600),
        "alarm came late: {after:?}"
    );
    let alarms = supervision_alarms(api(web, "/api/v1/alarms").await);
    assert_eq!(alarms.as_array().unwrap().len(), 1, "{alarms}");
    assert_eq!(
        (alarms[0]["kind"].as_str(), alarms[0]["device"].as_str()),
        (Some("supervision_lost"), Some("home-5"))
    );
    assert!(alarms[0]["cleared_at"].is_null());
    assert_eq!(api(web, "/api/v1/devices").await[0]["online"], false);

    // Still silent: no second alarm.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        supervision_alarms(api(web, "/api/v1/alarms").await).as_array().unwrap().len(),
        1
    );

    // A restart does not raise it again.
    hub.stop().await;
    drop(dev);
    let hub = start(config(&db, interval)).await;
    let web = hub.http_addr();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        supervision_alarms(api(web, "/api/v1/alarms").await).as_array().unwrap().len(),
        1
    );

    // Heard again: cleared.
    let mut dev = Device::connect(
        hub.embedded_broker_addr().unwrap(),
        "skelleftea",
        "home-5",
        None,
    )
    .await;
    dev.publish("events", envelope("home-5", 2).encode(), false)
        .await;
    assert_eq!(dev.next_ack().await.committed, vec![2]);
    let alarms = supervision_alarms(api(web, "/api/v1/alarms").await);
    assert!(alarms[0]["cleared_at"].is_string(), "{alarms}");
    let d = api(web, "/api/v1/devices").await;
    assert_eq!(
        (d[0]["online"].as_bool(), d[0]["supervision_lost"].as_bool()),
        (Some(true), Some(false))
    );
    hub.stop().await;
}

/// The `supervision_lost` alarms of an `/api/v1/alarms` answer (the test device's own
/// test_alarm events open an alarm of their own kind).
fn supervision_alarms(alarms: serde_json::Value) -> serde_json::Value {
    let all = alarms.as_array().cloned().unwrap_or_default();
    all.into_iter().filter(|a| a["kind"] == "supervision_lost").collect()
}
