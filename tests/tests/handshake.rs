//! S1 of the fault suite: client certificates a broker must refuse at the TLS handshake, and
//! the proof that nothing of such a device is stored.
//!
//! A real Mosquitto, started with a generated config, requires client certificates from the
//! test's CA. It checks the client's certificate in the TLS handshake and answers a bad one
//! with a TLS alert, before a single MQTT byte is read. The hub is that broker's client with
//! its own certificate. Three real agents connect:
//!
//! - `home-ok` with a valid certificate (the control: its events reach the hub, before and
//!   after the others try, so the hub would have stored theirs had they got through);
//! - `home-expired` with a certificate from the right CA that expired in 2021;
//! - `home-nocert` with no client certificate at all.
//!
//! Each refused agent accepts events on its own disk (they wait in its outbox) and keeps
//! trying. The broker's log must show the handshakes failing; each agent must name the
//! broker's TLS alert (`CertificateExpired`, `CertificateRequired`); and the hub must hold
//! nothing from them: no event, and no device (a device with an MQTT session publishes its
//! retained status, and the hub lists it, as it lists the control). A certificate from another CA is refused in `provisioning.rs`; a revoked
//! one is for the revocation work.

use std::time::{Duration, Instant};
use vaka_e2e::*;

const DELIVERY: Duration = Duration::from_secs(60);
/// How many failed connection attempts each refused agent must have made before the hub is
/// checked for its events.
const ATTEMPTS: usize = 3;

fn alarm(note: &str) -> String {
    format!(r#"{{"kind":"test_alarm","body":{{"note":"{note}"}}}}"#)
}

/// Handshake failures the broker logged so far.
fn refused_handshakes(mosquitto_log: &str) -> usize {
    mosquitto_log
        .lines()
        .filter(|l| l.contains("OpenSSL Error") && (l.contains("certificate") || l.contains("peer did not return")))
        .count()
}

#[test]
fn expired_and_missing_client_certificates_are_refused_at_the_handshake_and_nothing_is_stored() {
    let dir = temp_dir("handshake");
    let pki = Pki::new(dir.path(), "vaka");
    let mosquitto = Mosquitto::start(dir.path(), Some(&pki));
    let broker = mosquitto.broker(Some(&pki));
    let hub = Hub::start(
        dir.path(),
        HubOpts { external: Some(broker.clone()), client_cert: Some(pki.issue("vaka-hub", &[])), ..HubOpts::default() },
    );

    let mut ok_opts = AgentOpts::new("home-ok", broker.clone());
    ok_opts.client_cert = Some(pki.issue("home-ok", &[]));
    let ok = Agent::start(dir.path(), ok_opts);
    let first = ok.intake().accept(&alarm("valid before"));
    wait_for_events(&hub, "home-ok", first.seq as usize, DELIVERY);

    let mut figures = Vec::new();
    let mut refused_agents = Vec::new();
    for (device, cert) in [("home-expired", Some(pki.issue_expired("home-expired"))), ("home-nocert", None)] {
        let mut opts = AgentOpts::new(device, broker.clone());
        opts.client_cert = cert;
        let agent = Agent::start(dir.path(), opts);
        let mut intake = agent.intake();
        let accepted: Vec<Accepted> = (0..5).map(|i| intake.accept(&alarm(&format!("{device} {i}")))).collect();
        refused_agents.push((device, agent, accepted));
    }

    // Each refused agent tries a few times (a back-off of 200 ms to 2 s); each try is a handshake
    // the broker refuses.
    let started = Instant::now();
    let before = refused_handshakes(&mosquitto.proc.log_text());
    wait_until(Duration::from_secs(30), "the broker to refuse several handshakes", || {
        (refused_handshakes(&mosquitto.proc.log_text()) >= before + 2 * ATTEMPTS).then_some(())
    });
    for (device, agent, _) in &refused_agents {
        wait_until(Duration::from_secs(10), &format!("{device} to log that it cannot connect"), || {
            agent.proc.log_text().contains("Cannot connect to broker").then_some(())
        });
    }

    // The control again, after the refused attempts: the hub is listening and storing.
    let after = ok.intake().accept(&alarm("valid after"));
    wait_for_events(&hub, "home-ok", after.seq as usize, DELIVERY);

    let log = mosquitto.proc.log_text();
    // A device that gets an MQTT session publishes its retained status and the hub lists it;
    // the control shows that this check would see one.
    assert!(hub.device("home-ok").is_some(), "the hub does not list the control device");
    for ((device, agent, accepted), alert) in refused_agents.iter().zip(["CertificateExpired", "CertificateRequired"]) {
        let stored = hub.events(device).len();
        let reason = agent
            .proc
            .log_text()
            .lines()
            .find(|l| l.contains("Cannot connect to broker"))
            .map(strip_ansi)
            .unwrap_or_default();
        figures.push(format!(
            "{device}: {} accepted on the device, stored at the hub {stored}, listed by the hub {}",
            accepted.len(),
            hub.device(device).is_some()
        ));
        println!("S1 {device} refused: {}", reason.trim());
        assert!(reason.contains(alert), "{device} was not refused with the TLS alert {alert}: {reason}");
        assert_eq!(stored, 0, "the hub stored events of {device}");
        assert!(hub.device(device).is_none(), "the hub knows {device}");
    }
    assert_eq!(hub.events("home-ok").len(), 2, "the control device's two events");
    let handshakes = refused_handshakes(&log) - before;
    let refusals: Vec<&str> = log.lines().filter(|l| l.contains("OpenSSL Error")).take(4).collect();
    println!("S1 broker refusals (first lines): {refusals:#?}");
    println!(
        "S1 figures: {handshakes} handshakes refused by Mosquitto in {:.1} s; home-ok (valid): 2 accepted, 2 stored; {}",
        started.elapsed().as_secs_f64(),
        figures.join("; ")
    );
}
