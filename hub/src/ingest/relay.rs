//! The live feed across hubs: what one hub committed (events, device changes, alarms raised or
//! cleared, staff handling alarms) reaches the console streams of every hub.
//!
//! Each hub of a shared group (`mqtt.shared_group`) publishes its own feed items to
//! `vaka/hubs/feed/{client_id}` (QoS 0, not retained) and subscribes to `vaka/hubs/feed/+`
//! without sharing, so every hub gets every other hub's items. An item comes back to its own
//! hub too; it is dropped there by the topic's client id, so a stream on the hub that ingested
//! an alarm shows it once. Items from other hubs enter the local feed as [`Feed::Relayed`]
//! and are never published again (no loops).
//!
//! The feed is a live view, not a record: QoS 0 may drop an item while a hub reconnects, as a
//! slow client may miss items (`lagged`); the console's views read the store on reload. The
//! broker's ACL must give the hub user `vaka/hubs/#` (`pki::mosquitto_acl`).

use super::Feed;
use rumqttc::{AsyncClient, QoS, SubscribeFilter};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tracing::warn;

/// Where hubs publish their feed items.
pub const ROOT: &str = "vaka/hubs/feed";

/// One feed item on the wire: the SSE event name, the device it concerns (for the teams'
/// scope) and the JSON the stream sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wire {
    pub name: String,
    pub device: String,
    pub data: String,
}

impl Feed {
    /// The item as a stream sends it: its event name, its device and its JSON.
    pub fn wire(&self) -> Option<Wire> {
        let (name, device, data) = match self {
            Feed::Event(e) => ("event", e.device.clone(), serde_json::to_string(e.as_ref())),
            Feed::Device(d) => ("device", d.id.clone(), serde_json::to_string(d)),
            Feed::Alarm(a) => ("alarm", a.device.clone(), serde_json::to_string(a)),
            Feed::Handled(a) => ("alarm_handled", a.device.clone(), serde_json::to_string(a)),
            Feed::Relayed(w) => return Some(w.clone()),
        };
        data.ok().map(|data| Wire {
            name: name.to_string(),
            device,
            data,
        })
    }
}

/// The subscription that brings other hubs' items.
pub fn filter() -> SubscribeFilter {
    SubscribeFilter::new(format!("{ROOT}/+"), QoS::AtMostOnce)
}

pub fn is_relay_topic(topic: &str) -> bool {
    topic
        .strip_prefix(ROOT)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// Another hub's item from `topic`, or `None` for this hub's own item or one that does not read.
pub fn decode(me: &str, topic: &str, payload: &[u8]) -> Option<Feed> {
    let origin = topic.strip_prefix(ROOT)?.strip_prefix('/')?;
    if origin == me {
        return None;
    }
    match serde_json::from_slice::<Wire>(payload) {
        Ok(w) => Some(Feed::Relayed(w)),
        Err(e) => {
            warn!(topic, error = %e, "A feed item from another hub did not read; dropped");
            None
        }
    }
}

/// Publishes this hub's own feed items until shutdown.
pub async fn publish_own(
    client: AsyncClient,
    me: String,
    mut feed: broadcast::Receiver<Feed>,
    mut shutdown: watch::Receiver<bool>,
) {
    let topic = format!("{ROOT}/{me}");
    loop {
        let item = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            item = feed.recv() => item,
        };
        let item = match item {
            Ok(Feed::Relayed(_)) => continue,
            Ok(item) => item,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!(
                    skipped = n,
                    "The feed relay fell behind; other hubs' consoles miss these items"
                );
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(payload) = item.wire().and_then(|w| serde_json::to_vec(&w).ok()) else {
            continue;
        };
        // Never waits: a full request queue (broker away) drops live items, as QoS 0 would.
        let _ = client.try_publish(topic.clone(), QoS::AtMostOnce, false, payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::AlarmNotice;

    #[test]
    fn another_hubs_item_enters_the_feed_and_this_hubs_own_echo_is_dropped() {
        let alarm = Feed::Alarm(AlarmNotice {
            device: "home-1".into(),
            site: "s".into(),
            kind: "supervision_lost",
            state: "raised",
            at: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
            last_seen: None,
        });
        let wire = alarm.wire().unwrap();
        assert_eq!(
            (wire.name.as_str(), wire.device.as_str()),
            ("alarm", "home-1")
        );
        let payload = serde_json::to_vec(&wire).unwrap();
        assert!(
            is_relay_topic("vaka/hubs/feed/hub-a")
                && !is_relay_topic("vaka/hubs/feedx/a")
                && !is_relay_topic("vaka/v1/s/d/events")
        );
        assert!(
            decode("hub-a", "vaka/hubs/feed/hub-a", &payload).is_none(),
            "own echo"
        );
        let Some(Feed::Relayed(got)) = decode("hub-b", "vaka/hubs/feed/hub-a", &payload) else {
            panic!("not relayed")
        };
        assert_eq!(got, wire);
        assert!(got.data.contains("\"supervision_lost\""), "{}", got.data);
        assert!(decode("hub-b", "vaka/hubs/feed/hub-a", b"not json").is_none());
    }
}
