"""Speech emotion recognition metrics as an ``evaluate`` module that loads offline.

    from modeling_mirgan.metrics import load_ser_metrics

    ser = load_ser_metrics()
    ser.compute(predictions=[0, 1, 1], references=[0, 1, 0])  # {"ua": 0.75, "wa": 0.667, "f1": 0.667}

``evaluate.load("accuracy")`` downloads its script from the Hub; ``ser_metrics`` ships with mirgan
(``datasets_scripts/metrics/ser_metrics``, package data of a ``pip install``) and ``load_ser_metrics``
loads it by path, so it works without a network. UA is the mean per-class recall (balanced
accuracy), WA the accuracy, F1 the macro-F1. ``compute_metrics`` is a ready ``Trainer`` callback.
"""

from __future__ import annotations

from pathlib import Path


def ser_metrics_path() -> Path:
    """The folder of the shipped ``ser_metrics`` evaluate module (in the checkout or the installed package)."""
    from importlib.resources import files

    path = Path(str(files("datasets_scripts.metrics") / "ser_metrics"))
    if not (path / "ser_metrics.py").is_file():
        raise FileNotFoundError(f"{path}: the ser_metrics evaluate module is missing from this mirgan installation")
    return path


def load_ser_metrics(**kwargs):
    """``evaluate.load`` of the shipped UA/WA/F1 module; keyword arguments go to ``evaluate.load``."""
    import evaluate

    return evaluate.load(str(ser_metrics_path()), **kwargs)


_METRIC = None


def compute_metrics(eval_pred) -> dict:
    """``transformers.Trainer(compute_metrics=...)``: UA, WA and macro-F1 of the logits' argmax."""
    import numpy as np

    global _METRIC
    if _METRIC is None:
        _METRIC = load_ser_metrics()
    logits, labels = eval_pred[0], eval_pred[1]
    logits = logits[0] if isinstance(logits, tuple) else logits
    return _METRIC.compute(predictions=np.asarray(logits).argmax(-1), references=np.asarray(labels))
