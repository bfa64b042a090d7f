//! Issue 8, acceptance 2: two hubs on one broker and one database; the leader (the hub that
//! holds the scheduler lease and runs the round) is killed with SIGKILL mid-night.
//!
//! A real Mosquitto; both hubs subscribe through one shared group (`mqtt.shared_group`), so
//! each ingests part of every device's traffic; they share one database (SQLite in WAL mode
//! across processes here; PostgreSQL when the harness gets `VAKA_TEST_DATABASE=postgres`).
//! Twelve homes with a real `vaka-agent` (simulated camera) have 36 camera checks in a short
//! simulated night (22:00-23:30 at 60×, so a round-minute is a real second).
//!
//! Asserted: exactly one hub leads before the kill; the other holds the lease within 30 s of
//! the kill (measured, printed); every planned check has exactly one outcome, none missed, no
//! camera check id twice; the checks that fell due during the fail-over ran after it.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use vaka_e2e::*;

const SPEED: f64 = 60.0;
const NIGHT: &str = "2026-11-23";
const NURSE: &str = "sjuk-sara-0123456789abcdef";
const STAFF: &str = "natt-anna-0123456789abcdef";
const HOMES: usize = 12;

fn home(i: usize) -> Value {
    let device = format!("home-{i:03}");
    let times = [
        format!("22:{:02}", 10 + i),
        format!("22:{:02}", 35 + i),
        format!("23:{:02}", 5 + i),
    ];
    json!({
        "id": format!("person-{i:03}"),
        "name": format!("Person {i}"),
        "address": format!("Gatan {i}"),
        "position": {"lat": 64.75 + i as f64 * 0.001, "lon": 20.95},
        "team": "centrum",
        "devices": [device],
        "camera_device": device,
        "checks": times.iter().map(|t| json!({"at": t, "method": "camera"})).collect::<Vec<_>>(),
        "consent": {"windows": ["21:30-06:30"], "record": {"given": "2026-09-14", "basis": "samtycke"}},
    })
}

const CAMERA: &str = "[camera]\nsource = \"simulator\"\nscenario = \"lying_still\"\nseed = 1\nframes = 3\nspan = \"1s\"\nwidth = 320\nheight = 240\n\n[camera.consent]\nwindows = [\"00:00-23:59\"]\n[camera.consent.record]\ngiven = 2026-09-14\nbasis = \"samtycke\"\n";

fn ts(v: &Value) -> jiff::Timestamp {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
}

fn leads(hub: &Hub) -> Option<bool> {
    hub.try_get("/api/v1/status")
        .and_then(|s| s["leader"]["is_leader"].as_bool())
}

