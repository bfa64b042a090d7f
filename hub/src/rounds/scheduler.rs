//! The round scheduler: a pure core that moves every check of a night towards its outcome.
//!
//! [`Round`] holds the night's checks and takes inputs ([`Round::tick`], [`Round::answer`],
//! [`Round::decide`], [`Round::record`], [`Round::add`]) at a time given by the caller; it
//! never reads a clock, the store or the network. Each input returns the [`Action`]s for the
//! shell: checks to store, camera checks to send, visits to route. The shell stores the changed
//! checks first and acts after, so a crash between the two leaves a check that waits for an
//! answer that never comes, and fails over to the retry or the visit at its deadline: a check
//! is never run twice and never forgotten.
//!
//! The rules (see `state.rs` for the picture):
//! - a camera check goes out at its planned moment, or at once if that moment has passed (after
//!   a restart) — unless its device is offline, then it becomes a visit at once;
//! - `resting` / `moving_in_bed` settle it; `unclear` waits for a person's decision on the
//!   snapshot (`staff_within`); `opted_out_tonight` ends it refused by consent;
//! - anything else (`not_in_bed`, `camera_fault`, another refusal, no answer within
//!   `answer_within`, no decision) fails the attempt: method `camera` retries once after
//!   `retry_after`, then — like `camera_then_visit` at once — it becomes a visit promised within
//!   `visit_promise`;
//! - no camera check goes out after the shift's end: one falling due then ends `missed`;
//! - staff record visits' outcomes; when the shift has ended and `close_after` passed, whatever
//!   is still open ends `missed`, with the reason.

use super::plan::{Method, Recipient, RuleAction};
use super::state::{Attempt, Origin, Outcome, RoundCheck, State, VisitTask};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// After a first camera attempt that did not settle the check (default 20 min).
    pub retry_after: SignedDuration,
    /// Staff on site within this after an escalation (default 45 min).
    pub visit_promise: SignedDuration,
    /// A camera check without an answer by then failed (default 10 min).
    pub answer_within: SignedDuration,
    /// An `unclear` check nobody decided on by then failed (default 15 min).
    pub staff_within: SignedDuration,
    /// Open checks end `missed` this long after the shift's end (default 60 min), so staff
    /// can still record the last visits.
    pub close_after: SignedDuration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            retry_after: SignedDuration::from_mins(20),
            visit_promise: SignedDuration::from_mins(45),
            answer_within: SignedDuration::from_mins(10),
            staff_within: SignedDuration::from_mins(15),
            close_after: SignedDuration::from_mins(60),
        }
    }
}

