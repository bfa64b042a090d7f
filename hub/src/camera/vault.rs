//! The snapshot vault: the only place a camera picture ever is in the hub, and only in memory.
//!
//! A pure struct: every method takes the time, nothing reads the clock. The HTTP side asks for
//! a snapshot ([`SnapshotVault::request`]), the MQTT session puts in what the device sent
//! ([`SnapshotVault::insert`]), a person fetches it ([`SnapshotVault::take`]), and a ticker
//! calls [`SnapshotVault::sweep`] to free what expired.
//!
//! Invariants:
//! - at most one picture per check, ever: only a check with a snapshot requested and not yet
//!   received accepts one, and only from the check's own device;
//! - a picture is handed out at most once: `take` removes it;
//! - a picture is never handed out at or after `received_at + view_span`, whether or not the
//!   sweep has run; the sweep then drops it;
//! - a request that got no picture by its `until` (the check's deadline plus a little grace)
//!   expires; a late picture is refused;
//! - dropped picture bytes are overwritten with zeros before their memory is freed;
//! - what remains of a check after its picture is gone is its state (`viewed`, `expired`),
//!   kept for [`REMEMBER`] so the console can say what happened, then forgotten.
//!
//! Nothing here is persisted: a restarted hub has an empty vault.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;
use vaka_protocol::{CheckId, DeviceId, SnapshotFilter};

/// How long the vault remembers that a check's snapshot was viewed or expired.
pub const REMEMBER: SignedDuration = SignedDuration::from_hours(12);

/// A verified picture (its real dimensions were read from the JPEG).
pub struct Picture {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub filter: SnapshotFilter,
    /// When the device captured it.
    pub captured_at: Timestamp,
}

/// Never prints the picture.
impl std::fmt::Debug for Picture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Picture")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("filter", &self.filter)
            .field("captured_at", &self.captured_at)
            .field("jpeg_bytes", &self.jpeg.len())
            .finish()
    }
}

impl Picture {
    /// Overwrites the picture's bytes with zeros.
    fn wipe(&mut self) {
        self.jpeg.fill(0);
        // Keeps the compiler from leaving out the zeroing of memory about to be freed.
        std::hint::black_box(&self.jpeg);
    }
}

impl Drop for Picture {
    fn drop(&mut self) {
        self.wipe();
    }
}

/// A check's snapshot, as the console shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotState {
    /// Nobody asked for one (or the hub restarted since).
    None,
    /// Asked for; the picture has not arrived.
    Requested,
    /// Arrived and may be fetched, once.
    Available,
    /// Fetched.
    Viewed,
    /// Arrived but not fetched within the view span, or never arrived before the check closed.
    Expired,
}

impl SnapshotState {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotState::None => "none",
            SnapshotState::Requested => "requested",
            SnapshotState::Available => "available",
            SnapshotState::Viewed => "viewed",
            SnapshotState::Expired => "expired",
        }
    }
}

/// Why a request for a snapshot was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestRefused {
    AlreadyRequested,
}

/// Why an incoming picture was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertRefused {
    /// Nobody asked for a snapshot of this check.
    NotRequested,
    /// The check belongs to another device.
    WrongDevice { expected: DeviceId },
    /// This check already had its one picture.
    AlreadyReceived,
    /// The request expired before the picture came.
    TooLate,
}

impl std::fmt::Display for InsertRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InsertRefused::NotRequested => f.write_str("no snapshot was requested for this check"),
            InsertRefused::WrongDevice { expected } => {
                write!(f, "the check belongs to device `{expected}`")
            }
            InsertRefused::AlreadyReceived => f.write_str("this check already had its snapshot"),
            InsertRefused::TooLate => f.write_str("the snapshot request had expired"),
        }
    }
}

/// Why `take` had nothing to hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAvailable {
    NotRequested,
    NotArrived,
    Viewed,
    Expired,
}

impl NotAvailable {
    /// For the audit log and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            NotAvailable::NotRequested => "not_requested",
            NotAvailable::NotArrived => "not_arrived",
            NotAvailable::Viewed => "already_viewed",
            NotAvailable::Expired => "expired",
        }
    }
}

