//! The event envelope: one device event as it travels from agent to hub.
//!
//! ```json
//! {"v":1,"id":"019a…","device":"home-7","seq":42,"ts":"2026-11-23T01:02:03.5Z",
//!  "severity":"alarm","kind":"dose_missed","body":{…}}
//! ```
//! `id` is a UUIDv7 chosen by the device, unique for ever; the hub stores one row per id, so a
//! resent event is recognised. `seq` counts a device's events from 1 without gaps and survives
//! restarts; the hub orders a device's events by it. `kind` selects the shape of `body`
//! ([`crate::kinds`]).

use crate::error::{decode_versioned, DecodeError};
use crate::ids::DeviceId;
use crate::kinds::EventBody;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How urgently a person must act. Ordered: `Info < Warning < Alarm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Alarm,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Alarm => "alarm",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "alarm" => Severity::Alarm,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: Uuid,
    pub device: DeviceId,
    pub seq: u64,
    pub ts: Timestamp,
    pub severity: Severity,
    pub body: EventBody,
}

/// The JSON shape on the wire. `kind` and `body` are split out of [`EventBody`] so that
/// `deny_unknown_fields` can guard the envelope itself.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u32,
    id: Uuid,
    device: DeviceId,
    seq: u64,
    ts: Timestamp,
    severity: Severity,
    kind: String,
    body: serde_json::Value,
}

/// Timestamps outside these years are a device clock fault, not an event.
const EARLIEST_YEAR: i16 = 2020;
const LATEST_YEAR: i16 = 2100;

impl Envelope {
    /// Builds an envelope with the kind's default severity.
    pub fn new(device: DeviceId, seq: u64, id: Uuid, ts: Timestamp, body: EventBody) -> Self {
        let severity = body.default_severity();
        Envelope { id, device, seq, ts, severity, body }
    }

    pub fn kind(&self) -> &'static str {
        self.body.kind()
    }

    /// Decodes and validates one envelope. Checks, in order: size, JSON, version, shape
    /// (unknown fields and kinds are refused), then values (UUIDv7 id, `seq >= 1`, a plausible
    /// timestamp, and the kind's own ranges).
    pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        let wire: Wire = decode_versioned(bytes, crate::MAX_EVENT_BYTES)?;
        if wire.id.get_version_num() != 7 {
            return Err(DecodeError::invalid(
                "id",
                format!("must be a UUIDv7, got version {}", wire.id.get_version_num()),
            ));
        }
        if wire.seq == 0 {
            return Err(DecodeError::invalid("seq", "sequence numbers start at 1"));
        }
        let year = wire.ts.to_zoned(jiff::tz::TimeZone::UTC).year();
        if !(EARLIEST_YEAR..=LATEST_YEAR).contains(&year) {
            return Err(DecodeError::invalid(
                "ts",
                format!("year {year} is outside {EARLIEST_YEAR}..={LATEST_YEAR}; check the device clock"),
            ));
        }
        let body = EventBody::from_parts(&wire.kind, wire.body)?;
        body.validate()?;
        Ok(Envelope {
            id: wire.id,
            device: wire.device,
            seq: wire.seq,
            ts: wire.ts,
            severity: wire.severity,
            body,
        })
    }

    /// Encodes the envelope as compact JSON.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, body) = self.body.to_parts();
        let wire = Wire {
            v: crate::PROTOCOL_VERSION,
            id: self.id,
            device: self.device.clone(),
            seq: self.seq,
            ts: self.ts,
            severity: self.severity,
            kind: kind.to_string(),
            body,
        };
        // Serialising plain structs of strings and numbers cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{Dose, Position};

    fn sample(body: EventBody) -> Envelope {
        Envelope::new(
            DeviceId::new("home-7").unwrap(),
            42,
            Uuid::now_v7(),
            "2026-11-23T01:02:03.5Z".parse().unwrap(),
            body,
        )
    }

    fn dose_missed() -> EventBody {
        EventBody::DoseMissed(Dose {
            dose_id: "evening".into(),
            medication: "Waran 2,5 mg".into(),
            scheduled: "2026-11-22T20:00:00Z".parse().unwrap(),
        })
    }

    #[test]
    fn envelope_round_trips_and_keeps_kind_and_severity() {
        let e = sample(dose_missed());
        let decoded = Envelope::decode(&e.encode()).unwrap();
        assert_eq!(decoded, e);
        assert_eq!(decoded.kind(), "dose_missed");
        assert_eq!(decoded.severity, Severity::Alarm);
    }

    #[test]
    fn installer_mode_event_round_trips_as_info_with_its_end() {
        let until = "2026-11-23T14:30:00Z".parse().unwrap();
        let e = sample(EventBody::InstallerMode(crate::kinds::InstallerMode { until }));
        let bytes = e.encode();
        assert!(String::from_utf8_lossy(&bytes).contains(r#""kind":"installer_mode","body":{"until":"2026-11-23T14:30:00Z"}"#));
        let decoded = Envelope::decode(&bytes).unwrap();
        assert_eq!((decoded.kind(), decoded.severity), ("installer_mode", Severity::Info));
        assert_eq!(decoded, e);
    }

    fn with(mut v: serde_json::Value, f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    fn sample_json() -> serde_json::Value {
        serde_json::from_slice(&sample(dose_missed()).encode()).unwrap()
    }

    #[test]
    fn wrong_version_is_refused_as_unsupported_not_as_malformed() {
        let bytes = with(sample_json(), |v| {
            v["v"] = 2.into();
            v["extra_v2_field"] = true.into();
        });
        assert_eq!(
            Envelope::decode(&bytes),
            Err(DecodeError::UnsupportedVersion { found: 2, supported: 1 })
        );
        let bytes = with(sample_json(), |v| {
            v.as_object_mut().unwrap().remove("v");
        });
        assert_eq!(Envelope::decode(&bytes), Err(DecodeError::MissingVersion));
    }

    #[test]
    fn oversize_payload_is_refused_before_parsing() {
        let bytes = vec![b' '; crate::MAX_EVENT_BYTES + 1];
        assert!(matches!(Envelope::decode(&bytes), Err(DecodeError::TooLarge { .. })));
    }

    #[test]
    fn garbage_is_refused_as_not_json() {
        assert!(matches!(Envelope::decode(b"\x00\xffhello"), Err(DecodeError::NotJson(_))));
    }

    #[test]
    fn unknown_kind_and_unknown_fields_are_refused_with_their_names() {
        let err = Envelope::decode(&with(sample_json(), |v| v["kind"] = "teleport".into()))
            .unwrap_err();
        assert!(err.to_string().contains("teleport"), "{err}");
        let err = Envelope::decode(&with(sample_json(), |v| v["colour"] = "red".into()))
            .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        let err = Envelope::decode(&with(sample_json(), |v| v["body"]["dose"] = 1.into()))
            .unwrap_err();
        assert!(err.to_string().contains("dose"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_with_the_field_named() {
        type Change = Box<dyn FnOnce(&mut serde_json::Value)>;
        let cases: Vec<(&str, Change)> = vec![
            ("seq", Box::new(|v| v["seq"] = 0.into())),
            ("seq", Box::new(|v| v["seq"] = (-1).into())),
            ("id", Box::new(|v| v["id"] = "6f1c1d1e-4b5a-4c3d-8e9f-0a1b2c3d4e5f".into())),
            ("ts", Box::new(|v| v["ts"] = "1970-01-01T00:00:00Z".into())),
            ("ts", Box::new(|v| v["ts"] = "yesterday".into())),
            ("device", Box::new(|v| v["device"] = "Home/7".into())),
            ("severity", Box::new(|v| v["severity"] = "panic".into())),
        ];
        for (field, change) in cases {
            let err = Envelope::decode(&with(sample_json(), change)).unwrap_err();
            assert!(err.to_string().contains(field), "expected `{field}` in: {err}");
        }
    }

    #[test]
    fn position_out_of_range_is_invalid() {
        let e = sample(EventBody::Position(Position {
            lat: 95.0,
            lon: 20.9,
            accuracy_m: None,
            speed_mps: None,
        }));
        let err = Envelope::decode(&e.encode()).unwrap_err();
        assert!(matches!(&err, DecodeError::Invalid { field, .. } if field == "body.lat"), "{err}");
    }

    #[test]
    fn camera_refusal_and_its_reason_come_together() {
        use crate::kinds::{CameraCheck, ConsentRefusal, Verdict};
        let check = |verdict, refusal| CameraCheck {
            check_id: Some(crate::CheckId::new("c-1").unwrap()),
            verdict,
            refusal,
            confidence: 1.0,
            detail: Some("outside the consented windows".into()),
            frames: 0,
            brightness: None,
            motion_in_zone: None,
            motion_outside: None,
            presence: None,
            presence_strong: None,
            duration_ms: 0,
        };
        let ok = sample(EventBody::CameraCheck(check(
            Verdict::RefusedOutsideConsent,
            Some(ConsentRefusal::OutsideWindow),
        )));
        let decoded = Envelope::decode(&ok.encode()).unwrap();
        assert_eq!(decoded, ok);
        assert!(String::from_utf8(ok.encode()).unwrap().contains(r#""refusal":"outside_window""#));
        for bad in [
            check(Verdict::RefusedOutsideConsent, None),
            check(Verdict::Resting, Some(ConsentRefusal::NoConsentRecord)),
        ] {
            let err = Envelope::decode(&sample(EventBody::CameraCheck(bad)).encode()).unwrap_err();
            assert!(matches!(&err, DecodeError::Invalid { field, .. } if field == "body.refusal"), "{err}");
        }
    }

    #[test]
    fn a_first_trigger_has_no_repeat_on_the_wire_and_a_repeat_round_trips() {
        use crate::kinds::{GeofenceLeft, Sos};
        let first = sample(EventBody::Sos(Sos { lat: Some(64.75), lon: Some(20.95), repeat: 0 }));
        assert!(!String::from_utf8(first.encode()).unwrap().contains("repeat"));
        let again = sample(EventBody::Sos(Sos { lat: Some(64.75), lon: Some(20.95), repeat: 2 }));
        assert!(String::from_utf8(again.encode()).unwrap().contains(r#""repeat":2"#));
        assert_eq!(Envelope::decode(&again.encode()).unwrap(), again);
        let left = sample(EventBody::GeofenceLeft(GeofenceLeft {
            area: "hemma".into(),
            lat: 64.75,
            lon: 20.95,
            distance_outside_m: 120.0,
            speed_mps: None,
            repeat: 1,
        }));
        assert_eq!(Envelope::decode(&left.encode()).unwrap(), left);
        // A body written before the field existed still decodes, as a first trigger.
        let old = with(serde_json::from_slice(&first.encode()).unwrap(), |v| {
            v["body"] = serde_json::json!({"lat": 64.75, "lon": 20.95});
        });
        assert_eq!(Envelope::decode(&old).unwrap(), first);
    }
}
