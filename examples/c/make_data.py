#!/usr/bin/env python3
"""Writes data.csv, the data set the C example trains on: 400 rows of five standard-normal
features and a 0/1 label drawn from a logistic model with known weights (fixed seed, standard
library only, so the file is the same on every machine).

    python3 examples/c/make_data.py > examples/c/data.csv
"""

import math
import random

WEIGHTS = (1.5, -2.0, 0.5, 0.0, 1.0)
BIAS = -0.3
ROWS = 400


def main() -> None:
    rng = random.Random(16)
    print("x0,x1,x2,x3,x4,y")
    for _ in range(ROWS):
        x = [rng.gauss(0.0, 1.0) for _ in WEIGHTS]
        logit = BIAS + sum(w * v for w, v in zip(WEIGHTS, x))
        y = 1 if rng.random() < 1.0 / (1.0 + math.exp(-logit)) else 0
        print(",".join(f"{v:.6f}" for v in x) + f",{y}")


if __name__ == "__main__":
    main()
