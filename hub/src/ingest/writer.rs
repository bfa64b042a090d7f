//! The store writer: the one thread that writes the database, in group commits.
//!
//! It takes every message the MQTT session queued (up to [`BATCH_MAX`]) at once, classifies
//! them, lets the presence core update devices and alarms, and writes all of it in a single
//! transaction. Only after that commit returned does it hand the acks to the ack publisher and
//! announce new events, device changes and alarms on the live feed. So under load one fsync
//! covers thousands of events, and an idle hub still commits each message at once.
//!
//! Camera checks: a `camera_check` event that answers a check the hub asked for updates that
//! check's row in the same transaction as the event itself, so the device's ack means the
//! answer is recorded. On each tick the writer also marks checks whose deadline passed without
//! an answer as `no_answer` and warns: nobody has seen the person, a visit may be due. The rules
//! are the pure functions of [`crate::camera::checks`].
//!
//! If a commit fails (disk full, I/O error) nothing is acked; the writer retries the same batch
//! with growing pauses and meanwhile takes no new messages, so the bounded queue in front of it
//! fills and the MQTT session stops reading: back-pressure, not loss.

use super::classify::{classify, Inbound, Rejected};
use super::fault::AbortAfterCommit;
use super::{AckOut, AlarmNotice, Feed, Incoming, Stats};
use crate::camera::checks::{answer_row, judge_answer, overdue, AnswerOutcome};
use crate::presence::{Action, Heard, Input, Presence};
use crate::store::{
    CheckRow, Committed, DeviceRow, EventRow, Inserted, RejectRow, Store, WriteBatch,
    SUPERVISION_LOST,
};
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, error, info, warn};
use vaka_protocol::{Ack, Channel, DeviceState, Envelope, EventBody, Rejection, Topic};

/// Most messages in one transaction.
pub const BATCH_MAX: usize = 4096;

pub enum WriterMsg {
    Incoming(Incoming),
    /// Wakes an idle writer so supervision is checked.
    Tick,
}

pub struct Writer {
    pub store: Box<dyn Store>,
    pub presence: Presence,
    pub stats: Arc<Stats>,
    pub acks: mpsc::UnboundedSender<AckOut>,
    pub feed: broadcast::Sender<Feed>,
    /// The R6 test fault point; `None` except in fault-suite tests (see [`super::fault`]).
    pub abort_after_commit: Option<AbortAfterCommit>,
    /// Several hubs on one database (`crate::leader`): only the leader raises
    /// `supervision_lost` and marks camera checks `no_answer`. `None`: always (unit tests).
    pub leader: Option<crate::leader::Leadership>,
    /// Other hubs ingest too (`mqtt.shared_group`): each tick first takes in the device rows
    /// they stored ([`Presence::merge`]), so silence is judged on every hub's traffic.
    pub shared: bool,
}

/// Acks owed to one device after this batch commits.
#[derive(Debug, Default)]
struct DeviceAcks {
    committed: Vec<u64>,
    rejected: Vec<Rejection>,
}

/// What to do after the commit returned.
#[derive(Default)]
struct AfterCommit {
    acks: HashMap<Topic, DeviceAcks>,
    changed: Vec<DeviceRow>,
    alarms: Vec<AlarmNotice>,
    rejected: Vec<Rejected>,
    statuses: u64,
    /// Answers put in the batch: (check_id, device, verdict, late).
    answers: Vec<(String, String, String, bool)>,
    /// Checks found overdue, to warn about once marked `no_answer`.
    overdue: Vec<CheckRow>,
}

impl Writer {
    /// Runs until the queue is closed and drained. Blocking: call on its own thread.
    pub fn run(mut self, mut rx: mpsc::Receiver<WriterMsg>) {
        let period = self.presence.tick_period();
        let mut last_tick = Instant::now();
        let mut msgs = Vec::with_capacity(BATCH_MAX);
        while let Some(first) = rx.blocking_recv() {
            msgs.push(first);
            while msgs.len() < BATCH_MAX {
                match rx.try_recv() {
                    Ok(m) => msgs.push(m),
                    Err(_) => break,
                }
            }
            // Under constant load the queue is never empty, so time is checked here too.
            let tick = last_tick.elapsed() >= period;
            if tick {
                last_tick = Instant::now();
            }
            let incoming = msgs.drain(..).filter_map(|m| match m {
                WriterMsg::Incoming(i) => Some(i),
                WriterMsg::Tick => None,
            });
            let incoming: Vec<Incoming> = incoming.collect();
            if incoming.is_empty() && !tick {
                continue;
            }
            self.process(Timestamp::now(), incoming, tick, &rx);
        }
        info!("Store writer stopped: the ingest queue is closed and drained");
    }

