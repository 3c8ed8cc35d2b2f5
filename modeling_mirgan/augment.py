"""Feature-level augmentation peers that every benchmark compares mirgan against (DESIGN §2)."""

from __future__ import annotations

import numpy as np

PEERS = ("none", "noise", "smote", "mixup")


def class_balanced_counts(labels: np.ndarray, num_labels: int, ratio: float) -> np.ndarray:
    """How many synthetic samples per class: ``ratio x`` the real total, topping up small classes first."""
    counts = np.bincount(labels, minlength=num_labels)
    total = int(round(ratio * counts.sum()))
    target = (counts.sum() + total) / num_labels
    need = np.clip(target - counts, 0, None)
    if need.sum() == 0:
        need = np.ones(num_labels)
    share = need / need.sum() * total
    out = np.floor(share).astype(int)
    out[np.argsort(share - out)[::-1][: total - out.sum()]] += 1
    return out


def peer_samples(method: str, features: np.ndarray, labels: np.ndarray, counts: np.ndarray, rng: np.random.Generator):
    """Synthetic ``(features, labels)`` from a non-generative peer, ``counts[c]`` per class."""
    if method == "smote":
        return smote_samples(features, labels, counts, rng)
    out_x, out_y = [], []
    for c, n in enumerate(counts):
        pool = features[labels == c]
        if n == 0 or len(pool) == 0:
            continue
        idx = rng.integers(0, len(pool), n)
        if method == "noise":
            x = pool[idx] + rng.normal(0.0, 0.1, (n, pool.shape[1])) * pool.std(0, keepdims=True)
        elif method == "mixup":  # within-class interpolation between random pairs
            partner = rng.integers(0, len(pool), n)
            lam = rng.uniform(0, 1, (n, 1))
            x = pool[idx] + lam * (pool[partner] - pool[idx])
        else:
            raise ValueError(f"unknown augmentation peer {method!r}; expected one of {PEERS}")
        out_x.append(x.astype(np.float32))
        out_y.append(np.full(n, c))
    if not out_x:
        return np.zeros((0, features.shape[1]), np.float32), np.zeros(0, int)
    return np.concatenate(out_x), np.concatenate(out_y)


def smote_samples(features, labels, counts, rng):
    """imbalanced-learn's SMOTE asked for ``counts[c]`` new samples of each class."""
    from imblearn.over_sampling import SMOTE

    real = np.bincount(labels, minlength=len(counts))
    present = real > 1
    strategy = {c: int(real[c] + counts[c]) for c in range(len(counts)) if present[c]}
    k = int(min(5, real[present].min() - 1))
    smote = SMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=int(rng.integers(2**31)))
    x, y = smote.fit_resample(features, labels)
    return x[len(features):].astype(np.float32), y[len(features):]
