//! The calibration desk: an installer's calibration picture, held in memory only.
//!
//! An installer (or admin) asks a device for a calibration picture to draw its bed zone on
//! ([`CalibrationVault::request`]); the device answers on its snapshot topic with one
//! privacy-filtered picture and the bed zone it uses now, or with a refusal (installer mode
//! off at the device, no camera, camera fault), which the MQTT session puts in
//! ([`CalibrationVault::insert`]). The console shows the state ([`CalibrationVault::status`])
//! and fetches the picture ([`CalibrationVault::picture`]) as often as the installer needs
//! while it is kept; the HTTP side audits every fetch.
//!
//! A pure struct like the snapshot vault: every method takes the time. Invariants:
//! - one calibration per device at a time; a new request drops the old picture;
//! - only the answer to the device's current request is taken, once;
//! - a picture is never handed out at or after `received_at + span`; [`CalibrationVault::sweep`]
//!   then drops it, its bytes zeroed (by [`Picture`]'s drop); a request unanswered by
//!   `requested_at + span` expires;
//! - nothing is persisted: a restarted hub holds no picture.

use super::vault::Picture;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;
use vaka_protocol::{CalibrationRefusal, CheckId, DeviceId};

/// What a device answered.
#[derive(Debug)]
pub enum Answer {
    Picture {
        picture: Picture,
        /// The zone the device uses now, in picture coordinates.
        bed_zone: Option<Vec<[f64; 2]>>,
    },
    Refused {
        refusal: CalibrationRefusal,
        detail: Option<String>,
    },
}

#[derive(Debug)]
enum Stage {
    Requested,
    Answered { answer: Answer, at: Timestamp },
    Expired,
}

#[derive(Debug)]
struct Entry {
    request_id: CheckId,
    requested_at: Timestamp,
    requested_by: String,
    stage: Stage,
}

/// Where a device's calibration stands, as the console shows it (never the picture).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationStatus {
    /// `none`, `requested`, `available`, `refused` or `expired`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<CalibrationRefusal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<&'static str>,
    /// The bed zone the device used when it took the picture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_zone: Option<Vec<[f64; 2]>>,
    /// When the picture (or the unanswered request) is dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// Why an answer was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertRefused {
    /// No calibration is asked of this device under this id (or any more).
    NotRequested,
    AlreadyAnswered,
    TooLate,
}

impl std::fmt::Display for InsertRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InsertRefused::NotRequested => "no calibration of this device was asked under this id",
            InsertRefused::AlreadyAnswered => "this calibration request was already answered",
            InsertRefused::TooLate => "the calibration request had expired",
        })
    }
}

pub struct CalibrationVault {
    span: SignedDuration,
    by_device: HashMap<DeviceId, Entry>,
}

