//! Real processes under test: Mosquitto, the hub and agents, each with a generated config
//! file and a log file in the test's directory.

use crate::{bin, free_port, port_open, wait_until, workspace_root, Pki};
use serde_json::Value;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process whose output goes to a log file; killed (SIGKILL) when dropped.
pub struct Proc {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    pub log: PathBuf,
    /// Environment variables set for the process at every (re)start; a test may change them
    /// between a stop and [`Proc::start`] (e.g. to disarm a test fault point).
    pub env: Vec<(String, String)>,
    /// Working directory, where a crashing process would leave a core file.
    pub dir: Option<PathBuf>,
    child: Option<Child>,
}

impl Proc {
    pub fn spawn(name: &str, program: impl Into<PathBuf>, args: &[&str], log: PathBuf) -> Proc {
        let mut p = Proc {
            name: name.to_string(),
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            log,
            env: Vec::new(),
            dir: None,
            child: None,
        };
        p.start();
        p
    }

    /// Like [`Proc::spawn`], with environment variables and a working directory.
    pub fn spawn_in(name: &str, program: impl Into<PathBuf>, args: &[&str], log: PathBuf, env: Vec<(String, String)>, dir: &Path) -> Proc {
        let mut p = Proc {
            name: name.to_string(),
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            log,
            env,
            dir: Some(dir.to_path_buf()),
            child: None,
        };
        p.start();
        p
    }

