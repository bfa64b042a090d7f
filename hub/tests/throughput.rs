//! Ingest throughput through the embedded broker into SQLite, publishers on the same machine.
//! Ignored by default (slow in debug builds); run it with
//! `cargo test --release -p vaka-hub --test throughput -- --ignored --nocapture`
//! (`VAKA_BENCH_EVENTS` sets the number of events, default 40 000).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn hub_stores_and_acks_tens_of_thousands_of_events_per_second() {
    let total: usize = std::env::var("VAKA_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40_000);
    let devices = 20;
    let per_device = total / devices;
    let dir = tempfile::tempdir().unwrap();
    let hub = start(config(&dir.path().join("hub.db"), Duration::from_secs(180))).await;
    let broker = hub.embedded_broker_addr().unwrap();
    let web = hub.http_addr();

    // Encode everything first so the measurement is the hub's work, not ours.
    let payloads: Vec<Vec<Vec<u8>>> = (0..devices)
        .map(|d| {
            (1..=per_device as u64)
                .map(|seq| envelope(&format!("bench-{d}"), seq).encode())
                .collect()
        })
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (d, payloads) in payloads.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let id = format!("bench-{d}");
            let mut o = MqttOptions::new(format!("s-{id}"), broker.ip().to_string(), broker.port());
            o.set_inflight(500);
            o.set_keep_alive(Duration::from_secs(30));
            let (client, mut el) = AsyncClient::new(o, 4096);
            client
                .subscribe(format!("vaka/v1/s/{id}/acks"), QoS::AtLeastOnce)
                .await
                .unwrap();
            let topic = format!("vaka/v1/s/{id}/events");
            let n = payloads.len();
            let sender = tokio::spawn(async move {
                for p in payloads {
                    client
                        .publish(&topic, QoS::AtLeastOnce, false, p)
                        .await
                        .unwrap();
                }
                client
            });
            // Count committed seqs in acks until all are acked.
            let mut acked = 0usize;
            while acked < n {
                if let Event::Incoming(Packet::Publish(p)) = el.poll().await.unwrap() {
                    acked += vaka_protocol::Ack::decode(&p.payload)
                        .unwrap()
                        .committed
                        .len();
                }
            }
            let _client = sender.await.unwrap();
            acked
        }));
    }
    let mut acked = 0;
    for t in tasks {
        acked += tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("bench timed out")
            .unwrap();
    }
    let elapsed = started.elapsed();
    let stats = api(web, "/api/v1/stats").await;
    let n = (per_device * devices) as f64;
    println!(
        "throughput: {} events from {devices} devices stored and acked in {:.2} s = {:.0} events/s; {} commits ({:.0} events/commit); stats {stats}",
        per_device * devices,
        elapsed.as_secs_f64(),
        n / elapsed.as_secs_f64(),
        stats["commits"],
        n / stats["commits"].as_f64().unwrap_or(1.0),
    );
    assert_eq!(acked, per_device * devices);
    assert_eq!(
        stats["stored"].as_u64(),
        Some((per_device * devices) as u64)
    );
    hub.stop().await;
}
