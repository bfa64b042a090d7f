"""Reference solutions for the night-patrol routing benchmark, with PyVRP.

Reads the instances written by `cargo bench -p vaka-hub --bench routing -- quality`
(`out/instance-N.json`: locations, full integer travel-time matrix in seconds, patrols,
visits), solves each with PyVRP under the same time budget, and compares with our router's
results (`out/ours-N.json`). The matrix is both PyVRP's distance and duration, so both solvers
minimise the same thing: total driving seconds, with visit windows on the start of service and
patrol shifts as hard limits.

    python3 -m venv .venv && .venv/bin/pip install -r bench/routing/requirements.txt
    .venv/bin/python bench/routing/reference.py [--budget-s 30] [--dir bench/routing/out]
"""

import argparse
import json
import math
import pathlib
import time

from pyvrp import Model
from pyvrp.stop import MaxRuntime

# A prize larger than any night's driving: dropping a visit is never worth it unless it
# cannot be served (the same lexicographic goal as ours: fewest unassigned, then travel).
PRIZE = 10_000_000


def build(instance, required):
    m = Model()
    lat0 = instance["locations"][0]["lat"]
    lon0 = instance["locations"][0]["lon"]
    locs = []
    for p in instance["locations"]:
        # Coordinates in metres: PyVRP uses them only for its neighbourhoods.
        x = (p["lon"] - lon0) * 111_200 * math.cos(math.radians(lat0))
        y = (p["lat"] - lat0) * 111_200
        locs.append(m.add_location(x=round(x), y=round(y)))
    depot = m.add_depot(locs[0])
    shifts = {}
    for p in instance["patrols"]:
        shifts[(p["shift_start"], p["shift_end"])] = shifts.get((p["shift_start"], p["shift_end"]), 0) + 1
    for (start, end), count in shifts.items():
        m.add_vehicle_type(
            num_available=count, start_depot=depot, end_depot=depot, tw_early=start, tw_late=end
        )
    for i, v in enumerate(instance["visits"]):
        m.add_client(
            locs[i + 1],
            service_duration=v["service_s"],
            tw_early=v["earliest"],
            tw_late=v["latest"],
            required=required,
            prize=0 if required else PRIZE,
        )
    matrix = instance["matrix"]
    for i, frm in enumerate(locs):
        row = matrix[i]
        for j, to in enumerate(locs):
            m.add_edge(frm, to, distance=row[j], duration=row[j])
    return m


def solve(instance, budget_s, seed):
    started = time.monotonic()
    for required in (True, False):
        model = build(instance, required)
        result = model.solve(stop=MaxRuntime(budget_s), seed=seed, display=False)
        best = result.best
        if best.is_feasible():
            break
    n = len(instance["visits"])
    return {
        "name": instance["name"],
        "travel_s": best.distance(),
        "unassigned": n - best.num_clients(),
        "feasible": best.is_feasible(),
        "all_required": required,
        "seconds": time.monotonic() - started,
        "budget_s": budget_s,
    }


def main():
    here = pathlib.Path(__file__).parent
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=pathlib.Path, default=here / "out")
    ap.add_argument("--budget-s", type=float, default=30)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    rows = []
    files = sorted(args.dir.glob("instance-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    for path in files:
        n = path.stem.split("-")[1]
        instance = json.loads(path.read_text())
        ref = solve(instance, args.budget_s, args.seed)
        (args.dir / f"reference-{n}.json").write_text(json.dumps(ref, indent=2))
        ours_path = args.dir / f"ours-{n}.json"
        ours = json.loads(ours_path.read_text()) if ours_path.exists() else None
        rows.append((instance, ref, ours))

    print("| instance | patrols | travel ours | travel PyVRP | gap | unassigned ours / PyVRP | time ours / PyVRP |")
    print("|---|---|---|---|---|---|---|")
    for instance, ref, ours in rows:
        patrols = len(instance["patrols"])
        if ours is None:
            print(f"| {ref['name']} | {patrols} | – | {ref['travel_s']} s | – | – / {ref['unassigned']} | – |")
            continue
        gap = (ours["travel_s"] - ref["travel_s"]) / ref["travel_s"] * 100
        print(
            f"| {ref['name']} | {patrols} | {ours['travel_s']} s | {ref['travel_s']} s | {gap:+.2f} % "
            f"| {ours['unassigned']} / {ref['unassigned']}{'' if ref['feasible'] else ' (infeasible)'} "
            f"| {ours['seconds']:.1f} s / {ref['seconds']:.1f} s |"
        )


if __name__ == "__main__":
    main()
