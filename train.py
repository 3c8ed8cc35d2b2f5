"""Train mirgan end to end: encoders -> feature cache -> stage 1 -> stage 2 InfoGAN -> stage 3.

    python train.py                                  # the embedded EmoDB 4-class default
    python train.py --dataset_dir DIR --classes angry happy neutral sad
    python train.py config.yaml                      # the same arguments from a YAML/JSON file
    torchrun --nproc_per_node 2 train.py ...         # data parallel (CPU: gloo)

For every speaker-independent fold: stage 1 trains the projections and classifiers on cached
encoder features (validation speakers inside the training fold pick the number of epochs and the
synthetic ratio), the stage-1 features h/u are cached with ``datasets.map``, stage 2 trains the
generator with the MI term computed through the frozen stage-1 classifier and alignment heads,
stage 3 retrains the classifier on real + synthetic features. Held-out speakers give UA/WA/F1 for
the stage-1 baseline and for every augmentation method. A final model is then trained on all
speakers and saved with its processor and model card.
"""

from __future__ import annotations

import os

# OpenMP threads that sleep instead of spinning while they wait: on a shared or busy CPU, spinning
# threads made extraction 2x and stage 2 4-25x slower (bench/speed.py). Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json
import logging
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm
from transformers import HfArgumentParser

import modeling_mirgan
from datasets_scripts import Fold, Protocol, load_corpus
from datasets_scripts.features import drop_bad_clips, extract_encoder_features, fingerprint, stage1_features, state_hash
from modeling_mirgan import from_encoders
from modeling_mirgan.augment import PEERS, class_balanced_counts, peer_samples
from modeling_mirgan.losses import (
    discriminator_loss,
    generator_adversarial_loss,
    generator_quality,
    gradient_penalty,
    info_nce,
    information_maximization,
)
from processing import build_processor

logger = logging.getLogger("mirgan")
ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = ROOT / "data" / "emodb4"
GENERATIVE = ("cgan", "mirgan")
LORA_TARGETS = {  # the attention query/value projections of each supported audio architecture
    "whisper": ["q_proj", "v_proj"],
    "wav2vec2": ["q_proj", "v_proj"],
    "hubert": ["q_proj", "v_proj"],
    "wavlm": ["q_proj", "v_proj"],
    "audio-spectrogram-transformer": ["query", "value"],
}


@dataclass
class DataArguments:
    dataset: str = field(default="audiofolder", metadata={"help": "iemocap, msp_improv, msp_podcast, emodb, ravdess or audiofolder"})
    dataset_dir: str = field(default=str(DEFAULT_DATA), metadata={"help": "corpus folder (alias: --data_dir)"})
    protocol: str | None = field(default=None, metadata={"help": "corpus protocol, e.g. 4class; default: the literature's"})
    label_column: str = "label"
    speaker_column: str = "speaker"
    text_column: str = "text"
    classes: list[str] | None = field(default=None, metadata={"help": "labels to keep, in this order (others are dropped and counted)"})
    folds: int = field(default=5, metadata={"help": "k speaker folds for corpora without a standard protocol"})
    test_speakers: list[str] | None = field(default=None, metadata={"help": "a fixed test split instead of k folds"})
    max_folds: int | None = field(default=None, metadata={"help": "run only the first N folds (quick checks)"})
    skip_bad: bool = field(default=False, metadata={"help": "skip undecodable/invalid clips (counted in results.json) instead of stopping"})
    transcripts: str = field(default="ground_truth", metadata={"help": "ground_truth (the text column) or asr (offline Whisper, cached)"})
    asr_model: str = "openai/whisper-base"
    asr_language: str | None = field(default=None, metadata={"help": "e.g. de; default: Whisper detects it"})


@dataclass
class ModelArguments:
    audio_encoder: str = "openai/whisper-base"
    text_encoder: str = "sentence-transformers/all-MiniLM-L6-v2"
    mode: str = field(default="unimodal", metadata={"help": "unimodal (audio) or multimodal (audio + transcript)"})
    layer_pooling: str = field(default="weighted", metadata={"help": "weighted, mean or last"})
    projection_dim: int = 256
    noise_dim: int = 64
    generator_hidden_sizes: list[int] = field(default_factory=list)
    generator_text_condition: bool = True
    discriminator_hidden_sizes: list[int] = field(default_factory=lambda: [256], metadata={"help": "[] is a linear discriminator; a linear one only matches class means (diversity ratio ~2.5 on EmoDB)"})
    adversarial_loss: str = "nonsaturating"
    encoder_mode: str = field(default="frozen", metadata={"help": "frozen (cached features), lora (peft adapters) or full fine-tuning of the audio encoder"})
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = field(default=None, metadata={"help": f"default per architecture: {LORA_TARGETS}"})


@dataclass
class TrainArguments:
    output_dir: str | None = field(default=None, metadata={"help": "default: outputs/<dataset>-<mode>"})
    cache_dir: str | None = field(default=None, metadata={"help": "feature cache; default: <MIRGAN_CACHE>/features"})
    seed: int = 0
    seeds: list[int] | None = field(default=None, metadata={"help": "several seeds (benchmarks); default: [seed]"})
    fractions: list[float] = field(default_factory=lambda: [1.0], metadata={"help": "stratified share of each training fold"})
    methods: list[str] = field(default_factory=lambda: ["mirgan"], metadata={"help": f"augmentation methods: {PEERS + GENERATIVE}"})
    lambda_con: float = 0.1
    lambda_im: float = 0.1
    lambda_info: float = 1.0
    lambda_text_info: float = 0.1
    stage1_epochs: int = 100
    stage1_lr: float = 3e-3
    weight_decay: float = 1e-2
    batch_size: int = 32
    gan_steps: int = 600
    gan_lr: float = 2e-4
    gan_batch_size: int = 64
    synthetic_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0], metadata={"help": "candidates, chosen on validation speakers"})
    synthetic_weight: float = 0.5
    synthetic_oversample: int = field(default=1, metadata={"help": "draw N candidates per generated sample and keep the most Q-confident (1: no filtering)"})
    stage3_epochs: int = 40
    stage3_lr: float = 1e-3
    extraction_batch_size: int = 8
    encoder_epochs: int = field(default=3, metadata={"help": "epochs of encoder adaptation per fold (encoder_mode lora/full)"})
    encoder_lr: float | None = field(default=None, metadata={"help": "default: 1e-4 for lora, 1e-5 for full"})
    resume: bool = False
    final_model: bool = field(default=True, metadata={"help": "train and save a model on all speakers"})
    report: bool = field(default=True, metadata={"help": "write report/ (plots and report.md)"})
    push_to_hub: bool = False
    hub_model_id: str | None = None


