//! Acceptance 3–5: nothing the agent accepted is lost, and nothing is stored twice, when the
//! agent is killed mid-burst, when the hub is down for a while, and when the broker restarts
//! without persistence while events are in flight.

use std::time::Duration;
use vaka_e2e::*;

const DELIVERY: Duration = Duration::from_secs(120);

/// Sends one last event and waits until the hub holds every event up to it; returns them all.
fn drain(hub: &Hub, agent: &Agent) -> Accepted {
    let last = agent.intake().accept(r#"{"kind":"test_alarm","body":{"note":"last"}}"#);
    wait_for_events(hub, &agent.device, last.seq as usize, DELIVERY);
    last
}

#[test]
fn kill_9_of_the_agent_at_three_points_of_a_burst_loses_no_accepted_event() {
    let dir = temp_dir("kill-agent");
    let hub = Hub::start(dir.path(), HubOpts::default());
    let mut agent = Agent::start(dir.path(), AgentOpts::new("home-k", hub.broker()));
    let mut accepted = Vec::new();
    // Early (most still unsent), middle, and late in a burst of 1,000.
    for (round, kill_at) in [7usize, 500, 990].into_iter().enumerate() {
        let got = agent.burst(&format!("round {round}"), 1000, Some(kill_at));
        assert!(got.len() >= kill_at, "round {round}: only {} accepted before the kill", got.len());
        assert!(agent.proc.has_exited(), "the agent survived kill -9");
        accepted.extend(got);
        agent.start_again();
    }
    accepted.push(drain(&hub, &agent));
    let stored = assert_stored_exactly_once(&hub, "home-k", &accepted);
    eprintln!("accepted {} (answered), stored {stored}", accepted.len());
}

#[test]
fn agent_keeps_accepting_while_the_hub_is_down_and_delivers_everything_once_after() {
    let dir = temp_dir("hub-down");
    let mut hub = Hub::start(dir.path(), HubOpts::default());
    let mut agent = Agent::start(dir.path(), AgentOpts::new("home-h", hub.broker()));
    let mut accepted = agent.burst("before", 100, None);
    wait_for_events(&hub, "home-h", 100, DELIVERY);
    // The hub and its embedded broker go away; the device keeps taking events.
    hub.proc.terminate();
    accepted.extend(agent.burst("while down", 300, None));
    std::thread::sleep(Duration::from_secs(3)); // the hub stays down for a while
    accepted.extend(agent.burst("still down", 100, None));
    hub.start_again();
    accepted.push(drain(&hub, &agent));
    assert_stored_exactly_once(&hub, "home-h", &accepted);

    // Same again with a hard kill of the hub in the middle of a burst.
    let burst = std::thread::scope(|s| {
        let a = &mut agent;
        let t = s.spawn(move || a.burst("hub killed", 500, None));
        wait_until(Duration::from_secs(30), "the hub to receive part of the burst", || {
            (hub.events("home-h").len() >= 560).then_some(())
        });
        hub.proc.kill9();
        t.join().unwrap_or_default()
    });
    accepted.extend(burst);
    hub.start_again();
    accepted.push(drain(&hub, &agent));
    assert_stored_exactly_once(&hub, "home-h", &accepted);
}

#[test]
fn broker_restart_without_persistence_while_events_are_in_flight_loses_nothing() {
    let dir = temp_dir("broker-restart");
    let mut mosquitto = Mosquitto::start(dir.path(), None);
    let hub = Hub::start(dir.path(), HubOpts { external: Some(mosquitto.broker(None)), ..HubOpts::default() });
    let mut agent = Agent::start(dir.path(), AgentOpts::new("home-b", mosquitto.broker(None)));
    let mut accepted = Vec::new();
    for round in 0..2 {
        let burst = std::thread::scope(|s| {
            let a = &mut agent;
            let t = s.spawn(move || a.burst(&format!("round {round}"), 1000, None));
            let already = accepted.len();
            wait_until(Duration::from_secs(30), "part of the burst at the hub", || {
                (hub.events("home-b").len() >= already + 150).then_some(())
            });
            mosquitto.restart_losing_everything();
            t.join().unwrap_or_default()
        });
        accepted.extend(burst);
    }
    accepted.push(drain(&hub, &agent));
    assert_stored_exactly_once(&hub, "home-b", &accepted);
}
