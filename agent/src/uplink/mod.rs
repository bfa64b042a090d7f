//! The MQTT session to the hub's broker.
//!
//! Two tasks. The *driver* ([`drive`]) does nothing but poll rumqttc's event loop, forward what
//! arrives, and sleep a jittered back-off after a connection error before polling (and thereby
//! reconnecting) again. The *session* task ([`Uplink::run`]) reacts: it never awaits the
//! client (only `try_publish`/`try_subscribe`), so it cannot block the event loop.
//!
//! Invariants:
//! - Durability is the outbox's job. The session is clean (rumqttc drops its queue when the
//!   broker has no session for us); on every ConnAck the outbox marks everything in flight as
//!   waiting and sends it again, most severe first.
//! - Events leave on `vaka/v1/{site}/{device}/events` with QoS 1. A PUBACK empties nothing;
//!   only the hub's [`Ack`] on our `acks` topic deletes events.
//! - `status` is retained: `online` with the outbox depth on connect and every heartbeat; the
//!   last will is `offline`, and a clean shutdown publishes `offline` itself.
//! - A connection that brings nothing from the broker for [`silence_limit`] (1.25 ×
//!   keep-alive) is dropped and made again: a half-open connection is noticed within
//!   1.5 × keep-alive, where rumqttc alone would take about 2 ×.
//! - A connection loss is logged at WARN once per outage, a reconnection at INFO. Malformed
//!   acks and commands are logged and counted; they never stop the session.

pub mod backoff;

use crate::camera::service::{CheckRequest, Request as CameraRequest};
use crate::config::AgentConfig;
use crate::outbox::{OutboxHandle, Publish};
use backoff::Backoff;
use jiff::Timestamp;
use rand::Rng;
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, Outgoing, Packet, QoS};
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use vaka_protocol::{
    Ack, Channel, Command, CommandBody, DeviceId, PictureMessage, SiteId, Status, Topic,
};

/// What the driver reports to the session task.
#[derive(Debug)]
enum SessionEvent {
    Connected,
    Disconnected,
    Message { topic: String, payload: Vec<u8> },
    Closed,
}

/// The uplink's channels to the rest of the agent.
pub struct Channels {
    /// Events from the outbox, to publish.
    pub publishes: mpsc::UnboundedReceiver<Publish>,
    /// Camera requests from the hub's commands, to the camera service.
    pub camera: mpsc::UnboundedSender<CameraRequest>,
    /// Snapshots and calibration pictures from the camera service, to publish at QoS 0 and
    /// forget.
    pub snapshots: mpsc::UnboundedReceiver<PictureMessage>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    published: u64,
    publish_failed: u64,
    snapshots_sent: u64,
    snapshots_dropped: u64,
    acks: u64,
    malformed_acks: u64,
    commands: u64,
    malformed_commands: u64,
}

pub struct Uplink {
    client: AsyncClient,
    site: SiteId,
    device: DeviceId,
    heartbeat: Duration,
    ack_timeout: Duration,
    outbox: OutboxHandle,
    camera: mpsc::UnboundedSender<CameraRequest>,
    connected: bool,
    counters: Counters,
}

fn topic(site: &SiteId, device: &DeviceId, channel: Channel) -> String {
    Topic::new(site.clone(), device.clone(), channel).to_string()
}

