//! Village trips: a search move for vrp-core that serves a far village in one trip.
//!
//! On the night-patrol instances most of the gap to a good plan is driving to the villages
//! 20–60 km out (`BENCHMARKS.md`). A good plan sends one patrol out once per village (or per
//! group of villages close to each other) and lets it wait there between visits, which is free;
//! vrp-core's own ruin-and-recreate tends to split a village's visits over several trips and
//! fill the gaps with town visits, and rarely finds the compound move that undoes it: take
//! the whole village off every route *and* clear one patrol's town visits out of the time the
//! trip needs.
//!
//! [`VillageTrips`] is that move, as a vrp-core search operator:
//! 1. **Ruin** ([`VillageTrips::ruin`]): pick a far cluster (far visits within
//!    [`CLUSTER_S`] of each other, sometimes with a neighbouring cluster) and one route (the
//!    one holding most of the cluster, or any); remove the cluster's jobs from every route and
//!    that route's other jobs whose stop overlaps the trip's span (first to last cluster visit
//!    as currently planned, widened by the drive out and back).
//! 2. **Recreate**: the cluster's jobs go back on the chosen route only (vrp-core's cheapest
//!    insertion restricted to it), then everything else removed goes anywhere with one of
//!    vrp-core's recreate methods (cheapest or regret).
//! 3. **Repair**: the town visits the move displaced often no longer fit, so a few rounds of
//!    local search follow, each kept only if it improves the solution: vrp-core's default
//!    ruin and recreate, or an *ejection* (remove the jobs near an unassigned town visit in
//!    place and time, put it in first, re-insert the others).
//!
//! For a solution with unassigned visits the move starts, half the time, from one of them:
//! an unassigned far visit gets its village's trip, an unassigned town visit an ejection.
//!
//! [`WithVillageTrips`] runs vrp-core's default heuristic and, for a share of the solutions
//! it is asked to improve, this move instead. Nothing here changes the model or the goal, so
//! the search stays vrp-core's and any plan it returns is as valid as before.

use super::schedule::{Job as TableJob, Matrix, Tour};
use super::solve::far_jobs;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use vrp_core::construction::heuristics::{
    AllJobSelector, BestResultSelector, InsertionContext, InsertionHeuristic, LegSelection,
    RouteContext, RouteSelector,
};
use vrp_core::models::common::TimeSpan;
use vrp_core::models::problem::{Actor, Job, JobIdDimension};
use vrp_core::models::GoalContext;
use vrp_core::prelude::Float;
use vrp_core::rosomaxa::hyper::{HeuristicSearchOperator, HyperHeuristic};
use vrp_core::rosomaxa::prelude::HeuristicObjective;
use vrp_core::rosomaxa::HeuristicSolution;
use vrp_core::solver::search::{Recreate, RecreateWithCheapest, RecreateWithRegret};
use vrp_core::prelude::{Environment, Problem};
use vrp_core::solver::{create_default_heuristic_operator, RefinementContext, TargetHeuristic, TargetSearchOperator};

/// Far visits this close (driving seconds) belong to the same village.
const CLUSTER_S: i64 = 5 * 60;
/// Villages this close may be served in one trip (a patrol touring the villages instead of
/// driving back to town in between: on night-200 PyVRP's best plan has one patrol touring
/// four villages 10–46 min apart all night).
const NEIGHBOUR_S: i64 = 50 * 60;
/// Chance that a trip takes each neighbouring village along.
const WITH_NEIGHBOUR: Float = 0.5;
/// Rounds of vrp-core's own ruin and recreate after the move, to place the town visits it
/// displaced (a round is kept only if it improves the solution).
const REPAIR_ROUNDS: usize = 20;
/// Chance that a solution with unassigned visits gets an ejection (room made around one of
/// them) instead of a village trip.
const EJECT: Float = 0.5;
/// An ejection removes jobs starting this close to the unassigned visit's window…
const EJECT_S: Float = 30.0 * 60.0;
/// …and this close to it.
const EJECT_DRIVE_S: Float = 10.0 * 60.0;
/// Chance that the trip goes on the route holding most of the village (else any route).
const MOST_HELD: Float = 0.5;
/// Share of the solutions handed to the heuristic that get this move instead.
pub(super) const SHARE: Float = 0.2;

