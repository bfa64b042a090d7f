//! [`insert`]: one escalation into routes that are already being driven.
//!
//! What may change at `now`, per patrol: a stop is *fixed* once the patrol has left for it
//! (its previous stop's departure, or the route's `depart_at`, is at or before `now`), so the
//! stop being served and the one being driven to stay exactly as planned, in order and time.
//! The patrol continues from its last fixed stop when it leaves it (or from its start at
//! `now` if it has not left, or from its end place if its route is over). Everything after
//! may move, in this order of preference:
//!
//! 1. the cheapest on-time insertion: no other stop changes patrol or order, only shifts in
//!    time within its window (exact, O(stops), no solver);
//! 2. otherwise, if no free stop is late already, vrp-core re-plans the free stops of all
//!    patrols plus the new visit within `budget`, accepted only if everything stays assigned
//!    (stops may then change patrol: a visit on time beats a stable plan);
//! 3. otherwise an urgent visit goes to the patrol that reaches it first, flagged late, and
//!    the free stops it would make late move to other patrols where they fit on time (those
//!    that fit nowhere stay, flagged late); a non-urgent one is added to [`Plan::unassigned`].
//!
//! Visits already unassigned in `current` stay so (re-plan the night to retry them).

use super::schedule::{cheapest_on_time, force_in, Job, Matrix, Tour};
use super::solve::{build_route, job, matrix, solve, validate, Fixed, NOT_REACHABLE};
use super::{Budget, Patrol, Plan, Route, RoutingError, TravelTimes, Unassigned, Visit};
use std::collections::HashMap;
use std::time::Instant;
use tracing::{debug, warn};

/// Inserts `visit` (e.g. an escalation with window `[now, now + 45 min]`) into the running
/// `current` plan. `visits` must describe every visit on `current`'s routes (it may contain
/// more, and may contain `visit` itself); `patrols` every patrol with a route.
pub fn insert(
    current: &Plan,
    now: i64,
    visit: Visit,
    patrols: &[Patrol],
    visits: &[Visit],
    travel: &dyn TravelTimes,
    budget: &Budget,
) -> Result<Plan, RoutingError> {
    let started = Instant::now();
    validate(patrols, std::slice::from_ref(&visit))?;
    if current.find(&visit.id).is_some() {
        return Err(RoutingError::Input(format!("visit {} is already planned", visit.id)));
    }
    let by_id: HashMap<&str, &Visit> = visits.iter().map(|v| (v.id.as_str(), v)).collect();
    let n_patrols = patrols.len();
    // The job table: every visit on a route, then the new one (last).
    let mut routed: Vec<&Visit> = Vec::new();
    for stop in current.routes.iter().flat_map(|r| &r.stops) {
        let v = by_id.get(stop.visit.as_str()).ok_or_else(|| {
            RoutingError::Input(format!("visit {} on the plan is not among the visits", stop.visit))
        })?;
        routed.push(v);
    }
    routed.push(&visit);
    let m = matrix(travel, patrols, routed.iter().copied())?;
    let table: Vec<Job> =
        routed.iter().enumerate().map(|(i, v)| job(v, 2 * n_patrols + i)).collect();
    let ids: Vec<&str> = routed.iter().map(|v| v.id.as_str()).collect();
    let new = table.len() - 1;

    let (fixed, mut tours) = split(current, now, patrols, &table, &m)?;
    let mut unassigned = current.unassigned.clone();
    if let Some(ins) = cheapest_on_time(&tours, &table, table[new], &m) {
        debug!(visit = %visit.id, patrol = %patrols[tours[ins.tour].patrol].id, start = ins.start, "Inserted on time");
        tours[ins.tour].jobs.insert(ins.position, new);
    } else if let Some(replanned) = replan(&tours, &table, new, &m, budget, started) {
        debug!(visit = %visit.id, "Inserted by re-planning the free stops");
        tours = replanned;
    } else if visit.urgent {
        warn!(visit = %visit.id, "No patrol can be there in time: forced in where it is reached first");
        if !force_in(&mut tours, &table, new, &m) {
            let reason = "no patrol on duty".into();
            unassigned.push(Unassigned { visit: visit.id.clone(), reason });
        }
    } else {
        unassigned.push(Unassigned { visit: visit.id.clone(), reason: NOT_REACHABLE.into() });
    }
    let routes = tours
        .iter()
        .zip(&fixed)
        .map(|(t, f)| build_route(&patrols[t.patrol].id, f, t, &table, &ids, &m))
        .collect();
    Ok(Plan { routes, unassigned })
}

