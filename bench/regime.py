"""Frozen encoders vs stage 1 end to end, side by side: does fine-tuning raise the baseline, and does the
generator help more, less or equally there?

    python bench/augmentation.py --name emodb4-tiny-frozen --dataset_dir ../shared/data/emodb4 \
        --methods none mixup smote cgan mirgan --audio_encoder openai/whisper-tiny.en --fractions 0.25 1.0 --seeds 0
    python bench/augmentation.py --name emodb4-tiny-lora ... (the same) --encoder_mode lora
    python bench/regime.py emodb4-tiny3=lora-lr1e-3 ravdess4-tiny,ravdess4-tiny-s1,ravdess4-tiny-s2=lora-lr1e-3

Reads the run records ``bench/results/run_records/<prefix>-frozen.json`` and ``<prefix>-<name>.json`` that
``bench/augmentation.py`` leaves (name ``lora``
unless given after ``=``; several prefixes joined by commas, e.g. one per seed, are pooled; same
folds, subsamples and seeds), keeps the (fold, seed, fraction) runs both have and writes ``bench/results/regime.md`` and ``.json``:
per method UA in both regimes, the paired Wilcoxon p of lora vs frozen, each regime's gain over
``none`` with its p, and the cost of stage 1 end to end per fold run. Tables accumulate in ``regime.json``
like the augmentation cells: a spec replaces the table of the same run and leaves the others, so one
corpus can be re-run without the other's runs on disk.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

ROOT = Path(__file__).resolve().parents[1]


def per_run(results: dict) -> dict[str, dict[tuple, float]]:
    return {m: {(f["fold"], f["seed"], f["fraction"]): f["ua"] for f in v["per_fold"]} for m, v in results["methods"].items()}


def total_timing(results: list[dict]) -> dict:
    return {k: sum(r["timing"].get(k, 0.0) for r in results) for k in ("extract_s", "total_s")}


def paired(a: dict, b: dict) -> tuple[float, float | None]:
    """Mean of a - b over the shared runs (points) and the Wilcoxon p (None when all differences are 0)."""
    keys = sorted(set(a) & set(b))
    diff = np.array([a[k] - b[k] for k in keys])
    p = float(wilcoxon(diff).pvalue) if len(keys) > 1 and np.any(diff) else None
    return 100 * float(diff.mean()), p


def load(name: str) -> dict:
    path = ROOT / "bench" / "results" / "run_records" / f"{name}.json"
    if not path.exists():
        sys.exit(f"{path.relative_to(ROOT)} does not exist: run the command in bench/results/augmentation_{name}.md, "
                 "which writes it (runs older than 2026-12-06 left no record)")
    return json.loads(path.read_text())


def merged(results: list[dict]) -> dict[str, dict[tuple, float]]:
    """The runs of several results.json (e.g. one per seed) of the same methods, by (fold, seed, fraction)."""
    out: dict[str, dict[tuple, float]] = {}
    for r in results:
        for method, runs in per_run(r).items():
            out.setdefault(method, {}).update(runs)
    return out


def compare(spec: str) -> dict:
    """``PREFIX[,PREFIX...][=NAME]``: runs ``PREFIX-frozen`` against ``PREFIX-NAME`` (default ``lora``)."""
    prefixes, _, name = spec.partition("=")
    prefixes, name = prefixes.split(","), name or "lora"
    frozen, lora = [load(f"{p}-frozen") for p in prefixes], [load(f"{p}-{name}") for p in prefixes]
    ua = {"frozen": merged(frozen), "lora": merged(lora)}
    shared = set(ua["lora"]["baseline"]) & set(ua["frozen"]["baseline"])
    ua = {mode: {m: {k: v for k, v in runs.items() if k in shared} for m, runs in by_method.items()} for mode, by_method in ua.items()}
    seconds = [r["seconds"] for result in lora for r in result["adaptation"]["runs"]]
    commits = sorted({r.get("code_commit") or "unknown" for r in frozen + lora})
    prefix, frozen, lora = "+".join(prefixes), frozen[0] | {"timing": total_timing(frozen)}, lora[0] | {"timing": total_timing(lora)}
    rows, versus = [], []
    for fraction in sorted({k[2] for k in ua["frozen"]["baseline"]}):
        at = {mode: {m: {k: v for k, v in runs.items() if k[2] == fraction} for m, runs in by_method.items()}
              for mode, by_method in ua.items()}  # this fraction's runs of every method, in each regime
        for method in ua["frozen"]:
            cells = {mode: at[mode][method] for mode in ua}
            row = {"fraction": fraction, "method": method, "runs": len(cells["lora"])}
            for mode in ua:
                values = list(cells[mode].values())
                row[f"{mode}_ua"], row[f"{mode}_std"] = float(np.mean(values)), float(np.std(values))
                if method not in ("baseline", "none"):
                    row[f"{mode}_gain_vs_none"], row[f"{mode}_p_vs_none"] = paired(cells[mode], at[mode]["none"])
            row["lora_minus_frozen"], row["p_lora_vs_frozen"] = paired(cells["lora"], cells["frozen"])
            rows.append(row)
        versus.append({"fraction": fraction} | {mode: mirgan_vs_best_peer(at[mode]) for mode in ua})
    return {"prefix": prefix, "lora_run": f"{prefix}-{name}", "encoder_lr": lora["arguments"]["train"]["encoder_lr"],
            "encoder_epochs": lora["arguments"]["train"]["encoder_epochs"], "encoder": lora["versions"]["audio_encoder"], "scheme": lora["adaptation"]["scheme"],
            "code_commits": commits,
            "adaptation_s_per_fold_run": {"mean": float(np.mean(seconds)), "max": float(np.max(seconds)), "runs": len(seconds)},
            "extract_s": {"frozen": frozen["timing"]["extract_s"], "lora": lora["timing"]["extract_s"]},
            "total_s": {"frozen": frozen["timing"]["total_s"], "lora": lora["timing"]["total_s"]},
            "protocol": lora["protocol"]["description"], "rows": rows, "mirgan_vs_best_peer": versus}


def mirgan_vs_best_peer(cell: dict[str, dict[tuple, float]]) -> dict | None:
    """mirgan against the peer with the highest mean UA in one cell (one fraction's runs of every method; the
    frozen benchmark's test), paired."""
    peers = [m for m in cell if m not in ("baseline", "none", "mirgan")]
    if "mirgan" not in cell or not peers:
        return None
    best = max(peers, key=lambda m: np.mean(list(cell[m].values())))
    diff, p = paired(cell["mirgan"], cell[best])
    return {"peer": best, "diff": diff, "p": p}


def lr_text(lr) -> str:
    """The encoder learning rate(s) of a LoRA run; several were chosen among on validation speakers."""
    if lr is None:
        return "default 1e-4"
    lrs = lr if isinstance(lr, list) else [lr]
    return f"{lrs[0]:g}" if len(lrs) == 1 else "chosen on validation speakers among " + ", ".join(f"{v:g}" for v in lrs)


def code_line(table: dict) -> str:
    """Which code produced a table's runs; tables pooled before runs left records do not know."""
    if "code_commits" not in table:
        return ("Code: not recorded (run before fb5d237; in LoRA mode the heads were initialised before the seed was set, "
                "so its command does not reproduce these numbers).")
    return "Code: " + ", ".join(c[:7] + ("-dirty" if c.endswith("-dirty") else "") for c in table["code_commits"]) + "."


def main():
    fmt = lambda v, d=3: "–" if v is None else f"{v:.{d}f}"  # noqa: E731
    out = ROOT / "bench" / "results"
    new = [compare(spec) | {"command": "python bench/regime.py " + spec} for spec in sys.argv[1:]]
    kept = json.loads((out / "regime.json").read_text()) if (out / "regime.json").exists() else []
    tables = [t for t in kept if t["lora_run"] not in {n["lora_run"] for n in new}] + new
    lines = ["# Frozen encoders vs stage 1 end to end (LoRA)", "",
             "Generated by `bench/regime.py` from the runs of `bench/augmentation.py` "
             "(commands in `bench/results/augmentation_<prefix>-{frozen,lora}.md`), one command per table. UA mean ± std over the runs; "
             "differences in points, paired Wilcoxon p over (fold, seed) runs.", ""]
    for t in tables:
        cost = t["adaptation_s_per_fold_run"]
        lines += [f"## {t['lora_run']} ({t['encoder']}; encoder lr {lr_text(t['encoder_lr'])}, {t['encoder_epochs']} epochs)", "",
                  f"`{t['command']}`", "", t["protocol"], "", code_line(t), "",
                  f"Stage 1 end to end: {t['scheme']}. Cost {cost['mean']:.0f} s per fold run on average (max {cost['max']:.0f} s, "
                  f"{cost['runs']} runs) plus re-extraction; whole run {t['total_s']['lora']:.0f} s vs {t['total_s']['frozen']:.0f} s frozen.", "",
                  "| fraction | method | runs | frozen UA | LoRA UA | LoRA − frozen (p) | gain vs none, frozen (p) | gain vs none, LoRA (p) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in t["rows"]:
            gain = lambda mode: (f"{fmt(r.get(f'{mode}_gain_vs_none'), 1)} ({fmt(r.get(f'{mode}_p_vs_none'))})"  # noqa: E731
                                 if f"{mode}_gain_vs_none" in r else "–")
            lines.append(f"| {r['fraction']} | {r['method']} | {r['runs']} | {fmt(r['frozen_ua'])} ± {fmt(r['frozen_std'])} | "
                         f"{fmt(r['lora_ua'])} ± {fmt(r['lora_std'])} | {fmt(r['lora_minus_frozen'], 1)} ({fmt(r['p_lora_vs_frozen'])}) | "
                         f"{gain('frozen')} | {gain('lora')} |")
        if "mirgan_vs_best_peer" in t:  # tables pooled before 2026-12-08 did not compute it
            lines += ["", "mirgan against the best peer of each regime (highest mean UA among the other methods), paired over the same runs:", "",
                      "| fraction | frozen: mirgan − best peer (p) | LoRA: mirgan − best peer (p) |", "|---|---|---|"]
            versus = lambda v: "–" if v is None else f"{fmt(v['diff'], 1)} vs {v['peer']} ({fmt(v['p'])})"  # noqa: E731
            for v in t["mirgan_vs_best_peer"]:
                lines.append(f"| {v['fraction']} | {versus(v['frozen'])} | {versus(v['lora'])} |")
        lines.append("")
    (out / "regime.md").write_text("\n".join(lines))
    (out / "regime.json").write_text(json.dumps(tables, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
