//! The round's IO shell: loads or generates the night's round, feeds the pure [`Round`] with
//! the time, camera answers, alarms and staff decisions, stores what changed, then sends the
//! camera checks and routes the visits.
//!
//! One [`Engine`] runs per hub, behind a mutex shared by the ticking task and the HTTP API, on
//! its own SQLite connection. Every input follows the same order: the core decides, the changed
//! checks (with the camera-check rows they send and the audit lines of the staff who acted) are
//! committed in one transaction, and only then do commands go out. So after a crash the store
//! never claims less than was done: at worst a camera check is recorded as sent that never left,
//! and it fails over to its retry or visit at its deadline.
//!
//! Start of a night: the first tick inside a night shift generates the round from the care
//! plans and plans the routes of the planned visits, all in one transaction before anything runs
//! ([`RoundStore::create_round`]); a hub (re)started mid-night loads the stored round instead and
//! runs at once what fell due while it was away.

use super::config::RoundsConfig;
use super::night::generate;
use super::routes::Routes;
use super::scheduler::{Action, Actions, InputError, Round};
use super::state::{Outcome, RoundCheck, State};
use crate::routing::TravelTimes;
use crate::store::{AuditEntry, CheckRow, CheckStatus, RoundWrite, Store, StoreError};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp, ToSpan};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;
use thiserror::Error;
use tracing::{error, info, warn};
use vaka_protocol::{CheckId, DeviceId, SiteId};

/// Sends camera checks to devices (the MQTT session in the hub; a recorder in tests).
pub trait CameraSender: Send {
    fn send(&self, site: &SiteId, device: &DeviceId, check: &CheckId, deadline: Timestamp) -> Result<(), String>;
}

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("no round is running now; check `{0}` belongs to a closed or future night")]
    NoRound(String),
}

pub struct Engine {
    store: Box<dyn Store>,
    config: RoundsConfig,
    /// How long a camera check stays open on the device (real time; `cameras.check_open`).
    check_open: Duration,
    sender: Box<dyn CameraSender>,
    travel: Box<dyn TravelTimes + Send>,
    round: Option<Round>,
    routes: Routes,
    /// The newest alarm the round has looked at.
    alarms_seen: i64,
    stats: RoundStats,
    /// The night last loaded: a [`Engine::reload`] of the same night is not logged again.
    loaded: Option<Date>,
}

/// Counters, in pairs so a gap shows.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct RoundStats {
    pub camera_checks_sent: u64,
    pub camera_checks_unsendable: u64,
    pub visits_routed: u64,
    pub visits_late_in_plan: u64,
}

impl Engine {
    pub fn new(store: Box<dyn Store>, config: RoundsConfig, check_open: Duration, sender: Box<dyn CameraSender>, travel: Box<dyn TravelTimes + Send>) -> Engine {
        Engine { store, config, check_open, sender, travel, round: None, routes: Routes::default(), alarms_seen: 0, stats: RoundStats::default(), loaded: None }
    }

    pub fn now(&self) -> Timestamp {
        self.config.clock.now()
    }

    pub fn stats(&self) -> RoundStats {
        self.stats
    }

    /// The running round's night.
    pub fn night(&self) -> Option<Date> {
        self.round.as_ref().map(|r| r.night)
    }

    /// Forgets the round held in memory, so the next step loads it from the store. Several
    /// hubs on one database: the leader calls it when it takes over and before every tick,
    /// the others before every console request, so each works on what the others stored.
    pub fn reload(&mut self) -> Result<(), EngineError> {
        self.round = None;
        self.routes = Routes::default();
        let now = self.now();
        if self.config.enabled {
            self.ensure_round(now)?;
        }
        Ok(())
    }

    /// One step at the round's current time.
    pub fn tick(&mut self) -> Result<(), EngineError> {
        let now = self.now();
        self.tick_at(now)
    }

