"""Model and dataset cards that are true, generated from ``results.json``.

- ``write_model_card(folder, results, repo_id=None)``: README.md with Hub metadata (``license``,
  ``language``, ``base_model``, ``datasets``, ``pipeline_tag``, ``tags``, ``model-index`` with the metric
  types the Hub knows: ``accuracy`` = WA, ``recall`` macro = UA, ``f1`` macro), the protocol in every
  metric name, "± std" and fold counts only where several runs exist, the exact reproduce command
  and "How to use" code naming ``repo_id`` (or, before a push, the folder's own name).
- ``retarget_card(text, repo_id)``: the same card naming the pushed repo id (``hub.push_model`` calls it).
- ``public_results(results)``: ``results`` with every local path relativised (to the repository or
  the corpus folder) or cut to its last component; the card is written from it.
- ``reproduce_command(arguments, dataclass_types)``: ``python train.py`` plus every non-default flag.
- ``dataset_card(...)``: the card of a generated-features dataset (``modeling_mirgan.generate``).

Nothing here imports torch or transformers.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "templates" / "model_card.md"
REPO_ROOT = Path(__file__).resolve().parent.parent
TRAIN_SCRIPT = "train.py"


@dataclass(frozen=True)
class Corpus:
    title: str
    language: str | None  # ISO 639-1, as the Hub's `language` metadata expects
    license: str | None  # Hub licence id of the data; "other" = a licence agreement; None = unknown
    note: str


CORPORA = {
    "emodb4": Corpus("EmoDB, 4-class subset (angry, happy, neutral, sad)", "de", "cc0-1.0",
                     "EmoDB (Burkhardt et al., Interspeech 2005), 4-class subset shipped in the mirgan repository "
                     "(`data/emodb4`); audEERING's redistribution labels it CC0, the authors ask for citation."),
    "emodb": Corpus("EmoDB (Berlin Database of Emotional Speech)", "de", None,
                    "EmoDB (Burkhardt et al., Interspeech 2005), original release; the authors ask for citation. "
                    "The original release states no licence: check its terms before sharing this model."),
    "ravdess": Corpus("RAVDESS (speech)", "en", "cc-by-nc-sa-4.0",
                      "RAVDESS (Livingstone & Russo, PLoS ONE 2018), licence CC BY-NC-SA 4.0: non-commercial use only, "
                      "and this model inherits that restriction."),
    "iemocap": Corpus("IEMOCAP", "en", "other",
                      "IEMOCAP (Busso et al., 2008) is released under USC SAIL's licence agreement (research use, no "
                      "redistribution): check it before sharing this model."),
    "msp_improv": Corpus("MSP-IMPROV", "en", "other",
                         "MSP-IMPROV (Busso et al., 2017) is released under UT Dallas' academic licence agreement: check it "
                         "before sharing this model."),
    "msp_podcast": Corpus("MSP-Podcast", "en", "other",
                          "MSP-Podcast (Lotfian & Busso, 2019) is released under UT Dallas' academic licence agreement: "
                          "check it before sharing this model."),
}
ENCODER_LICENSES = (  # (Hub id prefix, licence of the weights)
    ("openai/whisper-", "mit"),
    ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0"),
    ("sentence-transformers/all-mpnet-base-v2", "apache-2.0"),
    ("facebook/wav2vec2-", "apache-2.0"),
    ("facebook/hubert-", "apache-2.0"),
    ("microsoft/wavlm-", "mit"),
    ("MIT/ast-", "bsd-3-clause"),
)
PERMISSIVE = ("cc0-1.0", "mit", "bsd-3-clause", "apache-2.0")  # least to most conditions
# Arguments that say where a run writes or how it shows progress, not what it computes.
NOT_REPRODUCED = {"output_dir", "cache_dir", "resume", "push_to_hub", "hub_model_id", "disable_tqdm", "report",
                  "logging_dir", "report_to"}
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
# An absolute path inside a string: "/x/y", "~/x", "C:\x", after a start, space, quote, bracket or "=".
LOCAL_PATH = re.compile(r"(?:(?<=^)|(?<=[\s('\"\[=]))(?:~|[A-Za-z]:)?[/\\][^\s'\"()\[\],;]+")


# --------------------------------------------------------------------------------------------
# Local paths out
# --------------------------------------------------------------------------------------------


def is_hub_id(value) -> bool:
    """``namespace/name`` or ``name`` that is not an existing local path: what the Hub can link to."""
    if not isinstance(value, str) or not HUB_ID.fullmatch(value) or value.startswith(".") or ".." in value:
        return False
    try:
        return not Path(value).exists()
    except OSError:
        return True


def public_path(value: str, dataset_dir: str | None = None) -> str:
    """A local path without the machine in it: relative to the repository or the corpus folder, else its name."""
    trailing = ""
    while value and value[-1] in ".:":  # the end of a sentence the path was in
        value, trailing = value[:-1], value[-1] + trailing
    path = Path(value).expanduser()
    if not path.is_absolute():
        return value + trailing
    bases = [(REPO_ROOT, "")]
    if dataset_dir:
        corpus = Path(dataset_dir).expanduser()
        if corpus.is_absolute():
            bases.append((corpus, corpus.name))
    for base, prefix in bases:
        try:
            relative = path.resolve().relative_to(base.resolve())
        except (ValueError, OSError):
            continue
        if ".venv" in relative.parts or "site-packages" in relative.parts:
            break  # an installed package's folder: its name says it
        text = "/".join(p for p in (prefix, relative.as_posix()) if p and p != ".")
        return (text or base.name) + trailing
    return (path.name or str(path)) + trailing


def public_name(value, dataset_dir: str | None = None):
    """A Hub id as it is, a local path as ``public_path``; anything else unchanged."""
    if not isinstance(value, str) or is_hub_id(value):
        return value
    return public_path(value, dataset_dir) if LOCAL_PATH.fullmatch(value) else value


def scrub(value, dataset_dir: str | None = None):
    """``value`` (any JSON-like object) with every absolute path in its strings made public."""
    if isinstance(value, str):
        return LOCAL_PATH.sub(lambda m: public_path(m.group(0), dataset_dir), value)
    if isinstance(value, dict):
        return {k: scrub(v, dataset_dir) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, dataset_dir) for v in value]
    return value


def public_results(results: dict) -> dict:
    """A copy of ``results`` without local paths: corpus files relative to the corpus folder, repository
    files relative to the repository, anything else (caches, site-packages, home folders) cut to its
    last component. Encoder names stay Hub ids."""
    dataset_dir = results.get("dataset_dir") or results.get("arguments", {}).get("data", {}).get("dataset_dir")
    return scrub(copy.deepcopy(results), dataset_dir)


def public_config_dict(config: dict) -> dict:
    """A ``config.json`` dict without local paths (the sub-configs' ``_name_or_path`` of the encoders)."""
    out = scrub(copy.deepcopy(config))
    for sub, name_key in (("audio_encoder", "audio_encoder_name"), ("text_encoder", "text_encoder_name")):
        original = (config.get(sub) or {}).get("_name_or_path") if isinstance(config.get(sub), dict) else None
        if original and not is_hub_id(original):  # a cache or site-packages folder: the encoder's Hub name instead
            name = config.get(name_key) or ""
            out[sub]["_name_or_path"] = name if is_hub_id(name) else public_path(name) if name else ""
    for key in ("audio_encoder_name", "text_encoder_name"):
        if isinstance(out.get(key), str) and out[key] and not is_hub_id(config[key]):
            out[key] = public_path(config[key])
    return out


# --------------------------------------------------------------------------------------------
# Reproduce command
# --------------------------------------------------------------------------------------------


def _under(path: str, base: Path) -> bool:
    try:
        Path(path).expanduser().resolve().relative_to(base.resolve())
        return True
    except (ValueError, OSError):
        return False


def _default(f):
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        try:
            return float(a) == float(b)
        except (TypeError, ValueError):
            return False
    return a == b


def reproduce_command(arguments: dict, dataclass_types=None, script: str = TRAIN_SCRIPT) -> str:
    """``python train.py`` with every argument of ``arguments`` that differs from its field default.

    ``arguments``: ``{"data": {...}, "model": {...}, "train": {...}}`` (results["arguments"]) or one flat
    dict. ``dataclass_types``: the argument dataclasses (default: ``modeling_mirgan.arguments``'s).
    Where a run writes (``--output_dir``, ``--cache_dir``, ``--push_to_hub`` ...) is left out; a corpus
    folder outside the repository becomes ``path/to/<its name>``."""
    if dataclass_types is None:
        from .arguments import ARGUMENT_TYPES as dataclass_types
    flat = {}
    for key, group in arguments.items():
        if isinstance(group, dict) and key in ("data", "model", "train"):
            flat.update(group)
        else:
            flat[key] = group
    dataset_dir = flat.get("dataset_dir")
    parts, seen = ["python", script], set()
    for cls in dataclass_types:
        for f in fields(cls):
            if f.name in seen or f.name in NOT_REPRODUCED or f.name not in flat:
                continue
            seen.add(f.name)
            value, default = flat[f.name], _default(f)
            if isinstance(value, str) and not is_hub_id(value) and (Path(value).is_absolute() or value.startswith("~")):
                public = public_path(value, dataset_dir)
                if isinstance(default, str) and public == public_path(default, dataset_dir):
                    continue
                value = public if _under(value, REPO_ROOT) else f"path/to/{public}"
            elif default is not MISSING and _same(value, default):
                continue
            if value is None or value == []:
                continue  # the default of a field whose default is set elsewhere; no flag spells it
            flag = f"--{f.name}"
            if isinstance(value, bool):
                parts += [flag, str(value).lower()]
            elif isinstance(value, (list, tuple)):
                parts += [flag, *(shlex.quote(str(v)) for v in value)]
            else:
                parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


# --------------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------------


def encoder_license(name: str) -> str | None:
    for prefix, licence in ENCODER_LICENSES:
        if name.startswith(prefix):
            return licence
    return None


def model_license(corpus: Corpus | None, encoders: list[str]) -> tuple[str, str]:
    """The Hub licence id of the model and a sentence on where it comes from."""
    parts = {"training data": corpus.license if corpus else None}
    parts.update({f"`{e}`": encoder_license(e) for e in encoders})
    unknown = [k for k, v in parts.items() if v is None]
    known = {v for v in parts.values() if v}
    if unknown:
        return "other", (f"The licence of {', '.join(unknown)} is not known to mirgan: the model combines the encoders' "
                         "weights with heads trained on the data, so check their terms before using or sharing it.")
    if "cc-by-nc-sa-4.0" in known:
        return "cc-by-nc-sa-4.0", "The training data's non-commercial share-alike licence carries over to the model."
    if "other" in known or not known <= set(PERMISSIVE):
        return "other", "The training data or an encoder comes under its own licence agreement (see above)."
    licence = max(known, key=PERMISSIVE.index)
    terms = ", ".join(f"{k}: {v}" for k, v in parts.items())
    return licence, f"The most demanding of the parts' licences ({terms})."


def _runs(results: dict) -> tuple[int, int | None, list]:
    """(number of runs, folds in the protocol or None, seeds) of a results dict."""
    protocol = results.get("protocol", {})
    runs = protocol.get("runs") or []
    n_runs = len(results["methods"]["baseline"].get("per_fold") or runs) or 1
    n_folds = len(protocol["folds"]) if protocol.get("folds") else None
    seeds = sorted({r["seed"] for r in runs if "seed" in r})
    return n_runs, n_folds, seeds


def _protocol_label(results: dict) -> str:
    n_runs, n_folds, seeds = _runs(results)
    name = results.get("protocol", {}).get("name", "")
    runs = results.get("protocol", {}).get("runs") or []
    if n_runs == 1:
        fold = runs[0].get("fold") if runs else None
        return f"{name}, one run" + (f" ({fold})" if fold is not None else "")
    folds = len({r.get("fold") for r in runs}) if runs else n_runs
    return f"{name}, mean of {n_runs} runs ({folds} folds" + (f" × {len(seeds)} seeds" if len(seeds) > 1 else "") + ")"


def card_metadata(results: dict, model_name: str, license: str | None = None) -> dict:
    """The card's YAML front matter (Hub metadata and model-index)."""
    dataset = results["dataset"]
    corpus = CORPORA.get(dataset)
    versions = results.get("versions", {})
    encoders = [versions.get("audio_encoder"), versions.get("text_encoder")]
    data_args = results.get("arguments", {}).get("data", {})
    dataset_name = data_args.get("dataset_name")
    dataset_id = dataset_name if dataset_name and is_hub_id(dataset_name) else dataset
    label = _protocol_label(results)
    metrics = []
    methods = ["baseline", results.get("final_model", {}).get("method", "mirgan")]
    for method in dict.fromkeys(methods):
        if method not in results["methods"]:
            continue
        m = results["methods"][method]
        for key, metric_type, args, name in (("ua", "recall", {"average": "macro"}, "UA (macro recall)"),
                                             ("wa", "accuracy", None, "WA (accuracy)"),
                                             ("f1", "f1", {"average": "macro"}, "macro-F1")):
            entry = {"type": metric_type, "name": f"{name}, {method}, {label}", "value": round(100 * m[f"{key}_mean"], 2)}
            if args:
                entry["args"] = args
            metrics.append(entry)
    language = data_args.get("asr_language") or (corpus.language if corpus else None)
    meta = {
        "license": license or model_license(corpus, [e for e in encoders if e])[0],
        "language": [language] if language else None,
        "library_name": "transformers",
        "pipeline_tag": "audio-classification",
        "tags": ["speech-emotion-recognition", "audio-classification", "mirgan", "infogan", "custom_code"],
        "base_model": [e for e in encoders if e and is_hub_id(e)] or None,
        "base_model_relation": "finetune" if any(e and is_hub_id(e) for e in encoders) else None,
        "datasets": [dataset_id],
        "metrics": ["accuracy", "recall", "f1"],
        "model-index": [{
            "name": model_name,
            "results": [{
                "task": {"type": "audio-classification", "name": "Speech emotion recognition"},
                "dataset": {"type": dataset_id, "name": corpus.title if corpus else dataset,
                            "config": results.get("protocol", {}).get("name", "")},
                "metrics": metrics,
            }],
        }],
    }
    return {k: v for k, v in meta.items() if v is not None}


def _fmt(mean: float, std: float | None, scale: float = 100.0, digits: int = 1) -> str:
    text = f"{scale * mean:.{digits}f}"
    return text + (f" ± {scale * std:.{digits}f}" if std is not None else "")


def local_model_ref(folder: Path) -> str:
    """The name a card written into ``folder`` uses for the model before it is pushed: the folder's
    own name (``.model.tmp``, the atomic-save folder of ``model``, counts as ``model``)."""
    name = Path(folder).name
    match = re.fullmatch(r"\.(.+)\.tmp", name)
    return match.group(1) if match else name


def model_card_text(results: dict, model_ref: str, model_name: str | None = None, license: str | None = None) -> str:
    """The card's text; ``results`` is made public (``public_results``) first."""
    import yaml

    command = reproduce_command(results.get("arguments", {}), _argument_types(results))  # before paths go public
    results = public_results(results)
    model_name = model_name or (model_ref.split("/")[-1] if "/" in model_ref and is_hub_id(model_ref)
                                else f"mirgan-{results['dataset']}-{results['mode']}")
    dataset = results["dataset"]
    corpus = CORPORA.get(dataset)
    versions = results.get("versions", {})
    audio_encoder, text_encoder = versions.get("audio_encoder", "?"), versions.get("text_encoder", "?")
    meta = card_metadata(results, model_name, license)
    _, licence_note = model_license(corpus, [audio_encoder, text_encoder])
    n_runs, n_folds, seeds = _runs(results)
    several = n_runs > 1
    rows = "\n".join(
        f"| {name} | " + " | ".join(_fmt(m[f"{k}_mean"], m[f"{k}_std"] if several else None) for k in ("ua", "wa", "f1")) + " |"
        for name, m in results["methods"].items()
    )
    protocol = results.get("protocol", {})
    description = protocol.get("description", "")
    runs = protocol.get("runs") or []
    if several:
        spread_note = (f"mean ± standard deviation over {n_runs} speaker-independent runs"
                       + (f" ({len({r.get('fold') for r in runs})} folds × {len(seeds)} seeds)" if len(seeds) > 1 else "") + ".")
        uncertainty_note = "their standard deviation over runs is the honest uncertainty."
    else:
        description = re.sub(r";?\s*mean ± std over folds(?: and seeds)?", "", description)
        spread_note = "one speaker-independent run, so no standard deviation."
        uncertainty_note = "one test split gives no estimate of their spread: treat them as a single measurement."
    if n_folds and len({r.get("fold") for r in runs} if runs else range(n_runs)) < n_folds:
        ran = sorted({str(r.get("fold")) for r in runs})
        description += (f" Only {len(ran)} of the protocol's {n_folds} folds {'was' if len(ran) == 1 else 'were'} run"
                        + (f" ({', '.join(ran)})" if ran else "") + ", so the numbers below cover those test speakers only.")
    mi = results.get("mi", {})
    mi_keys = []
    for q in mi.values():
        for k in q.get("mean", {}):
            if k not in mi_keys:
                mi_keys.append(k)
    mi_rows = "\n".join(
        f"| {name} | " + " | ".join(
            _fmt(q["mean"][k], (q.get("std") or {}).get(k) if several else None, scale=1.0, digits=3) if k in q["mean"] else ""
            for k in mi_keys) + " |"
        for name, q in mi.items()
    )
    mi_notes = " ".join(f"`{k}` {MI_NOTES[k]}" for k in mi_keys if k in MI_NOTES)
    mi_table = (f"| generator | {' | '.join(mi_keys)} |\n|---|{'---|' * len(mi_keys)}\n{mi_rows}") if mi_rows else "No generator was trained."
    test_speakers = {s for r in runs for s in r.get("test_speakers", [])}
    hub = is_hub_id(model_ref) and "/" in model_ref
    location_note = "" if hub else (
        f"\n`{model_ref}` is the folder this card is in. `python -m modeling_mirgan.hub push --model {model_ref} "
        "--repo_id you/NAME` (or `model.push_to_hub(\"you/NAME\")`) pushes it with this card naming the repo.\n")
    language = (meta.get("language") or [None])[0]
    text = TEMPLATE.read_text(encoding="utf-8").format(
        front_matter=yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip(),
        title=model_name,
        audio_encoder=audio_encoder, audio_encoder_link=_link(audio_encoder),
        text_encoder=text_encoder, text_encoder_link=_link(text_encoder),
        mode=results["mode"],
        classes=", ".join(results["classes"]),
        n_classes=len(results["classes"]),
        dataset_title=corpus.title if corpus else dataset,
        language_note=f"{LANGUAGES.get(language, language)} speech" if language else "the training corpus's language",
        data_note=corpus.note if corpus else f"`{dataset}`, a corpus mirgan does not know: check its licence before sharing this model.",
        license=meta["license"],
        license_note=licence_note,
        protocol=description,
        results_table=rows,
        spread_note=spread_note,
        mi_over="mean ± std over runs" if several else "one run",
        mi_table=mi_table,
        mi_notes=mi_notes,
        text_limitation="Corpora with a few fixed sentences (EmoDB, RAVDESS) carry no emotion information in their transcripts: "
                        "the text branch is trained for alignment, not because words help there.",
        n_clips=results.get("n_clips", "?"),
        n_speakers=len(test_speakers) if test_speakers else "?",
        uncertainty_note=uncertainty_note,
        model_ref=model_ref,
        location_note=location_note,
        command=command,
    )
    return text


MI_NOTES = {
    "mi_bits": "estimates I(c; generated feature) = H(c) - CE with the frozen classifier, in bits.",
    "q_accuracy": "is the share of generated features the frozen classifier assigns to their condition.",
    "diversity_ratio": "compares the spread of generated and real features per class (near 0 = mode collapse).",
    "frechet_distance": "compares the distributions of generated and real features (lower = closer).",
}
LANGUAGES = {"de": "German", "en": "English", "fr": "French", "es": "Spanish", "it": "Italian", "zh": "Chinese"}


def _link(name: str) -> str:
    return f"https://huggingface.co/{name}" if is_hub_id(name) and "/" in name else "#"


def _argument_types(results: dict):
    try:
        from .arguments import ARGUMENT_TYPES
    except ImportError:  # pragma: no cover - the package always has it
        return ()
    return ARGUMENT_TYPES


def write_model_card(folder: Path, results: dict, model_name: str | None = None, repo_id: str | None = None,
                     license: str | None = None) -> Path:
    """Write ``folder/README.md``; "How to use" names ``repo_id``, or the folder's name before a push."""
    folder = Path(folder)
    text = model_card_text(results, repo_id or local_model_ref(folder), model_name, license)
    path = folder / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


HOW_TO_REF = re.compile(r'pipeline\("audio-classification", model="([^"]+)"\)')


def retarget_card(text: str, repo_id: str) -> str:
    """A mirgan card naming ``repo_id`` wherever its code names the model (the local folder before a push)."""
    match = HOW_TO_REF.search(text)
    if not match or match.group(1) == repo_id:
        return text
    old = match.group(1)
    text = text.replace(f'"{old}"', f'"{repo_id}"')
    # the paragraph about the local folder does not apply on the Hub
    return re.sub(r"\n`" + re.escape(old) + r"` is the folder this card is in\..*?\n(?=\n|#)", "\n", text, flags=re.S)


def basic_model_card(config, repo_id: str) -> str:
    """A card for a model pushed without ``results.json`` (``model.push_to_hub``): what the config knows."""
    import yaml

    encoders = [config.audio_encoder_name, config.text_encoder_name]
    licence, note = model_license(None, encoders)
    meta = {"license": licence, "library_name": "transformers", "pipeline_tag": "audio-classification",
            "tags": ["speech-emotion-recognition", "audio-classification", "mirgan", "infogan", "custom_code"],
            "base_model": [e for e in encoders if is_hub_id(e)] or None}
    meta = {k: v for k, v in meta.items() if v is not None}
    labels = ", ".join(config.id2label[i] for i in range(config.num_labels))
    return f"""---
{yaml.safe_dump(meta, sort_keys=False).strip()}
---

# {repo_id.split("/")[-1]}

A mirgan speech emotion recognition model (mode **{config.mode}**, classes {labels}) on
`{config.audio_encoder_name}` and `{config.text_encoder_name}`. It was pushed without its training
results, so this card states no accuracy and no training data: {note}

## How to use

```python
import modeling_mirgan  # pip install mirgan: registers the mirgan classes with transformers
from transformers import pipeline

classifier = pipeline("audio-classification", model="{repo_id}")
classifier("speech.wav")
```

Without the package: `AutoModelForAudioClassification.from_pretrained("{repo_id}", trust_remote_code=True)`.
"""


# --------------------------------------------------------------------------------------------
# Dataset card of generated features
# --------------------------------------------------------------------------------------------


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` value for ``n`` rows."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def dataset_card(model_dir: str, model, metrics: dict, num_per_class: int, seed: int) -> str:
    """The card of a ``modeling_mirgan.generate`` dataset: the model named as on the Hub (or by its folder
    name, never a local path), the licence of the model it comes from, and the command that regenerates it."""
    import yaml

    local = Path(str(model_dir)).expanduser()
    model_ref = str(model_dir) if is_hub_id(str(model_dir)) else (local.resolve().name or str(model_dir))
    licence = None
    card_file = local / "README.md"
    if card_file.is_file():
        match = re.search(r"^license:\s*(\S+)\s*$", card_file.read_text(encoding="utf-8").split("\n---", 1)[0], re.M)
        licence = match.group(1) if match else None
    config = model.config
    if licence is None:
        licence = model_license(None, [config.audio_encoder_name, config.text_encoder_name])[0]
    meta = {"license": licence, "pretty_name": f"mirgan synthetic emotion features ({model_ref})",
            "tags": ["mirgan", "synthetic", "speech-emotion-recognition", "features"],
            "task_categories": ["audio-classification"], "size_categories": [size_category(num_per_class * config.num_labels)]}
    labels = ", ".join(config.id2label[i] for i in range(config.num_labels))
    quality = json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})
    return f"""---
{yaml.safe_dump(meta, sort_keys=False).strip()}
---

# Synthetic emotion features from `{model_ref}`

{num_per_class} generated features per class ({labels}), seed {seed}, from the mirgan generator of the
model `{model_ref}`. They are vectors in the model's shared audio-text space (dimension
{config.projection_dim}), not audio: use them to train or probe classifiers on this model's features.
Licence `{licence}`: the licence of the model they come from.

Generator quality (MI metrics): {quality}

Regenerate: `python -m modeling_mirgan.generate --model {model_ref} --num_per_class {num_per_class} --seed {seed} --output DIR`
"""
