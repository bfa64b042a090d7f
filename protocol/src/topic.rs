//! MQTT topic names.
//!
//! `vaka/v1/{site}/{device}/{channel}` where channel is one of:
//! - `events`: agent → hub, QoS 1, one [`crate::Envelope`] per message;
//! - `acks`: hub → agent, QoS 1, an [`crate::Ack`] sent only after the hub's database commit;
//! - `cmd`: hub → agent, QoS 1, a [`crate::Command`];
//! - `status`: agent → hub, QoS 1, retained; a [`crate::Status`] heartbeat, and the agent's
//!   last will (`offline`);
//! - `snapshot`: agent → hub, **QoS 0**, never retained; one privacy-filtered
//!   [`crate::SnapshotMessage`], only when the hub asked within an open camera check. QoS 0
//!   so that no broker queues (and, with persistence, writes to disk) an image for a client
//!   that is away: a snapshot that cannot be delivered now is worthless anyway.

use crate::ids::{DeviceId, IdError, SiteId};
use std::fmt;
use thiserror::Error;

/// The fixed prefix of every v1 topic.
pub const ROOT: &str = "vaka/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Events,
    Acks,
    Cmd,
    Status,
    Snapshot,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Events => "events",
            Channel::Acks => "acks",
            Channel::Cmd => "cmd",
            Channel::Status => "status",
            Channel::Snapshot => "snapshot",
        }
    }

    fn parse(s: &str) -> Option<Channel> {
        Some(match s {
            "events" => Channel::Events,
            "acks" => Channel::Acks,
            "cmd" => Channel::Cmd,
            "status" => Channel::Status,
            "snapshot" => Channel::Snapshot,
            _ => return None,
        })
    }

    /// The subscription filter matching this channel for every site and device
    /// (e.g. `vaka/v1/+/+/events`), as the hub subscribes.
    pub fn filter_all(self) -> String {
        format!("{ROOT}/+/+/{}", self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic {
    pub site: SiteId,
    pub device: DeviceId,
    pub channel: Channel,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopicError {
    #[error("topic `{0}` is not of the form vaka/v1/{{site}}/{{device}}/{{channel}}")]
    Shape(String),
    #[error("topic `{topic}` names unknown channel `{channel}`")]
    UnknownChannel { topic: String, channel: String },
    #[error("topic has a bad id: {0}")]
    Id(#[from] IdError),
}

impl Topic {
    pub fn new(site: SiteId, device: DeviceId, channel: Channel) -> Self {
        Topic { site, device, channel }
    }

    pub fn parse(topic: &str) -> Result<Topic, TopicError> {
        let shape = || TopicError::Shape(topic.chars().take(200).collect());
        let rest = topic.strip_prefix(ROOT).and_then(|r| r.strip_prefix('/')).ok_or_else(shape)?;
        let mut parts = rest.split('/');
        let (Some(site), Some(device), Some(channel), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(shape());
        };
        let channel = Channel::parse(channel).ok_or_else(|| TopicError::UnknownChannel {
            topic: topic.to_string(),
            channel: channel.to_string(),
        })?;
        Ok(Topic { site: SiteId::new(site)?, device: DeviceId::new(device)?, channel })
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ROOT}/{}/{}/{}", self.site, self.device, self.channel.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_round_trips_through_its_string_form() {
        let t = Topic::new(
            SiteId::new("skelleftea").unwrap(),
            DeviceId::new("home-7").unwrap(),
            Channel::Events,
        );
        assert_eq!(t.to_string(), "vaka/v1/skelleftea/home-7/events");
        assert_eq!(Topic::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn topic_with_wrong_shape_or_channel_is_refused() {
        assert!(matches!(Topic::parse("vaka/v2/s/d/events"), Err(TopicError::Shape(_))));
        assert!(matches!(Topic::parse("vaka/v1/s/d"), Err(TopicError::Shape(_))));
        assert!(matches!(Topic::parse("vaka/v1/s/d/events/x"), Err(TopicError::Shape(_))));
        assert!(matches!(
            Topic::parse("vaka/v1/s/d/photos"),
            Err(TopicError::UnknownChannel { .. })
        ));
        assert!(matches!(Topic::parse("vaka/v1/S/d/events"), Err(TopicError::Id(_))));
    }

    #[test]
    fn hub_filters_cover_every_site_and_device() {
        assert_eq!(Channel::Events.filter_all(), "vaka/v1/+/+/events");
        assert_eq!(Channel::Status.filter_all(), "vaka/v1/+/+/status");
    }
}
