//! The pure check of a message on a `snapshot` topic, before it may enter the vault (a check's
//! snapshot) or the calibration desk (an installer's calibration picture, or its refusal).
//!
//! A snapshot is accepted only if it was not retained by the broker (a retained picture would
//! be an old one, and one the broker keeps), its topic is a valid Vaka snapshot topic, its payload
//! decodes as a [`SnapshotMessage`] (size, version, declared dimensions, JPEG start marker),
//! and the dimensions read from the JPEG itself are at most 160×120 and equal to the declared
//! ones. Only the JPEG decoder is tried: the bytes are never guessed to be another format.
//!
//! Reasons are written so that they never contain the payload: a decoding error names the
//! field or path, never the value found there (which could be the picture, base64-encoded).

use super::vault::Picture;
use image::{ImageFormat, ImageReader};
use std::fmt;
use std::io::Cursor;
use vaka_protocol::snapshot::{MAX_HEIGHT, MAX_WIDTH};
use super::calibration::Answer;
use vaka_protocol::{CheckId, DecodeError, PictureMessage, SnapshotFilter, Topic};
use jiff::Timestamp;

/// A snapshot that passed every check except the vault's (was it asked for?).
#[derive(Debug)]
pub struct Verified {
    pub topic: Topic,
    pub check_id: CheckId,
    pub picture: Picture,
}

/// A calibration answer that passed every check except the desk's (was it asked for?).
#[derive(Debug)]
pub struct VerifiedCalibration {
    pub topic: Topic,
    pub request_id: CheckId,
    pub answer: Answer,
}

/// What a verified message on a snapshot topic is.
#[derive(Debug)]
pub enum Arrival {
    Snapshot(Verified),
    Calibration(VerifiedCalibration),
}

/// Why a snapshot message was dropped before the vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The broker delivered a retained message: devices must never retain a snapshot.
    Retained,
    /// Not `vaka/v1/{site}/{device}/snapshot`.
    Topic(String),
    /// The payload is not a valid snapshot message.
    Decode { label: &'static str, reason: String },
    /// The JPEG itself could not be read.
    NotJpeg,
    /// The JPEG's real size is over the limit or differs from the declared one.
    Dimensions {
        declared: (u32, u32),
        real: (u32, u32),
    },
}

impl Refused {
    /// A short stable label for logs.
    pub fn label(&self) -> &'static str {
        match self {
            Refused::Retained => "retained",
            Refused::Topic(_) => "bad_topic",
            Refused::Decode { label, .. } => label,
            Refused::NotJpeg => "not_jpeg",
            Refused::Dimensions { .. } => "dimensions",
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Retained => f.write_str(
                "the broker holds this snapshot as a retained message; the device must never \
                 retain one (clear it on the broker)",
            ),
            Refused::Topic(reason) => write!(f, "not a snapshot topic: {reason}"),
            Refused::Decode { reason, .. } => f.write_str(reason),
            Refused::NotJpeg => f.write_str("the picture is not a readable JPEG"),
            Refused::Dimensions { declared, real } => write!(
                f,
                "the JPEG is {}×{} (declared {}×{}); at most {MAX_WIDTH}×{MAX_HEIGHT} and as declared",
                real.0, real.1, declared.0, declared.1
            ),
        }
    }
}

/// Describes a decoding error without quoting anything from the payload.
fn safe_reason(e: &DecodeError) -> String {
    match e {
        DecodeError::TooLarge { .. } | DecodeError::UnsupportedVersion { .. } => e.to_string(),
        DecodeError::MissingVersion => e.to_string(),
        DecodeError::NotJson(_) => "payload is not valid JSON".to_string(),
        DecodeError::Malformed { path, .. } => {
            format!("payload does not match the snapshot contract at `{path}`")
        }
        DecodeError::Invalid { field, .. } => format!("field `{field}` is invalid"),
    }
}

/// Reads the dimensions from the JPEG's own header.
fn jpeg_dimensions(jpeg: &[u8]) -> Option<(u32, u32)> {
    ImageReader::with_format(Cursor::new(jpeg), ImageFormat::Jpeg)
        .into_dimensions()
        .ok()
}

