//! Scale-out benchmarks (issue 8): several hubs on one broker and one PostgreSQL, and one hub
//! under 10,000 simulated devices.

use super::{alarm_latency, mosquitto_version, publish_positions, status_mb};
use anyhow::{anyhow, Result};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vaka_e2e::load::{self, LoadOpts, Progress};
use vaka_e2e::*;

/// Devices the ingest publisher spreads its events over.
const INGEST_DEVICES: usize = 1_000;

/// How the hubs keep their events.
#[derive(Clone, Copy, PartialEq)]
enum Store {
    /// Each hub its own SQLite file, no shared group: the single-hub setup.
    Sqlite,
    /// One SQLite file that every hub opens, with a shared group.
    SharedSqlite,
    /// One fresh PostgreSQL database, with a shared group.
    Postgres,
}

/// Receives `n` events with a raw `mosquitto_sub` (a live, clean session) while the publisher
/// sends them; seconds from the first publish to the last message received.
fn raw_consumer(port: u16, n: usize, prefix: &str) -> Result<f64> {
    // Line-buffered, so that its SUBACK line arrives before the stream starts.
    let mut sub = Command::new("stdbuf")
        .args(["-oL", "mosquitto_sub"])
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-d"])
        .args([
            "-t",
            "vaka/v1/+/+/events",
            "-C",
            &n.to_string(),
            "-W",
            "300",
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = sub
        .stdout
        .take()
        .ok_or_else(|| anyhow!("mosquitto_sub has no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut got = 0usize;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("SUBACK") {
                let _ = tx.send(());
            } else if line.starts_with('{') {
                got += 1;
            }
        }
        got
    });
    rx.recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow!("mosquitto_sub did not subscribe"))?;
    let started = Instant::now();
    publish_positions(port, n, INGEST_DEVICES, prefix, 1)?;
    sub.wait()?;
    let secs = started.elapsed().as_secs_f64();
    let got = reader.join().map_err(|_| anyhow!("reader panicked"))?;
    if got < n {
        return Err(anyhow!("mosquitto_sub received only {got} of {n}"));
    }
    Ok(secs)
}

/// Starts `count` hubs on `mosquitto` (sharing the ingest when `count` > 1 or on PostgreSQL),
/// publishes `n` events, and returns seconds from the first publish until all are stored.
fn hubs_consumer(
    dir: &Path,
    mosquitto: &Mosquitto,
    store: Store,
    count: usize,
    n: usize,
    prefix: &str,
) -> Result<f64> {
    let db = (store == Store::Postgres).then(PgDb::create);
    let shared = store != Store::Sqlite;
    let mut hubs: Vec<Hub> = Vec::new();
    for i in 0..count {
        let first_file = (store == Store::SharedSqlite)
            .then(|| hubs.first().map(|h: &Hub| h.db.clone()))
            .flatten();
        hubs.push(Hub::start(
            &dir.join(format!("{prefix}-hub-{i}")),
            HubOpts {
                external: Some(mosquitto.broker(None)),
                client_id: Some(format!("vaka-hub-{prefix}-{i}")),
                shared_group: shared.then(|| "vaka-bench".to_string()),
                database_url: db.as_ref().map(|db| db.url.clone()),
                db: first_file,
                ..HubOpts::default()
            },
        ));
    }
    // The stream starts once every hub has its MQTT session (a clean session would miss what
    // came before), plus a moment for the subscriptions that follow the ConnAck.
    for hub in &hubs {
        wait_until(Duration::from_secs(30), "the hub's MQTT session", || {
            strip_ansi(&hub.proc.log_text())
                .contains("MQTT connected")
                .then_some(())
        });
    }
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let publisher = {
        let (port, prefix) = (mosquitto.port, prefix.to_string());
        std::thread::spawn(move || publish_positions(port, n, INGEST_DEVICES, &prefix, 1))
    };
    let stored = |h: &Hub| {
        h.try_get("/api/v1/stats")
            .and_then(|s| s["stored"].as_u64())
            .unwrap_or(0) as usize
    };
    wait_until(
        Duration::from_secs(600),
        "the hubs to store every event",
        || (hubs.iter().map(stored).sum::<usize>() >= n).then_some(()),
    );
    let secs = started.elapsed().as_secs_f64();
    publisher
        .join()
        .map_err(|_| anyhow!("publisher panicked"))??;
    let shares: Vec<usize> = hubs.iter().map(stored).collect();
    eprintln!("{prefix}: {count} hub(s) stored {shares:?} in {secs:.2} s");
    Ok(secs)
}