    /// Starts the process (again) with the same program and arguments.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log.display()));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let mut command = Command::new(&self.program);
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        let child = command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", std::env::var("VAKA_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({}): {e}", self.name, self.program.display()));
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
        }
    }

    /// SIGKILL: no clean-up, no last words; what a power cut does to a process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for the process to end (SIGKILL after 10 s).
    pub fn terminate(&mut self) {
        self.signal("-TERM");
        if let Some(mut child) = self.child.take() {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the process (SIGSTOP): it keeps its sockets but says nothing.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// Waits up to `timeout` for the process to end by itself; returns how it ended, and
    /// forgets it (so that [`Proc::start`] may start it again). `None` if it is still running
    /// (it is left running) or was not started.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let status = self.child.as_mut()?.try_wait().ok().flatten();
            if let Some(status) = status {
                self.child = None;
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Peak and current resident memory of the running process in KiB (`VmHWM`, `VmRSS` from
    /// `/proc/PID/status`); `None` when it is not running.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        };
        Some((field("VmHWM:")?, field("VmRSS:")?))
    }

    /// Whether the process has exited (and reaps it).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(Some(_))) | None)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.thaw();
        if std::thread::panicking() {
            eprintln!("----- {} log ({}) -----\n{}", self.name, self.log.display(), tail(&self.log_text(), 120));
        }
        self.kill9();
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A real Mosquitto on a free loopback port, configured from `config/mosquitto.conf.template`.
pub struct Mosquitto {
    pub port: u16,
    pub tls: bool,
    pub proc: Proc,
}

impl Mosquitto {
    /// Starts Mosquitto without persistence; with TLS (client certificates required) when a
    /// PKI is given.
    pub fn start(dir: &Path, pki: Option<&Pki>) -> Mosquitto {
        Mosquitto::start_trusting(dir, pki, pki.map(|p| p.ca_file.as_path()))
    }

    /// Starts Mosquitto with TLS, its own certificate from `pki`, requiring client certificates
    /// signed by the CA in `client_ca` (e.g. the hub's device CA).
    pub fn start_with_client_ca(dir: &Path, pki: &Pki, client_ca: &Path) -> Mosquitto {
        Mosquitto::start_trusting(dir, Some(pki), Some(client_ca))
    }

    fn start_trusting(dir: &Path, pki: Option<&Pki>, client_ca: Option<&Path>) -> Mosquitto {
        let port = free_port();
        let dir = dir.join(format!("mosquitto-{port}"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let template = std::fs::read_to_string(workspace_root().join("config/mosquitto.conf.template"))
            .unwrap_or_else(|e| panic!("mosquitto template: {e}"));
        let tls = match (pki, client_ca) {
            (Some(p), Some(client_ca)) => format!(
                "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\ntls_version tlsv1.2",
                client_ca.display(),
                p.server_cert.display(),
                p.server_key.display()
            ),
            _ => String::new(),
        };
        let conf = template
            .replace("@PORT@", &port.to_string())
            .replace("@BIND@", "127.0.0.1")
            .replace("@TLS@", &tls)
            .replace("@PERSISTENCE@", "false")
            .replace("@DIR@", &dir.display().to_string());
        let conf_path = dir.join("mosquitto.conf");
        write_file(&conf_path, &conf);
        let conf_arg = conf_path.display().to_string();
        let proc = Proc::spawn("mosquitto", "mosquitto", &["-c", &conf_arg], dir.join("stdout.log"));
        let mut m = Mosquitto { port, tls: pki.is_some(), proc };
        m.wait_ready();
        m
    }

    fn wait_ready(&mut self) {
        let port = self.port;
        wait_until(Duration::from_secs(30), "mosquitto to listen", || port_open(port).then_some(()));
    }

    /// Kills the broker (SIGKILL, no persistence: every session and queued message is gone)
    /// and starts it again on the same port.
    pub fn restart_losing_everything(&mut self) {
        self.proc.kill9();
        self.proc.start();
        self.wait_ready();
    }

    pub fn broker(&self, pki: Option<&Pki>) -> Broker {
        Broker::Mosquitto { port: self.port, ca: pki.map(|p| p.ca_file.clone()) }
    }
}

/// Where agents (and an external-broker hub) connect.
#[derive(Clone, Debug)]
pub enum Broker {
    /// The hub's embedded broker on this port (plain TCP on loopback).
    Embedded { port: u16 },
    /// A Mosquitto on this port; TLS when a CA is given.
    Mosquitto { port: u16, ca: Option<PathBuf> },
}

impl Broker {
    /// The `[mqtt]` section for a client of this broker.
    fn mqtt_section(&self, client_cert: Option<&(PathBuf, PathBuf)>) -> String {
        let (port, ca) = match self {
            Broker::Embedded { port } => (*port, None),
            Broker::Mosquitto { port, ca } => (*port, ca.as_ref()),
        };
        let mut s = String::from("[mqtt]\n");
        match ca {
            None => s += &format!("url = \"mqtt://127.0.0.1:{port}\"\nallow_plaintext = true\n"),
            Some(ca) => s += &format!("url = \"mqtts://localhost:{port}\"\nca_file = \"{}\"\n", ca.display()),
        }
        if let Some((cert, key)) = client_cert {
            s += &format!("client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n", cert.display(), key.display());
        }
        s
    }
}

pub struct HubOpts {
    /// `None`: the hub runs its embedded broker.
    pub external: Option<Broker>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub supervision_interval: String,
    /// Extra TOML appended to the config (e.g. `[cameras]`, `[[http.tokens]]`).
    pub extra: String,
    /// Extra keys of the `[http]` section (e.g. `session_idle = "10s"`).
    pub http: String,
    /// Extra keys of the `[embedded_broker]` section (e.g. its device listener).
    pub embedded_extra: String,
    /// Environment of the hub process (e.g. a test fault point).
    pub env: Vec<(String, String)>,
    /// `mqtt.client_id` with an external broker (default `vaka-hub-test`); several hubs on
    /// one broker need one each.
    pub client_id: Option<String>,
    /// `mqtt.shared_group` with an external broker: the hubs share the ingest.
    pub shared_group: Option<String>,
    /// Use this database instead of the hub's own (several hubs on one database): another
    /// hub's [`Hub::db`]. Start that hub first, so the schema is created once.
    pub db: Option<PathBuf>,
    /// `store.database_url`: a PostgreSQL database the test made (e.g. one that several hubs
    /// share, see `pg.rs`); `None` for the run's default.
    pub database_url: Option<String>,
}

impl Default for HubOpts {
    fn default() -> Self {
        HubOpts {
            external: None,
            client_cert: None,
            supervision_interval: "180s".into(),
            extra: String::new(),
            http: String::new(),
            embedded_extra: String::new(),
            env: Vec::new(),
            client_id: None,
            shared_group: None,
            db: None,
            database_url: None,
        }
    }
}

/// A `vaka-hub serve` process.
pub struct Hub {
    pub http_port: u16,
    /// The embedded broker's port, when the hub runs one.
    pub mqtt_port: Option<u16>,
    pub token: String,
    /// The SQLite file, or (with `pg`) the path in the config whose directory holds the CA.
    pub db: PathBuf,
    pub proc: Proc,
    /// The hub's PostgreSQL database when the run asks for one (`VAKA_TEST_DATABASE=postgres`,
    /// see `pg.rs`); dropped after the process (fields drop in order).
    pub pg: Option<crate::pg::PgDb>,
    /// `store.database_url` as the hub was given it, if any.
    pub database_url: Option<String>,
}

impl Hub {
    /// Options for another hub on this hub's database: its SQLite file, or its PostgreSQL
    /// database. Start this hub first, so the schema is created once.
    pub fn same_database(&self) -> HubOpts {
        HubOpts { db: Some(self.db.clone()), database_url: self.database_url.clone(), ..HubOpts::default() }
    }

    pub fn start(dir: &Path, opts: HubOpts) -> Hub {
        let dir = dir.join("hub");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let http_port = free_port();
        let token = format!("test-token-{}", uuid::Uuid::now_v7().simple());
        let db = opts.db.clone().unwrap_or_else(|| dir.join("hub.db"));
        // PostgreSQL: the URL the test gives (hubs sharing a database), or with
        // `VAKA_TEST_DATABASE=postgres` a fresh database of this hub's own unless the test
        // shares a SQLite file between hubs (`db`).
        let pg = (opts.database_url.is_none() && opts.db.is_none() && crate::pg::wanted()).then(crate::pg::PgDb::create);
        let database_url = match (&opts.database_url, &pg) {
            (Some(url), _) => format!("database_url = \"{url}\"\n"),
            (None, Some(pg)) => format!("database_url = \"{}\"\n", pg.url),
            (None, None) => String::new(),
        };
        let (broker, mqtt_port) = match &opts.external {
            Some(b) => {
                let client_id = opts.client_id.as_deref().unwrap_or("vaka-hub-test");
                let group = opts.shared_group.as_ref().map(|g| format!("shared_group = \"{g}\"\n")).unwrap_or_default();
                (b.mqtt_section(opts.client_cert.as_ref()) + &format!("client_id = \"{client_id}\"\n{group}"), None)
            }
            None => {
                let port = free_port();
                (format!("[embedded_broker]\nlisten = \"127.0.0.1:{port}\"\n{}", opts.embedded_extra), Some(port))
            }
        };
        let config = format!(
            "{broker}\n[store]\npath = \"{}\"\n{database_url}\n[http]\nlisten = \"127.0.0.1:{http_port}\"\napi_token = \"{token}\"\n{}\n\n[supervision]\ndefault_interval = \"{}\"\n\n{}\n",
            db.display(),
            opts.http,
            opts.supervision_interval,
            opts.extra
        );
        let config_path = dir.join("hub.toml");
        write_file(&config_path, &config);
        let config_arg = config_path.display().to_string();
        let args = ["serve", "--config", config_arg.as_str()];
        let proc = Proc::spawn_in("vaka-hub", bin("vaka-hub"), &args, dir.join("hub.log"), opts.env, &dir);
        let database_url = opts.database_url.clone().or_else(|| pg.as_ref().map(|pg| pg.url.clone()));
        let mut hub = Hub { http_port, mqtt_port, token, db, proc, pg, database_url };
        hub.wait_ready();
        hub
    }

    fn wait_ready(&mut self) {
        let url = format!("http://127.0.0.1:{}/healthz", self.http_port);
        wait_until(Duration::from_secs(60), "hub /healthz", || ureq::get(&url).call().ok().map(|_| ()));
        if let Some(port) = self.mqtt_port {
            wait_until(Duration::from_secs(30), "embedded broker to listen", || port_open(port).then_some(()));
        }
    }

    /// Starts the hub again (same config, database and ports) after a stop.
    pub fn start_again(&mut self) {
        self.proc.start();
        self.wait_ready();
    }

    pub fn broker(&self) -> Broker {
        Broker::Embedded { port: self.mqtt_port.unwrap_or_else(|| panic!("hub has no embedded broker")) }
    }

    /// GET an API path with the bearer token; `None` when the hub does not answer 2xx.
    pub fn try_get(&self, path: &str) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}{path}", self.http_port);
        let mut resp = ureq::get(&url).header("Authorization", &format!("Bearer {}", self.token)).call().ok()?;
        resp.body_mut().read_json::<Value>().ok()
    }

    pub fn get(&self, path: &str) -> Value {
        self.try_get(path).unwrap_or_else(|| panic!("GET {path} failed"))
    }

    /// A device's stored events, oldest first by sequence number.
    pub fn events(&self, device: &str) -> Vec<Value> {
        let mut events = match self.try_get(&format!("/api/v1/events?device={device}&limit=10000")) {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        };
        events.sort_by_key(|e| e["seq"].as_u64());
        events
    }

    pub fn rejects(&self) -> Vec<Value> {
        match self.try_get("/api/v1/rejects?limit=1000") {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        }
    }

    /// A request with another bearer token, for role checks: status, headers and raw body,
    /// whatever the status.
    pub fn request(&self, method: &str, path: &str, token: &str) -> Response {
        let url = format!("http://127.0.0.1:{}{path}", self.http_port);
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let auth = format!("Bearer {token}");
        let result = match method {
            "POST" => agent.post(&url).header("Authorization", &auth).send_json(serde_json::json!({})),
            _ => agent.get(&url).header("Authorization", &auth).call(),
        };
        let mut resp = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
        };
        let content_type = header("content-type");
        let cache_control = header("cache-control");
        let view_seconds = header("x-vaka-view-seconds");
        let body = resp.body_mut().with_config().limit(1 << 20).read_to_vec().unwrap_or_default();
        Response { status, content_type, cache_control, view_seconds, body }
    }

    /// A request with a JSON body (PUT, POST) and a bearer token: status and parsed body.
    pub fn send(&self, method: &str, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let url = format!("http://127.0.0.1:{}{path}", self.http_port);
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let auth = format!("Bearer {token}");
        let result = match method {
            "PUT" => agent.put(&url).header("Authorization", &auth).send_json(body),
            _ => agent.post(&url).header("Authorization", &auth).send_json(body),
        };
        let mut resp = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_json::<Value>().unwrap_or(Value::Null);
        (status, body)
    }

    /// A POST with a text body (e.g. a PEM signing request): status and the answer as text.
    pub fn post_text(&self, path: &str, token: &str, body: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.http_port);
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut resp = agent
            .post(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/pkcs10")
            .send(body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap_or_default())
    }

    /// The hub's ingest counters (`/api/v1/stats`), counted since it last started.
    pub fn stats(&self) -> Value {
        self.get("/api/v1/stats")
    }

    pub fn device(&self, id: &str) -> Option<Value> {
        match self.try_get("/api/v1/devices")? {
            Value::Array(a) => a.into_iter().find(|d| d["id"] == id),
            _ => None,
        }
    }
}

/// An HTTP answer as [`Hub::request`] returns it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub cache_control: String,
    pub view_seconds: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

pub struct AgentOpts {
    pub device: String,
    pub site: String,
    pub broker: Broker,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub heartbeat: String,
    pub ack_timeout: String,
    /// `[outbox] max_bytes`, the outbox's disk budget; the agent's default when `None`.
    pub outbox_max_bytes: Option<u64>,
    /// Extra TOML appended to the config (e.g. a `[simulator]` section).
    pub extra: String,
    /// Extra keys of the `[mqtt]` section (e.g. `keep_alive = "5s"`).
    pub mqtt_extra: String,
    /// Extra keys of the `[outbox]` section (e.g. `reserve_bytes = 1048576`).
    pub outbox_extra: String,
    /// Where the outbox file goes; `outbox.db` in the agent's directory by default.
    pub outbox_path: Option<PathBuf>,
    /// A program (and its first arguments) to start the agent under, e.g. `unshare`; the
    /// agent's own command line is appended.
    pub launcher: Vec<String>,
}

impl AgentOpts {
    pub fn new(device: &str, broker: Broker) -> Self {
        AgentOpts {
            device: device.into(),
            site: "testsite".into(),
            broker,
            client_cert: None,
            heartbeat: "5s".into(),
            ack_timeout: "5s".into(),
            outbox_max_bytes: None,
            extra: String::new(),
            mqtt_extra: String::new(),
            outbox_extra: String::new(),
            outbox_path: None,
            launcher: Vec::new(),
        }
    }
}

/// A `vaka-agent run` process with an intake socket.
pub struct Agent {
    pub device: String,
    pub socket: PathBuf,
    pub outbox: PathBuf,
    pub config: PathBuf,
    pub proc: Proc,
}

/// One event the agent accepted through its intake: its sequence number and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Accepted {
    pub seq: u64,
    pub id: String,
}

impl Agent {
    pub fn start(dir: &Path, opts: AgentOpts) -> Agent {
        let dir = dir.join(format!("agent-{}", opts.device));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let socket = dir.join("intake.sock");
        let outbox = opts.outbox_path.clone().unwrap_or_else(|| dir.join("outbox.db"));
        let max_bytes = opts.outbox_max_bytes.map(|b| format!("max_bytes = {b}\n")).unwrap_or_default();
        let config = format!(
            "device_id = \"{}\"\nsite = \"{}\"\n\n{}{}\n[uplink]\nheartbeat = \"{}\"\nack_timeout = \"{}\"\nreconnect_min = \"200ms\"\nreconnect_max = \"2s\"\n\n[outbox]\npath = \"{}\"\n{max_bytes}{}\n\n[intake]\nsocket = \"{}\"\n\n{}\n",
            opts.device,
            opts.site,
            opts.broker.mqtt_section(opts.client_cert.as_ref()),
            opts.mqtt_extra,
            opts.heartbeat,
            opts.ack_timeout,
            outbox.display(),
            opts.outbox_extra,
            socket.display(),
            opts.extra
        );
        let config_path = dir.join("agent.toml");
        write_file(&config_path, &config);
        let config_arg = config_path.display().to_string();
        let agent_bin = bin("vaka-agent").display().to_string();
        let mut command: Vec<&str> = opts.launcher.iter().map(String::as_str).collect();
        command.extend([agent_bin.as_str(), "run", "--config", &config_arg]);
        let proc = Proc::spawn(&format!("vaka-agent {}", opts.device), command[0], &command[1..], dir.join("agent.log"));
        let mut agent = Agent { device: opts.device, socket, outbox, config: config_path, proc };
        agent.wait_ready();
        agent
    }

    fn wait_ready(&mut self) {
        let socket = self.socket.clone();
        wait_until(Duration::from_secs(60), "agent intake socket", || UnixStream::connect(&socket).ok().map(|_| ()));
    }

    pub fn start_again(&mut self) {
        self.proc.start();
        self.wait_ready();
    }

    pub fn intake(&self) -> Intake {
        let stream = UnixStream::connect(&self.socket)
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.socket.display()));
        Intake { reader: BufReader::new(stream.try_clone().unwrap_or_else(|e| panic!("{e}"))), stream }
    }

    /// Hands `n` events to the agent as fast as it takes them (a mix of alarms, warnings and
    /// info) and returns those it accepted. With `kill_after = Some(k)`, the agent is killed
    /// with SIGKILL as soon as `k` events are accepted; events in flight at that moment may
    /// or may not have been accepted, and only those answered count.
    pub fn burst(&mut self, tag: &str, n: usize, kill_after: Option<usize>) -> Vec<Accepted> {
        let mut intake = self.intake();
        let mut writer = intake.stream.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let tag = tag.to_string();
        let feeder = std::thread::spawn(move || {
            for i in 0..n {
                let line = burst_line(&tag, i);
                if writer.write_all(line.as_bytes()).is_err() {
                    break;
                }
            }
        });
        let mut accepted = Vec::new();
        let mut line = String::new();
        while accepted.len() < n {
            line.clear();
            match intake.reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("intake answered `{line}`: {e}"));
            let seq = v["accepted"].as_u64().unwrap_or_else(|| panic!("intake refused a valid event: {line}"));
            let id = v["id"].as_str().unwrap_or_default().to_string();
            accepted.push(Accepted { seq, id });
            if kill_after == Some(accepted.len()) {
                self.proc.kill9();
            }
        }
        let _ = intake.stream.shutdown(std::net::Shutdown::Both);
        let _ = feeder.join();
        accepted
    }
}

