//! Device presence and path supervision: which devices are online, and which have gone silent.
//!
//! A pure core: [`Presence::handle`] takes the time and one [`Input`] and returns the
//! [`Action`]s to carry out (persist a device row, announce a change, raise or clear a
//! `supervision_lost` alarm). It never reads the clock, the network or the disk; the ingest
//! writer feeds it and carries out its actions in the same transaction as the events.
//!
//! Invariants:
//! - a device appears when first heard (event or status) and is never forgotten;
//! - any message moves `last_seen` forward (never back); a last-will `offline` marks the device
//!   offline at once;
//! - a device silent for longer than its supervision interval is marked offline and exactly one
//!   alarm is raised; it is cleared when the device is heard again (an event or an `online`
//!   status; a last will from the broker is not the device speaking);
//! - after a restart ([`Presence::restore`]) open alarms stay open and are not raised again, and
//!   silence is measured from no earlier than the hub's start: the hub cannot know what a device
//!   did while the hub itself was down, and the broker delivers what it queued at connect.

#[cfg(test)]
mod tests;

use crate::config::SupervisionConfig;
use crate::store::DeviceRow;
use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;
use std::time::Duration;
use vaka_protocol::{DeviceId, SiteId};

/// What was heard from (or about) a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// An event on the `events` channel.
    Event,
    /// An `online` status (heartbeat), with the outbox depth if reported.
    Online { outbox_depth: Option<u64> },
    /// An `offline` status: the device's last will, published by the broker.
    Offline,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Heard {
        device: DeviceId,
        site: SiteId,
        at: Timestamp,
        what: Heard,
    },
    /// Time passed: check every device's silence.
    Tick,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Store this device row (every message updates `last_seen`).
    Persist(DeviceRow),
    /// Something a person would notice changed (online, outbox depth, supervision): tell the
    /// console. Always preceded by a `Persist` of the same row.
    Changed(DeviceRow),
    AlarmRaised {
        device: String,
        site: String,
        at: Timestamp,
        last_seen: Timestamp,
    },
    AlarmCleared {
        device: String,
        site: String,
        at: Timestamp,
    },
}

#[derive(Debug, Clone)]
struct DeviceState {
    row: DeviceRow,
    /// Silence is measured from here: `max(last_seen, hub start)`.
    since: Timestamp,
}

pub struct Presence {
    supervision: SupervisionConfig,
    devices: HashMap<String, DeviceState>,
}

impl Presence {
    pub fn new(supervision: SupervisionConfig) -> Self {
        Presence {
            supervision,
            devices: HashMap::new(),
        }
    }

    /// Rebuilds the state from stored rows at hub start (`now`).
    pub fn restore(supervision: SupervisionConfig, rows: Vec<DeviceRow>, now: Timestamp) -> Self {
        let devices = rows
            .into_iter()
            .map(|row| {
                let since = row.last_seen.max(now);
                (row.id.clone(), DeviceState { row, since })
            })
            .collect();
        Presence {
            supervision,
            devices,
        }
    }

    /// Takes in device rows that other hubs stored (several hubs share the ingest, each hears
    /// part of a device's messages). A stored row at least as new as ours (`last_seen`) is
    /// adopted whole, with its `supervision_lost` (the leader raised it, so whichever hub hears
    /// the device next clears it); an older one is ignored (ours is about to be stored, and the
    /// store keeps the newest `last_seen`). Silence is then measured from the newest sign of life
    /// any hub saw. Emits nothing: the hub that stored the row announced it.
    pub fn merge(&mut self, rows: Vec<DeviceRow>) {
        for row in rows {
            match self.devices.get_mut(&row.id) {
                None => {
                    let since = row.last_seen;
                    self.devices
                        .insert(row.id.clone(), DeviceState { row, since });
                }
                Some(state) if row.last_seen >= state.row.last_seen => {
                    state.since = state.since.max(row.last_seen);
                    state.row = row;
                }
                Some(_) => {}
            }
        }
    }

