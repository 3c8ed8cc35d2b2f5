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


def gradient_penalty(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor):
    """WGAN-GP penalty on interpolates between real and generated features."""
    alpha = torch.rand(real.shape[0], 1, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad = torch.autograd.grad(discriminator(mixed, labels).sum(), mixed, create_graph=True)[0]
    return ((grad.norm(dim=-1) - 1) ** 2).mean()


@torch.no_grad()
def generator_quality(
    real: torch.Tensor,
    real_labels: torch.Tensor,
    fake: torch.Tensor,
    fake_labels: torch.Tensor,
    fake_logits: torch.Tensor,
    num_labels: int,
) -> dict[str, float]:
    """MI estimate I(c; h_hat) = H(c) - CE in bits, Q-accuracy, diversity ratio, Fréchet distance."""
    counts = torch.bincount(fake_labels, minlength=num_labels).double()
    prior = counts / counts.sum()
    h_c = -(prior[prior > 0] * prior[prior > 0].log()).sum().item()
    ce = F.cross_entropy(fake_logits.double(), fake_labels).item()
    ratios = []
    for c in range(num_labels):
        r, g = real[real_labels == c], fake[fake_labels == c]
        if len(r) > 1 and len(g) > 1:
            ratios.append((torch.pdist(g.double()).mean() / torch.pdist(r.double()).mean().clamp_min(1e-12)).item())
    return {
        "mi_bits": (h_c - ce) / math.log(2),
        "q_accuracy": (fake_logits.argmax(-1) == fake_labels).double().mean().item(),
        "diversity_ratio": float(np.mean(ratios)) if ratios else float("nan"),
        "frechet_distance": frechet_distance(real.double().cpu().numpy(), fake.double().cpu().numpy()),
    }


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    mu_r, mu_f = real.mean(0), fake.mean(0)
    cov_r, cov_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = linalg.sqrtm(cov_r @ cov_f)
    covmean = np.real(covmean)
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(cov_r + cov_f - 2 * covmean))