/// The i-th event of a burst: every 10th an alarm, every 3rd a warning, the rest info.
pub fn burst_line(tag: &str, i: usize) -> String {
    if i % 10 == 0 {
        format!("{{\"kind\":\"test_alarm\",\"body\":{{\"note\":\"{tag} {i}\"}}}}\n")
    } else if i % 3 == 0 {
        format!("{{\"kind\":\"low_stock\",\"body\":{{\"doses_left\":{}}}}}\n", i % 50)
    } else {
        let lat = 64.75 + (i as f64) * 1e-5;
        format!("{{\"kind\":\"position\",\"body\":{{\"lat\":{lat},\"lon\":20.95}}}}\n")
    }
}

/// A connection to an agent's intake socket.
pub struct Intake {
    pub stream: UnixStream,
    pub reader: BufReader<UnixStream>,
}

impl Intake {
    /// Sends one line and returns the agent's JSON answer.
    pub fn send(&mut self, line: &str) -> Value {
        let mut text = line.trim_end().to_string();
        text.push('\n');
        self.stream.write_all(text.as_bytes()).unwrap_or_else(|e| panic!("intake write: {e}"));
        let mut answer = String::new();
        self.reader.read_line(&mut answer).unwrap_or_else(|e| panic!("intake read: {e}"));
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("intake answered `{answer}`: {e}"))
    }

    /// Sends one event and returns what was accepted; panics if it was refused.
    pub fn accept(&mut self, line: &str) -> Accepted {
        let v = self.send(line);
        Accepted {
            seq: v["accepted"].as_u64().unwrap_or_else(|| panic!("refused: {v}")),
            id: v["id"].as_str().unwrap_or_default().to_string(),
        }
    }
}