/// Splits every patrol's route at `now` into fixed stops and a free tour. Job indices in the
/// table follow the order of stops in `current`.
fn split(
    current: &Plan,
    now: i64,
    patrols: &[Patrol],
    table: &[Job],
    m: &Matrix,
) -> Result<(Vec<Fixed>, Vec<Tour>), RoutingError> {
    let mut by_patrol: HashMap<&str, (usize, &Route)> = HashMap::new();
    let mut next_job = 0;
    for route in &current.routes {
        by_patrol.insert(route.patrol.as_str(), (next_job, route));
        next_job += route.stops.len();
    }
    if let Some(unknown) = current.routes.iter().find(|r| !patrols.iter().any(|p| p.id == r.patrol))
    {
        return Err(RoutingError::Input(format!(
            "patrol {} is not among the patrols",
            unknown.patrol
        )));
    }
    let n_patrols = patrols.len();
    let mut fixed = Vec::with_capacity(n_patrols);
    let mut tours = Vec::with_capacity(n_patrols);
    for (i, patrol) in patrols.iter().enumerate() {
        let mut tour = Tour {
            patrol: i,
            from_loc: i,
            from_time: now.max(patrol.shift_start),
            end_loc: n_patrols + i,
            shift_end: patrol.shift_end,
            jobs: Vec::new(),
        };
        let Some(&(first_job, route)) = by_patrol.get(patrol.id.as_str()) else {
            fixed.push(Fixed::default());
            tours.push(tour);
            continue;
        };
        let locs: Vec<usize> = std::iter::once(i)
            .chain((first_job..first_job + route.stops.len()).map(|j| table[j].loc))
            .collect();
        let n_fixed = leave_times(route, &locs, m).take_while(|leave| *leave <= now).count();
        let mut f = Fixed { stops: route.stops[..n_fixed].to_vec(), travel: 0, depart_at: None };
        if let Some(last) = f.stops.last() {
            f.travel = locs[..=n_fixed].windows(2).map(|w| m[w[0]][w[1]]).sum();
            f.depart_at = Some(route.depart_at);
            tour.from_loc = locs[n_fixed];
            // Serving its last fixed stop, or done with it and waiting there.
            tour.from_time = last.departure.max(now);
            if n_fixed == route.stops.len() && route.end_at <= now {
                // Back home already: a new stop starts from the end place.
                f.travel = route.travel_s;
                tour.from_loc = tour.end_loc;
                tour.from_time = now;
            }
        }
        tour.jobs = (first_job + n_fixed..first_job + route.stops.len()).collect();
        fixed.push(f);
        tours.push(tour);
    }
    Ok((fixed, tours))
}

/// When the patrol leaves for each stop of `route`: its departure from the start for the first,
/// then just in time for each next one (when it must leave the previous home, waiting there
/// until then). `locs` are the matrix locations of the start and of every stop.
pub(super) fn leave_times<'a>(
    route: &'a Route,
    locs: &'a [usize],
    m: &'a Matrix,
) -> impl Iterator<Item = i64> + 'a {
    let later = route.stops.windows(2).zip(locs[1..].windows(2)).map(|(pair, at)| {
        let (prev, stop) = (&pair[0], &pair[1]);
        prev.departure.max(stop.arrival - m[at[0]][at[1]])
    });
    std::iter::once(route.depart_at).chain(later).take(route.stops.len())
}