    pub fn tick_at(&mut self, now: Timestamp) -> Result<(), EngineError> {
        if !self.config.enabled {
            return Ok(());
        }
        self.ensure_round(now)?;
        let Some(round) = self.round.as_mut() else { return Ok(()) };
        let mut out = Actions::default();

        // Answers the ingest writer stored since the last tick.
        let waiting: Vec<String> = round
            .checks
            .values()
            .filter(|c| matches!(c.state, State::CameraSent | State::RetryWait))
            .filter_map(|c| c.attempts.last().map(|a| a.camera_check.clone()))
            .collect();
        for camera_check in waiting {
            if let Some(row) = self.store.check(&camera_check)? {
                if row.status == CheckStatus::Answered {
                    if let Some(verdict) = row.verdict.as_deref() {
                        merge(&mut out, round.answer(now, &camera_check, verdict, row.refusal.as_deref()));
                    }
                }
            }
        }

        // Alarms that a care plan's rule turns into a check.
        let alarms = self.store.alarms_after(self.alarms_seen)?;
        if !alarms.is_empty() {
            let recipients = self.store.recipients()?;
            for alarm in &alarms {
                self.alarms_seen = self.alarms_seen.max(alarm.id);
                let Some(r) = recipients.iter().find(|r| r.devices.contains(&alarm.device)) else { continue };
                let Some(action) = r.rule(&alarm.kind) else { continue };
                if let Some((id, acts)) = round.add_for_alarm(now, r, action, (alarm.id, &alarm.kind, alarm.raised_at)) {
                    info!(check = %id, recipient = %r.id, kind = %alarm.kind, action = action.as_str(), "Alarm rule added a check to the round");
                    merge(&mut out, acts);
                }
            }
        }

        // Devices of checks falling due: offline ones get a visit instead of a camera check.
        let due: BTreeSet<String> = round
            .checks
            .values()
            .filter(|c| matches!(c.state, State::Planned | State::RetryWait) && c.next_at.is_some_and(|t| t <= now))
            .filter_map(|c| c.device.clone())
            .collect();
        let mut sites = HashMap::new();
        let mut offline = HashSet::new();
        for device in due {
            match self.store.device(&device)? {
                Some(d) if d.online && !d.supervision_lost => {
                    sites.insert(device, d.site);
                }
                _ => {
                    offline.insert(device);
                }
            }
        }
        let mut new_id = || uuid::Uuid::now_v7().to_string();
        merge(&mut out, round.tick(now, &offline, &mut new_id));
        self.apply(now, out, Vec::new(), sites)
    }

    /// A member of staff decided on an `unclear` snapshot.
    pub fn decide(&mut self, id: &str, well: bool, who: (&str, &str), note: Option<String>) -> Result<RoundCheck, EngineError> {
        let now = self.now();
        let round = self.round_of(id)?;
        let out = round.decide(now, id, well, who.0, note.clone())?;
        let audit = audit(now, who, if well { "round_check_seen_well" } else { "round_check_escalated" }, id, note);
        self.apply(now, out, vec![audit], HashMap::new())?;
        self.check(id)
    }

    /// Staff record a check's outcome (after a visit, or a call).
    pub fn record(&mut self, id: &str, outcome: Outcome, who: (&str, &str), note: Option<String>) -> Result<RoundCheck, EngineError> {
        let now = self.now();
        let round = self.round_of(id)?;
        let out = round.record(now, id, outcome, who.0, note.clone())?;
        let detail = match &note {
            Some(n) => format!("{}: {n}", outcome.as_str()),
            None => outcome.as_str().to_string(),
        };
        self.apply(now, out, vec![audit(now, who, "round_check_outcome", id, Some(detail))], HashMap::new())?;
        self.check(id)
    }

    fn round_of(&mut self, id: &str) -> Result<&mut Round, EngineError> {
        match self.round.as_mut() {
            Some(r) if r.checks.contains_key(id) => Ok(r),
            _ => Err(EngineError::NoRound(id.to_string())),
        }
    }

    /// A check of the running round.
    pub fn check(&self, id: &str) -> Result<RoundCheck, EngineError> {
        self.round.as_ref().and_then(|r| r.checks.get(id)).cloned().ok_or_else(|| EngineError::NoRound(id.to_string()))
    }

    /// The running round's checks and routes, as the API shows them.
    pub fn snapshot(&self) -> Option<(Date, Vec<RoundCheck>, serde_json::Value)> {
        let r = self.round.as_ref()?;
        Some((r.night, r.checks.values().cloned().collect(), self.routes.to_json()))
    }

