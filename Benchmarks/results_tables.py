#!/usr/bin/env python3
"""Prints the main tables of docs/RESULTS.md from the summary.json files that Benchmarks/run_results.sh
writes (one directory per experiment), so every number in them comes from one committed script:

  1. per experiment, per strategy: final accuracy after local training ("post") and of the downloaded
     model before it ("pre"), rounds to target, mean load CV, bytes per device per round;
  2. flex's paired differences (same seeds) against every other strategy, pre and post, with the
     issue #12 targets marked.

    Benchmarks/results_tables.py [OUT_DIR]        (default: results-out)
"""
import json
import os
import statistics as st
import sys

EXPERIMENTS = [
    ("synthetic-dirichlet", "Synthetic(1,1), Dirichlet 0.3 — 64 devices, E = 16"),
    ("synthetic-dirichlet01", "Synthetic(1,1), Dirichlet 0.1 — 64 devices, E = 16"),
    ("synthetic-classes2", "Synthetic(1,1), 2 classes per device — 64 devices, E = 16"),
    ("digits-dirichlet", "UCI digits (raw 0..16), Dirichlet 0.3 — 32 devices, E = 8"),
    ("digits-dirichlet01", "UCI digits (raw 0..16), Dirichlet 0.1 — 32 devices, E = 8"),
    ("digits-classes2", "UCI digits (raw 0..16), 2 classes per device — 32 devices, E = 8"),
]
STRATEGIES = ["flex", "greedy", "random", "fedavg-dense", "fedavg-dense-matched"]


def ms(values, digits=3):
    if len(values) < 2:
        return f"{values[0]:.{digits}f}"
    return f"{st.mean(values):.{digits}f} ± {st.stdev(values):.{digits}f}"


def paired(a, b):
    d = [x - y for x, y in zip(a, b)]
    return st.mean(d), (st.stdev(d) if len(d) > 1 else 0.0)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "results-out"
    found = [(name, title, json.load(open(os.path.join(out, name, "summary.json"))))
             for name, title in EXPERIMENTS if os.path.exists(os.path.join(out, name, "summary.json"))]
    if not found:
        sys.exit(f"no summary.json under {out}/ (run Benchmarks/run_results.sh first)")
    for name, title, s in found:
        st_ = s["strategies"]
        print(f"\n### {title} (target {s['target_accuracy']:.2f})\n")
        print(f"    {s.get('command', '')}\n")
        print("| strategy | accuracy after local training | accuracy before local training | rounds to target "
              "| mean load CV | KiB/device/round (up + down) |")
        print("|---|---|---|---|---|---|")
        for k in STRATEGIES:
            if k not in st_:
                continue
            x = st_[k]
            r = x["rounds_to_target"]
            reached = x.get("reached_target", len(s["seeds"]))
            rounds = "never" if not r["values"] else ms(r["values"], 1) + ("" if reached == len(s["seeds"]) else f" ({reached}/{len(s['seeds'])} seeds)")
            dense = k.startswith("fedavg")
            cv = "— (one model)" if dense else ms(x["mean_cv"]["values"], 4)
            b, up, down = (x[f"bytes{p}_per_round"]["mean"] / 1024 for p in ["", "_up", "_down"])
            print(f"| {k} | {ms(x['final_accuracy']['values'])} | {ms(x['final_pre_training_accuracy']['values'])} "
                  f"| {rounds} | {cv} | {b:.1f} ({up:.1f} + {down:.1f}) |")

    print("\n### flex against each baseline: paired differences (same seeds), points of accuracy\n")
    print("Targets of issue #12: flex ≥ greedy + 2 and ≥ random + 2; flex ≥ dense FedAvg at the same memory "
          "(fedavg-dense-matched). ✓ marks a target met by the mean.\n")
    print("| experiment | metric | flex − greedy | flex − random | flex − fedavg-dense | flex − fedavg-dense-matched |")
    print("|---|---|---|---|---|---|")
    for name, title, s in found:
        st_ = s["strategies"]
        for metric, key in [("after local training", "final_accuracy"), ("before local training", "final_pre_training_accuracy")]:
            cells = []
            f = st_["flex"][key]["values"]
            for k, need in [("greedy", 0.02), ("random", 0.02), ("fedavg-dense", None), ("fedavg-dense-matched", 0.0)]:
                if k not in st_:
                    cells.append("—")
                    continue
                m, sd = paired(f, st_[k][key]["values"])
                mark = " ✓" if need is not None and m >= need else ""
                cells.append(f"{100 * m:+.1f} ± {100 * sd:.1f}{mark}")
            print(f"| {name} | {metric} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
