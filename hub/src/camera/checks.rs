//! The rules of a camera check's life, as pure functions of the time and the stored row.
//!
//! ```text
//!   requested ──answer──► answered            (late = false)
//!       │
//!       └─deadline passed─► no_answer ──answer──► answered (late = true)
//! ```
//! - a check is open on its device until its deadline (exclusive); a snapshot can be asked
//!   for only while it is open;
//! - the first answer from the check's own device wins; later answers, and answers from any
//!   other device, leave the check as it is (the event itself is stored like any event);
//! - an answer is late when the hub received it at or after the deadline;
//! - only a `requested` check can become `no_answer`.

use crate::store::{CheckAnswer, CheckRow, CheckStatus};
use jiff::Timestamp;
use uuid::Uuid;
use vaka_protocol::kinds::CameraCheck;

/// Whether a check with this deadline is still open at `now`.
pub fn is_open(deadline: Timestamp, now: Timestamp) -> bool {
    now < deadline
}

/// What a `camera_check` event carrying a `check_id` does to that check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerOutcome {
    /// The hub never asked for this check (e.g. another hub did, or the id is made up).
    Unknown,
    /// The check was asked of another device.
    WrongDevice { expected: String },
    /// The check already has its answer (e.g. this is a resent duplicate).
    AlreadyAnswered,
    /// The check gets this answer.
    Answer { late: bool },
}

pub fn judge_answer(check: Option<&CheckRow>, from: &str, received_at: Timestamp) -> AnswerOutcome {
    let Some(check) = check else {
        return AnswerOutcome::Unknown;
    };
    if check.device != from {
        return AnswerOutcome::WrongDevice {
            expected: check.device.clone(),
        };
    }
    match check.status {
        CheckStatus::Answered => AnswerOutcome::AlreadyAnswered,
        CheckStatus::Requested | CheckStatus::NoAnswer => AnswerOutcome::Answer {
            late: !is_open(check.deadline, received_at),
        },
    }
}

/// The `requested` checks whose deadline has passed at `now`: nobody answered them.
pub fn overdue(now: Timestamp, open: &[CheckRow]) -> Vec<&CheckRow> {
    open.iter()
        .filter(|c| c.status == CheckStatus::Requested && !is_open(c.deadline, now))
        .collect()
}

/// The row update for an answer carried by event `event_id`.
pub fn answer_row(
    check_id: &str,
    event_id: Uuid,
    received_at: Timestamp,
    body: &CameraCheck,
    late: bool,
) -> CheckAnswer {
    let figures = serde_json::json!({
        "frames": body.frames,
        "brightness": body.brightness,
        "motion_in_zone": body.motion_in_zone,
        "motion_outside": body.motion_outside,
        "presence": body.presence,
        "presence_strong": body.presence_strong,
        "duration_ms": body.duration_ms,
    });
    CheckAnswer {
        check_id: check_id.to_string(),
        event_id,
        received_at,
        verdict: body.verdict.as_str().to_string(),
        refusal: body
            .refusal
            .and_then(|r| serde_json::to_value(r).ok())
            .and_then(|v| v.as_str().map(str::to_string)),
        confidence: body.confidence,
        detail: body.detail.clone(),
        figures,
        late,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;
    use vaka_protocol::kinds::{ConsentRefusal, Verdict};

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn check(id: &str, status: CheckStatus, deadline: &str) -> CheckRow {
        CheckRow {
            status,
            ..CheckRow::requested(
                id,
                ("s", "home-1"),
                ("anna", "night_staff"),
                at("2026-11-23T02:00:00Z"),
                at(deadline),
            )
        }
    }

    #[test]
    fn nobody_answered_a_requested_check_once_its_deadline_has_passed() {
        let open = vec![
            check("a", CheckStatus::Requested, "2026-11-23T02:05:00Z"),
            check("b", CheckStatus::Requested, "2026-11-23T02:10:00Z"),
            check("c", CheckStatus::Answered, "2026-11-23T02:01:00Z"),
        ];
        let ids = |now: &str| -> Vec<String> {
            overdue(at(now), &open)
                .iter()
                .map(|c| c.check_id.clone())
                .collect()
        };
        assert!(
            ids("2026-11-23T02:04:59.999Z").is_empty(),
            "still open before its deadline"
        );
        assert_eq!(
            ids("2026-11-23T02:05:00Z"),
            vec!["a"],
            "closed at its deadline"
        );
        assert_eq!(
            ids("2026-11-23T03:00:00Z"),
            vec!["a", "b"],
            "an answered check never is"
        );
    }

    #[test]
    fn an_answer_in_time_answers_and_one_after_the_deadline_is_late_even_after_no_answer() {
        let deadline = "2026-11-23T02:05:00Z";
        let before = at(deadline) - SignedDuration::from_secs(1);
        let after = at(deadline) + SignedDuration::from_secs(600);
        let requested = check("a", CheckStatus::Requested, deadline);
        assert_eq!(
            judge_answer(Some(&requested), "home-1", before),
            AnswerOutcome::Answer { late: false }
        );
        assert_eq!(
            judge_answer(Some(&requested), "home-1", after),
            AnswerOutcome::Answer { late: true }
        );
        let no_answer = check("a", CheckStatus::NoAnswer, deadline);
        assert_eq!(
            judge_answer(Some(&no_answer), "home-1", after),
            AnswerOutcome::Answer { late: true }
        );
    }

    #[test]
    fn an_answer_to_an_unknown_check_another_devices_check_or_an_answered_one_changes_nothing() {
        let deadline = "2026-11-23T02:05:00Z";
        let now = at("2026-11-23T02:01:00Z");
        assert_eq!(judge_answer(None, "home-1", now), AnswerOutcome::Unknown);
        let requested = check("a", CheckStatus::Requested, deadline);
        assert_eq!(
            judge_answer(Some(&requested), "home-2", now),
            AnswerOutcome::WrongDevice {
                expected: "home-1".into()
            }
        );
        let answered = check("a", CheckStatus::Answered, deadline);
        assert_eq!(
            judge_answer(Some(&answered), "home-1", now),
            AnswerOutcome::AlreadyAnswered
        );
    }

    #[test]
    fn the_answer_row_keeps_verdict_refusal_and_figures_by_their_wire_names() {
        let body = CameraCheck {
            check_id: None,
            verdict: Verdict::RefusedOutsideConsent,
            refusal: Some(ConsentRefusal::OptedOutTonight),
            confidence: 1.0,
            detail: Some("opted out tonight".into()),
            frames: 0,
            brightness: None,
            motion_in_zone: None,
            motion_outside: None,
            presence: None,
            presence_strong: None,
            duration_ms: 0,
        };
        let row = answer_row("a", Uuid::nil(), at("2026-11-23T02:01:00Z"), &body, false);
        assert_eq!(row.verdict, "refused_outside_consent");
        assert_eq!(row.refusal.as_deref(), Some("opted_out_tonight"));
        assert_eq!(row.figures["frames"], 0);
        assert!(row.figures["brightness"].is_null());
    }
}
