"""Configuration of a mirgan model: two encoders, a shared space, classifiers and the InfoGAN."""

from __future__ import annotations

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

LAYER_POOLINGS = ("weighted", "mean", "last")
MODES = ("unimodal", "multimodal")
ADVERSARIAL_LOSSES = ("nonsaturating", "hinge", "wgan-gp")
GENERATOR_CONDITIONINGS = ("concat", "film")
TEXT_CONDITIONS = ("auto", "on", "off")
INFO_TARGETS = ("max", "real", "held_out", "match_held_out")


class MirganConfig(PreTrainedConfig):
    r"""
    Args:
        audio_encoder (`PreTrainedConfig` or `dict`): config of the pre-trained audio encoder (Whisper,
            wav2vec2, HuBERT, WavLM, AST).
        text_encoder (`PreTrainedConfig` or `dict`): config of the BERT-family text encoder.
        audio_encoder_name / text_encoder_name (`str`): Hub names the weights came from (reported, not loaded).
        audio_encoder_hash / text_encoder_hash (`str`): hashes of those weights (feature-cache keys).
        layer_pooling (`str`, defaults to `"weighted"`): how the hidden states of all encoder layers become one
            vector: a learned softmax-weighted sum (SUPERB), the plain mean, or the last layer.
        projection_dim (`int`, defaults to 256): size `d` of the shared audio-text space; `h = P_a(a)` is the
            feature the classifier sees and the generator synthesises.
        classifier_dropout (`float`, defaults to 0.2): dropout on `h` before the classifiers.
        mode (`str`, defaults to `"unimodal"`): `unimodal` classifies `C(h)`; `multimodal` classifies
            `C_m([h; u])` when a transcript is given, and its generator emits pairs `(h_hat, u_hat)`.
        noise_dim (`int`, defaults to 64): size of the generator's noise `z`.
        generator_noise_scale (`float`, defaults to 1.0): std of `z`.
        generator_hidden_sizes (`list[int]`, defaults to `[512, 512]`): generator MLP widths; `[]` is the
            paper's linear generator.
        generator_rank (`int`, defaults to 32): the generator emits coordinates in the top-`rank` principal
            subspace of its real training samples (scaled by their spread, plus their mean); 0 emits free
            `d`-dimensional vectors (the paper's form).
        generator_conditioning (`str`, defaults to `"film"`): the class enters as a concatenated one-hot
            (`concat`) or as a per-class scale and shift of every hidden layer (`film`, conditional norm).
        generator_text_condition (`str`, defaults to `"auto"`): condition `G` on the projected embedding of a
            real transcript: `on`, `off`, or `auto` (on only when transcripts rarely repeat in the training
            rows; on fixed-sentence corpora a linear generator otherwise collapses onto one point per sentence).
        discriminator_hidden_sizes (`list[int]`, defaults to `[256]`): widths of the projection
            discriminator `D(h, c)`; `[]` is linear.
        adversarial_loss (`str`, defaults to `"nonsaturating"`): `nonsaturating`, `hinge` or `wgan-gp`.
        lambda_mmd (`float`, defaults to 30.0): weight of a class-matched MMD between generated and real batches
            in the generator loss (moment matching that keeps a small-data GAN from collapsing); 0 is a pure GAN.
        lambda_con (`float`, defaults to 0.1): weight of the stage-1 InfoNCE alignment of `h` and `u`.
        lambda_im (`float`, defaults to 0.1): weight of the stage-1 information maximisation term.
        lambda_info (`float`, defaults to 1.0): weight of the generator's MI term through the frozen Q head.
        info_target (`str`, defaults to `"match_held_out"`): `max` maximises the Barber-Agakov bound (samples drift to the
            classifier's easy core, Q-accuracy 1.0); `real` penalises the MI term only while the samples'
            cross-entropy is above the real training rows' (samples as hard as real ones); `held_out` uses the
            classifier's cross-entropy on held-out validation speakers instead (as hard as unseen real clips:
            training rows are easier for the classifier that was fitted on them); `match_held_out` holds the
            samples' cross-entropy at that held-out level from both sides (`|CE - CE_held_out|`), so samples
            are pushed off the easy core as well as towards their class (chosen on validation speakers:
            `bench/results/generator_search_*.md`).
        lambda_text_info (`float`, defaults to 0.1): weight of the generator's InfoNCE agreement with its text
            condition.
        temperature_init (`float`, defaults to 0.07): initial InfoNCE temperature (learned).
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
    generator_noise_scale: float = 1.0
    generator_hidden_sizes: list[int] | None = None
    generator_rank: int = 32
    generator_conditioning: str = "film"
    generator_text_condition: str = "auto"
    discriminator_hidden_sizes: list[int] | None = None
    adversarial_loss: str = "nonsaturating"
    lambda_mmd: float = 30.0
    lambda_con: float = 0.1
    lambda_im: float = 0.1
    lambda_info: float = 1.0
    info_target: str = "match_held_out"
    lambda_text_info: float = 0.1
    temperature_init: float = 0.07

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.generator_hidden_sizes = [512, 512] if self.generator_hidden_sizes is None else list(self.generator_hidden_sizes)
        self.discriminator_hidden_sizes = [256] if self.discriminator_hidden_sizes is None else list(self.discriminator_hidden_sizes)
        if isinstance(self.generator_text_condition, bool):  # configs saved before it had three values
            self.generator_text_condition = "on" if self.generator_text_condition else "off"
        for name, allowed in (
            ("layer_pooling", LAYER_POOLINGS),
            ("mode", MODES),
            ("adversarial_loss", ADVERSARIAL_LOSSES),
            ("generator_conditioning", GENERATOR_CONDITIONINGS),
            ("generator_text_condition", TEXT_CONDITIONS),
            ("info_target", INFO_TARGETS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"MirganConfig.{name}={getattr(self, name)!r}; expected one of {allowed}")

    @property
    def multimodal(self) -> bool:
        return self.mode == "multimodal"

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

    @property
    def sample_dim(self) -> int:
        """Width of a generated sample: `h`, or the pair `[h; u]` in multimodal mode."""
        return self.projection_dim * (2 if self.multimodal else 1)
