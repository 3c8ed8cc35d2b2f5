"""mirgan: speech emotion recognition with a mutual-information-regularised feature InfoGAN."""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForAudioClassification,
    AutoProcessor,
)

from processing import MirganProcessor, MirganWhisperFeatureExtractor

from .configuration_mirgan import MirganConfig
from .modeling_mirgan import (
    FeatureDiscriminator,
    FeatureGenerator,
    MirganClassifierOutput,
    MirganForEmotionClassification,
    from_encoders,
)

__version__ = "0.1.0"


def __getattr__(name):
    """The training engine loads on first use: ``from modeling_mirgan import train_mirgan``."""
    if name == "train_mirgan":
        from .training import train_mirgan

        return train_mirgan
    raise AttributeError(f"module 'modeling_mirgan' has no attribute {name!r}")


AutoConfig.register("mirgan", MirganConfig, exist_ok=True)
AutoModel.register(MirganConfig, MirganForEmotionClassification, exist_ok=True)
AutoModelForAudioClassification.register(MirganConfig, MirganForEmotionClassification, exist_ok=True)
AutoFeatureExtractor.register(MirganConfig, MirganWhisperFeatureExtractor, exist_ok=True)
AutoProcessor.register(MirganConfig, MirganProcessor, exist_ok=True)

__all__ = [
    "FeatureDiscriminator",
    "FeatureGenerator",
    "MirganClassifierOutput",
    "MirganConfig",
    "MirganForEmotionClassification",
    "MirganProcessor",
    "MirganWhisperFeatureExtractor",
    "from_encoders",
    "train_mirgan",
]

# Saved checkpoints carry these classes' code and an ``auto_map``, so a Hub user without the package
# can load them with ``trust_remote_code=True``; with the package installed the registered classes win.
MirganConfig.register_for_auto_class()
MirganForEmotionClassification.register_for_auto_class("AutoModelForAudioClassification")
MirganWhisperFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
MirganProcessor.register_for_auto_class("AutoProcessor")