    fn process(
        &mut self,
        now: Timestamp,
        incoming: Vec<Incoming>,
        tick: bool,
        rx: &mpsc::Receiver<WriterMsg>,
    ) {
        let mut batch = WriteBatch::default();
        let mut after = AfterCommit::default();
        let mut devices: HashMap<String, DeviceRow> = HashMap::new();
        let mut actions = Vec::new();
        for msg in incoming {
            match classify(&msg.topic, &msg.payload) {
                Inbound::Event { topic, envelope } => {
                    after
                        .acks
                        .entry(ack_topic(&topic))
                        .or_default()
                        .committed
                        .push(envelope.seq);
                    actions.extend(self.heard(now, &topic, msg.received_at, Heard::Event));
                    self.camera_answer(&topic, &envelope, msg.received_at, &mut batch, &mut after);
                    batch
                        .events
                        .push(event_row(&topic, &envelope, msg.received_at));
                }
                Inbound::Status { topic, status } => {
                    after.statuses += 1;
                    let what = match status.state {
                        DeviceState::Online => Heard::Online {
                            outbox_depth: status.outbox_depth,
                        },
                        DeviceState::Offline => Heard::Offline,
                    };
                    // A retained status may be old: it says when it was true.
                    let at = match (msg.retained, status.ts) {
                        (true, Some(ts)) => ts.min(msg.received_at),
                        _ => msg.received_at,
                    };
                    actions.extend(self.heard(now, &topic, at, what));
                }
                Inbound::Rejected(r) => {
                    if let Some(topic) = &r.topic {
                        if let Some(seq) = r.seq {
                            after
                                .acks
                                .entry(ack_topic(topic))
                                .or_default()
                                .rejected
                                .push(Rejection {
                                    seq,
                                    reason: r.reason.clone(),
                                });
                        }
                        // A device sending garbage is still a device that is alive.
                        actions.extend(self.heard(now, topic, msg.received_at, Heard::Event));
                    }
                    batch.rejects.push(RejectRow {
                        received_at: msg.received_at,
                        topic: r.topic_text.clone(),
                        reason: r.reason.clone(),
                        label: r.label.to_string(),
                        payload_excerpt: r.excerpt.clone(),
                        device: r.device().map(|d| d.to_string()),
                    });
                    after.rejected.push(r);
                }
            }
        }
        if tick {
            if self.shared {
                match self.store.devices() {
                    Ok(rows) => self.presence.merge(rows),
                    Err(e) => error!(error = %e, "Could not read the devices other hubs heard; supervision waits for the next tick"),
                }
            }
            if self.leader.as_ref().is_none_or(|l| l.is_leader()) {
                actions.extend(self.presence.handle(now, Input::Tick));
                self.camera_deadlines(now, &mut batch, &mut after);
            }
        }
        for action in actions {
            match action {
                Action::Persist(row) => {
                    devices.insert(row.id.clone(), row);
                }
                Action::Changed(row) => after.changed.push(row),
                Action::AlarmRaised {
                    device,
                    site,
                    at,
                    last_seen,
                } => {
                    batch.raise_alarms.push((device.clone(), site.clone(), at));
                    after.alarms.push(AlarmNotice {
                        device,
                        site,
                        kind: SUPERVISION_LOST,
                        state: "raised",
                        at,
                        last_seen: Some(last_seen),
                    });
                }
                Action::AlarmCleared { device, site, at } => {
                    batch.clear_alarms.push((device.clone(), at));
                    after.alarms.push(AlarmNotice {
                        device,
                        site,
                        kind: SUPERVISION_LOST,
                        state: "cleared",
                        at,
                        last_seen: None,
                    });
                }
            }
        }
        batch.devices = devices.into_values().collect();
        if batch.is_empty() {
            return;
        }
        let Some(committed) = self.commit_until_done(&batch, rx) else {
            return;
        };
        if let Some(fault) = &mut self.abort_after_commit {
            fault.after_commit(batch.events.len());
        }
        self.after_commit(batch, committed, after);
    }

