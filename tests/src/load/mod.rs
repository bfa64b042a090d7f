//! The load generator: many simulated devices against a real broker and hub, on loopback only.
//!
//! Each device ([`device`]) has its own MQTT client id and TCP connection and behaves like a
//! `vaka-agent` in simulation mode: a night of home events (positions, camera-check results,
//! doses, now and then an alarm), a retained `status` heartbeat every `heartbeat`, per-device
//! `seq` 1, 2, 3 …, every event kept until the hub acks it and resent after `ack_timeout`.
//!
//! Bounds: at most `events` events in all (the run stops creating once they are made, then
//! waits for their acks), at most `duration` of wall time (then it stops wherever it is and
//! reports what is unacked), at most [`MAX_DEVICES`] devices, and only loopback brokers
//! ([`LoadOpts::validate`] refuses any other host before a packet is sent).
//!
//! `speed` compresses simulated time: at 600 a device lives ten simulated minutes per real
//! second (a position every 0.5 s, a camera check every 3 s). Heartbeats and ack timeouts stay
//! in real time, because the hub's supervision and the outbox run in real time.

pub mod device;
pub mod report;

pub use report::{DeviceReport, Summary};

use std::net::{IpAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::time::Instant;
use vaka_protocol::{DeviceId, SiteId};

/// More connections than this would pass this machine's open-file limit (20,000) with the
/// broker's own sockets counted in another process; 10,000 is what the benchmarks use.
pub const MAX_DEVICES: usize = 15_000;

/// A load run's settings.
#[derive(Debug, Clone)]
pub struct LoadOpts {
    /// Broker host: must resolve to loopback addresses only.
    pub host: String,
    pub port: u16,
    pub devices: usize,
    /// Events in all, over every device.
    pub events: u64,
    /// Wall-time bound of the whole run.
    pub duration: Duration,
    /// Simulated seconds per real second.
    pub speed: f64,
    pub heartbeat: Duration,
    pub ack_timeout: Duration,
    pub max_in_flight: usize,
    /// New connections per second at start.
    pub connect_rate: f64,
    pub site: String,
    /// Device ids are `{prefix}-{n:05}`; a second run against the same hub takes another
    /// prefix, since its seqs start at 1 again.
    pub prefix: String,
    pub seed: u64,
    /// Print progress to stderr every few seconds.
    pub progress: bool,
}

impl Default for LoadOpts {
    fn default() -> Self {
        LoadOpts {
            host: "127.0.0.1".into(),
            port: 1883,
            devices: 100,
            events: 10_000,
            duration: Duration::from_secs(300),
            speed: 1.0,
            heartbeat: Duration::from_secs(60),
            ack_timeout: Duration::from_secs(30),
            max_in_flight: 100,
            connect_rate: 1000.0,
            site: "load".into(),
            prefix: "load".into(),
            seed: 1,
            progress: false,
        }
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum LoadError {
    #[error("host `{host}` is not loopback ({addr}); the load generator only targets 127.0.0.0/8 or ::1")]
    NotLoopback { host: String, addr: IpAddr },
    #[error("host `{0}` does not resolve")]
    Unresolved(String),
    #[error("{0}")]
    Bound(String),
    #[error("bad id: {0}")]
    Id(String),
}

impl LoadOpts {
    /// Refuses non-loopback hosts and unbounded or absurd settings, before anything is sent.
    pub fn validate(&self) -> Result<(), LoadError> {
        let addrs: Vec<IpAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|_| LoadError::Unresolved(self.host.clone()))?
            .map(|a| a.ip())
            .collect();
        if addrs.is_empty() {
            return Err(LoadError::Unresolved(self.host.clone()));
        }
        if let Some(addr) = addrs.into_iter().find(|a| !a.is_loopback()) {
            return Err(LoadError::NotLoopback {
                host: self.host.clone(),
                addr,
            });
        }
        let bound = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(LoadError::Bound(what.to_string()))
            }
        };
        bound(
            (1..=MAX_DEVICES).contains(&self.devices),
            &format!("devices must be 1..={MAX_DEVICES}"),
        )?;
        bound(
            (1..=100_000_000).contains(&self.events),
            "events must be 1..=100,000,000",
        )?;
        bound(
            self.duration > Duration::ZERO && self.duration <= Duration::from_secs(6 * 3600),
            "duration must be > 0 and ≤ 6 h",
        )?;
        bound(
            self.speed.is_finite() && self.speed > 0.0 && self.speed <= 100_000.0,
            "speed must be in (0, 100000]",
        )?;
        bound(
            self.heartbeat >= Duration::from_millis(100),
            "heartbeat must be ≥ 100 ms",
        )?;
        bound(
            self.ack_timeout >= Duration::from_millis(100),
            "ack timeout must be ≥ 100 ms",
        )?;
        bound(
            (1..=65_535).contains(&self.max_in_flight),
            "max in flight must be 1..=65535",
        )?;
        bound(
            self.connect_rate.is_finite() && self.connect_rate > 0.0,
            "connect rate must be > 0",
        )?;
        SiteId::new(self.site.as_str()).map_err(|e| LoadError::Id(e.to_string()))?;
        DeviceId::new(format!("{}-00000", self.prefix))
            .map_err(|e| LoadError::Id(e.to_string()))?;
        Ok(())
    }
}

