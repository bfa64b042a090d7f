//! A deliberate test fault point: abort the hub between a database commit and its acks.
//!
//! The fault suite's scenario R6 ("hub killed between the database commit and the ack") needs
//! a crash at one exact place that no signal sent from outside can hit reliably. When the
//! environment variable [`ENV`] holds a number N at start-up, the store writer aborts the whole
//! process (`std::process::abort`, as abrupt as `kill -9`: no clean-up, no last publish) right
//! after the N-th committed transaction that holds at least one device event, before any ack of
//! that transaction is handed to the ack publisher. The events are then on disk and their
//! device still holds them as unacknowledged, which is the state the scenario is about.
//!
//! The variable is read once, when the hub starts, and an armed fault point is logged at ERROR
//! so that it cannot go unnoticed. It is not a cargo feature on purpose: a feature would build
//! the whole workspace a second time in another configuration. Never set it in production.

use tracing::error;

/// The environment variable that arms the fault point.
pub const ENV: &str = "VAKA_FAULT_ABORT_AFTER_COMMIT";

/// Aborts the process after the `nth` committed batch holding events, before its acks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortAfterCommit {
    nth: u64,
    seen: u64,
}

impl AbortAfterCommit {
    /// Reads [`ENV`]; `None` when it is not set. A value that is not a positive whole number
    /// leaves the fault point unarmed and is logged.
    pub fn from_env() -> Option<AbortAfterCommit> {
        let value = std::env::var(ENV).ok()?;
        match value.trim().parse::<u64>() {
            Ok(nth) if nth > 0 => {
                error!(
                    nth,
                    "TEST FAULT POINT ARMED: {ENV} is set; this hub will abort right after its \
                     {nth}th database commit of device events and before acking them. This is \
                     for the fault-suite tests only; never set it in production"
                );
                Some(AbortAfterCommit { nth, seen: 0 })
            }
            _ => {
                error!(value, "{ENV} is not a positive whole number; the test fault point stays unarmed");
                None
            }
        }
    }

    /// Called by the writer after each commit, before any ack of it goes out; aborts the
    /// process at the armed commit.
    pub fn after_commit(&mut self, events: usize) {
        if self.counts(events) {
            error!(
                nth = self.nth,
                events,
                "TEST FAULT POINT: aborting after a committed batch, before its acks are sent"
            );
            std::process::abort();
        }
    }

    /// Counts a commit of `events` device events; whether it is the armed one. Commits without
    /// events (statuses, supervision ticks) do not count.
    fn counts(&mut self, events: usize) -> bool {
        if events == 0 {
            return false;
        }
        self.seen += 1;
        self.seen == self.nth
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_nth_commit_holding_events_is_the_armed_one() {
        let mut fault = AbortAfterCommit { nth: 2, seen: 0 };
        let due: Vec<bool> = [0, 3, 0, 0, 1, 5].into_iter().map(|events| fault.counts(events)).collect();
        assert_eq!(due, [false, false, false, false, true, false]);
    }
}
