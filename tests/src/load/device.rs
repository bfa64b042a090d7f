//! One simulated device: the agent's event sources, outbox and uplink, in memory.
//!
//! What it reuses of `vaka-agent`, so that its traffic is the agent's:
//! - [`Night`] (the agent's simulation mode) decides what happens in the home: positions
//!   every 5 simulated minutes, a camera check every 30, doses, rarely an `sos`, a walk out
//!   of the geofence or a low battery;
//! - [`OutboxCore`] (the outbox's pure core) decides what goes on the wire: alarms first, at
//!   most `max_in_flight` unacked, everything in flight again on a new session, a resend after
//!   `ack_timeout`; an event leaves only when the hub's ack names it;
//! - [`link::client`] and [`MqttLink::options`] make the MQTT client as the agent does
//!   (TCP_NODELAY, keep-alive, packet limits), with the agent's client id `{site}-{device}`,
//!   a clean session and a retained `offline` last will.
//!
//! What differs from a real agent: the outbox is kept in memory, not in SQLite (10,000
//! fsyncing outboxes on one machine would measure the load generator's disk, not the hub),
//! and a camera check's verdict is drawn at random instead of analysing frames.
//!
//! Invariants: `seq` goes 1, 2, 3 … per device; a resend carries the same bytes (same event
//! id), so the hub can recognise it; an event created is kept until acked or the run's
//! deadline passes.

use super::report::DeviceReport;
use super::Shared;
use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{Event, LastWill, Packet, QoS};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use vaka_agent::link::{self, MqttLink};
use vaka_agent::outbox::{Action, Admission, Input, Limits, OutboxCore};
use vaka_agent::simulator::{Happening, Night};
use vaka_protocol::kinds::{CameraCheck, Verdict};
use vaka_protocol::{Ack, Channel, DeviceId, Envelope, EventBody, Severity, SiteId, Status, Topic};

/// What one device needs to know.
pub struct DeviceSpec {
    pub site: SiteId,
    pub device: DeviceId,
    pub seed: u64,
    /// Real time from the run's start to the device's first connect (connects are spread).
    pub connect_at: Duration,
}

/// An event waiting for its ack.
struct Pending {
    payload: Vec<u8>,
    first_sent: Option<Instant>,
}

/// What the driver task forwards from rumqttc's event loop.
enum Net {
    Connected,
    Disconnected,
    Ack(Vec<u8>),
}

/// Polls the event loop for ever, forwarding what matters; sleeps a jittered back-off after a
/// connection error (as the agent's uplink driver does).
async fn drive(mut eventloop: rumqttc::EventLoop, tx: mpsc::UnboundedSender<Net>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    loop {
        let forward = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => Net::Connected,
            Ok(Event::Incoming(Packet::Publish(p))) => Net::Ack(p.payload.to_vec()),
            Ok(_) => continue,
            Err(_) => {
                if tx.send(Net::Disconnected).is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..2000))).await;
                continue;
            }
        };
        if tx.send(forward).is_err() {
            return;
        }
    }
}

/// A camera check's result as a device reports it; the verdict drawn with a plausible night's
/// shares (most people rest, a few are up or unclear, now and then a camera fails).
fn camera_check(rng: &mut StdRng) -> EventBody {
    let roll: f64 = rng.random();
    let verdict = match roll {
        r if r < 0.80 => Verdict::Resting,
        r if r < 0.90 => Verdict::MovingInBed,
        r if r < 0.94 => Verdict::NotInBed,
        r if r < 0.98 => Verdict::Unclear,
        _ => Verdict::CameraFault,
    };
    EventBody::CameraCheck(CameraCheck {
        check_id: None,
        verdict,
        refusal: None,
        confidence: rng.random_range(0.55..0.99),
        detail: None,
        frames: 5,
        brightness: Some(rng.random_range(8.0..40.0)),
        motion_in_zone: Some(rng.random_range(0.0..0.05)),
        motion_outside: Some(rng.random_range(0.0..0.02)),
        presence: Some(rng.random_range(0.0..1.0)),
        presence_strong: Some(rng.random_range(0.0..0.5)),
        duration_ms: rng.random_range(1900..2100),
    })
}

struct Device {
    spec: DeviceSpec,
    shared: Arc<Shared>,
    client: rumqttc::AsyncClient,
    core: OutboxCore,
    pending: HashMap<u64, Pending>,
    next_seq: u64,
    connected: bool,
    report: DeviceReport,
    rng: StdRng,
    events_topic: String,
    status_topic: String,
}

