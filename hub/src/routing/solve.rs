//! [`plan`]: a whole night's routes from vrp-core, then urgent leftovers forced in.
//!
//! The model handed to vrp-core: one job per visit (location, service time, one time window on
//! the start of service), one vehicle per patrol (start place and earliest departure, end
//! place and latest return), driving times as both its "duration" and "distance" matrices.
//! Goal, in order: fewest unassigned jobs, then least total distance = driving seconds
//! (waiting is free: a patrol parked outside a house costs nothing). Time windows and shifts
//! are hard constraints there; lateness exists only for urgent visits forced in afterwards
//! ([`super::schedule::force_in`]).
//!
//! The solver's own schedule is not used: routes are re-timed here with the integer matrix.

use super::schedule::{force_in, Job, Matrix, Tour};
use super::{Budget, Patrol, Plan, Route, RoutingError, Stop, TravelTimes, Unassigned, Visit};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;
use vrp_core::construction::heuristics::UnassignmentInfo;
use vrp_core::models::common::TimeWindow;
use vrp_core::models::problem::{JobIdDimension, VehicleIdDimension};
use vrp_core::prelude::*;
use vrp_core::rosomaxa::evolution::TelemetryMode;
use vrp_core::rosomaxa::utils::{Parallelism, TimeQuota};

/// Violation code of the time constraint (windows and shifts) in the solver's answers.
const TIME_CODE: ViolationCode = ViolationCode(1);
pub(super) const NOT_REACHABLE: &str =
    "no patrol can start it within its window and be back at its end place before shift end";

/// Plans the night: every patrol's route through the visits (see the module docs of
/// [`crate::routing`] for the contract). Searches within `budget`.
pub fn plan(
    patrols: &[Patrol],
    visits: &[Visit],
    travel: &dyn TravelTimes,
    budget: &Budget,
) -> Result<Plan, RoutingError> {
    let started = Instant::now();
    validate(patrols, visits)?;
    let n_patrols = patrols.len();
    let m = matrix(travel, patrols, visits)?;
    let table: Vec<Job> =
        visits.iter().enumerate().map(|(i, v)| job(v, 2 * n_patrols + i)).collect();
    let mut tours: Vec<Tour> = patrols
        .iter()
        .enumerate()
        .map(|(i, p)| Tour {
            patrol: i,
            from_loc: i,
            from_time: p.shift_start,
            end_loc: n_patrols + i,
            shift_end: p.shift_end,
            jobs: Vec::new(),
        })
        .collect();
    let all: Vec<usize> = (0..visits.len()).collect();
    let solved = solve_restarting(&m, &table, &all, &tours, budget, started)?;
    for (tour, jobs) in tours.iter_mut().zip(solved.routes) {
        tour.jobs = jobs;
    }
    let mut unassigned = Vec::new();
    let mut urgent: Vec<usize> = Vec::new();
    for (j, reason) in solved.unassigned {
        if visits[j].urgent {
            urgent.push(j);
        } else {
            unassigned.push(Unassigned { visit: visits[j].id.clone(), reason });
        }
    }
    urgent.sort_by_key(|&j| (visits[j].latest, j));
    for j in urgent {
        if !force_in(&mut tours, &table, j, &m) {
            let reason = "no patrol on duty".into();
            unassigned.push(Unassigned { visit: visits[j].id.clone(), reason });
        }
    }
    let ids: Vec<&str> = visits.iter().map(|v| v.id.as_str()).collect();
    let routes = tours
        .iter()
        .map(|t| build_route(&patrols[t.patrol].id, &Fixed::default(), t, &table, &ids, &m))
        .collect();
    Ok(Plan { routes, unassigned })
}

/// Stops of a route that may not change, and what they took.
#[derive(Debug, Clone, Default)]
pub(super) struct Fixed {
    pub stops: Vec<Stop>,
    /// Driving from the patrol's start to the last fixed stop.
    pub travel: i64,
    /// When the patrol left its start, if it has.
    pub depart_at: Option<i64>,
}

