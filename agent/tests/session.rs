//! The agent in-process (`vaka_agent::run`) against a real Mosquitto on a free loopback port:
//! intake → outbox → MQTT, the hub's ack, commands, and a broker restart.
//!
//! Needs the `mosquitto` binary (`scripts/test` installs it).

// Test helpers may unwrap: a panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use vaka_agent::camera::config::CameraSettings;
use vaka_agent::camera::consent::Consent;
use vaka_agent::camera::synth::Scenario;
use vaka_agent::config::SimulatorSettings;
use vaka_protocol::kinds::Verdict;
use vaka_agent::link::MqttLink;
use vaka_agent::AgentConfig;
use vaka_protocol::{
    Ack, Command as Cmd, CommandBody, DeviceId, DeviceState, Envelope, SiteId, Status,
};

struct Mosquitto {
    child: Child,
    port: u16,
    conf: PathBuf,
}

impl Mosquitto {
    fn start(dir: &Path) -> Mosquitto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\n"))
            .unwrap();
        let mut m = Mosquitto { child: spawn_mosquitto(&conf), port, conf };
        m.wait_listening();
        m
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(300));
        self.child = spawn_mosquitto(&self.conf);
        self.wait_listening();
    }
}

fn spawn_mosquitto(conf: &Path) -> Child {
    let bin = ["/usr/sbin/mosquitto", "mosquitto"]
        .into_iter()
        .find(|b| Path::new(b).exists() || which(b))
        .unwrap_or("mosquitto");
    Command::new(bin)
        .arg("-c")
        .arg(conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start mosquitto (scripts/test installs it): {e}"))
}

fn which(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).exists()))
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test peer standing in for the hub.
struct Peer {
    client: AsyncClient,
    rx: tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
}

impl Peer {
    async fn connect(port: u16, filter: &str) -> Peer {
        let mut options =
            MqttOptions::new(format!("peer-{}", uuid::Uuid::now_v7()), "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, eventloop) = AsyncClient::new(options, 100);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(pump(eventloop, tx, subscribed_tx));
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), subscribed_rx).await.unwrap().unwrap();
        Peer { client, rx }
    }

    async fn next(&mut self, suffix: &str) -> Vec<u8> {
        loop {
            let (topic, payload) = tokio::time::timeout(Duration::from_secs(30), self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("nothing on *{suffix} within 30 s"))
                .unwrap();
            if topic.ends_with(suffix) {
                return payload;
            }
        }
    }
}

