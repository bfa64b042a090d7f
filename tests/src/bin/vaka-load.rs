//! `vaka-load`: simulates N devices' night traffic against a broker on loopback, bounded in
//! events and time, and prints what happened (sent, acked, resent, rate, ack latency). See
//! `vaka_e2e::load` for what each device does.
//!
//! ```text
//! vaka-load --port 1883 --devices 1000 --events 100000 --speed 600 --ack-timeout 5s
//! ```
//!
//! Exits 0 when every event it created was acked by the hub as committed, 2 when some were
//! not (the summary says how many), 1 on a bad argument (e.g. a non-loopback host).

use clap::Parser;
use jiff::SignedDuration;
use std::time::Duration;
use vaka_e2e::load::{self, LoadOpts};

#[derive(Parser, Debug)]
#[command(
    name = "vaka-load",
    about = "Simulated devices' night traffic against a loopback broker"
)]
struct Args {
    /// Broker host; loopback only (127.0.0.0/8, ::1, localhost).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 1883)]
    port: u16,
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Events in all; creation stops there, then the run waits for their acks.
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// Wall-time bound of the whole run, e.g. `5m`.
    #[arg(long, default_value = "5m")]
    duration: SignedDuration,
    /// Simulated seconds per real second (600: ten simulated minutes a second).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Status heartbeat interval, real time.
    #[arg(long, default_value = "60s")]
    heartbeat: SignedDuration,
    /// Resend an event not acked within this, real time (the agent's `uplink.ack_timeout`).
    #[arg(long, default_value = "30s")]
    ack_timeout: SignedDuration,
    #[arg(long, default_value_t = 100)]
    max_in_flight: usize,
    /// New connections per second at start.
    #[arg(long, default_value_t = 1000.0)]
    connect_rate: f64,
    #[arg(long, default_value = "load")]
    site: String,
    /// Device ids are `{prefix}-00000` …; use a new prefix for a new run against the same hub.
    #[arg(long, default_value = "load")]
    prefix: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the summary as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Print progress to stderr every 5 s.
    #[arg(long)]
    progress: bool,
}

fn real(d: SignedDuration, name: &str) -> anyhow::Result<Duration> {
    Duration::try_from(d).map_err(|_| anyhow::anyhow!("--{name} must not be negative"))
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let opts = LoadOpts {
        host: a.host,
        port: a.port,
        devices: a.devices,
        events: a.events,
        duration: real(a.duration, "duration")?,
        speed: a.speed,
        heartbeat: real(a.heartbeat, "heartbeat")?,
        ack_timeout: real(a.ack_timeout, "ack-timeout")?,
        max_in_flight: a.max_in_flight,
        connect_rate: a.connect_rate,
        site: a.site,
        prefix: a.prefix,
        seed: a.seed,
        progress: a.progress,
    };
    opts.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(load::run(opts))?;
    if a.json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.text());
    }
    if !summary.complete() {
        std::process::exit(2);
    }
    Ok(())
}