# --------------------------------------------------------------------------------------------
# Small numerics on cached features
# --------------------------------------------------------------------------------------------


def stratified_subsample(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a stratified ``fraction`` of rows (at least 2 per class), the same for every method."""
    if fraction >= 1.0:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.extend(rng.permutation(idx)[: max(2, int(round(fraction * len(idx))))])
    return np.sort(np.array(keep))


def validation_speakers(speakers: list[str], genders: list[str], k: int) -> list[str]:
    """About 1/k of the training speakers (gender-balanced when genders are known) for selection."""
    unique = sorted(set(speakers))
    by_gender: dict[str, list[str]] = {}
    gender_of = dict(zip(speakers, genders))
    for s in unique:
        by_gender.setdefault(gender_of.get(s, ""), []).append(s)
    n = max(1, round(len(unique) / max(k, 2)))
    picked, groups = [], [g for g in by_gender.values() if g]
    while len(picked) < n and any(groups):
        for g in groups:
            if g and len(picked) < n:
                picked.append(g.pop(len(g) // 2))
    return picked


@dataclass
class FoldData:
    """Cached encoder features of one fold's rows, as tensors."""

    audio: torch.Tensor  # [N, L, D]
    text: torch.Tensor  # [N, Dt]
    labels: torch.Tensor  # [N]
    groups: torch.Tensor  # [N] transcript id: same-transcript pairs are not InfoNCE negatives
    rows: torch.Tensor  # [N] row numbers in the corpus (and in the stage-1 feature cache)

    def take(self, idx) -> "FoldData":
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        return FoldData(self.audio[idx], self.text[idx], self.labels[idx], self.groups[idx], self.rows[idx])

    def __len__(self) -> int:
        return len(self.labels)


def batches(n: int, batch_size: int, generator: torch.Generator, accelerator: Accelerator):
    """Shuffled mini-batches, each rank taking its share so DDP sees a different slice per process."""
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size * accelerator.num_processes):
        chunk = order[start : start + batch_size * accelerator.num_processes]
        mine = chunk[accelerator.process_index :: accelerator.num_processes]
        if len(mine) > 1:
            yield mine


def set_standardisation(model, data: FoldData) -> None:
    model.audio_mean.copy_(data.audio.mean(0))
    model.audio_std.copy_(data.audio.std(0).clamp_min(1e-4))
    model.text_mean.copy_(data.text.mean(0))
    model.text_std.copy_(data.text.std(0).clamp_min(1e-4))


def head_parameters(model, use_text: bool, lambda_con: float) -> list[nn.Parameter]:
    """Exactly the weights the stage-1 loss uses (DDP requires every trainable weight to get a gradient)."""
    params = [*model.audio_projection.parameters(), *model.classifier.parameters()]
    if model.config.layer_pooling == "weighted":
        params.append(model.layer_weights)
    if use_text:
        params += list(model.text_projection.parameters())
        if lambda_con > 0:
            params.append(model.logit_scale)
        if model.config.mode == "multimodal":
            params += list(model.multimodal_classifier.parameters())
    return params


def freeze_all_but(model, trainable: list[nn.Parameter]) -> None:
    keep = {id(p) for p in trainable}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)