impl Uplink {
    /// Runs the session until `shutdown` resolves, then publishes `offline` and disconnects.
    pub async fn run(
        config: &AgentConfig,
        outbox: OutboxHandle,
        channels: Channels,
        shutdown: impl Future<Output = ()>,
    ) {
        let Channels { mut publishes, camera, mut snapshots } = channels;
        let mut options = config.link.options(&config.client_id);
        options.set_clean_session(true);
        options.set_last_will(LastWill::new(
            topic(&config.site, &config.device_id, Channel::Status),
            Status::offline().encode(),
            QoS::AtLeastOnce,
            true,
        ));
        let max_in_flight = config.uplink.max_in_flight;
        options.set_inflight(u16::try_from(max_in_flight).unwrap_or(u16::MAX).max(1));
        // Room for a full window of events plus control messages; try_publish never blocks.
        let (client, eventloop) = crate::link::client(options, max_in_flight * 2 + 64);
        let (session_tx, mut session_rx) = mpsc::unbounded_channel();
        let backoff = Backoff::new(config.uplink.reconnect_min, config.uplink.reconnect_max);
        let driver = tokio::spawn(drive(eventloop, session_tx, backoff, config.link.keep_alive));

        let mut uplink = Uplink {
            client,
            site: config.site.clone(),
            device: config.device_id.clone(),
            heartbeat: config.uplink.heartbeat,
            ack_timeout: config.uplink.ack_timeout,
            outbox,
            camera,
            connected: false,
            counters: Counters::default(),
        };
        let mut heartbeat = tokio::time::interval(uplink.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let tick_every =
            (uplink.ack_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(event) = session_rx.recv() => {
                    if matches!(event, SessionEvent::Connected) {
                        // The status goes out with the ConnAck; the next heartbeat is a full
                        // interval later.
                        heartbeat.reset();
                    }
                    uplink.on_session_event(event);
                }
                Some(p) = publishes.recv() => uplink.publish_event(p),
                Some(s) = snapshots.recv() => uplink.publish_snapshot(s),
                _ = heartbeat.tick() => {
                    if uplink.connected {
                        uplink.publish_status();
                    }
                }
                _ = tick.tick() => uplink.outbox.tick(),
            }
        }
        uplink.close(&mut session_rx).await;
        driver.abort();
    }

