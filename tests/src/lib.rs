//! Harness for Vaka's end-to-end tests and benchmarks.
//!
//! Everything here drives real processes: the `vaka-hub` and `vaka-agent` binaries built from
//! this workspace, a real `mosquitto` started on a free loopback port with a generated config
//! (from `config/mosquitto.conf.template`), and the Mosquitto command-line clients as an
//! independent MQTT peer. Each process writes its log to a file in the test's temporary
//! directory; a failing test prints those logs.
//!
//! Waiting is always for a condition with a deadline ([`wait_until`]), never a bare sleep.

pub mod faults;
pub mod load;
pub mod pg;
pub mod pki;
pub mod procs;

pub use pg::PgDb;
pub use pki::Pki;
pub use faults::{outbox_pending, Fed, LinkProxy, StoredEvent};
pub use procs::{
    assert_stored_exactly_once, burst_line, wait_for_events, wait_for_stored, Accepted, Agent, AgentOpts,
    Broker, Hub, HubOpts, Intake, Mosquitto, Proc, Response,
};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root (the directory holding the top-level Cargo.toml).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Path of a workspace binary, building `vaka-hub` and `vaka-agent` once per process.
/// `VAKA_PROFILE=release` builds and uses release binaries (the benchmarks do): the hub in
/// the `release` profile and the agent in the `device` profile it ships in (release,
/// optimised for size); `VAKA_BIN_DIR` overrides where they are looked for and skips the
/// build.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    let (hub_dir, agent_dir) = BUILT.get_or_init(|| {
        if let Ok(dir) = std::env::var("VAKA_BIN_DIR") {
            return (PathBuf::from(&dir), PathBuf::from(dir));
        }
        let release = std::env::var("VAKA_PROFILE").is_ok_and(|p| p == "release");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| workspace_root().join("target"));
        // The same features as `scripts/test`, so a test run alone builds what CI tests:
        // the agent with its real-camera (V4L2) source.
        let both = ["-p", "vaka-hub", "-p", "vaka-agent", "--bins", "--features", "vaka-agent/camera-v4l2"];
        if !release {
            cargo_build(&both);
            return (target.join("debug"), target.join("debug"));
        }
        cargo_build(&["-p", "vaka-hub", "--bins", "--release"]);
        let agent = ["-p", "vaka-agent", "--bins", "--features", "camera-v4l2", "--profile", "device"];
        cargo_build(&agent);
        (target.join("release"), target.join("device"))
    });
    let dir = if name == "vaka-agent" { agent_dir } else { hub_dir };
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing", path.display());
    path
}

fn cargo_build(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(workspace_root())
        .arg("build")
        .arg("--quiet")
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the binaries: {e}"));
    assert!(status.success(), "cargo build {} failed", args.join(" "));
}

/// Prints a line of a fault-suite test's figures on stderr, past the test harness's output
/// capture (which takes only `print!`-style macros), so that CI logs show them for passing
/// tests too.
pub fn print_figures(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The seed of a test's random choices: `VAKA_FAULT_SEED` when set (to replay a failed run),
/// else taken from the clock. Tests print it.
pub fn seed() -> u64 {
    match std::env::var("VAKA_FAULT_SEED") {
        Ok(s) => s.trim().parse().unwrap_or_else(|e| panic!("VAKA_FAULT_SEED `{s}`: {e}")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default(),
    }
}

/// `n` distinct points of `range`, ascending, chosen from `seed` (splitmix64).
pub fn random_points(seed: u64, n: usize, range: std::ops::Range<usize>) -> Vec<usize> {
    assert!(range.len() >= n, "cannot choose {n} distinct points of {range:?}");
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut points = std::collections::BTreeSet::new();
    while points.len() < n {
        points.insert(range.start + (next() % range.len() as u64) as usize);
    }
    points.into_iter().collect()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// A test's own directory, removed afterwards unless `VAKA_KEEP_TEMP` is set (to read the logs
/// of a failed run).
pub fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("vaka-{name}-"))
        .disable_cleanup(std::env::var_os("VAKA_KEEP_TEMP").is_some())
        .tempdir()
        .unwrap_or_else(|e| panic!("no temp dir: {e}"))
}

/// A consent window of `hours` either side of the local time `offset_h` hours from now.
pub fn window_around(offset_h: i64, hours: i64) -> String {
    let now = jiff::Timestamp::now().in_tz("Europe/Stockholm").unwrap();
    let at = |h: i64| (now.clone() + jiff::SignedDuration::from_hours(offset_h + h)).strftime("%H:%M").to_string();
    format!("{}-{}", at(-hours), at(hours))
}

/// JPEG start-of-image marker and PNG signature.
pub const JPEG_SOI: &[u8] = &[0xFF, 0xD8, 0xFF];
pub const PNG_SIG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// Every file under `dir` that holds image bytes (SQLite files, WAL, logs, anything).
pub fn files_with_image_bytes(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else { continue };
            for (name, sig) in [("JPEG", JPEG_SOI), ("PNG", PNG_SIG)] {
                if bytes.windows(sig.len()).any(|w| w == sig) {
                    found.push(format!("{name} bytes in {}", path.display()));
                }
            }
        }
    }
    found
}

/// A log line without its terminal colour codes (the agent and hub colour their logs).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the end of the escape sequence (its final letter).
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
