#!/usr/bin/env python3
"""Writes scikit-learn's bundled UCI optical digits (load_digits: 1,797 8x8 images, 10 classes,
shipped inside the scikit-learn wheel, no download) as a FlexData CSV: label first, then the 64
pixel values scaled from 0..16 to 0..1, with a header line.

    pip install scikit-learn
    python3 Benchmarks/make_digits_csv.py Benchmarks/data/digits.csv
"""
import sys

from sklearn.datasets import load_digits


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "Benchmarks/data/digits.csv"
    d = load_digits()
    with open(out, "w") as f:
        f.write("label," + ",".join(f"p{i}" for i in range(d.data.shape[1])) + "\n")
        for x, y in zip(d.data, d.target):
            f.write(str(int(y)) + "," + ",".join(f"{v / 16:.4g}" for v in x) + "\n")
    print(f"{out}: {len(d.target)} samples, {d.data.shape[1]} features, {len(set(d.target))} classes")


if __name__ == "__main__":
    main()
