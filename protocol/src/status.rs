//! Device status, agent → hub on `vaka/v1/{site}/{device}/status`, retained.
//!
//! The agent publishes `online` on connect and then every heartbeat interval, with its outbox
//! depth. Its MQTT last will is the same message with `offline`, so the broker announces a
//! device that vanished. A retained `offline` is also what a new hub sees first for a device
//! that is down.

use crate::error::{decode_versioned, DecodeError};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    Online,
    Offline,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    pub v: u32,
    pub state: DeviceState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<Timestamp>,
    /// Events waiting in the device's outbox for the hub's ack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox_depth: Option<u64>,
    /// How often the device promises a heartbeat, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_s: Option<u32>,
    /// The agent's software version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

impl Status {
    pub fn online(ts: Timestamp, outbox_depth: u64, heartbeat_s: u32, agent: &str) -> Self {
        Status {
            v: crate::PROTOCOL_VERSION,
            state: DeviceState::Online,
            ts: Some(ts),
            outbox_depth: Some(outbox_depth),
            heartbeat_s: Some(heartbeat_s),
            agent: Some(agent.to_string()),
        }
    }

    /// The last-will message, fixed at connect time.
    pub fn offline() -> Self {
        Status {
            v: crate::PROTOCOL_VERSION,
            state: DeviceState::Offline,
            ts: None,
            outbox_depth: None,
            heartbeat_s: None,
            agent: None,
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Status, DecodeError> {
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
    fn status_round_trips_and_last_will_is_offline() {
        let s = Status::online("2026-11-23T00:00:00Z".parse().unwrap(), 3, 60, "0.1.0");
        assert_eq!(Status::decode(&s.encode()).unwrap(), s);
        let will = Status::decode(&Status::offline().encode()).unwrap();
        assert_eq!(will.state, DeviceState::Offline);
    }
}
