//! The installer's calibration picture, agent → hub on the `snapshot` topic (QoS 0, never
//! retained, never stored), in answer to the `calibrate` command.
//!
//! ```json
//! {"v":1,"request_id":"019a…","ts":"2026-11-23T14:00:04Z",
//!  "picture":{"width":160,"height":120,"filter":"blur","jpeg":"/9j/4AAQ…",
//!             "bed_zone":[[0.2,0.15],[0.75,0.15],[0.75,0.9],[0.2,0.9]]}}
//! {"v":1,"request_id":"019a…","ts":"2026-11-23T14:00:01Z",
//!  "refusal":"installer_mode_off","detail":"installer mode is off on the device …"}
//! ```
//! It carries either one `picture` (made by the device's snapshot filter: greyscale, at most
//! 160×120, with the bed zone the device uses now, in picture coordinates 0..1) or a `refusal`
//! with a sentence saying why. It shares the snapshot topic because it is the same kind of
//! thing — a picture that must never be queued by a broker or written to a disk — and the
//! hub tells the two apart by `request_id` ([`PictureMessage::decode`]). A hub from before
//! this message drops it (unknown field) with a warning: update hubs first.

use crate::error::{decode_versioned, DecodeError};
use crate::ids::CheckId;
use crate::snapshot::{base64_bytes, check_picture, SnapshotFilter, MAX_SNAPSHOT_BYTES};
use crate::SnapshotMessage;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Most corners a bed zone may have on the wire.
pub const MAX_ZONE_CORNERS: usize = 32;

/// Why the device sent no calibration picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationRefusal {
    /// Installer mode is off: nobody switched it on at the device (`vaka-agent camera
    /// installer-mode`), or it ran out. The camera stays closed.
    InstallerModeOff,
    /// The device has no camera configured.
    NoCamera,
    /// The camera gave no picture.
    CameraFault,
}

impl CalibrationRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            CalibrationRefusal::InstallerModeOff => "installer_mode_off",
            CalibrationRefusal::NoCamera => "no_camera",
            CalibrationRefusal::CameraFault => "camera_fault",
        }
    }
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationPicture {
    pub width: u32,
    pub height: u32,
    pub filter: SnapshotFilter,
    #[serde(with = "base64_bytes")]
    pub jpeg: Vec<u8>,
    /// The bed zone the device's checks use now; absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bed_zone: Option<Vec<[f64; 2]>>,
}

/// Never prints the picture: logs get its size only.
impl std::fmt::Debug for CalibrationPicture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalibrationPicture")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("filter", &self.filter)
            .field("jpeg_bytes", &self.jpeg.len())
            .field("bed_zone", &self.bed_zone)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationMessage {
    pub v: u32,
    /// The `request_id` of the `calibrate` command this answers.
    pub request_id: CheckId,
    /// When the frame was captured, or the request refused.
    pub ts: Timestamp,
    /// Present exactly when `picture` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<CalibrationRefusal>,
    /// Why, in a sentence for the installer (with a refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<CalibrationPicture>,
}

impl CalibrationMessage {
    pub fn picture(request_id: CheckId, ts: Timestamp, picture: CalibrationPicture) -> Self {
        CalibrationMessage {
            v: crate::PROTOCOL_VERSION,
            request_id,
            ts,
            refusal: None,
            detail: None,
            picture: Some(picture),
        }
    }

