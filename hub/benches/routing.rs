//! Night-patrol routing benchmark (`hub::routing`), two parts:
//!
//! - `quality`: seeded night-patrol instances (50, 100, 200, 300 visits) around Skellefteå,
//!   each written to `<dir>/instance-N.json` with its full integer travel-time matrix, then
//!   solved by our router with the same matrix; results to `<dir>/ours-N.json`. The PyVRP
//!   reference (`bench/routing/reference.py`) reads the same files.
//! - `scale`: 1,000 visits over 50 patrols planned within 10 s, then escalations inserted into
//!   the running routes (goal ≤ 200 ms each), every resulting plan checked valid.
//!
//! ```sh
//! cargo bench -p vaka-hub --bench routing -- quality [--budget-s 30] [--restarts 3] [--dir bench/routing/out]
//! cargo bench -p vaka-hub --bench routing -- scale
//! cargo bench -p vaka-hub --bench routing -- repeat 200 5 [--budget-s 30] [--restarts 3]
//! ```

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vaka_hub::routing::{
    insert, plan, Budget, Patrol, Place, Plan, RoutingError, Straight, TravelTimes, Visit,
};

const H: i64 = 3600;
const MIN: i64 = 60;
/// Night origin is 18:00; the shift is 21:00–07:00.
const SHIFT: (i64, i64) = (3 * H, 13 * H);
const BASE: Place = Place { lat: 64.7507, lon: 20.9528 };

/// An instance as written for both solvers: location 0 is the base.
#[derive(Serialize, Deserialize)]
struct Instance {
    name: String,
    seed: u64,
    locations: Vec<Place>,
    /// Seconds, `matrix[from][to]`, straight line × 1.3 at 60 km/h, rounded.
    matrix: Vec<Vec<i64>>,
    patrols: Vec<Patrol>,
    visits: Vec<Visit>,
}

#[derive(Serialize)]
struct Result {
    name: String,
    visits: usize,
    patrols: usize,
    travel_s: i64,
    unassigned: usize,
    late: usize,
    seconds: f64,
    budget_s: u64,
    restarts: u32,
}

/// Travel times read from the instance's matrix, by exact location.
struct Table<'a> {
    index: HashMap<(u64, u64), usize>,
    matrix: &'a [Vec<i64>],
}

impl<'a> Table<'a> {
    fn new(instance: &'a Instance) -> Self {
        let key = |p: &Place| (p.lat.to_bits(), p.lon.to_bits());
        let index = instance.locations.iter().enumerate().map(|(i, p)| (key(p), i)).collect();
        Table { index, matrix: &instance.matrix }
    }
}

