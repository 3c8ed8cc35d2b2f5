"""Build the processor of a pair of pre-trained encoders.

Kept out of ``encoders.py``: that file is copied beside saved checkpoints as remote code (the model
imports it), and remote code must not import the ``processing`` package."""

from __future__ import annotations

from transformers import AutoConfig

from .encoders import resolve_pretrained


def build_processor(audio_encoder_name: str, text_encoder_name: str):
    """The ``MirganProcessor`` for a pair of pre-trained encoders (resolved like the encoders themselves)."""
    from transformers import AutoFeatureExtractor, AutoTokenizer, WhisperFeatureExtractor

    from processing import MirganProcessor, MirganWhisperFeatureExtractor

    audio_folder = resolve_pretrained(audio_encoder_name)
    if AutoConfig.from_pretrained(audio_folder).model_type == "whisper":
        base = WhisperFeatureExtractor.from_pretrained(audio_folder)
        feature_extractor = MirganWhisperFeatureExtractor(
            feature_size=base.feature_size, sampling_rate=base.sampling_rate,
            hop_length=base.hop_length, n_fft=base.n_fft,
        )
    else:
        feature_extractor = AutoFeatureExtractor.from_pretrained(audio_folder)
    tokenizer = AutoTokenizer.from_pretrained(resolve_pretrained(text_encoder_name))
    return MirganProcessor(feature_extractor, tokenizer)
