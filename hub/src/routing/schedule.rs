//! Integer schedules of a route and the two insertions of one visit that need no solver.
//!
//! A [`Tour`] is the part of a patrol's night that may still change: it starts at `from_loc`
//! no earlier than `from_time` (the patrol's start at shift start, or where it will be when its
//! fixed stops are done), serves `jobs` in order and ends at `end_loc` by `shift_end`.
//! Schedules are computed forward: arrive = leave + drive; start = max(arrive, earliest);
//! leave = start + service. A stop is late when start > latest.
//!
//! - [`cheapest_on_time`]: the position adding the least driving with every stop on time and
//!   the patrol back before shift end; for an escalation, the soonest such position (the
//!   promise is a limit, not a target, and capacity kept free now serves the next one).
//!   O(stops) per tour using each stop's latest start.
//! - [`fastest_forced`]: for an urgent visit no patrol can make in time: the position where it
//!   is reached first without making an earlier escalation later than it already is (first
//!   promised, first served: a burst of escalations cannot keep pushing the first one back);
//!   ties go to less lateness caused to planned stops, then less driving.
//!   [`force_in`] then hands the planned stops it made late to other patrols where they fit.

/// A visit as the scheduler sees it: its matrix index and times (s).
#[derive(Debug, Clone, Copy)]
pub(super) struct Job {
    pub loc: usize,
    pub earliest: i64,
    pub latest: i64,
    pub service: i64,
    /// An escalation: someone was promised a visit by `latest`.
    pub urgent: bool,
}

/// The changeable part of one patrol's route.
#[derive(Debug, Clone)]
pub(super) struct Tour {
    /// Index of the patrol in the caller's list.
    pub patrol: usize,
    pub from_loc: usize,
    pub from_time: i64,
    pub end_loc: usize,
    pub shift_end: i64,
    /// Indices into the job table, in visiting order.
    pub jobs: Vec<usize>,
}

/// Times of one stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Timed {
    pub arrival: i64,
    pub start: i64,
    pub departure: i64,
    pub late: i64,
}

/// The schedule of a tour.
#[derive(Debug, Clone)]
pub(super) struct Timing {
    pub stops: Vec<Timed>,
    /// Driving time from `from_loc` through the stops to `end_loc`.
    pub travel: i64,
    pub end_at: i64,
}

pub(super) type Matrix = [Vec<i64>];

impl Tour {
    /// Forward schedule of this tour.
    pub fn timing(&self, table: &[Job], m: &Matrix) -> Timing {
        timing_of(
            self.from_loc,
            self.from_time,
            self.end_loc,
            self.jobs.iter().map(|&j| table[j]),
            m,
        )
    }
}

/// Forward schedule of `jobs` leaving `from_loc` at `from_time`.
pub(super) fn timing_of(
    from_loc: usize,
    from_time: i64,
    end_loc: usize,
    jobs: impl Iterator<Item = Job>,
    m: &Matrix,
) -> Timing {
    let (mut loc, mut t, mut travel) = (from_loc, from_time, 0);
    let mut stops = Vec::new();
    for job in jobs {
        let drive = m[loc][job.loc];
        let arrival = t + drive;
        let start = arrival.max(job.earliest);
        let departure = start + job.service;
        stops.push(Timed { arrival, start, departure, late: (start - job.latest).max(0) });
        travel += drive;
        (loc, t) = (job.loc, departure);
    }
    let drive = m[loc][end_loc];
    Timing { stops, travel: travel + drive, end_at: t + drive }
}

/// Where to put a visit: before `tour.jobs[position]` (or at the end when equal to its len).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Insertion {
    pub tour: usize,
    pub position: usize,
    /// Driving time added (s).
    pub added_travel: i64,
    /// When the new visit would start.
    pub start: i64,
}

/// The on-time insertion of `new` adding least driving over all `tours` (an urgent `new`:
/// starting soonest, then adding least driving), if any. Stops already late stay allowed at
/// their current start but may not be made later.
pub(super) fn cheapest_on_time(
    tours: &[Tour],
    table: &[Job],
    new: Job,
    m: &Matrix,
) -> Option<Insertion> {
    let key = |i: &Insertion| match new.urgent {
        true => (i.start, i.added_travel),
        false => (i.added_travel, i.start),
    };
    let mut best: Option<Insertion> = None;
    for (ti, tour) in tours.iter().enumerate() {
        let timing = tour.timing(table, m);
        if timing.end_at > tour.shift_end {
            continue;
        }
        let latest = latest_starts(tour, table, &timing, m);
        for position in 0..=tour.jobs.len() {
            let (prev_loc, leave) = match position {
                0 => (tour.from_loc, tour.from_time),
                p => (table[tour.jobs[p - 1]].loc, timing.stops[p - 1].departure),
            };
            let start = (leave + m[prev_loc][new.loc]).max(new.earliest);
            if start > new.latest {
                continue;
            }
            let leave_new = start + new.service;
            let (next_loc, fits) = match tour.jobs.get(position).zip(latest.get(position)) {
                Some((&next, &latest_next)) => {
                    let job = table[next];
                    let arrive = leave_new + m[new.loc][job.loc];
                    (job.loc, arrive.max(job.earliest) <= latest_next)
                }
                None => (tour.end_loc, leave_new + m[new.loc][tour.end_loc] <= tour.shift_end),
            };
            if !fits {
                continue;
            }
            let added = m[prev_loc][new.loc] + m[new.loc][next_loc] - m[prev_loc][next_loc];
            let candidate = Insertion { tour: ti, position, added_travel: added, start };
            if best.is_none_or(|b| key(&candidate) < key(&b)) {
                best = Some(candidate);
            }
        }
    }
    best
}