/// A public [`Route`] from fixed stops followed by a re-timed tour.
pub(super) fn build_route(
    patrol: &str,
    fixed: &Fixed,
    tour: &Tour,
    table: &[Job],
    ids: &[&str],
    m: &Matrix,
) -> Route {
    if fixed.stops.is_empty() && tour.jobs.is_empty() {
        let t = tour.from_time;
        return Route {
            patrol: patrol.into(),
            depart_at: t,
            stops: vec![],
            travel_s: 0,
            end_at: t,
        };
    }
    let timing = tour.timing(table, m);
    let mut stops = fixed.stops.clone();
    stops.extend(tour.jobs.iter().zip(&timing.stops).map(|(&j, t)| Stop {
        visit: ids[j].to_string(),
        arrival: t.arrival,
        start: t.start,
        departure: t.departure,
        late_s: t.late,
    }));
    let depart_at = match (fixed.depart_at, stops.first_mut()) {
        (Some(d), _) => d,
        (None, Some(first)) => {
            // Leave just in time for the first visit instead of waiting outside.
            let drive = first.arrival - tour.from_time;
            let depart = tour.from_time.max(first.start - drive);
            first.arrival = depart + drive;
            depart
        }
        (None, None) => tour.from_time,
    };
    Route {
        patrol: patrol.into(),
        depart_at,
        stops,
        travel_s: fixed.travel + timing.travel,
        end_at: timing.end_at,
    }
}

pub(super) fn job(v: &Visit, loc: usize) -> Job {
    Job { loc, earliest: v.earliest, latest: v.latest, service: v.service_s }
}

/// The travel matrix of a night, checked to be square and non-negative. Its locations are
/// every patrol's start (`i`), then every patrol's end (`n + i`), then the visits (`2n + j`).
pub(super) fn matrix<'a>(
    travel: &dyn TravelTimes,
    patrols: &[Patrol],
    visits: impl IntoIterator<Item = &'a Visit>,
) -> Result<Vec<Vec<i64>>, RoutingError> {
    let places: Vec<_> = patrols
        .iter()
        .map(|p| p.start)
        .chain(patrols.iter().map(|p| p.end))
        .chain(visits.into_iter().map(|v| v.place))
        .collect();
    let m = travel.matrix(&places)?;
    if m.len() != places.len() || m.iter().any(|row| row.len() != places.len()) {
        return Err(RoutingError::Travel(format!("matrix is not {0} x {0}", places.len())));
    }
    if m.iter().flatten().any(|&d| d < 0) {
        return Err(RoutingError::Travel("negative travel time".into()));
    }
    Ok(m)
}

