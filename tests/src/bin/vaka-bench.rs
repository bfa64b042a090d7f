//! Vaka's benchmarks, each next to its ceiling in the same run. Loopback only, bounded in
//! count and time; writes a Markdown report to stdout (BENCHMARKS.md is made from it).
//!
//! ```text
//! VAKA_PROFILE=release cargo run --release -p vaka-e2e --bin vaka-bench -- [--events N] [--only ingest|latency|rss|camera]
//! ```
//!
//! 1. Durable ingest rate: N envelopes from 100 devices wait in a real Mosquitto for a
//!    persistent session; then the consumer connects and drains them. Measured for a raw
//!    `mosquitto_sub` and for `vaka-hub` (decode, validate, SQLite commit with fsync, ack).
//! 2. Alarm latency agent → hub: a real `vaka-agent` accepts an alarm on its intake socket
//!    (fsync), sends it through Mosquitto; the hub stores it (fsync) and announces it on its
//!    server-sent event stream, where this program sees it. p50/p99 over 500 alarms.
//! 3. Agent idle RSS after it has connected and settled.
//! 4. Agent peak RSS over ten camera checks at 640×480 (simulated camera: frames rendered in
//!    the agent), asked by hub commands, with one snapshot.
//! 5. Scale-out (issue 8), `--only scale-ingest [--postgres]`: live ingest rate of one hub on
//!    its own SQLite file, and of 1, 2 and 3 hubs sharing one Mosquitto (shared subscription)
//!    and one SQLite file (with `--postgres` also one PostgreSQL database), each next to a raw
//!    `mosquitto_sub` receiving the same publisher's stream in the same run.
//! 6. Scale-out, `--only scale-latency`: alarm latency agent → hub SSE and the hub's memory
//!    while the load generator (`vaka_e2e::load`) keeps 10,000 simulated devices connected and
//!    sending a compressed night (`--bg-speed`, default 60 × real time).

use anyhow::{anyhow, Context, Result};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::{Duration, Instant};
use vaka_e2e::*;
use vaka_protocol::kinds::{EventBody, Position};
use vaka_protocol::{DeviceId, Envelope};

#[path = "vaka-bench/scale.rs"]
mod scale;

const DEVICES: usize = 100;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let events: usize = args
        .iter()
        .position(|a| a == "--events")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(200_000);
    let arg = |name: &str| -> Result<Option<usize>> {
        Ok(args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(|n| n.parse()).transpose()?)
    };
    let dir = temp_dir("bench");
    let mut report = String::new();
    report += &format!(
        "Run: {} UTC on {} ({} cores), release build.\n\n",
        jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M"),
        std::fs::read_to_string("/proc/cpuinfo")?
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .unwrap_or("unknown CPU")
            .trim(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).map(String::as_str);
    let wanted = |name: &str| only.is_none_or(|o| o == name);
    if wanted("ingest") {
        report += &ingest(dir.path(), events)?;
    }
    if wanted("latency") {
        report += &latency(dir.path(), 500)?;
    }
    if wanted("rss") {
        report += &idle_rss(dir.path())?;
    }
    if wanted("camera") {
        report += &camera_rss(dir.path())?;
    }
    let scale_events = arg("--scale-events")?.unwrap_or(100_000);
    if wanted("scale-ingest") {
        report += &scale::ingest(dir.path(), scale_events, args.iter().any(|a| a == "--postgres"))?;
    }
    if wanted("scale-latency") {
        let devices = arg("--bg-devices")?.unwrap_or(10_000);
        let speed = arg("--bg-speed")?.unwrap_or(60) as f64;
        report += &scale::latency(dir.path(), devices, speed, 500)?;
    }
    println!("{report}");
    Ok(())
}

/// Publishes `n` valid envelopes (positions) spread over `DEVICES` devices with QoS 1.
fn publish_backlog(port: u16, n: usize, first_seq: u64) -> Result<()> {
    publish_positions(port, n, DEVICES, "bench", first_seq)
}