impl TravelTimes for Table<'_> {
    fn matrix(&self, places: &[Place]) -> std::result::Result<Vec<Vec<i64>>, RoutingError> {
        let idx = places
            .iter()
            .map(|p| {
                self.index.get(&(p.lat.to_bits(), p.lon.to_bits())).copied().ok_or(
                    RoutingError::PlaceNotInMatrix { lat: p.lat, lon: p.lon, nearest_m: f64::NAN },
                )
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(idx.iter().map(|&i| idx.iter().map(|&j| self.matrix[i][j]).collect()).collect())
    }
}

/// A place `km` away from `from` on `bearing_deg` (flat-earth, fine at this scale).
fn offset(from: Place, km_north: f64, km_east: f64) -> Place {
    let lat = from.lat + km_north / 111.2;
    let lon = from.lon + km_east / (111.2 * from.lat.to_radians().cos());
    Place { lat, lon }
}

fn gauss(rng: &mut StdRng, sigma: f64) -> f64 {
    // Box–Muller; rand's normal distribution lives in another crate.
    let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
    sigma * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// A night: 92 % of visits in six town neighbourhoods (within 4 km of the base), 8 % in ten
/// villages 20–60 km out (inland: west and north); agreed times 21:30–06:30 with ±15 min
/// windows, three in ten a wide ±2 h window; 5–15 min service; patrols from the base. Windows
/// are clipped so that each visit alone fits in the shift (no village visit at 21:30).
fn generate(n: usize, patrols: usize, seed: u64) -> Instance {
    let mut rng = StdRng::seed_from_u64(seed);
    let hoods: Vec<Place> = (0..6)
        .map(|_| offset(BASE, rng.random_range(-4.0..4.0), rng.random_range(-4.0..4.0)))
        .collect();
    let villages: Vec<Place> = (0..10)
        .map(|_| {
            let (km, bearing) = (rng.random_range(20.0..60.0), rng.random_range(190.0f64..420.0));
            let b = bearing.to_radians();
            offset(BASE, km * b.cos(), km * b.sin())
        })
        .collect();
    let visits: Vec<Visit> = (0..n)
        .map(|i| {
            let place = if rng.random_bool(0.92) {
                let c = hoods[rng.random_range(0..hoods.len())];
                offset(c, gauss(&mut rng, 0.6), gauss(&mut rng, 0.6))
            } else {
                let c = villages[rng.random_range(0..villages.len())];
                offset(c, gauss(&mut rng, 0.5), gauss(&mut rng, 0.5))
            };
            let agreed = 3 * H + 30 * MIN + rng.random_range(0..=108) * 5 * MIN;
            let half = if rng.random_bool(0.3) { 120 * MIN } else { 15 * MIN };
            let service_s = rng.random_range(5..=15) * MIN;
            // Every visit alone is feasible: a village visit is not agreed for 21:30.
            let drive = Straight::default().seconds(BASE, place);
            let agreed = agreed.max(SHIFT.0 + drive).min(SHIFT.1 - drive - service_s);
            Visit {
                id: format!("v{i}"),
                place,
                earliest: (agreed - half).max(SHIFT.0),
                latest: (agreed + half).min(SHIFT.1 - drive - service_s),
                service_s,
                urgent: false,
            }
        })
        .collect();
    let patrols = (0..patrols)
        .map(|i| Patrol {
            id: format!("p{i}"),
            start: BASE,
            end: BASE,
            shift_start: SHIFT.0,
            shift_end: SHIFT.1,
        })
        .collect();
    let locations: Vec<Place> =
        std::iter::once(BASE).chain(visits.iter().map(|v| v.place)).collect();
    let matrix = Straight::default().matrix(&locations).unwrap_or_default();
    Instance { name: format!("night-{n}"), seed, locations, matrix, patrols, visits }
}

fn quality(dir: PathBuf, budget_s: u64, restarts: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(&dir)?;
    println!("| instance | patrols | travel (ours) | unassigned | late | time |");
    println!("|---|---|---|---|---|---|");
    for (n, patrols) in [(50, 3), (100, 4), (200, 7), (300, 8)] {
        let instance = generate(n, patrols, 20261123 + n as u64);
        std::fs::write(dir.join(format!("instance-{n}.json")), serde_json::to_vec(&instance)?)?;
        let budget = Budget { time: Duration::from_secs(budget_s), generations: None, restarts };
        let started = Instant::now();
        let plan = plan(&instance.patrols, &instance.visits, &Table::new(&instance), &budget)
            .map_err(std::io::Error::other)?;
        let seconds = started.elapsed().as_secs_f64();
        assert_valid(&plan, &instance, &Table::new(&instance));
        let result = Result {
            name: instance.name.clone(),
            visits: n,
            patrols,
            travel_s: plan.travel_s(),
            unassigned: plan.unassigned.len(),
            late: plan.late_stops().count(),
            seconds,
            budget_s,
            restarts,
        };
        std::fs::write(dir.join(format!("ours-{n}.json")), serde_json::to_vec_pretty(&result)?)?;
        std::fs::write(dir.join(format!("ours-{n}-plan.json")), serde_json::to_vec(&plan)?)?;
        println!(
            "| {} | {patrols} | {} s | {} | {} | {seconds:.1} s |",
            instance.name, result.travel_s, result.unassigned, result.late
        );
    }
    Ok(())
}

fn assert_valid(plan: &Plan, instance: &Instance, travel: &dyn TravelTimes) {
    let problems = plan.check(&instance.patrols, &instance.visits, travel);
    match problems {
        Ok(p) if p.is_empty() => {}
        other => panic!("invalid plan for {}: {other:?}", instance.name),
    }
}

fn scale(budget_s: u64) -> std::io::Result<()> {
    // The instance's matrix is the straight-line one; here the router computes it itself, as
    // the hub will (its time is part of the figures).
    let instance = generate(1000, 50, 1000);
    let table = Straight::default();
    let started = Instant::now();
    let budget = Budget { time: Duration::from_secs(budget_s), generations: None, restarts: 1 };
    let night = plan(&instance.patrols, &instance.visits, &table, &budget)
        .map_err(std::io::Error::other)?;
    let planned_in = started.elapsed().as_secs_f64();
    assert_valid(&night, &instance, &table);
    println!(
        "plan: 1000 visits, 50 patrols: {planned_in:.2} s, travel {} s, unassigned {}, used patrols {}",
        night.travel_s(),
        night.unassigned.len(),
        night.routes.iter().filter(|r| !r.stops.is_empty()).count()
    );

    // Escalations at 20 moments of the night; half in town, half in villages (some of
    // those cannot be reached in 45 min and are forced in late).
    let mut rng = StdRng::seed_from_u64(7);
    let mut times = Vec::new();
    let insert_budget = Budget { time: Duration::from_millis(150), generations: None, restarts: 1 };
    for k in 0..20 {
        let now = SHIFT.0 + H + k * 20 * MIN;
        let place = if k % 2 == 0 {
            offset(BASE, rng.random_range(-4.0..4.0), rng.random_range(-4.0..4.0))
        } else {
            instance.visits[rng.random_range(0..instance.visits.len())].place
        };
        let visit = Visit {
            id: format!("esc{k}"),
            place,
            earliest: now,
            latest: now + 45 * MIN,
            service_s: 15 * MIN,
            urgent: true,
        };
        let started = Instant::now();
        let after = insert(
            &night,
            now,
            visit.clone(),
            &instance.patrols,
            &instance.visits,
            &Straight::default(),
            &insert_budget,
        )
        .map_err(std::io::Error::other)?;
        let took = started.elapsed().as_secs_f64() * 1000.0;
        let all: Vec<Visit> = instance.visits.iter().cloned().chain([visit]).collect();
        let problems = after.check(&instance.patrols, &all, &Straight::default());
        let problems = problems.map_err(std::io::Error::other)?;
        assert!(problems.is_empty(), "insert {k} gave an invalid plan: {problems:?}");
        let stop = after.find(&format!("esc{k}")).map(|(_, s)| s.clone());
        let late = stop.as_ref().map_or(-1, |s| s.late_s);
        println!("insert esc{k} at {now}: {took:.1} ms, late {late} s");
        times.push(took);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "insert: median {:.1} ms, max {:.1} ms over {} escalations",
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    );
    Ok(())
}

/// The N-visit quality instance with its patrol count, as `sweep` and `repeat` solve it.
fn quality_instance(n: usize) -> Instance {
    let patrols = match n {
        0..=50 => 3,
        51..=100 => 4,
        101..=200 => 7,
        _ => 8,
    };
    generate(n, patrols, 20261123 + n as u64)
}

/// `sweep N s1 s2 ..`: the N-visit quality instance solved twice at each budget, to see
/// how results vary between runs and improve with time.
fn sweep(args: &[String]) -> std::io::Result<()> {
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200);
    let instance = quality_instance(n);
    for secs in args[1..].iter().filter_map(|a| a.parse::<u64>().ok()) {
        for run in 0..2 {
            let budget = Budget { time: Duration::from_secs(secs), generations: None, restarts: 1 };
            let plan = plan(&instance.patrols, &instance.visits, &Table::new(&instance), &budget)
                .map_err(std::io::Error::other)?;
            let travel = plan.travel_s();
            println!(
                "{n} visits, {secs} s, run {run}: travel {travel} s, unassigned {}",
                plan.unassigned.len()
            );
        }
    }
    Ok(())
}

/// PyVRP's travel on the quality instances (`bench/routing/reference.py`, 2026-11-23 16:00 UTC).
fn pyvrp_travel(n: usize) -> Option<i64> {
    match n {
        50 => Some(19_924),
        100 => Some(28_288),
        200 => Some(51_570),
        300 => Some(63_188),
        _ => None,
    }
}

/// `repeat N RUNS`: the N-visit quality instance planned RUNS times with the quality budget
/// (`--budget-s`, `--restarts`), each run's travel and gap to PyVRP printed.
fn repeat(args: &[String], budget_s: u64, restarts: u32) -> std::io::Result<()> {
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let instance = quality_instance(n);
    for run in 0..runs {
        let budget = Budget { time: Duration::from_secs(budget_s), generations: None, restarts };
        let started = Instant::now();
        let plan = plan(&instance.patrols, &instance.visits, &Table::new(&instance), &budget)
            .map_err(std::io::Error::other)?;
        let seconds = started.elapsed().as_secs_f64();
        assert_valid(&plan, &instance, &Table::new(&instance));
        let travel = plan.travel_s();
        if let Ok(dir) = std::env::var("VAKA_DUMP") {
            std::fs::write(format!("{dir}/plan-{n}-{run}.json"), serde_json::to_vec(&plan)?)?;
        }
        let gap = pyvrp_travel(n).map_or(f64::NAN, |p| 100.0 * (travel - p) as f64 / p as f64);
        println!(
            "{n} visits, run {run}: travel {travel} s ({gap:+.2} % vs PyVRP), unassigned {}, {seconds:.1} s",
            plan.unassigned.len()
        );
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let budget_s = value("--budget-s").and_then(|s| s.parse().ok());
    match args.first().map(String::as_str) {
        Some("quality") => {
            // `cargo bench` runs in the package folder (hub/).
            let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/routing/out");
            let dir = value("--dir").map_or(default, PathBuf::from);
            let restarts = value("--restarts").and_then(|s| s.parse().ok()).unwrap_or(3);
            quality(dir, budget_s.unwrap_or(30), restarts)
        }
        Some("scale") => scale(budget_s.unwrap_or(9)),
        Some("sweep") => sweep(&args[1..]),
        Some("repeat") => {
            let restarts = value("--restarts").and_then(|s| s.parse().ok()).unwrap_or(3);
            repeat(&args[1..], budget_s.unwrap_or(30), restarts)
        }
        _ => {
            eprintln!("usage: routing quality [--budget-s 30] [--restarts 3] [--dir DIR] | scale [--budget-s 9] | sweep N SECS.. | repeat N RUNS [--budget-s 30] [--restarts 3]");
            Ok(())
        }
    }
}