/// What a sweep dropped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Pictures that arrived but were not fetched within the view span.
    pub unviewed: Vec<CheckId>,
    /// Requests that got no picture before the check closed.
    pub never_arrived: Vec<CheckId>,
}

#[derive(Debug)]
enum Slot {
    Requested {
        until: Timestamp,
    },
    Available {
        picture: Picture,
        expires_at: Timestamp,
    },
    Viewed {
        forget_at: Timestamp,
    },
    Expired {
        arrived: bool,
        forget_at: Timestamp,
    },
}

#[derive(Debug)]
struct Entry {
    device: DeviceId,
    slot: Slot,
}

#[derive(Debug)]
pub struct SnapshotVault {
    view_span: SignedDuration,
    entries: HashMap<CheckId, Entry>,
}

impl SnapshotVault {
    pub fn new(view_span: Duration) -> SnapshotVault {
        SnapshotVault {
            view_span: SignedDuration::try_from(view_span).unwrap_or(SignedDuration::from_secs(30)),
            entries: HashMap::new(),
        }
    }

    /// Notes that a snapshot of `check` (on `device`) was asked for; a picture is accepted
    /// until `until`. Each check gets one request, ever.
    pub fn request(
        &mut self,
        check: CheckId,
        device: DeviceId,
        until: Timestamp,
    ) -> Result<(), RequestRefused> {
        if self.entries.contains_key(&check) {
            return Err(RequestRefused::AlreadyRequested);
        }
        self.entries.insert(
            check,
            Entry {
                device,
                slot: Slot::Requested { until },
            },
        );
        Ok(())
    }

    /// Withdraws a request whose command could not be sent, so it can be asked for again.
    pub fn cancel(&mut self, check: &CheckId) {
        if matches!(
            self.entries.get(check),
            Some(Entry {
                slot: Slot::Requested { .. },
                ..
            })
        ) {
            self.entries.remove(check);
        }
    }

    /// Takes in the picture `device` sent for `check`, if it was asked for. A refused picture
    /// is dropped (and zeroed) here.
    pub fn insert(
        &mut self,
        now: Timestamp,
        device: &DeviceId,
        check: &CheckId,
        picture: Picture,
    ) -> Result<(), InsertRefused> {
        let Some(entry) = self.entries.get_mut(check) else {
            return Err(InsertRefused::NotRequested);
        };
        if &entry.device != device {
            return Err(InsertRefused::WrongDevice {
                expected: entry.device.clone(),
            });
        }
        match entry.slot {
            Slot::Requested { until } if now < until => {
                let expires_at = now + self.view_span;
                entry.slot = Slot::Available {
                    picture,
                    expires_at,
                };
                Ok(())
            }
            Slot::Requested { .. } | Slot::Expired { arrived: false, .. } => {
                Err(InsertRefused::TooLate)
            }
            Slot::Available { .. } | Slot::Viewed { .. } | Slot::Expired { arrived: true, .. } => {
                Err(InsertRefused::AlreadyReceived)
            }
        }
    }

    /// Hands out the picture of `check` and forgets it; it cannot be fetched again. Never
    /// hands out one past its view span, even if the sweep has not dropped it yet.
    pub fn take(&mut self, now: Timestamp, check: &CheckId) -> Result<Picture, NotAvailable> {
        let Some(entry) = self.entries.get_mut(check) else {
            return Err(NotAvailable::NotRequested);
        };
        // What expired is left for the sweep to drop (and count).
        match &entry.slot {
            Slot::Available { expires_at, .. } if now < *expires_at => {}
            Slot::Requested { until } if now < *until => return Err(NotAvailable::NotArrived),
            Slot::Viewed { .. } => return Err(NotAvailable::Viewed),
            Slot::Available { .. } | Slot::Requested { .. } | Slot::Expired { .. } => {
                return Err(NotAvailable::Expired)
            }
        }
        let viewed = Slot::Viewed {
            forget_at: now + REMEMBER,
        };
        match std::mem::replace(&mut entry.slot, viewed) {
            Slot::Available { picture, .. } => Ok(picture),
            // Unreachable: the match above returned for every other slot.
            _ => Err(NotAvailable::NotArrived),
        }
    }

