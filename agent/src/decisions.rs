//! The shell around an on-device decision core (dose grace timers, the GPS tracker).
//!
//! Missed doses and geofence alarms are decided on the device, so that they are raised while
//! the hub is unreachable. A decision core is a pure state machine ([`Core`]): it is handed
//! inputs and clock ticks and answers with events. This shell does the IO around it:
//! - it wakes the core at [`Core::next_wake`] (a grace period ends, a dwell time passes),
//!   reading time only from the injected [`Clock`], so tests run it under paused tokio time;
//! - it records the core's events **and its state in one outbox transaction**
//!   ([`OutboxHandle::record`]), so after a crash or power cut the state on disk and the
//!   events in the outbox agree: a raised alarm is not raised twice, a running timer is not
//!   forgotten;
//! - a change of state that raises no event (the time of the last GPS fix, a dwell begun, a
//!   dispenser heartbeat heard) is recorded at most every [`CHECKPOINT`], not with every
//!   input: a receiver's fix every second must not cost an fsync every second. A crash loses
//!   at most that much of such state (a dwell restarts, a fix looks older), never an event;
//! - at start it restores the core from the state last recorded (see [`start_state`]), so a
//!   grace period that ended while the agent was down raises its alarm at once, and one that
//!   has not ended fires on time.
//!
//! If the outbox cannot store (disk error), the events are kept in memory and offered again
//! every second, logged at ERROR each time: an alarm may be late, never silently dropped.

use crate::clock::Clock;
use crate::outbox::{Acceptance, NewEvent, OutboxError, OutboxHandle, StateWrite};
use jiff::Timestamp;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

/// A pure decision core.
pub trait Core {
    type Input;
    /// The outbox state key, e.g. `dispenser`.
    const KEY: &'static str;
    /// Handles one input or, with `None`, a clock tick.
    fn handle(&mut self, now: Timestamp, input: Option<Self::Input>) -> Vec<NewEvent>;
    /// When the core must be ticked next, if ever.
    fn next_wake(&self) -> Option<Timestamp>;
    /// The state to record, serialised.
    fn state(&self) -> Vec<u8>;
}

/// Where the shell records events and state: the outbox ([`OutboxHandle::record`]); tests
/// use an in-memory recorder so that paused tokio time never advances while a record is on
/// the outbox thread.
pub trait Recorder: Send + Sync + 'static {
    fn record(
        &self,
        events: Vec<NewEvent>,
        state: StateWrite,
    ) -> impl std::future::Future<Output = Result<Vec<Acceptance>, OutboxError>> + Send;
}

impl Recorder for OutboxHandle {
    fn record(
        &self,
        events: Vec<NewEvent>,
        state: StateWrite,
    ) -> impl std::future::Future<Output = Result<Vec<Acceptance>, OutboxError>> + Send {
        OutboxHandle::record(self, events, state)
    }
}

/// State changes without events are recorded at most this often.
pub const CHECKPOINT: Duration = Duration::from_secs(30);

/// Retry interval when the outbox could not store.
const RETRY: Duration = Duration::from_secs(1);

/// The state recorded under `key` at the last run, if it can be read; a state that cannot be
/// read is logged and the core starts afresh (its pending events are in the outbox anyway).
pub async fn start_state(outbox: &OutboxHandle, key: &'static str) -> Option<Vec<u8>> {
    match outbox.state(key).await {
        Ok(state) => state,
        Err(e) => {
            error!(key, error = %e, "Stored decision state could not be read; starting afresh");
            None
        }
    }
}

/// Decodes a core's recorded state (JSON); `None`, logged at ERROR, if it cannot be read, so
/// the core starts afresh (its pending events are in the outbox anyway).
pub fn decode_state<S: serde::de::DeserializeOwned>(key: &str, saved: Option<Vec<u8>>) -> Option<S> {
    match serde_json::from_slice(&saved?) {
        Ok(state) => {
            info!(key, "Decision state restored");
            Some(state)
        }
        Err(e) => {
            error!(key, error = %e, "Stored decision state is unreadable; starting afresh");
            None
        }
    }
}

/// Encodes a core's state for [`Core::state`] (JSON).
pub fn encode_state(state: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(state).unwrap_or_default()
}

/// Runs `core` until `inputs` closes (then it keeps ticking until its wakes are done, so a
/// timer still fires after a replay has ended) or the task is aborted. `speed` is how much
/// faster than real time `clock` runs (1.0, except for simulated devices in a demo).
pub async fn run<C: Core>(
    mut core: C,
    outbox: impl Recorder,
    clock: Clock,
    speed: f64,
    mut inputs: mpsc::Receiver<C::Input>,
) {
    let mut recorded = None::<Vec<u8>>;
    let mut last_write = None::<tokio::time::Instant>;
    let mut pending: Vec<NewEvent> = Vec::new();
    let mut open = true;
    // A first tick settles anything due while the agent was down.
    let mut next: Option<Option<C::Input>> = Some(None);
    loop {
        if let Some(input) = next.take() {
            pending.extend(core.handle(clock(), input));
        }
        let state = core.state();
        let mut unrecorded = recorded.as_ref() != Some(&state);
        let checkpoint_due = last_write.is_none_or(|t| t.elapsed() >= CHECKPOINT);
        if !pending.is_empty() || (unrecorded && checkpoint_due) {
            let events = std::mem::take(&mut pending);
            let write = StateWrite { key: C::KEY, value: state.clone() };
            match outbox.record(events.clone(), write).await {
                Ok(outcomes) => {
                    recorded = Some(state);
                    unrecorded = false;
                    last_write = Some(tokio::time::Instant::now());
                    for (event, outcome) in events.iter().zip(outcomes) {
                        log_outcome(C::KEY, event, outcome);
                    }
                }
                Err(e) => {
                    error!(key = C::KEY, events = events.len(), error = %e, "Decision could not be stored; retrying");
                    pending = events;
                }
            }
        }
        let wake = if pending.is_empty() {
            let core_wake =
                core.next_wake().map(|at| duration_until(clock(), at).div_f64(speed.max(1e-3)));
            // A state change still unrecorded is written at the next checkpoint.
            let checkpoint = last_write
                .filter(|_| unrecorded)
                .map(|t| CHECKPOINT.saturating_sub(t.elapsed()));
            [core_wake, checkpoint].into_iter().flatten().min()
        } else {
            Some(RETRY)
        };
        if !open && wake.is_none() {
            debug!(key = C::KEY, "Decision core has nothing more to do");
            return;
        }
        tokio::select! {
            input = inputs.recv(), if open => match input {
                Some(input) => next = Some(Some(input)),
                None => open = false,
            },
            () = sleep(wake) => next = Some(None),
        }
    }
}

fn log_outcome(key: &str, event: &NewEvent, outcome: Acceptance) {
    let (kind, severity) = (event.body.kind(), event.severity.as_str());
    match outcome {
        Acceptance::Accepted { seq, .. } if severity == "alarm" => {
            info!(key, kind, seq, "Alarm raised on the device: {kind}")
        }
        Acceptance::Accepted { seq, .. } => debug!(key, kind, severity, seq, "Event accepted"),
        Acceptance::Dropped { reason } => warn!(key, kind, severity, "Event dropped: {reason}"),
    }
}

fn duration_until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

async fn sleep(wake: Option<Duration>) {
    match wake {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;