fn later(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

impl CalibrationVault {
    pub fn new(span: Duration) -> Self {
        CalibrationVault {
            span: SignedDuration::try_from(span).unwrap_or(SignedDuration::from_mins(10)),
            by_device: HashMap::new(),
        }
    }

    /// Asks anew for `device`, dropping what the last request got.
    pub fn request(&mut self, now: Timestamp, device: DeviceId, request_id: CheckId, by: &str) {
        let entry = Entry {
            request_id,
            requested_at: now,
            requested_by: by.to_string(),
            stage: Stage::Requested,
        };
        self.by_device.insert(device, entry);
    }

    /// Forgets a request that could not be sent.
    pub fn cancel(&mut self, device: &DeviceId, request_id: &CheckId) {
        if self.by_device.get(device).is_some_and(|e| &e.request_id == request_id) {
            self.by_device.remove(device);
        }
    }

    pub fn insert(
        &mut self,
        now: Timestamp,
        device: &DeviceId,
        request_id: &CheckId,
        answer: Answer,
    ) -> Result<(), InsertRefused> {
        let span = self.span;
        let entry = self
            .by_device
            .get_mut(device)
            .filter(|e| &e.request_id == request_id)
            .ok_or(InsertRefused::NotRequested)?;
        match entry.stage {
            Stage::Requested if now < later(entry.requested_at, span) => {
                entry.stage = Stage::Answered { answer, at: now };
                Ok(())
            }
            Stage::Requested | Stage::Expired => Err(InsertRefused::TooLate),
            Stage::Answered { .. } => Err(InsertRefused::AlreadyAnswered),
        }
    }

    pub fn status(&self, now: Timestamp, device: &DeviceId) -> CalibrationStatus {
        let mut s = CalibrationStatus {
            state: "none",
            request_id: None,
            requested_by: None,
            requested_at: None,
            refusal: None,
            detail: None,
            width: None,
            height: None,
            filter: None,
            device_zone: None,
            expires_at: None,
        };
        let Some(e) = self.by_device.get(device) else {
            return s;
        };
        s.request_id = Some(e.request_id.to_string());
        s.requested_by = Some(e.requested_by.clone());
        s.requested_at = Some(e.requested_at);
        s.state = match &e.stage {
            Stage::Requested if now < later(e.requested_at, self.span) => {
                s.expires_at = Some(later(e.requested_at, self.span));
                "requested"
            }
            Stage::Answered { answer: Answer::Picture { picture, bed_zone }, at }
                if now < later(*at, self.span) =>
            {
                s.width = Some(picture.width);
                s.height = Some(picture.height);
                s.filter = Some(picture.filter.as_str());
                s.device_zone = bed_zone.clone();
                s.expires_at = Some(later(*at, self.span));
                "available"
            }
            Stage::Answered { answer: Answer::Refused { refusal, detail }, .. } => {
                s.refusal = Some(*refusal);
                s.detail = detail.clone();
                "refused"
            }
            _ => "expired",
        };
        s
    }

    /// A copy of the picture's JPEG, while it is kept.
    pub fn picture(&self, now: Timestamp, device: &DeviceId) -> Option<Vec<u8>> {
        match &self.by_device.get(device)?.stage {
            Stage::Answered { answer: Answer::Picture { picture, .. }, at }
                if now < later(*at, self.span) =>
            {
                Some(picture.jpeg.clone())
            }
            _ => None,
        }
    }

    /// Drops the pictures and requests whose span has ended; the devices whose picture went.
    pub fn sweep(&mut self, now: Timestamp) -> Vec<DeviceId> {
        let span = self.span;
        let mut dropped = Vec::new();
        for (device, e) in &mut self.by_device {
            let ends = match &e.stage {
                Stage::Requested => later(e.requested_at, span),
                Stage::Answered { answer: Answer::Picture { .. }, at } => later(*at, span),
                Stage::Answered { .. } | Stage::Expired => continue,
            };
            if now >= ends {
                if matches!(e.stage, Stage::Answered { .. }) {
                    dropped.push(device.clone());
                }
                // Dropping the stage drops the picture, which zeroes its bytes.
                e.stage = Stage::Expired;
            }
        }
        // What is left of old requests is forgotten after a day.
        self.by_device
            .retain(|_, e| now < later(e.requested_at, SignedDuration::from_hours(24)));
        dropped
    }

    /// How many pictures are held now (for tests and stats).
    pub fn pictures_held(&self) -> usize {
        self.by_device
            .values()
            .filter(|e| matches!(e.stage, Stage::Answered { answer: Answer::Picture { .. }, .. }))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaka_protocol::SnapshotFilter;

    fn t(s: &str) -> Timestamp {
        format!("2026-11-23T{s}Z").parse().unwrap()
    }

    fn device() -> DeviceId {
        DeviceId::new("home-1").unwrap()
    }

    fn id(s: &str) -> CheckId {
        CheckId::new(s).unwrap()
    }

    fn picture() -> Answer {
        Answer::Picture {
            picture: Picture {
                jpeg: vec![0xFF, 0xD8, 0xFF, 1, 2],
                width: 160,
                height: 120,
                filter: SnapshotFilter::Blur,
                captured_at: t("14:00:01"),
            },
            bed_zone: Some(vec![[0.2, 0.2], [0.8, 0.2], [0.8, 0.9]]),
        }
    }

    fn vault() -> CalibrationVault {
        CalibrationVault::new(Duration::from_secs(600))
    }

    #[test]
    fn picture_is_shown_as_often_as_needed_until_its_span_ends_then_dropped() {
        let mut v = vault();
        v.request(t("14:00:00"), device(), id("r-1"), "ivar");
        assert_eq!(v.status(t("14:00:00"), &device()).state, "requested");
        v.insert(t("14:00:02"), &device(), &id("r-1"), picture()).unwrap();
        let s = v.status(t("14:05:00"), &device());
        assert_eq!((s.state, s.width, s.expires_at), ("available", Some(160), Some(t("14:10:02"))));
        assert_eq!(s.device_zone.unwrap().len(), 3);
        assert!(v.picture(t("14:05:00"), &device()).is_some());
        assert!(v.picture(t("14:06:00"), &device()).is_some(), "not once only");
        // Past its span it is not handed out, swept or not; the sweep drops it.
        assert!(v.picture(t("14:10:02"), &device()).is_none());
        assert_eq!(v.status(t("14:10:02"), &device()).state, "expired");
        assert_eq!(v.sweep(t("14:10:02")), [device()]);
        assert_eq!(v.pictures_held(), 0);
        assert_eq!(v.status(t("14:10:03"), &device()).state, "expired");
    }

    #[test]
    fn only_the_answer_to_the_current_request_is_taken_once() {
        let mut v = vault();
        assert_eq!(
            v.insert(t("14:00:00"), &device(), &id("r-0"), picture()),
            Err(InsertRefused::NotRequested)
        );
        v.request(t("14:00:00"), device(), id("r-1"), "ivar");
        v.request(t("14:00:05"), device(), id("r-2"), "ivar");
        assert_eq!(
            v.insert(t("14:00:06"), &device(), &id("r-1"), picture()),
            Err(InsertRefused::NotRequested)
        );
        v.insert(t("14:00:06"), &device(), &id("r-2"), picture()).unwrap();
        assert_eq!(
            v.insert(t("14:00:07"), &device(), &id("r-2"), picture()),
            Err(InsertRefused::AlreadyAnswered)
        );
        let other = DeviceId::new("home-2").unwrap();
        assert_eq!(
            v.insert(t("14:00:07"), &other, &id("r-2"), picture()),
            Err(InsertRefused::NotRequested)
        );
    }

    #[test]
    fn a_refusal_is_shown_with_its_reason_and_a_late_answer_is_refused() {
        let mut v = vault();
        v.request(t("14:00:00"), device(), id("r-1"), "ivar");
        let refused = Answer::Refused {
            refusal: CalibrationRefusal::InstallerModeOff,
            detail: Some("installer mode is off".into()),
        };
        v.insert(t("14:00:01"), &device(), &id("r-1"), refused).unwrap();
        let s = v.status(t("14:00:02"), &device());
        assert_eq!((s.state, s.refusal), ("refused", Some(CalibrationRefusal::InstallerModeOff)));
        assert!(v.picture(t("14:00:02"), &device()).is_none());

        v.request(t("15:00:00"), device(), id("r-2"), "ivar");
        assert!(v.sweep(t("15:10:00")).is_empty(), "no picture to drop");
        assert_eq!(v.status(t("15:10:00"), &device()).state, "expired");
        assert_eq!(
            v.insert(t("15:10:01"), &device(), &id("r-2"), picture()),
            Err(InsertRefused::TooLate)
        );
    }

    #[test]
    fn a_new_request_drops_the_picture_of_the_last() {
        let mut v = vault();
        v.request(t("14:00:00"), device(), id("r-1"), "ivar");
        v.insert(t("14:00:01"), &device(), &id("r-1"), picture()).unwrap();
        assert_eq!(v.pictures_held(), 1);
        v.request(t("14:01:00"), device(), id("r-2"), "ivar");
        assert_eq!(v.pictures_held(), 0);
        assert!(v.picture(t("14:01:00"), &device()).is_none());
    }
}