/// `postgres`: also the rows on PostgreSQL (needs a hub built with PostgreSQL support and the
/// server on 127.0.0.1:5432).
pub fn ingest(dir: &Path, n: usize, postgres: bool) -> Result<String> {
    let mosquitto = Mosquitto::start(dir, None);
    let mut rows = String::new();
    let mut run = |label: &str, store: Store, count: usize, prefix: &str| -> Result<()> {
        let raw = raw_consumer(mosquitto.port, n, &format!("{prefix}r"))?;
        let hub = hubs_consumer(dir, &mosquitto, store, count, n, prefix)?;
        let (raw_rate, hub_rate) = (n as f64 / raw, n as f64 / hub);
        rows += &format!(
            "| {label} | {hub:.2} s | {hub_rate:.0} events/s | {raw_rate:.0} events/s | {:.2} |\n",
            hub_rate / raw_rate
        );
        Ok(())
    };
    for count in 1..=3 {
        let label = format!("{count} hub(s), one shared SQLite file, shared group");
        run(&label, Store::SharedSqlite, count, &format!("f{count}"))?;
    }
    if postgres {
        for count in 1..=3 {
            let label = format!("{count} hub(s), PostgreSQL, shared group");
            run(&label, Store::Postgres, count, &format!("p{count}"))?;
        }
    }
    // Last: its persistent session stays queued at the broker after the hub is gone.
    run(
        "1 hub, its own SQLite file (no shared group)",
        Store::Sqlite,
        1,
        "s1",
    )?;
    Ok(format!(
        "## Scale-out: live ingest rate with 1, 2 and 3 hubs\n\n{n} envelopes (positions) from {INGEST_DEVICES} devices, published with QoS 1 by one \
client as fast as Mosquitto {} takes them, while the consumers are connected. Each row: the hubs' time from the first publish until \
every event is stored (committed, then acked), and right before it in the same run the same publisher's stream to a raw \
`mosquitto_sub` (the ceiling: receive only).\n\n\
| consumer | time | rate | raw `mosquitto_sub`, same run | hubs / raw |\n|---|---|---|---|---|\n{rows}\n",
        mosquitto_version()
    ))
}

pub fn latency(dir: &Path, devices: usize, speed: f64, count: usize) -> Result<String> {
    let mosquitto = Mosquitto::start(dir, None);
    let hub = Hub::start(
        dir,
        HubOpts {
            external: Some(mosquitto.broker(None)),
            ..HubOpts::default()
        },
    );
    let hub_pid = hub.proc.pid().ok_or_else(|| anyhow!("hub not running"))?;
    let idle_rss = status_mb(hub_pid, "VmRSS:")?;
    let agent = Agent::start(dir, AgentOpts::new("bench-latency", mosquitto.broker(None)));

    let progress = Arc::new(Progress::default());
    let opts = LoadOpts {
        port: mosquitto.port,
        devices,
        events: 50_000_000,
        duration: Duration::from_secs(600),
        speed,
        heartbeat: Duration::from_secs(60),
        ack_timeout: Duration::from_secs(30),
        connect_rate: 1000.0,
        prefix: "bg".into(),
        ..LoadOpts::default()
    };
    let background = {
        let progress = progress.clone();
        std::thread::spawn(move || -> Result<load::Summary> {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            Ok(rt.block_on(load::run_with(opts, progress))?)
        })
    };
    wait_until(
        Duration::from_secs(120),
        "every background device to connect",
        || (progress.connected.load(Relaxed) as usize >= devices).then_some(()),
    );
    // Steady state: every device has sent its first events and heartbeat.
    std::thread::sleep(Duration::from_secs(10));
    let acked_before = progress.acked.load(Relaxed);
    let window = Instant::now();
    let (p50, p99, max) = alarm_latency(&hub, &agent, count)?;
    let background_rate =
        (progress.acked.load(Relaxed) - acked_before) as f64 / window.elapsed().as_secs_f64();
    let rss = status_mb(hub_pid, "VmRSS:")?;
    let peak = status_mb(hub_pid, "VmHWM:")?;
    let broker_rss = mosquitto
        .proc
        .pid()
        .map(|p| status_mb(p, "VmRSS:"))
        .transpose()?
        .unwrap_or(0.0);
    progress.stop.store(true, Relaxed);
    let summary = background
        .join()
        .map_err(|_| anyhow!("load generator panicked"))??;
    let devices_at_hub = match hub.try_get("/api/v1/devices") {
        Some(serde_json::Value::Array(a)) => a.len(),
        _ => 0,
    };
    Ok(format!(
        "## Scale-out: alarm latency and hub memory under 10,000 devices\n\n\
One `vaka-hub` (SQLite) on Mosquitto; the load generator keeps {devices} simulated devices connected (one MQTT connection \
each) sending a night at {speed} × real time (positions, camera-check results, doses, some alarms; heartbeats every 60 s): \
**{background_rate:.0} events/s** acked during the measurement ({} events in all, {} resent). Meanwhile {count} `test_alarm` events \
from a real `vaka-agent`, one every ~20 ms, as in the section above. The hub knew {devices_at_hub} devices.\n\n\
| alarm latency p50 | p99 | max | hub RSS before the devices | hub RSS with {devices} devices | hub peak RSS (VmHWM) | Mosquitto RSS |\n|---|---|---|---|---|---|---|\n\
| {p50:.1} ms | {p99:.1} ms | {max:.1} ms | {idle_rss:.1} MB | {rss:.1} MB | {peak:.1} MB | {broker_rss:.1} MB |\n\nGoal: p99 ≤ 50 ms.\n\n",
        summary.acked,
        summary.resent,
    ))
}