/// One far visit as the operator sees it.
#[derive(Clone)]
struct FarJob {
    job: Job,
    earliest: Float,
    latest: Float,
    service: Float,
}

/// The far visits of a problem grouped into villages, and the village-trip move on them.
pub(super) struct VillageTrips {
    clusters: Vec<Vec<FarJob>>,
    /// Per cluster, the other clusters within [`NEIGHBOUR_S`].
    neighbours: Vec<Vec<usize>>,
    /// Per cluster, the shortest drive from any patrol start to any of its visits.
    reach: Vec<Float>,
    recreates: Vec<Arc<dyn Recreate>>,
    repair_with: TargetSearchOperator,
}

/// A trip chosen by the ruin: the jobs and the patrol that will serve them.
pub(super) struct Trip {
    pub jobs: Vec<Job>,
    /// `None`: any route.
    pub actor: Option<Arc<Actor>>,
}

impl VillageTrips {
    /// Clusters the far jobs of `which` (job ids in `jobs` are job table indices).
    pub fn new(
        m: &Matrix,
        table: &[TableJob],
        which: &[usize],
        tours: &[Tour],
        problem: Arc<Problem>,
        environment: Arc<Environment>,
    ) -> Self {
        let random = environment.random.clone();
        let jobs = problem.jobs.all().iter().cloned();
        let far = far_jobs(m, table, which, tours);
        let groups = clusters(m, table, &far, CLUSTER_S);
        let by_index: HashMap<usize, Job> = jobs
            .filter_map(|job| Some((job.dimens().get_job_id()?.parse().ok()?, job)))
            .collect();
        let far_job = |j: usize| {
            let v = &table[j];
            let job = by_index.get(&j)?.clone();
            let (earliest, latest) = (v.earliest as Float, v.latest as Float);
            Some(FarJob { job, earliest, latest, service: v.service as Float })
        };
        let reach = groups
            .iter()
            .map(|g| {
                let drives = g.iter().flat_map(|&j| tours.iter().map(move |t| m[t.from_loc][table[j].loc]));
                drives.min().unwrap_or(0) as Float
            })
            .collect();
        let gap = |a: &[usize], b: &[usize]| {
            a.iter().flat_map(|&i| b.iter().map(move |&j| (i, j))).map(|(i, j)| m[table[i].loc][table[j].loc]).min()
        };
        let neighbours = (0..groups.len())
            .map(|c| {
                (0..groups.len())
                    .filter(|&o| o != c && gap(&groups[c], &groups[o]).is_some_and(|d| d <= NEIGHBOUR_S))
                    .collect()
            })
            .collect();
        let clusters = groups.iter().map(|g| g.iter().filter_map(|&j| far_job(j)).collect()).collect();
        let recreates: Vec<Arc<dyn Recreate>> = vec![
            Arc::new(RecreateWithCheapest::new(random.clone())),
            Arc::new(RecreateWithRegret::new(2, 3, random)),
        ];
        let repair_with = create_default_heuristic_operator(problem, environment);
        VillageTrips { clusters, neighbours, reach, recreates, repair_with }
    }

    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    /// Picks a village (maybe with a neighbour) and a route for it; `None` when there is
    /// nothing to move.
    fn pick(&self, ctx: &InsertionContext, cluster: Option<usize>) -> Option<(Vec<usize>, Arc<Actor>)> {
        let random = ctx.environment.random.as_ref();
        let routes = &ctx.solution.routes;
        if self.clusters.is_empty() || routes.is_empty() {
            return None;
        }
        let c = cluster.unwrap_or_else(|| random.uniform_int(0, self.clusters.len() as i32 - 1) as usize);
        let mut picked = vec![c];
        picked.extend(self.neighbours[c].iter().filter(|_| random.is_hit(WITH_NEIGHBOUR)));
        let held = |r: &RouteContext| {
            let jobs = picked.iter().flat_map(|&c| &self.clusters[c]);
            jobs.filter(|f| r.route().tour.contains(&f.job)).count()
        };
        let most = routes.iter().max_by_key(|r| held(r)).filter(|r| held(r) > 0);
        let route = match most {
            Some(r) if random.is_hit(MOST_HELD) => r,
            _ => &routes[random.uniform_int(0, routes.len() as i32 - 1) as usize],
        };
        Some((picked, route.route().actor.clone()))
    }

