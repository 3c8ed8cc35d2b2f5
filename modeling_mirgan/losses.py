"""Losses of the three stages and the MI quality metrics of a generator (DESIGN §1)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import linalg
from torch import nn
from torch.nn import functional as F


def info_nce(audio: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, groups: torch.Tensor | None = None):
    """Symmetric InfoNCE between L2-normalised ``audio`` and ``text`` rows (CLAP-style temperature).

    Rows sharing a ``groups`` id (the same transcript) are not negatives of each other: their
    similarities are removed from the softmax, except the diagonal positive."""
    a, t = F.normalize(audio, dim=-1), F.normalize(text, dim=-1)
    logits = logit_scale.clamp(max=math.log(100.0)).exp() * a @ t.T
    if groups is not None:
        same = groups[:, None] == groups[None, :]
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def information_maximization(logits: torch.Tensor) -> torch.Tensor:
    """``-(H(mean p) - mean H(p))``: minimising it maximises a label-free estimate of I(h; y_hat)."""
    p = logits.softmax(-1)
    marginal = p.mean(0)
    h_marginal = -(marginal * marginal.clamp_min(1e-12).log()).sum()
    h_conditional = -(p * p.clamp_min(1e-12).log()).sum(-1).mean()
    return -(h_marginal - h_conditional)


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def generator_adversarial_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    if kind in ("hinge", "wgan-gp"):
        return -fake.mean()
    return F.softplus(-fake).mean()


def mmd(fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Squared maximum mean discrepancy between class-matched batches (a generative moment-matching
    term, Li et al. 2015): RBF kernels at 0.5-4x the real batch's median distance, on samples joined
    with their one-hot class (scaled to that distance) so classes are matched, not only the marginal."""
    with torch.no_grad():
        scale = torch.pdist(real).median().clamp_min(1e-6)
    onehot = F.one_hot(labels).to(real.dtype) * scale
    x, y = torch.cat([fake, onehot], -1), torch.cat([real, onehot], -1)
    both = torch.cat([x, y])
    d2 = torch.cdist(both, both).pow(2)
    kernel = sum(torch.exp(-d2 / (2 * (b * scale) ** 2)) for b in (0.5, 1.0, 2.0, 4.0))
    n = len(fake)
    return kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean()


def mode_seeking(fake: torch.Tensor, fake_again: torch.Tensor, noise: torch.Tensor, noise_again: torch.Tensor,
                 real: torch.Tensor) -> torch.Tensor:
    """The mode-seeking term of MSGAN (Mao et al., CVPR 2019), ``1 / (d(G(z1), G(z2)) / d(z1, z2))`` for two
    noise draws under the same condition: the sample distance in units of the real batch's mean pairwise
    distance and the noise distance in units of its expectation, so the ratio is 1 for samples as far apart
    as random real rows; minimising it spreads the samples of a condition."""
    with torch.no_grad():
        scale = torch.pdist(real).mean().clamp_min(1e-6)
    spread = (fake - fake_again).norm(dim=-1) / scale
    step = (noise - noise_again).norm(dim=-1) / math.sqrt(2 * noise.shape[-1])
    return 1.0 / ((spread / step).mean() + 1e-5)


def gradient_penalty(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor):
    """WGAN-GP penalty on interpolates between real and generated features."""
    alpha = torch.rand(real.shape[0], 1, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad = torch.autograd.grad(discriminator(mixed, labels).sum(), mixed, create_graph=True)[0]
    return ((grad.norm(dim=-1) - 1) ** 2).mean()


@torch.no_grad()
def generated_quality(fake, fake_labels, fake_logits, real_mean, real_cov, real_class_spread, num_labels) -> dict[str, float]:
    """MI metrics of generated features against moments of the real ones (mean, covariance, per-class
    spread): I(c; h_hat) = H(c) - CE in bits, Q-accuracy, diversity ratio, Fréchet distance. Pairwise
    distances use at most 1000 samples per class, so the cost is linear in the number of samples."""
    from .realism import MAX_PER_CLASS, frechet

    if len(fake) == 0:
        raise ValueError("no generated samples to score")
    counts = torch.bincount(fake_labels, minlength=num_labels).double()
    prior = counts[counts > 0] / counts.sum()
    ce = F.cross_entropy(fake_logits.double(), fake_labels).item()
    ratios = []
    for c in range(num_labels):
        rows = fake[fake_labels == c].double()[:MAX_PER_CLASS]
        if len(rows) > 1 and real_class_spread[c] > 0:
            ratios.append((torch.pdist(rows).mean() / real_class_spread[c]).item())
    fd = float("nan")
    if real_cov.abs().sum() > 0 and len(fake) > 1:
        rng = np.random.default_rng(0)
        sample = fake.double().numpy()
        sample = sample[rng.choice(len(sample), min(len(sample), MAX_PER_CLASS * num_labels), replace=False)]
        fd = frechet_from_moments(real_mean.double().numpy(), real_cov.double().numpy(), sample)
    return {
        "mi_bits": (-(prior * prior.log()).sum().item() - ce) / math.log(2),
        "q_accuracy": (fake_logits.argmax(-1) == fake_labels).double().mean().item(),
        "diversity_ratio": float(np.mean(ratios)) if ratios else float("nan"),
        "frechet_distance": fd,
    }


def frechet_from_moments(mu_r: np.ndarray, cov_r: np.ndarray, fake: np.ndarray) -> float:
    mu_f, cov_f = fake.mean(0), np.cov(fake, rowvar=False)
    if not (np.isfinite(cov_f).all() and np.isfinite(cov_r).all()):
        return float("nan")
    covmean = np.real(linalg.sqrtm(cov_r @ cov_f))
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(cov_r + cov_f - 2 * covmean))