    fn on_session_event(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Connected => {
                self.connected = true;
                for channel in [Channel::Acks, Channel::Cmd] {
                    let t = topic(&self.site, &self.device, channel);
                    if let Err(e) = self.client.try_subscribe(t.as_str(), QoS::AtLeastOnce) {
                        warn!(topic = %t, error = %e, "Subscribe could not be queued");
                    }
                }
                self.publish_status();
                self.outbox.connected();
            }
            SessionEvent::Disconnected => {
                if self.connected {
                    self.connected = false;
                    self.outbox.disconnected();
                }
            }
            SessionEvent::Message { topic, payload } => self.on_message(&topic, &payload),
            SessionEvent::Closed => {}
        }
    }

    fn publish_event(&mut self, p: Publish) {
        let t = topic(&self.site, &self.device, Channel::Events);
        match self.client.try_publish(t, QoS::AtLeastOnce, false, p.payload.to_vec()) {
            Ok(()) => self.counters.published += 1,
            Err(e) => {
                // The outbox resends it after ack_timeout; nothing is lost.
                self.counters.publish_failed += 1;
                warn!(seq = p.seq, error = %e, "Event publish could not be queued; will resend after {:?}", self.ack_timeout);
            }
        }
    }

    /// A snapshot (or calibration picture) goes out at QoS 0 or not at all: it is never
    /// queued, stored or resent (a broker would otherwise keep it for an absent hub, possibly
    /// on disk).
    fn publish_snapshot(&mut self, snapshot: PictureMessage) {
        let check_id = match &snapshot {
            PictureMessage::Snapshot(s) => s.check_id.clone(),
            PictureMessage::Calibration(c) => c.request_id.clone(),
        };
        if !self.connected {
            self.counters.snapshots_dropped += 1;
            warn!(%check_id, "Snapshot dropped: not connected to the broker");
            return;
        }
        let t = topic(&self.site, &self.device, Channel::Snapshot);
        match self.client.try_publish(t, QoS::AtMostOnce, false, snapshot.encode()) {
            Ok(()) => {
                self.counters.snapshots_sent += 1;
                info!(%check_id, "Snapshot sent to the hub");
            }
            Err(e) => {
                self.counters.snapshots_dropped += 1;
                warn!(%check_id, error = %e, "Snapshot could not be queued; dropped");
            }
        }
    }

    fn publish_status(&mut self) {
        let status = Status::online(
            Timestamp::now(),
            self.outbox.depth(),
            u32::try_from(self.heartbeat.as_secs()).unwrap_or(u32::MAX).max(1),
            env!("CARGO_PKG_VERSION"),
        );
        let t = topic(&self.site, &self.device, Channel::Status);
        if let Err(e) = self.client.try_publish(t, QoS::AtLeastOnce, true, status.encode()) {
            warn!(error = %e, "Status publish could not be queued");
        }
    }

    fn on_message(&mut self, topic: &str, payload: &[u8]) {
        let channel =
            Topic::parse(topic).ok().filter(|t| t.device == self.device && t.site == self.site);
        match channel.map(|t| t.channel) {
            Some(Channel::Acks) => match Ack::decode(payload) {
                Ok(ack) => {
                    self.counters.acks += 1;
                    debug!(
                        committed = ack.committed.len(),
                        rejected = ack.rejected.len(),
                        "Ack received"
                    );
                    self.outbox.ack(ack);
                }
                Err(e) => {
                    self.counters.malformed_acks += 1;
                    warn!(
                        topic,
                        malformed = self.counters.malformed_acks,
                        "Malformed ack ignored: {e}"
                    );
                }
            },
            Some(Channel::Cmd) => match Command::decode(payload) {
                Ok(cmd) => {
                    self.counters.commands += 1;
                    self.on_command(cmd);
                }
                Err(e) => {
                    self.counters.malformed_commands += 1;
                    warn!(
                        topic,
                        malformed = self.counters.malformed_commands,
                        "Malformed command ignored: {e}"
                    );
                }
            },
            _ => debug!(topic, "Message on an unexpected topic ignored"),
        }
    }

    fn on_command(&mut self, cmd: Command) {
        info!(command = %cmd.id, "Command received: {:?}", cmd.body);
        match cmd.body {
            CommandBody::Ping(_) => self.publish_status(),
            CommandBody::CameraCheck { check_id, deadline } => {
                self.to_camera(CameraRequest::Check(CheckRequest {
                    check_id: Some(check_id),
                    deadline: Some(deadline),
                }))
            }
            CommandBody::Snapshot { check_id } => {
                self.to_camera(CameraRequest::Snapshot { check_id })
            }
            CommandBody::Calibrate { request_id } => {
                self.to_camera(CameraRequest::Calibrate { request_id })
            }
            CommandBody::SetBedZone { bed_zone } => {
                self.to_camera(CameraRequest::SetBedZone { corners: bed_zone })
            }
        }
    }

    fn to_camera(&self, request: CameraRequest) {
        if self.camera.send(request).is_err() {
            warn!("Camera request ignored: the camera service has stopped");
        }
    }

    /// Clean shutdown: retained `offline` (the broker would not send the will after a clean
    /// disconnect), then DISCONNECT, waiting at most a second for both to go out.
    async fn close(&mut self, session_rx: &mut mpsc::UnboundedReceiver<SessionEvent>) {
        let c = self.counters;
        info!(
            published = c.published,
            publish_failed = c.publish_failed,
            snapshots_sent = c.snapshots_sent,
            snapshots_dropped = c.snapshots_dropped,
            acks = c.acks,
            malformed_acks = c.malformed_acks,
            commands = c.commands,
            malformed_commands = c.malformed_commands,
            "Uplink stopping"
        );
        if !self.connected {
            return;
        }
        let t = topic(&self.site, &self.device, Channel::Status);
        let _ = self.client.try_publish(t, QoS::AtLeastOnce, true, Status::offline().encode());
        let _ = self.client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(e) = session_rx.recv().await {
                if matches!(e, SessionEvent::Closed | SessionEvent::Disconnected) {
                    return;
                }
            }
        })
        .await;
    }
}

