//! Helpers for running a real hub in-process: embedded broker on a free port, temp SQLite (or
//! PostgreSQL with `VAKA_TEST_DATABASE=postgres`),
//! HTTP on port 0, a tiny HTTP client and MQTT device clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vaka_hub::{BrokerConfig, Hub, HubConfig, SupervisionConfig};
use vaka_protocol::kinds::TestAlarm;
use vaka_protocol::{DeviceId, Envelope, EventBody};

pub const TOKEN: &str = "test-token-0123456789abcdef";

pub fn config(db: &Path, supervision: Duration) -> HubConfig {
    HubConfig {
        broker: BrokerConfig::Embedded {
            listen: "127.0.0.1:0".parse().unwrap(),
            devices: None,
        },
        broker_ca_file: None,
        store_path: db.to_path_buf(),
        database_url: postgres_for(db),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        api_token: TOKEN.into(),
        tokens: Vec::new(),
        sessions: Default::default(),
        alarm_signal: vaka_hub::config::ALARM_SIGNAL_DEFAULT,
        https: None,
        supervision: SupervisionConfig {
            default_interval: supervision,
            devices: Default::default(),
        },
        cameras: Default::default(),
        rounds: Default::default(),
        crl_reload: None,
    }
}

/// With `VAKA_TEST_DATABASE=postgres` the hub keeps its data in a PostgreSQL database named
/// after `db` (so a hub restarted with the same path finds its data again), created at first
/// use through `psql` on `VAKA_TEST_PG_URL`'s server. These in-process tests cannot drop it
/// when they end; `scripts/test` drops every `vaka_hubtest_*` database after the run.
fn postgres_for(db: &Path) -> Option<String> {
    use std::hash::{Hash, Hasher};
    if std::env::var("VAKA_TEST_DATABASE").as_deref() != Ok("postgres") {
        return None;
    }
    static MADE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let admin = std::env::var("VAKA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (db, std::process::id()).hash(&mut hasher);
    let name = format!("vaka_hubtest_{:016x}", hasher.finish());
    let mut made = MADE.lock().unwrap();
    if !made.contains(&name) {
        let out = std::process::Command::new("psql")
            .args([
                admin.as_str(),
                "-v",
                "ON_ERROR_STOP=1",
                "-Atqc",
                &format!("CREATE DATABASE {name}"),
            ])
            .output()
            .expect("VAKA_TEST_DATABASE=postgres needs psql");
        assert!(
            out.status.success(),
            "CREATE DATABASE {name} on {admin}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        made.push(name.clone());
    }
    let server = admin
        .split('?')
        .next()
        .unwrap_or(&admin)
        .rsplit_once('/')
        .map_or(admin.as_str(), |(server, _)| server);
    Some(format!("{server}/{name}"))
}

pub async fn start(config: HubConfig) -> Hub {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = Hub::start(config, listener).await.unwrap();
    wait_until("hub subscribed", Duration::from_secs(10), || async {
        hub.stats().mqtt_subscribed
    })
    .await;
    hub
}

pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
    /// The body as sent (e.g. a JPEG).
    pub bytes: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request with `Connection: close`.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let bytes = raw.get(split + 4..).unwrap_or_default().to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Response {
        status,
        head,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
    }
}

pub async fn api(addr: SocketAddr, path: &str) -> serde_json::Value {
    let auth = format!("Bearer {TOKEN}");
    let r = http(addr, "GET", path, &[("Authorization", &auth)], "").await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.json()
}

pub fn envelope(device: &str, seq: u64) -> Envelope {
    Envelope::new(
        DeviceId::new(device).unwrap(),
        seq,
        uuid::Uuid::now_v7(),
        jiff::Timestamp::now(),
        EventBody::TestAlarm(TestAlarm {
            note: Some(format!("test {seq}")),
        }),
    )
}

/// A device's MQTT connection that listens to its acks topic.
pub struct Device {
    pub client: AsyncClient,
    pub eventloop: EventLoop,
    pub site: String,
    pub id: String,
}

impl Device {
    pub async fn connect(
        broker: SocketAddr,
        site: &str,
        id: &str,
        will: Option<rumqttc::LastWill>,
    ) -> Device {
        let mut o = MqttOptions::new(
            format!("{site}-{id}"),
            broker.ip().to_string(),
            broker.port(),
        );
        o.set_keep_alive(Duration::from_secs(5));
        o.set_max_packet_size(1024 * 1024, 1024 * 1024);
        if let Some(will) = will {
            o.set_last_will(will);
        }
        let (client, mut eventloop) = AsyncClient::new(o, 1024);
        client
            .subscribe(format!("vaka/v1/{site}/{id}/acks"), QoS::AtLeastOnce)
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await.unwrap() {
                    return;
                }
            }
        })
        .await
        .expect("device subscribed");
        Device {
            client,
            eventloop,
            site: site.into(),
            id: id.into(),
        }
    }

    pub fn topic(&self, channel: &str) -> String {
        format!("vaka/v1/{}/{}/{channel}", self.site, self.id)
    }

    pub async fn publish(&mut self, channel: &str, payload: Vec<u8>, retain: bool) {
        self.client
            .publish(self.topic(channel), QoS::AtLeastOnce, retain, payload)
            .await
            .unwrap();
    }

    /// Polls the connection until an ack arrives.
    pub async fn next_ack(&mut self) -> vaka_protocol::Ack {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Event::Incoming(Packet::Publish(p)) = self.eventloop.poll().await.unwrap() {
                    return vaka_protocol::Ack::decode(&p.payload).unwrap();
                }
            }
        })
        .await
        .expect("no ack within 5 s")
    }

    /// Subscribes to this device's commands.
    pub async fn listen_for_commands(&mut self) {
        self.client
            .subscribe(self.topic("cmd"), QoS::AtLeastOnce)
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Event::Incoming(Packet::SubAck(_)) = self.eventloop.poll().await.unwrap() {
                    return;
                }
            }
        })
        .await
        .expect("device subscribed to its commands");
    }

    /// Polls the connection until a command arrives (acks in between are skipped).
    pub async fn next_command(&mut self) -> vaka_protocol::Command {
        let cmd = self.topic("cmd");
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Event::Incoming(Packet::Publish(p)) = self.eventloop.poll().await.unwrap() {
                    if p.topic == cmd {
                        return vaka_protocol::Command::decode(&p.payload).unwrap();
                    }
                }
            }
        })
        .await
        .expect("no command within 5 s")
    }

    /// Polls the connection until an ack arrives (commands in between are skipped).
    pub async fn next_ack_only(&mut self) -> vaka_protocol::Ack {
        let acks = self.topic("acks");
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Event::Incoming(Packet::Publish(p)) = self.eventloop.poll().await.unwrap() {
                    if p.topic == acks {
                        return vaka_protocol::Ack::decode(&p.payload).unwrap();
                    }
                }
            }
        })
        .await
        .expect("no ack within 5 s")
    }

    /// Polls the connection for a while so outgoing publishes are flushed.
    pub async fn flush(&mut self, d: Duration) {
        let _ = tokio::time::timeout(d, async {
            loop {
                if self.eventloop.poll().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }
}
