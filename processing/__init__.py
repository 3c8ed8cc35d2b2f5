from .audio import AudioError, load_audio, to_mono_16k
from .processing_mirgan import MIN_SAMPLES, MirganProcessor, MirganWhisperFeatureExtractor

__all__ = ["AudioError", "MIN_SAMPLES", "MirganProcessor", "MirganWhisperFeatureExtractor", "load_audio", "to_mono_16k"]