    /// Loads the round of the night running at `now` (or of the last night, while it closes),
    /// generating it if the night has none yet.
    fn ensure_round(&mut self, now: Timestamp) -> Result<(), EngineError> {
        let shift = self.config.shift.clone();
        let current = shift.night_at(now);
        if let Some(r) = &self.round {
            if Some(r.night) == current || !r.is_closed() {
                return Ok(());
            }
            info!(night = %r.night, "Round closed: every check has its outcome");
            self.round = None;
            self.routes = Routes::default();
        }
        // The night before, still closing (after a restart in its closing hour).
        let last = shift.next_night(now).checked_sub(1.day()).ok();
        let candidates = [current, last.filter(|n| Some(*n) != current)];
        for night in candidates.into_iter().flatten() {
            let (start, end) = shift.span(night);
            if now < start || now >= end + self.config.settings.close_after {
                continue;
            }
            let (checks, fresh) = match self.store.round(night)? {
                Some(checks) => (checks, false),
                None if Some(night) == current => (self.generate(night, now)?, true),
                None => continue,
            };
            let mut round = Round::new(night, checks, self.config.settings, end);
            let patrols = self.store.patrols()?;
            let routes = match self.store.routes(night)? {
                Some(json) if !fresh => Routes::from_json(&json),
                _ => Routes::default(),
            };
            self.routes = routes;
            self.routes.set_context(night, &shift, patrols, self.config.clock.speed());
            if fresh {
                self.alarms_seen = self.store.alarms(1)?.first().map_or(0, |a| a.id);
            } else {
                self.alarms_seen = self.store.round_alarms_seen(night)?;
            }
            let open = round.checks.values().filter(|c| c.state != State::Done).count();
            if self.loaded != Some(night) || fresh {
                info!(%night, checks = round.checks.len(), open, fresh, "Round loaded");
            }
            self.loaded = Some(night);
            if fresh {
                // The planned visits' routes, stored with the round.
                let changed = self.routes.plan_all(&mut round, self.travel.as_ref(), now);
                let checks: Vec<&RoundCheck> = changed.iter().filter_map(|id| round.checks.get(id)).collect();
                self.store.save_round(&RoundWrite {
                    checks,
                    routes: Some((night, self.routes.to_json(), now)),
                    alarms_seen: Some((night, self.alarms_seen)),
                    ..Default::default()
                })?;
            }
            self.round = Some(round);
            return Ok(());
        }
        Ok(())
    }

    fn generate(&mut self, night: Date, now: Timestamp) -> Result<Vec<RoundCheck>, EngineError> {
        let recipients = self.store.recipients()?;
        let checks = generate(night, &self.config.shift, &recipients, now);
        let created = self.store.create_round(night, now, &checks, &serde_json::Value::Null)?;
        if !created {
            // Another hub got there first: use its round.
            return Ok(self.store.round(night)?.unwrap_or_default());
        }
        let cameras = checks.iter().filter(|c| c.method.uses_camera()).count();
        info!(%night, checks = checks.len(), cameras, visits = checks.len() - cameras, people = recipients.len(), "Round generated");
        Ok(checks)
    }

    /// Routes visits, stores every change in one transaction, then sends camera checks.
    fn apply(&mut self, now: Timestamp, mut out: Actions, audit: Vec<AuditEntry>, mut sites: HashMap<String, String>) -> Result<(), EngineError> {
        let Some(round) = self.round.as_mut() else { return Ok(()) };
        let mut routes_changed = false;
        for action in &out.actions {
            if let Action::RouteVisit { check } = action {
                let changed = self.routes.insert(round, check, self.travel.as_ref(), now);
                self.stats.visits_routed += 1;
                if let Some(c) = round.checks.get(check) {
                    if let Some(v) = &c.visit {
                        match v.planned_arrival {
                            Some(at) if at <= v.latest => {
                                info!(check = %check, patrol = ?v.patrol, arrival = %at, promise = %v.latest, reason = %v.reason, "Visit routed")
                            }
                            _ => {
                                self.stats.visits_late_in_plan += 1;
                                error!(check = %check, patrol = ?v.patrol, arrival = ?v.planned_arrival, promise = %v.latest, "Visit cannot be on site within its promise: a person must act")
                            }
                        }
                    }
                }
                out.changed.extend(changed);
                routes_changed = true;
            }
        }
        let mut camera_rows = Vec::new();
        let mut sends = Vec::new();
        let real_now = Timestamp::now();
        let deadline = real_now + SignedDuration::try_from(self.check_open).unwrap_or(SignedDuration::from_mins(5));
        for action in &out.actions {
            if let Action::SendCamera { check, camera_check, device, .. } = action {
                let site = match sites.remove(device) {
                    Some(s) => s,
                    None => self.store.device(device)?.map(|d| d.site).unwrap_or_default(),
                };
                sites.insert(device.clone(), site.clone());
                let mut row = CheckRow::requested(camera_check.clone(), (site.clone(), device.clone()), ("round", "system"), real_now, deadline);
                row.detail = Some(format!("round check {check}"));
                camera_rows.push(row);
                sends.push((check.clone(), camera_check.clone(), device.clone(), site));
            }
        }
        if out.changed.is_empty() && audit.is_empty() {
            return Ok(());
        }
        let night = round.night;
        let checks: Vec<&RoundCheck> = out.changed.iter().filter_map(|id| round.checks.get(id)).collect();
        self.store.save_round(&RoundWrite {
            checks,
            camera_checks: camera_rows,
            routes: routes_changed.then(|| (night, self.routes.to_json(), now)),
            audit,
            alarms_seen: Some((night, self.alarms_seen)),
        })?;
        for (check, camera_check, device, site) in sends {
            let ids = (SiteId::new(site.as_str()), DeviceId::new(device.as_str()), CheckId::new(camera_check.as_str()));
            let result = match ids {
                (Ok(s), Ok(d), Ok(c)) => self.sender.send(&s, &d, &c, deadline),
                _ => Err(format!("device `{device}` at site `{site}` has no valid id")),
            };
            match result {
                Ok(()) => {
                    self.stats.camera_checks_sent += 1;
                    info!(check = %check, %camera_check, %device, "Round camera check sent");
                }
                Err(e) => {
                    // Recorded as sent: it fails over to the retry or a visit at its deadline.
                    self.stats.camera_checks_unsendable += 1;
                    warn!(check = %check, %camera_check, %device, error = %e, "Round camera check could not be sent; it will fail over at its deadline");
                }
            }
        }
        Ok(())
    }
}

