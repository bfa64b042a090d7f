//! The night's patrol routes, per team, between the round and the router (`crate::routing`).
//!
//! The round's visits (planned ones and escalations) are routed for the patrols of the
//! person's team. Times go to the router as seconds from the shift's start. At the start of
//! the night every planned visit is routed from scratch; an escalation during the night is
//! inserted into the running routes, which keeps the visits already done or under way where
//! they are. After each change every visit of the team learns its patrol and planned arrival.

use super::night::Shift;
use super::plan::Patrol;
use super::scheduler::Round;
use super::state::State;
use crate::routing::{self, Budget, Place, Plan, TravelTimes, Visit};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use tracing::{debug, error, warn};

#[derive(Default)]
pub struct Routes {
    night: Option<Date>,
    origin: Option<Timestamp>,
    shift: Option<Shift>,
    patrols: Vec<Patrol>,
    by_team: BTreeMap<String, Plan>,
    /// Round seconds per real second: the solver's budget is real time.
    speed: f64,
}

/// The night's first plan may search for 30 s of round time (at least 1 s, at most 30 s).
fn plan_budget(speed: f64) -> Budget {
    Budget { time: std::time::Duration::from_secs_f64((30.0 / speed.max(1.0)).clamp(1.0, 30.0)), ..Budget::night() }
}

/// An escalation is inserted at once by cheapest insertion; the solver gets at most 2 s of
/// round time (at least 200 ms) when that fails.
fn insert_budget(speed: f64) -> Budget {
    Budget { time: std::time::Duration::from_secs_f64((2.0 / speed.max(1.0)).max(0.2)), restarts: 1, ..Budget::quick() }
}