/// Publishes `n` valid envelopes (positions) spread over `devices` devices named
/// `{prefix}-NNN`, seqs from `first_seq`, with QoS 1; returns when every PUBACK is back.
fn publish_positions(port: u16, n: usize, devices: usize, prefix: &str, first_seq: u64) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let prefix = prefix.to_string();
    rt.block_on(async move {
        let mut options = MqttOptions::new(format!("{prefix}-pub-{first_seq}"), "127.0.0.1", port);
        options.set_inflight(1000).set_request_channel_capacity(10_000);
        let (client, mut eventloop) = AsyncClient::new(options, 10_000);
        let publisher = tokio::spawn(async move {
            let ids: Vec<DeviceId> =
                (0..devices).map(|d| DeviceId::new(format!("{prefix}-{d:03}"))).collect::<Result<_, _>>()?;
            for i in 0..n {
                let device = &ids[i % devices];
                let seq = first_seq + (i / devices) as u64;
                let body = EventBody::Position(Position { lat: 64.75, lon: 20.95, accuracy_m: Some(5.0), speed_mps: None });
                let e = Envelope::new(device.clone(), seq, uuid::Uuid::now_v7(), jiff::Timestamp::now(), body);
                client.publish(format!("vaka/v1/bench/{device}/events"), QoS::AtLeastOnce, false, e.encode()).await?;
            }
            anyhow::Ok(client)
        });
        // Every envelope is in the broker once its PUBACK is back.
        let mut acked = 0usize;
        while acked < n {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => return Err(anyhow!("publisher lost the broker after {acked} of {n}: {e}")),
            }
        }
        let client = publisher.await??;
        client.try_disconnect()?;
        let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
        Ok(())
    })
}

fn ingest(dir: &std::path::Path, n: usize) -> Result<String> {
    let mosquitto = Mosquitto::start(dir, None);
    let port = mosquitto.port.to_string();
    let sub_args = ["-h", "127.0.0.1", "-p", port.as_str(), "-q", "1", "-c", "-i", "bench-raw", "-t", "vaka/v1/+/+/events"];

    // Raw consumer: register its persistent session, queue the backlog, time the drain.
    Command::new("mosquitto_sub").args(sub_args).args(["-C", "1", "-W", "1"]).output()?;
    publish_backlog(mosquitto.port, n, 1)?;
    let started = Instant::now();
    let out = Command::new("mosquitto_sub").args(sub_args).args(["-C", &n.to_string(), "-W", "300"]).output()?;
    let raw_secs = started.elapsed().as_secs_f64();
    let got = out.stdout.iter().filter(|b| **b == b'\n').count();
    if got < n {
        return Err(anyhow!("mosquitto_sub received only {got} of {n}"));
    }

    // The hub: same broker, same backlog size, queued while the hub is stopped.
    let mut hub = Hub::start(dir, HubOpts { external: Some(mosquitto.broker(None)), ..HubOpts::default() });
    hub.proc.terminate();
    publish_backlog(mosquitto.port, n, 1_000_000)?;
    let started = Instant::now();
    hub.start_again();
    let stored = wait_until(Duration::from_secs(600), "the hub to store the backlog", || {
        let s = hub.try_get("/api/v1/stats")?;
        let stored = s["stored"].as_u64()? as usize;
        (stored >= n).then_some(stored)
    });
    let hub_secs = started.elapsed().as_secs_f64();
    let raw_rate = n as f64 / raw_secs;
    let hub_rate = stored as f64 / hub_secs;
    Ok(format!(
        "## Durable ingest rate\n\n{n} envelopes from {DEVICES} devices queued in Mosquitto {} for the consumer's persistent session, then drained.\n\n\
| consumer | time | rate |\n|---|---|---|\n\
| raw `mosquitto_sub` (ceiling: receive only) | {raw_secs:.2} s | {raw_rate:.0} events/s |\n\
| `vaka-hub` (decode, validate, SQLite commit with fsync, ack after commit) | {hub_secs:.2} s (incl. start-up) | {hub_rate:.0} events/s |\n\n\
Hub / raw: **{:.2}** (goal ≥ 0.5; goal ≥ 20,000 events/s).\n\n",
        mosquitto_version(),
        hub_rate / raw_rate
    ))
}

