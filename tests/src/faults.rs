//! What the fault-suite tests (RELIABILITY.md, R1–R8) need beyond starting processes: a
//! producer that pipelines and kills the agent at a chosen point ([`Agent::feed`]), a link
//! between agent and broker that can be cut ([`LinkProxy`]), and
//! read-only looks straight into the files the processes write (the hub's database, the
//! agent's outbox), which count everything without the API's page limit and work while the
//! process is stopped or dead.

use crate::procs::{burst_line, Accepted, Agent, Broker, Hub};
use serde_json::Value;
use std::io::{BufRead, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

impl Hub {
    /// Every stored event of `device` in the order the hub committed them, read straight from
    /// the hub's database (its SQLite file read-only, or its PostgreSQL database; the hub may
    /// be running or stopped). Unlike
    /// [`Hub::events`] this has no page limit.
    pub fn stored(&self, device: &str) -> Vec<StoredEvent> {
        if let Some(pg) = &self.pg {
            let sql = "SELECT seq, event_id::TEXT, severity, kind, received_at FROM events WHERE device = $1 ORDER BY pos";
            let rows = pg.client().query(sql, &[&device]).unwrap_or_else(|e| panic!("hub database: {}", crate::pg::chain(&e)));
            return rows
                .iter()
                .map(|r| StoredEvent {
                    seq: r.get::<_, i64>(0) as u64,
                    id: r.get(1),
                    severity: r.get(2),
                    kind: r.get(3),
                    received_at_us: r.get(4),
                })
                .collect();
        }
        let db = open_read_only(&self.db);
        let mut stmt = db
            .prepare("SELECT seq, event_id, severity, kind, received_at FROM events WHERE device = ?1 ORDER BY rowid")
            .unwrap_or_else(|e| panic!("hub database {}: {e}", self.db.display()));
        let rows = stmt
            .query_map([device], |r| {
                Ok(StoredEvent {
                    seq: r.get::<_, i64>(0)? as u64,
                    id: r.get(1)?,
                    severity: r.get(2)?,
                    kind: r.get(3)?,
                    received_at_us: r.get(4)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .unwrap_or_else(|e| panic!("hub database {}: {e}", self.db.display()));
        rows
    }

    /// How many events of `device` the hub's database holds.
    pub fn stored_count(&self, device: &str) -> usize {
        self.stored_count_through(device, i64::MAX as u64)
    }

    /// How many events of `device` with a seq up to `seq` the hub's database holds.
    pub fn stored_count_through(&self, device: &str, seq: u64) -> usize {
        let seq = seq.min(i64::MAX as u64) as i64;
        if let Some(pg) = &self.pg {
            let sql = "SELECT count(*) FROM events WHERE device = $1 AND seq <= $2";
            let row = pg.client().query_one(sql, &[&device, &seq]).unwrap_or_else(|e| panic!("hub database: {}", crate::pg::chain(&e)));
            return row.get::<_, i64>(0) as usize;
        }
        let db = open_read_only(&self.db);
        let sql = "SELECT count(*) FROM events WHERE device = ?1 AND seq <= ?2";
        db.query_row(sql, rusqlite::params![device, seq], |r| r.get::<_, i64>(0))
            .unwrap_or_else(|e| panic!("hub database {}: {e}", self.db.display())) as usize
    }
}

/// One event row of the hub's database, as [`Hub::stored`] reads it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: u64,
    pub id: String,
    pub severity: String,
    pub kind: String,
    /// When the hub received it, in microseconds since the Unix epoch.
    pub received_at_us: i64,
}

/// Events in the outbox file at `path` (accepted by its agent, not yet acked by the hub); for
/// when the [`Agent`] itself is busy in another thread.
pub fn outbox_pending(path: &Path) -> usize {
    let db = open_read_only(path);
    db.query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0))
        .unwrap_or_else(|e| panic!("outbox {}: {e}", path.display())) as usize
}

/// A read-only connection to a SQLite file another process writes (WAL: readers never block
/// the writer).
fn open_read_only(path: &Path) -> rusqlite::Connection {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let db = rusqlite::Connection::open_with_flags(path, flags)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    db.busy_timeout(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    db
}

impl Agent {
    /// Events in the agent's outbox (accepted, not yet acked by the hub), read from its file.
    pub fn pending(&self) -> usize {
        outbox_pending(&self.outbox)
    }

    /// Payload bytes of the events in the agent's outbox: what its `max_bytes` budget counts.
    pub fn pending_bytes(&self) -> u64 {
        let db = open_read_only(&self.outbox);
        db.query_row("SELECT coalesce(sum(length(payload)), 0) FROM events", [], |r| r.get::<_, i64>(0))
            .unwrap_or_else(|e| panic!("outbox {}: {e}", self.outbox.display())) as u64
    }

    /// The seqs of the events in the agent's outbox, ascending.
    pub fn pending_seqs(&self) -> Vec<u64> {
        let db = open_read_only(&self.outbox);
        let mut stmt = db
            .prepare("SELECT seq FROM events ORDER BY seq")
            .unwrap_or_else(|e| panic!("outbox {}: {e}", self.outbox.display()));
        stmt.query_map([], |r| r.get::<_, i64>(0).map(|s| s as u64))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .unwrap_or_else(|e| panic!("outbox {}: {e}", self.outbox.display()))
    }

    /// Bytes the outbox takes on disk: the database file and its WAL.
    pub fn outbox_disk_bytes(&self) -> u64 {
        let size = |suffix: &str| {
            let mut path = self.outbox.clone().into_os_string();
            path.push(suffix);
            std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
        };
        size("") + size("-wal")
    }
}

/// What [`Agent::feed`] did.
#[derive(Debug, Default)]
pub struct Fed {
    /// The index of the first line not written (where the next feed starts).
    pub next: usize,
    /// Lines written to the intake socket.
    pub written: usize,
    /// The events the agent answered `accepted` to, in line order.
    pub accepted: Vec<Accepted>,
    /// Whether the feed killed the agent (it reached `kill_at`).
    pub killed: bool,
}

impl Agent {
    /// Offers lines `from..to` of a burst ([`burst_line`]) like a producer that pipelines: at
    /// most `window` lines written and not yet answered. With `kill_at = Some(k)` the agent is
    /// killed with SIGKILL as soon as the answer to a line with index `>= k` arrives. Lines
    /// written but unanswered when the agent dies are not offered again: the producer was never
    /// told they were accepted, and the agent may or may not have committed them.
    pub fn feed(&mut self, tag: &str, from: usize, to: usize, window: usize, kill_at: Option<usize>) -> Fed {
        let mut intake = self.intake();
        let mut fed = Fed { next: from, ..Fed::default() };
        let mut line = String::new();
        loop {
            while fed.next < to && fed.written - fed.accepted.len() < window.max(1) {
                if intake.stream.write_all(burst_line(tag, fed.next).as_bytes()).is_err() {
                    return fed;
                }
                fed.next += 1;
                fed.written += 1;
            }
            if fed.written == fed.accepted.len() {
                return fed;
            }
            line.clear();
            match intake.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return fed,
                Ok(_) => {}
            }
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("intake answered `{line}`: {e}"));
            let seq = v["accepted"].as_u64().unwrap_or_else(|| panic!("intake refused a valid event: {line}"));
            let id = v["id"].as_str().unwrap_or_default().to_string();
            fed.accepted.push(Accepted { seq, id });
            let answered_line = from + fed.accepted.len() - 1;
            if kill_at.is_some_and(|k| answered_line >= k) {
                self.proc.kill9();
                fed.killed = true;
                return fed;
            }
        }
    }
}

/// A TCP forwarder on a loopback port in front of a broker, which a test can cut to take a
/// device offline while the hub and its broker stay up (the hub stays subscribed, so nothing
/// the device sends after it reconnects can race the hub's subscription). While cut it closes
/// every connection it carries and closes new ones at once.
pub struct LinkProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl LinkProxy {
    /// Forwards a free loopback port to `127.0.0.1:target`.
    pub fn start(target: u16) -> LinkProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("proxy bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, open2) = (up.clone(), open.clone());
        // The thread ends with the test process; it only ever waits in `accept`.
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let mut open = open2.lock().unwrap_or_else(|e| e.into_inner());
                for stream in [&client, &server] {
                    if let Ok(s) = stream.try_clone() {
                        open.push(s);
                    }
                }
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else { continue };
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = from.shutdown(Shutdown::Both);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        LinkProxy { port, up, open }
    }

    /// Takes the link down: open connections are closed, new ones closed at once.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Brings the link back: new connections are forwarded again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// The embedded-broker address an agent should use to go through this proxy.
    pub fn broker(&self) -> Broker {
        Broker::Embedded { port: self.port }
    }
}
