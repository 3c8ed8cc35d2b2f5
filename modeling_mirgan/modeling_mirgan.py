"""mirgan: pre-trained encoders, a shared audio-text space, emotion classifiers and a feature InfoGAN.

``h = P_a(pool_layers(a))`` is the audio feature: the classifier ``C`` sees it, and the generator
``G(z, c[, u])`` learns to synthesise it. The frozen classifier and alignment heads double as
InfoGAN's Q network when the generator is trained (see ``losses.info_loss``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from .config_defaults import SAMPLE_SELECTIONS
from .configuration_mirgan import MirganConfig
from .encoders import build_audio_backbone, masked_mean, pooled_audio_layers


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")


def refuse_pickled_weights(folder: Path) -> None:
    """ValueError if ``folder`` holds pickled weights (loading them could run arbitrary code), or is
    otherwise not loadable as saved (see ``loading.check_folder``). Trainer's state files
    (``training_args.bin``, ``optimizer.pt``, ...) are allowed: they are never read."""
    from .loading import check_folder

    check_folder(Path(folder))


def check_label_set(config: MirganConfig, labels, where: str = "the data") -> list[str]:
    """The checkpoint's labels in its own id order, if ``labels`` are the same set; else ValueError.

    Call it when a saved model meets labelled data (fine-tuning, evaluation): a model trained on
    {angry, happy, neutral, sad} cannot score a corpus labelled {anger, joy, ...} without a mapping."""
    known = [config.id2label[i] for i in range(config.num_labels)]
    given = list(dict.fromkeys(labels))
    if set(given) != set(known):
        missing = [l for l in given if l not in known]
        extra = [l for l in known if l not in given]
        raise ValueError(
            f"label set of {where} {sorted(given)} does not match the checkpoint's {sorted(known)}"
            + (f"; not in the checkpoint: {missing}" if missing else "")
            + (f"; not in {where}: {extra}" if extra else "")
            + ". Pass --classes with the checkpoint's labels, or relabel the data."
        )
    return known


@dataclass
class MirganClassifierOutput(ModelOutput):
    """logits: emotion scores (multimodal head when a transcript was given in multimodal mode).
    audio_embeds `h` and text_embeds `u` live in the shared space; audio_layer_features are the
    per-layer pooled encoder states the feature cache stores."""

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    audio_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    audio_layer_features: torch.FloatTensor | None = None


def mlp(in_dim: int, hidden: list[int], out_dim: int) -> nn.Sequential:
    layers, dim = [], in_dim
    for size in hidden:
        layers += [nn.Linear(dim, size), nn.LeakyReLU(0.2)]
        dim = size
    return nn.Sequential(*layers, nn.Linear(dim, out_dim))


def leading_columns(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer`` applied to inputs that fill only its first ``x.shape[-1]`` input columns (the rest zero)."""
    return nn.functional.linear(x, layer.weight[:, : x.shape[-1]], layer.bias)


