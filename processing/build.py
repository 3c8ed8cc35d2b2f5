"""Build the processor for a pair of pre-trained encoders.

Kept out of ``processing_mirgan.py`` on purpose: that file is copied next to saved checkpoints as
remote code, and it must not import the package (a Hub user without it installed loads it)."""

from __future__ import annotations

from transformers import WhisperFeatureExtractor

from .processing_mirgan import MirganProcessor, MirganWhisperFeatureExtractor


def build_processor(audio_encoder_name: str, text_encoder_name: str) -> MirganProcessor:
    """The processor for a pair of pre-trained encoders (resolved like the encoders themselves)."""
    from transformers import AutoConfig, AutoFeatureExtractor, AutoTokenizer

    from modeling_mirgan.encoders import resolve_pretrained

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
