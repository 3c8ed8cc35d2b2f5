"""The three stages on cached encoder features, vectorised (DESIGN §1).

Stage 1 trains the projections and classifiers (full batch on a small corpus, large batches
streamed from the memory-mapped Arrow cache on a big one), stage 2 the InfoGAN on stage-1
features with the MI term through the frozen stage-1 classifier (``model.q_logits``), stage 3 the
classifier on real + synthetic features. Every loop runs on preallocated tensors with plain
``torch.optim``; under ``torchrun`` each rank takes its slice of every batch and gradients are
averaged with one ``all_reduce``, so all ranks hold bit-identical weights (checked after every stage).
"""

from __future__ import annotations

import math
import mmap
import os
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .arguments import GENERATIVE, TrainArguments
from .augment import class_balanced_counts, peer_samples
from .losses import discriminator_loss, generator_adversarial_loss, gradient_penalty, info_nce, information_maximization, mmd, mode_seeking

HEAD_PREFIXES = ("audio_mean", "audio_std", "text_mean", "text_std", "layer_weights", "logit_scale",
                 "audio_projection.", "text_projection.", "classifier.", "multimodal_classifier.")
CLASSIFIER_PREFIXES = ("classifier.", "multimodal_classifier.")
GAN_PREFIXES = ("generator.", "discriminator.")


# --------------------------------------------------------------------------------------------
# Processes: rank slices, gradient averaging, weight checks, fault injection
# --------------------------------------------------------------------------------------------


def world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def my_slice(rows: torch.Tensor) -> torch.Tensor:
    rank, size = world()
    return rows[rank::size] if size > 1 else rows


def collective_device() -> torch.device:
    """Where a collective's tensor must live: NCCL (``accelerate launch`` on GPUs) reduces only CUDA
    tensors, while the cached-feature stages train on the CPU; gloo takes CPU tensors."""
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def average_gradients(params: list[nn.Parameter]) -> None:
    """One all_reduce of every gradient (flattened): what DDP does, without its per-step wrapping."""
    rank, size = world()
    if size == 1:
        return
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]  # unused on this rank
    flat = torch.cat([g.reshape(-1) for g in grads])
    device = collective_device()
    summed = flat.to(device)
    dist.all_reduce(summed)
    flat = summed.to(flat.device) / size
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset : offset + g.numel()].view_as(g).clone()
        offset += g.numel()


RANK_CHECKS = {"adapt": 0, "stage1": 0, "stage2": 0, "stage3": 0}