#[test]
#[ignore = "slow: a simulated night with two hubs and 12 agent processes, about 2.5 minutes; scripts/test runs it on its own after the rest"]
fn the_leader_killed_mid_night_is_replaced_within_30_s_and_every_check_ends_exactly_once() {
    let dir = temp_dir("multi-hub");
    let mosquitto = Mosquitto::start(dir.path(), None);
    let mut agents = Vec::new();
    for i in 0..HOMES {
        let mut opts = AgentOpts::new(&format!("home-{i:03}"), mosquitto.broker(None));
        opts.extra = CAMERA.to_string();
        agents.push(Agent::start(dir.path(), opts));
    }
    let anchor = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(25);
    let start: jiff::Timestamp = "2026-11-23T21:59:00+01:00".parse().unwrap();
    let extra = format!(
        "[cameras]\ncheck_open = \"30s\"\n\n[[http.tokens]]\nname = \"anna\"\nrole = \"night_staff\"\ntoken = \"{STAFF}\"\n\n[[http.tokens]]\nname = \"sara\"\nrole = \"nurse\"\ntoken = \"{NURSE}\"\n\n[rounds]\nshift = \"22:00-23:30\"\nclose_after = \"20m\"\n[rounds.simulated_clock]\nstart = \"{start}\"\nanchor = \"{anchor}\"\nspeed = {SPEED}\n"
    );
    let opts = |name: &str, database: HubOpts| HubOpts {
        external: Some(mosquitto.broker(None)),
        supervision_interval: "30s".into(),
        extra: extra.clone(),
        client_id: Some(name.to_string()),
        shared_group: Some("vaka-hubs".into()),
        ..database
    };
    let a = Hub::start(&dir.path().join("a"), opts("hub-a", HubOpts::default()));
    let b = Hub::start(&dir.path().join("b"), opts("hub-b", a.same_database()));
    let mut hubs = [a, b];

    for i in 0..HOMES {
        let (status, body) = hubs[i % 2].send(
            "PUT",
            &format!("/api/v1/care/recipients/person-{i:03}"),
            NURSE,
            &home(i),
        );
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = hubs[0].send(
        "PUT",
        "/api/v1/care/patrols/bil-1",
        NURSE,
        &json!({"id": "bil-1", "team": "centrum", "name": "Bil 1", "start": {"lat": 64.75, "lon": 20.95}, "end": {"lat": 64.75, "lon": 20.95}, "shift_start": "21:45", "shift_end": "23:45"}),
    );
    assert_eq!(status, 200, "{body}");
    // Both hubs see every home online: presence is in the database, whichever hub heard it.
    for hub in &hubs {
        wait_until(
            Duration::from_secs(60),
            "every home online at each hub",
            || {
                let devices = hub.try_get("/api/v1/devices")?;
                (devices
                    .as_array()?
                    .iter()
                    .filter(|d| d["online"] == true)
                    .count()
                    == HOMES)
                    .then_some(())
            },
        );
    }
    let both: Vec<Option<bool>> = hubs.iter().map(leads).collect();
    assert_eq!(
        both.iter().filter(|l| **l == Some(true)).count(),
        1,
        "exactly one leader: {both:?}"
    );
    let leader = both.iter().position(|l| *l == Some(true)).unwrap();
    let other = 1 - leader;
    let round_time = |s: &str| -> jiff::Timestamp {
        format!("{s}[Europe/Stockholm]")
            .parse::<jiff::Zoned>()
            .unwrap()
            .timestamp()
    };

    // Kill the leader at 22:30 round time (while checks are due every round-minute).
    let kill_at = round_time("2026-11-23T22:30");
    let end = round_time("2026-11-23T23:50");
    let deadline = Instant::now() + Duration::from_secs(400);
    let mut killed: Option<(Instant, jiff::Timestamp)> = None;
    let mut takeover: Option<(Duration, jiff::Timestamp)> = None;
    loop {
        assert!(Instant::now() < deadline, "the night did not end in time");
        let serving = if killed.is_some() { other } else { leader };
        let Some(current) = hubs[serving].try_get("/api/v1/rounds/current") else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let t = ts(&current["now"]);
        if killed.is_none() && t >= kill_at {
            hubs[leader].proc.kill9();
            killed = Some((Instant::now(), t));
            continue;
        }
        if let (Some((at, _)), None) = (killed, takeover) {
            if leads(&hubs[other]) == Some(true) {
                takeover = Some((at.elapsed(), t));
            }
        }
        if t >= end {
            break;
        }
        // The night staff, on whichever hub serves them: a snapshot the camera could not
        // judge is found well; a visit is recorded when its planned arrival comes.
        for c in current["checks"].as_array().unwrap() {
            let id = c["id"].as_str().unwrap();
            let (path, body) = match c["state"].as_str() {
                Some("awaiting_staff") => (
                    "decision",
                    json!({"well": true, "note": "tittade på bilden"}),
                ),
                Some("visit")
                    if c["visit"]["planned_arrival"]
                        .as_str()
                        .is_some_and(|a| ts(&json!(a)) <= t) =>
                {
                    ("outcome", json!({"outcome": "checked_by_visit"}))
                }
                _ => continue,
            };
            let (status, body) = hubs[serving].send(
                "POST",
                &format!("/api/v1/rounds/checks/{id}/{path}"),
                STAFF,
                &body,
            );
            assert!(status == 200 || status == 409, "{status} {body}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, killed_round) = killed.expect("the leader was killed");
    let (took, took_round) = takeover.expect("the other hub took over");
    assert!(took < Duration::from_secs(30), "takeover took {took:?}");
    let status = hubs[other].get("/api/v1/status");
    assert_eq!(
        status["leader"]["holder"],
        if other == 0 { "hub-a" } else { "hub-b" },
        "{status}"
    );

    let round = wait_until(Duration::from_secs(60), "every check to end", || {
        let r = hubs[other].try_get(&format!("/api/v1/rounds/{NIGHT}"))?;
        r["checks"]
            .as_array()?
            .iter()
            .all(|c| c["state"] == "done")
            .then_some(r)
    });
    let checks = round["checks"].as_array().unwrap();
    assert_eq!(checks.len(), HOMES * 3);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut camera_ids = BTreeSet::new();
    let mut during_failover = 0;
    for c in checks {
        let id = c["id"].as_str().unwrap();
        let outcome = c["outcome"]["outcome"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} has no outcome: {c}"));
        *outcomes.entry(outcome.to_string()).or_default() += 1;
        let ends = c["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["what"].as_str().unwrap().starts_with("outcome"))
            .count();
        assert_eq!(ends, 1, "{id} ended {ends} times: {c}");
        for a in c["attempts"].as_array().unwrap() {
            assert!(
                camera_ids.insert(a["camera_check"].as_str().unwrap().to_string()),
                "{id}: a camera check id twice: {c}"
            );
        }
        let planned = ts(&c["planned_at"]);
        if planned > killed_round && planned < took_round {
            during_failover += 1;
            let sent = c["attempts"][0]["sent_at"]
                .as_str()
                .map(|s| s.parse::<jiff::Timestamp>().unwrap());
            assert!(
                sent.is_some_and(|s| s >= took_round - jiff::SignedDuration::from_mins(1)),
                "{id} fell due during the fail-over, sent {sent:?}: {c}"
            );
        }
    }
    println!(
        "fail-over: leader hub-{} killed at round time {killed_round}; hub-{} leader after {:.1} s real ({} round-minutes); checks due meanwhile: {during_failover}; outcomes: {outcomes:?}",
        if leader == 0 { 'a' } else { 'b' },
        if other == 0 { 'a' } else { 'b' },
        took.as_secs_f64(),
        took_round.duration_since(killed_round).as_mins()
    );
    assert_eq!(outcomes.get("missed"), None, "{outcomes:?}");
    assert!(
        during_failover >= 3,
        "checks due during the fail-over: {during_failover}"
    );
    drop(agents);
}

fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// Logs `name` in through hub's form, as a browser does; returns the session cookie's value.
fn login(hub: &Hub, name: &str, password: &str) -> String {
    let base = format!("http://127.0.0.1:{}", hub.http_port);
    let mut form = http()
        .get(&format!("{base}/login"))
        .call()
        .unwrap_or_else(|e| panic!("{e}"));
    let cookie = |r: &ureq::http::Response<ureq::Body>, name: &str| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| {
                c.strip_prefix(&format!("{name}="))?
                    .split(';')
                    .next()
                    .map(str::to_string)
            })
    };
    let login_cookie =
        cookie(&form, "vaka_login").unwrap_or_else(|| panic!("no login-form cookie"));
    let html = form.body_mut().read_to_string().unwrap_or_default();
    let csrf = html
        .split("name=\"login_csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string();
    let done = http()
        .post(&format!("{base}/login"))
        .header("Cookie", &format!("vaka_login={login_cookie}"))
        .send_form([
            ("name", name),
            ("password", password),
            ("login_csrf", csrf.as_str()),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done.status().as_u16(), 303, "login failed");
    cookie(&done, "vaka_session").unwrap_or_else(|| panic!("no session cookie"))
}

#[test]
fn a_session_from_one_hub_works_on_the_other_and_each_hub_streams_what_the_other_ingested() {
    let dir = temp_dir("multi-console");
    let mosquitto = Mosquitto::start(dir.path(), None);
    let opts = |name: &str, database: HubOpts| HubOpts {
        external: Some(mosquitto.broker(None)),
        client_id: Some(name.to_string()),
        shared_group: Some("vaka-hubs".into()),
        ..database
    };
    let a = Hub::start(&dir.path().join("a"), opts("hub-a", HubOpts::default()));
    let b = Hub::start(&dir.path().join("b"), opts("hub-b", a.same_database()));

    // Logged in on A, the same cookie is a session on B.
    let (status, body) = a.send(
        "PUT",
        "/api/v1/users/anna",
        &a.token,
        &json!({"role": "night_staff", "teams": ["centrum"], "password": "natt-lösen-2026"}),
    );
    assert_eq!(status, 200, "{body}");
    let session = login(&a, "anna", "natt-lösen-2026");
    let on_b = http()
        .get(&format!("http://127.0.0.1:{}/api/v1/devices", b.http_port))
        .header("Cookie", &format!("vaka_session={session}"))
        .call()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(on_b.status().as_u16(), 200, "hub B refused hub A's session");
    let refused = http()
        .get(&format!("http://127.0.0.1:{}/api/v1/devices", b.http_port))
        .header("Cookie", "vaka_session=forged")
        .call()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(
        refused.status().as_u16(),
        200,
        "a forged session must not pass"
    );

    // Live streams on both hubs; ten alarms, which the broker spreads over the two hubs.
    let (tx, rx) = std::sync::mpsc::channel::<(usize, String)>();
    for (i, hub) in [&a, &b].into_iter().enumerate() {
        let url = format!("http://127.0.0.1:{}/api/v1/stream", hub.http_port);
        let token = hub.token.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let resp = http()
                .get(&url)
                .header("Authorization", &format!("Bearer {token}"))
                .call()
                .unwrap_or_else(|e| panic!("{e}"));
            let mut event = String::new();
            for line in std::io::BufReader::new(resp.into_body().into_reader()).lines() {
                let Ok(line) = line else { return };
                if let Some(name) = line.strip_prefix("event: ") {
                    event = name.to_string();
                } else if let Some(data) = line.strip_prefix("data: ") {
                    if event == "event" && tx.send((i, data.to_string())).is_err() {
                        return;
                    }
                }
            }
        });
    }
    std::thread::sleep(Duration::from_secs(1));
    let agent = Agent::start(
        dir.path(),
        AgentOpts::new("home-001", mosquitto.broker(None)),
    );
    let mut intake = agent.intake();
    for i in 0..10 {
        intake.accept(&format!(
            r#"{{"kind":"test_alarm","body":{{"note":"alarm {i}"}}}}"#
        ));
    }
    let mut seen: [BTreeMap<String, usize>; 2] = [BTreeMap::new(), BTreeMap::new()];
    let until = Instant::now() + Duration::from_secs(30);
    while seen.iter().any(|s| s.len() < 10) && Instant::now() < until {
        if let Ok((hub, data)) = rx.recv_timeout(Duration::from_millis(200)) {
            let e: Value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
            *seen[hub]
                .entry(e["id"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
        }
    }
    // Anything late (a duplicate) would come within a moment.
    while let Ok((hub, data)) = rx.recv_timeout(Duration::from_millis(1500)) {
        let e: Value = serde_json::from_str(&data).unwrap_or_default();
        *seen[hub]
            .entry(e["id"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    let (sa, sb) = (a.get("/api/v1/stats"), b.get("/api/v1/stats"));
    let (stored_a, stored_b) = (
        sa["stored"].as_u64().unwrap(),
        sb["stored"].as_u64().unwrap(),
    );
    println!(
        "stored by hub A: {stored_a}, by hub B: {stored_b}; streamed on A: {}, on B: {}",
        seen[0].len(),
        seen[1].len()
    );
    assert_eq!(stored_a + stored_b, 10, "{sa} {sb}");
    assert!(
        stored_a > 0 && stored_b > 0,
        "the shared group gave every event to one hub: A {stored_a}, B {stored_b}"
    );
    for (hub, s) in seen.iter().enumerate() {
        assert_eq!(
            s.len(),
            10,
            "hub {hub} streamed {} of the 10 alarms: {s:?}",
            s.len()
        );
        assert!(
            s.values().all(|n| *n == 1),
            "hub {hub} streamed an alarm twice: {s:?}"
        );
    }
    assert_eq!(a.events("home-001").len(), 10);
}