/// How long a connection may bring nothing from the broker before the driver drops it.
///
/// rumqttc sends a PINGREQ every keep-alive and fails only when the *next* one is due with
/// the first unanswered, about 2 × keep-alive after the line went quiet. A half-open
/// connection (a NAT or a mobile network silently dropping the traffic, the socket still open)
/// must be noticed within 1.5 × keep-alive. A healthy connection brings at least a PINGRESP
/// every keep-alive plus a round trip, so 1.25 × keep-alive leaves a quarter of it for the
/// round trip and still notices within 1.5 ×. `None` when keep-alive is off.
pub fn silence_limit(keep_alive: Duration) -> Option<Duration> {
    (!keep_alive.is_zero()).then(|| keep_alive * 5 / 4)
}

/// Why the driver gave up on a connection.
enum Lost {
    Error(rumqttc::ConnectionError),
    Silent { limit: Duration },
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::Error(e) => e.fmt(f),
            Lost::Silent { limit } => {
                write!(f, "nothing from the broker for {limit:?}, not even a ping answer (half-open connection)")
            }
        }
    }
}

/// Polls the event loop for ever; the only place that touches it.
async fn drive(
    mut eventloop: EventLoop,
    events: mpsc::UnboundedSender<SessionEvent>,
    mut backoff: Backoff,
    keep_alive: Duration,
) {
    let mut online = false;
    let mut outage_logged = false;
    let mut last_failure: Option<String> = None;
    let mut down_since: Option<tokio::time::Instant> = None;
    let limit = silence_limit(keep_alive);
    let mut last_incoming = tokio::time::Instant::now();
    loop {
        let polled = match limit.filter(|_| online) {
            Some(limit) => {
                match tokio::time::timeout_at(last_incoming + limit, eventloop.poll()).await {
                    Ok(result) => result.map_err(Lost::Error),
                    Err(_) => {
                        // Drop the socket; the next poll connects again. What was in flight
                        // is the outbox's to resend on the next ConnAck.
                        eventloop.clean();
                        Err(Lost::Silent { limit })
                    }
                }
            }
            None => eventloop.poll().await.map_err(Lost::Error),
        };
        if let Ok(Event::Incoming(_)) = &polled {
            last_incoming = tokio::time::Instant::now();
        }
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                online = true;
                outage_logged = false;
                match down_since.take() {
                    Some(t) => info!(down_for = ?t.elapsed(), "Reconnected to broker"),
                    None => info!("Connected to broker"),
                }
                let _ = events.send(SessionEvent::Connected);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = p.topic.clone();
                let _ = events.send(SessionEvent::Message { topic, payload: p.payload.to_vec() });
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                let _ = events.send(SessionEvent::Closed);
            }
            Ok(_) => {}
            Err(e) => {
                if !outage_logged {
                    if online {
                        warn!(reason = %e, "Connection to broker lost; events wait in the outbox");
                    } else {
                        warn!(reason = %e, "Cannot connect to broker; events wait in the outbox");
                    }
                    outage_logged = true;
                    last_failure = Some(e.to_string());
                    down_since.get_or_insert_with(tokio::time::Instant::now);
                } else if last_failure.as_deref() != Some(e.to_string().as_str()) {
                    // A new reason is worth a line (e.g. the broker now refuses the
                    // certificate); the same one again is not.
                    warn!(reason = %e, "Reconnect attempt failed");
                    last_failure = Some(e.to_string());
                } else {
                    debug!(reason = %e, "Reconnect attempt failed");
                }
                if online {
                    online = false;
                    let _ = events.send(SessionEvent::Disconnected);
                }
                let wait = backoff.next(rand::rng().random_range(0.0..=1.0));
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_connection_is_dropped_within_one_and_a_half_keep_alives_but_not_before_a_ping_answer_is_due() {
        for secs in [1u64, 5, 30, 60, 600] {
            let keep_alive = Duration::from_secs(secs);
            let limit = silence_limit(keep_alive).unwrap();
            // A healthy connection's PINGRESP comes a round trip after each keep-alive.
            assert!(limit > keep_alive, "{keep_alive:?}");
            assert!(limit * 2 <= keep_alive * 3, "{keep_alive:?}");
        }
        assert_eq!(silence_limit(Duration::ZERO), None);
    }
}
