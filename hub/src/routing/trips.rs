//! "One trip per village": a hard constraint for vrp-core that keeps a patrol's visits to a
//! village (a cluster of far visits) together in its route, with no town visit between them,
//! and a village that one patrol can serve whole on one patrol.
//!
//! Why: on nights with villages 20–60 km out, vrp-core's search settles in its first second
//! on plans where one patrol drives out to a village, back to town for a few visits, and out
//! to the same village again, and cannot leave them (moving a village trip needs several town
//! visits moved at once). A strong solver (PyVRP, `BENCHMARKS.md`) serves each village in one
//! trip and lets the patrol wait out there between visits (waiting is free). With this
//! constraint such split trips are not allowed, so the search explores only plans of the good
//! shape. Two patrols may serve one village (each in one trip of its own) only when no single
//! patrol could serve all its visits on time: otherwise a second patrol is a second round trip
//! of an hour or more, and vrp-core, once it has split a village that way, rarely merges it
//! again.
//!
//! Invariant kept on every route: for each cluster, the stops between the route's first and
//! last visit to it are all far visits (of any cluster: a patrol may tour several villages).
//! vrp-core only changes routes by removing jobs (which keeps the invariant) and by inserting
//! them through the goal's constraints (checked here), so it holds throughout the search.
//! The same holds for "a village kept together is on at most one route".
//!
//! Used only by [`super::plan`]'s runs; escalations ([`super::insert`]) are unconstrained.

use super::schedule::{Job, Matrix, Tour};
use std::sync::Arc;
use vrp_core::construction::heuristics::MoveContext;
use vrp_core::models::common::Location;
use vrp_core::models::problem::Job as VrpJob;
use vrp_core::models::solution::Activity;
use vrp_core::prelude::*;

/// Violation code of this constraint in the solver's answers.
pub(super) const TRIP_CODE: ViolationCode = ViolationCode(2);

/// Far visits this close (driving, s) are in one village. The generated villages are
/// ~1 km across (a few minutes) and mostly 10–45 min apart; two that are closer than this are
/// treated as one.
const VILLAGE_LINK_S: i64 = 10 * 60;

/// Far visits grouped into villages, by matrix location.
#[derive(Debug, Clone)]
pub(super) struct Villages {
    /// The village of each matrix location, `None` for town (and patrol places).
    of: Vec<Option<u32>>,
    /// Per village: whether all its visits must be on one route (see [`Villages::keep_together`]).
    together: Vec<bool>,
    /// Extra weight of an unassigned far visit (see [`Villages::unassigned_weight`]).
    far_extra: Float,
}

impl Villages {
    /// The villages of the far jobs `far` (job table indices), see [`Villages::group`] and
    /// [`Villages::keep_together`].
    pub fn new(m: &Matrix, table: &[Job], far: &[usize], tours: &[Tour]) -> Self {
        let mut villages = Self::group(m, table, far, VILLAGE_LINK_S);
        villages.keep_together(m, table, far, tours);
        villages
    }

    /// Groups the far jobs `far` (job table indices) into villages: two far visits are in the
    /// same village when they are within `link_s` of each other (either way), and villages
    /// are the connected groups of that relation (single linkage).
    fn group(m: &Matrix, table: &[Job], far: &[usize], link_s: i64) -> Self {
        let locs: Vec<usize> = far.iter().map(|&j| table[j].loc).collect();
        let mut root: Vec<usize> = (0..locs.len()).collect();
        fn find(root: &mut [usize], mut i: usize) -> usize {
            while root[i] != i {
                root[i] = root[root[i]];
                i = root[i];
            }
            i
        }
        for a in 0..locs.len() {
            for b in a + 1..locs.len() {
                if m[locs[a]][locs[b]].min(m[locs[b]][locs[a]]) <= link_s {
                    let (ra, rb) = (find(&mut root, a), find(&mut root, b));
                    root[ra] = rb;
                }
            }
        }
        let mut of = vec![None; m.len()];
        let mut ids: Vec<usize> = Vec::new();
        for (i, &loc) in locs.iter().enumerate() {
            let r = find(&mut root, i);
            let id = ids.iter().position(|&x| x == r).unwrap_or_else(|| {
                ids.push(r);
                ids.len() - 1
            });
            of[loc] = Some(id as u32);
        }
        let far_extra = 0.5 / (locs.len() as Float + 1.0);
        Villages {
            of,
            together: vec![false; ids.len()],
            far_extra,
        }
    }