/// Collects every problem with the input into one error.
pub(super) fn validate(patrols: &[Patrol], visits: &[Visit]) -> Result<(), RoutingError> {
    let mut problems = Vec::new();
    if patrols.is_empty() {
        problems.push("no patrols".to_string());
    }
    let mut seen = HashSet::new();
    for p in patrols {
        if !seen.insert(p.id.as_str()) {
            problems.push(format!("patrol {} given twice", p.id));
        }
        if p.shift_end < p.shift_start {
            problems.push(format!("patrol {} ends its shift before it starts", p.id));
        }
    }
    let mut seen = HashSet::new();
    for v in visits {
        if !seen.insert(v.id.as_str()) {
            problems.push(format!("visit {} given twice", v.id));
        }
        if v.latest < v.earliest {
            problems.push(format!("visit {}: window ends before it starts", v.id));
        }
        if v.service_s < 0 {
            problems.push(format!("visit {}: negative service time", v.id));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(RoutingError::Input(problems.join("; ")))
    }
}

/// What the solver made of the jobs `which`: per tour (same order as given) the job table
/// indices in visiting order, and the jobs it left out with a reason.
pub(super) struct Solved {
    pub routes: Vec<Vec<usize>>,
    pub unassigned: Vec<(usize, String)>,
}

/// [`solve`] `budget.restarts` times, each with an equal share of the time left, keeping the
/// best (fewest unassigned, then least travel). The search settles within seconds in a local
/// optimum that depends on its early moves, so independent starts beat one long run.
fn solve_restarting(
    m: &Matrix,
    table: &[Job],
    which: &[usize],
    tours: &[Tour],
    budget: &Budget,
    started: Instant,
) -> Result<Solved, RoutingError> {
    let runs = budget.restarts.max(1);
    let mut best: Option<(usize, i64, Solved)> = None;
    for run in 0..runs {
        let left = budget.time.saturating_sub(started.elapsed());
        let share = Budget { time: left / (runs - run), ..budget.clone() };
        let solved = solve(m, table, which, tours, &share, Instant::now())?;
        let travel: i64 = solved
            .routes
            .iter()
            .zip(tours)
            .map(|(jobs, t)| Tour { jobs: jobs.clone(), ..t.clone() }.timing(table, m).travel)
            .sum();
        let key = (solved.unassigned.len(), travel);
        if best.as_ref().is_none_or(|(u, t, _)| key < (*u, *t)) {
            best = Some((key.0, key.1, solved));
        }
    }
    best.map(|(_, _, s)| s).ok_or_else(|| RoutingError::Solver("no run".into()))
}

/// Runs vrp-core on jobs `which` for vehicles that start as `tours` do (their jobs are
/// ignored), within what is left of `budget` since `started`.
pub(super) fn solve(
    m: &Matrix,
    table: &[Job],
    which: &[usize],
    tours: &[Tour],
    budget: &Budget,
    started: Instant,
) -> Result<Solved, RoutingError> {
    let mut routes = vec![Vec::new(); tours.len()];
    if which.is_empty() {
        return Ok(Solved { routes, unassigned: vec![] });
    }
    let problem = Arc::new(model(m, table, which, tours).map_err(solver_error)?);
    let left = budget.time.saturating_sub(started.elapsed()).as_secs_f64().max(0.05);
    let quiet: InfoLogger = Arc::new(|_: &str| {});
    let environment = Arc::new(Environment::new(
        Arc::new(DefaultRandom::new_repeatable()),
        Some(Arc::new(TimeQuota::new(left))),
        Parallelism::default(),
        quiet,
        false,
    ));
    let config = VrpConfigBuilder::new(problem.clone())
        .set_environment(environment)
        .set_telemetry_mode(TelemetryMode::None)
        .prebuild()
        .map_err(solver_error)?
        .with_max_time(Some(left.ceil() as usize))
        .with_max_generations(budget.generations)
        .build()
        .map_err(solver_error)?;
    let solution = Solver::new(problem, config).solve().map_err(solver_error)?;

    let index = |id: Option<&String>| id.and_then(|s| s.parse::<usize>().ok());
    for route in &solution.routes {
        let Some(v) = index(route.actor.vehicle.dimens.get_vehicle_id()) else { continue };
        let jobs = route.tour.all_activities().filter_map(|a| a.job.as_ref());
        routes[v] = jobs.filter_map(|single| index(single.dimens.get_job_id())).collect();
    }
    let unassigned = solution
        .unassigned
        .iter()
        .filter_map(|(job, info)| Some((index(job.dimens().get_job_id())?, reason(info))))
        .collect();
    Ok(Solved { routes, unassigned })
}

fn model(m: &Matrix, table: &[Job], which: &[usize], tours: &[Tour]) -> GenericResult<Problem> {
    let flat: Vec<Float> = m.iter().flatten().map(|&d| d as Float).collect();
    let transport: Arc<dyn TransportCost> = Arc::new(SimpleTransportCost::new(flat.clone(), flat)?);
    let jobs = which
        .iter()
        .map(|&j| {
            let job = table[j];
            SingleBuilder::default()
                .id(&j.to_string())
                .location(job.loc)?
                .duration(job.service as Float)?
                .times(vec![TimeWindow::new(job.earliest as Float, job.latest as Float)])?
                .build_as_job()
        })
        .collect::<GenericResult<Vec<_>>>()?;
    let vehicles = tours
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let detail = VehicleDetailBuilder::default()
                .set_start_location(t.from_loc)
                .set_start_time(t.from_time as Float)
                .set_end_location(t.end_loc)
                .set_end_time(t.shift_end as Float)
                .build()?;
            VehicleBuilder::default().id(&i.to_string()).add_detail(detail).build()
        })
        .collect::<GenericResult<Vec<_>>>()?;
    let goal = GoalContextBuilder::with_features(&[
        MinimizeUnassignedBuilder::new("min-unassigned").build()?,
        TransportFeatureBuilder::new("min-travel")
            .set_transport_cost(transport.clone())
            .set_violation_code(TIME_CODE)
            .build_minimize_distance()?,
    ])?
    .build()?;
    ProblemBuilder::default()
        .add_jobs(jobs.into_iter())
        .add_vehicles(vehicles.into_iter())
        .with_goal(goal)
        .with_transport_cost(transport)
        .with_logger(Arc::new(|_: &str| {}))
        .build()
}