@torch.no_grad()
def predict_logits(model, h: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
    model.eval()
    return model.classify(h, u)


def evaluate_predictions(metric, accelerator: Accelerator, logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """UA/WA/F1 over the whole test set: every rank scores a slice, predictions are gathered once."""
    n = len(labels)
    mine = torch.arange(accelerator.process_index, n, accelerator.num_processes)
    pairs = torch.stack([logits[mine].argmax(-1), labels[mine], mine], -1)
    gathered = accelerator.gather_for_metrics(pairs, use_gather_object=True) if accelerator.num_processes > 1 else pairs
    if isinstance(gathered, list):
        gathered = torch.stack(gathered) if gathered and gathered[0].dim() == 1 else torch.cat(gathered)
    gathered = gathered[torch.argsort(gathered[:, 2])]
    if len(gathered) != n or not torch.equal(gathered[:, 2], torch.arange(n)):
        raise RuntimeError(f"evaluation gathered {len(gathered)} predictions for {n} test clips")
    scores = metric.compute(predictions=gathered[:, 0].tolist(), references=gathered[:, 1].tolist())
    scores["n"] = n
    scores["predictions"] = gathered[:, 0].tolist()
    return scores


def simulate_kill(stage: str) -> None:
    """Fault injection for the resume tests: MIRGAN_KILL_AT=stage2:3 dies like SIGKILL at the 3rd stage-2 start
    (adapt, stage1, stage2, stage3 and final are the points)."""
    target = os.environ.get("MIRGAN_KILL_AT", "")
    if target.startswith(stage + ":"):
        SIMULATED_CALLS[stage] = SIMULATED_CALLS.get(stage, 0) + 1
        if SIMULATED_CALLS[stage] == int(target.split(":")[1]):
            os._exit(137)


SIMULATED_CALLS: dict[str, int] = {}
RANK_CHECKS = {"adapt": 0, "stage1": 0, "stage2": 0, "stage3": 0}


def check_ranks_agree(model, accelerator: Accelerator, stage: str) -> None:
    """Under DDP every rank must hold bit-identical weights after each stage; stop loudly if not."""
    if accelerator.num_processes == 1:
        return
    from accelerate.utils import gather_object

    digest = state_hash(model, skip=("audio_encoder", "text_encoder"))  # frozen encoders: identical by construction
    digests = gather_object([digest])
    if len(set(digests)) != 1:
        raise RuntimeError(f"after {stage} the {accelerator.num_processes} ranks hold different weights: {digests}")
    RANK_CHECKS[stage] += 1


# --------------------------------------------------------------------------------------------
# Stage 1: aligned baseline on cached encoder features
# --------------------------------------------------------------------------------------------


def train_stage1(model, ddp_heads, optimizer, train: FoldData, args: TrainArguments,
                 accelerator: Accelerator, seed: int) -> list[dict]:
    """L_1 = CE (+ CE of the multimodal head) + lambda_con InfoNCE(h, u) + lambda_im IM, for a fixed number of epochs."""
    use_text = args.lambda_con > 0 or model.config.mode == "multimodal"
    generator = torch.Generator().manual_seed(seed)
    curve = []
    for epoch in range(1, args.stage1_epochs + 1):
        model.train()
        for idx in batches(len(train), args.batch_size, generator, accelerator):
            batch = train.take(idx)
            h, u, logits = ddp_heads(batch.audio, batch.text if use_text else None)
            loss = F.cross_entropy(logits, batch.labels)
            if model.config.mode == "multimodal":
                loss = loss + F.cross_entropy(model.classifier(model.dropout(h)), batch.labels)
            if args.lambda_con > 0:
                loss = loss + args.lambda_con * info_nce(h, u, model.logit_scale, batch.groups)
            if args.lambda_im > 0:
                loss = loss + args.lambda_im * information_maximization(logits)
            optimizer.zero_grad()
            accelerator.backward(loss)
            optimizer.step()
        curve.append({"epoch": epoch, "loss": loss.item()})
    return curve


class Stage1Heads(nn.Module):
    """The trainable stage-1 path as one module, so Accelerate can wrap exactly these weights."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, audio_features, text_features=None):
        h = self.model.project_audio(audio_features)
        u = self.model.project_text(text_features) if text_features is not None else None
        return h, u, self.model.classify(h, u if self.model.config.mode == "multimodal" else None)


def run_stage1(model, train: FoldData, args: TrainArguments, accelerator: Accelerator, seed: int) -> list[dict]:
    simulate_kill("stage1")
    set_seed(seed)
    model._init_weights(model)  # fresh heads, standardisation from this fold's training rows
    for module in (model.audio_projection, model.text_projection, model.classifier, model.multimodal_classifier):
        model._init_weights(module)
    set_standardisation(model, train)
    params = head_parameters(model, args.lambda_con > 0 or model.config.mode == "multimodal", args.lambda_con)
    freeze_all_but(model, params)
    heads = Stage1Heads(model)
    optimizer = torch.optim.AdamW(params, lr=args.stage1_lr, weight_decay=args.weight_decay)
    ddp_heads, optimizer = accelerator.prepare(heads, optimizer)
    curve = train_stage1(model, ddp_heads, optimizer, train, args, accelerator, seed)
    accelerator.free_memory()
    check_ranks_agree(model, accelerator, "stage1")
    return curve


class AudioPath(nn.Module):
    """Raw audio inputs -> encoder -> stage-1 heads, for encoder adaptation (encoder_mode lora/full)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, **inputs):
        return self.model.classify(self.model.project_audio(self.model.encode_audio(**inputs)))


def adapt_audio_encoder(model, pristine: dict, processor, waves: list[np.ndarray], labels: torch.Tensor,
                        model_args: ModelArguments, args: TrainArguments, accelerator: Accelerator, seed: int) -> None:
    """Fine-tune the audio encoder (LoRA adapters, merged afterwards, or all weights) with the stage-1
    heads on one fold's training clips. Every call starts from the pre-trained weights ``pristine``;
    the config's encoder hash then names the adapted weights, so the feature cache keys change."""
    simulate_kill("adapt")
    set_seed(seed)
    model.audio_encoder.load_state_dict(pristine)
    model.config.audio_encoder_hash = model.config.audio_encoder_hash.split("+")[0]
    mode = model_args.encoder_mode
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        kind = model.config.audio_encoder.model_type
        targets = model_args.lora_target_modules or LORA_TARGETS.get(kind)
        if not targets:
            raise ValueError(f"no default LoRA target modules for {kind!r}; pass --lora_target_modules")
        lora = LoraConfig(r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout,
                          target_modules=targets)
        model.audio_encoder = get_peft_model(model.audio_encoder, lora)
        encoder_params = [p for n, p in model.audio_encoder.named_parameters() if "lora_" in n]
    else:
        encoder_params = list(model.audio_encoder.parameters())
    lr = args.encoder_lr or (1e-4 if mode == "lora" else 1e-5)
    heads = head_parameters(model, use_text=False, lambda_con=0.0)  # the audio path only
    freeze_all_but(model, encoder_params + heads)
    optimizer = torch.optim.AdamW([{"params": encoder_params, "lr": lr}, {"params": heads, "lr": args.stage1_lr}],
                                  weight_decay=args.weight_decay)
    path, optimizer = accelerator.prepare(AudioPath(model), optimizer)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(args.encoder_epochs):
        for idx in batches(len(waves), max(2, args.batch_size // 4), generator, accelerator):
            rows = np.sort(idx.numpy())
            inputs = processor(audio=[waves[i] for i in rows], sampling_rate=processor.sampling_rate)
            loss = F.cross_entropy(path(**inputs), labels[torch.as_tensor(rows)])
            optimizer.zero_grad()
            accelerator.backward(loss)
            optimizer.step()
    model.eval()
    accelerator.free_memory()
    if mode == "lora":
        model.audio_encoder = model.audio_encoder.merge_and_unload()
    freeze_all_but(model, [])
    model.config.audio_encoder_hash += f"+{mode}:{state_hash(model.audio_encoder)[:16]}"
    check_ranks_agree(model.audio_encoder, accelerator, "adapt")


# --------------------------------------------------------------------------------------------
# Stage 2: InfoGAN on stage-1 features, MI through the frozen stage-1 heads (reused, not copied)
# --------------------------------------------------------------------------------------------


def info_loss(model, fake: torch.Tensor, labels: torch.Tensor, text: torch.Tensor | None, groups, lambda_text: float):
    """Barber-Agakov bound on I(c; h_hat) with the frozen classifier, plus InfoNCE agreement with text."""
    d = model.config.projection_dim
    if model.config.mode == "multimodal":  # a generated pair (h_hat, u_hat)
        h_hat, u_hat = fake[:, :d], fake[:, d:]
        logits = model.multimodal_classifier(torch.cat([h_hat, u_hat], -1))
        return F.cross_entropy(logits, labels) + info_nce(h_hat, u_hat, model.logit_scale), logits
    logits = model.classifier(fake)
    loss = F.cross_entropy(logits, labels)
    if lambda_text > 0 and text is not None:
        loss = loss + lambda_text * info_nce(fake, text, model.logit_scale, groups)
    return loss, logits


def run_stage2(model, real: torch.Tensor, labels: torch.Tensor, text: torch.Tensor, groups: torch.Tensor,
               args: TrainArguments, lambda_info: float, accelerator: Accelerator, seed: int) -> list[dict]:
    """Train G and D on real stage-1 features ``real`` (``[h]`` or ``[h; u]`` pairs)."""
    simulate_kill("stage2")
    set_seed(seed)
    model.eval()
    for module in (model.generator, model.discriminator):
        for layer in module.modules():
            model._init_weights(layer)
    freeze_all_but(model, [*model.generator.parameters(), *model.discriminator.parameters()])
    g_opt = torch.optim.Adam(model.generator.parameters(), lr=args.gan_lr, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(model.discriminator.parameters(), lr=args.gan_lr, betas=(0.5, 0.999))
    generator, discriminator, g_opt, d_opt = accelerator.prepare(model.generator, model.discriminator, g_opt, d_opt)
    kind = model.config.adversarial_loss
    rng = torch.Generator().manual_seed(seed)
    curve = []
    for step in range(1, args.gan_steps + 1):
        idx = torch.randint(0, len(real), (args.gan_batch_size,), generator=rng)
        x, c, u, g = real[idx], labels[idx], text[idx], groups[idx]
        noise = torch.randn(len(idx), model.config.noise_dim, generator=rng)
        fake = generator(noise, c, u)
        d_loss = discriminator_loss(kind, discriminator(x, c), discriminator(fake.detach(), c))
        if kind == "wgan-gp":
            d_loss = d_loss + 10.0 * gradient_penalty(discriminator, x, fake.detach(), c)
        d_opt.zero_grad()
        accelerator.backward(d_loss)
        d_opt.step()
        adv = generator_adversarial_loss(kind, discriminator(fake, c))
        mi, logits = info_loss(model, fake, c, u, g, args.lambda_text_info)
        g_loss = adv + lambda_info * mi
        g_opt.zero_grad()
        accelerator.backward(g_loss)
        g_opt.step()
        if step % 50 == 0 or step == args.gan_steps:
            q_acc = (logits.argmax(-1) == c).float().mean().item()
            curve.append({"step": step, "d_loss": d_loss.item(), "g_adv": adv.item(), "info": mi.item(), "q_accuracy": q_acc})
    accelerator.free_memory()
    check_ranks_agree(model, accelerator, "stage2")
    return curve


@torch.no_grad()
def sample_generator(model, counts: np.ndarray, text_pool: torch.Tensor, labels_pool: torch.Tensor, seed: int,
                     oversample: int = 1):
    """``counts[c]`` generated features per class; text conditions are real transcripts of class c.

    ``oversample`` > 1 draws that many candidates per sample and keeps, per class, the ones the frozen
    stage-1 classifier (InfoGAN's Q) assigns to their condition most confidently."""
    rng = torch.Generator().manual_seed(seed)
    drawn = np.asarray(counts) * oversample
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.as_tensor(drawn))
    text = torch.zeros(len(labels), text_pool.shape[1])
    for c in range(len(counts)):
        pool = text_pool[labels_pool == c] if (labels_pool == c).any() else text_pool
        sel = labels == c
        text[sel] = pool[torch.randint(0, len(pool), (int(sel.sum()),), generator=rng)]
    noise = torch.randn(len(labels), model.config.noise_dim, generator=rng)
    model.eval()
    fake = model.generator(noise, labels, text)
    if oversample == 1:
        return fake, labels
    head = model.multimodal_classifier if model.config.mode == "multimodal" else model.classifier
    confidence = head(fake).softmax(-1).gather(1, labels[:, None])[:, 0]
    keep = torch.cat([torch.nonzero(labels == c)[:, 0][confidence[labels == c].argsort(descending=True)[: counts[c]]]
                      for c in range(len(counts))])
    return fake[keep], labels[keep]


# --------------------------------------------------------------------------------------------
# Stage 3: the classifier on real + synthetic features
# --------------------------------------------------------------------------------------------


class Stage3Heads(nn.Module):
    """The stage-3 classifiers as one module: ``C(h)``, and ``C_m([h; u])`` in multimodal mode."""

    def __init__(self, model):
        super().__init__()
        self.d, self.dropout = model.config.projection_dim, model.dropout
        multimodal = model.config.mode == "multimodal"
        self.heads = nn.ModuleList([model.classifier] + ([model.multimodal_classifier] if multimodal else []))

    def forward(self, x):
        logits = [self.heads[0](self.dropout(x[:, : self.d]))]
        if len(self.heads) > 1:
            logits.append(self.heads[1](self.dropout(x)))
        return logits


def run_stage3(model, real: torch.Tensor, labels: torch.Tensor, synth: torch.Tensor, synth_labels: torch.Tensor,
               args: TrainArguments, accelerator: Accelerator, seed: int, init: dict) -> None:
    """Retrain the classifier(s) from their stage-1 weights ``init``; synthetic rows weigh ``synthetic_weight``."""
    simulate_kill("stage3")
    set_seed(seed)
    model.classifier.load_state_dict(init["classifier"])
    model.multimodal_classifier.load_state_dict(init["multimodal_classifier"])
    heads = Stage3Heads(model)
    params = [p for head in heads.heads for p in head.parameters()]
    freeze_all_but(model, params)
    x = torch.cat([real, synth]) if len(synth) else real
    y = torch.cat([labels, synth_labels]) if len(synth) else labels
    w = torch.cat([torch.ones(len(real)), torch.full((len(synth),), args.synthetic_weight)])
    optimizer = torch.optim.AdamW(params, lr=args.stage3_lr, weight_decay=args.weight_decay)
    wrapped, optimizer = accelerator.prepare(heads, optimizer)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(args.stage3_epochs):
        for idx in batches(len(x), args.batch_size * 2, gen, accelerator):
            xb, yb, wb = x[idx], y[idx], w[idx]
            loss = sum((F.cross_entropy(logits, yb, reduction="none") * wb).sum() / wb.sum() for logits in wrapped(xb))
            optimizer.zero_grad()
            accelerator.backward(loss)
            optimizer.step()
    model.eval()
    accelerator.free_memory()
    check_ranks_agree(model, accelerator, "stage3")


def synthetic_for(method: str, model, h_train, y_train, u_train, ratio: float, seed: int, oversample: int = 1):
    """Synthetic features of ``method`` (a peer or the trained generator), class-balanced."""
    counts = class_balanced_counts(y_train.numpy(), model.config.num_labels, ratio)
    if method == "none" or ratio == 0:
        return torch.zeros(0, h_train.shape[1]), torch.zeros(0, dtype=torch.long)
    if method in GENERATIVE:
        return sample_generator(model, counts, u_train, y_train, seed, oversample)
    x, y = peer_samples(method, h_train.numpy(), y_train.numpy(), counts, np.random.default_rng(seed))
    return torch.from_numpy(x), torch.from_numpy(y).long()


# --------------------------------------------------------------------------------------------
# One fold: select on validation speakers, refit on the whole training fold, score the test fold
# --------------------------------------------------------------------------------------------


def fit_all_stages(model, train: FoldData, args, accelerator, seed, methods, ratios, cache_h, timing) -> dict:
    """Stage 1, the stage-1 feature cache, then per method stage 2 (generative ones) and stage 3."""
    t0 = time.time()
    curve1 = run_stage1(model, train, args, accelerator, seed)
    init = {"classifier": {k: v.clone() for k, v in model.classifier.state_dict().items()},
            "multimodal_classifier": {k: v.clone() for k, v in model.multimodal_classifier.state_dict().items()}}
    h_all, u_all = cache_h(model)
    timing["stage1_s"] += time.time() - t0
    multimodal = model.config.mode == "multimodal"
    d = model.config.projection_dim
    u_train = u_all[train.rows]
    # the features the classifier and generator work on: h, or [h; u] pairs in multimodal mode
    x_train = torch.cat([h_all[train.rows], u_train], -1) if multimodal else h_all[train.rows]
    states = {"stage1": {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(("audio_encoder", "text_encoder"))},
              "curves": {"stage1": curve1}, "methods": {}, "h_all": h_all, "u_all": u_all}
    for method in methods:
        quality, curve2, sample = None, None, None
        t0 = time.time()
        if method in GENERATIVE:
            lam = 0.0 if method == "cgan" else args.lambda_info
            curve2 = run_stage2(model, x_train, train.labels, u_train, train.groups, args, lam, accelerator, seed + 1)
            sample = synthetic_for(method, model, x_train, train.labels, u_train, 1.0, seed + 2)
            fake, fake_y = sample
            with torch.no_grad():
                logits = model.multimodal_classifier(fake) if multimodal else model.classifier(fake)
            quality = generator_quality(x_train[:, :d], train.labels, fake[:, :d], fake_y, logits, model.config.num_labels)
            if multimodal:  # semantic drift check: do generated pairs still agree in the aligned space?
                quality["pair_cosine"] = float(F.cosine_similarity(fake[:, :d], fake[:, d:]).mean())
                quality["pair_info_nce"] = float(info_nce(fake[:, :d], fake[:, d:], model.logit_scale))
        timing["stage2_s"] += time.time() - t0
        t0 = time.time()
        per_ratio = {}
        for ratio in ratios:
            synth, synth_y = synthetic_for(method, model, x_train, train.labels, u_train, ratio, seed + 3, args.synthetic_oversample)
            run_stage3(model, x_train, train.labels, synth, synth_y, args, accelerator, seed + 4, init)
            per_ratio[ratio] = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("classifier", "multimodal_classifier"))}
        timing["stage3_s"] += time.time() - t0
        gan = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("generator", "discriminator"))}
        states["methods"][method] = {"quality": quality, "curve": curve2, "per_ratio": per_ratio, "gan": gan, "synthetic": sample}
    return states


