#!/usr/bin/env python3
"""Sweeps local-training settings with `flexmoe-server simulate` and prints a markdown table:
for each dataset and setting, final test accuracy (mean ± std over the seeds) per strategy, and the
paired difference (same seeds) against the first setting, the current defaults.

    Benchmarks/sweep.py [--stage lr|epochs] [--seeds 1,2,3,4,5] [--rounds 30] [--out sweep-out]

Every row comes from a simulate run whose summary.json is kept under --out. Release build first:
    swift build -c release --scratch-path .build-sim-release --product flexmoe-server
The digits CSVs: python3 Benchmarks/make_digits_csv.py --raw Benchmarks/data/digits-raw.csv
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

BIN = os.environ.get("FLEXMOE_SERVER", ".build-sim-release/release/flexmoe-server")

SYNTHETIC = ["--dataset", "synthetic", "--clients", "64", "--experts", "16"]
DIGITS_RAW = ["--dataset", "csv:Benchmarks/data/digits-raw.csv", "--clients", "32", "--experts", "8"]
DATASETS = {
    "synthetic": SYNTHETIC + ["--split", "dirichlet:0.3"],
    "digits-raw": DIGITS_RAW + ["--split", "dirichlet:0.3"],
    "synthetic-classes2": SYNTHETIC + ["--split", "classes:2"],
    "digits-raw-classes2": DIGITS_RAW + ["--split", "classes:2"],
    "digits-01": ["--dataset", "csv:Benchmarks/data/digits.csv", "--clients", "32", "--experts", "8", "--split", "dirichlet:0.3"],
    "digits-255": ["--dataset", "csv:Benchmarks/data/digits-255.csv", "--clients", "32", "--experts", "8",
                   "--split", "dirichlet:0.3"],
}

OLD_DEFAULT = ["--learning-rate", "0.02", "--momentum", "0.5", "--local-epochs", "1", "--gradient-clip", "2"]

STAGES = {
    # name -> flags; the first is the baseline of the paired differences (today's defaults).
    # Every row names its settings in full, so a change of the defaults does not change the rows; the
    # baseline is the previous default (lr 0.02, momentum 0.5, 1 local epoch, clip 2).
    "lr": [("lr 0.02 m 0.5 (default)", OLD_DEFAULT)]
    + [(f"lr {lr} m {m}", ["--learning-rate", str(lr), "--momentum", str(m), "--local-epochs", "1", "--gradient-clip", "2"])
       for lr in [0.02, 0.05, 0.1, 0.2] for m in [0.0, 0.5, 0.9] if not (lr == 0.02 and m == 0.5)],
    # After the lr stage: the learning rates at and beyond its edge, with 1 or 2 local epochs, and
    # the gradient clip (2, the default, or off).
    "epochs": [("lr 0.02 m 0.5 e 1 (default)", OLD_DEFAULT)]
    + [(f"lr {lr} m {m} e {e}", ["--learning-rate", str(lr), "--momentum", str(m), "--local-epochs", str(e), "--gradient-clip", "2"])
       for lr in [0.1, 0.2, 0.4] for m in [0.5, 0.9] for e in [1, 2]]
    + [(f"lr {lr} m 0.9 e 1 clip 0", ["--learning-rate", str(lr), "--momentum", "0.9", "--local-epochs", "1", "--gradient-clip", "0"])
       for lr in [0.1, 0.2]],
    # The rows below run with the current defaults (lr 0.2, momentum 0.5, 2 local epochs, clip 2).
    # Federated standardisation on or off (run with --datasets digits-01,digits-raw,digits-255).
    "standardize": [("standardised (default)", []), ("not standardised", ["--no-standardize-inputs"])],
    # Ablation: an exploration term for never-measured pairs (run with --metric pre).
    "exploration": [("no exploration bonus (default)", [])]
    + [(f"exploration bonus {b}", ["--exploration-bonus", str(b)]) for b in [0.05, 0.2, 1.0]],
    # Ablation: how the device's own gate starts (run with --metric pre).
    "gate": [("gate random (default)", []), ("gate zero", ["--gate-init", "zero"])],
    # Ablation: when devices measure fitness (issue #12); run with --strategies flex,greedy,random.
    "fitness": [("fitness during training (default)", []), ("fitness before training", ["--fitness-timing", "before"])],
    # Ablation: an always-on shared expert (expert 0 in every device's model, beside the routed ones);
    # run with --strategies flex,greedy,random,fedavg-dense-matched (dense ignores the flag: a reference).
    "shared": [("routed experts only (default)", []), ("shared expert", ["--shared-expert"])],
    # Robust aggregation (issue #13): what the weight cap and the norm bounds cost honest devices.
    "robust": [("weight cap 4, norm bound 3 (default)", []), ("no weight cap, training bound only", ["--weight-cap", "0", "--norm-bound", "0"])],
    # Ablation: probing cached but unassigned experts forward-only (run with --metric pre and post).
    "probe": [("no probes (default)", []), ("probe cached experts", ["--probe-warm"]),
              ("2 warm slots, no probes", ["--warm-slots", "2"]), ("2 warm slots + probes", ["--warm-slots", "2", "--probe-warm"])],
}


def run(out, dataset, name, flags, seeds, rounds, strategies):
    d = os.path.join(out, dataset, name.replace(" ", "_").replace("(", "").replace(")", ""))
    summary = os.path.join(d, "summary.json")
    if not os.path.exists(summary):
        cmd = [BIN, "simulate", *DATASETS[dataset], "--capacity", "boards", "--rounds", str(rounds), "--seeds", seeds,
               "--strategy", strategies, "--quiet", "--out", d, *flags]
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:  # e.g. a diverged device's NaN update, refused by the server's checks
            return r.stderr.strip().splitlines()[-1]
    s = json.load(open(summary))
    key = "final_pre_training_accuracy" if METRIC[0] == "pre" else "final_accuracy"
    return {k: v[key]["values"] for k, v in s["strategies"].items()}


METRIC = ["post"]


def fmt(values):
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stage", default="lr", choices=sorted(STAGES))
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--strategies", default="flex,fedavg-dense")
    p.add_argument("--datasets", default="synthetic,digits-raw")
    p.add_argument("--metric", default="post", choices=["post", "pre"],
                   help="post: held-out accuracy after local training; pre: of the downloaded model, before it")
    p.add_argument("--extra", default="", help="flags added to every run, e.g. \"--learning-rate 0.1\"")
    p.add_argument("--out", default="sweep-out")
    a = p.parse_args()
    METRIC[0] = a.metric
    strategies = a.strategies.split(",")
    for dataset in a.datasets.split(","):
        print(f"\n### {dataset}: {' '.join(DATASETS[dataset])}, boards, {a.rounds} rounds, seeds {a.seeds}\n")
        print(f"metric: {'accuracy of the downloaded model before local training' if a.metric == 'pre' else 'accuracy after local training'}\n")
        print("| setting | " + " | ".join(f"{s} final acc | Δ {s} vs default (paired)" for s in strategies) + " |")
        print("|---|" + "---|---|" * len(strategies))
        base = None
        for name, flags in STAGES[a.stage]:
            r = run(a.out, dataset, name, flags + a.extra.split(), a.seeds, a.rounds, a.strategies)
            if isinstance(r, str):
                print(f"| {name} | failed: {r} |" + " |" * (2 * len(strategies) - 1), flush=True)
                continue
            base = base or r
            cells = []
            for s in strategies:
                diffs = [x - y for x, y in zip(r[s], base[s])]
                cells += [fmt(r[s]), "—" if r is base else f"{statistics.mean(diffs):+.3f} ± {statistics.stdev(diffs):.3f}"]
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
