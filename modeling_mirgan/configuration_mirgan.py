"""Configuration of a mirgan model: two encoders, a shared space, classifiers and the InfoGAN."""

from __future__ import annotations

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

LAYER_POOLINGS = ("weighted", "mean", "last")
MODES = ("unimodal", "multimodal")
ADVERSARIAL_LOSSES = ("nonsaturating", "hinge", "wgan-gp")


class MirganConfig(PreTrainedConfig):
    r"""
    audio_encoder / text_encoder: configs of the pre-trained encoders (any transformers audio model:
        Whisper, wav2vec2, HuBERT, WavLM, AST; any BERT-family text model).
    audio_encoder_name / text_encoder_name: where their weights came from (reported, not loaded).
    layer_pooling: how hidden states of all encoder layers become one vector: a learned softmax-weighted
        sum (SUPERB), the plain mean, or the last layer only.
    projection_dim: size `d` of the shared audio-text space; `h = P_a(a)` is the feature the classifier
        sees and the generator synthesises.
    mode: `unimodal` classifies `C(h)`; `multimodal` classifies `C_m([h; u])` when a transcript is given.
    noise_dim, generator_hidden_sizes, generator_text_condition: the generator `G(z, c[, u])`; an empty
        hidden list is a linear generator.
    discriminator_hidden_sizes, adversarial_loss: the projection discriminator `D(h, c)` and its loss.
    lambda_con, lambda_im, lambda_info, lambda_text_info, temperature_init: loss weights (DESIGN §1).
    """

    model_type = "mirgan"
    sub_configs_defaults = {
        "audio_encoder": SubConfigSpec(config_class=AutoConfig, model_type="whisper"),
        "text_encoder": SubConfigSpec(config_class=AutoConfig, model_type="bert"),
    }

    audio_encoder: PreTrainedConfig | dict | None = None
    text_encoder: PreTrainedConfig | dict | None = None
    audio_encoder_name: str = "openai/whisper-base"
    text_encoder_name: str = "sentence-transformers/all-MiniLM-L6-v2"
    audio_encoder_hash: str = ""
    text_encoder_hash: str = ""
    layer_pooling: str = "weighted"
    projection_dim: int = 256
    classifier_dropout: float = 0.2
    mode: str = "unimodal"
    noise_dim: int = 64
    generator_hidden_sizes: list[int] | None = None
    generator_text_condition: bool = True
    discriminator_hidden_sizes: list[int] | None = None
    adversarial_loss: str = "nonsaturating"
    lambda_con: float = 0.1
    lambda_im: float = 0.1
    lambda_info: float = 1.0
    lambda_text_info: float = 0.1
    temperature_init: float = 0.07
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.generator_hidden_sizes = list(self.generator_hidden_sizes or [])
        self.discriminator_hidden_sizes = list(self.discriminator_hidden_sizes or [])
        for name, value, allowed in (
            ("layer_pooling", self.layer_pooling, LAYER_POOLINGS),
            ("mode", self.mode, MODES),
            ("adversarial_loss", self.adversarial_loss, ADVERSARIAL_LOSSES),
        ):
            if value not in allowed:
                raise ValueError(f"MirganConfig.{name}={value!r}; expected one of {allowed}")

    @property
    def num_audio_layers(self) -> int:
        """Hidden states returned by the audio encoder: the embeddings plus one per layer."""
        cfg = self.audio_encoder
        return (getattr(cfg, "encoder_layers", None) or cfg.num_hidden_layers) + 1

    @property
    def audio_hidden_size(self) -> int:
        return getattr(self.audio_encoder, "d_model", None) or self.audio_encoder.hidden_size

    @property
    def text_hidden_size(self) -> int:
        return self.text_encoder.hidden_size