fn reason(info: &UnassignmentInfo) -> String {
    let time = |code: &ViolationCode| *code == TIME_CODE;
    match info {
        UnassignmentInfo::Simple(code) if time(code) => NOT_REACHABLE.into(),
        UnassignmentInfo::Detailed(codes) if codes.iter().all(|(_, c)| time(c)) => {
            NOT_REACHABLE.into()
        }
        _ => "left out by the solver".into(),
    }
}

fn solver_error(e: GenericError) -> RoutingError {
    RoutingError::Solver(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::routing::Straight;

    fn assert_valid(plan: &Plan, patrols: &[Patrol], visits: &[Visit]) {
        let problems = plan.check(patrols, visits, &Straight::default()).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn visits_start_within_their_time_windows() {
        // Agreed times 23:00, 02:00 and 05:00 (± 15 min) at four homes in town.
        let homes = [near(1.0, 0.5), near(-2.0, 1.0), near(0.5, -3.0), near(3.0, 2.0)];
        let mut visits = Vec::new();
        for (h, &home) in homes.iter().enumerate() {
            for agreed in [5 * H, 8 * H, 11 * H] {
                let id = format!("home{h}-{}", agreed / H);
                visits.push(visit(&id, home, agreed - 15 * MIN, agreed + 15 * MIN));
            }
        }
        let patrols = [patrol("p1", 3 * H, 13 * H), patrol("p2", 3 * H, 13 * H)];
        let plan = plan(&patrols, &visits, &Straight::default(), &budget()).unwrap();
        assert!(plan.unassigned.is_empty(), "{:?}", plan.unassigned);
        assert_valid(&plan, &patrols, &visits);
        for v in &visits {
            let (_, stop) = plan.find(&v.id).unwrap();
            assert!((v.earliest..=v.latest).contains(&stop.start), "{v:?} {stop:?}");
            assert_eq!(stop.late_s, 0);
        }
    }

    #[test]
    fn patrols_leave_after_shift_start_and_are_back_by_shift_end() {
        let evening = patrol("evening", 3 * H, 7 * H);
        let night = patrol("night", 7 * H, 13 * H);
        let visits = [
            visit("early", near(2.0, 2.0), 3 * H, 5 * H),
            visit("late", near(-2.0, 2.0), 9 * H, 12 * H),
            visit("any", near(1.0, -1.0), 3 * H, 13 * H),
        ];
        let patrols = [evening, night];
        let plan = plan(&patrols, &visits, &Straight::default(), &budget()).unwrap();
        assert_valid(&plan, &patrols, &visits);
        assert_eq!(plan.find("early").unwrap().0.patrol, "evening");
        assert_eq!(plan.find("late").unwrap().0.patrol, "night");
        for (route, p) in plan.routes.iter().zip(&patrols) {
            assert!(route.depart_at >= p.shift_start && route.end_at <= p.shift_end, "{route:?}");
        }
    }

    #[test]
    fn far_village_visit_is_served() {
        // 55 km north of town: over an hour's drive each way at 60 km/h × 1.3.
        let village = near(55.0, 5.0);
        let visits = [
            visit("village", village, 6 * H, 6 * H + 30 * MIN),
            visit("town", near(1.0, 1.0), 4 * H, 9 * H),
        ];
        let patrols = [patrol("p1", 3 * H, 13 * H)];
        let plan = plan(&patrols, &visits, &Straight::default(), &budget()).unwrap();
        assert_valid(&plan, &patrols, &visits);
        let (route, stop) = plan.find("village").unwrap();
        assert_eq!(stop.late_s, 0);
        let drive = Straight::default().seconds(BASE, village);
        assert!(drive > H, "{drive}");
        assert!(route.travel_s >= 2 * drive);
    }

    #[test]
    fn visit_no_patrol_can_reach_in_time_is_unassigned_with_reason() {
        // 60 km away, window closes 20 minutes into the only shift.
        let visits = [visit("far", near(60.0, 0.0), 3 * H, 3 * H + 20 * MIN)];
        let patrols = [patrol("p1", 3 * H, 13 * H)];
        let plan = plan(&patrols, &visits, &Straight::default(), &budget()).unwrap();
        assert_valid(&plan, &patrols, &visits);
        assert_eq!(plan.unassigned.len(), 1);
        assert_eq!(plan.unassigned[0].reason, NOT_REACHABLE);
    }

    #[test]
    fn urgent_visit_that_cannot_make_its_window_is_assigned_late_to_the_patrol_there_first() {
        let mut urgent = visit("urgent", near(60.0, 0.0), 3 * H, 3 * H + 20 * MIN);
        urgent.urgent = true;
        let mut north = patrol("north", 3 * H, 13 * H);
        north.start = near(40.0, 0.0);
        let patrols = [patrol("town", 3 * H, 13 * H), north];
        let visits = [urgent, visit("town", near(1.0, 1.0), 4 * H, 9 * H)];
        let plan = plan(&patrols, &visits, &Straight::default(), &budget()).unwrap();
        assert_valid(&plan, &patrols, &visits);
        assert!(plan.unassigned.is_empty());
        let (route, stop) = plan.find("urgent").unwrap();
        assert_eq!(route.patrol, "north");
        let drive = Straight::default().seconds(near(40.0, 0.0), near(60.0, 0.0));
        assert_eq!(stop.start, 3 * H + drive);
        assert_eq!(stop.late_s, drive - 20 * MIN);
        assert_eq!(plan.late_stops().count(), 1);
    }

    #[test]
    fn invalid_input_is_reported_all_at_once() {
        let visits = [visit("a", BASE, 5 * H, 4 * H), visit("a", BASE, 0, H)];
        let err = plan(&[], &visits, &Straight::default(), &budget()).unwrap_err().to_string();
        assert!(
            err.contains("no patrols") && err.contains("twice") && err.contains("window"),
            "{err}"
        );
    }

    #[test]
    fn plan_round_trips_through_json() {
        let visits = [visit("a", near(1.0, 1.0), 4 * H, 5 * H)];
        let patrols = [patrol("p1", 3 * H, 13 * H), patrol("idle", 3 * H, 13 * H)];
        let plan = plan(&patrols, &visits, &Straight::default(), &budget()).unwrap();
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
        assert_eq!(plan.routes.len(), 2, "an idle patrol still has a (empty) route");
    }
}