/// For each stop, the latest start that keeps it and every later stop on time (already late
/// stops: not later than now) and the patrol back by shift end.
fn latest_starts(tour: &Tour, table: &[Job], timing: &Timing, m: &Matrix) -> Vec<i64> {
    let mut latest = vec![0; tour.jobs.len()];
    let (mut next_loc, mut next_latest) = (tour.end_loc, tour.shift_end);
    for (i, &j) in tour.jobs.iter().enumerate().rev() {
        let job = table[j];
        let own = job.latest.max(timing.stops[i].start);
        latest[i] = own.min(next_latest - m[job.loc][next_loc] - job.service);
        (next_loc, next_latest) = (job.loc, latest[i]);
    }
    latest
}

/// The insertion of an urgent `new` visit reaching it soonest without adding lateness to the
/// escalations already on the routes (if every position does, the one adding least); among
/// equals, the one making planned stops least late, then running least over shift end, then
/// adding least driving.
/// Tours whose patrol is off duty (`from_time` at or past shift end) are not used.
pub(super) fn fastest_forced(
    tours: &[Tour],
    table: &[Job],
    new: Job,
    m: &Matrix,
) -> Option<Insertion> {
    let mut best: Option<(Insertion, _)> = None;
    for (ti, tour) in tours.iter().enumerate().filter(|(_, t)| t.from_time < t.shift_end) {
        let before = tour.timing(table, m);
        let late_of = |timing: &Timing, skip: Option<usize>, urgent: bool| -> i64 {
            let jobs = tour.jobs.iter().map(|&j| table[j].urgent);
            let others = timing.stops.iter().enumerate().filter(|&(i, _)| Some(i) != skip);
            others.zip(jobs).filter(|(_, u)| *u == urgent).map(|((_, s), _)| s.late).sum()
        };
        let urgent_late_before = late_of(&before, None, true);
        let late_before = late_of(&before, None, false);
        let over_before = (before.end_at - tour.shift_end).max(0);
        for position in 0..=tour.jobs.len() {
            let jobs = tour.jobs[..position]
                .iter()
                .map(|&j| table[j])
                .chain(std::iter::once(new))
                .chain(tour.jobs[position..].iter().map(|&j| table[j]));
            let after = timing_of(tour.from_loc, tour.from_time, tour.end_loc, jobs, m);
            let start = after.stops[position].start;
            let late_urgent = late_of(&after, Some(position), true) - urgent_late_before;
            let late_others = late_of(&after, Some(position), false) - late_before;
            let over = (after.end_at - tour.shift_end).max(0) - over_before;
            let added = after.travel - before.travel;
            let key = (late_urgent, start, late_others, over, added);
            if best.is_none_or(|(_, k)| key < k) {
                best = Some((Insertion { tour: ti, position, added_travel: added, start }, key));
            }
        }
    }
    best.map(|(i, _)| i)
}

