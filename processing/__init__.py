from .audio import AudioError, load_audio, to_mono_16k
from .processing_mirgan import MIN_SAMPLES, MirganProcessor, MirganWhisperFeatureExtractor, build_processor

__all__ = ["AudioError", "MIN_SAMPLES", "MirganProcessor", "MirganWhisperFeatureExtractor", "build_processor", "load_audio", "to_mono_16k"]