    /// If `envelope` answers a camera check, puts the check's update in the batch.
    fn camera_answer(
        &self,
        topic: &Topic,
        envelope: &Envelope,
        received_at: Timestamp,
        batch: &mut WriteBatch,
        after: &mut AfterCommit,
    ) {
        let EventBody::CameraCheck(body) = &envelope.body else {
            return;
        };
        let Some(check_id) = &body.check_id else {
            return;
        };
        let device = topic.device.as_str();
        let check = match self.store.check(check_id.as_str()) {
            Ok(c) => c,
            Err(e) => {
                // The event is still stored; the check will show `no_answer` at its deadline,
                // which sends a person rather than miss one.
                error!(%device, check_id = %check_id, error = %e, "Could not read a camera check to record its answer");
                return;
            }
        };
        match judge_answer(check.as_ref(), device, received_at) {
            AnswerOutcome::Answer { late } => {
                batch.check_answers.push(answer_row(
                    check_id.as_str(),
                    envelope.id,
                    received_at,
                    body,
                    late,
                ));
                let verdict = body.verdict.as_str().to_string();
                after
                    .answers
                    .push((check_id.to_string(), device.to_string(), verdict, late));
            }
            AnswerOutcome::Unknown => {
                debug!(%device, check_id = %check_id, "Camera check answer for a check this hub did not ask for; stored as an event");
            }
            AnswerOutcome::WrongDevice { expected } => {
                warn!(%device, check_id = %check_id, expected, "Camera check answered by another device than asked; stored as an event only");
            }
            AnswerOutcome::AlreadyAnswered => {
                debug!(%device, check_id = %check_id, "Camera check already answered; this answer is stored as an event only");
            }
        }
    }

    /// Puts the checks whose deadline passed unanswered in the batch, to mark `no_answer`.
    fn camera_deadlines(&self, now: Timestamp, batch: &mut WriteBatch, after: &mut AfterCommit) {
        let open = match self.store.open_checks() {
            Ok(open) => open,
            Err(e) => {
                error!(error = %e, "Could not read open camera checks; deadlines are checked at the next tick");
                return;
            }
        };
        for check in overdue(now, &open) {
            batch.checks_unanswered.push(check.check_id.clone());
            after.overdue.push(check.clone());
        }
    }

    /// Commits, retrying with growing pauses while the database refuses. Gives up only when the
    /// hub is shutting down (nothing of the batch is acked, so devices send it again).
    /// Tells presence that the device of `topic` was heard from at `at`.
    fn heard(&mut self, now: Timestamp, topic: &Topic, at: Timestamp, what: Heard) -> Vec<Action> {
        let input = Input::Heard {
            device: topic.device.clone(),
            site: topic.site.clone(),
            at,
            what,
        };
        self.presence.handle(now, input)
    }