    pub fn refused(
        request_id: CheckId,
        ts: Timestamp,
        refusal: CalibrationRefusal,
        detail: String,
    ) -> Self {
        CalibrationMessage {
            v: crate::PROTOCOL_VERSION,
            request_id,
            ts,
            refusal: Some(refusal),
            detail: Some(detail),
            picture: None,
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<CalibrationMessage, DecodeError> {
        let m: CalibrationMessage = decode_versioned(bytes, MAX_SNAPSHOT_BYTES)?;
        m.validate()?;
        Ok(m)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn validate(&self) -> Result<(), DecodeError> {
        if self.refusal.is_some() == self.picture.is_some() {
            return Err(DecodeError::invalid(
                "refusal",
                "a calibration answer carries either a picture or a refusal",
            ));
        }
        if let Some(detail) = &self.detail {
            if detail.chars().count() > crate::kinds::MAX_TEXT || detail.chars().any(char::is_control)
            {
                return Err(DecodeError::invalid(
                    "detail",
                    format!("at most {} characters, no control characters", crate::kinds::MAX_TEXT),
                ));
            }
        }
        if let Some(p) = &self.picture {
            check_picture((p.width, p.height), &p.jpeg, "picture.")?;
            if let Some(zone) = &p.bed_zone {
                bed_zone_shape("picture.bed_zone", zone)?;
            }
        }
        Ok(())
    }
}

/// The wire's check of a bed zone: 3..=[`MAX_ZONE_CORNERS`] corners, each within 0..=1. The
/// device judges the rest (area) with its own rules.
pub fn bed_zone_shape(field: &str, zone: &[[f64; 2]]) -> Result<(), DecodeError> {
    if !(3..=MAX_ZONE_CORNERS).contains(&zone.len()) {
        return Err(DecodeError::invalid(
            field,
            format!("{} corners; a bed zone has 3 to {MAX_ZONE_CORNERS}", zone.len()),
        ));
    }
    if let Some(i) = zone.iter().position(|p| !p.iter().all(|c| (0.0..=1.0).contains(c))) {
        return Err(DecodeError::invalid(
            format!("{field}[{i}]"),
            "picture coordinates run 0.0–1.0",
        ));
    }
    Ok(())
}

/// What the `snapshot` topic carries: a check's snapshot or a calibration answer.
#[derive(Debug, Clone, PartialEq)]
pub enum PictureMessage {
    Snapshot(SnapshotMessage),
    Calibration(CalibrationMessage),
}

impl PictureMessage {
    /// A message with a `request_id` is a calibration answer; anything else must be a
    /// snapshot.
    pub fn decode(bytes: &[u8]) -> Result<PictureMessage, DecodeError> {
        if bytes.len() > MAX_SNAPSHOT_BYTES {
            return Err(DecodeError::TooLarge { size: bytes.len(), max: MAX_SNAPSHOT_BYTES });
        }
        let calibration = serde_json::from_slice::<serde_json::Value>(bytes)
            .is_ok_and(|v| v.get("request_id").is_some());
        Ok(match calibration {
            true => PictureMessage::Calibration(CalibrationMessage::decode(bytes)?),
            false => PictureMessage::Snapshot(SnapshotMessage::decode(bytes)?),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            PictureMessage::Snapshot(m) => m.encode(),
            PictureMessage::Calibration(m) => m.encode(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: [u8; 5] = [0xFF, 0xD8, 0xFF, 0xE0, 7];

    fn picture(zone: Option<Vec<[f64; 2]>>) -> CalibrationMessage {
        CalibrationMessage::picture(
            CheckId::new("r-1").unwrap(),
            "2026-11-23T14:00:04Z".parse().unwrap(),
            CalibrationPicture {
                width: 160,
                height: 120,
                filter: SnapshotFilter::Blur,
                jpeg: JPEG.to_vec(),
                bed_zone: zone,
            },
        )
    }

    fn square() -> Vec<[f64; 2]> {
        vec![[0.2, 0.15], [0.75, 0.15], [0.75, 0.9], [0.2, 0.9]]
    }

    #[test]
    fn calibration_picture_round_trips_with_its_zone_and_is_told_from_a_snapshot() {
        let m = picture(Some(square()));
        let bytes = m.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains(r#""bed_zone":[[0.2,0.15],"#), "{text}");
        assert_eq!(PictureMessage::decode(&bytes).unwrap(), PictureMessage::Calibration(m));
        let snapshot = SnapshotMessage::new(
            CheckId::new("c-1").unwrap(),
            "2026-11-23T02:00:04Z".parse().unwrap(),
            (16, 12),
            SnapshotFilter::Blur,
            JPEG.to_vec(),
        );
        assert_eq!(
            PictureMessage::decode(&snapshot.encode()).unwrap(),
            PictureMessage::Snapshot(snapshot)
        );
    }

    #[test]
    fn refusal_round_trips_and_names_its_reason() {
        let m = CalibrationMessage::refused(
            CheckId::new("r-2").unwrap(),
            "2026-11-23T14:00:01Z".parse().unwrap(),
            CalibrationRefusal::InstallerModeOff,
            "installer mode is off".into(),
        );
        let bytes = m.encode();
        assert!(String::from_utf8_lossy(&bytes).contains(r#""refusal":"installer_mode_off""#));
        assert_eq!(CalibrationMessage::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn answer_with_both_or_neither_picture_and_refusal_is_refused() {
        let mut both = picture(None);
        both.refusal = Some(CalibrationRefusal::NoCamera);
        let mut neither = picture(None);
        neither.picture = None;
        for m in [both, neither] {
            let err = CalibrationMessage::decode(&m.encode()).unwrap_err();
            assert!(err.to_string().contains("either a picture or a refusal"), "{err}");
        }
    }

    #[test]
    fn oversized_picture_or_zone_outside_the_picture_is_refused() {
        let mut big = picture(None);
        if let Some(p) = big.picture.as_mut() {
            p.width = 640;
        }
        let err = CalibrationMessage::decode(&big.encode()).unwrap_err();
        assert!(err.to_string().contains("160×120"), "{err}");
        let mut zone = square();
        zone[2] = [1.5, 0.9];
        let err = CalibrationMessage::decode(&picture(Some(zone)).encode()).unwrap_err();
        assert!(err.to_string().contains("picture.bed_zone[2]"), "{err}");
        let err = CalibrationMessage::decode(&picture(Some(square()[..2].to_vec())).encode())
            .unwrap_err();
        assert!(err.to_string().contains("2 corners"), "{err}");
    }

    #[test]
    fn debug_output_never_contains_the_picture() {
        let shown = format!("{:?}", picture(None));
        assert!(shown.contains("jpeg_bytes: 5") && !shown.contains("255"), "{shown}");
    }
}