/// A picture whose real size (read from the JPEG) is at most 160×120 and as declared.
fn picture(
    declared: (u32, u32),
    filter: SnapshotFilter,
    captured_at: Timestamp,
    jpeg: Vec<u8>,
) -> Result<Picture, Refused> {
    let real = jpeg_dimensions(&jpeg).ok_or(Refused::NotJpeg)?;
    if real != declared || real.0 > MAX_WIDTH || real.1 > MAX_HEIGHT {
        return Err(Refused::Dimensions { declared, real });
    }
    Ok(Picture { width: real.0, height: real.1, filter, captured_at, jpeg })
}

/// Verifies a message on a snapshot topic: a snapshot, or a calibration answer.
pub fn verify_any(topic_text: &str, payload: &[u8], retained: bool) -> Result<Arrival, Refused> {
    let topic = snapshot_topic(topic_text, retained)?;
    let decoded = PictureMessage::decode(payload).map_err(|e| Refused::Decode {
        label: e.label(),
        reason: safe_reason(&e),
    })?;
    match decoded {
        PictureMessage::Snapshot(m) => Ok(Arrival::Snapshot(Verified {
            topic,
            check_id: m.check_id.clone(),
            picture: picture((m.width, m.height), m.filter, m.ts, m.jpeg)?,
        })),
        PictureMessage::Calibration(m) => {
            let answer = match (m.picture, m.refusal) {
                (Some(p), _) => Answer::Picture {
                    picture: picture((p.width, p.height), p.filter, m.ts, p.jpeg)?,
                    bed_zone: p.bed_zone,
                },
                (None, Some(refusal)) => Answer::Refused { refusal, detail: m.detail },
                // Decoding refuses an answer with neither.
                (None, None) => return Err(Refused::NotJpeg),
            };
            Ok(Arrival::Calibration(VerifiedCalibration { topic, request_id: m.request_id, answer }))
        }
    }
}

fn snapshot_topic(topic_text: &str, retained: bool) -> Result<Topic, Refused> {
    if retained {
        return Err(Refused::Retained);
    }
    match Topic::parse(topic_text) {
        Ok(t) if t.channel == vaka_protocol::Channel::Snapshot => Ok(t),
        Ok(t) => Err(Refused::Topic(format!("channel `{}`", t.channel.as_str()))),
        Err(e) => Err(Refused::Topic(e.to_string())),
    }
}

