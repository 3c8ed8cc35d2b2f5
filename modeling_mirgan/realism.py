"""Can generated features be told from real ones? Metrics that a few tight clusters cannot fool.

Every generator is scored against *held-out* real stage-1 features (validation speakers the
generator never saw), next to the floor that speaker shift alone sets (the generator's own training
rows against the same held-out rows):

- ``c2st``: a classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017) with the leave-one-out
  1-nearest-neighbour classifier on standardised rows: it tells generated from held-out real rows of
  the same class; 0.5 means indistinguishable. It sees collapse (a cluster of near-identical samples
  is its own nearest neighbour) and off-manifold spread, which a linear test cannot: a point mass at
  the class mean is not linearly separable from the real cloud around it. ``c2st_linear`` is the
  cross-validated logistic-regression test beside it. ``*_floor`` is the same test between real
  training and held-out rows (what speaker shift alone gives).
- ``precision`` / ``recall``: improved precision and recall (Kynkäänniemi et al., NeurIPS 2019): the
  share of generated rows inside the k-NN manifold of the held-out real ones, and vice versa;
  ``*_floor``: the same for the real training rows (what speaker shift alone gives).
- ``frechet_ratio``: Fréchet distance of generated to held-out rows over that of the training rows.
- ``nn_ratio``: mean nearest-neighbour distance within generated rows over that within real rows of
  equal number (about 0 for a few tight clusters, 1 for the real spread).
- ``memorisation``: distance from a generated row to its nearest training row over that from a
  held-out row (about 0 for a generator that copies its training rows; C2ST alone cannot see that).
- ``q_accuracy`` next to ``real_accuracy``: share of generated rows that Q assigns to their class,
  and the classifier's accuracy on the held-out real rows (samples as hard as real ones, or not).

Sizes are capped (``max_per_class``), so the cost is linear in the number of samples.
"""

from __future__ import annotations

import math

import numpy as np
import torch

MAX_PER_CLASS = 1000


def _cap(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x[rng.choice(len(x), n, replace=False)] if len(x) > n else x


def _balanced(a: np.ndarray, b: np.ndarray, rng: np.random.Generator):
    n = min(len(a), len(b), MAX_PER_CLASS)
    return np.concatenate([_cap(a, n, rng), _cap(b, n, rng)]), np.r_[np.zeros(n), np.ones(n)], n


def c2st(a: np.ndarray, b: np.ndarray, seed: int = 0) -> float:
    """Leave-one-out 1-NN accuracy telling rows of ``a`` from rows of ``b`` (equal numbers drawn from
    each, standardised on the pooled rows); nan when either side has fewer than 4 rows."""
    rng = np.random.default_rng(seed)
    x, y, n = _balanced(a, b, rng)
    if n < 4:
        return float("nan")
    x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-8)
    xt = torch.from_numpy(x).double()
    d = torch.cdist(xt, xt)
    d.fill_diagonal_(float("inf"))
    return float((y[d.argmin(1).numpy()] == y).mean())