    /// Requires every village that one of `tours` can serve whole (its visits in order of
    /// window start, on time, back by shift end) to be served by one patrol: a second patrol
    /// driving out to the same village costs a round trip of an hour or more. Villages with
    /// more visits than one patrol can do stay free.
    fn keep_together(&mut self, m: &Matrix, table: &[Job], far: &[usize], tours: &[Tour]) {
        for v in 0..self.together.len() {
            let mut jobs: Vec<usize> = far
                .iter()
                .copied()
                .filter(|&j| self.of[table[j].loc] == Some(v as u32))
                .collect();
            if jobs.len() < 2 {
                continue;
            }
            jobs.sort_by_key(|&j| (table[j].earliest, table[j].latest, j));
            self.together[v] = tours.iter().any(|t| {
                let timing = Tour {
                    jobs: jobs.clone(),
                    ..t.clone()
                }
                .timing(table, m);
                timing.stops.iter().all(|s| s.late == 0) && timing.end_at <= t.shift_end
            });
        }
    }

    /// The village of a vrp-core job (`None` for town).
    fn of_job(&self, job: &VrpJob) -> Option<u32> {
        let location = job.as_single()?.places.first()?.location?;
        self.at(location)
    }

    /// The weight of an unassigned job in vrp-core's first objective: 1 per visit, a village
    /// visit a little more, never as much as one more visit (the extra weights of all far
    /// visits together stay under 1). With fewest unassigned first, a run that has to leave
    /// one visit out prefers a town visit, which a later move can fit in easily; a village
    /// visit left out stays out (measured on night-200: once one is out, the rest of the run
    /// rarely serves it again, `BENCHMARKS.md`).
    pub fn unassigned_weight(&self, job: &VrpJob) -> Float {
        1.0 + if self.of_job(job).is_some() {
            self.far_extra
        } else {
            0.0
        }
    }

    fn at(&self, location: Location) -> Option<u32> {
        self.of.get(location).copied().flatten()
    }

    fn of_activity(&self, activity: &Activity) -> Option<u32> {
        activity.job.as_ref()?;
        self.at(activity.place.location)
    }

    /// The vrp-core feature enforcing one trip per village and route.
    pub fn feature(self: &Arc<Self>) -> GenericResult<Feature> {
        FeatureBuilder::default()
            .with_name("one-trip-per-village")
            .with_constraint(OneTripPerVillage {
                villages: self.clone(),
            })
            .build()
    }

    /// Whether putting a stop at `loc` right after position `prev` (0 = the route's start) of
    /// a route whose stops are at `stops` (position `p` of the route is `stops[p - 1]`; `None`
    /// for a non-visit place) keeps the invariant of the module docs.
    fn allows(&self, stops: &[Option<u32>], prev: usize, target: Option<u32>) -> bool {
        let is_far = |p: usize| p >= 1 && stops.get(p - 1).is_some_and(|s| s.is_some());
        match target {
            None => {
                // Inside a village's span both neighbours are far visits.
                if !(is_far(prev) && is_far(prev + 1)) {
                    return true;
                }
                let before: Vec<u32> = stops[..prev].iter().flatten().copied().collect();
                !stops[prev..].iter().flatten().any(|v| before.contains(v))
            }
            Some(v) => {
                let mine = || {
                    stops
                        .iter()
                        .enumerate()
                        .filter(move |(_, s)| **s == Some(v))
                };
                let (Some(lo), Some(hi)) = (mine().next(), mine().next_back()) else {
                    return true;
                };
                // Route positions of the village's first and last visit.
                let (lo, hi) = (lo.0 + 1, hi.0 + 1);
                if prev < lo {
                    (prev + 1..lo).all(is_far)
                } else if prev >= hi {
                    (hi + 1..=prev).all(is_far)
                } else {
                    true
                }
            }
        }
    }
}

struct OneTripPerVillage {
    villages: Arc<Villages>,
}

impl FeatureConstraint for OneTripPerVillage {
    fn evaluate(&self, move_ctx: &MoveContext<'_>) -> Option<ConstraintViolation> {
        let (route_ctx, activity_ctx) = match move_ctx {
            MoveContext::Activity {
                route_ctx,
                activity_ctx,
            } => (route_ctx, activity_ctx),
            MoveContext::Route {
                solution_ctx,
                route_ctx,
                job,
            } => {
                return self.elsewhere(solution_ctx, route_ctx, job).then_some(
                    ConstraintViolation {
                        code: TRIP_CODE,
                        stopped: true,
                    },
                );
            }
        };
        let target = self.villages.of_activity(activity_ctx.target);
        let tour = &route_ctx.route().tour;
        // Quick accept: a town visit next to a town visit or an end of the route.
        let far = |a: Option<&Activity>| a.is_some_and(|a| self.villages.of_activity(a).is_some());
        if target.is_none() && !(far(Some(activity_ctx.prev)) && far(activity_ctx.next)) {
            return None;
        }
        // Positions 1..total-1 are the route's visits (0 is its start, the last its end).
        let stops: Vec<Option<u32>> = (1..tour.total().saturating_sub(1))
            .map(|p| tour.get(p).and_then(|a| self.villages.of_activity(a)))
            .collect();
        if self.villages.allows(&stops, activity_ctx.index, target) {
            None
        } else {
            Some(ConstraintViolation {
                code: TRIP_CODE,
                stopped: false,
            })
        }
    }
}

