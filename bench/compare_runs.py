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

import sys

import numpy as np
from regime import load, merged, paired


def runs(names: str) -> dict[str, dict[tuple, float]]:
    """UA by method, then by (fold, seed, fraction), of the comma-separated records ``names``."""
    return merged([load(name) for name in names.split(",")])


def text(b: dict, a: dict) -> str:
    diff, p = paired(b, a)
    return f"{diff:+.1f} (p {1.0 if p is None else p:.3f})"


def main():
    (a, _, method_a), (b, _, method_b) = (arg.partition(":") for arg in sys.argv[1:3])
    ua_a, ua_b = runs(a), runs(b)
    none_a, none_b = ua_a["none"], ua_b["none"]
    shared = sorted(set(none_a) & set(none_b))
    differ = max(abs(none_a[k] - none_b[k]) for k in shared)
    if differ > 0:
        sys.exit(f"the two runs' `none` UA differ by up to {differ:.4f}: not the same features, no pairing")
    method_a, method_b = method_a or "mirgan", method_b or "mirgan"
    print(f"A = {a} ({method_a})\nB = {b} ({method_b})\n{len(shared)} shared runs, `none` identical")
    for fraction in sorted({k[2] for k in shared}):
        keys = [k for k in shared if k[2] == fraction]
        ua = {name: {k: r[k] for k in keys} for name, r in (("none", none_a), ("A", ua_a[method_a]), ("B", ua_b[method_b]))}
        print(f"fraction {fraction} ({len(keys)} runs): none {np.mean(list(ua['none'].values())):.3f}")
        for name in ("A", "B"):
            values = list(ua[name].values())
            print(f"  {name} {np.mean(values):.3f} ± {np.std(values):.3f}, vs none {text(ua[name], ua['none'])}")
        print(f"  B − A {text(ua['B'], ua['A'])}")


if __name__ == "__main__":
    main()
