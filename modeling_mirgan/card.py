"""Model cards generated from ``results.json``: model-index metrics, protocol, MI metrics, limitations."""

from __future__ import annotations

from pathlib import Path

import yaml

TEMPLATE = Path(__file__).resolve().parent.parent / "model_cards" / "template.md"
KNOWN_DATA = {
    "emodb4": ("German", "EmoDB (Burkhardt et al., Interspeech 2005), 4-class subset; audEERING's redistribution labels it CC0, the authors ask for citation."),
    "emodb": ("German", "EmoDB (Burkhardt et al., Interspeech 2005); the authors ask for citation."),
    "ravdess": ("English", "RAVDESS (Livingstone & Russo, PLoS ONE 2018), licence CC BY-NC-SA 4.0: non-commercial use only, and this model inherits that restriction."),
}


def card_metadata(results: dict, model_name: str) -> dict:
    metrics = []
    for method in ("baseline", results.get("final_model", {}).get("method", "mirgan")):
        if method not in results["methods"]:
            continue
        m = results["methods"][method]
        for key, name in (("ua", "Unweighted accuracy (UA)"), ("wa", "Weighted accuracy (WA)"), ("f1", "Macro F1")):
            metrics.append({"type": f"{key}_{method}", "name": f"{name}, {method}", "value": round(100 * m[f"{key}_mean"], 2),
                            "args": {"std": round(100 * m[f"{key}_std"], 2)}})
    return {
        "library_name": "transformers",
        "pipeline_tag": "audio-classification",
        "tags": ["speech-emotion-recognition", "mirgan", "infogan"],
        "datasets": [results["dataset"]],
        "model-index": [{
            "name": model_name,
            "results": [{
                "task": {"type": "audio-classification", "name": "Speech emotion recognition"},
                "dataset": {"type": results["dataset"], "name": results["dataset"], "config": results["protocol"]["name"]},
                "metrics": metrics,
            }],
        }],
    }


def write_model_card(folder: Path, results: dict, model_name: str | None = None) -> Path:
    model_name = model_name or f"mirgan-{results['dataset']}-{results['mode']}"
    language, data_note = KNOWN_DATA.get(results["dataset"], ("", f"{results['dataset']} from {results.get('dataset_dir', '')}; check its licence before sharing this model."))
    rows = "\n".join(
        f"| {name} | {100 * m['ua_mean']:.1f} ± {100 * m['ua_std']:.1f} | {100 * m['wa_mean']:.1f} ± {100 * m['wa_std']:.1f} | {100 * m['f1_mean']:.1f} ± {100 * m['f1_std']:.1f} |"
        for name, m in results["methods"].items()
    )
    mi_rows = "\n".join(
        f"| {name} | " + " | ".join(f"{q['mean'][k]:.3f}" for k in ("mi_bits", "q_accuracy", "diversity_ratio", "frechet_distance")) + " |"
        for name, q in results.get("mi", {}).items()
    )
    mi_table = ("| generator | mi_bits | q_accuracy | diversity_ratio | frechet_distance |\n|---|---|---|---|---|\n" + mi_rows) if mi_rows else "No generator was trained."
    versions = results["versions"]
    args = results["arguments"]
    command = "python train.py --dataset_dir " + str(args["data"]["dataset_dir"]) + f" --mode {results['mode']}"
    text = TEMPLATE.read_text().format(
        front_matter=yaml.safe_dump(card_metadata(results, model_name), sort_keys=False).strip(),
        title=model_name,
        audio_encoder=versions["audio_encoder"],
        text_encoder=versions["text_encoder"],
        mode=results["mode"],
        classes=", ".join(results["classes"]),
        n_classes=len(results["classes"]),
        dataset=results["dataset"],
        language_note=f"{language} speech" if language else "the training corpus's language",
        data_note=data_note,
        protocol=results["protocol"]["description"],
        results_table=rows,
        n_runs=len(results["methods"]["baseline"]["per_fold"]),
        mi_table=mi_table,
        text_limitation="Corpora with a few fixed sentences (EmoDB, RAVDESS) carry no emotion information in their transcripts: the text branch is trained for alignment, not because words help there.",
        n_clips=results["n_clips"],
        n_speakers=len({s for f in results["protocol"]["runs"] for s in f["test_speakers"]}),
        model_path=model_name,
        command=command,
    )
    path = Path(folder) / "README.md"
    path.write_text(text)
    return path
