"""The realism metrics catch the generators that round 1's metrics let through."""

from __future__ import annotations

import numpy as np
import pytest

from modeling_mirgan import realism


def real_like(n: int, seed: int, dim: int = 64, rank: int = 12) -> np.ndarray:
    """Rows on a low-rank manifold with noise, like stage-1 features of one class."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(123).standard_normal((rank, dim))
    return rng.standard_normal((n, rank)) @ basis + 0.3 * rng.standard_normal((n, dim)) + 2.0


@pytest.fixture(scope="module")
def rows():
    return real_like(120, 0), real_like(120, 1)  # "training" rows and "held-out" rows of one class


def test_two_halves_of_real_rows_are_indistinguishable(rows):
    train, held = rows
    assert abs(realism.c2st(train, held) - 0.5) < 0.1  # measured 0.50 (1-NN), 0.54 (linear)
    assert abs(realism.c2st_linear(train, held) - 0.5) < 0.12


def test_class_mean_generator_is_caught(rows):
    train, held = rows
    means = np.repeat(train.mean(0, keepdims=True), 120, 0) + 1e-3 * np.random.default_rng(2).standard_normal((120, 64))
    assert realism.c2st(means, held) >= 0.9  # measured 0.98 (a linear test gives 0.80)
    r = realism.realism(train, np.zeros(120, int), held, np.zeros(120, int), means, np.zeros(120, int), 1)
    assert r["recall"] < 0.2 and r["nn_ratio"] < 0.05


def test_generator_ignoring_noise_collapses_to_points(rows):
    """A few tight clusters far apart (one per fixed sentence): the mean-pairwise spread looks fine, C2ST does not."""
    train, held = rows
    rng = np.random.default_rng(3)
    centres = train[rng.choice(len(train), 10, replace=False)] * 1.5
    clusters = np.repeat(centres, 12, 0) + 1e-2 * rng.standard_normal((120, 64))
    assert realism.c2st(clusters, held) >= 0.9
    r = realism.realism(train, np.zeros(120, int), held, np.zeros(120, int), clusters, np.zeros(120, int), 1)
    assert r["nn_ratio"] < 0.1


def test_copying_the_training_rows_is_caught_by_memorisation(rows):
    train, held = rows
    copies = train + 1e-4
    r = realism.realism(train, np.zeros(120, int), held, np.zeros(120, int), copies, np.zeros(120, int), 1)
    assert r["c2st"] < 0.65  # C2ST alone cannot see a copy ...
    assert r["memorisation"] < 0.05  # ... the distance to the nearest training row can (real held-out: ~1)
    fresh = realism.realism(train, np.zeros(120, int), held, np.zeros(120, int), real_like(120, 5), np.zeros(120, int), 1)
    assert 0.8 < fresh["memorisation"] < 1.25 and fresh["precision"] > 0.7 and fresh["recall"] > 0.7
    # the floors: the training rows scored like a generator, against the same held-out rows
    assert fresh["precision_floor"] > 0.7 and fresh["recall_floor"] > 0.7
    assert r["precision_floor"] == fresh["precision_floor"] and r["recall_floor"] == fresh["recall_floor"]
    assert fresh["frechet_ratio"] < 1.5


def test_metrics_cap_the_samples_they_compare(monkeypatch):
    """Pairwise distances never see more than MAX_PER_CLASS rows a side: the cost is linear in samples."""
    import torch

    sizes = []
    cdist = torch.cdist
    monkeypatch.setattr(torch, "cdist", lambda a, b, *args, **kw: (sizes.append(max(len(a), len(b))), cdist(a, b, *args, **kw))[1])
    train, held = real_like(200, 0), real_like(200, 1)
    n = 5 * realism.MAX_PER_CLASS
    realism.realism(train, np.zeros(200, int), held, np.zeros(200, int), real_like(n, 7), np.zeros(n, int), 1)
    assert sizes and max(sizes) <= 2 * realism.MAX_PER_CLASS