impl Routes {
    pub fn set_context(&mut self, night: Date, shift: &Shift, patrols: Vec<Patrol>, speed: f64) {
        self.speed = speed;
        self.night = Some(night);
        self.origin = Some(shift.span(night).0);
        self.shift = Some(shift.clone());
        self.patrols = patrols;
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.by_team).unwrap_or(serde_json::Value::Null)
    }

    pub fn from_json(json: &serde_json::Value) -> Routes {
        let by_team = serde_json::from_value(json.clone()).unwrap_or_else(|e| {
            warn!(error = %e, "Stored routes do not read back; the next escalation re-plans them");
            BTreeMap::new()
        });
        Routes { by_team, ..Routes::default() }
    }

    fn secs(&self, t: Timestamp) -> i64 {
        self.origin.map_or(0, |o| t.duration_since(o).as_secs())
    }

    fn at(&self, secs: i64) -> Timestamp {
        let o = self.origin.unwrap_or(Timestamp::UNIX_EPOCH);
        o.checked_add(SignedDuration::from_secs(secs)).unwrap_or(o)
    }

    fn team_patrols(&self, team: &str) -> Vec<routing::Patrol> {
        let (Some(night), Some(shift)) = (self.night, &self.shift) else { return Vec::new() };
        self.patrols
            .iter()
            .filter(|p| p.team == team)
            .map(|p| {
                let (start, end) = shift.span_of(night, (p.shift_start, p.shift_end));
                routing::Patrol {
                    id: p.id.clone(),
                    start: Place { lat: p.start.lat, lon: p.start.lon },
                    end: Place { lat: p.end.lat, lon: p.end.lon },
                    shift_start: self.secs(start),
                    shift_end: self.secs(end),
                }
            })
            .collect()
    }

    /// The team's visits as the router sees them: open ones, or (`all`) also those done, which
    /// may still be on the running routes.
    fn visits(&self, round: &Round, team: &str, all: bool) -> Vec<Visit> {
        round
            .checks
            .values()
            .filter(|c| c.team == team && (c.state == State::Visit || all))
            .filter_map(|c| {
                let v = c.visit.as_ref()?;
                Some(Visit {
                    id: c.id.clone(),
                    place: Place { lat: c.place.lat, lon: c.place.lon },
                    earliest: self.secs(v.earliest),
                    latest: self.secs(v.latest),
                    service_s: i64::from(c.visit_min) * 60,
                    urgent: v.urgent,
                })
            })
            .collect()
    }

    /// Routes every open visit from scratch, team by team.
    pub fn plan_all(&mut self, round: &mut Round, travel: &dyn TravelTimes, _now: Timestamp) -> BTreeSet<String> {
        let teams: BTreeSet<String> = round.checks.values().filter(|c| c.state == State::Visit).map(|c| c.team.clone()).collect();
        let mut changed = BTreeSet::new();
        for team in teams {
            let visits = self.visits(round, &team, false);
            let patrols = self.team_patrols(&team);
            if patrols.is_empty() {
                error!(%team, visits = visits.len(), "The team has no patrol tonight: its visits cannot be routed; a person must act");
                continue;
            }
            match guarded(|| routing::plan(&patrols, &visits, travel, &plan_budget(self.speed))) {
                Ok(plan) => {
                    self.by_team.insert(team.clone(), plan);
                    changed.extend(self.apply(round, &team));
                }
                Err(e) => error!(%team, error = %e, "Routing the night's visits failed; a person must plan them"),
            }
        }
        changed
    }

    /// Puts check `id`'s visit into its team's running routes.
    pub fn insert(&mut self, round: &mut Round, id: &str, travel: &dyn TravelTimes, now: Timestamp) -> BTreeSet<String> {
        let Some(check) = round.checks.get(id) else { return BTreeSet::new() };
        let team = check.team.clone();
        let visits = self.visits(round, &team, true);
        let Some(visit) = visits.iter().find(|v| v.id == id).cloned() else { return BTreeSet::new() };
        let patrols = self.team_patrols(&team);
        if patrols.is_empty() {
            error!(%team, check = %id, "The team has no patrol tonight: the visit cannot be routed; a person must act");
            return BTreeSet::new();
        }
        let current = self.by_team.get(&team).cloned().unwrap_or_default();
        let others: Vec<Visit> = visits.into_iter().filter(|v| v.id != id).collect();
        debug!(%team, check = %id, now = self.secs(now), visit = ?visit, patrols = ?patrols, routes = %serde_json::to_string(&current).unwrap_or_default(), visits = ?others, "Inserting a visit");
        let budget = insert_budget(self.speed);
        match guarded(|| routing::insert(&current, self.secs(now), visit, &patrols, &others, travel, &budget)) {
            Ok(plan) => {
                self.by_team.insert(team.clone(), plan);
                self.apply(round, &team)
            }
            Err(e) => {
                error!(%team, check = %id, error = %e, "Inserting the visit into the routes failed; a person must send a patrol");
                BTreeSet::new()
            }
        }
    }

    /// Writes each visit's patrol and planned arrival into its check; returns the checks that
    /// changed.
    fn apply(&self, round: &mut Round, team: &str) -> BTreeSet<String> {
        let mut changed = BTreeSet::new();
        let Some(plan) = self.by_team.get(team) else { return changed };
        let mut placed: BTreeMap<&str, (&str, i64)> = BTreeMap::new();
        for route in &plan.routes {
            for stop in &route.stops {
                placed.insert(stop.visit.as_str(), (route.patrol.as_str(), stop.start));
            }
        }
        for c in round.checks.values_mut().filter(|c| c.team == team && c.state == State::Visit) {
            let new = placed.get(c.id.as_str()).map(|(p, a)| (p.to_string(), self.at(*a)));
            if let Some(v) = c.visit.as_mut() {
                let old = v.patrol.clone().zip(v.planned_arrival);
                if old != new {
                    v.patrol = new.as_ref().map(|(p, _)| p.clone());
                    v.planned_arrival = new.as_ref().map(|(_, a)| *a);
                    changed.insert(c.id.clone());
                }
            }
        }
        changed
    }
}

/// Runs the router so that a fault in it (a panic) is an error like any other: the round goes
/// on, the visit stays open without a patrol and the error tells a person to act.
fn guarded(f: impl FnOnce() -> Result<Plan, routing::RoutingError>) -> Result<Plan, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(panic) => {
            let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            Err(format!("the router failed: {}", what.unwrap_or_else(|| "panic".into())))
        }
    }
}

/// The configured source of travel times.
pub fn travel(source: &super::config::TravelSource) -> Result<Box<dyn TravelTimes + Send>, String> {
    match source {
        super::config::TravelSource::Straight { road_factor, speed_kmh } => {
            Ok(Box::new(routing::Straight { road_factor: *road_factor, speed_kmh: *speed_kmh }))
        }
        super::config::TravelSource::OsrmTable { path } => {
            routing::OsrmTable::load(path).map(|t| Box::new(t) as Box<dyn TravelTimes + Send>).map_err(|e| format!("travel times from {}: {e}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_router_fault_is_an_error_not_a_crash() {
        let err = guarded(|| panic!("index out of range")).unwrap_err();
        assert_eq!(err, "the router failed: index out of range");
        let err = guarded(|| Err(routing::RoutingError::Input("no patrols".into()))).unwrap_err();
        assert_eq!(err, "invalid input: no patrols");
        assert!(guarded(|| Ok(Plan::default())).is_ok());
    }
}