/// Step 2: the solver re-plans the free stops and `new` from where each patrol will be.
fn replan(
    tours: &[Tour],
    table: &[Job],
    new: usize,
    m: &Matrix,
    budget: &Budget,
    started: Instant,
) -> Option<Vec<Tour>> {
    let free: Vec<usize> = tours.iter().flat_map(|t| t.jobs.iter().copied()).collect();
    let already_late = tours.iter().any(|t| t.timing(table, m).stops.iter().any(|s| s.late > 0));
    if already_late || started.elapsed() >= budget.time {
        return None;
    }
    let which: Vec<usize> = free.into_iter().chain(std::iter::once(new)).collect();
    let solved = match solve(m, table, &which, tours, budget, started) {
        Ok(solved) if solved.unassigned.is_empty() => solved,
        Ok(_) => return None,
        Err(e) => {
            // Insertion must still answer: the forced insertion below needs no solver.
            warn!(error = %e, "Re-planning for an escalation failed");
            return None;
        }
    };
    let mut replanned = tours.to_vec();
    for (tour, jobs) in replanned.iter_mut().zip(solved.routes) {
        tour.jobs = jobs;
    }
    Some(replanned)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::routing::{plan, Place, PlanProblem, Stop, Straight};

    /// Two patrols, twelve visits in town spread over the night.
    fn night() -> (Vec<Patrol>, Vec<Visit>, Plan) {
        let patrols = vec![patrol("p1", 3 * H, 13 * H), patrol("p2", 3 * H, 13 * H)];
        let visits: Vec<Visit> = (0..12)
            .map(|i| {
                let agreed = 4 * H + i * 40 * MIN;
                let place = near((i % 4) as f64 * 1.5 - 2.0, (i % 3) as f64 * 2.0 - 2.0);
                visit(&format!("v{i}"), place, agreed - 15 * MIN, agreed + 15 * MIN)
            })
            .collect();
        let plan = plan(&patrols, &visits, &Straight::default(), &budget()).unwrap();
        assert!(plan.unassigned.is_empty());
        (patrols, visits, plan)
    }

    fn escalation(id: &str, place: Place, now: i64) -> Visit {
        Visit { urgent: true, ..visit(id, place, now, now + 45 * MIN) }
    }

    /// Stops each patrol had left for by `now` (it leaves each home just in time for the next).
    fn committed(plan: &Plan, visits: &[Visit], now: i64) -> Vec<Vec<Stop>> {
        let s = Straight::default();
        let place = |id: &str| visits.iter().find(|v| v.id == id).unwrap().place;
        plan.routes
            .iter()
            .map(|r| {
                let later = r.stops.windows(2).map(|w| {
                    let drive = s.seconds(place(&w[0].visit), place(&w[1].visit));
                    w[0].departure.max(w[1].arrival - drive)
                });
                std::iter::once(r.depart_at)
                    .chain(later)
                    .zip(&r.stops)
                    .take_while(|(l, _)| *l <= now)
                    .map(|(_, s)| s.clone())
                    .collect()
            })
            .collect()
    }

    fn all_visits(visits: &[Visit], new: &Visit) -> Vec<Visit> {
        visits.iter().cloned().chain(std::iter::once(new.clone())).collect()
    }

    #[test]
    fn insertion_keeps_done_and_under_way_stops_fixed() {
        let (patrols, visits, before) = night();
        let now = 6 * H + 10 * MIN;
        let fixed = committed(&before, &visits, now);
        assert!(fixed.iter().map(Vec::len).sum::<usize>() >= 3, "{fixed:?}");
        let new = escalation("esc", near(0.5, 0.5), now);
        let s = Straight::default();
        let after = insert(&before, now, new.clone(), &patrols, &visits, &s, &budget()).unwrap();
        for (route, fixed) in after.routes.iter().zip(&fixed) {
            assert_eq!(&route.stops[..fixed.len()], &fixed[..], "patrol {}", route.patrol);
        }
        let problems = after.check(&patrols, &all_visits(&visits, &new), &s).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn escalation_is_reached_within_its_45_minute_promise_when_feasible() {
        let (patrols, visits, before) = night();
        let now = 7 * H;
        let new = escalation("esc", near(8.0, -4.0), now);
        let s = Straight::default();
        let after = insert(&before, now, new.clone(), &patrols, &visits, &s, &budget()).unwrap();
        let (_, stop) = after.find("esc").unwrap();
        assert!(stop.start >= now && stop.start <= now + 45 * MIN, "{stop:?}");
        assert_eq!(after.late_stops().count(), 0);
        assert!(after.unassigned.is_empty());
        let problems = after.check(&patrols, &all_visits(&visits, &new), &s).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn infeasible_urgent_escalation_is_still_assigned_and_flagged_late() {
        let (patrols, visits, before) = night();
        let now = 7 * H;
        // 60 km out: no car makes it in 45 minutes at 60 km/h on roads 1.3 × the crow's way.
        let new = escalation("esc", near(60.0, 0.0), now);
        let s = Straight::default();
        let after = insert(&before, now, new.clone(), &patrols, &visits, &s, &budget()).unwrap();
        assert!(after.unassigned.is_empty());
        let (route, stop) = after.find("esc").unwrap();
        assert!(stop.late_s > 0, "{stop:?}");
        // It goes as soon as the patrol can leave: right after its fixed stops.
        let fixed = &committed(&before, &visits, now)[after.routes.iter().position(|r| r == route).unwrap()];
        assert_eq!(route.stops[fixed.len()].visit, "esc");
        let problems = after.check(&patrols, &all_visits(&visits, &new), &s).unwrap();
        assert!(problems.iter().all(|p| matches!(p, PlanProblem::Route { .. })), "{problems:#?}");
    }

    #[test]
    fn non_urgent_visit_that_cannot_fit_is_unassigned_and_nothing_else_moves() {
        let (patrols, visits, before) = night();
        let now = 7 * H;
        let new = Visit { urgent: false, ..escalation("far", near(60.0, 0.0), now) };
        let s = Straight::default();
        let after = insert(&before, now, new, &patrols, &visits, &s, &budget()).unwrap();
        assert_eq!(after.unassigned.len(), 1);
        assert_eq!(after.unassigned[0].visit, "far");
        assert_eq!(after.routes, before.routes);
    }

    #[test]
    fn patrol_waiting_for_its_next_visit_takes_an_escalation_first() {
        // One patrol: a visit at 22:00 (± 15 min), the next one not before 23:10.
        let patrols = [patrol("p1", 3 * H, 13 * H)];
        let visits = [
            visit("first", near(1.0, 0.0), 4 * H - 15 * MIN, 4 * H + 15 * MIN),
            visit("next", near(1.5, 0.5), 5 * H + 10 * MIN, 5 * H + 40 * MIN),
        ];
        let s = Straight::default();
        let before = plan(&patrols, &visits, &s, &budget()).unwrap();
        let stops = &before.routes[0].stops;
        assert_eq!(stops[1].arrival, stops[1].start, "the car does not wait outside: {stops:?}");
        // Just after the first visit an escalation comes in nearby.
        let now = stops[0].departure + MIN;
        let new = escalation("esc", near(0.0, 2.0), now);
        let after = insert(&before, now, new.clone(), &patrols, &visits, &s, &budget()).unwrap();
        let route = &after.routes[0];
        let order: Vec<&str> = route.stops.iter().map(|s| s.visit.as_str()).collect();
        assert_eq!(order, ["first", "esc", "next"]);
        assert_eq!(route.stops[1].start, now + s.seconds(near(1.0, 0.0), new.place));
        assert_eq!(route.stops[2], stops[1], "the next visit keeps its time");
        let problems = after.check(&patrols, &all_visits(&visits, &new), &s).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn idle_patrol_takes_an_escalation_from_its_start() {
        let patrols = [patrol("busy", 3 * H, 13 * H), patrol("idle", 3 * H, 13 * H)];
        let visits = [visit("only", near(2.0, 0.0), 4 * H, 4 * H + 30 * MIN)];
        let s = Straight::default();
        let before = plan(&patrols, &visits, &s, &budget()).unwrap();
        assert!(before.routes.iter().any(|r| r.stops.is_empty()), "{before:?}");
        let now = 4 * H + 5 * MIN;
        let new = escalation("esc", near(-1.0, 0.0), now);
        let after = insert(&before, now, new.clone(), &patrols, &visits, &s, &budget()).unwrap();
        let (_, stop) = after.find("esc").unwrap();
        assert_eq!(stop.start, now + s.seconds(BASE, new.place));
        let problems = after.check(&patrols, &all_visits(&visits, &new), &s).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn a_visit_already_planned_is_refused() {
        let (patrols, visits, before) = night();
        let again = visits[0].clone();
        let err = insert(&before, 7 * H, again, &patrols, &visits, &Straight::default(), &budget());
        assert!(matches!(err, Err(RoutingError::Input(_))));
    }

    #[test]
    fn patrol_back_home_is_sent_out_again_from_its_end_place() {
        let patrols = [patrol("p1", 3 * H, 13 * H)];
        let visits = [visit("early", near(2.0, 0.0), 3 * H, 4 * H)];
        let s = Straight::default();
        let before = plan(&patrols, &visits, &s, &budget()).unwrap();
        assert!(before.routes[0].end_at < 5 * H);
        let new = escalation("esc", near(-3.0, 0.0), 8 * H);
        let after = insert(&before, 8 * H, new.clone(), &patrols, &visits, &s, &budget()).unwrap();
        let stop = &after.routes[0].stops[1];
        assert_eq!(
            (stop.visit.as_str(), stop.arrival),
            ("esc", 8 * H + s.seconds(BASE, new.place))
        );
        let problems = after.check(&patrols, &all_visits(&visits, &new), &s).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
