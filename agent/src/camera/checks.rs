//! The agent's book of open camera checks: what to do with a request from the hub. Pure.
//!
//! A `camera_check` command names a check and a deadline. The check is *open* on the device
//! from the command until that deadline (at most [`MAX_OPEN`] ahead, whatever the hub says):
//! the verdict is due within it, and within it the hub may ask for **one** snapshot. The book
//! answers, for a given moment and the consent lock:
//! - [`CheckBook::start`]: run the check now (with how long the camera may stay open), refuse
//!   it (the consent lock said no, and the refusal is reported), or drop it (deadline already
//!   passed, or the same check asked again — a resent command must not open the camera twice);
//! - [`CheckBook::snapshot`]: take the one snapshot, or why not.
//!
//! Invariants:
//! - The camera is only ever opened on `Run` or `Take`, and both come only from an `Allowed`
//!   consent decision at that very moment; the time the camera may stay open is capped by the
//!   consent window's end, so a check that starts at 06:59:58 for a window ending at 07:00
//!   captures for two seconds, not four.
//! - A check gives at most one snapshot, and none once refused or past its deadline.
//! - The book remembers at most [`MAX_TRACKED`] checks; the oldest deadline goes first.

use super::consent::{Consent, ConsentDecision, RefusalReason};
use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;
use std::time::Duration;
use vaka_protocol::CheckId;

/// Longest a check stays open on the device, whatever deadline the hub gives.
pub const MAX_OPEN: SignedDuration = SignedDuration::from_mins(15);
/// Checks remembered at once (duplicates and snapshot requests are matched against these).
pub const MAX_TRACKED: usize = 64;

/// What to do with a check request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Open the camera now and capture over `span` (already capped by the consent window).
    Run { span: Duration },
    /// The consent lock keeps the camera closed; report this as the check's outcome.
    Refuse(RefusalReason),
    /// The deadline had passed when the request arrived; the hub has given up on it.
    Expired,
    /// This check is already known (a command delivered twice); nothing to do.
    Duplicate,
}

/// Why no snapshot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotDenied {
    /// No such check on this device (never asked, or forgotten).
    UnknownCheck,
    /// Its deadline has passed.
    Closed,
    /// The check was refused by the consent lock; the camera stays closed.
    Refused,
    /// The check's one snapshot was already taken.
    AlreadyTaken,
    /// The check is open but consent no longer allows the camera (the window ended).
    Consent(RefusalReason),
}

impl std::fmt::Display for SnapshotDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            SnapshotDenied::UnknownCheck => f.write_str("no such check is open on this device"),
            SnapshotDenied::Closed => f.write_str("the check's deadline has passed"),
            SnapshotDenied::Refused => f.write_str("the check was refused by the consent lock"),
            SnapshotDenied::AlreadyTaken => f.write_str("the check's one snapshot was taken"),
            SnapshotDenied::Consent(r) => write!(f, "{r}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Refused,
    SnapshotTaken,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    deadline: Timestamp,
    state: State,
}

#[derive(Debug, Default)]
pub struct CheckBook {
    open: HashMap<CheckId, Open>,
}

impl CheckBook {
    pub fn new() -> Self {
        CheckBook::default()
    }

    /// A request for check `id` (`None`: one the device runs on its own) with the hub's
    /// `deadline`, at `now`, to capture over `span`.
    pub fn start(
        &mut self,
        now: Timestamp,
        consent: &Consent,
        id: Option<&CheckId>,
        deadline: Option<Timestamp>,
        span: Duration,
    ) -> Start {
        let deadline = deadline.unwrap_or(now + MAX_OPEN).min(now + MAX_OPEN);
        if deadline <= now {
            return Start::Expired;
        }
        if let Some(id) = id {
            if self.open.contains_key(id) {
                return Start::Duplicate;
            }
        }
        let decision = consent.decide(now);
        if let Some(id) = id {
            self.forget_closed(now);
            let state = match decision {
                ConsentDecision::Allowed { .. } => State::Running,
                ConsentDecision::Refused { .. } => State::Refused,
            };
            self.open.insert(id.clone(), Open { deadline, state });
        }
        match decision {
            ConsentDecision::Allowed { window_ends } => Start::Run {
                span: capped(span, now, window_ends),
            },
            ConsentDecision::Refused { reason } => Start::Refuse(reason),
        }
    }

