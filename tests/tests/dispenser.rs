//! Issue 4, acceptance 4 (dispenser): a missed dose is decided on the device and reaches the
//! hub, although the agent was killed during the grace period and the hub was down when the
//! grace period ended. A dose taken in time raises nothing.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;
use vaka_e2e::*;

fn dispenser_section(socket: &Path) -> String {
    format!(
        r#"
[dispenser]
source = "socket"
path = "{}"
grace = "1m"
"#,
        socket.display()
    )
}

fn bridge(socket: &Path) -> UnixStream {
    wait_until(Duration::from_secs(30), "the dispenser socket", || UnixStream::connect(socket).ok())
}

fn line(event: &str, dose: &str, scheduled: jiff::Timestamp) -> String {
    serde_json::json!({
        "ts": jiff::Timestamp::now().to_string(),
        "event": event,
        "dose_id": dose,
        "medication": "Waran 2,5 mg",
        "scheduled": scheduled.to_string(),
    })
    .to_string()
        + "\n"
}

#[test]
fn a_missed_dose_is_raised_on_time_across_an_agent_kill_and_reaches_the_hub_after_it_was_down() {
    let dir = temp_dir("dispenser");
    let mut hub = Hub::start(dir.path(), HubOpts::default());
    let socket = dir.path().join("dispenser.sock");
    let mut opts = AgentOpts::new("disp-1", hub.broker());
    opts.extra = dispenser_section(&socket);
    let mut agent = Agent::start(dir.path(), opts);

    // Two doses were due 48 s ago with a one-minute grace: the evening one is taken at once,
    // the night one never.
    let scheduled = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(48);
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    let mut b = bridge(&socket);
    b.write_all(line("dose_due", "evening", scheduled).as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    b.write_all(line("dose_taken", "evening", scheduled).as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    b.write_all(line("dose_due", "night", scheduled).as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    b.write_all(b"this is not json\n").unwrap_or_else(|e| panic!("{e}"));
    wait_until(Duration::from_secs(30), "both doses at the hub", || {
        let events = hub.events("disp-1");
        (events.iter().filter(|e| e["kind"] == "dose_due").count() == 2).then_some(())
    });
    let log = agent.proc.log_text();
    assert!(log.contains("line 4"), "the bad line is logged with its number:\n{log}");

    // The agent dies during the grace period and comes back before it ends; the hub goes
    // down. The miss is raised on time by the restarted agent, alone.
    agent.proc.kill9();
    hub.proc.terminate();
    agent.start_again();
    assert!(std::time::Instant::now() < deadline, "the test machine was too slow to restart in the grace period");
    wait_until(Duration::from_secs(30), "the agent to raise dose_missed", || {
        agent.proc.log_text().contains("Alarm raised on the device: dose_missed").then_some(())
    });

    hub.start_again();
    let missed = wait_until(Duration::from_secs(60), "dose_missed at the hub", || {
        let events = hub.events("disp-1");
        let missed: Vec<_> = events.into_iter().filter(|e| e["kind"] == "dose_missed").collect();
        (!missed.is_empty()).then_some(missed)
    });
    // Give a second miss (there must be none) the time to arrive.
    std::thread::sleep(Duration::from_secs(2));
    let events = hub.events("disp-1");
    let missed_now: Vec<_> = events.iter().filter(|e| e["kind"] == "dose_missed").collect();
    assert_eq!(missed_now.len(), 1, "exactly one miss: {events:?}");
    assert_eq!(missed[0]["severity"], "alarm");
    assert_eq!(missed[0]["body"]["dose_id"], "night", "{}", missed[0]);
    assert_eq!(missed[0]["body"]["scheduled"].as_str(), Some(scheduled.to_string().as_str()));
    // On time: the agent's time stamp of the miss is the end of the grace period, not before,
    // and within the shell's reaction time after.
    let raised: jiff::Timestamp = missed[0]["ts"].as_str().and_then(|t| t.parse().ok()).unwrap_or_default();
    let grace_end = scheduled + jiff::SignedDuration::from_secs(60);
    let late = raised.duration_since(grace_end);
    assert!(late >= jiff::SignedDuration::ZERO, "raised {late:#} before the grace period ended");
    assert!(late < jiff::SignedDuration::from_secs(3), "raised {late:#} after the grace period");
    let alarms = hub.get("/api/v1/alarms");
    assert!(
        alarms.as_array().is_some_and(|a| a.iter().any(|x| x["device"] == "disp-1" && x["kind"] == "dose_missed")),
        "{alarms}"
    );
}
