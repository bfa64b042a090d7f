//! [`Plan::check`]: is a plan something patrols can actually drive, and honest about lateness?
//!
//! Used by the tests, the benchmark, and by callers that load a stored plan. A valid plan:
//! every visit is either on exactly one route or unassigned; each patrol leaves its start no
//! earlier than its shift; no stop is reached sooner than the drive from the previous place
//! allows; no visit starts before its window; `late_s` is exactly how late each start is;
//! `departure` = `start` + service; every patrol is back by its shift end; `travel_s` covers
//! at least the legs driven. (At least, not exactly: a patrol that went home and was sent out
//! again by [`super::insert`] drove the way home too.)

use super::solve::matrix;
use super::{Patrol, Plan, RoutingError, TravelTimes, Visit};
use std::collections::HashMap;
use std::fmt;

/// One thing wrong with a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanProblem {
    UnknownPatrol(String),
    UnknownVisit(String),
    /// On two routes, twice on one, or both routed and unassigned.
    Duplicate(String),
    /// Neither routed nor unassigned.
    Missing(String),
    Stop {
        visit: String,
        what: String,
    },
    Route {
        patrol: String,
        what: String,
    },
}

impl fmt::Display for PlanProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanProblem::UnknownPatrol(p) => write!(f, "unknown patrol {p}"),
            PlanProblem::UnknownVisit(v) => write!(f, "unknown visit {v}"),
            PlanProblem::Duplicate(v) => write!(f, "visit {v} is planned twice"),
            PlanProblem::Missing(v) => write!(f, "visit {v} is neither routed nor unassigned"),
            PlanProblem::Stop { visit, what } => write!(f, "visit {visit}: {what}"),
            PlanProblem::Route { patrol, what } => write!(f, "patrol {patrol}: {what}"),
        }
    }
}

impl Plan {
    /// Every problem found, none when the plan is valid.
    pub fn check(
        &self,
        patrols: &[Patrol],
        visits: &[Visit],
        travel: &dyn TravelTimes,
    ) -> Result<Vec<PlanProblem>, RoutingError> {
        let n_patrols = patrols.len();
        let m = matrix(travel, patrols, visits)?;
        let patrol_of: HashMap<&str, usize> =
            patrols.iter().enumerate().map(|(i, p)| (p.id.as_str(), i)).collect();
        let visit_of: HashMap<&str, usize> =
            visits.iter().enumerate().map(|(i, v)| (v.id.as_str(), i)).collect();
        let mut seen = vec![0usize; visits.len()];
        let mut problems = Vec::new();

        for route in &self.routes {
            let Some(&p) = patrol_of.get(route.patrol.as_str()) else {
                problems.push(PlanProblem::UnknownPatrol(route.patrol.clone()));
                continue;
            };
            let patrol = &patrols[p];
            let mut route_problem = |what: String| {
                problems.push(PlanProblem::Route { patrol: patrol.id.clone(), what })
            };
            if route.depart_at < patrol.shift_start {
                route_problem(format!("leaves at {} before its shift", route.depart_at));
            }
            if route.end_at > patrol.shift_end {
                let over = route.end_at - patrol.shift_end;
                route_problem(format!("back at {}, {over} s after its shift", route.end_at));
            }
            let (mut loc, mut t, mut legs) = (p, route.depart_at, 0);
            let mut stop_problems = Vec::new();
            for stop in &route.stops {
                let Some(&v) = visit_of.get(stop.visit.as_str()) else {
                    stop_problems.push(PlanProblem::UnknownVisit(stop.visit.clone()));
                    continue;
                };
                seen[v] += 1;
                let visit = &visits[v];
                let here = 2 * n_patrols + v;
                let mut wrong = |what: String| {
                    stop_problems.push(PlanProblem::Stop { visit: visit.id.clone(), what })
                };
                if stop.arrival < t + m[loc][here] {
                    wrong(format!("reached at {}, sooner than the drive allows", stop.arrival));
                }
                if stop.start < stop.arrival.max(visit.earliest) {
                    wrong(format!("starts at {} before arrival or window", stop.start));
                }
                if stop.late_s != (stop.start - visit.latest).max(0) {
                    wrong(format!("late_s {} but starts at {}", stop.late_s, stop.start));
                }
                if stop.departure != stop.start + visit.service_s {
                    wrong(format!("leaves at {}, not after its service", stop.departure));
                }
                legs += m[loc][here];
                (loc, t) = (here, stop.departure);
            }
            problems.extend(stop_problems);
            if !route.stops.is_empty() {
                let home = m[loc][n_patrols + p];
                legs += home;
                if route.end_at < t + home {
                    problems.push(PlanProblem::Route {
                        patrol: patrol.id.clone(),
                        what: format!("back at {}, sooner than the drive allows", route.end_at),
                    });
                }
            }
            if route.travel_s < legs {
                problems.push(PlanProblem::Route {
                    patrol: patrol.id.clone(),
                    what: format!("travel_s {} is less than the {legs} s driven", route.travel_s),
                });
            }
        }
        for u in &self.unassigned {
            match visit_of.get(u.visit.as_str()) {
                Some(&v) => seen[v] += 1,
                None => problems.push(PlanProblem::UnknownVisit(u.visit.clone())),
            }
        }
        for (v, &count) in seen.iter().enumerate() {
            match count {
                0 => problems.push(PlanProblem::Missing(visits[v].id.clone())),
                1 => {}
                _ => problems.push(PlanProblem::Duplicate(visits[v].id.clone())),
            }
        }
        Ok(problems)
    }
}
