//! The one privacy-filtered snapshot of a camera check, agent → hub on
//! `vaka/v1/{site}/{device}/snapshot` (QoS 0, never retained, never stored).
//!
//! ```json
//! {"v":1,"check_id":"019a…","ts":"2026-11-23T02:00:04Z","width":160,"height":120,
//!  "filter":"blur","jpeg":"/9j/4AAQ…"}
//! ```
//! `jpeg` is the base64 (standard alphabet, padded) of a greyscale JPEG of at most
//! [`MAX_WIDTH`]×[`MAX_HEIGHT`] pixels. Decoding checks the size limits, the declared
//! dimensions and the JPEG start marker; the hub additionally reads the dimensions from the
//! JPEG itself before it shows anything. Neither side ever writes these bytes to disk.

use crate::error::{decode_versioned, DecodeError};
use crate::ids::CheckId;
use base64::Engine;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Largest snapshot picture, in pixels.
pub const MAX_WIDTH: u32 = 160;
pub const MAX_HEIGHT: u32 = 120;
/// Largest snapshot message in bytes (a 160×120 greyscale JPEG is a few KiB).
pub const MAX_SNAPSHOT_BYTES: usize = 64 * 1024;

/// How the picture was made unrecognisable before it left the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotFilter {
    /// Greyscale and downscaled only.
    Plain,
    /// Also blurred.
    Blur,
    /// Reduced to a few grey levels: a silhouette.
    Silhouette,
}

impl SnapshotFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotFilter::Plain => "plain",
            SnapshotFilter::Blur => "blur",
            SnapshotFilter::Silhouette => "silhouette",
        }
    }
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotMessage {
    pub v: u32,
    pub check_id: CheckId,
    /// When the frame was captured.
    pub ts: Timestamp,
    pub width: u32,
    pub height: u32,
    pub filter: SnapshotFilter,
    #[serde(with = "base64_bytes")]
    pub jpeg: Vec<u8>,
}

/// Never prints the picture: logs get its size only.
impl std::fmt::Debug for SnapshotMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotMessage")
            .field("check_id", &self.check_id)
            .field("ts", &self.ts)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("filter", &self.filter)
            .field("jpeg_bytes", &self.jpeg.len())
            .finish()
    }
}

impl SnapshotMessage {
    pub fn new(
        check_id: CheckId,
        ts: Timestamp,
        (width, height): (u32, u32),
        filter: SnapshotFilter,
        jpeg: Vec<u8>,
    ) -> Self {
        SnapshotMessage { v: crate::PROTOCOL_VERSION, check_id, ts, width, height, filter, jpeg }
    }

    pub fn decode(bytes: &[u8]) -> Result<SnapshotMessage, DecodeError> {
        let m: SnapshotMessage = decode_versioned(bytes, MAX_SNAPSHOT_BYTES)?;
        m.validate()?;
        Ok(m)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn validate(&self) -> Result<(), DecodeError> {
        check_picture((self.width, self.height), &self.jpeg, "")
    }
}

/// The declared size is within 1×1..=160×120 and the bytes start like a JPEG. Field names
/// get `prefix` (e.g. `picture.`).
pub(crate) fn check_picture(
    (width, height): (u32, u32),
    jpeg: &[u8],
    prefix: &str,
) -> Result<(), DecodeError> {
    if width == 0 || height == 0 || width > MAX_WIDTH || height > MAX_HEIGHT {
        return Err(DecodeError::invalid(
            format!("{prefix}width"),
            format!("{width}×{height} is not within 1×1..={MAX_WIDTH}×{MAX_HEIGHT}"),
        ));
    }
    if !jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(DecodeError::invalid(
            format!("{prefix}jpeg"),
            "is not a JPEG (no start-of-image marker)",
        ));
    }
    Ok(())
}

pub(crate) mod base64_bytes {
    use super::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(width: u32, height: u32, jpeg: Vec<u8>) -> SnapshotMessage {
        SnapshotMessage::new(
            CheckId::new("019a0000-0000-7000-8000-000000000001").unwrap(),
            "2026-11-23T02:00:04Z".parse().unwrap(),
            (width, height),
            SnapshotFilter::Blur,
            jpeg,
        )
    }

    #[test]
    fn snapshot_round_trips_with_its_picture_as_base64() {
        let m = message(160, 120, vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]);
        let bytes = m.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains(r#""jpeg":"/9j/4AECAw==""#), "{text}");
        assert_eq!(SnapshotMessage::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn snapshot_larger_than_160_by_120_is_refused() {
        for (w, h) in [(161, 120), (160, 121), (640, 480), (0, 10)] {
            let err = SnapshotMessage::decode(&message(w, h, vec![0xFF, 0xD8, 0xFF]).encode())
                .unwrap_err();
            assert!(err.to_string().contains("160×120"), "{err}");
        }
    }

    #[test]
    fn snapshot_that_is_not_a_jpeg_is_refused() {
        let png = vec![0x89, b'P', b'N', b'G'];
        let err = SnapshotMessage::decode(&message(16, 12, png).encode()).unwrap_err();
        assert!(err.to_string().contains("not a JPEG"), "{err}");
    }

    #[test]
    fn oversized_snapshot_message_is_refused_before_parsing() {
        let err = SnapshotMessage::decode(&vec![b' '; MAX_SNAPSHOT_BYTES + 1]).unwrap_err();
        assert_eq!(err.label(), "too_large");
    }

    #[test]
    fn debug_output_never_contains_the_picture() {
        let m = message(16, 12, vec![0xFF, 0xD8, 0xFF, 0xAB, 0xCD]);
        let shown = format!("{m:?}");
        assert!(shown.contains("jpeg_bytes: 5") && !shown.contains("171"), "{shown}");
    }
}
