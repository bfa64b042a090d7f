//! Acceptance 1: a device event travels vaka-agent → broker → vaka-hub → SQLite and shows up
//! at `/api/v1/events`, through the hub's embedded broker and through a real Mosquitto over
//! TLS with client certificates.

use std::time::Duration;
use vaka_e2e::*;

const ALARM: &str = r#"{"kind":"test_alarm","body":{"note":"installer test"}}"#;

fn assert_is_the_test_alarm(event: &serde_json::Value, accepted: &Accepted) {
    assert_eq!(event["id"], accepted.id.as_str());
    assert_eq!(event["seq"], accepted.seq);
    assert_eq!(event["kind"], "test_alarm");
    assert_eq!(event["severity"], "alarm");
    assert_eq!(event["body"]["note"], "installer test");
}

/// A CA, a Mosquitto requiring client certificates, and a hub connected to it over TLS.
fn tls_broker_and_hub(dir: &std::path::Path) -> (Pki, Mosquitto, Hub) {
    let pki = Pki::new(dir, "vaka");
    let mosquitto = Mosquitto::start(dir, Some(&pki));
    let hub = Hub::start(
        dir,
        HubOpts {
            external: Some(mosquitto.broker(Some(&pki))),
            client_cert: Some(pki.issue("vaka-hub", &[])),
            ..HubOpts::default()
        },
    );
    (pki, mosquitto, hub)
}

#[test]
fn agent_event_reaches_the_hub_api_through_the_embedded_broker() {
    let dir = temp_dir("e2e-embedded");
    let hub = Hub::start(dir.path(), HubOpts::default());
    let agent = Agent::start(dir.path(), AgentOpts::new("home-1", hub.broker()));
    let accepted = agent.intake().accept(ALARM);
    let events = wait_for_events(&hub, "home-1", 1, Duration::from_secs(60));
    assert_is_the_test_alarm(&events[0], &accepted);
    let device = wait_until(Duration::from_secs(60), "home-1 online with empty outbox", || {
        hub.device("home-1").filter(|d| d["online"] == true && d["outbox_depth"] == 0)
    });
    assert_eq!(device["site"], "testsite");
}

#[test]
fn agent_event_reaches_the_hub_through_mosquitto_over_tls_with_client_certificates() {
    let dir = temp_dir("e2e-tls");
    let (pki, mosquitto, hub) = tls_broker_and_hub(dir.path());
    let mut opts = AgentOpts::new("home-2", mosquitto.broker(Some(&pki)));
    opts.client_cert = Some(pki.issue("home-2", &[]));
    let agent = Agent::start(dir.path(), opts);
    let accepted = agent.intake().accept(ALARM);
    let events = wait_for_events(&hub, "home-2", 1, Duration::from_secs(60));
    assert_is_the_test_alarm(&events[0], &accepted);
}

#[test]
fn agent_that_does_not_trust_the_brokers_certificate_refuses_to_connect_and_says_why() {
    let dir = temp_dir("e2e-wrong-ca");
    let (pki, mosquitto, hub) = tls_broker_and_hub(dir.path());
    let stranger = Pki::new(dir.path(), "stranger");
    // The agent trusts another CA than the one that signed the broker's certificate.
    let mut opts = AgentOpts::new("home-3", mosquitto.broker(Some(&stranger)));
    opts.client_cert = Some(pki.issue("home-3", &[]));
    let agent = Agent::start(dir.path(), opts);
    // The event is still accepted: it waits in the outbox for a trustworthy connection.
    let accepted = agent.intake().accept(ALARM);
    assert_eq!(accepted.seq, 1);
    wait_until(Duration::from_secs(60), "the agent to log the certificate problem", || {
        agent.proc.log_text().to_lowercase().contains("certificate").then_some(())
    });
    assert!(hub.events("home-3").is_empty(), "an event crossed an untrusted link");
}