impl OneTripPerVillage {
    /// Whether `job` is a visit of a village kept together that a route other than `route`
    /// already serves (the job itself aside: it may be on its way between routes).
    fn elsewhere(&self, solution: &SolutionContext, route: &RouteContext, job: &VrpJob) -> bool {
        let (Some(single), Some(v)) = (job.as_single(), self.villages.of_job(job)) else {
            return false;
        };
        if !self
            .villages
            .together
            .get(v as usize)
            .copied()
            .unwrap_or(false)
        {
            return false;
        }
        let actor = &route.route().actor;
        solution
            .routes
            .iter()
            .filter(|r| !Arc::ptr_eq(&r.route().actor, actor))
            .any(|r| {
                r.route().tour.all_activities().any(|a| {
                    a.job.as_ref().is_some_and(|s| !Arc::ptr_eq(s, single))
                        && self.villages.of_activity(a) == Some(v)
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn villages() -> Villages {
        // `allows` looks only at the stops it is given.
        Villages {
            of: vec![],
            together: vec![],
            far_extra: 0.0,
        }
    }

    // Stops: town, village 1, village 1, town.
    const ROUTE: [Option<u32>; 4] = [None, Some(1), Some(1), None];

    #[test]
    fn town_visit_may_not_split_a_village_trip() {
        let v = villages();
        assert!(!v.allows(&ROUTE, 2, None), "between the two village visits");
        assert!(v.allows(&ROUTE, 1, None), "before the trip");
        assert!(v.allows(&ROUTE, 3, None), "after the trip");
        assert!(v.allows(&ROUTE, 0, None), "first");
    }

    #[test]
    fn village_visit_joins_its_trip_but_not_after_a_town_visit() {
        let v = villages();
        assert!(v.allows(&ROUTE, 1, Some(1)), "right before the trip");
        assert!(v.allows(&ROUTE, 3, Some(1)), "right after the trip");
        assert!(
            !v.allows(&ROUTE, 4, Some(1)),
            "after the town visit that follows the trip"
        );
        assert!(
            !v.allows(&ROUTE, 0, Some(1)),
            "before the town visit that precedes it"
        );
        assert!(
            v.allows(&ROUTE, 0, Some(2)),
            "another village: a trip of its own"
        );
    }

    fn tours(n: usize, shift: (i64, i64)) -> Vec<Tour> {
        (0..n)
            .map(|i| Tour {
                patrol: i,
                from_loc: 0,
                from_time: shift.0,
                end_loc: 0,
                shift_end: shift.1,
                jobs: vec![],
            })
            .collect()
    }

    fn job(loc: usize, earliest: i64, latest: i64, service: i64) -> Job {
        Job {
            loc,
            earliest,
            latest,
            service,
            urgent: false,
        }
    }

    #[test]
    fn village_one_patrol_can_serve_is_kept_together_and_an_overbooked_one_is_not() {
        // Base 0; village A (1, 2) 60 min out; village B (3, 4) 50 min out, the other way.
        let h = 3600;
        let m = vec![
            vec![0, h, h, 3000, 3000],
            vec![h, 0, 120, 6000, 6000],
            vec![h, 120, 0, 6000, 6000],
            vec![3000, 6000, 6000, 0, 60],
            vec![3000, 6000, 6000, 60, 0],
        ];
        let table = [
            // A: 23:00 and 03:00, 15 min each: one patrol can wait out there.
            job(1, 5 * h, 5 * h + 900, 900),
            job(2, 9 * h, 9 * h + 900, 900),
            // B: two 1 h visits that must both start between 01:00 and 01:15.
            job(3, 7 * h, 7 * h + 900, h),
            job(4, 7 * h, 7 * h + 900, h),
        ];
        let far = [0, 1, 2, 3];
        let v = Villages::new(&m, &table, &far, &tours(2, (3 * h, 13 * h)));
        assert_eq!(v.at(1), v.at(2));
        assert_eq!(v.at(3), v.at(4));
        assert_ne!(v.at(1), v.at(3));
        let together = |loc| v.together[v.at(loc).unwrap() as usize];
        assert!(together(1));
        assert!(!together(3), "one patrol cannot start both visits in time");
        assert_eq!(v.at(0), None, "the base is not in a village");
    }

    #[test]
    fn a_tour_of_several_villages_is_one_trip() {
        let v = villages();
        // village 1, village 2, village 1: a town visit fits in neither gap.
        let route = [Some(1), Some(2), Some(1)];
        assert!(!v.allows(&route, 1, None));
        assert!(!v.allows(&route, 2, None));
        assert!(v.allows(&route, 3, None));
        // A third village may be toured in between.
        assert!(v.allows(&route, 1, Some(3)));
    }
}
