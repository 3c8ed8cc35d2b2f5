"""The processor: audio (files, bytes or arrays at any rate/channels) and transcripts -> model inputs.

This file is copied next to saved checkpoints as remote code (``trust_remote_code=True``): it imports
only ``transformers``, ``torch``, ``numpy`` and its sibling ``audio.py`` (soundfile + soxr), never the
mirgan package.

Any sampling rate works everywhere, without torchaudio: the feature extractor and the processor
resample with soxr, and importing this module makes ``pipeline("audio-classification", ...)`` hand
``{"raw": array, "sampling_rate": rate}`` inputs and file paths of mirgan models to the feature
extractor's own decoding and resampling (see ``MirganAudioClassificationPipeline``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin, WhisperFeatureExtractor
from transformers.pipelines.audio_classification import AudioClassificationPipeline
from transformers.utils import logging

from .audio import AudioError, load_audio, to_mono_16k

logger = logging.get_logger(__name__)
MIN_SAMPLES = 400  # 25 ms: the receptive field of wav2vec2-style encoders, one STFT window for Whisper


class MirganWhisperFeatureExtractor(WhisperFeatureExtractor):
    """Whisper log-mel features of each clip at its own length, not padded to 30 s.

    Clips in a batch are zero-padded to the longest one and ``attention_mask`` marks real frames;
    the model masks the padding, so a batched clip gets the features it gets alone. The features are
    time-major, ``[batch, frames, mels]``, so a ``transformers`` pipeline's batching pads the time axis.

    Audio at any ``sampling_rate`` is resampled to ``self.sampling_rate`` with soxr (and downmixed
    when it has channels), so no torchaudio is needed."""

    model_input_names = ["input_features", "attention_mask"]
    accepts_any_sampling_rate = True  # read by MirganAudioClassificationPipeline

    def log_mel(self, waveform: np.ndarray) -> torch.Tensor:
        # a copy: decoded audio is often a read-only buffer (ffmpeg_read, datasets/Arrow), and
        # torch.from_numpy on one warns "The given NumPy array is not writable"
        wave = torch.tensor(np.asarray(waveform, dtype=np.float32))
        window = torch.hann_window(self.n_fft)
        stft = torch.stft(wave, self.n_fft, self.hop_length, window=window, return_complex=True)
        power = stft[..., :-1].abs() ** 2
        mel = torch.tensor(np.asarray(self.mel_filters, dtype=np.float32)).T @ power
        log_spec = torch.clamp(mel, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
        return (log_spec + 4.0) / 4.0

    def _checked(self, clip, index: int) -> np.ndarray:
        """A finite 1-D float32 waveform of at least MIN_SAMPLES samples, or AudioError naming the clip."""
        if isinstance(clip, torch.Tensor):
            clip = clip.detach().cpu().float().numpy()
        try:
            wave = np.asarray(clip, dtype=np.float32)
        except (ValueError, TypeError) as err:
            raise AudioError(f"array[{index}]: not an array of audio samples ({err})", "not an array of audio samples") from None
        if wave.ndim != 1:
            raise AudioError(f"array[{index}]: audio has shape {wave.shape}, expected [samples] (mono)", "audio has the wrong shape")
        if wave.shape[0] < MIN_SAMPLES:
            raise AudioError(f"array[{index}]: clip has {wave.shape[0]} samples, shorter than the minimum of {MIN_SAMPLES}",
                             "clip shorter than the encoder's minimum")
        if not np.isfinite(wave).all():
            raise AudioError(f"array[{index}]: audio contains NaN/inf samples", "audio contains NaN/inf samples")
        return wave

    def __call__(self, raw_speech, sampling_rate=None, return_tensors="pt", **kwargs) -> BatchFeature:
        """Features of one clip or a batch (list of clips, or a 2-D array of equal-length clips).

        ``sampling_rate``: the rate of ``raw_speech``; other rates than ``self.sampling_rate`` are
        resampled (and ``[samples, channels]`` clips downmixed). ``None`` means ``self.sampling_rate``."""
        batched = isinstance(raw_speech, (list, tuple)) or (
            isinstance(raw_speech, np.ndarray) and raw_speech.ndim == 2
        )
        clips = list(raw_speech) if batched else [raw_speech]
        if not clips:
            raise ValueError("no audio clips given")
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            clips = [to_mono_16k(_as_numpy(c), sampling_rate, self.sampling_rate, f"array[{i}]") for i, c in enumerate(clips)]
        mels = [self.log_mel(self._checked(c, i)) for i, c in enumerate(clips)]
        frames = max(m.shape[-1] for m in mels)
        features = torch.zeros(len(mels), frames, self.feature_size)
        mask = torch.zeros(len(mels), frames, dtype=torch.long)
        for i, m in enumerate(mels):
            features[i, : m.shape[-1]] = m.T
            mask[i, : m.shape[-1]] = 1
        data = {"input_features": features, "attention_mask": mask}
        return BatchFeature(data, tensor_type=return_tensors)


def _as_numpy(clip):
    if isinstance(clip, torch.Tensor):
        clip = clip.detach().cpu()
        return (clip.float() if clip.is_floating_point() else clip).numpy()
    return clip


class MirganProcessor(ProcessorMixin):
    """Pairs the audio feature extractor with the text tokenizer and validates every clip."""

    def __init__(self, feature_extractor, tokenizer, max_text_length: int = 128):
        self.max_text_length = max_text_length
        super().__init__(feature_extractor, tokenizer)

    @property
    def sampling_rate(self) -> int:
        return self.feature_extractor.sampling_rate

    def prepare_audio(self, audio, sampling_rate: int | None = None, name: str = "array") -> np.ndarray:
        """A validated mono waveform at the encoder's rate from a path, bytes, an array, an audio dict or
        a decoded ``datasets`` Audio value (torchcodec ``AudioDecoder``).

        Any problem raises ``AudioError`` (a ValueError) whose message starts with the file or ``name``."""
        torchcodec = sys.modules.get("torchcodec")
        if torchcodec is not None and isinstance(audio, torchcodec.decoders.AudioDecoder):
            samples = audio.get_all_samples()  # a decoded datasets Audio value: [channels, samples]
            wave = to_mono_16k(samples.data.cpu().numpy().T, samples.sample_rate, self.sampling_rate, name)
        elif isinstance(audio, (str, Path, bytes, bytearray)):
            name = "bytes" if isinstance(audio, (bytes, bytearray)) else str(audio)
            wave = load_audio(bytes(audio) if isinstance(audio, bytearray) else audio, self.sampling_rate)
        elif isinstance(audio, dict):  # a datasets Audio row: decoded {array, sampling_rate} or undecoded {path, bytes}
            name = str(audio.get("path") or name)
            if audio.get("array") is not None:
                if audio.get("sampling_rate") is None:
                    raise AudioError(f"{name}: an audio dict with 'array' needs its 'sampling_rate'", "no sampling rate")
                wave = to_mono_16k(audio["array"], audio["sampling_rate"], self.sampling_rate, name)
            elif audio.get("bytes") is not None or audio.get("path"):
                source = audio["bytes"] if audio.get("bytes") is not None else audio["path"]
                if not isinstance(source, (str, Path, bytes)):
                    raise AudioError(f"{name}: audio dict holds {type(source).__name__}, expected bytes or a path", "not audio")
                wave = load_audio(source, self.sampling_rate)
            else:
                raise AudioError(f"{name}: an audio dict needs 'array' + 'sampling_rate', 'bytes' or 'path' (keys: {list(audio)})",
                                 "not audio")
        else:
            if sampling_rate is None:
                raise AudioError(f"{name}: an array needs its sampling_rate", "no sampling rate")
            if isinstance(audio, torch.Tensor):
                audio = audio.detach().cpu()
                audio = (audio.float() if audio.is_floating_point() else audio).numpy()
            wave = to_mono_16k(audio, sampling_rate, self.sampling_rate, name)
        if wave.shape[0] < MIN_SAMPLES:
            raise AudioError(
                f"{name}: clip has {wave.shape[0]} samples at {self.sampling_rate} Hz, "
                f"shorter than the encoder's minimum of {MIN_SAMPLES}",
                "clip shorter than the encoder's minimum",
            )
        return wave

    def __call__(self, audio=None, text=None, sampling_rate=None, return_tensors="pt", **kwargs) -> BatchFeature:
        if audio is None and text is None:
            raise ValueError("MirganProcessor needs audio, text or both")
        data = {}
        if audio is not None:
            single = not isinstance(audio, (list, tuple))
            clips = [audio] if single else list(audio)
            waves = [self.prepare_audio(a, sampling_rate, f"array[{i}]") for i, a in enumerate(clips)]
            features = self.feature_extractor(
                waves if len(waves) > 1 or not single else waves[0],
                sampling_rate=self.sampling_rate,
                padding=True,
                return_attention_mask=True,
                return_tensors=return_tensors,
            )
            data.update(features)
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            if not texts:
                raise ValueError("no transcripts given")
            for i, t in enumerate(texts):
                if not isinstance(t, str) or not t.strip():
                    raise ValueError(f"text[{i}]: transcript is empty or not a string ({t!r})")
            tokens = self.tokenizer(
                texts, padding=True, truncation=True, max_length=self.max_text_length, return_tensors=return_tensors
            )
            data["input_ids"] = tokens["input_ids"]
            data["text_attention_mask"] = tokens["attention_mask"]
            if "token_type_ids" in tokens:
                data["token_type_ids"] = tokens["token_type_ids"]
        return BatchFeature(data, tensor_type=return_tensors)



class MirganAudioClassificationPipeline(AudioClassificationPipeline):
    """``AudioClassificationPipeline`` that lets a mirgan feature extractor decode and resample.

    For a model whose feature extractor has ``accepts_any_sampling_rate`` (``MirganWhisperFeatureExtractor``):

    - ``{"raw" | "array": x, "sampling_rate": rate}`` at any rate is resampled with soxr (the parent
      class needs torchaudio for any rate but the model's own);
    - a decoded ``datasets`` Audio value (torchcodec ``AudioDecoder``) is downmixed and resampled (the
      parent class rejects its ``[channels, samples]`` tensor);
    - a file path or encoded bytes is decoded with soundfile, as ``MirganProcessor`` and
      ``modeling_mirgan.predict`` do (FFmpeg only for formats soundfile cannot read).

    No transcript reaches the model here, so a multimodal mirgan model answers with its audio-only
    head, and the pipeline says so once per process rather than silently.

    Every other model, and every other input, goes through the parent class unchanged."""

    def preprocess(self, inputs):
        extractor = self.feature_extractor
        if not getattr(extractor, "accepts_any_sampling_rate", False):
            return super().preprocess(inputs)
        rate = extractor.sampling_rate
        wave = None
        torchcodec = sys.modules.get("torchcodec")  # an AudioDecoder input means torchcodec is imported
        if torchcodec is not None and isinstance(inputs, torchcodec.decoders.AudioDecoder):
            samples = inputs.get_all_samples()  # a decoded datasets Audio row: [channels, samples]
            wave = to_mono_16k(samples.data.cpu().numpy().T, samples.sample_rate, rate, "AudioDecoder")
        elif isinstance(inputs, dict) and "sampling_rate" in inputs and ("raw" in inputs or "array" in inputs):
            array = inputs["raw"] if inputs.get("raw") is not None else inputs.get("array")
            name = str(inputs.get("path") or "array")
            wave = to_mono_16k(_as_numpy(array), inputs["sampling_rate"], rate, name)
        elif isinstance(inputs, (bytes, bytearray)) or (
            isinstance(inputs, (str, Path)) and not str(inputs).startswith(("http://", "https://"))
        ):
            try:
                wave = load_audio(bytes(inputs) if isinstance(inputs, bytearray) else inputs, rate)
            except AudioError as err:
                if err.reason != "cannot decode audio":
                    raise
                # a container soundfile cannot read (e.g. m4a): the parent decodes it with FFmpeg
        if wave is None:
            return super().preprocess(inputs)
        processed = extractor(wave, sampling_rate=rate, return_tensors="pt")
        if self.dtype is not None:
            processed = processed.to(dtype=self.dtype)
        return processed

    def _forward(self, model_inputs):
        config = self.model.config
        if getattr(config, "model_type", None) == "mirgan" and config.multimodal and "input_ids" not in model_inputs:
            logger.warning_once(
                "this multimodal mirgan model gets no transcript through pipeline('audio-classification'): the "
                "audio-only head C(h) (model.classifier) answers, not the multimodal head C_m([h; u]); for that, call "
                "the model with MirganProcessor(audio=..., text=...) or run modeling_mirgan.predict with --text")
        return super()._forward(model_inputs)


def register_pipeline() -> None:
    """Make ``pipeline("audio-classification", ...)`` build ``MirganAudioClassificationPipeline``.

    The task entry keeps its models and defaults; only its class changes, and that class behaves like
    the parent for every model that is not mirgan. (Written into the task table directly rather than
    with ``PIPELINE_REGISTRY.register_pipeline``, which logs an "Overwriting" warning and marks the
    class as a custom pipeline that ``save_pretrained`` would write into ``config.json``.)"""
    from transformers.pipelines import PIPELINE_REGISTRY

    entry = PIPELINE_REGISTRY.supported_tasks.get("audio-classification")
    if entry is None:
        return
    impl = entry.get("impl")
    if isinstance(impl, str) and impl.rsplit(".", 1)[-1] == AudioClassificationPipeline.__name__:
        impl = AudioClassificationPipeline
    if impl is AudioClassificationPipeline:  # never replace another library's own override
        PIPELINE_REGISTRY.supported_tasks["audio-classification"] = dict(entry, impl=MirganAudioClassificationPipeline)


register_pipeline()
