"""The augmentation benchmark: every method on the same folds, fractions and seeds, with paired tests.

    python bench/augmentation.py --name emodb4 --dataset_dir ../shared/data/emodb4 \
        --fractions 0.1 0.25 0.5 1.0 --seeds 0 1 2
    python bench/augmentation.py --name ravdess4 --dataset_dir ../shared/data/ravdess --folds 6 \
        --classes angry happy neutral sad --fractions 0.1 0.25 1.0 --seeds 0 1 2
    python bench/augmentation.py --name emodb4 ... --fractions 0.25 --variant lambda_info_10 --lambda_info 10

Training is ``train.py`` itself (run as a subprocess, so this is the code path users run); this
script only collects its ``results.json`` into cells ``(method, fraction)`` with UA/WA/F1 mean ± std,
Wilcoxon signed-rank p-values over the (fold, seed) pairs against ``none`` and against the best
peer, and the generator's MI metrics. ``--variant NAME`` runs an ablation (the extra arguments go to
``train.py``) whose cells are called ``mirgan[NAME]``; cells accumulate in
``bench/results/augmentation_<name>.json`` and ``.md``, plus plots. Each train.py run also leaves its per-run
UA/WA/F1, timing and stage-1 cost in ``bench/results/run_records/<run>.json`` (``bench/runs/`` is not committed), which
``bench/regime.py`` pools across seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr, wilcoxon

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PEERS = ["none", "noise", "smote", "mixup", "class_weight", "oversample", "cgan"]
REALISM = ("c2st", "c2st_floor", "precision", "recall", "frechet_ratio", "nn_ratio", "memorisation", "q_accuracy", "real_accuracy")


def run_train(name: str, variant: str | None, dataset_dir: str, train_args: list[str], methods: list[str]) -> tuple[str, dict]:
    run = name + (f"-{variant}" if variant else "") + ("-imbalance" if "--imbalance" in train_args else "")
    out = ROOT / "bench" / "runs" / run
    command = [sys.executable, str(ROOT / "train.py"), "--dataset_dir", dataset_dir, "--output_dir", str(out),
               "--methods", *methods, "--final_model", "false", "--report", "false", "--disable_tqdm", "true", *train_args]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)
    return run, json.loads((out / "results.json").read_text())


def code_commit() -> str:
    """The commit whose library produced a run, ``-dirty`` when the library or train.py had uncommitted changes."""
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    dirty = git("status", "--porcelain", "--", "modeling_mirgan", "processing", "datasets_scripts", "train.py")
    return (git("rev-parse", "HEAD") or "unknown") + ("-dirty" if dirty else "")


def run_record(results: dict, commit: str) -> dict:
    """What a later pooling over seeds needs of one train.py run, and nothing local (no output path)."""
    scores = ("fold", "seed", "fraction", "ua", "wa", "f1")
    model, train = results["arguments"]["model"], results["arguments"]["train"]
    record = {"methods": {m: {"per_fold": [{k: f[k] for k in scores} for f in v["per_fold"]]} for m, v in results["methods"].items()},
              "arguments": {"model": {k: model.get(k) for k in ("audio_encoder", "text_encoder", "mode", "encoder_mode", "text_encoder_mode")},
                            "train": {k: train.get(k) for k in ("encoder_lr", "encoder_epochs", "seeds", "fractions", "imbalance")}},
              "code_commit": commit, **{k: results[k] for k in ("versions", "protocol", "timing") if k in results}}
    if "adaptation" in results:  # its cost per fold run; the loss curves stay in bench/runs/
        adaptation = results["adaptation"]
        record["adaptation"] = adaptation | {"runs": [{k: v for k, v in r.items() if k != "curve"} for r in adaptation["runs"]]}
    return record


def paired_p(a: dict, b: dict) -> float | None:
    """Wilcoxon signed-rank over the (fold, seed) runs both methods have; None when all differences are 0."""
    keys = sorted(set(a) & set(b))
    diff = np.array([a[k] - b[k] for k in keys])
    if len(keys) < 2 or not np.any(diff):
        return None
    return float(wilcoxon(diff).pvalue)


def regime_of(results: dict) -> str:
    shares = results["arguments"]["train"].get("imbalance")
    return "imbalance " + " ".join(shares) if shares else "scarcity"


def cells_of(results: dict, variant: str | None) -> list[dict]:
    methods = [m for m in results["methods"] if m != "baseline"]
    fractions = sorted({f["fraction"] for f in results["methods"]["baseline"]["per_fold"]})
    cells = []
    for fraction in fractions:
        ua = {m: {(f["fold"], f["seed"]): f["ua"] for f in results["methods"][m]["per_fold"] if f["fraction"] == fraction}
              for m in results["methods"]}
        for method in methods:
            runs = [f for f in results["methods"][method]["per_fold"] if f["fraction"] == fraction]
            peers = [p for p in PEERS if p in ua and p != method and p != "none"]
            best_peer = max(peers, key=lambda p: np.mean(list(ua[p].values()))) if peers else None
            quality = [f["quality"] for f in runs if f.get("quality")]
            cell = {
                "method": method if not variant or method != "mirgan" else f"mirgan[{variant}]",
                "fraction": fraction, "regime": regime_of(results),
                "ua_mean": float(np.mean([f["ua"] for f in runs])), "ua_std": float(np.std([f["ua"] for f in runs])),
                "wa_mean": float(np.mean([f["wa"] for f in runs])), "f1_mean": float(np.mean([f["f1"] for f in runs])),
                "n_runs": len(runs),
                "p_vs_none": paired_p(ua[method], ua["none"]) if method != "none" and "none" in ua else None,
                "best_peer": best_peer,
                "p_vs_best_peer": paired_p(ua[method], ua[best_peer]) if best_peer and method not in PEERS else None,
                "gain_vs_none": float(np.mean([ua[method][k] - ua["none"][k] for k in ua[method]])) if "none" in ua else None,
            }
            for key in ("mi_bits", "diversity_ratio", "frechet_distance", *REALISM):
                values = [q[key] for q in quality if q.get(key) is not None]
                cell[key] = float(np.nanmean(values)) if values else None
            cells.append(cell)
        if variant:  # an ablation keeps only its own generator's cells (its `none` duplicates the main run's)
            cells = [c for c in cells if c["method"].startswith("mirgan[")]
    return cells


def write_tables(name: str, table: dict) -> None:
    cells = sorted(table["cells"], key=lambda c: (c.get("regime", "scarcity"), c["fraction"], c["method"]))
    fmt = lambda v, d=3: "–" if v is None else f"{v:.{d}f}"  # noqa: E731
    lines = [f"# Augmentation benchmark: {name}", "",
             f"Encoder {table['encoder']}; {table['protocol']}", "",
             f"Machine: {table['machine']}; date {table['date']}.", "",
             *([f"Stage 1 end to end ({table['adaptation']['encoder_mode']}): {table['adaptation']['scheme']}. "
                f"{table['adaptation']['seconds_per_fold_mean']:.0f} s per fold run on average (max "
                f"{table['adaptation']['seconds_per_fold_max']:.0f} s, {table['adaptation']['fold_runs']} fold runs).", ""]
               if table.get("adaptation") else []),
             "Commands:", "",
             *[f"    {c}" for c in table["commands"]], "",
             "| regime | fraction | method | UA mean ± std | WA | F1 | runs | UA gain vs none | p vs none | best peer | p vs best peer |"
             " MI bits | Q-acc (real) | C2ST (floor) | precision | recall | Fréchet ratio | NN ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        lines.append(f"| {c.get('regime', 'scarcity')} | {c['fraction']} | {c['method']} | {fmt(c['ua_mean'])} ± {fmt(c['ua_std'])} | {fmt(c['wa_mean'])} | "
                     f"{fmt(c['f1_mean'])} | {c['n_runs']} | {fmt(c['gain_vs_none'] and 100 * c['gain_vs_none'], 1)} | "
                     f"{fmt(c['p_vs_none'])} | {c['best_peer'] or '–'} | {fmt(c['p_vs_best_peer'])} | {fmt(c['mi_bits'], 2)} | "
                     f"{fmt(c.get('q_accuracy'), 2)} ({fmt(c.get('real_accuracy'), 2)}) | {fmt(c.get('c2st'), 2)} ({fmt(c.get('c2st_floor'), 2)}) | "
                     f"{fmt(c.get('precision'), 2)} | {fmt(c.get('recall'), 2)} | {fmt(c.get('frechet_ratio'), 2)} | {fmt(c.get('nn_ratio'), 2)} |")
    sweep = [c for c in cells if c["mi_bits"] is not None and c["gain_vs_none"] is not None]
    if len(sweep) >= 3:
        rho, p = spearmanr([c["mi_bits"] for c in sweep], [c["gain_vs_none"] for c in sweep])
        table["mi_vs_gain_spearman"] = {"rho": float(rho), "p": float(p), "n_generators": len(sweep)}
        lines += ["", f"Spearman rank correlation between a generator's MI estimate and its UA gain over `none`, "
                      f"over {len(sweep)} generator cells (cgan, mirgan, ablations, all fractions): rho = {rho:.3f} (p = {p:.3f})."]
    real = [c for c in sweep if c.get("c2st") is not None]
    if len(real) >= 3:
        rho, p = spearmanr([c["c2st"] for c in real], [c["gain_vs_none"] for c in real])
        table["realism_vs_gain_spearman"] = {"rho": float(rho), "p": float(p), "n_generators": len(real)}
        lines += ["", f"Spearman rank correlation between a generator's C2ST accuracy (lower = more realistic) and its UA gain "
                      f"over `none`, over {len(real)} generator cells: rho = {rho:.3f} (p = {p:.3f})."]
    (RESULTS / f"augmentation_{name}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"augmentation_{name}.json").write_text(json.dumps(table, indent=2))
    plot(name, table)


def plot(name: str, table: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for method in sorted({c["method"] for c in table["cells"]}):
        rows = sorted((c["fraction"], c["ua_mean"]) for c in table["cells"]
                      if c["method"] == method and c.get("regime", "scarcity") == "scarcity")  # imbalance cells sit at 1.0 too
        if len(rows) > 1:
            left.plot(*zip(*rows), marker="o", label=method)
    left.set(xscale="log", xlabel="share of each training fold", ylabel="UA", title=f"{name}: UA vs data (scarcity regime)")
    left.legend(fontsize=7)
    gens = [c for c in table["cells"] if c["mi_bits"] is not None]
    right.scatter([c["mi_bits"] for c in gens], [100 * c["gain_vs_none"] for c in gens])
    for c in gens:
        where = c["fraction"] if c.get("regime", "scarcity") == "scarcity" else "imbalance"
        right.annotate(f"{c['method']}@{where}", (c["mi_bits"], 100 * c["gain_vs_none"]), fontsize=6)
    right.axhline(0, color="grey", lw=0.5)
    right.set(xlabel="I(c; h_hat) estimate, bits", ylabel="UA gain over none, points", title="MI vs gain")
    fig.tight_layout()
    fig.savefig(RESULTS / f"augmentation_{name}.png", dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--dataset_dir", required=True)
    parser.add_argument("--variant", help="an ablation: its extra train.py arguments follow")
    parser.add_argument("--methods", nargs="+", default=PEERS + ["mirgan"])
    args, train_args = parser.parse_known_args()
    methods = ["none", "mirgan"] if args.variant else args.methods
    started, commit = time.time(), code_commit()
    run, results = run_train(args.name, args.variant, args.dataset_dir, train_args, methods)
    (RESULTS / "run_records").mkdir(parents=True, exist_ok=True)
    (RESULTS / "run_records" / f"{run}.json").write_text(json.dumps(run_record(results, commit), indent=1) + "\n")
    path = RESULTS / f"augmentation_{args.name}.json"
    table = json.loads(path.read_text()) if path.exists() else {"dataset": args.name, "cells": [], "commands": []}
    new = cells_of(results, args.variant)
    key = lambda c: (c.get("regime", "scarcity"), c["method"], c["fraction"])  # noqa: E731
    replaced = {key(c) for c in new}
    table["cells"] = [c for c in table["cells"] if key(c) not in replaced] + new
    command = "python bench/augmentation.py " + " ".join(sys.argv[1:])
    table["commands"] = [c for c in table["commands"] if c != command] + [command]
    table.update(encoder=results["versions"]["audio_encoder"], protocol=results["protocol"]["description"],
                 machine=f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {results['versions']['torch']}",
                 date=time.strftime("%Y-%m-%d"))
    table.setdefault("wall_s", {})[args.variant or "main"] = round(time.time() - started, 1)
    if "adaptation" in results:  # stage 1 end to end: its cost per fold run
        seconds = [r["seconds"] for r in results["adaptation"]["runs"]]
        table["adaptation"] = {"encoder_mode": results["adaptation"]["encoder_mode"], "scheme": results["adaptation"]["scheme"],
                               "seconds_per_fold_mean": float(np.mean(seconds)), "seconds_per_fold_max": float(np.max(seconds)),
                               "fold_runs": len(seconds)}
    write_tables(args.name, table)
    print((RESULTS / f"augmentation_{args.name}.md").read_text())


if __name__ == "__main__":
    main()