/// Verifies a check's snapshot (a calibration answer is refused here).
pub fn verify(topic_text: &str, payload: &[u8], retained: bool) -> Result<Verified, Refused> {
    match verify_any(topic_text, payload, retained)? {
        Arrival::Snapshot(v) => Ok(v),
        Arrival::Calibration(_) => Err(Refused::Decode {
            label: "malformed",
            reason: "a calibration answer, not a snapshot".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaka_protocol::SnapshotMessage;

    const TOPIC: &str = "vaka/v1/skelleftea/home-1/snapshot";

    /// A real greyscale JPEG of the given size.
    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img =
            image::GrayImage::from_fn(width, height, |x, y| image::Luma([((x + y) % 256) as u8]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    fn message(declared: (u32, u32), jpeg: Vec<u8>) -> Vec<u8> {
        SnapshotMessage::new(
            CheckId::new("c-1").unwrap(),
            "2026-11-23T02:00:04Z".parse().unwrap(),
            declared,
            SnapshotFilter::Blur,
            jpeg,
        )
        .encode()
    }

    #[test]
    fn a_small_real_jpeg_of_the_declared_size_is_accepted() {
        let v = verify(TOPIC, &message((160, 120), jpeg(160, 120)), false).unwrap();
        assert_eq!(v.topic.device.as_str(), "home-1");
        assert_eq!(v.check_id.as_str(), "c-1");
        assert_eq!((v.picture.width, v.picture.height), (160, 120));
    }

    #[test]
    fn a_jpeg_larger_than_declared_is_refused() {
        let err = verify(TOPIC, &message((160, 120), jpeg(320, 240)), false).unwrap_err();
        assert_eq!(
            err,
            Refused::Dimensions {
                declared: (160, 120),
                real: (320, 240)
            }
        );
    }

    #[test]
    fn a_jpeg_smaller_than_declared_is_refused_too() {
        let err = verify(TOPIC, &message((160, 120), jpeg(80, 60)), false).unwrap_err();
        assert_eq!(err.label(), "dimensions");
    }

    #[test]
    fn bytes_that_only_start_like_a_jpeg_are_refused() {
        let err = verify(
            TOPIC,
            &message((16, 12), vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 0]),
            false,
        )
        .unwrap_err();
        assert_eq!(err, Refused::NotJpeg);
    }

    #[test]
    fn a_retained_snapshot_is_refused_however_good_it_looks() {
        let payload = message((16, 12), jpeg(16, 12));
        assert_eq!(
            verify(TOPIC, &payload, true).unwrap_err(),
            Refused::Retained
        );
    }

    #[test]
    fn a_snapshot_on_another_channel_or_a_foreign_topic_is_refused() {
        let payload = message((16, 12), jpeg(16, 12));
        assert_eq!(
            verify("vaka/v1/s/home-1/events", &payload, false)
                .unwrap_err()
                .label(),
            "bad_topic"
        );
        assert_eq!(
            verify("vaka/v1/S/home-1/snapshot", &payload, false)
                .unwrap_err()
                .label(),
            "bad_topic"
        );
    }

    #[test]
    fn a_refusal_never_quotes_the_payload() {
        // The picture put where a number belongs: serde would quote it in its message.
        let mut v: serde_json::Value =
            serde_json::from_slice(&message((16, 12), jpeg(16, 12))).unwrap();
        let b64 = v["jpeg"].as_str().unwrap().to_string();
        v["width"] = v["jpeg"].clone();
        let err = verify(TOPIC, &serde_json::to_vec(&v).unwrap(), false).unwrap_err();
        assert!(!err.to_string().contains(&b64[..12]), "{err}");
        v["v"] = v["jpeg"].clone();
        let err = verify(TOPIC, &serde_json::to_vec(&v).unwrap(), false).unwrap_err();
        assert!(!err.to_string().contains(&b64[..12]), "{err}");
    }
}

#[cfg(test)]
mod calibration_tests {
    use super::*;
    use vaka_protocol::{CalibrationMessage, CalibrationPicture, CalibrationRefusal};

    const TOPIC: &str = "vaka/v1/skelleftea/home-1/snapshot";

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = image::GrayImage::new(width, height);
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    fn answer(declared: (u32, u32), jpeg: Vec<u8>) -> Vec<u8> {
        let picture = CalibrationPicture {
            width: declared.0,
            height: declared.1,
            filter: SnapshotFilter::Silhouette,
            jpeg,
            bed_zone: Some(vec![[0.2, 0.2], [0.8, 0.2], [0.8, 0.9]]),
        };
        CalibrationMessage::picture(CheckId::new("r-1").unwrap(), Timestamp::UNIX_EPOCH, picture)
            .encode()
    }

    #[test]
    fn a_calibration_picture_is_verified_like_a_snapshot_and_keeps_its_zone() {
        let Arrival::Calibration(v) = verify_any(TOPIC, &answer((80, 60), jpeg(80, 60)), false).unwrap() else {
            panic!("not a calibration")
        };
        assert_eq!(v.request_id.as_str(), "r-1");
        let Answer::Picture { picture, bed_zone } = v.answer else { panic!("no picture") };
        assert_eq!((picture.width, picture.height), (80, 60));
        assert_eq!(bed_zone.map(|z| z.len()), Some(3));
        let err = verify_any(TOPIC, &answer((80, 60), jpeg(320, 240)), false).unwrap_err();
        assert_eq!(err.label(), "dimensions");
        assert_eq!(verify(TOPIC, &answer((80, 60), jpeg(80, 60)), false).unwrap_err().label(), "malformed");
    }

    #[test]
    fn a_refusal_arrives_with_its_reason() {
        let m = CalibrationMessage::refused(
            CheckId::new("r-2").unwrap(),
            Timestamp::UNIX_EPOCH,
            CalibrationRefusal::InstallerModeOff,
            "installer mode is off".into(),
        );
        let Arrival::Calibration(v) = verify_any(TOPIC, &m.encode(), false).unwrap() else { panic!() };
        assert!(matches!(v.answer, Answer::Refused { refusal: CalibrationRefusal::InstallerModeOff, .. }));
    }
}
