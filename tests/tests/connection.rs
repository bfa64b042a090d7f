//! R5 of the fault suite: a half-open connection. Between the agent and the hub's broker sits
//! a TCP proxy the test controls. At a chosen moment it starts dropping every byte of the
//! agent's connection, both ways, without closing either socket: what a NAT that forgot the
//! connection, or a mobile network gone quiet, does. New connections pass again, as after
//! such a network heals.
//!
//! The agent must notice within 1.5 × its keep-alive (measured from the drop to its "Connection
//! to broker lost" log line), connect again, and deliver every event it accepted, including
//! those accepted into the black hole, exactly once. The worst moment is just after the broker
//! answered a ping: the agent's next ping goes out a whole keep-alive later, and rumqttc alone
//! errors only when the ping after that is due, about 2 × keep-alive after the cut. So two of
//! the three rounds cut the line right after a PINGRESP passed the proxy; the third at a
//! moment unrelated to the pings.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use vaka_e2e::*;

const KEEP_ALIVE: Duration = Duration::from_secs(5);
const DELIVERY: Duration = Duration::from_secs(60);

/// A loopback TCP proxy that can silently drop the traffic of the connections it has.
struct Proxy {
    port: u16,
    /// Connections numbered below this are black holes.
    blackhole_below: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    /// When the broker last answered a ping (a PINGRESP went to the agent).
    last_pingresp: Arc<Mutex<Instant>>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        let port = listener.local_addr().expect("proxy address").port();
        let proxy = Proxy {
            port,
            blackhole_below: Arc::new(AtomicU64::new(0)),
            connections: Arc::new(AtomicU64::new(0)),
            last_pingresp: Arc::new(Mutex::new(Instant::now())),
        };
        let (below, count, last_pingresp) = (proxy.blackhole_below.clone(), proxy.connections.clone(), proxy.last_pingresp.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let n = count.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                for (from, to, down) in [(client.try_clone(), server.try_clone(), false), (server.try_clone(), client.try_clone(), true)] {
                    let (Ok(mut from), Ok(mut to)) = (from, to) else { continue };
                    let (below, last_pingresp) = (below.clone(), last_pingresp.clone());
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            let k = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(k) => k,
                            };
                            if n < below.load(Ordering::SeqCst) {
                                continue; // swallowed: the sender's socket stays open and quiet
                            }
                            if to.write_all(&buf[..k]).is_err() {
                                break;
                            }
                            // PINGRESP is the two bytes D0 00; on loopback it travels alone.
                            if down && buf[..k].ends_with(&[0xD0, 0x00]) {
                                *last_pingresp.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                            }
                        }
                        // A black hole passes on nothing, not even the end of the connection (the
                        // broker closes its side after 1.5 × keep-alive of silence): the agent
                        // must find out by itself. The socket stays open until the test ends.
                        if n < below.load(Ordering::SeqCst) {
                            std::mem::forget(to);
                        } else {
                            let _ = to.shutdown(Shutdown::Write);
                        }
                    });
                }
            }
        });
        proxy
    }

    /// From now on, every connection the proxy has drops all its traffic; new ones pass.
    fn blackhole_current(&self) {
        self.blackhole_below.store(self.connections.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    fn last_pingresp(&self) -> Instant {
        *self.last_pingresp.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The agent's log lines containing `needle`, with their timestamps.
fn log_times(agent: &Agent, needle: &str) -> Vec<SystemTime> {
    agent
        .proc
        .log_text()
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| {
            let plain = strip_ansi(l);
            let ts: jiff::Timestamp = plain.split_whitespace().next()?.parse().ok()?;
            Some(SystemTime::from(ts))
        })
        .collect()
}

#[test]
fn half_open_connection_is_noticed_within_one_and_a_half_keep_alives_and_nothing_is_lost() {
    let dir = temp_dir("half-open");
    let hub = Hub::start(dir.path(), HubOpts::default());
    let proxy = Proxy::start(hub.mqtt_port.expect("embedded broker"));
    let mut opts = AgentOpts::new("home-r5", Broker::Embedded { port: proxy.port });
    opts.mqtt_extra = format!("keep_alive = \"{}s\"\n", KEEP_ALIVE.as_secs());
    let mut agent = Agent::start(dir.path(), opts);
    let mut accepted = agent.burst("before", 100, None);
    wait_for_events(&hub, "home-r5", 100, DELIVERY);

    let limit = KEEP_ALIVE.mul_f64(1.5);
    let mut detections = Vec::new();
    let mut reconnects = Vec::new();
    let mut during = 0;
    for round in 0..3 {
        let lost_before = log_times(&agent, "Connection to broker lost").len();
        let back_before = log_times(&agent, "Reconnected to broker").len();
        if round < 2 {
            // Right after the broker answered a ping: the agent's next ping goes out a whole
            // keep-alive later, so rumqttc alone would notice only at about 2 × keep-alive.
            let seen = proxy.last_pingresp();
            wait_until(KEEP_ALIVE * 3, "the broker to answer a ping", || (proxy.last_pingresp() > seen).then_some(()));
        } else {
            std::thread::sleep(Duration::from_millis(1700));
        }
        let cut = SystemTime::now();
        proxy.blackhole_current();
        // Events keep coming while the line is dead; they are accepted (on disk) and sent
        // into the black hole.
        let got = agent.burst(&format!("black hole {round}"), 30, None);
        assert_eq!(got.len(), 30, "the agent stopped accepting while its connection was dead");
        during += got.len();
        accepted.extend(got);
        let lost = wait_until(limit * 3, "the agent to notice the dead connection", || {
            log_times(&agent, "Connection to broker lost").get(lost_before).copied()
        });
        let back = wait_until(DELIVERY, "the agent to reconnect", || {
            log_times(&agent, "Reconnected to broker").get(back_before).copied()
        });
        let detection = lost.duration_since(cut).unwrap_or_default();
        let reconnect = back.duration_since(cut).unwrap_or_default();
        println!("R5 round {round}: dead line noticed after {detection:?}, reconnected after {reconnect:?} (keep-alive {KEEP_ALIVE:?}, limit {limit:?})");
        detections.push(detection);
        reconnects.push(reconnect);
    }

    let last = agent.intake().accept(r#"{"kind":"test_alarm","body":{"note":"last"}}"#);
    accepted.push(last.clone());
    wait_for_events(&hub, "home-r5", last.seq as usize, DELIVERY);
    let stored = assert_stored_exactly_once(&hub, "home-r5", &accepted);
    let events = hub.events("home-r5");
    let ids: std::collections::HashSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    println!(
        "R5 figures: sent {}, accepted {} ({during} into the dead connection), stored {stored}, duplicates {}; detection {:?} (max {:?}, limit 1.5 × keep-alive = {limit:?}), reconnect {:?}; proxy connections {}",
        accepted.len(),
        accepted.len(),
        events.len() - ids.len(),
        detections,
        detections.iter().max(),
        reconnects,
        proxy.connections.load(Ordering::SeqCst),
    );
    for d in &detections {
        assert!(*d <= limit, "a dead connection was noticed after {d:?}, more than 1.5 × keep-alive ({limit:?})");
    }
    assert!(proxy.connections.load(Ordering::SeqCst) >= 4, "the agent did not open a new connection each round");
}