/// A run's live counters, readable while it runs, and its stop switch.
#[derive(Debug, Default)]
pub struct Progress {
    pub generated: AtomicU64,
    pub acked: AtomicU64,
    pub resent: AtomicU64,
    /// Devices with an MQTT session up now.
    pub connected: AtomicU64,
    /// Devices that finished (all their events acked, or the deadline passed).
    pub finished: AtomicU64,
    /// Set to end the run early, as if its deadline had passed.
    pub stop: AtomicBool,
}

/// What the devices share: settings and the run's counters.
pub struct Shared {
    pub host: String,
    pub port: u16,
    pub speed: f64,
    pub heartbeat: Duration,
    pub ack_timeout: Duration,
    pub max_in_flight: usize,
    pub start: Instant,
    pub deadline: Instant,
    /// Events that may still be created.
    pub budget: AtomicU64,
    pub progress: Arc<Progress>,
}

/// Runs the devices until every event is created and acked, or `duration` passed.
pub async fn run(opts: LoadOpts) -> Result<Summary, LoadError> {
    run_with(opts, Arc::new(Progress::default())).await
}

/// [`run`], with counters the caller can watch and a stop switch.
pub async fn run_with(opts: LoadOpts, progress: Arc<Progress>) -> Result<Summary, LoadError> {
    opts.validate()?;
    let start = Instant::now();
    let shared = Arc::new(Shared {
        host: opts.host.clone(),
        port: opts.port,
        speed: opts.speed,
        heartbeat: opts.heartbeat,
        ack_timeout: opts.ack_timeout,
        max_in_flight: opts.max_in_flight,
        start,
        deadline: start + opts.duration,
        budget: AtomicU64::new(opts.events),
        progress,
    });
    let site = SiteId::new(opts.site.as_str()).map_err(|e| LoadError::Id(e.to_string()))?;
    let mut tasks = Vec::with_capacity(opts.devices);
    for n in 0..opts.devices {
        let device = DeviceId::new(format!("{}-{n:05}", opts.prefix))
            .map_err(|e| LoadError::Id(e.to_string()))?;
        let spec = device::DeviceSpec {
            site: site.clone(),
            device,
            seed: opts.seed.wrapping_mul(1_000_003).wrapping_add(n as u64),
            connect_at: Duration::from_secs_f64(n as f64 / opts.connect_rate),
        };
        tasks.push(tokio::spawn(device::run(spec, shared.clone())));
    }
    let progress = opts.progress.then(|| {
        let shared = shared.clone();
        let total = opts.events;
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            every.tick().await;
            loop {
                every.tick().await;
                let p = &shared.progress;
                eprintln!(
                    "vaka-load: {:.0} s: connected {}, generated {} of {total}, acked {}, resent {}, devices done {}",
                    shared.start.elapsed().as_secs_f64(),
                    p.connected.load(Relaxed),
                    p.generated.load(Relaxed),
                    p.acked.load(Relaxed),
                    p.resent.load(Relaxed),
                    p.finished.load(Relaxed)
                );
            }
        })
    });
    let mut reports = Vec::with_capacity(tasks.len());
    for task in tasks {
        // A device task that panicked counts as a device that acked nothing.
        reports.push(task.await.unwrap_or_default());
    }
    if let Some(p) = progress {
        p.abort();
    }
    Ok(Summary::of(&reports, start.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(host: &str) -> LoadOpts {
        LoadOpts {
            host: host.into(),
            ..LoadOpts::default()
        }
    }

    #[test]
    fn only_loopback_hosts_are_accepted() {
        for ok in ["127.0.0.1", "127.3.2.1", "::1", "localhost"] {
            assert_eq!(to(ok).validate(), Ok(()), "{ok}");
        }
        for bad in [
            "10.0.0.1",
            "192.168.1.10",
            "172.16.0.1",
            "8.8.8.8",
            "0.0.0.0",
        ] {
            assert!(
                matches!(to(bad).validate(), Err(LoadError::NotLoopback { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn unbounded_or_absurd_runs_are_refused() {
        let mut o = to("127.0.0.1");
        o.devices = MAX_DEVICES + 1;
        assert!(matches!(o.validate(), Err(LoadError::Bound(_))));
        let mut o = to("127.0.0.1");
        o.duration = Duration::from_secs(7 * 3600);
        assert!(matches!(o.validate(), Err(LoadError::Bound(_))));
        let mut o = to("127.0.0.1");
        o.prefix = "Bad Prefix".into();
        assert!(matches!(o.validate(), Err(LoadError::Id(_))));
    }
}
