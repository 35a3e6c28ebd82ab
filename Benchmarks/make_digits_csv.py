#!/usr/bin/env python3
"""Writes scikit-learn's bundled UCI optical digits (load_digits: 1,797 8x8 images, 10 classes,
shipped inside the scikit-learn wheel, no download) as a FlexData CSV: label first, then the 64
pixel values scaled from 0..16 to 0..1 (or, with --raw, in their raw 0..16 units), with a header line.

    pip install scikit-learn
    python3 Benchmarks/make_digits_csv.py Benchmarks/data/digits.csv
    python3 Benchmarks/make_digits_csv.py --raw Benchmarks/data/digits-raw.csv
    python3 Benchmarks/make_digits_csv.py --pixels Benchmarks/data/digits-255.csv   # 0..255 (x16, capped)
"""
import sys

from sklearn.datasets import load_digits


def main() -> None:
    args = sys.argv[1:]
    raw, pixels = "--raw" in args, "--pixels" in args
    args = [a for a in args if a not in ("--raw", "--pixels")]
    out = args[0] if args else "Benchmarks/data/digits.csv"
    scale = 1 if raw else 1 / 16 if pixels else 16
    d = load_digits()
    with open(out, "w") as f:
        f.write("label," + ",".join(f"p{i}" for i in range(d.data.shape[1])) + "\n")
        for x, y in zip(d.data, d.target):
            f.write(str(int(y)) + "," + ",".join(f"{min(v / scale, 255):.4g}" for v in x) + "\n")
    print(f"{out}: {len(d.target)} samples, {d.data.shape[1]} features, {len(set(d.target))} classes")


if __name__ == "__main__":
    main()