def scores_for(model, states, data: FoldData, method: str | None, ratio, accelerator, metric):
    """Score held-out rows with the stage-1 classifier (method None) or a method's stage-3 classifier."""
    model.load_state_dict(states["stage1"], strict=False)
    if method is not None:
        model.load_state_dict(states["methods"][method]["per_ratio"][ratio], strict=False)
    h = states["h_all"][data.rows]
    u = states["u_all"][data.rows] if model.config.mode == "multimodal" else None
    return evaluate_predictions(metric, accelerator, predict_logits(model, h, u), data.labels)


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def parse_args() -> tuple[DataArguments, ModelArguments, TrainArguments]:
    parser = HfArgumentParser((DataArguments, ModelArguments, TrainArguments))
    argv = [a.replace("--data_dir", "--dataset_dir") for a in sys.argv[1:]]
    if argv and argv[0].endswith((".yaml", ".yml", ".json")):
        path = Path(argv[0])
        values = parser.parse_yaml_file(path, allow_extra_keys=False) if path.suffix != ".json" else parser.parse_json_file(path)
        if len(argv) > 1:  # command-line flags after the file override it
            merged = {k: v for dc in values for k, v in asdict(dc).items()}
            overrides = parser.parse_args_into_dataclasses(argv[1:], look_for_args_file=False)
            defaults = [type(dc)() for dc in overrides]
            for dc, default in zip(overrides, defaults):
                for k, v in asdict(dc).items():
                    if v != getattr(default, k):
                        merged[k] = v
            values = parser.parse_dict(merged)
        return tuple(values)
    return tuple(parser.parse_args_into_dataclasses(argv))


