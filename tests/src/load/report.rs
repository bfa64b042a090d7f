//! What a load run did, added up over its devices: the pure part of the load generator.
//!
//! Every simulated device returns a [`DeviceReport`]; [`Summary::of`] adds them up. Counters
//! come in pairs (generated / acked, sent / resent) so that a gap is visible: a run is
//! complete exactly when every generated event was acked (`unacked == 0`).

use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// One simulated device's counts at the end of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceReport {
    /// Events created and kept until acked (each got the device's next `seq`).
    pub generated: u64,
    /// Events the hub acked as committed.
    pub acked: u64,
    /// Events the hub acked as rejected (should be none: every event is valid).
    pub rejected: u64,
    /// Event publishes, first sends and resends.
    pub sent: u64,
    /// Publishes of an event that had been sent before (ack timeout or reconnect).
    pub resent: u64,
    /// Status (heartbeat) publishes.
    pub heartbeats: u64,
    /// MQTT sessions made (ConnAcks).
    pub connects: u64,
    /// Alarms among the generated events.
    pub alarms: u64,
    /// Generated events per kind.
    pub kinds: BTreeMap<&'static str, u64>,
    /// From the first send of an event to its ack, in microseconds, one per acked event.
    pub ack_latency_us: Vec<u64>,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub devices: usize,
    pub elapsed: Duration,
    pub generated: u64,
    pub acked: u64,
    pub rejected: u64,
    pub unacked: u64,
    pub sent: u64,
    pub resent: u64,
    pub heartbeats: u64,
    pub connects: u64,
    pub alarms: u64,
    pub kinds: BTreeMap<&'static str, u64>,
    /// Acked events per second over the whole run.
    pub rate: f64,
    /// Ack latency p50, p99 and max; `None` when nothing was acked.
    pub ack_latency: Option<(Duration, Duration, Duration)>,
}

/// The `p`-quantile (0.0–1.0) of sorted samples, nearest rank; `None` when empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() as f64 * p.clamp(0.0, 1.0)).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
}

impl Summary {
    pub fn of(reports: &[DeviceReport], elapsed: Duration) -> Summary {
        let sum = |f: fn(&DeviceReport) -> u64| reports.iter().map(f).sum::<u64>();
        let mut latencies: Vec<u64> = reports
            .iter()
            .flat_map(|r| r.ack_latency_us.iter().copied())
            .collect();
        latencies.sort_unstable();
        let mut kinds = BTreeMap::new();
        for r in reports {
            for (kind, n) in &r.kinds {
                *kinds.entry(*kind).or_insert(0) += n;
            }
        }
        let (generated, acked, rejected) =
            (sum(|r| r.generated), sum(|r| r.acked), sum(|r| r.rejected));
        let us = |p| percentile(&latencies, p).map(Duration::from_micros);
        Summary {
            devices: reports.len(),
            elapsed,
            generated,
            acked,
            rejected,
            unacked: generated.saturating_sub(acked + rejected),
            sent: sum(|r| r.sent),
            resent: sum(|r| r.resent),
            heartbeats: sum(|r| r.heartbeats),
            connects: sum(|r| r.connects),
            alarms: sum(|r| r.alarms),
            kinds,
            rate: acked as f64 / elapsed.as_secs_f64().max(1e-9),
            ack_latency: us(0.5)
                .zip(us(0.99))
                .zip(us(1.0))
                .map(|((a, b), c)| (a, b, c)),
        }
    }

    /// Whether every generated event was acked as committed.
    pub fn complete(&self) -> bool {
        self.unacked == 0 && self.rejected == 0
    }

    pub fn to_json(&self) -> serde_json::Value {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        json!({
            "devices": self.devices,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "generated": self.generated,
            "acked": self.acked,
            "rejected": self.rejected,
            "unacked": self.unacked,
            "sent": self.sent,
            "resent": self.resent,
            "heartbeats": self.heartbeats,
            "connects": self.connects,
            "alarms": self.alarms,
            "kinds": self.kinds,
            "rate": self.rate,
            "ack_latency_ms": self.ack_latency.map(|(p50, p99, max)| json!({"p50": ms(p50), "p99": ms(p99), "max": ms(max)})),
        })
    }

    /// A few lines for people.
    pub fn text(&self) -> String {
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        let latency = match self.ack_latency {
            Some((p50, p99, max)) => format!("p50 {}, p99 {}, max {}", ms(p50), ms(p99), ms(max)),
            None => "none acked".into(),
        };
        let kinds: Vec<String> = self.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        format!(
            "devices {}, {:.1} s\ngenerated {} (alarms {}), acked {}, rejected {}, unacked {}\n\
             sent {} (resent {}), heartbeats {}, sessions {}\nrate {:.0} acked events/s; ack latency {latency}\nkinds: {}\n",
            self.devices,
            self.elapsed.as_secs_f64(),
            self.generated,
            self.alarms,
            self.acked,
            self.rejected,
            self.unacked,
            self.sent,
            self.resent,
            self.heartbeats,
            self.connects,
            self.rate,
            kinds.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_takes_the_nearest_rank() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 0.5), Some(50));
        assert_eq!(percentile(&samples, 0.99), Some(99));
        assert_eq!(percentile(&samples, 1.0), Some(100));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn summary_adds_up_devices_and_counts_what_is_unacked() {
        let a = DeviceReport {
            generated: 10,
            acked: 10,
            sent: 12,
            resent: 2,
            ack_latency_us: vec![1000; 10],
            kinds: [("position", 10)].into(),
            ..Default::default()
        };
        let b = DeviceReport {
            generated: 5,
            acked: 3,
            sent: 5,
            ack_latency_us: vec![3000; 3],
            kinds: [("position", 2), ("sos", 3)].into(),
            alarms: 3,
            ..Default::default()
        };
        let s = Summary::of(&[a, b], Duration::from_secs(1));
        assert_eq!(
            (s.generated, s.acked, s.unacked, s.resent, s.alarms),
            (15, 13, 2, 2, 3)
        );
        assert!(!s.complete());
        assert_eq!(s.kinds.get("position"), Some(&12));
        assert_eq!(s.ack_latency.map(|l| l.2), Some(Duration::from_millis(3)));
        assert_eq!(s.to_json()["unacked"], 2);
    }
}
