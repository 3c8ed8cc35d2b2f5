"""Generator search: realism of generator variants on the validation speakers of each training fold.

    python bench/generator_search.py --name emodb4 --variants default generator_rank=64 \
        "lambda_diversity=1 lambda_mmd=10" -- --dataset_dir data/emodb4
    python bench/generator_search.py --name ravdess4 --variants default ... -- \
        --dataset_dir ../shared/data/ravdess --folds 6 --classes angry happy neutral sad

Every variant is a set of ``MirganConfig`` overrides (``train.py`` flags without ``--``), run through
``train_mirgan`` (the engine ``train.py`` calls) with ``--methods none mirgan`` on the same folds and seeds. Stage 1 does not depend on
the generator, so its fits are computed once and reused by every variant (the same selected heads
and features; only stages 2-3 change). The realism metrics are those every run reports: the
generator of the selection fit scored against the fold's *validation* speakers, so a choice made on
this table is made inside the training folds. Test UA is reported beside them, not used to choose.
Results: ``bench/results/generator_search_<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
METRICS = ("c2st", "c2st_floor", "precision", "recall", "precision_floor", "recall_floor", "frechet_ratio", "nn_ratio", "memorisation", "q_accuracy", "real_accuracy")


def memoise_stage1() -> None:
    """Stage-1 fits keyed by their inputs: a variant that only changes the generator gets the same heads."""
    from modeling_mirgan import stages, training

    original, memo = training.fit_stage1, {}

    def fit_stage1(model, data, rows, args, seed, timing, weight_decay=None, epochs=None, validation=None, alignment_weights=()):
        key = (tuple(rows.tolist()), seed, weight_decay, epochs, None if validation is None else tuple(validation.tolist()),
               tuple(alignment_weights), model.config.lambda_con)
        if key not in memo:
            fit = original(model, data, rows, args, seed, timing, weight_decay, epochs, validation, alignment_weights)
            memo[key] = (copy.deepcopy(fit), model.config.lambda_con)
        fit, lambda_con = memo[key]
        stages.restore(model, fit.heads)
        model.config.lambda_con = lambda_con
        return copy.deepcopy(fit)

    training.fit_stage1 = fit_stage1


def summary(results: dict) -> dict:
    """Per run: the mirgan generator's realism, and the test UA of none and mirgan."""
    runs = results["methods"]["mirgan"]["per_fold"]
    out = {k: [float(r["quality"][k]) for r in runs] for k in METRICS}
    out["ua_none"] = [r["ua"] for r in results["methods"]["none"]["per_fold"]]
    out["ua_mirgan"] = [r["ua"] for r in runs]
    out["ratio"] = [r["synthetic_ratio"] for r in runs]
    return out


def passes(m: dict) -> dict:
    """The issue's goals, on means over runs."""
    c2st, floor = np.mean(m["c2st"]), np.mean(m["c2st_floor"])
    return {"c2st": bool(c2st <= (0.65 if floor <= 0.6 else floor + 0.05)), "precision": bool(np.mean(m["precision"]) >= 0.7),
            "recall": bool(np.mean(m["recall"]) >= 0.7), "frechet_ratio": bool(np.mean(m["frechet_ratio"]) <= 1.5),
            "q_accuracy": bool(np.mean(m["q_accuracy"]) <= np.mean(m["real_accuracy"]) + 0.05)}


def write(name: str, table: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"generator_search_{name}.json").write_text(json.dumps(table, indent=1))
    lines = [f"# Generator search: {name}", "", f"{table['protocol']}; encoder {table['encoder']}; {table['date']}.",
             "Realism of the selection fit's generator against the validation speakers of each training fold (mean over "
             "runs); test UA beside it (not used to choose). Goals: C2ST ≤ 0.65 (or floor + 0.05 where the floor is above "
             "0.6), precision and recall ≥ 0.7, Fréchet ratio ≤ 1.5, Q-accuracy ≤ real + 0.05.", "", *table.get("notes", []), "",
             "| variant | C2ST (floor) | precision (floor) | recall (floor) | Fréchet ratio | NN ratio | memorisation | Q-acc (real) | UA none | UA mirgan | goals met |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for variant, m in table["variants"].items():
        mean = {k: float(np.mean(v)) for k, v in m.items()}
        ok = passes(m)
        lines.append(f"| `{variant}` | {mean['c2st']:.3f} ({mean['c2st_floor']:.3f}) | {mean['precision']:.2f} ({mean['precision_floor']:.2f}) | {mean['recall']:.2f} ({mean['recall_floor']:.2f}) | "
                     f"{mean['frechet_ratio']:.2f} | {mean['nn_ratio']:.2f} | {mean['memorisation']:.2f} | "
                     f"{mean['q_accuracy']:.2f} ({mean['real_accuracy']:.2f}) | {mean['ua_none']:.3f} | {mean['ua_mirgan']:.3f} | "
                     f"{sum(ok.values())}/5 {' '.join(k for k, v in ok.items() if not v) and 'missing: ' + ' '.join(k for k, v in ok.items() if not v)} |")
    lines += ["", "```bash", *table["commands"], "```", ""]
    (RESULTS / f"generator_search_{name}.md").write_text("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--variants", nargs="+", required=True, help="'default' or space-separated key=value overrides")
    args, train_argv = parser.parse_known_args()
    command = "python bench/generator_search.py " + " ".join(f'"{a}"' if " " in a else a for a in sys.argv[1:])
    train_argv = [a for a in train_argv if a != "--"]
    from modeling_mirgan.arguments import parse_args
    from modeling_mirgan.training import load_corpus_from_arguments, train_mirgan

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    memoise_stage1()
    path = RESULTS / f"generator_search_{args.name}.json"
    table = json.loads(path.read_text()) if path.exists() else {"variants": {}, "commands": []}
    for variant in args.variants:
        flags = [] if variant == "default" else [t for token in variant.split() for t in
                                                 (["--" + token.split("=", 1)[0], token.split("=", 1)[1]] if "=" in token else [token])]
        out = f"/tmp/mirgan_generator_search/{args.name}"
        data_args, model_args, train_args = parse_args([*train_argv, *flags, "--methods", "none", "mirgan", "--final_model", "false",
                                                        "--report", "false", "--resume", "false", "--disable_tqdm", "true", "--output_dir", out])
        t0 = time.time()
        corpus = load_corpus_from_arguments(data_args)
        results = train_mirgan(corpus.dataset, corpus.protocol, data_args, model_args, train_args,
                               skipped=corpus.skipped, skipped_examples=corpus.skipped_examples)
        table["variants"][variant] = summary(results) | {"seconds": [time.time() - t0]}
        table.update(protocol=results["protocol"]["description"], encoder=results["versions"]["audio_encoder"],
                     date=time.strftime("%Y-%m-%d"))
        write(args.name, table)
        print(variant, {k: round(float(np.mean(v)), 3) for k, v in table["variants"][variant].items()}, flush=True)
    table["commands"] = [c for c in table["commands"] if c != command] + [command]
    write(args.name, table)


if __name__ == "__main__":
    main()