impl Device {
    fn carry_out(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { seq } => self.send(seq),
                Action::Delete { seq } => {
                    if let Some(p) = self.pending.remove(&seq) {
                        if let Some(sent) = p.first_sent {
                            self.report
                                .ack_latency_us
                                .push(sent.elapsed().as_micros() as u64);
                        }
                    }
                }
            }
        }
    }

    fn send(&mut self, seq: u64) {
        let Some(p) = self.pending.get_mut(&seq) else {
            return;
        };
        if p.first_sent.is_some() {
            self.report.resent += 1;
            self.shared.progress.resent.fetch_add(1, Relaxed);
        } else {
            p.first_sent = Some(Instant::now());
        }
        self.report.sent += 1;
        // A full request queue is no loss: the core sends it again after the ack timeout.
        let _ = self.client.try_publish(
            self.events_topic.as_str(),
            QoS::AtLeastOnce,
            false,
            p.payload.clone(),
        );
    }

    fn status(&mut self) {
        let status = Status::online(
            Timestamp::now(),
            self.core.len() as u64,
            self.shared.heartbeat.as_secs().max(1) as u32,
            "vaka-load",
        );
        if self
            .client
            .try_publish(
                self.status_topic.as_str(),
                QoS::AtLeastOnce,
                true,
                status.encode(),
            )
            .is_ok()
        {
            self.report.heartbeats += 1;
        }
    }

    /// Takes one event into the outbox if the run's budget allows; `false` when it is spent.
    fn create(&mut self, body: EventBody) -> bool {
        let taken = self
            .shared
            .budget
            .fetch_update(Relaxed, Relaxed, |left| left.checked_sub(1))
            .is_ok();
        if !taken {
            return false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let envelope = Envelope::new(
            self.spec.device.clone(),
            seq,
            uuid::Uuid::now_v7(),
            Timestamp::now(),
            body,
        );
        let payload = envelope.encode();
        *self.report.kinds.entry(envelope.kind()).or_insert(0) += 1;
        if envelope.severity == Severity::Alarm {
            self.report.alarms += 1;
        }
        self.report.generated += 1;
        self.shared.progress.generated.fetch_add(1, Relaxed);
        let size = payload.len() as u64;
        // The limits allow far more than a run creates, so nothing is ever evicted.
        if let Admission::Refuse = self.core.admit(envelope.severity, size) {
            return true;
        }
        self.pending.insert(
            seq,
            Pending {
                payload,
                first_sent: None,
            },
        );
        let actions = self.core.handle(
            std::time::Instant::now(),
            Input::Accepted {
                seq,
                severity: envelope.severity,
                size,
                evicted: Vec::new(),
            },
        );
        self.carry_out(actions);
        true
    }

    fn on_ack(&mut self, payload: &[u8]) {
        let Ok(ack) = Ack::decode(payload) else {
            return;
        };
        let committed = ack
            .committed
            .iter()
            .filter(|s| self.pending.contains_key(s))
            .count() as u64;
        let rejected = ack
            .rejected
            .iter()
            .filter(|r| self.pending.contains_key(&r.seq))
            .count() as u64;
        self.report.acked += committed;
        self.report.rejected += rejected;
        self.shared.progress.acked.fetch_add(committed, Relaxed);
        let mut seqs = ack.committed;
        seqs.extend(ack.rejected.into_iter().map(|r| r.seq));
        let actions = self
            .core
            .handle(std::time::Instant::now(), Input::Acked { seqs });
        self.carry_out(actions);
    }
}