fn merge(into: &mut Actions, from: Actions) {
    into.changed.extend(from.changed);
    into.actions.extend(from.actions);
}

fn audit(at: Timestamp, (actor, role): (&str, &str), action: &str, check: &str, detail: Option<String>) -> AuditEntry {
    AuditEntry {
        at,
        actor: actor.to_string(),
        role: role.to_string(),
        action: action.to_string(),
        check_id: Some(check.to_string()),
        device: None,
        detail,
    }
}

/// The hub's MQTT commands, as the round's camera-check sender.
pub struct MqttSender(pub crate::ingest::Commands);

impl CameraSender for MqttSender {
    fn send(&self, site: &SiteId, device: &DeviceId, check: &CheckId, deadline: Timestamp) -> Result<(), String> {
        let body = vaka_protocol::CommandBody::CameraCheck { check_id: check.clone(), deadline };
        self.0.send(site, device, body).map(|_| ()).map_err(|e| e.to_string())
    }
}

/// How often the round looks at its checks, in real time: every 30 s of round time, at most
/// once per 100 ms and at least once a second.
pub fn tick_period(speed: f64) -> Duration {
    Duration::from_secs_f64((30.0 / speed.max(0.001)).clamp(0.1, 1.0))
}

/// Ticks the engine until `shutdown`. The first tick waits until the hub's MQTT session is up
/// (or 5 s passed), so camera checks due at start-up go out on a working connection.
/// Ticks the engine every `period` while this hub holds the scheduler lease
/// ([`crate::leader`]); with `shared` (other hubs use the same database) the round is reloaded
/// from the store before each tick, otherwise only when this hub becomes leader.
pub async fn run(engine: std::sync::Arc<std::sync::Mutex<Engine>>, period: Duration, connected: impl Fn() -> bool, leader: crate::leader::Leadership, shared: bool, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let started = std::time::Instant::now();
    while !connected() && started.elapsed() < Duration::from_secs(5) {
        let stop = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => true,
            _ = tokio::time::sleep(Duration::from_millis(50)) => false,
        };
        if stop {
            return;
        }
    }
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = false;
    loop {
        let stop = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => true,
            _ = interval.tick() => false,
        };
        if stop {
            return;
        }
        if !leader.may_start() {
            leading = false;
            continue;
        }
        let reload = shared || !leading;
        leading = true;
        let engine = engine.clone();
        let tick_started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let mut e = engine.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if reload {
                e.reload()?;
            }
            e.tick()
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(error = %e, "Round tick failed; it is tried again at the next tick"),
            Err(e) => error!(error = %e, "Round tick task failed"),
        }
        if !leader.is_leader() {
            warn!(took_ms = u64::try_from(tick_started.elapsed().as_millis()).unwrap_or(u64::MAX), "A round tick ended after this hub's scheduler lease ran out; another hub may have ticked meanwhile");
        }
    }
}
