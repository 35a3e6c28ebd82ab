#!/usr/bin/env python3
"""Exact optimum and LP bound of assignment instances (CLI JSON format) with SciPy's milp (HiGHS).

Benchmark reference only, never a runtime dependency:
    flexmoe-bench assign --write-instances /tmp/inst ...
    python3 Benchmarks/assign_milp.py /tmp/inst/*.json --time-limit 120 > /tmp/optima.json
    flexmoe-bench assign --optima /tmp/optima.json ...
Prints {"<file stem>": {"optimum": x (only if proved), "lp": y, "seconds": t}}.
"""
import json, os, sys, time
import numpy as np
from scipy.optimize import milp, LinearConstraint, Bounds
from scipy.sparse import lil_matrix

def solve(inst, time_limit):
    C, E = inst["clients"], inst["experts"]
    q = np.asarray(inst["fitness"], dtype=float).reshape(C * E)
    k = np.asarray(inst["capacity"], dtype=float)
    d = np.asarray(inst["dataSize"], dtype=float)
    A = lil_matrix((C + E, C * E))
    for c in range(C):
        A[c, c * E:(c + 1) * E] = 1
        for e in range(E):
            A[C + e, c * E + e] = d[c]
    lo = np.concatenate([k, np.asarray(inst["lower"], dtype=float)])
    hi = np.concatenate([k, np.asarray(inst["upper"], dtype=float)])
    cons = LinearConstraint(A.tocsr(), lo, hi)
    out = {}
    t = time.time()
    lp = milp(-q, constraints=cons, bounds=Bounds(0, 1), integrality=np.zeros(C * E))
    if lp.status == 0:
        out["lp"] = -lp.fun
    r = milp(-q, constraints=cons, bounds=Bounds(0, 1), integrality=np.ones(C * E),
             options={"time_limit": time_limit, "mip_rel_gap": 1e-9})
    if r.status == 0:
        out["optimum"] = -r.fun
    elif r.x is not None:
        out["incumbent"] = -r.fun
    out["seconds"] = time.time() - t
    return out

if __name__ == "__main__":
    args = sys.argv[1:]
    limit = 60.0
    if "--time-limit" in args:
        i = args.index("--time-limit"); limit = float(args[i + 1]); del args[i:i + 2]
    res = {}
    for path in args:
        with open(path) as f:
            res[os.path.splitext(os.path.basename(path))[0]] = solve(json.load(f), limit)
        print(path, res[os.path.splitext(os.path.basename(path))[0]], file=sys.stderr)
    print(json.dumps(res))