def c2st_linear(a: np.ndarray, b: np.ndarray, seed: int = 0, folds: int = 5) -> float:
    """Cross-validated accuracy of a logistic regression telling rows of ``a`` from rows of ``b``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    x, y, n = _balanced(a, b, rng)
    if n < 4:
        return float("nan")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
    cv = StratifiedKFold(n_splits=min(folds, n), shuffle=True, random_state=seed)
    return float(cross_val_score(model, x, y, cv=cv).mean())


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    d = torch.cdist(torch.from_numpy(x).double(), torch.from_numpy(x).double())
    return d.topk(min(k + 1, len(x)), largest=False).values[:, -1].numpy()  # column 0 is the point itself


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision (fake inside the real manifold) and recall (real inside the fake manifold)."""
    if len(real) <= k or len(fake) <= k:
        return float("nan"), float("nan")
    r_rad, f_rad = _knn_radii(real, k), _knn_radii(fake, k)
    d = torch.cdist(torch.from_numpy(fake).double(), torch.from_numpy(real).double()).numpy()  # [fake, real]
    precision = float((d <= r_rad[None, :]).any(1).mean())
    recall = float((d.T <= f_rad[None, :]).any(1).mean())
    return precision, recall


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to ``a`` and ``b``; nan when either has < 2 rows."""
    from .losses import frechet_from_moments

    if len(a) < 2 or len(b) < 2:
        return float("nan")
    return frechet_from_moments(a.mean(0), np.cov(a, rowvar=False), b)


def mean_nn_distance(x: np.ndarray, to: np.ndarray | None = None) -> float:
    """Mean distance of each row of ``x`` to its nearest other row (of ``x``, or of ``to``)."""
    xt = torch.from_numpy(x).double()
    if to is None:
        if len(x) < 2:
            return float("nan")
        d = torch.cdist(xt, xt)
        d.fill_diagonal_(float("inf"))
    else:
        d = torch.cdist(xt, torch.from_numpy(to).double())
    return float(d.min(1).values.mean())


def realism(train: np.ndarray, train_y: np.ndarray, held: np.ndarray, held_y: np.ndarray, fake: np.ndarray,
            fake_y: np.ndarray, num_labels: int, seed: int = 0) -> dict:
    """Per-class and mean realism of ``fake`` against ``held`` (held-out real), with ``train`` (the rows
    the generator learned from) as the floor. See the module docstring."""
    rng = np.random.default_rng(seed)
    per_class = {}
    for c in range(num_labels):
        t, h, f = train[train_y == c], held[held_y == c], fake[fake_y == c]
        if len(h) < 4 or len(f) < 4 or len(t) < 4:
            continue
        n = min(len(t), MAX_PER_CLASS)
        t, f = _cap(t, n, rng), _cap(f, n, rng)
        precision, recall = precision_recall(h, f)
        precision_floor, recall_floor = precision_recall(h, t)
        within_real = mean_nn_distance(t)
        per_class[c] = {
            "c2st": c2st(f, h, seed), "c2st_floor": c2st(t, h, seed),
            "c2st_linear": c2st_linear(f, h, seed), "c2st_linear_floor": c2st_linear(t, h, seed),
            "precision": precision, "recall": recall, "precision_floor": precision_floor, "recall_floor": recall_floor,
            "nn_ratio": mean_nn_distance(f) / within_real if within_real > 0 else float("nan"),
            "memorisation": mean_nn_distance(f, t) / max(mean_nn_distance(h, t), 1e-12),
        }
    out = {k: float(np.nanmean([v[k] for v in per_class.values()])) if per_class else float("nan")
           for k in ("c2st", "c2st_floor", "c2st_linear", "c2st_linear_floor", "precision", "recall", "precision_floor",
                      "recall_floor", "nn_ratio", "memorisation")}
    floor = frechet(_cap(train, MAX_PER_CLASS * num_labels, rng), held)
    out["frechet_distance"] = frechet(_cap(fake, MAX_PER_CLASS * num_labels, rng), held)
    out["frechet_floor"] = floor
    out["frechet_ratio"] = out["frechet_distance"] / floor if floor and math.isfinite(floor) else float("nan")
    out["per_class"] = {str(c): v for c, v in per_class.items()}
    return out


@torch.no_grad()
def generator_realism(model, x: torch.Tensor, y: torch.Tensor, held: torch.Tensor, held_y: torch.Tensor,
                      text: torch.Tensor, seed: int, oversample: int = 1, select_by: str = "q_confidence") -> dict:
    """Realism and MI metrics of the model's trained generator: as many samples per class as real
    training rows (``x``), scored against the held-out real rows ``held``; drawn as stage 3 draws them
    (``oversample`` candidates each, one kept by ``select_by``), so the metrics describe what it trains on."""
    from .losses import generated_quality
    from .stages import text_conditions

    model.eval()
    labels = y.clone()
    conditions = text_conditions(labels, text, y, seed) if model.generator.needs_text else None
    fake = model.sample_features(labels, conditions, seed=seed, oversample=oversample, select_by=select_by)
    k = model.config.num_labels
    out = realism(x.numpy(), y.numpy(), held.numpy(), held_y.numpy(), fake.numpy(), labels.numpy(), k, seed)
    fake_logits = model.q_logits(fake)
    out["real_accuracy"] = float((model.q_logits(held).argmax(-1) == held_y).float().mean())
    h, u = model.split_samples(fake)
    stats = generated_quality(h, labels, fake_logits, *real_moments(model.split_samples(x)[0], y, k), k)
    out.update({key: stats[key] for key in ("mi_bits", "q_accuracy", "diversity_ratio")})
    if model.config.multimodal:  # semantic drift check: do generated pairs still agree in the aligned space?
        from .losses import info_nce

        out["pair_cosine"] = float(torch.nn.functional.cosine_similarity(h, u).mean())
        out["pair_info_nce"] = float(info_nce(h, u, model.logit_scale))
    return out


def real_moments(h: torch.Tensor, labels: torch.Tensor, num_labels: int):
    """Mean, covariance and per-class mean pairwise distance of real features (the generator reference)."""
    h = h.double()
    spread = torch.zeros(num_labels, dtype=torch.float64)
    rng = torch.Generator().manual_seed(0)
    for c in range(num_labels):
        rows = h[labels == c]
        if len(rows) > MAX_PER_CLASS:
            rows = rows[torch.randperm(len(rows), generator=rng)[:MAX_PER_CLASS]]
        if len(rows) > 1:
            spread[c] = torch.pdist(rows).mean()
    return h.mean(0), torch.cov(h.T), spread
