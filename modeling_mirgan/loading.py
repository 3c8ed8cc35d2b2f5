"""Checks that a model folder is what it claims before and after ``from_pretrained``.

A model that loads must be the model that was saved: every weight present (no randomly
initialised head), every weight finite, labels numbered 0..n-1. Anything else is refused with an
error that names the folder or file and the problem:

- a local path that does not exist: "no such folder" (after finishing an interrupted
  ``safe_io.replace_folder``, so a kill while a model was replaced never loses the model);
- pickle files: weights in pickles are refused (loading them can run code). The files that
  ``transformers.Trainer`` writes beside safetensors weights (``training_args.bin``,
  ``optimizer.pt``, ``scheduler.pt``, ``scaler.pt``, ``rng_state*.pth``) are training state, not
  weights: they are left alone and never unpickled, so ``Trainer.save_model`` output and Trainer
  checkpoints load;
- a damaged or truncated ``*.safetensors`` (or a shard its index lists that is absent);
- an empty or damaged ``config.json``; ``id2label`` whose ids are not exactly 0..n-1, or that
  repeats a label;
- after loading: weights the checkpoint lacks (``classifier.weight`` ...), weights of the wrong
  shape, and NaN/inf weights.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
# What transformers.Trainer writes into output_dir / checkpoint-N besides the model's own files.
TRAINER_STATE_FILES = re.compile(
    r"^(training_args\.bin|optimizer\.pt|scheduler\.pt|scaler\.pt|rng_state(_\d+)?\.pth)$")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class ModelFolderError(ValueError):
    """A model folder (or file in it) that cannot be loaded as the model that was saved."""


def trainer_state_file(name: str) -> bool:
    return bool(TRAINER_STATE_FILES.match(name))


def pickled_weight_files(folder: Path) -> list[str]:
    """Pickle files in ``folder`` that could hold weights (Trainer's own state files excepted)."""
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES and not trainer_state_file(p.name))


def looks_local(name: str) -> bool:
    """Whether ``name`` means a path on this machine rather than a Hub repo id."""
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")) or "\\" in name or not HUB_ID.match(name):
        return True
    return path.parent != Path(".") and path.parent.is_dir()  # "out/model" where out/ exists


def locate(name_or_path, subfolder: str = "") -> Path | None:
    """The local model folder to load (recovering an interrupted replacement), None for a Hub id,
    or ``ModelFolderError`` ("no such folder") for a local path that does not exist."""
    from .safe_io import recover_folder

    name = str(name_or_path)
    path = Path(name).expanduser()
    if not looks_local(name):
        return None
    if not path.exists():
        recovered = recover_folder(path)
        if recovered is None:
            parent = path.parent
            hint = "" if parent.is_dir() else f" (nor does {parent})"
            raise ModelFolderError(f"{path}: no such folder{hint}; pass the folder that holds config.json and "
                                   "model.safetensors (e.g. OUTPUT_DIR/model), or a Hub repo id")
        path = recovered
    if not path.is_dir():
        raise ModelFolderError(f"{path}: not a folder; a model is a folder with config.json and model.safetensors")
    if subfolder:
        path = path / subfolder
        if not path.is_dir():
            raise ModelFolderError(f"{path}: no such folder (subfolder {subfolder!r})")
    return path


