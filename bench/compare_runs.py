"""Two runs of the same benchmark side by side, paired over their shared (fold, seed, fraction) runs.

    python bench/compare_runs.py ravdess4-tiny-frozen-gan_steps_800,ravdess4-tiny-s1-frozen-gan_steps_800 \
        ravdess4-tiny-frozen-gan_steps_400,ravdess4-tiny-s1-frozen-gan_steps_400

Each argument is one or more run records (``bench/results/run_records/<name>.json``, left by
``bench/augmentation.py``; commas pool seeds), optionally ``:METHOD`` for the method to compare
(default ``mirgan``; e.g. ``emodb4-tiny3-frozen:mixup``). The pairing is valid only if both ran on the same
features, so the script first checks that their ``none`` runs agree exactly and stops if not. Per
fraction it prints each run's method UA, its gain over ``none`` and B − A (Wilcoxon p). Realism
per cell is in the augmentation tables (the run records keep only UA/WA/F1).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

RECORDS = Path(__file__).resolve().parent / "results" / "run_records"


def runs(names: str, method: str) -> dict:
    out = {}
    for name in names.split(","):
        for run in json.loads((RECORDS / f"{name}.json").read_text())["methods"][method]["per_fold"]:
            out[(run["fold"], run["seed"], run["fraction"])] = run
    return out


def paired(b: list[float], a: list[float]) -> str:
    d = np.subtract(b, a)
    p = wilcoxon(d).pvalue if np.any(d != 0) else 1.0
    return f"{100 * d.mean():+.1f} (p {p:.3f})"


def main():
    (a, _, method_a), (b, _, method_b) = (arg.partition(":") for arg in sys.argv[1:3])
    none_a, none_b = runs(a, "none"), runs(b, "none")
    shared = sorted(set(none_a) & set(none_b))
    differ = max(abs(none_a[k]["ua"] - none_b[k]["ua"]) for k in shared)
    if differ > 0:
        sys.exit(f"the two runs' `none` UA differ by up to {differ:.4f}: not the same features, no pairing")
    method_a, method_b = method_a or "mirgan", method_b or "mirgan"
    gen_a, gen_b = runs(a, method_a), runs(b, method_b)
    print(f"A = {a} ({method_a})\nB = {b} ({method_b})\n{len(shared)} shared runs, `none` identical")
    for fraction in sorted({k[2] for k in shared}):
        keys = [k for k in shared if k[2] == fraction]
        ua = {name: [r[k]["ua"] for k in keys] for name, r in (("none", none_a), ("A", gen_a), ("B", gen_b))}
        print(f"fraction {fraction} ({len(keys)} runs): none {np.mean(ua['none']):.3f}")
        for name in ("A", "B"):
            print(f"  {name} {np.mean(ua[name]):.3f} ± {np.std(ua[name]):.3f}, vs none {paired(ua[name], ua['none'])}")
        print(f"  B − A {paired(ua['B'], ua['A'])}")


if __name__ == "__main__":
    main()