async fn pump(
    mut eventloop: EventLoop,
    tx: tokio::sync::mpsc::UnboundedSender<(String, Vec<u8>)>,
    subscribed: tokio::sync::oneshot::Sender<()>,
) {
    let mut subscribed = Some(subscribed);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                if let Some(s) = subscribed.take() {
                    let _ = s.send(());
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn config(dir: &Path, port: u16, device: &str) -> AgentConfig {
    let mut c = AgentConfig::new(
        DeviceId::new(device).unwrap(),
        SiteId::new("testsite").unwrap(),
        MqttLink::plaintext("127.0.0.1", port),
        dir.join("outbox.db"),
    );
    c.intake_socket = Some(dir.join("intake.sock"));
    c.uplink.heartbeat = Duration::from_secs(1);
    c.uplink.reconnect_min = Duration::from_millis(100);
    c.uplink.reconnect_max = Duration::from_millis(500);
    c
}

async fn intake(
    socket: &Path,
) -> (BufReader<tokio::net::unix::OwnedReadHalf>, tokio::net::unix::OwnedWriteHalf) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match UnixStream::connect(socket).await {
            Ok(s) => {
                let (r, w) = s.into_split();
                return (BufReader::new(r), w);
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "intake socket: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn send_line(
    conn: &mut (BufReader<tokio::net::unix::OwnedReadHalf>, tokio::net::unix::OwnedWriteHalf),
    line: &str,
) -> serde_json::Value {
    conn.1.write_all(format!("{line}\n").as_bytes()).await.unwrap();
    let mut answer = String::new();
    conn.0.read_line(&mut answer).await.unwrap();
    serde_json::from_str(&answer).unwrap()
}

async fn wait_depth(peer: &mut Peer, depth: u64) {
    loop {
        let s = Status::decode(&peer.next("/status").await).unwrap();
        if s.state == DeviceState::Online && s.outbox_depth == Some(depth) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_event_reaches_the_broker_and_only_the_hubs_ack_empties_the_outbox() {
    vaka_agent::link::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let mut peer = Peer::connect(broker.port, "vaka/v1/testsite/home-1/#").await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(vaka_agent::run(config(dir.path(), broker.port, "home-1"), async {
        let _ = stopped.await;
    }));
    let mut conn = intake(&dir.path().join("intake.sock")).await;

    let bad = send_line(&mut conn, r#"{"kind":"position","body":{"lat":99,"lon":1}}"#).await;
    assert!(bad["error"].as_str().unwrap().contains("body.lat"), "{bad}");
    let sent_at = Instant::now();
    let answer = send_line(&mut conn, r#"{"kind":"test_alarm","body":{"note":"hello"}}"#).await;
    assert_eq!(answer["accepted"], 1, "{answer}");
    let envelope = Envelope::decode(&peer.next("/events").await).unwrap();
    let latency = sent_at.elapsed();
    assert_eq!(
        (envelope.seq, envelope.id.to_string()),
        (1, answer["id"].as_str().unwrap().to_string())
    );
    eprintln!("intake line to event at the broker: {latency:?}");

    // Broker-level delivery (PUBACK) does not empty the outbox; the heartbeat says 1 waits.
    wait_depth(&mut peer, 1).await;
    peer.client
        .publish("vaka/v1/testsite/home-1/acks", QoS::AtLeastOnce, false, b"not json".to_vec())
        .await
        .unwrap();
    peer.client
        .publish(
            "vaka/v1/testsite/home-1/acks",
            QoS::AtLeastOnce,
            false,
            Ack::new(vec![1], vec![]).encode(),
        )
        .await
        .unwrap();
    wait_depth(&mut peer, 0).await;

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), agent).await.unwrap().unwrap().unwrap();
    let last = loop {
        let s = Status::decode(&peer.next("/status").await).unwrap();
        if s.state == DeviceState::Offline {
            break s;
        }
    };
    assert_eq!(last, Status::offline());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_is_resent_after_reconnect_when_broker_lost_session() {
    vaka_agent::link::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(dir.path());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // The agent may republish on reconnect before the test's peer has subscribed to the
    // restarted broker (the peer then misses it); an unacked event is sent again after the ack
    // timeout, kept short here so that the retry comes well within the peer's 30 s wait.
    let mut c = config(dir.path(), broker.port, "home-2");
    c.uplink.ack_timeout = Duration::from_secs(3);
    let agent = tokio::spawn(vaka_agent::run(c, async {
        let _ = stopped.await;
    }));
    let mut conn = intake(&dir.path().join("intake.sock")).await;
    let answer = send_line(&mut conn, r#"{"kind":"sos","body":{}}"#).await;
    assert_eq!(answer["accepted"], 1, "{answer}");
    // The broker restarts without persistence: the event it may have had is gone.
    broker.restart();
    let mut peer = Peer::connect(broker.port, "vaka/v1/testsite/home-2/events").await;
    let envelope = Envelope::decode(&peer.next("/events").await).unwrap();
    assert_eq!((envelope.seq, envelope.kind()), (1, "sos"));
    agent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_check_command_is_answered_from_the_simulated_cameras_frames_with_its_check_id() {
    vaka_agent::link::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let mut peer = Peer::connect(broker.port, "vaka/v1/testsite/home-3/#").await;
    let mut c = config(dir.path(), broker.port, "home-3");
    c.simulator = Some(SimulatorSettings { speed: 1.0, seed: 5 });
    let consent = Consent::around(jiff::Timestamp::now(), 2, "test bench");
    c.camera = Some(CameraSettings::simulated(5, Some(Scenario::LyingStill), consent));
    let agent = tokio::spawn(vaka_agent::run(c, std::future::pending()));
    // The simulator's first event comes at once.
    let first = Instant::now();
    Envelope::decode(&peer.next("/events").await).unwrap();
    assert!(
        first.elapsed() < Duration::from_secs(3),
        "first simulated event took {:?}",
        first.elapsed()
    );
    let cmd = Cmd::new(
        uuid::Uuid::now_v7(),
        jiff::Timestamp::now(),
        CommandBody::CameraCheck {
            check_id: "chk-42".parse().unwrap(),
            deadline: jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60),
        },
    );
    peer.client
        .publish("vaka/v1/testsite/home-3/cmd", QoS::AtLeastOnce, false, cmd.encode())
        .await
        .unwrap();
    loop {
        let e = Envelope::decode(&peer.next("/events").await).unwrap();
        if let vaka_protocol::EventBody::CameraCheck(c) = &e.body {
            if c.check_id.as_ref().map(|id| id.as_str()) == Some("chk-42") {
                // Judged from the simulated camera's frames, not refused, not a fault.
                assert!(c.frames >= 2, "{c:?}");
                assert!(
                    !matches!(c.verdict, Verdict::RefusedOutsideConsent | Verdict::CameraFault),
                    "{c:?}"
                );
                break;
            }
        }
    }
    agent.abort();
}
