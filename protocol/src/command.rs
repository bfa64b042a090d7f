//! Commands, hub → agent on `vaka/v1/{site}/{device}/cmd`.
//!
//! ```json
//! {"v":1,"id":"019a…","ts":"2026-11-23T02:00:00Z","cmd":"camera_check",
//!  "args":{"check_id":"019a…","deadline":"2026-11-23T02:05:00Z"}}
//! ```
//! A device answers a command with events (e.g. a `camera_check` event carrying the same
//! `check_id`), which travel through its outbox like any other event. The one exception is
//! `snapshot`: its answer is an image, which must never reach a disk, so it travels on the
//! `snapshot` topic at QoS 0 and never through the outbox; so is the answer to `calibrate`.

use crate::error::{decode_versioned, DecodeError};
use crate::ids::CheckId;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", content = "args", rename_all = "snake_case")]
pub enum CommandBody {
    /// Publish a status heartbeat now.
    Ping(crate::kinds::Empty),
    /// Run a night camera check now and answer with a `camera_check` event. The check stays
    /// *open* until `deadline`: the verdict is due by then, and until then the hub may ask for
    /// one snapshot of it. The device refuses (verdict `refused_outside_consent`) outside the
    /// person's consented windows, whatever the hub asks.
    CameraCheck { check_id: CheckId, deadline: Timestamp },
    /// Publish one privacy-filtered snapshot of the open check `check_id` on the `snapshot`
    /// topic. Ignored (and logged) if that check is not open on the device, was refused, or
    /// already gave its one snapshot.
    Snapshot { check_id: CheckId },
    /// Publish one privacy-filtered calibration picture, with the bed zone the device uses
    /// now, on the `snapshot` topic (a [`crate::CalibrationMessage`] answering `request_id`).
    /// The device does so only while installer mode is on, which someone switched on at the
    /// device itself; otherwise it answers with a refusal and the camera stays closed.
    Calibrate { request_id: CheckId },
    /// Use this bed zone (corners in picture coordinates 0..1) from the next check on. The
    /// device judges it with its own rules, keeps it on its disk, and logs a refusal.
    SetBedZone { bed_zone: Vec<[f64; 2]> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub v: u32,
    pub id: Uuid,
    pub ts: Timestamp,
    #[serde(flatten)]
    pub body: CommandBody,
}

impl Command {
    pub fn new(id: Uuid, ts: Timestamp, body: CommandBody) -> Self {
        Command { v: crate::PROTOCOL_VERSION, id, ts, body }
    }

    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
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
    fn command_round_trips() {
        let c = Command::new(
            Uuid::now_v7(),
            "2026-11-23T02:00:00Z".parse().unwrap(),
            CommandBody::CameraCheck {
                check_id: CheckId::new("c-1").unwrap(),
                deadline: "2026-11-23T02:05:00Z".parse().unwrap(),
            },
        );
        let bytes = c.encode();
        assert!(String::from_utf8_lossy(&bytes).contains(r#""cmd":"camera_check""#));
        assert_eq!(Command::decode(&bytes).unwrap(), c);
    }

    #[test]
    fn calibration_commands_round_trip() {
        for body in [
            CommandBody::Calibrate { request_id: CheckId::new("r-1").unwrap() },
            CommandBody::SetBedZone { bed_zone: vec![[0.2, 0.15], [0.75, 0.15], [0.75, 0.9]] },
        ] {
            let c = Command::new(Uuid::now_v7(), "2026-11-23T14:00:00Z".parse().unwrap(), body);
            let bytes = c.encode();
            let text = String::from_utf8_lossy(&bytes).to_string();
            assert!(
                text.contains(r#""cmd":"calibrate","args":{"request_id":"r-1"}"#)
                    || text.contains(r#""cmd":"set_bed_zone","args":{"bed_zone":[[0.2,0.15],"#),
                "{text}"
            );
            assert_eq!(Command::decode(&bytes).unwrap(), c);
        }
    }

    #[test]
    fn unknown_command_is_refused() {
        let err = Command::decode(br#"{"v":1,"id":"019a0000-0000-7000-8000-000000000000","ts":"2026-11-23T02:00:00Z","cmd":"reboot","args":{}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("reboot"), "{err}");
    }
}