    /// Removes the jobs of `clusters` from every route, and from `actor`'s route every other
    /// job whose stop overlaps the trip (its first to last cluster visit as now planned, or
    /// their windows if none is planned, widened by the drive out and back). Locked jobs stay.
    pub fn ruin(&self, ctx: &mut InsertionContext, clusters: &[usize], actor: Arc<Actor>) -> Trip {
        let far: Vec<&FarJob> = clusters.iter().flat_map(|&c| &self.clusters[c]).collect();
        let drive = clusters.iter().map(|&c| self.reach[c]).fold(Float::MAX, Float::min);
        let mut planned: Option<(Float, Float)> = None;
        for route in &ctx.solution.routes {
            for a in route.route().tour.all_activities() {
                let Some(job) = a.retrieve_job() else { continue };
                if far.iter().any(|f| f.job == job) {
                    let start = a.schedule.arrival.max(a.place.time.start);
                    let (lo, hi) = planned.unwrap_or((start, a.schedule.departure));
                    planned = Some((lo.min(start), hi.max(a.schedule.departure)));
                }
            }
        }
        let (lo, hi) = planned.unwrap_or_else(|| {
            let lo = far.iter().map(|f| f.earliest).fold(Float::MAX, Float::min);
            let hi = far.iter().map(|f| f.latest + f.service).fold(Float::MIN, Float::max);
            (lo, hi)
        });
        let (lo, hi) = (lo - drive, hi + drive);

        let solution = &mut ctx.solution;
        let jobs: Vec<Job> = far.iter().map(|f| f.job.clone()).collect();
        let mut removed = Vec::new();
        for route in solution.routes.iter_mut() {
            let mine = route.route().actor == actor;
            let out: Vec<Job> = route
                .route()
                .tour
                .all_activities()
                .filter_map(|a| {
                    let job = a.retrieve_job()?;
                    let start = a.schedule.arrival.max(a.place.time.start);
                    let in_span = a.schedule.departure >= lo && start <= hi;
                    (jobs.contains(&job) || (mine && in_span)).then_some(job)
                })
                .filter(|job| !solution.locked.contains(job))
                .collect();
            for job in out {
                if route.route_mut().tour.remove(&job) {
                    removed.push(job);
                }
            }
        }
        solution.required.extend(removed);
        let jobs = jobs.into_iter().filter(|j| !solution.locked.contains(j)).collect();
        Trip { jobs, actor: Some(actor) }
    }

    /// Removes from every route the jobs that start within [`EJECT_S`] of `job`'s window and
    /// lie within [`EJECT_DRIVE_S`] of it, so that `job` (left unassigned) can go in first.
    fn eject(&self, ctx: &mut InsertionContext, job: &Job) -> Option<Trip> {
        let place = job.as_single()?.places.first()?;
        let (at, service) = (place.location?, place.duration);
        let window = place.times.iter().find_map(|t| match t {
            TimeSpan::Window(w) => Some(w.clone()),
            _ => None,
        })?;
        let (lo, hi) = (window.start - EJECT_S, window.end + service + EJECT_S);
        let transport = ctx.problem.transport.clone();
        let solution = &mut ctx.solution;
        let mut removed = Vec::new();
        for route in solution.routes.iter_mut() {
            let profile = route.route().actor.vehicle.profile.clone();
            let out: Vec<Job> = route
                .route()
                .tour
                .all_activities()
                .filter_map(|a| {
                    let other = a.retrieve_job()?;
                    let start = a.schedule.arrival.max(a.place.time.start);
                    let near = transport.duration_approx(&profile, at, a.place.location) <= EJECT_DRIVE_S
                        || transport.duration_approx(&profile, a.place.location, at) <= EJECT_DRIVE_S;
                    (near && start <= hi && a.schedule.departure >= lo).then_some(other)
                })
                .filter(|j| !solution.locked.contains(j))
                .collect();
            for j in out {
                if route.route_mut().tour.remove(&j) {
                    removed.push(j);
                }
            }
        }
        solution.required.extend(removed);
        solution.unassigned.remove(job);
        solution.required.push(job.clone());
        Some(Trip { jobs: vec![job.clone()], actor: None })
    }