    /// The hub asks for the snapshot of check `id` at `now`. `Ok(span)` means: open the camera
    /// for one frame, within `span` at most.
    pub fn snapshot(
        &mut self,
        now: Timestamp,
        consent: &Consent,
        id: &CheckId,
    ) -> Result<Duration, SnapshotDenied> {
        let Some(open) = self.open.get_mut(id) else {
            return Err(SnapshotDenied::UnknownCheck);
        };
        if open.deadline <= now {
            return Err(SnapshotDenied::Closed);
        }
        match open.state {
            State::Refused => return Err(SnapshotDenied::Refused),
            State::SnapshotTaken => return Err(SnapshotDenied::AlreadyTaken),
            State::Running => {}
        }
        match consent.decide(now) {
            ConsentDecision::Refused { reason } => Err(SnapshotDenied::Consent(reason)),
            ConsentDecision::Allowed { window_ends } => {
                open.state = State::SnapshotTaken;
                Ok(capped(SNAPSHOT_SPAN, now, window_ends))
            }
        }
    }

    /// Checks currently remembered.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Drops closed checks, and the earliest deadlines while over [`MAX_TRACKED`].
    fn forget_closed(&mut self, now: Timestamp) {
        self.open.retain(|_, o| o.deadline > now);
        while self.open.len() >= MAX_TRACKED {
            let oldest = self
                .open
                .iter()
                .min_by_key(|(_, o)| o.deadline)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => self.open.remove(&id),
                None => break,
            };
        }
    }
}

/// Longest the camera stays open for a snapshot's one frame.
pub const SNAPSHOT_SPAN: Duration = Duration::from_secs(2);

