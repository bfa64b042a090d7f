//! The MQTT session: connects (and reconnects, with backoff) to the broker, subscribes to every
//! device's `events` and `status` (QoS 1) and `snapshot` (QoS 0) on each ConnAck, forwards
//! events and statuses to the writer queue, publishes the acks the writer hands back, and
//! publishes commands ([`Commands`]) for the HTTP API.
//!
//! Snapshots never reach the writer queue: a message on any topic ending in `/snapshot` goes
//! straight to the in-memory vault ([`crate::camera::Snapshots::receive`]), which verifies it
//! and keeps it or drops it. That takes microseconds (it reads only the JPEG's header).
//!
//! **Several hubs** (`mqtt.shared_group`): `events` and `status` are subscribed through
//! `$share/{group}/...`, so the broker hands each message to one hub of the group; `snapshot`
//! stays a plain subscription (every hub holds every picture in its vault, so a console on any
//! hub can show it). In shared mode the session is *clean* (`clean_session = true`): Mosquitto
//! 2.0 keeps choosing a dead hub's persistent session in its round-robin and queues its share
//! of the events there until that hub comes back (measured: after `kill -9` of one of two
//! persistent shared subscribers, 5 of 10 events waited for it, also after keep-alive expiry),
//! so a dead hub would hold half the alarms. A clean session's subscription dies with the
//! connection; what the dead hub had received but not committed was never acked, and the
//! device resends it after `uplink.ack_timeout` to the group, i.e. to a live hub. Nothing is
//! lost; a duplicate is counted, not stored twice. Commands from the console go out from the
//! hub that serves the request; acks from the hub that committed the event.
//!
//! The hubs of a group also pass their live feed to each other (`relay`: `vaka/hubs/feed/+`,
//! not shared), so a console stream on any hub shows what any hub committed.
//!
//! The event loop is polled by one task that never awaits a publish: `AsyncClient::publish`
//! waits for room in the request queue that only polling empties, so publishing from the
//! polling task can deadlock. Acks and subscriptions are sent from other tasks; commands are
//! queued with `try_publish`, which never waits, so an HTTP handler is never held up by MQTT.

use super::classify::is_snapshot_topic;
use super::{relay, AckOut, Feed, Incoming, Stats, WriterMsg};
use crate::camera::Snapshots;
use jiff::Timestamp;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeFilter};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use uuid::Uuid;
use vaka_protocol::Channel;
use vaka_protocol::{Command, CommandBody, DeviceId, SiteId, Topic};

/// Requests (acks, subscriptions) that may wait for the event loop.
const REQUEST_QUEUE: usize = 1024;
/// The largest packet MQTT 3.1.1 can express (remaining length of 4 bytes).
const MQTT_MAX_PACKET: usize = 268_435_455;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Several hubs in one shared group (`mqtt.shared_group`).
#[derive(Clone)]
pub struct Sharing {
    pub group: String,
    /// This hub's client id (its feed topic, see [`super::relay`]).
    pub me: String,
    /// The local live feed: other hubs' items go in, this hub's own go out.
    pub feed: broadcast::Sender<Feed>,
}

pub struct SessionHandles {
    pub poller: JoinHandle<()>,
    pub acker: JoinHandle<()>,
    pub commands: Commands,
}

#[derive(Debug, Error)]
pub enum CommandError {
    /// The request queue is full (the broker has been away long) or the session has stopped.
    #[error("the command could not be queued for the broker: {0}")]
    Queue(String),
}

/// Sends commands to devices (`vaka/v1/{site}/{device}/cmd`, QoS 1, not retained).
#[derive(Clone)]
pub struct Commands {
    client: AsyncClient,
    stats: Arc<Stats>,
}

impl Commands {
    /// Queues the command without waiting; returns its id. While the broker is away the
    /// command waits in the queue and goes out on reconnect (the hub's session is persistent,
    /// the device's too), so devices must check deadlines themselves.
    pub fn send(
        &self,
        site: &SiteId,
        device: &DeviceId,
        body: CommandBody,
    ) -> Result<Uuid, CommandError> {
        let id = Uuid::now_v7();
        let payload = Command::new(id, Timestamp::now(), body).encode();
        let topic = Topic::new(site.clone(), device.clone(), Channel::Cmd).to_string();
        self.client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
            .map_err(|e| CommandError::Queue(e.to_string()))?;
        self.stats.commands_sent.fetch_add(1, Relaxed);
        Ok(id)
    }
}

/// Starts the session. It runs until `shutdown` turns true; then it disconnects and drops its
/// end of the writer queue, so the writer drains and stops.
pub fn spawn_session(
    mut options: MqttOptions,
    sharing: Option<Sharing>,
    writer: mpsc::Sender<WriterMsg>,
    acks: mpsc::UnboundedReceiver<AckOut>,
    snapshots: Snapshots,
    stats: Arc<Stats>,
    shutdown: watch::Receiver<bool>,
) -> SessionHandles {
    // Single hub: a persistent session, so the broker queues events while the hub restarts.
    // Shared group: clean (see the module doc: a dead persistent member would hold its share).
    options.set_clean_session(sharing.is_some());
    // Accept any packet MQTT allows. A smaller limit would make rumqttc drop the connection on
    // an oversize message, and the broker would redeliver it to the persistent session after
    // every reconnect: one rogue device could stop all ingest. Oversize payloads are stored as
    // rejects instead; brokers should cap message size themselves (the embedded one does).
    options.set_max_packet_size(MQTT_MAX_PACKET, 256 * 1024);
    let (client, eventloop) = vaka_agent::link::client(options, REQUEST_QUEUE);
    if let Some(s) = &sharing {
        tokio::spawn(relay::publish_own(
            client.clone(),
            s.me.clone(),
            s.feed.subscribe(),
            shutdown.clone(),
        ));
    }
    let poller = tokio::spawn(poll(
        eventloop,
        client.clone(),
        sharing,
        writer,
        snapshots,
        stats.clone(),
        shutdown,
    ));
    let commands = Commands {
        client: client.clone(),
        stats: stats.clone(),
    };
    let acker = tokio::spawn(publish_acks(client, acks, stats));
    SessionHandles {
        poller,
        acker,
        commands,
    }
}

