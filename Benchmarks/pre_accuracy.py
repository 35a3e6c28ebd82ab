#!/usr/bin/env python3
"""Accuracy before and after local training, per assignment strategy (docs/RESULTS.md, "Accuracy
before local training"): runs `flexmoe-server simulate` with the defaults on the four main experiments
(5 seeds, 40 rounds, board mix) and prints, per strategy, the final held-out accuracy of the
downloaded model before local training ("pre") and after it ("post"), and flex's paired differences.

    Benchmarks/pre_accuracy.py [--out pre-out]
Release build first: swift build -c release --scratch-path .build-sim-release --product flexmoe-server
"""
import argparse
import json
import os
import statistics as st
import subprocess

BIN = ".build-sim-release/release/flexmoe-server"
SYNTHETIC = ["--dataset", "synthetic", "--clients", "64", "--experts", "16"]
DIGITS = ["--dataset", "csv:Benchmarks/data/digits-raw.csv", "--clients", "32", "--experts", "8"]
EXPERIMENTS = [("Synthetic, Dirichlet 0.3", SYNTHETIC + ["--split", "dirichlet:0.3"]),
               ("Synthetic, 2 classes", SYNTHETIC + ["--split", "classes:2"]),
               ("digits (raw), Dirichlet 0.3", DIGITS + ["--split", "dirichlet:0.3"]),
               ("digits (raw), 2 classes", DIGITS + ["--split", "classes:2"])]
STRATEGIES = ["flex", "greedy", "random", "fedavg-dense"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="pre-out")
    a = p.parse_args()
    print("| experiment | " + " | ".join(f"{s} pre / post" for s in STRATEGIES) + " | flex − greedy (pre) | flex − random (pre) | flex − dense (pre) |")
    print("|---|" + "---|" * (len(STRATEGIES) + 3))
    for i, (name, flags) in enumerate(EXPERIMENTS):
        d = os.path.join(a.out, str(i))
        if not os.path.exists(os.path.join(d, "summary.json")):
            subprocess.run([BIN, "simulate", *flags, "--capacity", "boards", "--rounds", "40", "--seeds", "1,2,3,4,5",
                            "--strategy", ",".join(STRATEGIES), "--quiet", "--out", d],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        s = json.load(open(os.path.join(d, "summary.json")))["strategies"]
        pre = {k: s[k]["final_pre_training_accuracy"]["values"] for k in STRATEGIES}
        cells = [f"{st.mean(pre[k]):.3f} ± {st.stdev(pre[k]):.3f} / {s[k]['final_accuracy']['mean']:.3f}" for k in STRATEGIES]
        for other in ["greedy", "random", "fedavg-dense"]:
            diffs = [x - y for x, y in zip(pre["flex"], pre[other])]
            cells.append(f"{st.mean(diffs):+.3f} ± {st.stdev(diffs):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