/// What the shell must do, after storing every check named in [`Actions::changed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    SendCamera { check: String, camera_check: String, device: String, answer_by: Timestamp },
    /// Put this check's visit into the patrols' routes.
    RouteVisit { check: String },
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Actions {
    pub changed: BTreeSet<String>,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InputError {
    #[error("no check `{0}` in this round")]
    Unknown(String),
    #[error("check `{0}` already has its outcome")]
    AlreadyDone(String),
    #[error("check `{id}` is {state}, not waiting for a staff decision")]
    NotAwaitingStaff { id: String, state: &'static str },
    #[error("`{0}` is not an outcome staff record")]
    NotStaffOutcome(&'static str),
}

pub struct Round {
    pub night: Date,
    pub checks: BTreeMap<String, RoundCheck>,
    pub settings: Settings,
    /// No camera check goes out at or after the shift's end.
    pub shift_end: Timestamp,
    /// The shift's end plus `close_after`.
    pub closes_at: Timestamp,
}

impl Round {
    pub fn new(night: Date, checks: impl IntoIterator<Item = RoundCheck>, settings: Settings, shift_end: Timestamp) -> Round {
        Round {
            night,
            checks: checks.into_iter().map(|c| (c.id.clone(), c)).collect(),
            settings,
            shift_end,
            closes_at: shift_end + settings.close_after,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.checks.values().all(|c| c.state == State::Done)
    }

    /// Moves every check whose time has come. `offline`: camera devices offline now.
    /// `new_id` makes a camera check id.
    pub fn tick(&mut self, now: Timestamp, offline: &HashSet<String>, new_id: &mut dyn FnMut() -> String) -> Actions {
        let mut out = Actions::default();
        let settings = self.settings;
        let closing = now >= self.closes_at;
        let shift_over = now >= self.shift_end;
        for check in self.checks.values_mut() {
            if check.state == State::Done {
                continue;
            }
            if closing {
                let reason = missed_reason(check);
                check.finish(now, Outcome::Missed, Some(reason), "round", None);
                out.changed.insert(check.id.clone());
                continue;
            }
            if check.next_at.is_none_or(|t| now < t) {
                continue;
            }
            match check.state {
                State::Planned | State::RetryWait if shift_over => {
                    let reason = missed_reason(check);
                    check.finish(now, Outcome::Missed, Some(reason), "round", None);
                    out.changed.insert(check.id.clone());
                }
                State::Planned | State::RetryWait => {
                    let device = check.device.clone().unwrap_or_default();
                    if device.is_empty() || offline.contains(&device) {
                        let why = if device.is_empty() { "no camera device" } else { "camera device offline at its check time" };
                        escalate(check, now, why, &settings, &mut out);
                    } else {
                        send(check, now, device, new_id(), &settings, &mut out);
                    }
                }
                State::CameraSent => {
                    if let Some(a) = check.attempts.last_mut() {
                        a.result = Some("no_answer".into());
                    }
                    fail(check, now, "no answer from the camera", &settings, &mut out);
                }
                State::AwaitingStaff => {
                    fail(check, now, "nobody decided on the unclear snapshot in time", &settings, &mut out);
                }
                State::Visit | State::Done => {}
            }
        }
        out
    }

    /// A camera check's answer arrived (`verdict` and `refusal` by their wire names).
    pub fn answer(&mut self, now: Timestamp, camera_check: &str, verdict: &str, refusal: Option<&str>) -> Actions {
        let mut out = Actions::default();
        let settings = self.settings;
        let Some(check) = self.checks.values_mut().find(|c| c.attempts.iter().any(|a| a.camera_check == camera_check)) else {
            return out;
        };
        let latest = check.attempts.last().is_some_and(|a| a.camera_check == camera_check);
        let waiting = check.state == State::CameraSent
            || (check.state == State::RetryWait && check.attempts.last().is_some_and(|a| a.result.as_deref() == Some("no_answer")));
        if !latest || !waiting {
            check.log(now, format!("late camera answer {verdict} to {camera_check} kept for the record"));
            out.changed.insert(check.id.clone());
            return out;
        }
        if let Some(a) = check.attempts.last_mut() {
            a.result = Some(verdict.to_string());
            a.refusal = refusal.map(str::to_string);
        }
        out.changed.insert(check.id.clone());
        match (verdict, refusal) {
            ("resting" | "moving_in_bed", _) => {
                check.finish(now, Outcome::CheckedByCamera, Some(verdict.replace('_', " ")), "camera", None);
            }
            ("unclear", _) => {
                check.state = State::AwaitingStaff;
                check.next_at = Some(now + settings.staff_within);
                check.log(now, "camera unclear: waiting for staff to look at the snapshot");
            }
            ("refused_outside_consent", Some("opted_out_tonight")) => {
                check.finish(now, Outcome::RefusedByConsent, Some("the device's consent lock: opted out tonight".into()), "device", None);
            }
            (other, refusal) => {
                let why = match refusal {
                    Some(r) => format!("camera {other} ({r})"),
                    None => format!("camera {other}"),
                };
                if check.state == State::RetryWait {
                    // A late failure: the retry is already planned.
                    check.log(now, format!("late answer: {why}"));
                } else {
                    fail(check, now, &why, &settings, &mut out);
                }
            }
        }
        out
    }

    /// A member of staff looked at an `unclear` snapshot: `well` settles the check, otherwise
    /// a visit goes out at once.
    pub fn decide(&mut self, now: Timestamp, id: &str, well: bool, by: &str, note: Option<String>) -> Result<Actions, InputError> {
        let settings = self.settings;
        let check = self.checks.get_mut(id).ok_or_else(|| InputError::Unknown(id.to_string()))?;
        if check.state != State::AwaitingStaff {
            return Err(InputError::NotAwaitingStaff { id: id.to_string(), state: check.state.as_str() });
        }
        let mut out = Actions::default();
        out.changed.insert(id.to_string());
        if let Some(a) = check.attempts.last_mut() {
            a.result = Some(if well { "staff_saw_well" } else { "staff_saw_concern" }.into());
        }
        if well {
            check.finish(now, Outcome::CheckedByCamera, Some("unclear; staff looked at the snapshot".into()), by, note);
        } else {
            let why = match &note {
                Some(n) => format!("{by} looked at the snapshot: {n}"),
                None => format!("{by} looked at the snapshot"),
            };
            escalate(check, now, &why, &settings, &mut out);
        }
        Ok(out)
    }

    /// Staff record how a check ended (after a visit, or a call).
    pub fn record(&mut self, now: Timestamp, id: &str, outcome: Outcome, by: &str, note: Option<String>) -> Result<Actions, InputError> {
        if !outcome.by_staff() {
            return Err(InputError::NotStaffOutcome(outcome.as_str()));
        }
        let check = self.checks.get_mut(id).ok_or_else(|| InputError::Unknown(id.to_string()))?;
        let reason = (outcome == Outcome::Missed).then(|| "recorded by staff".to_string());
        if !check.finish(now, outcome, reason, by, note) {
            return Err(InputError::AlreadyDone(id.to_string()));
        }
        Ok(Actions { changed: BTreeSet::from([id.to_string()]), actions: Vec::new() })
    }

    /// Adds the check an alarm rule asks for, unless this alarm already has one. Returns the
    /// new check's id.
    pub fn add_for_alarm(
        &mut self,
        now: Timestamp,
        r: &Recipient,
        action: RuleAction,
        (alarm_id, kind, raised_at): (i64, &str, Timestamp),
    ) -> Option<(String, Actions)> {
        let id = format!("{}-{}-alarm-{alarm_id}", self.night, r.id);
        if self.checks.contains_key(&id) {
            return None;
        }
        let settings = self.settings;
        let method = match action {
            RuleAction::CameraCheck => Method::Camera,
            RuleAction::Visit | RuleAction::Search => Method::Visit,
        };
        let origin = Origin::Alarm { alarm_id, kind: kind.to_string(), raised_at };
        let mut check = RoundCheck::new(id.clone(), self.night, r, origin, method, now, (now, now + settings.visit_promise));
        check.notes = format!("{} after alarm {kind}", action.as_str());
        check.log(now, format!("added by the care plan's rule: {kind} → {}", action.as_str()));
        let mut out = Actions::default();
        out.changed.insert(id.clone());
        if method == Method::Visit {
            let why = match action {
                RuleAction::Search => format!("search for the person after {kind}"),
                _ => format!("visit after {kind}"),
            };
            escalate(&mut check, now, &why, &settings, &mut out);
        }
        self.checks.insert(id.clone(), check);
        Some((id, out))
    }
}

fn send(check: &mut RoundCheck, now: Timestamp, device: String, camera_check: String, s: &Settings, out: &mut Actions) {
    let answer_by = now + s.answer_within;
    check.attempts.push(Attempt { camera_check: camera_check.clone(), sent_at: now, answer_by, result: None, refusal: None });
    check.state = State::CameraSent;
    check.next_at = Some(answer_by);
    let late = if now > check.window.1 { " (after its window: the hub was away)" } else { "" };
    check.log(now, format!("camera check {} sent to {device}{late}", check.attempts.len()));
    out.changed.insert(check.id.clone());
    out.actions.push(Action::SendCamera { check: check.id.clone(), camera_check, device, answer_by });
}

/// The camera did not settle the check.
fn fail(check: &mut RoundCheck, now: Timestamp, why: &str, s: &Settings, out: &mut Actions) {
    out.changed.insert(check.id.clone());
    if check.method == Method::Camera && check.attempts.len() < 2 {
        check.state = State::RetryWait;
        check.next_at = Some(now + s.retry_after);
        check.log(now, format!("{why}; retry at {}", now + s.retry_after));
    } else {
        escalate(check, now, why, s, out);
    }
}

fn escalate(check: &mut RoundCheck, now: Timestamp, why: &str, s: &Settings, out: &mut Actions) {
    check.state = State::Visit;
    check.next_at = None;
    check.visit = Some(VisitTask {
        reason: why.to_string(),
        requested_at: now,
        earliest: now,
        latest: now + s.visit_promise,
        urgent: true,
        patrol: None,
        planned_arrival: None,
    });
    check.log(now, format!("{why}; visit promised by {}", now + s.visit_promise));
    out.changed.insert(check.id.clone());
    out.actions.push(Action::RouteVisit { check: check.id.clone() });
}

fn missed_reason(check: &RoundCheck) -> String {
    match check.state {
        State::Visit if check.escalated() => "escalated visit not recorded by the end of the shift".into(),
        State::Visit => "planned visit not recorded by the end of the shift".into(),
        State::RetryWait => "the camera retry was due after the shift ended".into(),
        State::CameraSent => "no camera answer by the end of the shift".into(),
        State::AwaitingStaff => "unclear snapshot not decided by the end of the shift".into(),
        State::Planned | State::Done => "not started by the end of the shift".into(),
    }
}

#[cfg(test)]
mod tests;
