//! The pure first step of ingest: what is this MQTT message? Parses the topic, decodes the
//! payload and checks that the envelope's device is the topic's device. Never fails: anything
//! that is not a valid event or status becomes a [`Rejected`] with the reason in words.
//!
//! Snapshots are not for the store. The session sends every topic that
//! [`is_snapshot_topic`] to the camera vault instead; should one reach `classify` anyway, it
//! is rejected with an empty excerpt, so no picture can land in the rejects table.

use vaka_protocol::{Channel, DecodeError, DeviceId, Envelope, SiteId, Status, Topic};

/// How much of a refused payload is kept in the rejects table.
pub const EXCERPT_BYTES: usize = 4 * 1024;

/// Payloads up to this size are searched for a `seq` so the device can be told it was refused.
const SEQ_SEARCH_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Event { topic: Topic, envelope: Envelope },
    Status { topic: Topic, status: Status },
    Rejected(Rejected),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The topic as received (possibly not a Vaka topic at all).
    pub topic_text: String,
    /// The parsed topic when it was a valid Vaka topic.
    pub topic: Option<Topic>,
    /// The event's sequence number when it could be read: the device is then told in an ack
    /// that the hub will never store it.
    pub seq: Option<u64>,
    pub reason: String,
    pub label: &'static str,
    pub excerpt: String,
}

impl Rejected {
    pub fn device(&self) -> Option<&DeviceId> {
        self.topic.as_ref().map(|t| &t.device)
    }

    pub fn site(&self) -> Option<&SiteId> {
        self.topic.as_ref().map(|t| &t.site)
    }
}

/// Whether a topic is (or pretends to be) a snapshot topic: its last level is `snapshot`.
/// Such messages may carry a camera picture and must never be stored, not even in part.
pub fn is_snapshot_topic(topic: &str) -> bool {
    topic.rsplit('/').next() == Some(vaka_protocol::Channel::Snapshot.as_str())
}

