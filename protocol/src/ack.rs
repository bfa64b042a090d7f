//! Application acks, hub → agent on `vaka/v1/{site}/{device}/acks`.
//!
//! The hub publishes an ack only after the events it names are committed to its database.
//! `committed` lists sequence numbers that are stored (including duplicates it already had);
//! `rejected` lists sequence numbers the hub will never store, with the reason. Either way the
//! agent may then delete those events from its outbox. An MQTT PUBACK means nothing more than
//! "the broker has it" and must never empty the outbox.

use crate::error::{decode_versioned, DecodeError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    pub v: u32,
    #[serde(default)]
    pub committed: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<Rejection>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    pub seq: u64,
    pub reason: String,
}

impl Ack {
    pub fn new(committed: Vec<u64>, rejected: Vec<Rejection>) -> Self {
        Ack { v: crate::PROTOCOL_VERSION, committed, rejected }
    }

    pub fn decode(bytes: &[u8]) -> Result<Ack, DecodeError> {
        decode_versioned(bytes, crate::MAX_CONTROL_BYTES)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_round_trips() {
        let ack = Ack::new(vec![1, 2, 3], vec![Rejection { seq: 4, reason: "bad".into() }]);
        assert_eq!(Ack::decode(&ack.encode()).unwrap(), ack);
    }

    #[test]
    fn ack_of_another_version_is_refused() {
        assert!(matches!(
            Ack::decode(br#"{"v":2,"committed":[1]}"#),
            Err(DecodeError::UnsupportedVersion { found: 2, .. })
        ));
    }
}
