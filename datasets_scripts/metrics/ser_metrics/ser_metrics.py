"""Speech emotion recognition metrics for `evaluate`, loadable offline by path.

UA: unweighted accuracy (mean per-class recall, = balanced accuracy). WA: weighted accuracy (plain
accuracy). F1: macro-F1. Classes absent from the references are left out of UA and F1.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "UA (mean per-class recall), WA (accuracy) and macro-F1 for emotion classification."
_KWARGS = """
predictions: predicted class ids. references: true class ids.
Returns: {"ua", "wa", "f1"} as floats in [0, 1].
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class SerMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions), np.asarray(references)
        classes = np.unique(references)
        recalls, f1s = [], []
        for c in classes:
            tp = np.sum((predictions == c) & (references == c))
            support, predicted = np.sum(references == c), np.sum(predictions == c)
            recall = tp / support
            precision = tp / predicted if predicted else 0.0
            recalls.append(recall)
            f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
        return {
            "ua": float(np.mean(recalls)),
            "wa": float(np.mean(predictions == references)),
            "f1": float(np.mean(f1s)),
        }