async fn poll(
    mut eventloop: EventLoop,
    client: AsyncClient,
    sharing: Option<Sharing>,
    writer: mpsc::Sender<WriterMsg>,
    snapshots: Snapshots,
    stats: Arc<Stats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let broker = format!(
        "{}:{}",
        eventloop.mqtt_options.broker_address().0,
        eventloop.mqtt_options.broker_address().1
    );
    let mut backoff = BACKOFF_MIN;
    let mut outage: Option<Instant> = None;
    loop {
        let event = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                stats.mqtt_connected.store(true, Relaxed);
                backoff = BACKOFF_MIN;
                match outage.take() {
                    Some(since) => info!(
                        broker,
                        outage_s = since.elapsed().as_secs(),
                        session_present = ack.session_present,
                        "MQTT reconnected"
                    ),
                    None => info!(
                        broker,
                        session_present = ack.session_present,
                        "MQTT connected"
                    ),
                }
                let client = client.clone();
                let mut filters = ingest_filters(sharing.as_ref().map(|s| s.group.as_str()));
                if sharing.is_some() {
                    filters.push(relay::filter());
                }
                tokio::spawn(async move {
                    if let Err(e) = client.subscribe_many(filters).await {
                        warn!(error = %e, "MQTT subscribe could not be queued");
                    }
                });
            }
            Ok(Event::Incoming(Packet::Publish(p))) if is_snapshot_topic(&p.topic) => {
                snapshots.receive(Timestamp::now(), &p.topic, &p.payload, p.retain);
            }
            Ok(Event::Incoming(Packet::Publish(p))) if relay::is_relay_topic(&p.topic) => {
                if let Some(s) = &sharing {
                    if let Some(item) = relay::decode(&s.me, &p.topic, &p.payload) {
                        let _ = s.feed.send(item);
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                stats.received.fetch_add(1, Relaxed);
                let msg = Incoming {
                    topic: p.topic,
                    payload: p.payload.to_vec(),
                    retained: p.retain,
                    received_at: Timestamp::now(),
                };
                if writer.send(WriterMsg::Incoming(msg)).await.is_err() {
                    warn!("Store writer is gone; MQTT session stops");
                    break;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    warn!(
                        broker,
                        "Broker refused a subscription; events may not arrive"
                    );
                } else {
                    stats.mqtt_subscribed.store(true, Relaxed);
                }
            }
            Ok(_) => {}
            Err(e) => {
                stats.mqtt_connected.store(false, Relaxed);
                stats.mqtt_subscribed.store(false, Relaxed);
                if outage.is_none() {
                    warn!(broker, error = %e, "MQTT connection lost; reconnecting with backoff");
                    outage = Some(Instant::now());
                }
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    stats.mqtt_connected.store(false, Relaxed);
    stats.mqtt_subscribed.store(false, Relaxed);
    drop(writer);
    // Say goodbye so the broker keeps the session but knows we left; bounded in time.
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
    info!(broker, "MQTT session closed");
}

/// The ingest subscriptions: `events` and `status` at QoS 1, shared within `group` if given;
/// `snapshot` at QoS 0 (no broker should queue or persist a picture for us), never shared.
pub fn ingest_filters(group: Option<&str>) -> Vec<SubscribeFilter> {
    let shared = |filter: String| match group {
        Some(g) => format!("$share/{g}/{filter}"),
        None => filter,
    };
    vec![
        SubscribeFilter::new(shared(Channel::Events.filter_all()), QoS::AtLeastOnce),
        SubscribeFilter::new(shared(Channel::Status.filter_all()), QoS::AtLeastOnce),
        SubscribeFilter::new(Channel::Snapshot.filter_all(), QoS::AtMostOnce),
    ]
}

async fn publish_acks(
    client: AsyncClient,
    mut acks: mpsc::UnboundedReceiver<AckOut>,
    stats: Arc<Stats>,
) {
    while let Some(ack) = acks.recv().await {
        match client
            .publish(ack.topic, QoS::AtLeastOnce, false, ack.payload)
            .await
        {
            Ok(()) => {
                stats.acks_sent.fetch_add(1, Relaxed);
            }
            Err(e) => {
                // Only when the event loop is gone (shutdown). Unacked events are resent.
                warn!(error = %e, "Ack could not be queued; the device will resend");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_group_shares_events_and_status_but_not_snapshots() {
        let paths = |g| {
            ingest_filters(g)
                .into_iter()
                .map(|f| f.path)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            paths(None),
            [
                "vaka/v1/+/+/events",
                "vaka/v1/+/+/status",
                "vaka/v1/+/+/snapshot"
            ]
        );
        assert_eq!(
            paths(Some("hubs")),
            [
                "$share/hubs/vaka/v1/+/+/events",
                "$share/hubs/vaka/v1/+/+/status",
                "vaka/v1/+/+/snapshot"
            ]
        );
    }
}