/// Runs one device until its share of the run is created and acked, or the deadline.
pub async fn run(spec: DeviceSpec, shared: Arc<Shared>) -> DeviceReport {
    let start = shared.start;
    tokio::time::sleep_until(start + spec.connect_at).await;
    let client_id = format!("{}-{}", spec.site, spec.device);
    let topic = |channel| Topic::new(spec.site.clone(), spec.device.clone(), channel).to_string();
    let (events_topic, status_topic, acks_topic) = (
        topic(Channel::Events),
        topic(Channel::Status),
        topic(Channel::Acks),
    );
    let mut options = MqttLink::plaintext(shared.host.clone(), shared.port).options(&client_id);
    options.set_clean_session(true);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_last_will(LastWill::new(
        status_topic.as_str(),
        Status::offline().encode(),
        QoS::AtLeastOnce,
        true,
    ));
    options.set_inflight(
        u16::try_from(shared.max_in_flight)
            .unwrap_or(u16::MAX)
            .max(1),
    );
    let (client, eventloop) = link::client(options, shared.max_in_flight * 2 + 64);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(drive(eventloop, tx, spec.seed));

    let limits = Limits {
        max_in_flight: shared.max_in_flight,
        ack_timeout: shared.ack_timeout,
        max_bytes: 1 << 40,
    };
    // The first event comes within the first simulated 5 minutes, so devices do not all start
    // their nights in step.
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let first = SignedDuration::from_secs(rng.random_range(1..300));
    let mut night = Night::new(spec.seed, first);
    let mut device = Device {
        spec,
        shared: shared.clone(),
        client,
        core: OutboxCore::new(limits),
        pending: HashMap::new(),
        next_seq: 1,
        connected: false,
        report: DeviceReport::default(),
        rng,
        events_topic,
        status_topic,
    };
    let night_start = Instant::now();
    let speed = shared.speed;
    let sim_now = move || {
        SignedDuration::try_from(night_start.elapsed().mul_f64(speed))
            .unwrap_or(SignedDuration::MAX)
    };
    let mut generating = true;
    let mut heartbeat =
        tokio::time::interval_at(Instant::now() + shared.heartbeat, shared.heartbeat);
    let mut tick = tokio::time::interval(
        (shared.ack_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next_event = night
            .next_due()
            .map(|due| {
                let ahead = due - sim_now();
                Instant::now()
                    + if ahead.is_negative() {
                        Duration::ZERO
                    } else {
                        ahead.unsigned_abs().div_f64(speed)
                    }
            })
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(shared.deadline) => break,
            Some(net) = rx.recv() => match net {
                Net::Connected => {
                    if !device.connected {
                        shared.progress.connected.fetch_add(1, Relaxed);
                    }
                    device.connected = true;
                    device.report.connects += 1;
                    let _ = device.client.try_subscribe(acks_topic.as_str(), QoS::AtLeastOnce);
                    device.status();
                    let actions = device.core.handle(std::time::Instant::now(), Input::Connected);
                    device.carry_out(actions);
                }
                Net::Disconnected => {
                    if device.connected {
                        device.connected = false;
                        shared.progress.connected.fetch_sub(1, Relaxed);
                        let actions = device.core.handle(std::time::Instant::now(), Input::Disconnected);
                        device.carry_out(actions);
                    }
                }
                Net::Ack(payload) => device.on_ack(&payload),
            },
            () = tokio::time::sleep_until(next_event), if generating => {
                for happening in night.handle(sim_now(), Timestamp::now()) {
                    let body = match happening {
                        Happening::Event(body) => body,
                        Happening::CameraCheck => camera_check(&mut device.rng),
                    };
                    if !device.create(body) {
                        generating = false;
                        break;
                    }
                }
            }
            _ = heartbeat.tick() => if device.connected { device.status() },
            _ = tick.tick() => {
                let actions = device.core.handle(std::time::Instant::now(), Input::Tick);
                device.carry_out(actions);
                if shared.budget.load(Relaxed) == 0 {
                    generating = false;
                }
                if shared.progress.stop.load(Relaxed) {
                    break;
                }
            }
        }
        if !generating && device.core.is_empty() {
            break;
        }
    }
    // A clean goodbye, as the agent's shutdown: `offline`, then disconnect.
    if device.connected {
        let _ = device.client.try_publish(
            device.status_topic.as_str(),
            QoS::AtLeastOnce,
            true,
            Status::offline().encode(),
        );
        let _ = device.client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while rx.recv().await.is_some() {}
        })
        .await;
    }
    driver.abort();
    if device.connected {
        shared.progress.connected.fetch_sub(1, Relaxed);
    }
    shared.progress.finished.fetch_add(1, Relaxed);
    device.report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_check_results_are_valid_events_with_mostly_resting_verdicts() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut resting = 0;
        for _ in 0..1000 {
            let body = camera_check(&mut rng);
            body.validate().unwrap_or_else(|e| panic!("{body:?}: {e}"));
            if let EventBody::CameraCheck(c) = body {
                resting += usize::from(c.verdict == Verdict::Resting);
            }
        }
        assert!((700..900).contains(&resting), "{resting} of 1000 resting");
    }
}
