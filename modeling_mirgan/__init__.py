"""mirgan: speech emotion recognition with a mutual-information-regularised feature InfoGAN.

``import modeling_mirgan`` loads no torch and no model code (it takes about as long as ``import
transformers``): the classes load on first use, and the transformers Auto classes find them then.
"""

import sys

__version__ = "0.1.0"
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


def _load_classes() -> None:
    """Import the model and processor classes and register them by config class with the Auto classes."""
    from transformers import AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification, AutoProcessor

    from processing import MirganProcessor, MirganWhisperFeatureExtractor

    from .configuration_mirgan import MirganConfig
    from .modeling_mirgan import FeatureDiscriminator, FeatureGenerator, MirganClassifierOutput, MirganForEmotionClassification, from_encoders

    for auto in (AutoModel, AutoModelForAudioClassification):
        auto.register(MirganConfig, MirganForEmotionClassification, exist_ok=True)
    AutoFeatureExtractor.register(MirganConfig, MirganWhisperFeatureExtractor, exist_ok=True)
    AutoProcessor.register(MirganConfig, MirganProcessor, exist_ok=True)
    # Saved checkpoints carry these classes' code and an ``auto_map``, so a Hub user without the package
    # can load them with ``trust_remote_code=True``; with the package installed the registered classes win.
    MirganConfig.register_for_auto_class()
    MirganForEmotionClassification.register_for_auto_class("AutoModelForAudioClassification")
    MirganWhisperFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
    MirganProcessor.register_for_auto_class("AutoProcessor")
    globals().update({k: v for k, v in locals().items() if k in __all__})


def __getattr__(name):
    """The classes, and the training engine (``from modeling_mirgan import train_mirgan``), load on first use."""
    if name == "train_mirgan":
        from .training import train_mirgan

        return train_mirgan
    if name in __all__:
        _load_classes()
        return globals()[name]
    raise AttributeError(f"module 'modeling_mirgan' has no attribute {name!r}")


def _announce_model_type() -> None:
    """Make model type ``mirgan`` known to the Auto classes the way they know their own models: by class
    name in their tables, resolved from the module ``transformers.models.mirgan`` (this package) on first
    use. (``AutoConfig.register`` and the like need the classes, that is torch and the model code.)"""
    from transformers.models.auto import auto_mappings

    sys.modules["transformers.models.mirgan"] = sys.modules[__name__]
    auto_mappings.CONFIG_MAPPING_NAMES["mirgan"] = "MirganConfig"
    auto_mappings.FEATURE_EXTRACTOR_MAPPING_NAMES["mirgan"] = "MirganWhisperFeatureExtractor"
    auto_mappings.PROCESSOR_MAPPING_NAMES["mirgan"] = "MirganProcessor"
    loaded = sys.modules.get("transformers.models.auto.configuration_auto")  # it copied the table on import
    if loaded is not None:
        loaded.CONFIG_MAPPING_NAMES["mirgan"] = "MirganConfig"


_announce_model_type()