def main() -> dict:
    data_args, model_args, args = parse_args()
    dataset_name = Path(data_args.dataset_dir).name if data_args.dataset == "audiofolder" else data_args.dataset
    output_dir = Path(args.output_dir or ROOT / "outputs" / f"{dataset_name}-{model_args.mode}")
    cache_dir = Path(args.cache_dir or modeling_mirgan.encoders.cache_dir() / "features")
    # cpu=True on machines without CUDA: Accelerate then sees torchrun/MPI ranks (MULTI_CPU over gloo)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), log_with="tensorboard", project_dir=str(output_dir / "runs"))
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    output_dir.mkdir(parents=True, exist_ok=True)
    timing: dict[str, float] = {}
    started = time.time()

    # -- data --
    corpus = load_corpus(
        data_args.dataset, data_args.dataset_dir, protocol=data_args.protocol, skip_bad=data_args.skip_bad,
        classes=data_args.classes, folds=data_args.folds, label_column=data_args.label_column,
        speaker_column=data_args.speaker_column, text_column=data_args.text_column,
    )
    dataset, protocol = corpus.dataset, corpus.protocol
    classes = list(protocol.classes)
    if data_args.test_speakers:
        protocol = Protocol(protocol.name + "-fixed-split", f"fixed test speakers {data_args.test_speakers}",
                            classes, [Fold("fixed", "speaker", list(data_args.test_speakers))])
    skipped = dict(corpus.skipped)
    skipped_examples = {k: list(v) for k, v in corpus.skipped_examples.items()}
    transcripts = {"source": "ground truth"}
    if data_args.transcripts not in ("ground_truth", "asr"):
        raise ValueError(f"--transcripts {data_args.transcripts!r}: expected ground_truth or asr")
    if data_args.transcripts == "asr":
        from datasets_scripts.transcripts import transcribe_dataset

        with accelerator.main_process_first():  # rank 0 transcribes and caches, the others reuse
            dataset, asr = transcribe_dataset(dataset, model_name=data_args.asr_model, batch_size=args.extraction_batch_size,
                                              cache_dir=Path(args.cache_dir) / "transcripts" if args.cache_dir else None,
                                              language=data_args.asr_language)
        transcripts = {"source": f"asr:{data_args.asr_model}",
                       **{k: asr[k] for k in ("language", "wer", "wer_clips", "cache_hit", "clips_per_s", "empty_asr")}}
        logger.info("transcripts: %s (%s), WER vs ground truth %s", transcripts["source"],
                    "reused from cache" if asr["cache_hit"] else "computed and cached", asr["wer"])
    use_text = args.lambda_con > 0 or model_args.mode == "multimodal" or args.lambda_text_info > 0
    missing = [i for i, t in enumerate(dataset["text"]) if not t.strip()]
    if use_text and missing:
        if len(missing) == len(dataset) and model_args.mode != "multimodal":
            logger.warning("no transcripts in this corpus: text alignment is off (lambda_con = lambda_text_info = 0)")
            args.lambda_con = args.lambda_text_info = 0.0
            use_text = False
        elif data_args.skip_bad:
            paths = [dataset[i]["audio"] for i in missing]
            skipped["missing transcript"] = skipped.get("missing transcript", 0) + len(paths)
            skipped_examples.setdefault("missing transcript", []).extend(paths[:10])
            dataset = dataset.select(sorted(set(range(len(dataset))) - set(missing)))
        else:
            raise ValueError(f"{dataset[missing[0]]['audio']}: missing transcript ({len(missing)} clips have none); "
                             "fill the text column, pass --skip_bad, or use --transcripts asr")

    # -- model and processor --
    t0 = time.time()
    config_kwargs = {k: getattr(model_args, k) for k in (
        "mode", "layer_pooling", "projection_dim", "noise_dim", "generator_hidden_sizes",
        "generator_text_condition", "discriminator_hidden_sizes", "adversarial_loss")}
    config_kwargs.update(lambda_con=args.lambda_con, lambda_im=args.lambda_im, lambda_info=args.lambda_info,
                         lambda_text_info=args.lambda_text_info)
    with accelerator.main_process_first():  # the first Whisper conversion happens once
        model = from_encoders(classes, model_args.audio_encoder, model_args.text_encoder, **config_kwargs)
        processor = build_processor(model_args.audio_encoder, model_args.text_encoder)
    model.eval()
    timing["load_encoders_s"] = time.time() - t0

    if data_args.skip_bad:
        dataset, bad = drop_bad_clips(dataset, processor)
        for reason, paths in bad.items():
            skipped[reason] = skipped.get(reason, 0) + len(paths)
            skipped_examples.setdefault(reason, []).extend(paths[:10])

    # -- encoder feature cache (datasets.map) --
    label_ids = torch.tensor([classes.index(l) for l in dataset["label"]])
    texts = dataset["text"]
    group_ids = torch.tensor([sorted(set(texts)).index(t) for t in texts])

    def encoder_features():
        """Encoder outputs of every row (cached); and those rows as tensors."""
        t0 = time.time()
        features, hit = extract_encoder_features(
            dataset, model, processor, cache_dir, batch_size=args.extraction_batch_size, use_text=use_text,
        )
        timing["extract_s"] = timing.get("extract_s", 0.0) + time.time() - t0
        logger.info("encoder features: %s (%d clips, %.1f s)", "reused from cache" if hit else "computed and cached",
                    len(features), time.time() - t0)
        columns = features.with_format("torch", columns=["audio_features", "text_features"])[:]
        return features, FoldData(columns["audio_features"].float(), columns["text_features"].float(), label_ids,
                                  group_ids, torch.arange(len(label_ids)))

    features, all_data = encoder_features()
    frozen_data = all_data
    adapting = model_args.encoder_mode != "frozen"
    if adapting:  # the encoder is fine-tuned per fold: keep its pre-trained weights and the decoded clips
        pristine = {k: v.clone() for k, v in model.audio_encoder.state_dict().items()}
        waves = [processor.prepare_audio(path) for path in dataset["audio"]]

    def adapted(rows, seed):
        """Adapt the encoder on ``rows`` (training clips only), then re-extract every row's features."""
        t0 = time.time()
        set_standardisation(model, frozen_data.take(rows))
        adapt_audio_encoder(model, pristine, processor, [waves[i] for i in rows], label_ids[torch.as_tensor(rows)],
                            model_args, args, accelerator, seed)
        timing["adapt_s"] = timing.get("adapt_s", 0.0) + time.time() - t0
        return encoder_features()

    speakers, genders = dataset["speaker"], dataset["gender"]
    metric = __import__("evaluate").load(str(ROOT / "datasets_scripts" / "metrics" / "ser_metrics"))

    def cache_h(m):
        return stage1_features(features, m, cache_dir, fingerprint(features._fingerprint))

    # -- folds --
    methods = list(dict.fromkeys(args.methods))
    seeds = args.seeds or [args.seed]
    folds = protocol.folds[: data_args.max_folds] if data_args.max_folds else protocol.folds
    state_path = output_dir / "checkpoints" / "state.json"
    run_key = fingerprint(asdict(data_args), asdict(model_args), {k: v for k, v in asdict(args).items() if k not in ("resume", "push_to_hub", "hub_model_id", "report")}, features._fingerprint)
    done = {}
    if args.resume and state_path.exists():
        saved = json.loads(state_path.read_text())
        if saved.get("run_key") == run_key:
            done = saved["runs"]
            logger.info("resuming: %d fold runs already complete", len(done))
        else:
            logger.warning("--resume: checkpoint in %s is from different arguments; starting over", state_path)
    timing.update(stage1_s=0.0, stage2_s=0.0, stage3_s=0.0)
    runs = []
    total = len(folds) * len(seeds) * len(args.fractions)
    bar = tqdm(total=total, desc="folds", disable=not accelerator.is_main_process)
    tracker_ready = False
    for fold_i, fold in enumerate(folds):
        column = dataset[fold.column]
        train_idx, test_idx = fold.split(column)
        for seed in seeds:
            for fraction in args.fractions:
                key = f"{fold.name}|{seed}|{fraction}"
                if key in done:
                    runs.append(done[key])
                    bar.update(1)
                    continue
                base_seed = seed * 100003 + fold_i * 1009 + int(fraction * 100)
                labels_np = label_ids[train_idx].numpy()
                sub = np.asarray(train_idx)[stratified_subsample(labels_np, fraction, base_seed)]
                if adapting:  # adapted on the whole training fold (validation speakers included, test speakers never)
                    features, all_data = adapted(list(sub), base_seed)
                if fold.validation_values:  # an official development partition (e.g. MSP-Podcast)
                    held = set(fold.validation_values)
                    inner, val = list(sub), [i for i, v in enumerate(column) if v in held]
                    val_spk = {f"{fold.column}={v}" for v in fold.validation_values}
                else:  # validation speakers drawn from the training fold
                    val_spk = set(validation_speakers([speakers[i] for i in sub], [genders[i] for i in sub], len(protocol.folds)))
                    inner = [i for i in sub if speakers[i] not in val_spk]
                    val = [i for i in sub if speakers[i] in val_spk]
                if len({int(label_ids[i]) for i in inner}) < len(classes) or not val:
                    inner, val = list(sub), list(sub)  # too few speakers to hold some out
                # choose each method's synthetic ratio on validation speakers inside the training fold
                inner_data, val_data = all_data.take(inner), all_data.take(val)
                sel = fit_all_stages(model, inner_data, args, accelerator, base_seed, methods, args.synthetic_ratios, cache_h, timing)
                chosen = {}
                for method in methods:
                    val_ua = {r: scores_for(model, sel, val_data, method, r, accelerator, metric)["ua"] for r in args.synthetic_ratios}
                    chosen[method] = max(val_ua, key=lambda r: (val_ua[r], -r))
                # refit on the whole training fold with those choices, score the held-out speakers
                fit = fit_all_stages(model, all_data.take(sub), args, accelerator, base_seed, methods,
                                     sorted(set(chosen.values())), cache_h, timing)
                test = all_data.take(test_idx)
                result = {"fold": fold.name, "seed": seed, "fraction": fraction, "n_train": len(sub),
                          "n_test": len(test_idx), "validation_speakers": sorted(val_spk),
                          "test_speakers": sorted({speakers[i] for i in test_idx}), "methods": {}}
                base = scores_for(model, fit, test, None, None, accelerator, metric)
                result["methods"]["baseline"] = base
                for method in methods:
                    s = scores_for(model, fit, test, method, chosen[method], accelerator, metric)
                    s["synthetic_ratio"] = chosen[method]
                    s["quality"] = fit["methods"][method]["quality"]
                    result["methods"][method] = s
                result["curves"] = {"stage1": fit["curves"]["stage1"],
                                    **{m: fit["methods"][m]["curve"] for m in methods if fit["methods"][m]["curve"]}}
                result["references"] = test.labels.tolist()
                runs.append(result)
                done[key] = result
                if accelerator.is_main_process:
                    write_json_atomic(state_path, {"run_key": run_key, "runs": done})
                    if not tracker_ready:
                        accelerator.init_trackers("mirgan", config={})
                        tracker_ready = True
                    accelerator.log({f"{fold.name}/ua_{m}": v["ua"] for m, v in result["methods"].items()}, step=len(runs))
                accelerator.wait_for_everyone()
                bar.update(1)
                logger.info("%s seed %d fraction %.2f: baseline UA %.3f | %s", fold.name, seed, fraction, base["ua"],
                            " ".join(f"{m} UA {result['methods'][m]['ua']:.3f}" for m in methods))
    bar.close()

    results = summarise(runs, methods, classes, protocol, folds, dataset, data_args, model_args, args, model, skipped, skipped_examples)
    results["transcripts"] = transcripts

    # -- final model on all speakers --
    if args.final_model:
        simulate_kill("final")
        t0 = time.time()
        final_method = "mirgan" if "mirgan" in methods else methods[0]
        ratio = float(np.median([r["methods"][final_method]["synthetic_ratio"] for r in runs]))
        if adapting:
            features, all_data = adapted(list(range(len(dataset))), args.seed)
        fit = fit_all_stages(model, all_data, args, accelerator, args.seed, [final_method], [ratio], cache_h, timing)
        model.load_state_dict(fit["stage1"], strict=False)
        model.load_state_dict(fit["methods"][final_method]["per_ratio"][ratio], strict=False)
        model.load_state_dict(fit["methods"][final_method]["gan"], strict=False)
        model.set_generator_reference(fit["h_all"], all_data.labels, fit["u_all"])
        freeze_all_but(model, [])
        timing["final_model_s"] = time.time() - t0
        results["final_model"] = {"method": final_method, "synthetic_ratio": ratio, "n_train": len(all_data)}
        if accelerator.is_main_process:
            save_model(model, processor, output_dir / "model", results)
            if args.report:
                from datasets_scripts.report import write_report
                write_report(output_dir / "report", results, runs, fit, all_data, classes, model)
    timing["total_s"] = time.time() - started
    results["timing"] = timing
    results["distributed"] = {"processes": accelerator.num_processes, "rank_weight_checks_passed": dict(RANK_CHECKS)}
    if accelerator.is_main_process:
        write_json_atomic(output_dir / "results.json", results)
        if args.push_to_hub:
            from modeling_mirgan.hub import push_model
            push_model(output_dir / "model", args.hub_model_id)
        logger.info("baseline UA %.3f ± %.3f | %s | results in %s", results["methods"]["baseline"]["ua_mean"],
                    results["methods"]["baseline"]["ua_std"],
                    " ".join(f"{m} UA {results['methods'][m]['ua_mean']:.3f} ± {results['methods'][m]['ua_std']:.3f}" for m in methods),
                    output_dir)
    accelerator.end_training()
    return results


