//! One check of a night's round, as it is stored: where it stands, its camera attempts, its
//! visit, its outcome and its history.
//!
//! ```text
//!  planned ──time──► camera_sent ──resting / moving_in_bed──► done (checked by camera)
//!     │                 │  └─unclear─► awaiting_staff ──seen well──► done (checked by camera)
//!     │                 │                   │ └─not well──► visit
//!     │                 └─not_in_bed / fault / refusal / no answer / no decision─┐
//!     │                                                                           ▼
//!     │                         first attempt of `camera`: retry_wait ──time──► camera_sent
//!     │                         otherwise: visit (escalated, promised within 45 min)
//!     ├─device offline at its time──► visit
//!     └─method visit: visit (planned) ──staff record it──► done (by visit, declined, not home)
//!  any state but done ──shift closed──► done (missed, with the reason)
//! ```
//! Invariant: a check has an outcome exactly when it is `done`, and an outcome is never
//! replaced. Every change appends a line to `history`, so the console can show who did what
//! when.

use super::plan::{Method, Position, Recipient};
use jiff::civil::{Date, Time};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for its time.
    Planned,
    /// A camera check is out to the device; waiting for its answer.
    CameraSent,
    /// The camera said `unclear`: a member of staff should look at the snapshot and decide.
    AwaitingStaff,
    /// The first camera attempt did not settle it; the second goes out at `retry_at`.
    RetryWait,
    /// A physical visit is due (planned, or escalated); waiting for staff to record it.
    Visit,
    Done,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Planned => "planned",
            State::CameraSent => "camera_sent",
            State::AwaitingStaff => "awaiting_staff",
            State::RetryWait => "retry_wait",
            State::Visit => "visit",
            State::Done => "done",
        }
    }
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The camera (or staff looking at its snapshot) saw the person well; nobody was woken.
    CheckedByCamera,
    CheckedByVisit,
    /// The person declined the visit or check when staff were there or called.
    Declined,
    NotAtHome,
    /// The person's consent excludes this check (opted out of the night, or the device's
    /// consent lock says so).
    RefusedByConsent,
    /// Not done; the reason says why.
    Missed,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::CheckedByCamera,
        Outcome::CheckedByVisit,
        Outcome::Declined,
        Outcome::NotAtHome,
        Outcome::RefusedByConsent,
        Outcome::Missed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::CheckedByCamera => "checked_by_camera",
            Outcome::CheckedByVisit => "checked_by_visit",
            Outcome::Declined => "declined",
            Outcome::NotAtHome => "not_at_home",
            Outcome::RefusedByConsent => "refused_by_consent",
            Outcome::Missed => "missed",
        }
    }

    /// The outcomes staff record after a visit (or a call).
    pub fn by_staff(self) -> bool {
        matches!(self, Outcome::CheckedByVisit | Outcome::Declined | Outcome::NotAtHome | Outcome::Missed)
    }
}

/// Why the check is in the round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Origin {
    /// An agreed time of the care plan.
    Plan { at: Time },
    /// A rule of the care plan, triggered by this alarm.
    Alarm { alarm_id: i64, kind: String, raised_at: Timestamp },
}

/// One camera check sent to the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// The camera check's id (`/api/v1/checks/{id}`), a UUID.
    pub camera_check: String,
    pub sent_at: Timestamp,
    /// Without an answer by then, the attempt failed.
    pub answer_by: Timestamp,
    /// The verdict's wire name once answered, `no_answer`, or a staff decision.
    pub result: Option<String>,
    pub refusal: Option<String>,
}

/// A physical visit the check needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisitTask {
    /// Why: `planned`, or what the camera could not settle.
    pub reason: String,
    pub requested_at: Timestamp,
    /// The arrival window given to the router.
    pub earliest: Timestamp,
    pub latest: Timestamp,
    /// An escalation: staff promised on site by `latest`.
    pub urgent: bool,
    /// Set by the router.
    pub patrol: Option<String>,
    pub planned_arrival: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// `camera`, the round itself (`round`), or the staff member's name.
    pub by: String,
    pub at: Timestamp,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub at: Timestamp,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundCheck {
    pub id: String,
    pub night: Date,
    pub recipient: String,
    pub recipient_name: String,
    pub team: String,
    /// The camera device, if the person has one.
    pub device: Option<String>,
    pub place: Position,
    pub origin: Origin,
    pub method: Method,
    pub planned_at: Timestamp,
    /// The agreed tolerance around `planned_at`.
    pub window: (Timestamp, Timestamp),
    pub visit_min: u32,
    pub notes: String,
    pub state: State,
    /// When the round should look at this check again (its time, a retry, a deadline).
    pub next_at: Option<Timestamp>,
    pub attempts: Vec<Attempt>,
    pub visit: Option<VisitTask>,
    pub outcome: Option<OutcomeRecord>,
    pub history: Vec<Step>,
}

impl RoundCheck {
    pub fn new(
        id: String,
        night: Date,
        r: &Recipient,
        origin: Origin,
        method: Method,
        planned_at: Timestamp,
        window: (Timestamp, Timestamp),
    ) -> RoundCheck {
        RoundCheck {
            id,
            night,
            recipient: r.id.clone(),
            recipient_name: r.name.clone(),
            team: r.team.clone(),
            device: r.camera_device.clone(),
            place: r.position,
            origin,
            method,
            planned_at,
            window,
            visit_min: super::plan::DEFAULT_VISIT_MIN,
            notes: String::new(),
            state: State::Planned,
            next_at: Some(planned_at),
            attempts: Vec::new(),
            visit: None,
            outcome: None,
            history: Vec::new(),
        }
    }

    pub fn log(&mut self, at: Timestamp, what: impl Into<String>) {
        self.history.push(Step { at, what: what.into() });
    }

    /// A visit agreed in the plan, routed within the check's window.
    pub fn plan_visit(&mut self, now: Timestamp) {
        self.state = State::Visit;
        self.next_at = None;
        self.visit = Some(VisitTask {
            reason: "planned".into(),
            requested_at: now,
            earliest: self.window.0,
            latest: self.window.1,
            urgent: false,
            patrol: None,
            planned_arrival: None,
        });
        self.log(now, "visit planned");
    }

    /// The person opted out of this night.
    pub fn opted_out(&mut self, now: Timestamp) {
        self.visit = None;
        self.finish(now, Outcome::RefusedByConsent, Some("opted out of this night".into()), "care plan", None);
    }

    /// Ends the check. Does nothing to a check that already has its outcome.
    pub fn finish(&mut self, now: Timestamp, outcome: Outcome, reason: Option<String>, by: &str, note: Option<String>) -> bool {
        if self.state == State::Done {
            return false;
        }
        self.state = State::Done;
        self.next_at = None;
        let line = match &reason {
            Some(r) => format!("outcome {} by {by}: {r}", outcome.as_str()),
            None => format!("outcome {} by {by}", outcome.as_str()),
        };
        self.outcome = Some(OutcomeRecord { outcome, reason, by: by.to_string(), at: now, note });
        self.log(now, line);
        true
    }

    /// The camera attempt now waiting for an answer, if any.
    pub fn current_attempt(&self) -> Option<&Attempt> {
        match self.state {
            State::CameraSent | State::AwaitingStaff | State::RetryWait => self.attempts.last(),
            _ => None,
        }
    }

    /// Whether this check was escalated from the camera to a visit.
    pub fn escalated(&self) -> bool {
        self.visit.as_ref().is_some_and(|v| v.urgent)
    }
}