/// Asserts that the hub holds exactly the events `1..=last` of `device`, each once, and that
/// every accepted event is among them. Returns the number of stored events.
pub fn assert_stored_exactly_once(hub: &Hub, device: &str, accepted: &[Accepted]) -> usize {
    let mut events = hub.stored(device);
    events.sort_by_key(|e| e.seq);
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert!(seqs == expected, "stored sequence numbers of {device} must be 1..=N without gaps or repeats; {} stored", seqs.len());
    let ids: std::collections::HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "an event id is stored twice");
    for a in accepted {
        assert!(ids.contains(a.id.as_str()), "accepted event seq {} ({}) is missing at the hub", a.seq, a.id);
    }
    events.len()
}

/// Waits until the hub holds at least `n` events of `device`.
pub fn wait_for_events(hub: &Hub, device: &str, n: usize, timeout: Duration) -> Vec<Value> {
    wait_until(timeout, &format!("{n} events of {device} at the hub"), || {
        let events = hub.events(device);
        (events.len() >= n).then_some(events)
    })
}

/// Waits until the hub's database holds at least `n` events of `device` (no page limit, unlike
/// [`wait_for_events`]); returns how many it holds.
pub fn wait_for_stored(hub: &Hub, device: &str, n: usize, timeout: Duration) -> usize {
    wait_until(timeout, &format!("{n} events of {device} in the hub's database"), || {
        let stored = hub.stored_count(device);
        (stored >= n).then_some(stored)
    })
}