    /// Puts the trip's jobs on its route (cheapest positions there), then every other
    /// required or unassigned job anywhere with one of vrp-core's recreate methods.
    fn recreate(&self, refinement: &RefinementContext, mut ctx: InsertionContext, trip: Trip) -> InsertionContext {
        let others: Vec<Job> =
            std::mem::take(&mut ctx.solution.required).into_iter().filter(|j| !trip.jobs.contains(j)).collect();
        let unassigned = std::mem::take(&mut ctx.solution.unassigned);
        ctx.solution.required = trip.jobs;
        let mut ctx = InsertionHeuristic::default().process(
            ctx,
            &AllJobSelector::default(),
            &OnRoute { actor: trip.actor },
            &LegSelection::Exhaustive,
            &BestResultSelector::default(),
        );
        // Trip jobs that did not fit are unassigned now; the recreate below retries them.
        ctx.solution.required = others;
        ctx.solution.unassigned.extend(unassigned);
        let random = ctx.environment.random.clone();
        let k = random.uniform_int(0, self.recreates.len() as i32 - 1) as usize;
        let mut ctx = self.recreates[k].run(refinement, ctx);
        ctx.restore();
        ctx
    }

    /// `rounds` of local search, each kept if it is better: room made around an unassigned
    /// town visit (half the time, when there is one), else vrp-core's default ruin and
    /// recreate.
    fn repair(&self, refinement: &RefinementContext, mut ctx: InsertionContext, rounds: usize) -> InsertionContext {
        let goal = ctx.problem.goal.clone();
        let random = ctx.environment.random.clone();
        for _ in 0..rounds {
            let town: Vec<Job> =
                ctx.solution.unassigned.keys().filter(|j| self.cluster_of(j).is_none()).cloned().collect();
            let next = if !town.is_empty() && random.is_hit(EJECT) {
                let job = &town[random.uniform_int(0, town.len() as i32 - 1) as usize];
                let mut next = ctx.deep_copy();
                let Some(trip) = self.eject(&mut next, job) else { continue };
                next.restore();
                self.recreate(refinement, next, trip)
            } else {
                self.repair_with.search(refinement, &ctx)
            };
            if goal.total_order(&next, &ctx) == std::cmp::Ordering::Less {
                ctx = next;
            }
        }
        ctx
    }

    /// The cluster of a far job.
    fn cluster_of(&self, job: &Job) -> Option<usize> {
        self.clusters.iter().position(|c| c.iter().any(|f| f.job == *job))
    }
}

impl HeuristicSearchOperator for VillageTrips {
    type Context = RefinementContext;
    type Objective = GoalContext;
    type Solution = InsertionContext;