    /// How often [`Input::Tick`] should come so an alarm fires within its interval plus this
    /// period: a tenth of the shortest interval, at most one second.
    pub fn tick_period(&self) -> Duration {
        let shortest = self
            .supervision
            .devices
            .values()
            .copied()
            .chain([self.supervision.default_interval])
            .min()
            .unwrap_or(crate::config::DEFAULT_SUPERVISION);
        (shortest / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    fn interval(&self, device: &str) -> Duration {
        DeviceId::new(device)
            .ok()
            .and_then(|id| self.supervision.devices.get(&id).copied())
            .unwrap_or(self.supervision.default_interval)
    }

    pub fn handle(&mut self, now: Timestamp, input: Input) -> Vec<Action> {
        match input {
            Input::Heard {
                device,
                site,
                at,
                what,
            } => self.heard(now, device, site, at, what),
            Input::Tick => self.tick(now),
        }
    }

    fn heard(
        &mut self,
        now: Timestamp,
        device: DeviceId,
        site: SiteId,
        at: Timestamp,
        what: Heard,
    ) -> Vec<Action> {
        let at = at.min(now);
        let mut actions = Vec::new();
        let state = match self.devices.get_mut(device.as_str()) {
            Some(state) => state,
            None => {
                let (online, outbox_depth) = match what {
                    Heard::Event => (true, None),
                    Heard::Online { outbox_depth } => (true, outbox_depth),
                    Heard::Offline => (false, None),
                };
                let row = DeviceRow {
                    id: device.to_string(),
                    site: site.to_string(),
                    online,
                    last_seen: at,
                    outbox_depth,
                    supervision_lost: false,
                };
                actions.push(Action::Persist(row.clone()));
                actions.push(Action::Changed(row.clone()));
                self.devices
                    .insert(row.id.clone(), DeviceState { row, since: at });
                return actions;
            }
        };
        let before = state.row.clone();
        let row = &mut state.row;
        row.last_seen = row.last_seen.max(at);
        row.site = site.to_string();
        state.since = state.since.max(at);
        match what {
            Heard::Event | Heard::Online { .. } => {
                row.online = true;
                if let Heard::Online {
                    outbox_depth: Some(depth),
                } = what
                {
                    row.outbox_depth = Some(depth);
                }
                if row.supervision_lost {
                    row.supervision_lost = false;
                    actions.push(Action::AlarmCleared {
                        device: row.id.clone(),
                        site: row.site.clone(),
                        at: now,
                    });
                }
            }
            Heard::Offline => row.online = false,
        }
        let row = row.clone();
        let notable = row.online != before.online
            || row.outbox_depth != before.outbox_depth
            || row.supervision_lost != before.supervision_lost
            || row.site != before.site;
        actions.insert(0, Action::Persist(row.clone()));
        if notable {
            actions.insert(1, Action::Changed(row));
        }
        actions
    }

    fn tick(&mut self, now: Timestamp) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut silent: Vec<String> = self
            .devices
            .values()
            .filter(|s| !s.row.supervision_lost)
            .filter(|s| {
                let limit = SignedDuration::try_from(self.interval(&s.row.id))
                    .unwrap_or(SignedDuration::MAX);
                now.duration_since(s.since) > limit
            })
            .map(|s| s.row.id.clone())
            .collect();
        silent.sort();
        for id in silent {
            let Some(state) = self.devices.get_mut(&id) else {
                continue;
            };
            state.row.supervision_lost = true;
            state.row.online = false;
            let row = state.row.clone();
            actions.push(Action::Persist(row.clone()));
            actions.push(Action::Changed(row.clone()));
            actions.push(Action::AlarmRaised {
                device: row.id,
                site: row.site,
                at: now,
                last_seen: row.last_seen,
            });
        }
        actions
    }
}