fn excerpt(payload: &[u8]) -> String {
    let end = payload.len().min(EXCERPT_BYTES);
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

/// Reads `seq` from a JSON object payload that failed full decoding, if it is there.
fn loose_seq(payload: &[u8]) -> Option<u64> {
    if payload.len() > SEQ_SEARCH_BYTES {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    value.get("seq")?.as_u64().filter(|s| *s >= 1)
}

pub fn classify(topic_text: &str, payload: &[u8]) -> Inbound {
    let private = is_snapshot_topic(topic_text);
    let reject = |topic: Option<Topic>, seq, reason: String, label| {
        Inbound::Rejected(Rejected {
            topic_text: topic_text.chars().take(512).collect(),
            topic,
            seq,
            reason,
            label,
            excerpt: if private {
                String::new()
            } else {
                excerpt(payload)
            },
        })
    };
    let topic = match Topic::parse(topic_text) {
        Ok(t) => t,
        Err(e) => return reject(None, None, e.to_string(), "bad_topic"),
    };
    match topic.channel {
        Channel::Events => match Envelope::decode(payload) {
            Ok(envelope) if envelope.device != topic.device => {
                let reason = format!(
                    "envelope names device `{}` but was published on the topic of `{}`",
                    envelope.device, topic.device
                );
                reject(Some(topic), Some(envelope.seq), reason, "device_mismatch")
            }
            Ok(envelope) => Inbound::Event { topic, envelope },
            Err(e) => {
                let seq = match e {
                    DecodeError::TooLarge { .. } => None,
                    _ => loose_seq(payload),
                };
                reject(Some(topic), seq, e.to_string(), e.label())
            }
        },
        Channel::Status => match Status::decode(payload) {
            Ok(status) => Inbound::Status { topic, status },
            Err(e) => reject(Some(topic), None, e.to_string(), e.label()),
        },
        Channel::Snapshot => reject(
            Some(topic),
            None,
            "snapshots are never stored; the camera vault takes them".to_string(),
            "snapshot_not_stored",
        ),
        Channel::Acks | Channel::Cmd => {
            let reason = format!(
                "the hub does not take messages on `{}`",
                topic.channel.as_str()
            );
            reject(Some(topic), None, reason, "unexpected_channel")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaka_protocol::kinds::TestAlarm;
    use vaka_protocol::EventBody;

    fn envelope(device: &str, seq: u64) -> Envelope {
        Envelope::new(
            DeviceId::new(device).unwrap(),
            seq,
            uuid::Uuid::now_v7(),
            jiff::Timestamp::now(),
            EventBody::TestAlarm(TestAlarm { note: None }),
        )
    }

    #[test]
    fn valid_event_on_its_own_topic_is_accepted() {
        let e = envelope("home-1", 3);
        let got = classify("vaka/v1/skelleftea/home-1/events", &e.encode());
        assert_eq!(
            got,
            Inbound::Event {
                topic: Topic::parse("vaka/v1/skelleftea/home-1/events").unwrap(),
                envelope: e
            }
        );
    }

    #[test]
    fn event_on_another_devices_topic_is_rejected_with_its_seq() {
        let got = classify(
            "vaka/v1/skelleftea/home-2/events",
            &envelope("home-1", 9).encode(),
        );
        let Inbound::Rejected(r) = got else {
            panic!("{got:?}")
        };
        assert_eq!((r.label, r.seq), ("device_mismatch", Some(9)));
        assert_eq!(r.device().map(DeviceId::as_str), Some("home-2"));
    }

    #[test]
    fn wrong_version_keeps_its_seq_and_garbage_has_none() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&envelope("home-1", 4).encode()).unwrap();
        v["v"] = 2.into();
        let got = classify("vaka/v1/s/home-1/events", &serde_json::to_vec(&v).unwrap());
        let Inbound::Rejected(r) = got else {
            panic!("{got:?}")
        };
        assert_eq!((r.label, r.seq), ("unsupported_version", Some(4)));
        let Inbound::Rejected(r) = classify("vaka/v1/s/home-1/events", b"\xff\x00") else {
            panic!()
        };
        assert_eq!((r.label, r.seq), ("not_json", None));
    }

    #[test]
    fn oversize_payload_is_rejected_and_only_an_excerpt_is_kept() {
        let payload = vec![b'x'; 100_000];
        let Inbound::Rejected(r) = classify("vaka/v1/s/home-1/events", &payload) else {
            panic!()
        };
        assert_eq!(r.label, "too_large");
        assert_eq!(r.excerpt.len(), EXCERPT_BYTES);
    }

    #[test]
    fn a_snapshot_that_reaches_classify_is_rejected_without_any_excerpt() {
        let picture = b"{\"jpeg\":\"/9j/4AAQSkZJRgABAQ\"}";
        for topic in [
            "vaka/v1/s/home-1/snapshot",
            "vaka/v1/BAD/home-1/snapshot",
            "x/snapshot",
        ] {
            let Inbound::Rejected(r) = classify(topic, picture) else {
                panic!("{topic}")
            };
            assert_eq!(r.excerpt, "", "{topic}");
        }
        assert!(is_snapshot_topic("vaka/v1/s/d/snapshot"));
        assert!(!is_snapshot_topic("vaka/v1/s/snapshot/events"));
    }

    #[test]
    fn foreign_topic_is_rejected_as_bad_topic() {
        let Inbound::Rejected(r) = classify("home/kitchen/temp", b"21.5") else {
            panic!()
        };
        assert_eq!((r.label, r.topic.is_none()), ("bad_topic", true));
    }

    proptest::proptest! {
        #[test]
        fn any_payload_on_any_topic_is_classified_without_panicking(
            topic in "[a-z0-9/+#-]{0,40}",
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
        ) {
            let _ = classify(&topic, &payload);
            let _ = classify("vaka/v1/s/d/events", &payload);
        }
    }
}