    fn search(&self, refinement: &RefinementContext, solution: &InsertionContext) -> InsertionContext {
        let mut ctx = solution.deep_copy();
        let random = ctx.environment.random.clone();
        let left: Vec<Job> = ctx.solution.unassigned.keys().cloned().collect();
        let job = (!left.is_empty() && random.is_hit(EJECT))
            .then(|| left[random.uniform_int(0, left.len() as i32 - 1) as usize].clone());
        // An unassigned far visit: its village's trip; an unassigned town visit: room around it.
        let village = job.as_ref().map(|j| self.cluster_of(j));
        let (trip, rounds) = match (job, village) {
            (Some(job), Some(None)) => match self.eject(&mut ctx, &job) {
                Some(trip) => (trip, REPAIR_ROUNDS),
                None => return ctx,
            },
            (_, village) => {
                let Some((clusters, actor)) = self.pick(&ctx, village.flatten()) else { return ctx };
                let rounds = if village.is_some() { 3 * REPAIR_ROUNDS } else { REPAIR_ROUNDS };
                (self.ruin(&mut ctx, &clusters, actor), rounds)
            }
        };
        // Re-evaluate the changed routes (schedules) before inserting, as vrp-core's ruins do.
        ctx.restore();
        let out = self.recreate(refinement, ctx, trip);
        self.repair(refinement, out, rounds)
    }
}

/// Only the route of `actor` (opened if the ruin emptied, and so dropped, it), or any route.
struct OnRoute {
    actor: Option<Arc<Actor>>,
}

impl RouteSelector for OnRoute {
    fn prepare(&self, ctx: &mut InsertionContext) {
        let Some(actor) = &self.actor else { return };
        if ctx.solution.routes.iter().any(|r| r.route().actor == *actor) {
            return;
        }
        if let Some(route) = ctx.solution.registry.get_route(actor) {
            ctx.solution.routes.push(route);
        }
    }

    fn select<'a>(&'a self, ctx: &'a InsertionContext, _: &[&'a Job]) -> Box<dyn Iterator<Item = &'a RouteContext> + 'a> {
        match &self.actor {
            Some(actor) => Box::new(ctx.solution.routes.iter().filter(move |r| r.route().actor == *actor)),
            None => Box::new(ctx.solution.routes.iter().chain(ctx.solution.registry.next_route())),
        }
    }
}

/// vrp-core's heuristic, with [`SHARE`] of the solutions it is asked to improve given a
/// village trip move instead.
pub(super) struct WithVillageTrips {
    pub inner: TargetHeuristic,
    pub trips: Arc<VillageTrips>,
    pub share: Float,
}

type Ctx = RefinementContext;

impl HyperHeuristic for WithVillageTrips {
    type Context = Ctx;
    type Objective = GoalContext;
    type Solution = InsertionContext;

    fn search(&mut self, ctx: &Ctx, solution: &InsertionContext) -> Vec<InsertionContext> {
        if ctx.environment.random.is_hit(self.share) {
            vec![self.trips.search(ctx, solution)]
        } else {
            self.inner.search(ctx, solution)
        }
    }

    fn search_many(&mut self, ctx: &Ctx, solutions: Vec<&InsertionContext>) -> Vec<InsertionContext> {
        let random = ctx.environment.random.clone();
        let (mine, rest): (Vec<_>, Vec<_>) = solutions.into_iter().partition(|_| random.is_hit(self.share));
        let mut out = if rest.is_empty() { Vec::new() } else { self.inner.search_many(ctx, rest) };
        out.extend(mine.into_iter().map(|s| self.trips.search(ctx, s)));
        out
    }

    fn diversify(&self, ctx: &Ctx, solution: &InsertionContext) -> Vec<InsertionContext> {
        self.inner.diversify(ctx, solution)
    }

    fn diversify_many(&self, ctx: &Ctx, solutions: Vec<&InsertionContext>) -> Vec<InsertionContext> {
        self.inner.diversify_many(ctx, solutions)
    }
}

impl fmt::Display for WithVillageTrips {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} + village trips", self.inner)
    }
}