def check_config_file(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise ModelFolderError(f"{path}: missing; {folder} is not a saved model (save it with save_pretrained)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFolderError(f"{path}: damaged or truncated config file ({err}); re-save or re-download the model") from None
    if not isinstance(config, dict):
        raise ModelFolderError(f"{path}: holds {type(config).__name__}, expected a JSON object")
    if "id2label" in config:
        check_labels(config.get("id2label") or {}, config.get("label2id"), str(path))
    return config


def check_labels(id2label: dict, label2id: dict | None, where: str) -> list[str]:
    """The labels in id order; ModelFolderError unless the ids are exactly 0..n-1 and labels unique."""
    try:
        ids = sorted(int(k) for k in id2label)
    except (TypeError, ValueError):
        raise ModelFolderError(f"{where}: id2label keys {list(id2label)} are not integer class ids") from None
    if ids != list(range(len(ids))):
        gaps = sorted(set(range(max(ids, default=-1) + 1)) - set(ids))
        raise ModelFolderError(
            f"{where}: id2label must number the classes 0..{len(ids) - 1}, found ids {ids}"
            + (f" (missing {gaps})" if gaps else "") + "; renumber id2label and label2id consecutively from 0")
    labels = [str(id2label.get(i, id2label.get(str(i)))) for i in ids]
    repeated = sorted({l for l in labels if labels.count(l) > 1})
    if repeated:
        raise ModelFolderError(f"{where}: id2label repeats labels {repeated}; each class needs its own label")
    if label2id:
        wrong = {l: label2id.get(l) for i, l in enumerate(labels) if label2id.get(l) is not None and int(label2id[l]) != i}
        if wrong:
            raise ModelFolderError(f"{where}: label2id {wrong} disagrees with id2label {dict(enumerate(labels))}")
    return labels


def check_safetensors(folder: Path) -> None:
    """Every safetensors file (and every shard an index names) exists and has a readable header."""
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    files = sorted(folder.glob("*.safetensors"))
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
            raise ModelFolderError(f"{index}: damaged shard index ({err})") from None
        absent = [s for s in shards if not (folder / s).is_file()]
        if absent:
            raise ModelFolderError(f"{index}: lists shards {absent} that are missing from {folder}")
    if not files:
        pickled = pickled_weight_files(folder)
        raise ModelFolderError(
            f"{folder}: no model.safetensors" + (f" (only pickle files {pickled}, which mirgan refuses)" if pickled else "")
            + "; mirgan loads weights only from safetensors")
    for path in files:
        try:
            with safe_open(str(path), "pt") as f:
                f.keys()
        except Exception as err:  # noqa: BLE001 - SafetensorError and OSError alike mean the file is unusable
            raise ModelFolderError(f"{path}: damaged or truncated safetensors file ({err}); re-save the model or "
                                   "download it again") from None


def check_loaded(model, info: dict, where: str) -> None:
    """After loading: no weight missing or of the wrong shape, every floating tensor finite, labels 0..n-1."""
    import torch

    missing = sorted(info.get("missing_keys") or [])
    mismatched = info.get("mismatched_keys") or []
    if missing:
        shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise ModelFolderError(f"{where}: the checkpoint lacks weights {shown}; they would be randomly initialised "
                               "and the predictions meaningless. Re-save the complete model with save_pretrained()")
    if mismatched:
        shown = ", ".join(f"{k} {tuple(a)} vs {tuple(b)}" for k, a, b in list(mismatched)[:10])
        raise ModelFolderError(f"{where}: weights of the wrong shape for this config: {shown}")
    bad = [name for name, tensor in [*model.named_parameters(), *model.named_buffers()]
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        shown = ", ".join(bad[:20]) + (f" and {len(bad) - 20} more" if len(bad) > 20 else "")
        raise ModelFolderError(f"{where}: weights contain NaN/inf values ({shown}); the model would score NaN. "
                               "The checkpoint is damaged or training diverged: re-train or use another checkpoint")
    check_labels(dict(model.config.id2label), dict(model.config.label2id or {}), f"{where} config")


def check_folder(folder: Path) -> None:
    """Everything that can be checked before loading a local folder."""
    pickled = pickled_weight_files(folder)
    if pickled:
        has_safetensors = any(folder.glob("*.safetensors"))
        raise ValueError(
            f"{folder}: refusing to load a checkpoint that carries pickle files {pickled} "
            f"({'beside' if has_safetensors else 'instead of'} model.safetensors). Pickled weights can run code "
            "when loaded; mirgan loads weights only from safetensors. Remove the pickle files if you trust the "
            "safetensors weights, or re-save the model from a trusted source with save_pretrained(). "
            "(Trainer's own state files, training_args.bin, optimizer.pt, scheduler.pt, rng_state.pth, are "
            "allowed and never read.)")
    check_config_file(folder)
    check_safetensors(folder)
