//! An in-memory [`Recorder`] for tests of decision cores under paused tokio time (the real
//! outbox answers from its own thread, and paused time would run on while it does).

use super::Recorder;
use crate::outbox::{Acceptance, NewEvent, OutboxError, StateWrite};
use std::sync::{Arc, Mutex};
use vaka_protocol::EventBody;

/// What the shell recorded; clones share it, so it survives a "restart" of the shell.
#[derive(Clone, Default)]
pub struct Memory {
    events: Arc<Mutex<Vec<NewEvent>>>,
    state: Arc<Mutex<Option<Vec<u8>>>>,
}

impl Recorder for Memory {
    fn record(
        &self,
        events: Vec<NewEvent>,
        state: StateWrite,
    ) -> impl std::future::Future<Output = Result<Vec<Acceptance>, OutboxError>> + Send {
        let outcomes = events
            .iter()
            .map(|_| Acceptance::Accepted { seq: 1, id: uuid::Uuid::now_v7() })
            .collect();
        self.events.lock().unwrap_or_else(|e| e.into_inner()).extend(events);
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(state.value);
        std::future::ready(Ok(outcomes))
    }
}

impl Memory {
    /// The last recorded state (empty if none).
    pub fn state(&self) -> Vec<u8> {
        self.saved().unwrap_or_default()
    }

    pub fn saved(&self) -> Option<Vec<u8>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_state(&self, value: Vec<u8>) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
    }

    pub fn events(&self) -> Vec<NewEvent> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The kinds recorded, in order.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.events().iter().map(|e| e.body.kind()).collect()
    }

    /// The notes of recorded test alarms, in order.
    pub fn notes(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e.body {
                EventBody::TestAlarm(t) => t.note,
                _ => None,
            })
            .collect()
    }
}