fn mosquitto_version() -> String {
    Command::new("mosquitto")
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(|l| l.replace("mosquitto version ", "")))
        .unwrap_or_default()
}

fn latency(dir: &std::path::Path, count: usize) -> Result<String> {
    let mosquitto = Mosquitto::start(dir, None);
    let hub = Hub::start(dir, HubOpts { external: Some(mosquitto.broker(None)), ..HubOpts::default() });
    let agent = Agent::start(dir, AgentOpts::new("bench-latency", mosquitto.broker(None)));
    let (p50, p99, max) = alarm_latency(&hub, &agent, count)?;
    Ok(format!(
        "## Alarm latency agent → hub\n\n{count} `test_alarm` events, one every ~20 ms, from the agent's intake socket (accepted after fsync) through Mosquitto to the hub (stored after fsync) and out on its SSE stream.\n\n\
| p50 | p99 | max |\n|---|---|---|\n| {p50:.1} ms | {p99:.1} ms | {max:.1} ms |\n\nGoal: p99 ≤ 50 ms.\n\n"
    ))
}

/// Sends `count` test alarms through `agent`'s intake, one every ~20 ms, each after the
/// previous one showed on `hub`'s SSE stream; returns p50, p99 and max in milliseconds.
fn alarm_latency(hub: &Hub, agent: &Agent, count: usize) -> Result<(f64, f64, f64)> {
    let url = format!("http://127.0.0.1:{}/api/v1/stream", hub.http_port);
    let resp = ureq::get(&url).header("Authorization", &format!("Bearer {}", hub.token)).call()?;
    let mut stream = BufReader::new(resp.into_body().into_reader());
    let mut intake = agent.intake();
    let mut samples = Vec::with_capacity(count);
    let mut line = String::new();
    for i in 0..count {
        let note = format!("latency probe {i}");
        let sent = Instant::now();
        intake.accept(&format!("{{\"kind\":\"test_alarm\",\"body\":{{\"note\":\"{note}\"}}}}"));
        loop {
            line.clear();
            if stream.read_line(&mut line).context("SSE stream ended")? == 0 {
                return Err(anyhow!("SSE stream closed"));
            }
            if line.starts_with("data:") && line.contains(&note) {
                break;
            }
        }
        samples.push(sent.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok((ms(pct(0.50)), ms(pct(0.99)), ms(pct(1.0))))
}

/// A field of `/proc/{pid}/status` in MB (`VmRSS:`, `VmHWM:`).
fn status_mb(pid: u32, name: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0)
}

fn camera_rss(dir: &std::path::Path) -> Result<String> {
    use vaka_protocol::{CheckId, Command as Cmd, CommandBody};
    const CHECKS: usize = 10;
    let mosquitto = Mosquitto::start(dir, None);
    let hub = Hub::start(dir, HubOpts { external: Some(mosquitto.broker(None)), ..HubOpts::default() });
    let now = jiff::Timestamp::now().in_tz("Europe/Stockholm")?;
    let at = |h: i64| -> Result<String> {
        Ok((now.clone() + jiff::SignedDuration::from_hours(h)).strftime("%H:%M").to_string())
    };
    let mut opts = AgentOpts::new("bench-cam", mosquitto.broker(None));
    opts.extra = format!(
        "[camera]\nsource = \"simulator\"\nwidth = 640\nheight = 480\nframes = 5\nspan = \"2s\"\n\n[camera.consent]\nwindows = [\"{}-{}\"]\n[camera.consent.record]\ngiven = 2026-09-14\nbasis = \"benchmark\"\n",
        at(-2)?,
        at(2)?
    );
    let agent = Agent::start(dir, opts);
    agent.intake().accept(r#"{"kind":"test_alarm","body":{"note":"warm-up"}}"#);
    wait_for_events(&hub, "bench-cam", 1, Duration::from_secs(30));
    let pid = agent.proc.pid().ok_or_else(|| anyhow!("agent not running"))?;
    let before = status_mb(pid, "VmHWM:")?;

    // The MQTT event loop runs on a worker thread while this thread waits for the hub.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let mut open_ms = Vec::new();
    runtime.block_on(async {
        let mut options = MqttOptions::new("bench-commander", "127.0.0.1", mosquitto.port);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
        for i in 0..=CHECKS {
            let id = CheckId::new(format!("bench-{i}"))?;
            let body = if i < CHECKS {
                CommandBody::CameraCheck {
                    check_id: id.clone(),
                    deadline: jiff::Timestamp::now() + jiff::SignedDuration::from_mins(5),
                }
            } else {
                CommandBody::Snapshot { check_id: CheckId::new(format!("bench-{}", CHECKS - 1))? }
            };
            let cmd = Cmd::new(uuid::Uuid::now_v7(), jiff::Timestamp::now(), body);
            client.publish("vaka/v1/testsite/bench-cam/cmd", QoS::AtLeastOnce, false, cmd.encode()).await?;
            if i == CHECKS {
                break;
            }
            let event = wait_until(Duration::from_secs(60), "the check's event", || {
                hub.events("bench-cam")
                    .into_iter()
                    .find(|e| e["kind"] == "camera_check" && e["body"]["check_id"] == id.as_str())
            });
            open_ms.push(event["body"]["duration_ms"].as_u64().unwrap_or(0));
        }
        anyhow::Ok(())
    })?;
    wait_until(Duration::from_secs(30), "the agent to send the snapshot", || {
        agent.proc.log_text().contains("Snapshot sent").then_some(())
    });
    let peak = status_mb(pid, "VmHWM:")?;
    let rss = status_mb(pid, "VmRSS:")?;
    let _ = &hub;
    Ok(format!(
        "## Agent memory during camera checks\n\n`vaka-agent` with the simulated camera at 640×480 \
(frames rendered inside the agent), 5 frames over 2 s per check; {CHECKS} checks asked by \
`camera_check` commands through Mosquitto, each answered and stored at the hub, then one \
snapshot. Camera open per check: {:?} ms.\n\n\
| peak RSS before the checks | peak RSS (VmHWM) after | RSS after |\n|---|---|---|\n| {before:.1} MB | {peak:.1} MB | {rss:.1} MB |\n\nGoal: ≤ 24 MB peak during a check.\n\n",
        open_ms
    ))
}

fn idle_rss(dir: &std::path::Path) -> Result<String> {
    let mosquitto = Mosquitto::start(dir, None);
    let _hub = Hub::start(dir, HubOpts { external: Some(mosquitto.broker(None)), ..HubOpts::default() });
    let agent = Agent::start(dir, AgentOpts::new("bench-idle", mosquitto.broker(None)));
    agent.intake().accept(r#"{"kind":"test_alarm","body":{"note":"warm-up"}}"#);
    std::thread::sleep(Duration::from_secs(10));
    let pid = agent.proc.pid().ok_or_else(|| anyhow!("agent not running"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    Ok(format!(
        "## Agent idle memory\n\n`vaka-agent` connected to Mosquitto, one event sent and acked, then 10 s idle.\n\n\
| RSS | peak RSS (VmHWM) |\n|---|---|\n| {:.1} MB | {:.1} MB |\n\nGoal: ≤ 8 MB.\n",
        field("VmRSS:"),
        field("VmHWM:")
    ))
}