/// Puts urgent job `new` in by [`fastest_forced`], then moves the stops it made late (or
/// that keep its patrol out past shift end) to wherever they fit on time, one at a time, the
/// earliest first. A stop that fits nowhere stays, late. Returns false if no patrol is on duty.
pub(super) fn force_in(tours: &mut [Tour], table: &[Job], new: usize, m: &Matrix) -> bool {
    let Some(ins) = fastest_forced(tours, table, table[new], m) else { return false };
    let t = ins.tour;
    tours[t].jobs.insert(ins.position, new);
    let mut tried = std::collections::HashSet::new();
    loop {
        let timing = tours[t].timing(table, m);
        let after = ins.position + 1;
        let late = (after..tours[t].jobs.len()).find(|&i| timing.stops[i].late > 0);
        let over = timing.end_at > tours[t].shift_end && tours[t].jobs.len() > after;
        let Some(i) = late.or(over.then(|| tours[t].jobs.len() - 1)) else { return true };
        let job = tours[t].jobs[i];
        if !tried.insert(job) {
            return true;
        }
        tours[t].jobs.remove(i);
        match cheapest_on_time(tours, table, table[job], m) {
            Some(to) => tours[to.tour].jobs.insert(to.position, job),
            None => {
                tours[t].jobs.insert(i, job);
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four places on a line, 600 s apart: 0 - 1 - 2 - 3.
    fn line() -> Vec<Vec<i64>> {
        (0..4i64).map(|i| (0..4i64).map(|j| (i - j).abs() * 600).collect()).collect()
    }

    fn job(loc: usize, earliest: i64, latest: i64) -> Job {
        Job { loc, earliest, latest, service: 300, urgent: false }
    }

    fn tour(jobs: Vec<usize>) -> Tour {
        Tour { patrol: 0, from_loc: 0, from_time: 0, end_loc: 0, shift_end: 20_000, jobs }
    }

    #[test]
    fn early_arrival_waits_for_the_window_and_lateness_is_measured_from_latest() {
        let table = [job(1, 1000, 1200), job(3, 0, 1500)];
        let t = tour(vec![0, 1]).timing(&table, &line());
        assert_eq!(t.stops[0], Timed { arrival: 600, start: 1000, departure: 1300, late: 0 });
        assert_eq!(t.stops[1], Timed { arrival: 2500, start: 2500, departure: 2800, late: 1000 });
        assert_eq!((t.travel, t.end_at), (3600, 4600));
    }

    #[test]
    fn cheapest_insertion_goes_between_neighbours_on_the_way() {
        let table = [job(1, 0, 10_000), job(3, 0, 10_000)];
        let tours = [tour(vec![0, 1])];
        let ins = cheapest_on_time(&tours, &table, job(2, 0, 10_000), &line()).unwrap();
        assert_eq!((ins.position, ins.added_travel), (1, 0));
    }

    #[test]
    fn cheapest_insertion_refuses_to_push_a_later_stop_out_of_its_window() {
        // Stop at 3 must start by 1900 (0 → 3 is 1800 s); any detour breaks it.
        let table = [job(3, 0, 1900)];
        let tours = [tour(vec![0])];
        let ins = cheapest_on_time(&tours, &table, job(1, 0, 10_000), &line()).unwrap();
        assert_eq!(ins.position, 1, "after the tight stop");
        let tight = job(1, 0, 700);
        assert!(cheapest_on_time(&tours, &table, tight, &line()).is_none());
    }

    #[test]
    fn an_escalation_goes_in_where_it_starts_soonest_a_planned_visit_where_it_costs_least() {
        // A tour 0 → 1 → 3 with wide windows; a new visit at 3 is on the way after 1.
        let table = [job(1, 0, 10_000), job(3, 0, 10_000)];
        let tours = [tour(vec![0, 1])];
        let planned = job(3, 0, 10_000);
        let ins = cheapest_on_time(&tours, &table, planned, &line()).unwrap();
        assert_eq!((ins.position, ins.added_travel, ins.start), (1, 0, 2100));
        // Driving there first costs 2,400 s more but starts 300 s sooner.
        let urgent = Job { urgent: true, ..planned };
        let ins = cheapest_on_time(&tours, &table, urgent, &line()).unwrap();
        assert_eq!((ins.position, ins.added_travel, ins.start), (0, 2400, 1800));
    }

    #[test]
    fn forced_insertion_takes_the_patrol_that_is_there_first() {
        let m = line();
        let table = [job(3, 0, 1900), job(1, 0, 1000)];
        let far = Tour { from_loc: 3, from_time: 0, ..tour(vec![0]) };
        let near = Tour { patrol: 1, from_loc: 0, from_time: 500, ..tour(vec![1]) };
        // Urgent at place 2 with a window already passed.
        let ins = fastest_forced(&[far, near], &table, job(2, 0, 0), &m).unwrap();
        assert_eq!((ins.tour, ins.position, ins.start), (0, 0, 600));
    }

    #[test]
    fn forced_insertion_does_not_push_an_earlier_escalation_back() {
        let m = line();
        // Planned at place 1 by 700; a new urgent visit at place 2, already overdue.
        let planned = job(1, 0, 700);
        let new = job(2, 0, 0);
        let ins = fastest_forced(&[tour(vec![0])], &[planned], new, &m).unwrap();
        assert_eq!((ins.position, ins.start), (0, 1200), "reached first; the planned stop moves");
        // The same stop as an escalation promised earlier keeps its place in front.
        let earlier = Job { urgent: true, ..planned };
        let ins = fastest_forced(&[tour(vec![0])], &[earlier], new, &m).unwrap();
        assert_eq!((ins.position, ins.start), (1, 1500));
    }
}