class FeatureGenerator(nn.Module):
    """``G(z, c[, u]) -> h_hat``. In multimodal mode a paired sample: ``[h_hat; u]`` with the real
    transcript embedding ``u`` it was given (``paired_text`` real; read as the condition only when the
    text condition is on), or ``G_m(z, c) -> [h_hat; u_hat]`` with both halves generated.

    The class enters as a one-hot beside the noise (``concat``) or as a per-class scale and shift of
    every hidden layer (``film``); the text condition ``u`` is read only when the config says ``on``."""

    def __init__(self, config: MirganConfig):
        super().__init__()
        self.config = config
        d, k, hidden = config.projection_dim, config.num_labels, config.generator_hidden_sizes
        film = config.film_conditioning
        # the text condition: the last d input columns (the text slot), or under film a scale and shift of
        # every hidden layer beside the class's (through the slot it drowned the noise: one point per sentence).
        # Under film the slot stays, unread, so the default's shapes and initialisation are the benchmarked ones.
        in_dim = config.noise_dim + (0 if film else k) + d
        self.layers = nn.ModuleList()
        self.films = nn.ModuleList()
        for size in hidden:
            self.layers.append(nn.Linear(in_dim, size))
            if film:
                self.films.append(nn.Embedding(k, 2 * size))
            in_dim = size
        # zero at init (and drawing no random numbers), so a generator without text starts as before
        self.text_films = nn.ParameterList([nn.Parameter(torch.zeros(d, 2 * size)) for size in (hidden if film else [])])
        rank = min(config.generator_rank, config.sample_dim)
        self.out = nn.Linear(in_dim, rank or config.sample_dim)
        # Output in the principal subspace of the real training samples (``fit_basis``): with a few hundred
        # rows in a 256-d space, the real features span a small subspace and anything outside it is
        # trivially detectable. ``basis`` rows are the components scaled by their standard deviation.
        self.register_buffer("basis", torch.eye(rank, config.sample_dim))  # until fitted: the first axes
        self.register_buffer("offset", torch.zeros(config.sample_dim))

    @torch.no_grad()
    def fit_basis(self, real: torch.Tensor) -> None:
        """The mean and top principal components of the real samples the generator learns from."""
        if not self.config.generator_rank:
            return
        cols = self.config.projection_dim if self.pairs_real_text else self.config.sample_dim  # what G emits
        real = real[:, :cols]
        self.offset.zero_()
        self.basis.zero_()
        self.offset[:cols] = real.mean(0)
        _, s, v = torch.linalg.svd(real - self.offset[:cols], full_matrices=False)
        r = min(len(self.basis), len(s))
        self.basis[:r, :cols] = v[:r] * (s[:r] / max(len(real) - 1, 1) ** 0.5)[:, None]

    @property
    def uses_text(self) -> bool:
        """Does G read a real transcript embedding as its condition?"""
        return self.config.generator_text_condition == "on"

    @property
    def pairs_real_text(self) -> bool:
        """Is a multimodal sample's text half the real ``u`` it was given?"""
        return self.config.multimodal and self.config.paired_text == "real"

    @property
    def needs_text(self) -> bool:
        """Does sampling need one real transcript embedding per sample?"""
        return self.uses_text or self.pairs_real_text

    def forward(self, noise, labels, text_embeds=None):
        inputs = [noise * self.config.generator_noise_scale]
        if not self.films:
            inputs.append(nn.functional.one_hot(labels, self.config.num_labels).to(noise.dtype))
        text = nn.functional.normalize(text_embeds, dim=-1) if self.uses_text and text_embeds is not None else None
        # the text slot (the last input columns, read only without film); unused, it reads zeros, so the first
        # layer skips those columns instead of multiplying them (a fifth of stage 2's compute)
        if text is not None and not self.films:
            inputs.append(text * self.config.noise_dim ** 0.5)  # at the noise's norm: it cannot drown z
        x = torch.cat(inputs, -1)
        for i, layer in enumerate(self.layers):
            x = leading_columns(layer, x) if i == 0 else layer(x)
            if self.films:
                scale, shift = self.films[i](labels).chunk(2, -1)
                if text is not None:
                    text_scale, text_shift = (text @ self.text_films[i]).chunk(2, -1)
                    scale, shift = scale + text_scale, shift + text_shift
                x = nn.functional.layer_norm(x, x.shape[-1:]) * (1 + scale) + shift
            x = nn.functional.leaky_relu(x, 0.2)
        x = self.out(x) if self.layers else leading_columns(self.out, x)
        x = x @ self.basis + self.offset if self.config.generator_rank else x
        if self.pairs_real_text:
            if text_embeds is None:
                raise ValueError("this multimodal generator pairs each sample with a real transcript embedding: give text_embeds")
            x = torch.cat([x[:, : self.config.projection_dim], text_embeds], -1)
        return x


class FeatureDiscriminator(nn.Module):
    """Projection discriminator ``D(x, c) = w . phi(x) + e_c . phi(x)`` on features or feature pairs."""

    def __init__(self, config: MirganConfig):
        super().__init__()
        in_dim = config.sample_dim
        hidden = config.discriminator_hidden_sizes
        self.body = mlp(in_dim, hidden[:-1], hidden[-1]) if hidden else nn.Identity()
        feat = hidden[-1] if hidden else in_dim
        self.activation = nn.LeakyReLU(0.2) if hidden else nn.Identity()
        self.out = nn.Linear(feat, 1)
        self.class_embedding = nn.Embedding(config.num_labels, feat)

    def forward(self, features, labels):
        phi = self.activation(self.body(features))
        return self.out(phi).squeeze(-1) + (self.class_embedding(labels) * phi).sum(-1)