def write_json_atomic(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=float))
    os.replace(tmp, path)


def mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def summarise(runs, methods, classes, protocol, folds, dataset, data_args, model_args, args, model, skipped, skipped_examples) -> dict:
    import transformers

    out_methods = {}
    for method in ["baseline", *methods]:
        entry = {}
        for metric_name in ("ua", "wa", "f1"):
            entry[f"{metric_name}_mean"], entry[f"{metric_name}_std"] = mean_std([r["methods"][method][metric_name] for r in runs])
        entry["per_fold"] = [{"fold": r["fold"], "seed": r["seed"], "fraction": r["fraction"],
                              **{k: r["methods"][method][k] for k in ("ua", "wa", "f1", "n")},
                              **({"synthetic_ratio": r["methods"][method]["synthetic_ratio"]} if method != "baseline" else {}),
                              **({"quality": r["methods"][method]["quality"]} if r["methods"][method].get("quality") else {})}
                             for r in runs]
        if len(args.fractions) > 1:
            entry["by_fraction"] = {str(f): dict(zip(("ua_mean", "ua_std"), mean_std([r["methods"][method]["ua"] for r in runs if r["fraction"] == f])))
                                    for f in args.fractions}
        out_methods[method] = entry
    mi = {}
    for method in methods:
        qualities = [r["methods"][method]["quality"] for r in runs if r["methods"][method]["quality"]]
        if qualities:
            mi[method] = {"per_fold": qualities, "mean": {k: float(np.nanmean([q[k] for q in qualities])) for k in qualities[0]}}
    return {
        "dataset": Path(data_args.dataset_dir).name if data_args.dataset == "audiofolder" else data_args.dataset,
        "dataset_dir": str(data_args.dataset_dir),
        "mode": model_args.mode,
        "n_clips": len(dataset),
        "n_skipped": sum(skipped.values()),
        "skipped": skipped,
        "skipped_examples": skipped_examples,
        "classes": classes,
        "protocol": {"name": protocol.name, "description": protocol.description + " Metrics: UA (mean per-class recall), WA (accuracy), macro-F1 on held-out speakers; mean ± std over folds and seeds.",
                     "folds": [asdict(f) for f in folds], "runs": [{k: r[k] for k in ("fold", "seed", "fraction", "n_train", "n_test", "test_speakers", "validation_speakers")} for r in runs]},
        "methods": out_methods,
        "mi": mi,
        "arguments": {"data": asdict(data_args), "model": asdict(model_args), "train": asdict(args)},
        "versions": {"mirgan": modeling_mirgan.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "python": platform.python_version(),
                     "audio_encoder": model.config.audio_encoder_name, "audio_encoder_hash": model.config.audio_encoder_hash,
                     "text_encoder": model.config.text_encoder_name, "text_encoder_hash": model.config.text_encoder_hash},
    }


def save_model(model, processor, folder: Path, results: dict) -> None:
    """``save_pretrained`` model + processor + model card, written to a temp folder then renamed into place."""
    from modeling_mirgan.card import write_model_card

    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.config.architectures = ["MirganForEmotionClassification"]
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    write_model_card(tmp, results)
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():  # a kill at any point leaves a complete model at ``folder`` or at ``old``
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


if __name__ == "__main__":
    main()
