"""Configuration of a mirgan model: two encoders, a shared space, classifiers and the InfoGAN."""

from __future__ import annotations

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .config_defaults import (ADVERSARIAL_LOSSES, CONFIG_DEFAULTS, GENERATOR_CONDITIONINGS, INFO_TARGETS, LAYER_POOLINGS, MODES,
                              PAIRED_TEXTS, TEXT_CONDITIONS)


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
            `C_m([h; u])` when a transcript is given, and its generator emits pairs `[h_hat; u]` (see `paired_text`).
        noise_dim (`int`, defaults to 64): size of the generator's noise `z`.
        generator_noise_scale (`float`, defaults to 1.0): std of `z`; only with `concat` conditioning or a linear
            generator: under `film` the first hidden layer is layer-normalised, so only the direction of `z` reaches
            the output (measured: sampling at 0.5-2x the trained scale moved C2ST by <= 0.004), and a scale other
            than 1 is refused.
        generator_hidden_sizes (`list[int]`, defaults to `[512, 512]`): generator MLP widths; `[]` is the
            paper's linear generator.
        generator_rank (`int`, defaults to 32): the generator emits coordinates in the top-`rank` principal
            subspace of its real training samples (scaled by their spread, plus their mean); 0 emits free
            `d`-dimensional vectors (the paper's form).
        generator_conditioning (`str`, defaults to `"film"`): the class enters as a concatenated one-hot
            (`concat`) or as a per-class scale and shift of every hidden layer (`film`, conditional norm).
        generator_text_condition (`str`, defaults to `"auto"`): condition `G` on the projected embedding of a
            real transcript: `on`, `off`, or `auto` (multimodal: on; unimodal: on only when transcripts rarely
            repeat in the training rows, since on fixed-sentence corpora the round-1 linear generator collapsed
            onto one point per sentence). Under `film` the text enters as a scale and shift of every hidden
            layer (zero at init), otherwise as input columns at the noise's norm: as raw input columns it
            drowned the noise (multimodal RAVDESS-4: pair recall 0.12; by FiLM 0.73).
        paired_text (`str`, defaults to `"real"`): the text half of a multimodal sample: `real`, the projected
            transcript of a random training row of the class (the one `G` reads when the text condition is on),
            or `generated` by `G` with the audio half (measured on EmoDB-4 it collapsed onto a few points:
            pair C2ST 0.70, recall 0.52, Fréchet ratio 4.0).
        discriminator_hidden_sizes (`list[int]`, defaults to `[256]`): widths of the projection
            discriminator `D(h, c)`; `[]` is linear.
        adversarial_loss (`str`, defaults to `"nonsaturating"`): `nonsaturating`, `hinge` or `wgan-gp`.
        lambda_mmd (`float`, defaults to 30.0): weight of a class-matched MMD between generated and real batches
            in the generator loss (moment matching that keeps a small-data GAN from collapsing); 0 is a pure GAN.
        lambda_diversity (`float`, defaults to 0.0): weight of the mode-seeking term (Mao et al., CVPR 2019): two
            noise draws for the same condition should give samples as far apart, relative to the noise distance,
            as real rows of a batch are; pushes the generator to cover its class instead of its core. 0: off.
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
    audio_encoder_name: str = CONFIG_DEFAULTS["audio_encoder_name"]
    text_encoder_name: str = CONFIG_DEFAULTS["text_encoder_name"]
    audio_encoder_hash: str = ""
    text_encoder_hash: str = ""
    layer_pooling: str = CONFIG_DEFAULTS["layer_pooling"]
    projection_dim: int = CONFIG_DEFAULTS["projection_dim"]
    classifier_dropout: float = CONFIG_DEFAULTS["classifier_dropout"]
    mode: str = CONFIG_DEFAULTS["mode"]
    noise_dim: int = CONFIG_DEFAULTS["noise_dim"]
    generator_noise_scale: float = CONFIG_DEFAULTS["generator_noise_scale"]
    generator_hidden_sizes: list[int] | None = None
    generator_rank: int = CONFIG_DEFAULTS["generator_rank"]
    generator_conditioning: str = CONFIG_DEFAULTS["generator_conditioning"]
    generator_text_condition: str = CONFIG_DEFAULTS["generator_text_condition"]
    paired_text: str = CONFIG_DEFAULTS["paired_text"]
    discriminator_hidden_sizes: list[int] | None = None
    adversarial_loss: str = CONFIG_DEFAULTS["adversarial_loss"]
    lambda_mmd: float = CONFIG_DEFAULTS["lambda_mmd"]
    lambda_diversity: float = CONFIG_DEFAULTS["lambda_diversity"]
    lambda_con: float = CONFIG_DEFAULTS["lambda_con"]
    lambda_im: float = CONFIG_DEFAULTS["lambda_im"]
    lambda_info: float = CONFIG_DEFAULTS["lambda_info"]
    info_target: str = CONFIG_DEFAULTS["info_target"]
    lambda_text_info: float = CONFIG_DEFAULTS["lambda_text_info"]
    temperature_init: float = CONFIG_DEFAULTS["temperature_init"]

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.generator_hidden_sizes = list(CONFIG_DEFAULTS["generator_hidden_sizes"]) if self.generator_hidden_sizes is None else list(self.generator_hidden_sizes)
        self.discriminator_hidden_sizes = list(CONFIG_DEFAULTS["discriminator_hidden_sizes"]) if self.discriminator_hidden_sizes is None else list(self.discriminator_hidden_sizes)
        if isinstance(self.generator_text_condition, bool):  # configs saved before it had three values
            self.generator_text_condition = "on" if self.generator_text_condition else "off"
        for name, allowed in (
            ("layer_pooling", LAYER_POOLINGS),
            ("mode", MODES),
            ("adversarial_loss", ADVERSARIAL_LOSSES),
            ("generator_conditioning", GENERATOR_CONDITIONINGS),
            ("generator_text_condition", TEXT_CONDITIONS),
            ("paired_text", PAIRED_TEXTS),
            ("info_target", INFO_TARGETS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"MirganConfig.{name}={getattr(self, name)!r}; expected one of {allowed}")
        if self.generator_noise_scale != 1.0 and self.film_conditioning:
            raise ValueError(f"MirganConfig.generator_noise_scale={self.generator_noise_scale}: film conditioning layer-normalises "
                             "the first hidden layer, so the noise scale cannot reach the samples; use generator_conditioning='concat' "
                             "or leave it at 1.0")

    @property
    def multimodal(self) -> bool:
        return self.mode == "multimodal"

    @property
    def film_conditioning(self) -> bool:
        """Does the class enter the generator by FiLM? (a linear generator has no hidden layer to modulate)"""
        return self.generator_conditioning == "film" and bool(self.generator_hidden_sizes)

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