    /// Where `check`'s snapshot stands at `now`.
    pub fn state(&self, now: Timestamp, check: &CheckId) -> SnapshotState {
        match self.entries.get(check).map(|e| &e.slot) {
            None => SnapshotState::None,
            Some(Slot::Requested { until }) if now < *until => SnapshotState::Requested,
            Some(Slot::Available { expires_at, .. }) if now < *expires_at => {
                SnapshotState::Available
            }
            Some(Slot::Viewed { .. }) => SnapshotState::Viewed,
            Some(Slot::Requested { .. } | Slot::Available { .. } | Slot::Expired { .. }) => {
                SnapshotState::Expired
            }
        }
    }

    /// The device of a check the vault knows (for the audit log).
    pub fn device(&self, check: &CheckId) -> Option<&DeviceId> {
        self.entries.get(check).map(|e| &e.device)
    }

    /// How many pictures are held right now.
    pub fn pictures(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e.slot, Slot::Available { .. }))
            .count()
    }

    /// Drops pictures past their view span and requests past their `until`, and forgets old
    /// states.
    pub fn sweep(&mut self, now: Timestamp) -> Swept {
        let mut swept = Swept::default();
        let forget_at = now + REMEMBER;
        self.entries.retain(|check, entry| match &entry.slot {
            Slot::Available { expires_at, .. } if now >= *expires_at => {
                swept.unviewed.push(check.clone());
                entry.slot = Slot::Expired {
                    arrived: true,
                    forget_at,
                };
                true
            }
            Slot::Requested { until } if now >= *until => {
                swept.never_arrived.push(check.clone());
                entry.slot = Slot::Expired {
                    arrived: false,
                    forget_at,
                };
                true
            }
            Slot::Viewed { forget_at } | Slot::Expired { forget_at, .. } => now < *forget_at,
            Slot::Requested { .. } | Slot::Available { .. } => true,
        });
        swept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn secs(n: i64) -> SignedDuration {
        SignedDuration::from_secs(n)
    }

    fn id(s: &str) -> CheckId {
        CheckId::new(s).unwrap()
    }

    fn dev(s: &str) -> DeviceId {
        DeviceId::new(s).unwrap()
    }

    fn picture() -> Picture {
        Picture {
            jpeg: vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3],
            width: 16,
            height: 12,
            filter: SnapshotFilter::Blur,
            captured_at: at("2026-11-23T02:00:03Z"),
        }
    }

    const T0: &str = "2026-11-23T02:00:00Z";

    /// A vault with a 30 s view span and a snapshot of `c-1` on `home-1` requested at T0,
    /// accepted until T0 + 5 min.
    fn requested() -> SnapshotVault {
        let mut v = SnapshotVault::new(Duration::from_secs(30));
        v.request(id("c-1"), dev("home-1"), at(T0) + secs(300))
            .unwrap();
        v
    }

    #[test]
    fn a_requested_picture_is_handed_out_once_and_then_shows_as_viewed() {
        let mut v = requested();
        let t = at(T0);
        assert_eq!(v.state(t, &id("c-1")), SnapshotState::Requested);
        assert_eq!(v.take(t, &id("c-1")).unwrap_err(), NotAvailable::NotArrived);
        v.insert(t + secs(4), &dev("home-1"), &id("c-1"), picture())
            .unwrap();
        assert_eq!(v.state(t + secs(5), &id("c-1")), SnapshotState::Available);
        let p = v.take(t + secs(10), &id("c-1")).unwrap();
        assert_eq!((p.width, p.height), (16, 12));
        assert_eq!(
            v.take(t + secs(11), &id("c-1")).unwrap_err(),
            NotAvailable::Viewed
        );
        assert_eq!(v.state(t + secs(11), &id("c-1")), SnapshotState::Viewed);
        assert_eq!(v.pictures(), 0);
    }

    #[test]
    fn an_unviewed_picture_is_gone_at_the_end_of_its_view_span_even_before_the_sweep() {
        let mut v = requested();
        let received = at(T0) + secs(4);
        v.insert(received, &dev("home-1"), &id("c-1"), picture())
            .unwrap();
        let end = received + secs(30);
        assert_eq!(v.state(end - secs(1), &id("c-1")), SnapshotState::Available);
        assert_eq!(v.state(end, &id("c-1")), SnapshotState::Expired);
        assert_eq!(v.take(end, &id("c-1")).unwrap_err(), NotAvailable::Expired);
        assert_eq!(
            v.take(end + secs(1), &id("c-1")).unwrap_err(),
            NotAvailable::Expired
        );
    }

    #[test]
    fn the_sweep_drops_an_unviewed_picture_after_its_view_span_and_forgets_old_states() {
        let mut v = requested();
        let received = at(T0) + secs(4);
        v.insert(received, &dev("home-1"), &id("c-1"), picture())
            .unwrap();
        assert_eq!(v.sweep(received + secs(29)), Swept::default());
        assert_eq!(v.pictures(), 1);
        let swept = v.sweep(received + secs(30));
        assert_eq!(swept.unviewed, vec![id("c-1")]);
        assert_eq!(v.pictures(), 0);
        assert_eq!(
            v.state(received + secs(31), &id("c-1")),
            SnapshotState::Expired
        );
        v.sweep(received + secs(30) + REMEMBER);
        assert_eq!(
            v.state(received + REMEMBER + secs(31), &id("c-1")),
            SnapshotState::None
        );
    }

    #[test]
    fn a_request_without_a_picture_expires_when_the_check_closes_and_a_late_picture_is_refused() {
        let mut v = requested();
        let until = at(T0) + secs(300);
        let swept = v.sweep(until);
        assert_eq!(swept.never_arrived, vec![id("c-1")]);
        assert_eq!(
            v.insert(until + secs(1), &dev("home-1"), &id("c-1"), picture())
                .unwrap_err(),
            InsertRefused::TooLate
        );
        assert_eq!(v.state(until, &id("c-1")), SnapshotState::Expired);
    }

    #[test]
    fn an_unsolicited_second_or_foreign_picture_is_refused() {
        let mut v = requested();
        let t = at(T0) + secs(4);
        assert_eq!(
            v.insert(t, &dev("home-1"), &id("c-2"), picture())
                .unwrap_err(),
            InsertRefused::NotRequested
        );
        assert_eq!(
            v.insert(t, &dev("home-2"), &id("c-1"), picture())
                .unwrap_err(),
            InsertRefused::WrongDevice {
                expected: dev("home-1")
            }
        );
        v.insert(t, &dev("home-1"), &id("c-1"), picture()).unwrap();
        assert_eq!(
            v.insert(t, &dev("home-1"), &id("c-1"), picture())
                .unwrap_err(),
            InsertRefused::AlreadyReceived
        );
        v.take(t, &id("c-1")).unwrap();
        assert_eq!(
            v.insert(t, &dev("home-1"), &id("c-1"), picture())
                .unwrap_err(),
            InsertRefused::AlreadyReceived,
            "a viewed check takes no second picture"
        );
    }

    #[test]
    fn a_check_can_be_asked_for_its_snapshot_once_unless_the_request_was_withdrawn() {
        let mut v = requested();
        let until = at(T0) + secs(300);
        assert_eq!(
            v.request(id("c-1"), dev("home-1"), until).unwrap_err(),
            RequestRefused::AlreadyRequested
        );
        v.cancel(&id("c-1"));
        assert_eq!(v.state(at(T0), &id("c-1")), SnapshotState::None);
        v.request(id("c-1"), dev("home-1"), until).unwrap();
    }

    #[test]
    fn a_dropped_picture_is_zeroed_and_its_debug_output_has_no_bytes() {
        let mut p = picture();
        assert!(!format!("{p:?}").contains("216"), "{p:?}");
        // What `drop` does before the memory is freed.
        p.wipe();
        assert!(p.jpeg.iter().all(|b| *b == 0));
    }
}
