//! The outbox's own OS thread and the handle everyone else uses.
//!
//! The thread owns the [`Outbox`]. It takes commands in arrival order, except that all
//! accepts queued at the moment it starts a transaction are committed together (group
//! commit). Each caller still gets its own answer, and only after the commit. Sends decided
//! by the core leave on an unbounded channel to the uplink, so the thread never waits on the
//! network.

use super::{Acceptance, Input, NewEvent, Outbox, OutboxError, StateWrite};
use jiff::Timestamp;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, warn};
use vaka_protocol::Ack;

/// Most accepts committed in one transaction.
const MAX_GROUP: usize = 256;

/// One event for the uplink to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub seq: u64,
    pub payload: Arc<[u8]>,
}

enum Command {
    Accept { event: NewEvent, reply: oneshot::Sender<Result<Acceptance, OutboxError>> },
    Record {
        events: Vec<NewEvent>,
        state: StateWrite,
        reply: oneshot::Sender<Result<Vec<Acceptance>, OutboxError>>,
    },
    ReadState { key: &'static str, reply: oneshot::Sender<Result<Option<Vec<u8>>, OutboxError>> },
    Ack(Ack),
    Core(Input),
    Stop,
}

/// A cheap, cloneable way to the outbox thread.
#[derive(Clone)]
pub struct OutboxHandle {
    tx: std_mpsc::Sender<Command>,
    depth: Arc<AtomicU64>,
}

impl OutboxHandle {
    /// Queues an event; the receiver resolves once it is committed (or refused). Queue order
    /// is seq order, so a producer may pipeline several events and await them in order.
    pub fn submit(&self, event: NewEvent) -> oneshot::Receiver<Result<Acceptance, OutboxError>> {
        let (reply, rx) = oneshot::channel();
        // If the thread is gone the reply sender is dropped and the receiver reports it.
        let _ = self.tx.send(Command::Accept { event, reply });
        rx
    }

    /// Offers an event and waits until it is durable. See the module note of `outbox`.
    pub async fn accept(&self, event: NewEvent) -> Result<Acceptance, OutboxError> {
        self.submit(event).await.unwrap_or(Err(OutboxError::Stopped))
    }

    /// Offers an event from a local source and logs the outcome instead of returning it:
    /// sources keep running when the outbox refuses an event or has stopped.
    pub async fn offer(&self, event: NewEvent) {
        let kind = event.body.kind();
        match self.accept(event).await {
            Ok(Acceptance::Accepted { seq, .. }) => debug!(seq, kind, "Event accepted"),
            Ok(Acceptance::Dropped { reason }) => warn!(kind, "Event dropped: {reason}"),
            Err(e) => error!(kind, error = %e, "Event could not be stored"),
        }
    }

    /// Accepts `events` and stores `state` in one transaction (see [`Outbox::record`]);
    /// resolves once both are durable.
    pub async fn record(
        &self,
        events: Vec<NewEvent>,
        state: StateWrite,
    ) -> Result<Vec<Acceptance>, OutboxError> {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Command::Record { events, state, reply });
        rx.await.unwrap_or(Err(OutboxError::Stopped))
    }

    /// The state last recorded under `key`.
    pub async fn state(&self, key: &'static str) -> Result<Option<Vec<u8>>, OutboxError> {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Command::ReadState { key, reply });
        rx.await.unwrap_or(Err(OutboxError::Stopped))
    }

    pub fn ack(&self, ack: Ack) {
        let _ = self.tx.send(Command::Ack(ack));
    }

    pub fn connected(&self) {
        let _ = self.tx.send(Command::Core(Input::Connected));
    }

    pub fn disconnected(&self) {
        let _ = self.tx.send(Command::Core(Input::Disconnected));
    }

    pub fn tick(&self) {
        let _ = self.tx.send(Command::Core(Input::Tick));
    }

    /// Pending events, as of the last command the thread finished.
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Asks the thread to finish after the commands already queued.
    pub fn stop(&self) {
        let _ = self.tx.send(Command::Stop);
    }
}

/// Starts the outbox thread. Returns the handle, the channel of publishes for the uplink and
/// the thread's join handle.
pub fn spawn(
    outbox: Outbox,
) -> std::io::Result<(OutboxHandle, mpsc::UnboundedReceiver<Publish>, std::thread::JoinHandle<()>)>
{
    let (tx, rx) = std_mpsc::channel();
    let (pub_tx, pub_rx) = mpsc::unbounded_channel();
    let depth = Arc::new(AtomicU64::new(outbox.depth()));
    let thread_depth = depth.clone();
    let join = std::thread::Builder::new()
        .name("vaka-outbox".into())
        .spawn(move || run(outbox, rx, pub_tx, thread_depth))?;
    Ok((OutboxHandle { tx, depth }, pub_rx, join))
}

fn run(
    mut outbox: Outbox,
    rx: std_mpsc::Receiver<Command>,
    publish: mpsc::UnboundedSender<Publish>,
    depth: Arc<AtomicU64>,
) {
    let forward = |sends: Vec<Publish>| {
        for p in sends {
            let _ = publish.send(p);
        }
    };
    let mut stopping = false;
    while !stopping {
        let Ok(first) = rx.recv() else { break };
        // Take what has queued up: accepts go into one transaction, the rest runs after it.
        let mut group = Vec::new();
        let mut rest = Vec::new();
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Accept { event, reply } => group.push((event, reply)),
                other => rest.push(other),
            }
            if group.len() < MAX_GROUP {
                next = rx.try_recv().ok();
            }
        }
        if !group.is_empty() {
            let (events, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
            let n = events.len();
            match outbox.accept_batch(Instant::now(), Timestamp::now(), events) {
                Ok((outcomes, actions)) => {
                    forward(actions);
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                    debug!(events = n, "Outbox group committed");
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
        for cmd in rest {
            let result = match cmd {
                Command::Record { events, state, reply } => {
                    let result =
                        outbox.record(Instant::now(), Timestamp::now(), events, &state);
                    let (answer, actions) = match result {
                        Ok((outcomes, actions)) => (Ok(outcomes), actions),
                        Err(e) => (Err(e), Vec::new()),
                    };
                    let _ = reply.send(answer);
                    Ok(actions)
                }
                Command::ReadState { key, reply } => {
                    let _ = reply.send(outbox.state(key));
                    Ok(Vec::new())
                }
                Command::Ack(ack) => outbox.ack(Instant::now(), &ack),
                Command::Core(input) => outbox.handle(Instant::now(), input),
                Command::Stop => {
                    stopping = true;
                    Ok(Vec::new())
                }
                Command::Accept { .. } => Ok(Vec::new()),
            };
            match result {
                Ok(actions) => forward(actions),
                Err(e) => error!(error = %e, "Outbox command failed"),
            }
        }
        depth.store(outbox.depth(), Ordering::Relaxed);
    }
    let c = outbox.counters();
    debug!(
        accepted = c.accepted,
        acked = c.acked,
        rejected = c.rejected_by_hub,
        evicted = c.evicted,
        refused = c.refused,
        pending = outbox.depth(),
        "Outbox thread stopped"
    );
}