    fn commit_until_done(
        &mut self,
        batch: &WriteBatch,
        rx: &mpsc::Receiver<WriterMsg>,
    ) -> Option<Committed> {
        let mut pause = Duration::from_millis(100);
        let mut failing_since: Option<Instant> = None;
        loop {
            match self.store.commit(batch) {
                Ok(inserted) => {
                    if let Some(since) = failing_since {
                        info!(
                            outage_s = since.elapsed().as_secs(),
                            "Database writes work again"
                        );
                    }
                    return Some(inserted);
                }
                Err(e) => {
                    self.stats.commit_failures.fetch_add(1, Relaxed);
                    if failing_since.is_none() {
                        error!(events = batch.events.len(), error = %e, "Database commit failed; nothing is acked, retrying");
                        failing_since = Some(Instant::now());
                    }
                    if rx.is_closed() {
                        error!(
                            events = batch.events.len(),
                            "Hub stopping with an uncommitted batch; devices will resend it"
                        );
                        return None;
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn after_commit(&mut self, batch: WriteBatch, committed: Committed, after: AfterCommit) {
        let inserted = committed.events;
        let stats = &self.stats;
        stats.commits.fetch_add(1, Relaxed);
        stats.statuses.fetch_add(after.statuses, Relaxed);
        stats
            .rejected
            .fetch_add(after.rejected.len() as u64, Relaxed);
        for r in &after.rejected {
            warn!(topic = %r.topic_text, label = r.label, seq = r.seq, "Message rejected: {}", r.reason);
        }
        let new = inserted.iter().filter(|i| **i == Inserted::New).count() as u64;
        stats.stored.fetch_add(new, Relaxed);
        stats
            .duplicates
            .fetch_add(inserted.len() as u64 - new, Relaxed);
        for (topic, acks) in after.acks {
            let topic = topic.to_string();
            for ack in split_ack(acks) {
                // The receiver is gone only when the hub is stopping; devices then resend.
                let _ = self.acks.send(AckOut {
                    topic: topic.clone(),
                    payload: ack.encode(),
                });
            }
        }
        if self.feed.receiver_count() > 0 {
            for (event, how) in batch.events.into_iter().zip(inserted) {
                if how == Inserted::New {
                    let _ = self.feed.send(Feed::Event(Arc::new(event)));
                }
            }
        }
        for row in after.changed {
            info!(device = %row.id, site = %row.site, online = row.online, outbox_depth = row.outbox_depth, supervision_lost = row.supervision_lost, "Device presence changed");
            let _ = self.feed.send(Feed::Device(row));
        }
        for alarm in after.alarms {
            if alarm.state == "raised" {
                error!(device = %alarm.device, site = %alarm.site, last_seen = ?alarm.last_seen, "Supervision lost: device silent for longer than its supervision interval");
            } else {
                info!(device = %alarm.device, site = %alarm.site, "Supervision restored: device heard again, alarm cleared");
            }
            let _ = self.feed.send(Feed::Alarm(alarm));
        }
        for (check_id, device, verdict, late) in after.answers {
            if committed.answered.contains(&check_id) {
                info!(%device, check_id, verdict, late, "Camera check answered");
            }
        }
        for check in after.overdue {
            if committed.unanswered.contains(&check.check_id) {
                warn!(device = %check.device, site = %check.site, check_id = %check.check_id, deadline = %check.deadline, requested_by = %check.requested_by, "Camera check got no answer by its deadline: nobody has seen the person, a visit may be needed");
            }
        }
    }
}

/// Seqs per ack message, so an ack stays far below the protocol's 64 KiB control limit.
const ACK_COMMITTED_MAX: usize = 1000;
/// Rejections (with their reasons) per ack message.
const ACK_REJECTED_MAX: usize = 50;

/// One device's acks of a batch as messages of bounded size.
fn split_ack(acks: DeviceAcks) -> Vec<Ack> {
    let mut out: Vec<Ack> = acks
        .committed
        .chunks(ACK_COMMITTED_MAX)
        .map(|c| Ack::new(c.to_vec(), Vec::new()))
        .collect();
    for chunk in acks.rejected.chunks(ACK_REJECTED_MAX) {
        match out.last_mut() {
            Some(last) if last.rejected.is_empty() => last.rejected = chunk.to_vec(),
            _ => out.push(Ack::new(Vec::new(), chunk.to_vec())),
        }
    }
    out
}

fn ack_topic(topic: &Topic) -> Topic {
    Topic::new(topic.site.clone(), topic.device.clone(), Channel::Acks)
}

fn event_row(topic: &Topic, e: &vaka_protocol::Envelope, received_at: Timestamp) -> EventRow {
    // EventBody serialises as {"kind": …, "body": …}; the row keeps the body part.
    let body = serde_json::to_value(&e.body)
        .ok()
        .and_then(|mut v| v.get_mut("body").map(serde_json::Value::take))
        .unwrap_or(serde_json::Value::Null);
    EventRow {
        id: e.id,
        device: e.device.to_string(),
        site: topic.site.to_string(),
        seq: e.seq,
        ts: e.ts,
        received_at,
        kind: e.kind().to_string(),
        severity: e.severity.as_str().to_string(),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SupervisionConfig;
    use crate::store::{AlarmRow, AuditChain, AuditEntry, AuditRow, AuditVerdict, StoreError};
    use std::sync::Mutex;
    use vaka_protocol::EventBody;

    /// A store that refuses the first `fail` commits and records what it committed.
    struct FlakyStore {
        fail: usize,
        committed: Arc<Mutex<Vec<u64>>>,
    }

    impl Store for FlakyStore {
        fn commit(&mut self, batch: &WriteBatch) -> Result<Committed, StoreError> {
            if self.fail > 0 {
                self.fail -= 1;
                return Err(StoreError::Corrupt("disk full".into()));
            }
            self.committed
                .lock()
                .unwrap()
                .extend(batch.events.iter().map(|e| e.seq));
            Ok(Committed {
                events: vec![Inserted::New; batch.events.len()],
                ..Default::default()
            })
        }
        fn devices(&self) -> Result<Vec<DeviceRow>, StoreError> {
            Ok(vec![])
        }
        fn device(&self, _: &str) -> Result<Option<DeviceRow>, StoreError> {
            Ok(None)
        }
        fn check(&self, _: &str) -> Result<Option<CheckRow>, StoreError> {
            Ok(None)
        }
        fn open_checks(&self) -> Result<Vec<CheckRow>, StoreError> {
            Ok(vec![])
        }
        fn open_check(&mut self, _: &CheckRow, _: &AuditEntry) -> Result<(), StoreError> {
            Ok(())
        }
        fn append_audit(&mut self, _: &AuditEntry) -> Result<(), StoreError> {
            Ok(())
        }
        fn audit(&self, _: usize) -> Result<Vec<AuditRow>, StoreError> {
            Ok(vec![])
        }
        fn verify_audit(&self) -> Result<AuditVerdict, StoreError> {
            Ok(AuditChain::default().finish())
        }
        fn events(&self, _: Option<&str>, _: usize) -> Result<Vec<EventRow>, StoreError> {
            Ok(vec![])
        }
        fn rejects(&self, _: usize) -> Result<Vec<RejectRow>, StoreError> {
            Ok(vec![])
        }
        fn alarms(&self, _: usize) -> Result<Vec<AlarmRow>, StoreError> {
            Ok(vec![])
        }
        fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// The writer never handles alarms for staff.
    impl crate::store::HandlingStore for FlakyStore {
        fn unresolved_alarms(&self, _: Timestamp) -> Result<Vec<AlarmRow>, StoreError> {
            unimplemented!()
        }
        fn alarm(&self, _: i64) -> Result<Option<AlarmRow>, StoreError> {
            unimplemented!()
        }
        fn handle_alarm(&mut self, _: i64, _: &crate::store::AlarmAction, _: &str, _: &AuditEntry) -> Result<Result<AlarmRow, crate::store::HandlingRefused>, StoreError> {
            unimplemented!()
        }
        fn register_device(&mut self, _: &crate::store::Registration, _: &AuditEntry) -> Result<(), StoreError> {
            unimplemented!()
        }
        fn registrations(&self) -> Result<Vec<crate::store::Registration>, StoreError> {
            unimplemented!()
        }
        fn set_bed_zone(&mut self, _: &crate::store::BedZoneRow, _: &AuditEntry) -> Result<(), StoreError> {
            unimplemented!()
        }
        fn bed_zone(&self, _: &str) -> Result<Option<crate::store::BedZoneRow>, StoreError> {
            unimplemented!()
        }
    }

    /// The writer never issues certificates.
    impl crate::store::LeaseStore for FlakyStore {
        fn try_lease(&mut self, _: &str, _: &str, _: Timestamp, _: std::time::Duration) -> Result<crate::store::Lease, StoreError> {
            unimplemented!()
        }
        fn release_lease(&mut self, _: &str, _: &str) -> Result<bool, StoreError> {
            unimplemented!()
        }
        fn lease(&self, _: &str) -> Result<Option<crate::store::Lease>, StoreError> {
            unimplemented!()
        }
    }

    impl crate::store::CertStore for FlakyStore {
        fn record_certificate(&mut self, _: &crate::store::CertRow, _: &AuditEntry) -> Result<(), StoreError> {
            unimplemented!()
        }
        fn certificates(&self, _: Option<&str>) -> Result<Vec<crate::store::CertRow>, StoreError> {
            unimplemented!()
        }
        fn revoke_certificates(&mut self, _: &str, _: Option<&str>, _: &str, _: &str, _: &AuditEntry) -> Result<Vec<crate::store::CertRow>, StoreError> {
            unimplemented!()
        }
    }

    /// The writer never touches accounts.
    impl crate::store::UserStore for FlakyStore {
        fn put_user(&mut self, _: &crate::store::UserRow, _: &AuditEntry) -> Result<(), StoreError> {
            unimplemented!()
        }
        fn delete_user(&mut self, _: &str, _: &AuditEntry) -> Result<bool, StoreError> {
            unimplemented!()
        }
        fn user(&self, _: &str) -> Result<Option<crate::store::UserRow>, StoreError> {
            unimplemented!()
        }
        fn users(&self) -> Result<Vec<crate::store::UserRow>, StoreError> {
            unimplemented!()
        }
        fn login_failed(&mut self, _: &str, _: u32, _: Option<Timestamp>, _: &AuditEntry) -> Result<(), StoreError> {
            unimplemented!()
        }
        fn login_succeeded(&mut self, _: &crate::store::SessionRow, _: &AuditEntry) -> Result<(), StoreError> {
            unimplemented!()
        }
        fn session(&self, _: &str) -> Result<Option<(crate::store::SessionRow, crate::store::UserRow)>, StoreError> {
            unimplemented!()
        }
        fn touch_session(&mut self, _: &str, _: Timestamp) -> Result<(), StoreError> {
            unimplemented!()
        }
        fn end_session(&mut self, _: &str, _: &AuditEntry) -> Result<bool, StoreError> {
            unimplemented!()
        }
    }

    impl crate::store::RoundStore for FlakyStore {
        fn put_recipient(&mut self, _: &crate::rounds::Recipient, _: &AuditEntry) -> Result<(), StoreError> {
            unimplemented!()
        }
        fn delete_recipient(&mut self, _: &str, _: &AuditEntry) -> Result<bool, StoreError> {
            unimplemented!()
        }
        fn recipients(&self) -> Result<Vec<crate::rounds::Recipient>, StoreError> {
            unimplemented!()
        }
        fn put_patrol(&mut self, _: &crate::rounds::Patrol, _: &AuditEntry) -> Result<(), StoreError> {
            unimplemented!()
        }
        fn delete_patrol(&mut self, _: &str, _: &AuditEntry) -> Result<bool, StoreError> {
            unimplemented!()
        }
        fn patrols(&self) -> Result<Vec<crate::rounds::Patrol>, StoreError> {
            unimplemented!()
        }
        fn create_round(&mut self, _: jiff::civil::Date, _: Timestamp, _: &[crate::rounds::RoundCheck], _: &serde_json::Value) -> Result<bool, StoreError> {
            unimplemented!()
        }
        fn round(&self, _: jiff::civil::Date) -> Result<Option<Vec<crate::rounds::RoundCheck>>, StoreError> {
            unimplemented!()
        }
        fn routes(&self, _: jiff::civil::Date) -> Result<Option<serde_json::Value>, StoreError> {
            unimplemented!()
        }
        fn round_alarms_seen(&self, _: jiff::civil::Date) -> Result<i64, StoreError> {
            unimplemented!()
        }
        fn round_checks_between(&self, _: jiff::civil::Date, _: jiff::civil::Date) -> Result<Vec<crate::rounds::RoundCheck>, StoreError> {
            unimplemented!()
        }
        fn save_round(&mut self, _: &crate::store::RoundWrite<'_>) -> Result<(), StoreError> {
            unimplemented!()
        }
        fn alarms_after(&self, _: i64) -> Result<Vec<AlarmRow>, StoreError> {
            unimplemented!()
        }
        fn alarms_raised_between(&self, _: Timestamp, _: Timestamp) -> Result<Vec<AlarmRow>, StoreError> {
            unimplemented!()
        }
        fn event_counts(&self, _: &[&str], _: Timestamp, _: Timestamp) -> Result<Vec<(String, String, u64)>, StoreError> {
            unimplemented!()
        }
    }

    fn writer(
        fail: usize,
    ) -> (
        Writer,
        mpsc::UnboundedReceiver<AckOut>,
        Arc<Mutex<Vec<u64>>>,
    ) {
        let committed = Arc::new(Mutex::new(Vec::new()));
        let (acks, acks_rx) = mpsc::unbounded_channel();
        let w = Writer {
            store: Box::new(FlakyStore {
                fail,
                committed: committed.clone(),
            }),
            presence: Presence::new(SupervisionConfig::default()),
            stats: Arc::new(Stats::default()),
            acks,
            feed: broadcast::channel(16).0,
            abort_after_commit: None,
            leader: None,
            shared: false,
        };
        (w, acks_rx, committed)
    }

    fn incoming(seq: u64) -> Incoming {
        let e = vaka_protocol::Envelope::new(
            vaka_protocol::DeviceId::new("home-1").unwrap(),
            seq,
            uuid::Uuid::now_v7(),
            Timestamp::now(),
            vaka_protocol::EventBody::TestAlarm(vaka_protocol::kinds::TestAlarm { note: None }),
        );
        Incoming {
            topic: "vaka/v1/s/home-1/events".into(),
            payload: e.encode(),
            retained: false,
            received_at: Timestamp::now(),
        }
    }

    #[test]
    fn events_are_acked_only_once_a_failing_database_has_committed_them() {
        let (mut w, mut acks, committed) = writer(2);
        let (_tx, rx) = mpsc::channel(1);
        w.process(Timestamp::now(), vec![incoming(1), incoming(2)], false, &rx);
        assert_eq!(*committed.lock().unwrap(), vec![1, 2]);
        assert_eq!(w.stats.commit_failures.load(Relaxed), 2);
        let ack = Ack::decode(&acks.try_recv().unwrap().payload).unwrap();
        assert_eq!(ack.committed, vec![1, 2]);
        assert!(acks.try_recv().is_err(), "one ack per device per batch");
    }

    #[test]
    fn nothing_is_acked_when_the_hub_stops_before_the_database_recovers() {
        let (mut w, mut acks, committed) = writer(usize::MAX);
        let (tx, rx) = mpsc::channel(1);
        drop(tx);
        w.process(Timestamp::now(), vec![incoming(1)], false, &rx);
        assert!(committed.lock().unwrap().is_empty());
        assert!(
            acks.try_recv().is_err(),
            "an ack went out for an uncommitted event"
        );
        assert_eq!(w.stats.stored.load(Relaxed), 0);
    }

    #[test]
    fn big_batch_acks_are_split_so_each_stays_small_and_nothing_is_left_out() {
        let acks = DeviceAcks {
            committed: (1..=2500).collect(),
            rejected: (3000..3120)
                .map(|seq| Rejection {
                    seq,
                    reason: "x".repeat(300),
                })
                .collect(),
        };
        let out = split_ack(acks);
        let committed: Vec<u64> = out.iter().flat_map(|a| a.committed.clone()).collect();
        let rejected: Vec<u64> = out
            .iter()
            .flat_map(|a| a.rejected.iter().map(|r| r.seq))
            .collect();
        assert_eq!(committed, (1..=2500).collect::<Vec<_>>());
        assert_eq!(rejected, (3000..3120).collect::<Vec<_>>());
        assert!(out.iter().all(|a| a.encode().len() < 32 * 1024));
    }

    #[test]
    fn small_batch_gets_one_ack_with_both_lists() {
        let acks = DeviceAcks {
            committed: vec![1, 2],
            rejected: vec![Rejection {
                seq: 3,
                reason: "bad".into(),
            }],
        };
        let out = split_ack(acks);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].committed.len(), out[0].rejected.len()), (2, 1));
    }

    mod camera {
        use super::*;
        use crate::store::{CheckStatus, SqliteStore};
        use jiff::SignedDuration;
        use vaka_protocol::kinds::{CameraCheck, Verdict};
        use vaka_protocol::CheckId;

        fn check(deadline: Timestamp) -> CheckRow {
            CheckRow::requested(
                "c-1",
                ("s", "home-1"),
                ("anna", "night_staff"),
                deadline - SignedDuration::from_mins(5),
                deadline,
            )
        }

        fn audit() -> AuditEntry {
            AuditEntry {
                at: Timestamp::now(),
                actor: "anna".into(),
                role: "night_staff".into(),
                action: "camera_check_requested".into(),
                check_id: Some("c-1".into()),
                device: Some("home-1".into()),
                detail: None,
            }
        }

        /// A writer on a fresh database with check `c-1` of `home-1`, and a second connection
        /// to look at the database as the API would.
        fn setup(
            deadline: Timestamp,
        ) -> (
            tempfile::TempDir,
            Writer,
            SqliteStore,
            mpsc::UnboundedReceiver<AckOut>,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("hub.db");
            let mut reader = SqliteStore::open(&path).unwrap();
            reader.open_check(&check(deadline), &audit()).unwrap();
            let (acks, acks_rx) = mpsc::unbounded_channel();
            let w = Writer {
                store: Box::new(SqliteStore::open(&path).unwrap()),
                presence: Presence::new(SupervisionConfig::default()),
                stats: Arc::new(Stats::default()),
                acks,
                feed: broadcast::channel(16).0,
                abort_after_commit: None,
                leader: None,
                shared: false,
            };
            (dir, w, reader, acks_rx)
        }

        fn answer(seq: u64) -> Incoming {
            let e = vaka_protocol::Envelope::new(
                vaka_protocol::DeviceId::new("home-1").unwrap(),
                seq,
                uuid::Uuid::now_v7(),
                Timestamp::now(),
                EventBody::CameraCheck(CameraCheck {
                    check_id: Some(CheckId::new("c-1").unwrap()),
                    verdict: Verdict::NotInBed,
                    refusal: None,
                    confidence: 0.8,
                    detail: None,
                    frames: 8,
                    brightness: Some(30.0),
                    motion_in_zone: None,
                    motion_outside: None,
                    presence: Some(0.02),
                    presence_strong: None,
                    duration_ms: 2000,
                }),
            );
            Incoming {
                topic: "vaka/v1/s/home-1/events".into(),
                payload: e.encode(),
                retained: false,
                received_at: Timestamp::now(),
            }
        }

        #[test]
        fn an_answer_is_on_its_check_by_the_time_the_device_gets_its_ack() {
            let (_dir, mut w, reader, mut acks) =
                setup(Timestamp::now() + SignedDuration::from_mins(5));
            let (_tx, rx) = mpsc::channel(1);
            w.process(Timestamp::now(), vec![answer(1)], false, &rx);
            assert_eq!(
                Ack::decode(&acks.try_recv().unwrap().payload)
                    .unwrap()
                    .committed,
                vec![1]
            );
            let c = reader.check("c-1").unwrap().unwrap();
            assert_eq!(
                (c.status, c.verdict.as_deref(), c.late),
                (CheckStatus::Answered, Some("not_in_bed"), false)
            );
        }

        #[test]
        fn a_tick_after_the_deadline_marks_an_unanswered_check_and_a_late_answer_then_answers_it() {
            let deadline = Timestamp::now() - SignedDuration::from_secs(1);
            let (_dir, mut w, reader, _acks) = setup(deadline);
            let (_tx, rx) = mpsc::channel(1);
            w.process(deadline - SignedDuration::from_secs(1), vec![], true, &rx);
            assert_eq!(
                reader.check("c-1").unwrap().unwrap().status,
                CheckStatus::Requested
            );
            w.process(deadline, vec![], true, &rx);
            assert_eq!(
                reader.check("c-1").unwrap().unwrap().status,
                CheckStatus::NoAnswer
            );
            w.process(Timestamp::now(), vec![answer(1)], false, &rx);
            let c = reader.check("c-1").unwrap().unwrap();
            assert_eq!((c.status, c.late), (CheckStatus::Answered, true));
        }
    }
}
