//! The hub against a real Mosquitto (a private one on a free port): reconnect and resubscribe
//! after the broker restarts, and events queued for the hub's persistent session while the hub
//! was away. Needs the `mosquitto` binary (scripts/test installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use vaka_agent::link::MqttLink;
use vaka_hub::BrokerConfig;

struct Mosquitto {
    child: Child,
}

impl Mosquitto {
    fn start(dir: &std::path::Path, port: u16) -> Mosquitto {
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
        )
        .unwrap();
        let bin = [
            "/usr/sbin/mosquitto",
            "/usr/bin/mosquitto",
            "/usr/local/sbin/mosquitto",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("mosquitto");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (scripts/test installs it)");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Mosquitto { child }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_resubscribes_after_mosquitto_restarts_and_gets_what_was_queued_while_it_was_away() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker_addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut mosquitto = Mosquitto::start(dir.path(), port);
    let db = dir.path().join("hub.db");
    let mut cfg = config(&db, Duration::from_secs(180));
    cfg.broker = BrokerConfig::External {
        link: MqttLink::plaintext("127.0.0.1", port),
        client_id: format!("vaka-hub-test-{port}"),
        shared_group: None,
    };

    let hub = start(cfg.clone()).await;
    let mut dev = Device::connect(broker_addr, "skelleftea", "home-7", None).await;
    dev.publish("events", envelope("home-7", 1).encode(), false)
        .await;
    assert_eq!(dev.next_ack().await.committed, vec![1]);

    // The broker restarts (losing its in-memory sessions): the hub reconnects and subscribes
    // again on its own.
    drop(dev);
    drop(mosquitto);
    wait_until(
        "hub notices the broker is gone",
        Duration::from_secs(10),
        || async { !hub.stats().mqtt_connected },
    )
    .await;
    mosquitto = Mosquitto::start(dir.path(), port);
    wait_until("hub resubscribed", Duration::from_secs(15), || async {
        hub.stats().mqtt_subscribed
    })
    .await;
    let mut dev = Device::connect(broker_addr, "skelleftea", "home-7", None).await;
    dev.publish("events", envelope("home-7", 2).encode(), false)
        .await;
    assert_eq!(dev.next_ack().await.committed, vec![2]);

    // The hub stops; Mosquitto queues for its persistent session; the next hub gets it.
    hub.stop().await;
    dev.publish("events", envelope("home-7", 3).encode(), false)
        .await;
    dev.flush(Duration::from_millis(300)).await;
    let hub = start(cfg).await;
    assert_eq!(dev.next_ack().await.committed, vec![3]);
    let seqs: Vec<u64> = api(hub.http_addr(), "/api/v1/events?device=home-7")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![3, 2, 1]);
    hub.stop().await;
    drop(mosquitto);
}
