//! Acceptance 6: a device that stops heartbeating is marked offline and raises "supervision
//! lost" within its interval; when it speaks again the alarm is cleared.

use std::time::{Duration, Instant};
use vaka_e2e::*;

#[test]
fn silent_device_is_marked_offline_and_raises_supervision_lost_within_its_interval() {
    let dir = temp_dir("supervision");
    let hub = Hub::start(dir.path(), HubOpts { supervision_interval: "4s".into(), ..HubOpts::default() });
    let mut opts = AgentOpts::new("home-s", hub.broker());
    opts.heartbeat = "1s".into();
    let agent = Agent::start(dir.path(), opts);
    wait_until(Duration::from_secs(60), "home-s online", || {
        hub.device("home-s").filter(|d| d["online"] == true).map(|_| ())
    });
    // Stay online across several intervals while heartbeats flow.
    std::thread::sleep(Duration::from_secs(6));
    let d = hub.device("home-s").unwrap_or_default();
    assert_eq!((d["online"].clone(), d["supervision_lost"].clone()), (true.into(), false.into()), "{d}");

    // Freeze the agent: its TCP connection stays open (keep-alive 30 s, so no last will yet),
    // but it says nothing. Only supervision can notice.
    agent.proc.freeze();
    let frozen = Instant::now();
    let d = wait_until(Duration::from_secs(15), "supervision lost for home-s", || {
        hub.device("home-s").filter(|d| d["supervision_lost"] == true)
    });
    let took = frozen.elapsed();
    assert_eq!(d["online"], false, "{d}");
    // Interval 4 s after the last heartbeat, checked about every second: ≤ 4 + 1 + slack.
    assert!(took <= Duration::from_secs(7), "supervision lost took {took:?}");
    let alarms = hub.get("/api/v1/alarms");
    let alarm = alarms
        .as_array()
        .and_then(|a| a.iter().find(|x| x["device"] == "home-s" && x["kind"] == "supervision_lost"))
        .cloned()
        .unwrap_or_else(|| panic!("no supervision_lost alarm in {alarms}"));
    assert!(alarm["cleared_at"].is_null(), "{alarm}");

    // It speaks again: online, alarm cleared.
    agent.proc.thaw();
    let thawed = Instant::now();
    wait_until(Duration::from_secs(60), "home-s back online", || {
        hub.device("home-s").filter(|d| d["online"] == true && d["supervision_lost"] == false).map(|_| ())
    });
    let cleared_after = thawed.elapsed();
    let alarms = hub.get("/api/v1/alarms");
    let cleared = alarms
        .as_array()
        .and_then(|a| a.iter().find(|x| x["device"] == "home-s"))
        .map(|x| !x["cleared_at"].is_null());
    assert_eq!(cleared, Some(true), "{alarms}");
    print_figures(&format!(
        "R7 figures: supervision interval 4 s, heartbeat 1 s; \"supervision lost\" raised {:.2} s after the \
         freeze (limit 7 s), cleared {:.2} s after the thaw",
        took.as_secs_f64(),
        cleared_after.as_secs_f64()
    ));
}

#[test]
fn killed_device_is_announced_offline_by_its_last_will() {
    let dir = temp_dir("last-will");
    let hub = Hub::start(dir.path(), HubOpts::default());
    let mut opts = AgentOpts::new("home-w", hub.broker());
    opts.extra = String::new();
    let mut agent = Agent::start(dir.path(), opts);
    wait_until(Duration::from_secs(60), "home-w online", || {
        hub.device("home-w").filter(|d| d["online"] == true).map(|_| ())
    });
    // kill -9 closes the socket without DISCONNECT: the broker publishes the last will.
    agent.proc.kill9();
    wait_until(Duration::from_secs(60), "home-w offline", || {
        hub.device("home-w").filter(|d| d["online"] == false).map(|_| ())
    });
}
