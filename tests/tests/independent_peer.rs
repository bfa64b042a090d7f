//! Acceptance 2: the contract holds against an independent MQTT peer. The Mosquitto clients
//! see the agent's envelopes on the documented topic; a hand-written envelope published with
//! `mosquitto_pub` is stored and acked; malformed, oversize and wrong-version payloads are
//! rejected with a reason while the hub keeps serving.

use std::process::Command;
use std::time::Duration;
use vaka_e2e::*;
use vaka_protocol::{Ack, Envelope};

fn pub_raw(port: u16, topic: &str, payload: &str) {
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic, "-m", payload])
        .status()
        .unwrap_or_else(|e| panic!("mosquitto_pub: {e}"));
    assert!(status.success(), "mosquitto_pub failed");
}

/// Starts `mosquitto_sub` for `count` messages on `topic` and waits until it has subscribed.
fn sub(dir: &std::path::Path, name: &str, port: u16, topic: &str, count: u32) -> Proc {
    let log = dir.join(format!("{name}.out"));
    // stdbuf: mosquitto_sub's debug lines are block-buffered when written to a file.
    let p = Proc::spawn(
        name,
        "stdbuf",
        &["-oL", "mosquitto_sub", "-d", "-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic, "-C", &count.to_string(), "-W", "30"],
        log,
    );
    wait_until(Duration::from_secs(30), "mosquitto_sub to subscribe", || p.log_text().contains("SUBACK").then_some(()));
    p
}

/// The payload lines of a `mosquitto_sub -d` log (debug lines start with "Client ").
fn payloads(p: &Proc) -> Vec<String> {
    p.log_text().lines().filter(|l| l.starts_with('{')).map(str::to_string).collect()
}

#[test]
fn mosquitto_clients_interoperate_with_agent_and_hub() {
    let dir = temp_dir("peer");
    let mosquitto = Mosquitto::start(dir.path(), None);
    let port = mosquitto.port;
    let hub = Hub::start(dir.path(), HubOpts { external: Some(mosquitto.broker(None)), ..HubOpts::default() });

    // 1. mosquitto_sub sees the agent's envelope on the documented topic, and it decodes.
    let watcher = sub(dir.path(), "sub-events", port, "vaka/v1/+/+/events", 1);
    let agent = Agent::start(dir.path(), AgentOpts::new("home-7", mosquitto.broker(None)));
    let accepted = agent.intake().accept(r#"{"kind":"sos","body":{"lat":64.75,"lon":20.95}}"#);
    let seen = wait_until(Duration::from_secs(60), "mosquitto_sub to print the envelope", || {
        payloads(&watcher).into_iter().next()
    });
    let envelope = Envelope::decode(seen.as_bytes()).unwrap_or_else(|e| panic!("agent sent {seen}: {e}"));
    assert_eq!(envelope.id.to_string(), accepted.id);
    assert_eq!((envelope.device.as_str(), envelope.seq, envelope.kind()), ("home-7", 1, "sos"));

    // 2. A hand-written envelope from mosquitto_pub is stored and acked after the commit.
    let acks = sub(dir.path(), "sub-acks", port, "vaka/v1/testsite/peer-1/acks", 1);
    let hand_written = r#"{"v":1,"id":"019ab3c2-7f10-7a4e-9d51-2f0c8a7e6b11","device":"peer-1","seq":1,"ts":"2026-11-23T01:02:03.512Z","severity":"alarm","kind":"dose_missed","body":{"dose_id":"evening","medication":"Waran 2,5 mg","scheduled":"2026-11-22T20:00:00Z"}}"#;
    pub_raw(port, "vaka/v1/testsite/peer-1/events", hand_written);
    let stored = wait_for_events(&hub, "peer-1", 1, Duration::from_secs(60));
    assert_eq!(stored[0]["id"], "019ab3c2-7f10-7a4e-9d51-2f0c8a7e6b11");
    assert_eq!(stored[0]["body"]["medication"], "Waran 2,5 mg");
    let ack = wait_until(Duration::from_secs(60), "the hub's ack", || payloads(&acks).into_iter().next());
    let ack = Ack::decode(ack.as_bytes()).unwrap_or_else(|e| panic!("hub acked with {ack}: {e}"));
    assert_eq!(ack.committed, vec![1]);

    // 3. Bad payloads are rejected with a reason each, and the hub keeps serving.
    let topic = "vaka/v1/testsite/peer-1/events";
    pub_raw(port, topic, "this is not json");
    pub_raw(port, topic, &format!("{{\"v\":1,\"pad\":\"{}\"}}", "x".repeat(20_000)));
    pub_raw(port, topic, &hand_written.replace(r#""v":1"#, r#""v":2"#));
    pub_raw(port, topic, &hand_written.replace(r#""kind":"dose_missed""#, r#""kind":"teleport""#));
    pub_raw(port, "vaka/v1/testsite/someone-else/events", &hand_written.replace("7e6b11", "7e6b12"));
    let rejects = wait_until(Duration::from_secs(60), "five rejects", || {
        let r = hub.rejects();
        (r.len() >= 5).then_some(r)
    });
    let reasons: Vec<String> = rejects.iter().map(|r| r["reason"].as_str().unwrap_or_default().to_string()).collect();
    let all = reasons.join("\n");
    for expected in ["not valid JSON", "larger than the limit", "version 2 is not supported", "teleport", "someone-else"] {
        assert!(all.contains(expected), "no reject mentions `{expected}`:\n{all}");
    }
    assert!(ureq::get(&format!("http://127.0.0.1:{}/healthz", hub.http_port)).call().is_ok());
    assert!(!hub.proc.log_text().contains("panicked"), "the hub panicked");

    // The hub still takes good events after the bad ones.
    pub_raw(port, topic, &hand_written.replace("7e6b11", "7e6b13").replace(r#""seq":1"#, r#""seq":2"#));
    wait_for_events(&hub, "peer-1", 2, Duration::from_secs(60));
}