/// Groups `jobs` so that each is within `within` driving seconds (either way) of another in
/// its group (single link), in order of first member.
fn clusters(m: &Matrix, table: &[TableJob], jobs: &[usize], within: i64) -> Vec<Vec<usize>> {
    let close = |a: usize, b: usize| {
        let (a, b) = (table[a].loc, table[b].loc);
        m[a][b].min(m[b][a]) <= within
    };
    let mut group: Vec<Option<usize>> = vec![None; jobs.len()];
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for start in 0..jobs.len() {
        if group[start].is_some() {
            continue;
        }
        let g = groups.len();
        group[start] = Some(g);
        let mut members = vec![start];
        let mut next = 0;
        while next < members.len() {
            let i = members[next];
            next += 1;
            for k in 0..jobs.len() {
                if group[k].is_none() && close(jobs[i], jobs[k]) {
                    group[k] = Some(g);
                    members.push(k);
                }
            }
        }
        members.sort_unstable();
        groups.push(members.into_iter().map(|k| jobs[k]).collect());
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::super::solve::{job, matrix, model, seed_selectors};
    use super::super::testkit::*;
    use super::super::{Plan, Straight, Visit};
    use super::*;
    use vrp_core::models::problem::VehicleIdDimension;
    use vrp_core::prelude::DefaultRandom;
    use vrp_core::rosomaxa::evolution::TelemetryMode;
    use vrp_core::solver::GreedyPopulation;

    /// A village 45 km north with visits at 23:00 and 03:00; town visits at 21:30, 01:00
    /// (between the village visits) and 06:00 on the first patrol, 23:00 on the second.
    fn night() -> Vec<Visit> {
        vec![
            visit("village-23", near(45.0, 0.0), 5 * H, 5 * H + 30 * MIN),
            visit("village-03", near(45.3, 0.2), 9 * H, 9 * H + 30 * MIN),
            visit("town-01", near(1.0, 1.0), 7 * H, 7 * H + 30 * MIN),
            visit("town-2130", near(-1.0, 1.0), 3 * H + 30 * MIN, 3 * H + 45 * MIN),
            visit("town-06", near(1.0, -1.0), 12 * H, 12 * H + 20 * MIN),
            visit("town-23", near(2.0, 0.0), 5 * H, 5 * H + 30 * MIN),
        ]
    }

    /// vrp-core's solution context for `visits` with the given routes (job indices in order),
    /// and the village-trip operator for it.
    fn seeded(visits: &[Visit], seed: &[Vec<usize>]) -> (VillageTrips, InsertionContext) {
        let patrols: Vec<_> = (0..seed.len()).map(|i| patrol(&format!("p{i}"), 3 * H, 13 * H)).collect();
        let n = patrols.len();
        let table: Vec<TableJob> = visits.iter().enumerate().map(|(i, v)| job(v, 2 * n + i)).collect();
        let m = matrix(&Straight::default(), &patrols, visits).unwrap();
        let tours: Vec<Tour> = (0..n)
            .map(|i| Tour { patrol: i, from_loc: i, from_time: 3 * H, end_loc: n + i, shift_end: 13 * H, jobs: vec![] })
            .collect();
        let which: Vec<usize> = (0..visits.len()).collect();
        let problem = Arc::new(model(&m, &table, &which, &tours).unwrap());
        let environment = Arc::new(Environment { random: Arc::new(DefaultRandom::new_repeatable()), ..Default::default() });
        let trips = VillageTrips::new(&m, &table, &which, &tours, problem.clone(), environment.clone());
        let (order, routes) = seed_selectors(&table, seed);
        let ctx = InsertionHeuristic::default().process(
            InsertionContext::new(problem, environment),
            &order,
            &routes,
            &LegSelection::Exhaustive,
            &BestResultSelector::default(),
        );
        (trips, ctx)
    }

    fn index(job: &Job) -> usize {
        job.dimens().get_job_id().and_then(|s| s.parse().ok()).unwrap()
    }

    /// Job indices per route, by vehicle, and the jobs not on any route.
    fn routes(ctx: &InsertionContext, n: usize) -> (Vec<Vec<usize>>, Vec<usize>) {
        let mut out = vec![Vec::new(); n];
        for r in &ctx.solution.routes {
            let v: usize = r.route().actor.vehicle.dimens.get_vehicle_id().unwrap().parse().unwrap();
            out[v] = r.route().tour.all_activities().filter_map(|a| a.retrieve_job()).map(|j| index(&j)).collect();
        }
        let mut left: Vec<usize> =
            ctx.solution.required.iter().chain(ctx.solution.unassigned.keys()).map(index).collect();
        left.sort();
        (out, left)
    }

    fn actor(ctx: &InsertionContext, vehicle: &str) -> Arc<Actor> {
        let route = ctx.solution.routes.iter().find(|r| r.route().actor.vehicle.dimens.get_vehicle_id().unwrap() == vehicle);
        route.unwrap().route().actor.clone()
    }

    #[test]
    fn ruin_removes_the_whole_village_and_the_chosen_patrols_town_visits_during_the_trip() {
        let visits = night();
        // First patrol: two trips out to the village, a town visit between them.
        let (trips, mut ctx) = seeded(&visits, &[vec![3, 0, 2, 1, 4], vec![5]]);
        assert_eq!(routes(&ctx, 2), (vec![vec![3, 0, 2, 1, 4], vec![5]], vec![]));
        assert_eq!(trips.clusters.len(), 1, "one village");

        let first = actor(&ctx, "0");
        let trip = trips.ruin(&mut ctx, &[0], first.clone());
        // 21:30 is done before the drive out, 06:00 starts after the drive back.
        assert_eq!(routes(&ctx, 2), (vec![vec![3, 4], vec![5]], vec![0, 1, 2]));
        let mut jobs: Vec<usize> = trip.jobs.iter().map(index).collect();
        jobs.sort();
        assert_eq!((jobs, trip.actor), (vec![0, 1], Some(first)));
    }

    #[test]
    fn ruin_onto_another_patrol_clears_its_town_visits_during_the_trip() {
        let (trips, mut ctx) = seeded(&night(), &[vec![3, 0, 2, 1, 4], vec![5]]);
        let second = actor(&ctx, "1");
        trips.ruin(&mut ctx, &[0], second);
        assert_eq!(routes(&ctx, 2), (vec![vec![3, 2, 4], vec![]], vec![0, 1, 5]));
    }

    #[test]
    fn village_trip_move_serves_the_village_in_one_trip_and_keeps_every_visit() {
        let (trips, ctx) = seeded(&night(), &[vec![3, 0, 2, 1, 4], vec![5]]);
        let problem = ctx.problem.clone();
        let population = Box::new(GreedyPopulation::new(problem.goal.clone(), 1, None));
        let refinement = RefinementContext::new(problem, population, TelemetryMode::None, ctx.environment.clone());
        for _ in 0..10 {
            let after = trips.search(&refinement, &ctx);
            let (routes, left) = routes(&after, 2);
            assert!(left.is_empty(), "{left:?}");
            let trip = routes.iter().find(|r| r.contains(&0)).unwrap();
            assert!(trip.windows(2).any(|w| w == [0, 1]), "one trip: {routes:?}");
        }
    }

    #[test]
    fn night_with_two_villages_plans_valid_routes() {
        // Two villages and twenty town visits over three patrols, with the move in the search.
        let mut visits = Vec::new();
        for (v, place) in [near(40.0, -10.0), near(30.0, 25.0)].into_iter().enumerate() {
            for k in 0..3 {
                let t = 5 * H + k * 2 * H + v as i64 * 30 * MIN;
                visits.push(visit(&format!("village{v}-{k}"), place, t, t + 30 * MIN));
            }
        }
        for k in 0..20 {
            let t = 4 * H + k * 20 * MIN;
            let place = near((k % 5) as f64 - 2.0, (k % 3) as f64 - 1.0);
            visits.push(visit(&format!("town{k}"), place, t, t + 30 * MIN));
        }
        let patrols: Vec<_> = (0..3).map(|i| patrol(&format!("p{i}"), 3 * H, 13 * H)).collect();
        let plan: Plan = super::super::plan(&patrols, &visits, &Straight::default(), &budget()).unwrap();
        let problems = plan.check(&patrols, &visits, &Straight::default()).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(plan.unassigned.is_empty(), "{:?}", plan.unassigned);
    }
}