def state_hash(module: nn.Module, prefixes: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        if (not prefixes or name.startswith(prefixes)) and not (skip and name.startswith(skip)):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def check_ranks_agree(model: nn.Module, stage: str, prefixes: tuple[str, ...] = ()) -> None:
    """Under several processes every rank must hold bit-identical weights after each stage; stop loudly if not."""
    rank, size = world()
    if size == 1:
        return
    import torch.distributed as dist

    digests = [None] * size
    dist.all_gather_object(digests, state_hash(model, prefixes, skip=("audio_encoder", "text_encoder")))
    if len(set(digests)) != 1:
        raise RuntimeError(f"after {stage} the {size} ranks hold different weights: {digests}")
    RANK_CHECKS[stage] += 1


@contextmanager
def one_thread():
    """The GAN and stage-3 loops are thousands of small ops, where a second OpenMP thread costs more
    synchronisation than it saves (stage 2 on 2 cores: 0.92x the time on a quiet machine, 0.6x on a busy one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


SIMULATED_CALLS: dict[str, int] = {}


def simulate_kill(stage: str) -> None:
    """Fault injection for the resume tests: MIRGAN_KILL_AT=stage2:3 dies like SIGKILL at the 3rd stage-2
    start (adapt, stage1, stage2, stage3 and final are the points)."""
    target = os.environ.get("MIRGAN_KILL_AT", "")
    if target.startswith(stage + ":"):
        SIMULATED_CALLS[stage] = SIMULATED_CALLS.get(stage, 0) + 1
        if SIMULATED_CALLS[stage] == int(target.split(":")[1]):
            os._exit(137)


# --------------------------------------------------------------------------------------------
# Features of a corpus: audio layers streamed from the Arrow cache, the rest in memory
# --------------------------------------------------------------------------------------------


class AudioLayerStore:
    """Per-layer pooled audio features ``[N, L, D]`` of every corpus row, read in batches.

    Backed by the Arrow file of the encoder cache: the file is memory-mapped once to find where each
    record batch's values lie, and rows are then read with ``pread`` into the batch's own buffer, so
    nothing of the file is mapped into this process while the stages run and memory stays bounded by
    the batch size whatever the corpus size. (Reading rows through the mapping mapped whole page-cache
    folios per row: a gather of 4096 random rows of a 2.5 GB cache raised RSS by 1.7 GB.) A tensor works
    too (tests, small in-memory data)."""

    def __init__(self, positions: np.ndarray, lengths: list[int], row_shape: tuple[int, int],
                 arrays: list[np.ndarray] | None = None, file: tuple[str, list[int]] | None = None):
        self.positions = positions  # row r of the corpus sits at position positions[r] of the chunks
        self.starts = np.cumsum([0] + list(lengths))  # chunk c holds positions starts[c] .. starts[c + 1] - 1
        self.shape = (len(positions), *row_shape)
        self.arrays = arrays  # in memory: the chunks themselves
        self.path, self.offsets = file if file is not None else (None, None)  # in a file: each chunk's byte offset
        self.fd = os.open(self.path, os.O_RDONLY) if self.path is not None else None
        if self.fd is not None:
            weakref.finalize(self, os.close, self.fd)

    @classmethod
    def from_tensor(cls, audio: torch.Tensor) -> "AudioLayerStore":
        return cls(np.arange(len(audio)), [len(audio)], tuple(audio.shape[1:]), arrays=[audio.float().numpy()])

    @classmethod
    def from_cache(cls, features) -> "AudioLayerStore":
        """The store of ``extract_encoder_features``'s dataset: its Arrow file, in its row order."""
        import pyarrow as pa

        path = features.cache_files[0]["filename"]
        with open(path, "rb") as f:
            mapping = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        base = np.frombuffer(mapping, np.uint8).ctypes.data
        lengths, offsets = [], []
        for batch in pa.ipc.open_stream(pa.py_buffer(mapping)):
            column = batch.column(batch.schema.get_field_index("audio_features"))
            storage = column.storage if isinstance(column, pa.ExtensionArray) else column
            values = storage.flatten().flatten().to_numpy(zero_copy_only=True)  # a view: its address is its offset
            lengths.append(len(storage))
            offsets.append(values.ctypes.data - base if len(values) else 0)
            del batch, column, storage, values
        mapping.close()
        # rows were selected from the duration-sorted file: the selection's indices give each row's position
        indices = features._indices  # datasets keeps ``select`` as an indices table over the file
        positions = indices.column(0).to_numpy() if indices is not None else np.arange(sum(lengths))
        return cls(np.asarray(positions, dtype=np.int64), lengths, tuple(features.features["audio_features"].shape),
                   file=(path, offsets))

    def __len__(self) -> int:
        return len(self.positions)

    def gather(self, rows) -> torch.Tensor:
        """The ``[len(rows), L, D]`` features of ``rows`` (a copy)."""
        pos = self.positions[np.asarray(rows, dtype=np.int64)]
        out = np.empty((len(pos), *self.shape[1:]), np.float32)
        chunk = np.searchsorted(self.starts, pos, side="right") - 1
        if self.arrays is not None:
            for c in np.unique(chunk):
                sel = np.flatnonzero(chunk == c)
                out[sel] = self.arrays[c][pos[sel] - self.starts[c]]
            return torch.from_numpy(out)
        # one read per run of consecutive rows of one chunk (a sequential pass reads large runs)
        breaks = np.flatnonzero((np.diff(pos) != 1) | (np.diff(chunk) != 0)) + 1
        row_bytes = out[0].nbytes if len(out) else 0
        for first, end in zip(np.r_[0, breaks].tolist(), np.r_[breaks, len(pos)].tolist()):
            c = int(chunk[first])
            at = self.offsets[c] + (int(pos[first]) - int(self.starts[c])) * row_bytes
            want = (end - first) * row_bytes
            if os.preadv(self.fd, [memoryview(out[first:end]).cast("B")], at) != want:
                raise OSError(f"{self.path}: the feature cache ended before row {int(pos[first])} (byte {at}); "
                              "was it truncated while training? Delete it to re-extract.")
        return torch.from_numpy(out)

    def batches(self, rows: torch.Tensor, batch_size: int, generator: torch.Generator | None = None):
        """``(rows, features)`` in batches of ``batch_size`` (shuffled with ``generator``)."""
        order = rows[torch.randperm(len(rows), generator=generator)] if generator is not None else rows
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield idx, self.gather(idx.numpy())

    def moments(self, rows: torch.Tensor, batch_size: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std ``[L, D]`` over ``rows``, one streamed pass in float64."""
        total = torch.zeros(self.shape[1:], dtype=torch.float64)
        squares = torch.zeros_like(total)
        for _, x in self.batches(rows, batch_size):
            x = x.double()
            total += x.sum(0)
            squares += (x * x).sum(0)
        mean = total / len(rows)
        var = (squares / len(rows) - mean * mean).clamp_min(0) * len(rows) / max(len(rows) - 1, 1)
        return mean.float(), var.sqrt().float()


@dataclass
class CorpusFeatures:
    """Cached encoder features of every corpus row, with what the stages need beside them."""

    audio: AudioLayerStore
    text: torch.Tensor  # [N, Dt]
    labels: torch.Tensor  # [N]
    groups: torch.Tensor  # [N] transcript id: same-transcript pairs are not InfoNCE negatives

    def __len__(self) -> int:
        return len(self.labels)


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------


def scores(predictions: torch.Tensor, references: torch.Tensor) -> dict:
    """UA (mean per-class recall), WA (accuracy) and macro-F1 over the classes present in ``references``:
    the computation of the shipped ``ser_metrics`` evaluate module, without loading it per call."""
    p, r = predictions.long(), references.long()
    recalls, f1s = [], []
    for c in torch.unique(r):
        tp, support, predicted = int(((p == c) & (r == c)).sum()), int((r == c).sum()), int((p == c).sum())
        recall, precision = tp / support, (tp / predicted if predicted else 0.0)
        recalls.append(recall)
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return {"ua": float(np.mean(recalls)), "wa": float((p == r).double().mean()), "f1": float(np.mean(f1s)),
            "n": len(r), "predictions": p.tolist()}


# --------------------------------------------------------------------------------------------
# Model state helpers
# --------------------------------------------------------------------------------------------


def snapshot(model: nn.Module, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(prefixes)}


def restore(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    model.load_state_dict(state, strict=False)


def freeze_all_but(model: nn.Module, trainable: list[nn.Parameter]) -> None:
    keep = {id(p) for p in trainable}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)


def uses_text(model) -> bool:
    """Whether stage 1 needs the text branch: alignment, or the multimodal head."""
    return model.config.lambda_con > 0 or model.config.multimodal


def head_parameters(model) -> list[nn.Parameter]:
    """Exactly the weights the stage-1 loss uses."""
    params = [*model.audio_projection.parameters(), *model.classifier.parameters()]
    if model.config.layer_pooling == "weighted":
        params.append(model.layer_weights)
    if uses_text(model):
        params += list(model.text_projection.parameters())
        if model.config.lambda_con > 0:
            params.append(model.logit_scale)
        if model.config.multimodal:
            params += list(model.multimodal_classifier.parameters())
    return params


def l2_penalty(modules: list[nn.Module]) -> torch.Tensor:
    return sum((m.weight ** 2).sum() for m in modules)


# --------------------------------------------------------------------------------------------
# Stage 1: aligned baseline on cached encoder features
# --------------------------------------------------------------------------------------------


@dataclass
class Stage1Result:
    weight_decay: float
    epochs: int
    lambda_con: float | None = None
    validation_ua: float | None = None
    curve: list[dict] = field(default_factory=list)


def reset_heads(model, data: CorpusFeatures, rows: torch.Tensor) -> None:
    """Fresh heads; standardisation statistics from ``rows`` (training rows only)."""
    for module in (model.audio_projection, model.text_projection, model.classifier, model.multimodal_classifier):
        model._init_weights(module)
    with torch.no_grad():
        model.layer_weights.zero_()
        model.logit_scale.fill_(math.log(1.0 / model.config.temperature_init))
        mean, std = data.audio.moments(rows)
        model.audio_mean.copy_(mean)
        model.audio_std.copy_(std.clamp_min(1e-4))
        text = data.text[rows]
        model.text_mean.copy_(text.mean(0))
        model.text_std.copy_(text.std(0).clamp_min(1e-4) if len(rows) > 1 else torch.ones_like(text[0]))


def stage1_loss(model, audio: torch.Tensor, text: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor):
    """L_1 = CE (+ CE of the multimodal head) + lambda_con InfoNCE(h, u) + lambda_im IM, on ``audio``
    features already standardised by ``model.standardise_audio``."""
    config = model.config
    h = model.project_standardised_audio(audio)
    u = model.project_text(text) if uses_text(model) else None
    logits = model.classify(h, u if config.multimodal else None)
    loss = F.cross_entropy(logits, labels)
    if config.multimodal:
        loss = loss + F.cross_entropy(model.classify(h), labels)
    if config.lambda_con > 0 and len(labels) > 1:
        loss = loss + config.lambda_con * info_nce(h, u, model.logit_scale, groups)
    if config.lambda_im > 0:
        loss = loss + config.lambda_im * information_maximization(logits)
    return loss


@torch.no_grad()
def stage1_embeddings(model, data: CorpusFeatures, rows: torch.Tensor | None = None, batch_size: int = 8192):
    """``h = P_a(a)`` and ``u = P_t(t)`` of ``rows`` (default: every row), streamed in row order."""
    rows = torch.arange(len(data)) if rows is None else rows
    was_training = model.training
    model.eval()
    h = torch.empty(len(rows), model.config.projection_dim)
    start = 0
    for idx, audio in data.audio.batches(rows, batch_size):
        h[start : start + len(idx)] = model.project_audio(audio)
        start += len(idx)
    u = model.project_text(data.text[rows])
    model.train(was_training)
    return h, u


def head_logits(model, audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """The heads' logits on standardised encoder features and text features (the text only reaches a multimodal head)."""
    return model.classify(model.project_standardised_audio(audio), model.project_text(text) if model.config.multimodal else None)


def decayed_heads(model) -> list[nn.Module]:
    """The stage-1 layers whose weights carry the L2 penalty."""
    return [model.audio_projection, model.classifier] + ([model.text_projection, model.multimodal_classifier] if uses_text(model) else [])


@torch.no_grad()
def heads_ua(model, audio: torch.Tensor, text: torch.Tensor, labels: torch.Tensor) -> float:
    """UA of the current heads on standardised encoder features (stage-1 validation checks)."""
    was_training = model.dropout.training
    model.dropout.eval()
    logits = head_logits(model, audio, text)
    model.dropout.train(was_training)
    return scores(logits.argmax(-1), labels)["ua"]


def train_stage1(model, data: CorpusFeatures, rows: torch.Tensor, args: TrainArguments, weight_decay: float,
                 epochs: int, seed: int, validation: torch.Tensor | None = None) -> Stage1Result:
    """Adam on the heads for ``epochs`` (full batch when the rows fit ``args.batch_size``).

    With ``validation`` rows, their UA is checked every ``args.eval_every`` epochs and the heads of the
    best check are kept (early stopping after ``args.patience`` checks without a gain; ties go to the
    earlier epoch)."""
    simulate_kill("stage1")
    torch.manual_seed(seed)
    reset_heads(model, data, rows)
    params = head_parameters(model)
    freeze_all_but(model, params)
    decayed = decayed_heads(model)
    optimizer = torch.optim.Adam(params, lr=args.stage1_lr, foreach=True)
    generator = torch.Generator().manual_seed(seed)

    def step_inputs(idx: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """This process's share of a batch."""
        mine = my_slice(torch.arange(len(idx)))
        sel = idx[mine]
        return model.standardise_audio(audio[mine]), data.text[sel], data.labels[sel], data.groups[sel]

    full_batch = len(rows) <= args.batch_size  # then the one batch is prepared once, not every epoch
    cached = step_inputs(rows, data.audio.gather(rows.numpy())) if full_batch else None
    if validation is not None:  # prepared once: checked every ``eval_every`` epochs
        val_audio, val_text, val_labels = model.standardise_audio(data.audio.gather(validation.numpy())), data.text[validation], data.labels[validation]
    curve, best = [], (-1.0, 0, None)
    model.eval()
    model.dropout.train()  # the heads' only train/eval difference: no recursion over the encoders every epoch
    for epoch in range(1, epochs + 1):
        batches = [cached] if full_batch else (step_inputs(*batch) for batch in data.audio.batches(rows, args.batch_size, generator))
        for inputs in batches:
            loss = stage1_loss(model, *inputs)
            total = loss + weight_decay * l2_penalty(decayed)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            average_gradients(params)
            optimizer.step()
        curve.append({"epoch": epoch, "loss": float(loss.detach())})
        if validation is not None and (epoch % args.eval_every == 0 or epoch == epochs):
            ua = heads_ua(model, val_audio, val_text, val_labels)
            curve[-1]["validation_ua"] = ua
            if ua > best[0]:
                best = (ua, epoch, snapshot(model, HEAD_PREFIXES))
            elif epoch - best[1] >= args.patience * args.eval_every:
                break  # no better validation UA for ``patience`` checks
    if best[2] is not None:
        restore(model, best[2])
    freeze_all_but(model, [])
    model.eval()
    check_ranks_agree(model, "stage1", HEAD_PREFIXES)
    return Stage1Result(weight_decay=weight_decay, epochs=best[1] if validation is not None else epochs,
                        lambda_con=model.config.lambda_con, validation_ua=best[0] if validation is not None else None,
                        curve=curve)


def select_stage1(model, data: CorpusFeatures, inner: torch.Tensor, validation: torch.Tensor, args: TrainArguments,
                  seed: int, alignment_weights: tuple[float, ...]) -> tuple[Stage1Result, dict]:
    """The alignment weight (``lambda_con``), weight decay and epoch count with the best validation UA
    (ties: no alignment first, then stronger decay, fewer epochs); the model is left with those heads
    and that ``lambda_con``. Returns the choice and every candidate's validation UA."""
    best, best_state, tried = None, None, {}
    for lambda_con in sorted(set(alignment_weights)):
        model.config.lambda_con = lambda_con
        for wd in sorted(args.weight_decays, reverse=True):
            result = train_stage1(model, data, inner, args, wd, args.stage1_epochs, seed, validation)
            result.lambda_con = lambda_con
            tried[f"lambda_con={lambda_con:g},weight_decay={wd:g}"] = {"validation_ua": result.validation_ua, "epochs": result.epochs}
            if best is None or result.validation_ua > best.validation_ua:
                best, best_state = result, snapshot(model, HEAD_PREFIXES)
    model.config.lambda_con = best.lambda_con
    restore(model, best_state)
    return best, tried


# --------------------------------------------------------------------------------------------
# Stage 2: InfoGAN on stage-1 features, MI through the frozen stage-1 heads
# --------------------------------------------------------------------------------------------


def info_loss(model, fake: torch.Tensor, labels: torch.Tensor, text: torch.Tensor | None, groups: torch.Tensor | None,
              real_ce: float | None = None):
    """Barber-Agakov bound on I(c; h_hat) through Q (the frozen classifier), plus InfoNCE agreement with
    the text condition (or, for generated pairs, between h_hat and u_hat). With ``real_ce`` (info_target 'real' or
    'held_out') the class term only pushes while the samples' cross-entropy is above that level;
    'match_held_out' holds it at the level from both sides."""
    config = model.config
    logits = model.q_logits(fake)
    ce = F.cross_entropy(logits, labels)
    if real_ce is None:
        loss = ce
    else:
        loss = (ce - real_ce).abs() if config.info_target == "match_held_out" else F.relu(ce - real_ce)
    h, u_hat = model.split_samples(fake)
    if config.multimodal and not model.generator.pairs_real_text:  # a generated text half must agree with its audio half
        loss = loss + info_nce(h, u_hat, model.logit_scale)
    elif config.lambda_text_info > 0 and text is not None and model.generator.uses_text:  # agreement with a real condition
        loss = loss + config.lambda_text_info * info_nce(h, text, model.logit_scale, groups)
    return loss, logits


def resolve_text_condition(model, groups: torch.Tensor) -> None:
    """``auto`` becomes ``on`` in multimodal mode (the audio half of a pair must fit its real text half:
    drawn apart, RAVDESS-4 pairs scored C2ST 0.87, Fréchet ratio 2.5) and, in unimodal mode, only when
    transcripts rarely repeat in the training rows (>= 1 distinct transcript per 2 clips): with a few
    fixed sentences the condition would collapse samples onto one point per sentence. The config then
    says what the trained generator does."""
    if model.config.generator_text_condition != "auto":
        return
    if model.config.multimodal:
        model.config.generator_text_condition = "on"
        return
    distinct = len(torch.unique(groups)) / max(len(groups), 1)
    model.config.generator_text_condition = "on" if distinct >= 0.5 and model.config.lambda_con > 0 else "off"


@torch.no_grad()
def q_cross_entropy(model, samples: torch.Tensor, labels: torch.Tensor) -> float:
    """Cross-entropy of InfoGAN's Q (the frozen stage-1 classifier) on real or generated samples."""
    return float(F.cross_entropy(model.q_logits(samples), labels))


@one_thread()
def train_stage2(model, real: torch.Tensor, labels: torch.Tensor, text: torch.Tensor, groups: torch.Tensor,
                 args: TrainArguments, lambda_info: float, seed: int, held_out_ce: float | None = None) -> list[dict]:
    """G and D on real stage-1 samples ``real`` (``h`` or ``[h; u]`` pairs); every stage-1 weight frozen.
    ``held_out_ce``: the classifier's cross-entropy on held-out real rows (info_target ``held_out``)."""
    simulate_kill("stage2")
    torch.manual_seed(seed)
    model.eval()
    for module in (model.generator, model.discriminator):
        for layer in module.modules():
            model._init_weights(layer)
    model.generator.fit_basis(real)
    g_params, d_params = list(model.generator.parameters()), list(model.discriminator.parameters())
    freeze_all_but(model, g_params + d_params)
    g_opt = torch.optim.Adam(g_params, lr=args.gan_lr, betas=(0.5, 0.999), fused=True)
    d_opt = torch.optim.Adam(d_params, lr=args.gan_lr, betas=(0.5, 0.999), fused=True)
    kind = model.config.adversarial_loss
    real_ce = None
    if model.config.info_target == "real":
        real_ce = q_cross_entropy(model, real, labels)
    elif model.config.info_target in ("held_out", "match_held_out"):
        if held_out_ce is None:
            raise ValueError(f"info_target {model.config.info_target!r} needs the classifier's cross-entropy on held-out rows (held_out_ce)")
        real_ce = held_out_ce
    rng = torch.Generator().manual_seed(seed)
    n, batch = len(real), args.gan_batch_size
    _, size = world()
    mine = my_slice(torch.arange(batch * size))
    # every step's rows and noise drawn at once: the loop below is only the two updates
    all_idx = torch.randint(0, n, (args.gan_steps, batch * size), generator=rng)[:, mine]
    all_noise = torch.randn(args.gan_steps, batch * size, model.config.noise_dim, generator=rng)[:, mine]
    diversity = model.config.lambda_diversity
    if diversity > 0:  # a second draw for the first half of every batch (drawn after the rest: same rows and noise)
        half = len(mine) // 2
        all_noise_again = torch.randn(args.gan_steps, batch * size, model.config.noise_dim, generator=rng)[:, mine][:, :half]
    curve = []
    model.generator.train()
    model.discriminator.train()
    for step in range(args.gan_steps):
        idx = all_idx[step]
        x, c, u, g = real[idx], labels[idx], text[idx], groups[idx]
        fake = model.generator(all_noise[step], c, u)
        d_real, d_fake = model.discriminator(torch.cat([x, fake.detach()]), c.repeat(2)).chunk(2)  # one forward for both
        d_loss = discriminator_loss(kind, d_real, d_fake)
        if kind == "wgan-gp":
            d_loss = d_loss + 10.0 * gradient_penalty(model.discriminator, x, fake.detach(), c)
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        average_gradients(d_params)
        d_opt.step()
        adv = generator_adversarial_loss(kind, model.discriminator(fake, c))
        mi, logits = info_loss(model, fake, c, u, g, real_ce)
        g_loss = adv + lambda_info * mi if lambda_info > 0 else adv
        if model.config.lambda_mmd > 0:
            g_loss = g_loss + model.config.lambda_mmd * mmd(fake, x, c)
        if diversity > 0:
            again = model.generator(all_noise_again[step], c[:half], u[:half])
            g_loss = g_loss + diversity * mode_seeking(fake[:half], again, all_noise[step][:half], all_noise_again[step], x)
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        average_gradients(g_params)
        g_opt.step()
        if (step + 1) % 50 == 0 or step + 1 == args.gan_steps:
            curve.append({"step": step + 1, "d_loss": d_loss.item(), "g_adv": adv.item(), "info": mi.item(),
                          "q_accuracy": float((logits.argmax(-1) == c).float().mean())})
    model.eval()
    freeze_all_but(model, [])
    check_ranks_agree(model, "stage2", GAN_PREFIXES)
    return curve


def text_conditions(labels: torch.Tensor, text_pool: torch.Tensor, labels_pool: torch.Tensor, seed: int) -> torch.Tensor:
    """For each label, the projected transcript of a random real row of that class."""
    rng = torch.Generator().manual_seed(seed)
    text = torch.zeros(len(labels), text_pool.shape[1])
    for c in torch.unique(labels):
        pool = text_pool[labels_pool == c] if (labels_pool == c).any() else text_pool
        sel = labels == c
        text[sel] = pool[torch.randint(0, len(pool), (int(sel.sum()),), generator=rng)]
    return text


# --------------------------------------------------------------------------------------------
# Synthetic rows of every method, and stage 3
# --------------------------------------------------------------------------------------------


def synthetic_rows(method: str, model, x: torch.Tensor, y: torch.Tensor, u: torch.Tensor, ratio: float, seed: int,
                   oversample: int = 1, select_by: str = "q_confidence") -> tuple[torch.Tensor, torch.Tensor]:
    """``ratio x`` the real rows of synthetic samples from ``method``, topping up small classes first.
    ``class_weight`` adds none (it reweights the loss); ``oversample`` repeats real rows."""
    empty = (x.new_zeros(0, x.shape[1]), y.new_zeros(0))
    if method in ("none", "class_weight") or ratio == 0:
        return empty
    counts = class_balanced_counts(y.numpy(), model.config.num_labels, ratio)
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.as_tensor(counts))
    if method in GENERATIVE:
        text = text_conditions(labels, u, y, seed) if model.generator.needs_text else None
        return model.sample_features(labels, text, seed=seed + 1, oversample=oversample, select_by=select_by), labels
    if method == "oversample":
        rng = torch.Generator().manual_seed(seed)
        picks = [torch.nonzero(y == c)[:, 0] for c in range(len(counts))]
        idx = torch.cat([p[torch.randint(0, len(p), (int(n),), generator=rng)] for p, n in zip(picks, counts) if n and len(p)])
        return x[idx], y[idx]
    xs, ys = peer_samples(method, x.numpy(), y.numpy(), counts, np.random.default_rng(seed))
    return torch.from_numpy(xs), torch.from_numpy(ys).long()


def class_weights(y: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Inverse-frequency weights, mean 1 over the rows (class-weighted cross-entropy)."""
    counts = torch.bincount(y, minlength=num_labels).double().clamp_min(1)
    w = (len(y) / (num_labels * counts)).float()
    return w


@one_thread()
def train_stage3(model, x: torch.Tensor, y: torch.Tensor, synth: torch.Tensor, synth_y: torch.Tensor, args: TrainArguments,
                 weight_decay: float, seed: int, init: dict, balance_classes: bool = False) -> None:
    """Retrain the classifier(s) from their stage-1 weights ``init`` on real + synthetic samples
    (synthetic rows weigh ``args.synthetic_weight``); the logits come from ``model.classify``."""
    simulate_kill("stage3")
    torch.manual_seed(seed)
    restore(model, init)
    heads = [model.classifier] + ([model.multimodal_classifier] if model.config.multimodal else [])
    params = [p for head in heads for p in head.parameters()]
    freeze_all_but(model, params)
    xs, ys = torch.cat([x, synth]), torch.cat([y, synth_y])
    w = torch.cat([torch.ones(len(x)), torch.full((len(synth),), args.synthetic_weight)])
    if balance_classes:
        w = w * class_weights(y, model.config.num_labels)[ys]
    optimizer = torch.optim.Adam(params, lr=args.stage3_lr, foreach=True)
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    model.dropout.train()
    for _ in range(args.stage3_epochs):
        order = torch.randperm(len(xs), generator=generator) if len(xs) > args.batch_size else torch.arange(len(xs))
        for start in range(0, len(xs), args.batch_size):
            idx = my_slice(order[start : start + args.batch_size])
            h, u = model.split_samples(xs[idx])
            losses = [F.cross_entropy(model.classify(h), ys[idx], reduction="none")]
            if model.config.multimodal:
                losses.append(F.cross_entropy(model.classify(h, u), ys[idx], reduction="none"))
            wb = w[idx]
            loss = sum((l * wb).sum() / wb.sum() for l in losses) + weight_decay * l2_penalty(heads)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            average_gradients(params)
            optimizer.step()
    model.eval()
    freeze_all_but(model, [])
    check_ranks_agree(model, "stage3", CLASSIFIER_PREFIXES)


def training_samples(model, data: CorpusFeatures, h_all: torch.Tensor, u_all: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """What the classifier and generator work on: ``h``, or ``[h; u]`` pairs in multimodal mode."""
    return torch.cat([h_all[rows], u_all[rows]], -1) if model.config.multimodal else h_all[rows]