class MirganPreTrainedModel(PreTrainedModel):
    config_class = MirganConfig
    base_model_prefix = "mirgan"
    main_input_name = "input_features"
    supports_gradient_checkpointing = True  # the encoders' layers checkpoint; the heads are a few linear maps
    _supports_sdpa = True

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """Load from safetensors only, then move every tensor to freshly allocated memory.

        Pickled weights (``.bin``/``.pt``/``.pth``/``.pkl``/``.ckpt``) can run code when loaded: a local
        folder that holds any is refused, and a Hub repository is read with ``use_safetensors=True``.

        safetensors maps tensors at 8-byte offsets; CPU matmul kernels round differently on such
        memory than on the 64-byte-aligned memory of a model built in this process, so without this
        a reloaded model's logits differ from the saved model's in the last bit."""
        if kwargs.get("use_safetensors") is False:
            raise ValueError("mirgan models load only from safetensors; use_safetensors=False is not supported")
        for flag in ("from_tf", "from_flax", "gguf_file"):
            if kwargs.get(flag):
                raise ValueError(f"mirgan models load only from safetensors; {flag} is not supported")
        from .loading import check_loaded, locate

        kwargs["use_safetensors"] = True
        folder = locate(pretrained_model_name_or_path, kwargs.get("subfolder") or "")  # None: a Hub id
        if folder is not None:
            refuse_pickled_weights(folder)
            # the folder itself: it may have been recovered from an interrupted replacement
            pretrained_model_name_or_path = locate(pretrained_model_name_or_path)
        want_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs)
        check_loaded(model, info, str(folder or pretrained_model_name_or_path))
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                tensor.data = tensor.data.clone()
        return (model, info) if want_info else model

    def push_to_hub(self, repo_id: str, *, processor=None, results: dict | None = None, **kwargs):
        """Push the model with its processor and its mirgan model card (not the blank transformers one).

        processor: default, the one saved beside the folder the model was loaded from. results: a
        ``results.json`` dict to write the card from; default, that folder's card, retargeted to
        ``repo_id``. Other arguments as ``transformers``' ``push_to_hub``. See ``hub.push_model_object``."""
        try:  # absolute and in a try: remote-code copies of this file neither need nor copy hub.py
            from modeling_mirgan.hub import push_model_object
        except ImportError:  # loaded with trust_remote_code, package not installed
            return super().push_to_hub(repo_id, **kwargs)
        return push_model_object(self, repo_id, processor=processor, results=results, **kwargs)

    def _init_weights(self, module):
        if isinstance(module, MirganForEmotionClassification):
            nn.init.zeros_(module.layer_weights)
            nn.init.constant_(module.logit_scale, math.log(1.0 / self.config.temperature_init))
            nn.init.zeros_(module.audio_mean)
            nn.init.ones_(module.audio_std)
            nn.init.zeros_(module.text_mean)
            nn.init.ones_(module.text_std)
            for name in ("class_text_embeds", "real_feature_mean", "real_feature_cov", "real_class_spread"):
                nn.init.zeros_(getattr(module, name))
        elif isinstance(module, FeatureGenerator):
            for weight in module.text_films:
                nn.init.zeros_(weight)
        elif isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class MirganForEmotionClassification(MirganPreTrainedModel):
    def __init__(self, config: MirganConfig):
        super().__init__(config)
        layers, d_audio, d_text = config.num_audio_layers, config.audio_hidden_size, config.text_hidden_size
        d, k = config.projection_dim, config.num_labels
        self.audio_encoder = build_audio_backbone(config.audio_encoder)
        self.text_encoder = AutoModel.from_config(config.text_encoder, add_pooling_layer=False)
        # Standardisation statistics of the pooled encoder features, set from the training data.
        self.register_buffer("audio_mean", torch.zeros(layers, d_audio))
        self.register_buffer("audio_std", torch.ones(layers, d_audio))
        self.register_buffer("text_mean", torch.zeros(d_text))
        self.register_buffer("text_std", torch.ones(d_text))
        # Statistics of the real stage-1 features the generator was trained on: they let a saved model
        # condition its generator without a transcript and score its samples (generate_features).
        self.register_buffer("class_text_embeds", torch.zeros(k, d))
        self.register_buffer("real_feature_mean", torch.zeros(d))
        self.register_buffer("real_feature_cov", torch.zeros(d, d))
        self.register_buffer("real_class_spread", torch.zeros(k))
        self.layer_weights = nn.Parameter(torch.zeros(layers))
        self.audio_projection = nn.Linear(d_audio, d)
        self.text_projection = nn.Linear(d_text, d)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(d, k)
        self.multimodal_classifier = nn.Linear(2 * d, k)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.temperature_init)))
        self.generator = FeatureGenerator(config)
        self.discriminator = FeatureDiscriminator(config)
        self.post_init()

    # -- encoders: raw inputs -> pooled encoder features (what the feature cache stores) --
    def encode_audio(self, input_features=None, input_values=None, attention_mask=None) -> torch.Tensor:
        return pooled_audio_layers(
            self.audio_encoder, self.config.audio_encoder, input_features, input_values, attention_mask
        )

    def encode_text(self, input_ids, text_attention_mask=None, token_type_ids=None) -> torch.Tensor:
        if text_attention_mask is None:
            text_attention_mask = torch.ones_like(input_ids)
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = self.text_encoder(input_ids=input_ids, attention_mask=text_attention_mask, **kwargs)
        return masked_mean(hidden.last_hidden_state, text_attention_mask.bool())

    def freeze_feature_encoder(self):
        """Keep the convolutional feature encoder of a wav2vec2-family audio encoder at its pre-trained
        weights while the rest fine-tunes, as transformers' own audio classifiers offer."""
        freeze = getattr(self.audio_encoder, "freeze_feature_encoder", None)
        if freeze is None:
            raise ValueError(f"the {self.config.audio_encoder.model_type} audio encoder has no convolutional feature encoder "
                             "to freeze (wav2vec2, HuBERT and WavLM have one)")
        freeze()

    # -- heads: pooled encoder features -> shared space -> logits --
    def project_audio(self, audio_layer_features: torch.Tensor) -> torch.Tensor:
        return self.project_standardised_audio(self.standardise_audio(audio_layer_features))

    def standardise_audio(self, audio_layer_features: torch.Tensor) -> torch.Tensor:
        """Per-layer standardisation with the training rows' statistics: the first step of ``project_audio``,
        apart so that stage 1 does it once per fold instead of once per epoch. The result is stored
        layers-outermost (``[L, B, D]`` memory seen as ``[B, L, D]``), so the weighted pooling reads it
        without the copy the einsum would otherwise make on every call, with the same result."""
        x = (audio_layer_features - self.audio_mean) / self.audio_std
        return x.transpose(0, 1).contiguous().transpose(0, 1)

    def project_standardised_audio(self, x: torch.Tensor) -> torch.Tensor:
        """``P_a`` of ``[B, L, D]`` features from ``standardise_audio``."""
        pooling = self.config.layer_pooling
        if pooling == "weighted":
            x = torch.einsum("l,bld->bd", self.layer_weights.softmax(0), x)
        elif pooling == "mean":
            x = x.mean(1)
        else:
            x = x[:, -1]
        return self.audio_projection(x)

    def project_text(self, text_features: torch.Tensor) -> torch.Tensor:
        return self.text_projection((text_features - self.text_mean) / self.text_std)

    def classify(self, audio_embeds: torch.Tensor, text_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Emotion logits from shared-space features: ``C_m([h; u])`` when a multimodal model gets ``u``,
        else ``C(h)``. The one path from features to logits: stage 1, stage 3, evaluation, ``forward``
        and the pipeline all call it."""
        if self.config.multimodal and text_embeds is not None:
            return self.multimodal_classifier(self.dropout(torch.cat([audio_embeds, text_embeds], -1)))
        return self.classifier(self.dropout(audio_embeds))

    def split_samples(self, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(h, u)`` of rows that are ``h`` (unimodal) or pairs ``[h; u]`` (multimodal)."""
        d = self.config.projection_dim
        return samples[:, :d], (samples[:, d:] if self.config.multimodal else None)

    def q_logits(self, samples: torch.Tensor) -> torch.Tensor:
        """InfoGAN's Q network: the stage-1 classifier itself (reused, frozen), on real or generated
        samples; pairs go through the multimodal head."""
        return self.classify(*self.split_samples(samples))

    def forward(
        self,
        input_features=None,
        input_values=None,
        attention_mask=None,
        input_ids=None,
        text_attention_mask=None,
        token_type_ids=None,
        audio_layer_features=None,
        text_features=None,
        labels=None,
        **kwargs,
    ) -> MirganClassifierOutput:
        if audio_layer_features is None:
            audio_layer_features = self.encode_audio(input_features, input_values, attention_mask)
        if text_features is None and input_ids is not None:
            text_features = self.encode_text(input_ids, text_attention_mask, token_type_ids)
        audio_embeds = self.project_audio(audio_layer_features)
        text_embeds = self.project_text(text_features) if text_features is not None else None
        logits = self.classify(audio_embeds, text_embeds)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return MirganClassifierOutput(
            loss=loss,
            logits=logits,
            audio_embeds=audio_embeds,
            text_embeds=text_embeds,
            audio_layer_features=audio_layer_features,
        )

    def get_audio_embeddings(self, audio, sampling_rate=None, processor=None, batch_size: int = 8) -> dict:
        """Per-clip embeddings for downstream tasks: ``{"audio_layer_features": [n, layers, hidden]`` (encoder
        states averaged over frames, per layer), ``"h": [n, projection_dim]`` (the shared-space feature the
        classifier sees), ``"duration_s": [n]}``. audio: a path, bytes, an array (with ``sampling_rate``),
        an audio dict or a list of them; any rate. processor: default, the one saved with the model.
        Batched results equal one-by-one results. See ``modeling_mirgan.embed``."""
        try:  # absolute and in a try: remote-code copies of this file neither need nor copy embed.py
            from modeling_mirgan.embed import audio_embeddings
        except ImportError as err:
            raise ImportError("get_audio_embeddings needs the mirgan package: pip install mirgan") from err
        return audio_embeddings(self, audio, sampling_rate=sampling_rate, processor=processor, batch_size=batch_size)

    @torch.no_grad()
    def set_generator_reference(self, features: torch.Tensor, labels: torch.Tensor, text_embeds: torch.Tensor) -> None:
        """Remember the real training features' statistics (see the buffers in ``__init__``)."""
        from .realism import real_moments

        mean, cov, spread = real_moments(features[:, : self.config.projection_dim], labels, self.config.num_labels)
        self.real_feature_mean.copy_(mean)
        self.real_feature_cov.copy_(cov)
        self.real_class_spread.copy_(spread)
        for c in range(self.config.num_labels):
            if (labels == c).any():
                self.class_text_embeds[c] = text_embeds[labels == c].mean(0)

    @torch.no_grad()
    def sample_features(self, labels: torch.Tensor, text_embeds: torch.Tensor | None = None, seed: int = 0,
                        oversample: int = 1, select_by: str = "q_confidence", batch_size: int = 8192) -> torch.Tensor:
        """Generated samples (``h_hat``, or multimodal pairs ``[h_hat; u]``), one per entry of ``labels``.

        ``text_embeds`` (one row per label) conditions a text-conditioned generator and is the text half
        of a multimodal pair (``paired_text`` real). ``oversample`` > 1
        draws that many candidates per sample and keeps, per row, the one Q finds most confident
        (``select_by`` ``q_confidence``) or the discriminator scores most real (``discriminator``). The
        generator runs on ``batch_size`` samples at a time (its hidden layers for a corpus-sized draw
        would hold gigabytes); the samples do not depend on it."""
        if select_by not in SAMPLE_SELECTIONS:
            raise ValueError(f"select_by={select_by!r}: choose from {', '.join(SAMPLE_SELECTIONS)}")
        generator = torch.Generator().manual_seed(seed)
        was_training = self.training
        self.eval()
        labels = labels.repeat_interleave(oversample)
        text = text_embeds.repeat_interleave(oversample, 0) if text_embeds is not None else None
        noise = torch.randn(len(labels), self.config.noise_dim, generator=generator)
        parts, step = [], batch_size * oversample
        for start in range(0, len(labels), step):
            rows = slice(start, start + step)
            fake = self.generator(noise[rows], labels[rows], text[rows] if text is not None else None)
            if oversample > 1:
                score = (self.q_logits(fake).log_softmax(-1).gather(1, labels[rows, None])[:, 0] if select_by == "q_confidence"
                         else self.discriminator(fake, labels[rows])).view(-1, oversample)
                fake = fake.view(-1, oversample, fake.shape[-1])[torch.arange(len(score)), score.argmax(1)]
            parts.append(fake)
        self.train(was_training)
        return torch.cat(parts) if parts else noise.new_zeros(0, self.config.sample_dim)

    @torch.no_grad()
    def generate_features(self, labels=None, num_per_class: int = 100, text=None, processor=None, seed: int = 0):
        """Synthetic emotion features from the trained generator, with their MI quality metrics.

        labels: label names (default: all classes). text: optional transcripts that condition a
        text-conditioned generator and, in multimodal mode, are the text half of each pair (needs
        ``processor``); otherwise each class's mean training transcript embedding is used (the model keeps
        no real rows). Returns a ``GeneratedFeatures``."""
        from .losses import generated_quality

        names = list(labels) if labels is not None else [self.config.id2label[i] for i in range(self.config.num_labels)]
        unknown = [n for n in names if n not in self.config.label2id]
        if unknown:
            raise ValueError(f"unknown labels {unknown}; this model knows {list(self.config.label2id)}")
        ids = torch.tensor([self.config.label2id[n] for n in names]).repeat_interleave(num_per_class)
        condition = self.class_text_embeds[ids]
        if text is not None:
            if processor is None:
                raise ValueError("text conditioning needs the processor (MirganProcessor.from_pretrained(model_dir))")
            texts = [text] if isinstance(text, str) else list(text)
            tokens = processor(text=texts)
            embeds = self.project_text(self.encode_text(tokens["input_ids"], tokens["text_attention_mask"], tokens.get("token_type_ids")))
            condition = embeds[torch.arange(len(ids)) % len(texts)]
        fake = self.sample_features(ids, condition, seed=seed)
        h, u = self.split_samples(fake)
        metrics = generated_quality(h, ids, self.q_logits(fake), self.real_feature_mean, self.real_feature_cov,
                                    self.real_class_spread, self.config.num_labels)
        return GeneratedFeatures(features=h, text_features=u, labels=ids,
                                 label_names=[self.config.id2label[int(i)] for i in ids], metrics=metrics)


@dataclass
class GeneratedFeatures:
    """Generated audio features ``h_hat`` (and the text half of each pair in multimodal mode), their labels and MI metrics."""

    features: torch.Tensor
    text_features: torch.Tensor | None
    labels: torch.Tensor
    label_names: list[str]
    metrics: dict


def from_encoders(
    labels: list[str],
    audio_encoder_name: str = "openai/whisper-base",
    text_encoder_name: str = "sentence-transformers/all-MiniLM-L6-v2",
    **config_kwargs,
) -> MirganForEmotionClassification:
    """A new model around pre-trained encoders (resolved offline first, see ``encoders``)."""
    from .encoders import load_pretrained_encoder, weights_hash

    audio, audio_config, audio_folder = load_pretrained_encoder(audio_encoder_name, audio=True)
    text, text_config, text_folder = load_pretrained_encoder(text_encoder_name, audio=False)
    audio_config._name_or_path, text_config._name_or_path = audio_encoder_name, text_encoder_name  # names, not local folders
    config = MirganConfig(
        audio_encoder=audio_config.to_dict(),
        text_encoder=text_config.to_dict(),
        audio_encoder_name=audio_encoder_name,
        text_encoder_name=text_encoder_name,
        audio_encoder_hash=weights_hash(audio_folder),
        text_encoder_hash=weights_hash(text_folder),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        **config_kwargs,
    )
    model = MirganForEmotionClassification(config)
    model.audio_encoder.load_state_dict(audio.state_dict())
    text_state = {k: v for k, v in text.state_dict().items() if not k.startswith("pooler.")}
    model.text_encoder.load_state_dict(text_state)
    return model