/// `span`, but ending by `window_ends`.
fn capped(span: Duration, now: Timestamp, window_ends: Timestamp) -> Duration {
    let left = Duration::try_from(window_ends.duration_since(now)).unwrap_or(Duration::ZERO);
    span.min(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::consent::testing::{local as at, nights as consent};



    fn id(s: &str) -> CheckId {
        CheckId::new(s).unwrap()
    }

    const SPAN: Duration = Duration::from_secs(4);

    #[test]
    fn check_inside_the_window_runs_and_outside_is_refused_with_the_reason() {
        let mut book = CheckBook::new();
        let c = consent();
        let now = at("2026-11-23T02:00");
        assert_eq!(
            book.start(
                now,
                &c,
                Some(&id("a")),
                Some(now + SignedDuration::from_mins(5)),
                SPAN
            ),
            Start::Run { span: SPAN }
        );
        let noon = at("2026-11-23T12:00");
        let r = book.start(
            noon,
            &c,
            Some(&id("b")),
            Some(noon + SignedDuration::from_mins(5)),
            SPAN,
        );
        assert!(
            matches!(r, Start::Refuse(RefusalReason::OutsideWindow { .. })),
            "{r:?}"
        );
        let xmas = at("2026-12-25T01:00");
        let r = book.start(xmas, &c, Some(&id("c")), None, SPAN);
        assert!(
            matches!(r, Start::Refuse(RefusalReason::OptedOutTonight { .. })),
            "{r:?}"
        );
    }

    #[test]
    fn capture_ends_with_the_consent_window() {
        let mut book = CheckBook::new();
        let now = at("2026-11-23T06:59:58");
        assert_eq!(
            book.start(now, &consent(), Some(&id("a")), None, SPAN),
            Start::Run {
                span: Duration::from_secs(2)
            }
        );
    }

    #[test]
    fn resent_command_does_not_open_the_camera_twice() {
        let mut book = CheckBook::new();
        let now = at("2026-11-23T02:00");
        let deadline = Some(now + SignedDuration::from_mins(5));
        assert!(matches!(
            book.start(now, &consent(), Some(&id("a")), deadline, SPAN),
            Start::Run { .. }
        ));
        assert_eq!(
            book.start(now, &consent(), Some(&id("a")), deadline, SPAN),
            Start::Duplicate
        );
    }

    #[test]
    fn request_arriving_after_its_deadline_is_dropped() {
        let mut book = CheckBook::new();
        let now = at("2026-11-23T02:00");
        let r = book.start(
            now,
            &consent(),
            Some(&id("a")),
            Some(now - SignedDuration::from_secs(1)),
            SPAN,
        );
        assert_eq!(r, Start::Expired);
        assert!(book.is_empty());
    }

    #[test]
    fn one_snapshot_per_open_check_and_none_after_the_deadline() {
        let mut book = CheckBook::new();
        let c = consent();
        let now = at("2026-11-23T02:00");
        let deadline = now + SignedDuration::from_mins(5);
        book.start(now, &c, Some(&id("a")), Some(deadline), SPAN);
        book.start(now, &c, Some(&id("b")), Some(deadline), SPAN);
        assert_eq!(
            book.snapshot(now + SignedDuration::from_secs(30), &c, &id("a")),
            Ok(SNAPSHOT_SPAN)
        );
        assert_eq!(
            book.snapshot(now + SignedDuration::from_secs(31), &c, &id("a")),
            Err(SnapshotDenied::AlreadyTaken)
        );
        assert_eq!(
            book.snapshot(deadline, &c, &id("b")),
            Err(SnapshotDenied::Closed)
        );
        assert_eq!(
            book.snapshot(now, &c, &id("zz")),
            Err(SnapshotDenied::UnknownCheck)
        );
    }

    #[test]
    fn refused_check_gives_no_snapshot_even_when_asked_inside_a_window_later() {
        let mut book = CheckBook::new();
        let c = consent();
        let now = at("2026-11-23T20:58");
        book.start(
            now,
            &c,
            Some(&id("a")),
            Some(now + SignedDuration::from_mins(10)),
            SPAN,
        );
        let later = at("2026-11-23T21:01");
        assert_eq!(
            book.snapshot(later, &c, &id("a")),
            Err(SnapshotDenied::Refused)
        );
    }

    #[test]
    fn snapshot_after_the_window_closed_is_denied_by_consent() {
        let mut book = CheckBook::new();
        let c = consent();
        let now = at("2026-11-23T06:58");
        book.start(
            now,
            &c,
            Some(&id("a")),
            Some(now + SignedDuration::from_mins(10)),
            SPAN,
        );
        let r = book.snapshot(at("2026-11-23T07:01"), &c, &id("a"));
        assert!(
            matches!(
                r,
                Err(SnapshotDenied::Consent(RefusalReason::OutsideWindow { .. }))
            ),
            "{r:?}"
        );
    }

    #[test]
    fn hub_deadline_is_capped_to_fifteen_minutes() {
        let mut book = CheckBook::new();
        let c = consent();
        let now = at("2026-11-23T02:00");
        book.start(
            now,
            &c,
            Some(&id("a")),
            Some(now + SignedDuration::from_hours(5)),
            SPAN,
        );
        assert_eq!(
            book.snapshot(now + MAX_OPEN, &c, &id("a")),
            Err(SnapshotDenied::Closed)
        );
    }

    #[test]
    fn book_forgets_closed_checks_and_stays_bounded() {
        let mut book = CheckBook::new();
        let c = consent();
        let now = at("2026-11-23T02:00");
        for i in 0..200 {
            let deadline = now + SignedDuration::from_secs(60 + i);
            book.start(now, &c, Some(&id(&format!("c{i}"))), Some(deadline), SPAN);
        }
        assert_eq!(book.len(), MAX_TRACKED);
        // The newest are kept.
        assert_eq!(book.snapshot(now, &c, &id("c199")), Ok(SNAPSHOT_SPAN));
        book.start(
            now + SignedDuration::from_mins(10),
            &c,
            Some(&id("late")),
            None,
            SPAN,
        );
        assert_eq!(book.len(), 1);
    }
}
