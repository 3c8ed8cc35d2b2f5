"""The arguments of a mirgan run: what data, which model settings, how to train.

Settings that describe the trained model (mode, pooling, sizes, loss weights, generator and
discriminator) live in ``MirganConfig``; ``ModelArguments`` only *overrides* them (``None`` keeps
the config default, which its help shows). Everything about a run (folds, seeds, selection grids,
optimisation) lives here and only here. Every field has a ``help``; cross-field checks run in
``__post_init__``, so a bad flag stops the run before any audio is read.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal

from .config_defaults import (ADVERSARIAL_LOSSES, CONFIG_DEFAULTS, GENERATOR_CONDITIONINGS, INFO_TARGETS, LAYER_POOLINGS, MODES,
                              PAIRED_TEXTS, SAMPLE_SELECTIONS, TEXT_CONDITIONS)

CORPORA = ("audiofolder", "iemocap", "msp_improv", "msp_podcast", "emodb", "ravdess")
PEERS = ("none", "noise", "smote", "mixup", "class_weight", "oversample")
GENERATIVE = ("cgan", "mirgan")
METHODS = PEERS + GENERATIVE
DEFAULT_DATA = Path(__file__).resolve().parent.parent / "data" / "emodb4"
LORA_TARGETS = {  # the attention query/value projections of each supported encoder architecture
    "whisper": ["q_proj", "v_proj"],
    "wav2vec2": ["q_proj", "v_proj"],
    "hubert": ["q_proj", "v_proj"],
    "wavlm": ["q_proj", "v_proj"],
    "audio-spectrogram-transformer": ["query", "value"],
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "mpnet": ["q", "v"],
}
ENCODER_MODES = ("frozen", "lora", "full")


def flag_error(flag: str, problem: str) -> ValueError:
    return ValueError(f"--{flag}: {problem}")


def check_choices(flag: str, values, allowed) -> None:
    bad = [v for v in values if v not in allowed]
    if bad:
        raise flag_error(flag, f"{', '.join(map(repr, bad))} not allowed; choose from {', '.join(allowed)}")


@dataclass
class DataArguments:
    dataset: Literal[CORPORA] = field(default="audiofolder", metadata={"help": "corpus builder: an official release layout or any audiofolder"})
    dataset_dir: str = field(default=str(DEFAULT_DATA), metadata={"help": "corpus folder (alias --data_dir); default: the embedded EmoDB-4"})
    dataset_name: str | None = field(default=None, metadata={"help": "any datasets dataset instead of a corpus builder: a save_to_disk folder, a Hub repo id (from the Hub cache offline) or audiofolder (with --dataset_dir); speaker folds over all its rows"})
    dataset_config: str | None = field(default=None, metadata={"help": "configuration name of --dataset_name"})
    dataset_split: str | None = field(default=None, metadata={"help": "split of --dataset_name; None: all splits joined"})
    protocol: str | None = field(default=None, metadata={"help": "named protocol of a release corpus, e.g. 4class; None: the literature's"})
    audio_column: str = field(default="audio", metadata={"help": "column holding the audio (--dataset_name: an Audio feature or file paths)"})
    label_column: str = field(default="label", metadata={"help": "column holding the emotion label (audiofolder metadata or --dataset_name)"})
    speaker_column: str = field(default="speaker", metadata={"help": "column holding the speaker id (audiofolder metadata or --dataset_name)"})
    text_column: str = field(default="text", metadata={"help": "column holding the transcript (audiofolder metadata or --dataset_name)"})
    classes: list[str] | None = field(default=None, metadata={"help": "labels to keep, in this order (others are dropped and counted); None: all"})
    folds: int = field(default=5, metadata={"help": "k speaker folds for corpora without a standard protocol (>= 2)"})
    test_speakers: list[str] | None = field(default=None, metadata={"help": "one fixed test split instead of k folds"})
    max_folds: int | None = field(default=None, metadata={"help": "run only the first N folds (quick checks)"})
    skip_bad: bool = field(default=False, metadata={"help": "skip undecodable/invalid clips (counted in results.json) instead of stopping"})
    normalize_labels: bool = field(default=False, metadata={"help": "merge labels that differ only in case/spacing (ANGRY, angry ) into lower case instead of stopping"})
    allow_missing_classes: bool = field(default=False, metadata={"help": "a fold whose training part lacks a class reports that class as untestable instead of stopping"})
    transcripts: Literal["ground_truth", "asr"] = field(default="ground_truth", metadata={"help": "the text column, or offline Whisper ASR (cached)"})
    asr_model: str = field(default="openai/whisper-base", metadata={"help": "Whisper model for --transcripts asr"})
    asr_language: str | None = field(default=None, metadata={"help": "ASR language, e.g. de; None: Whisper detects it"})

    def __post_init__(self):
        if self.dataset_name is not None:
            if self.dataset != "audiofolder" or self.protocol is not None:
                raise flag_error("dataset_name", "replaces --dataset and --protocol (speaker folds); give one or the other")
            if self.dataset_name != "audiofolder" and self.dataset_dir == str(DEFAULT_DATA):
                self.dataset_dir = self.dataset_name  # outputs and results are named after the data actually used
        if self.folds < 2 and not self.test_speakers:
            raise flag_error("folds", f"{self.folds}: speaker-independent cross-validation needs at least 2 folds")
        if self.max_folds is not None and self.max_folds < 1:
            raise flag_error("max_folds", f"{self.max_folds}: must be >= 1")
        if self.classes is not None:
            if not self.classes or len(set(self.classes)) != len(self.classes):
                raise flag_error("classes", f"{self.classes}: give each class once")


@dataclass
class ModelArguments:
    audio_encoder: str = field(default="openai/whisper-base", metadata={"help": "Hub id or folder of the audio encoder (Whisper, wav2vec2, HuBERT, WavLM, AST)"})
    text_encoder: str = field(default="sentence-transformers/all-MiniLM-L6-v2", metadata={"help": "Hub id or folder of the BERT-family text encoder"})
    encoder_mode: Literal[ENCODER_MODES] = field(default="frozen", metadata={"help": "audio encoder in stage 1: frozen (cached features), or fine-tuned per fold end to end with the heads under the full stage-1 loss, by LoRA adapters (merged afterwards) or all weights"})
    text_encoder_mode: Literal[ENCODER_MODES] = field(default="frozen", metadata={"help": "text encoder in stage 1 (needs --encoder_mode lora/full, and alignment or --mode multimodal so a loss reaches it)"})
    freeze_feature_encoder: bool = field(default=True, metadata={"help": "keep the convolutional feature encoder of a wav2vec2-family audio encoder frozen while fine-tuning (as transformers' audio classifiers do)"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    lora_target_modules: list[str] | None = field(default=None, metadata={"help": f"LoRA target module names, matched in each adapted encoder; None: per architecture {LORA_TARGETS}"})
    # overrides of MirganConfig (None keeps the config default shown in the help)
    mode: Literal[MODES] | None = field(default=None, metadata={"help": f"unimodal (audio) or multimodal (audio + transcript); config default {CONFIG_DEFAULTS['mode']!r}"})
    layer_pooling: Literal[LAYER_POOLINGS] | None = field(default=None, metadata={"help": f"how encoder layers are pooled; config default {CONFIG_DEFAULTS['layer_pooling']!r}"})
    projection_dim: int | None = field(default=None, metadata={"help": f"size of the shared space; config default {CONFIG_DEFAULTS['projection_dim']}"})
    noise_dim: int | None = field(default=None, metadata={"help": f"generator noise size; config default {CONFIG_DEFAULTS['noise_dim']}"})
    generator_hidden_sizes: list[int] | None = field(default=None, metadata={"help": f"generator MLP widths (0 alone: linear, as in the paper); config default {list(CONFIG_DEFAULTS['generator_hidden_sizes'])}"})
    generator_rank: int | None = field(default=None, metadata={"help": f"generate in the top-k principal subspace of the real samples (0: free output); config default {CONFIG_DEFAULTS['generator_rank']}"})
    generator_conditioning: Literal[GENERATOR_CONDITIONINGS] | None = field(default=None, metadata={"help": f"how the class enters the generator; config default {CONFIG_DEFAULTS['generator_conditioning']!r}"})
    generator_noise_scale: float | None = field(default=None, metadata={"help": f"std of the generator's input noise (concat conditioning or a linear generator only); config default {CONFIG_DEFAULTS['generator_noise_scale']}"})
    generator_text_condition: Literal[TEXT_CONDITIONS] | None = field(default=None, metadata={"help": f"condition on real transcripts (on/off/auto: only when transcripts rarely repeat); config default {CONFIG_DEFAULTS['generator_text_condition']!r}"})
    paired_text: Literal[PAIRED_TEXTS] | None = field(default=None, metadata={"help": f"multimodal: a generated sample's text half is a real transcript of the class or generated; config default {CONFIG_DEFAULTS['paired_text']!r}"})
    discriminator_hidden_sizes: list[int] | None = field(default=None, metadata={"help": f"discriminator MLP widths (0 alone: linear); config default {list(CONFIG_DEFAULTS['discriminator_hidden_sizes'])}"})
    adversarial_loss: Literal[ADVERSARIAL_LOSSES] | None = field(default=None, metadata={"help": f"GAN loss; config default {CONFIG_DEFAULTS['adversarial_loss']!r}"})
    lambda_mmd: float | None = field(default=None, metadata={"help": f"weight of the generator's class-matched MMD to real batches; config default {CONFIG_DEFAULTS['lambda_mmd']}"})
    lambda_diversity: float | None = field(default=None, metadata={"help": f"weight of the generator's mode-seeking term (0: off); config default {CONFIG_DEFAULTS['lambda_diversity']}"})
    lambda_con: float | None = field(default=None, metadata={"help": f"weight of the stage-1 InfoNCE alignment; config default {CONFIG_DEFAULTS['lambda_con']}"})
    lambda_im: float | None = field(default=None, metadata={"help": f"weight of the stage-1 information maximisation; config default {CONFIG_DEFAULTS['lambda_im']}"})
    lambda_info: float | None = field(default=None, metadata={"help": f"weight of the generator's MI term; config default {CONFIG_DEFAULTS['lambda_info']}"})
    info_target: Literal[INFO_TARGETS] | None = field(default=None, metadata={"help": f"maximise I(c; h_hat), or match the real features' level (samples as hard as real ones); config default {CONFIG_DEFAULTS['info_target']!r}"})
    lambda_text_info: float | None = field(default=None, metadata={"help": f"weight of the generator's text InfoNCE term; config default {CONFIG_DEFAULTS['lambda_text_info']}"})

    def __post_init__(self):
        for name in ("projection_dim", "noise_dim"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise flag_error(name, f"{value}: must be >= 1")
        for name in ("lambda_mmd", "lambda_diversity", "lambda_con", "lambda_im", "lambda_info", "lambda_text_info", "generator_noise_scale"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise flag_error(name, f"{value}: must be >= 0")
        if self.lora_r < 1:
            raise flag_error("lora_r", f"{self.lora_r}: must be >= 1")
        if self.text_encoder_mode != "frozen" and self.encoder_mode == "frozen":
            raise flag_error("text_encoder_mode", f"{self.text_encoder_mode!r} needs --encoder_mode lora or full (stage 1 end to end)")

    def config_overrides(self) -> dict:
        """The MirganConfig fields this run sets (the others keep the config's defaults)."""
        out = {}
        for f in fields(self)[CONFIG_FIELDS_START:]:
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = [v for v in value if v] if f.name.endswith("hidden_sizes") else value
        return out


CONFIG_FIELDS_START = [f.name for f in fields(ModelArguments)].index("mode")  # fields from here on override MirganConfig


DEFAULT_ENCODER_LR = {"lora": 1e-4, "full": 1e-5}  # adapters take larger steps than the pre-trained weights


@dataclass
class TrainArguments:
    output_dir: str | None = field(default=None, metadata={"help": "where results, model and report go; None: outputs/<dataset>-<mode>"})
    cache_dir: str | None = field(default=None, metadata={"help": "feature cache; None: $MIRGAN_CACHE/features"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    seeds: list[int] | None = field(default=None, metadata={"help": "several seeds (benchmarks); None: [seed]"})
    fractions: list[float] = field(default_factory=lambda: [1.0], metadata={"help": "stratified shares of each training fold (data scarcity), in (0, 1]"})
    imbalance: list[str] | None = field(default=None, metadata={"help": "CLASS=SHARE ...: keep only SHARE of those classes' rows in every training fold (a class-imbalance regime; test folds untouched)"})
    methods: list[str] = field(default_factory=lambda: ["mirgan"], metadata={"help": f"augmentation methods to compare: {', '.join(METHODS)}"})
    stage1_epochs: int = field(default=300, metadata={"help": "most stage-1 epochs; the best epoch is chosen on validation speakers"})
    stage1_lr: float = field(default=1e-2, metadata={"help": "stage-1 Adam learning rate"})
    weight_decays: list[float] = field(default_factory=lambda: [1e-3, 1e-2, 3e-2, 1e-1], metadata={"help": "L2 penalty candidates of the heads, chosen on validation speakers"})
    select_alignment: bool = field(default=True, metadata={"help": "choose on validation speakers between the config's lambda_con and no stage-1 alignment (transcripts that carry no emotion make alignment cost accuracy)"})
    eval_every: int = field(default=10, metadata={"help": "epochs between validation checks (early stopping)"})
    patience: int = field(default=3, metadata={"help": "validation checks without a gain before stage 1 stops"})
    batch_size: int = field(default=4096, metadata={"help": "rows per stage-1/stage-3 step (a small corpus trains full-batch)"})
    gan_steps: int = field(default=400, metadata={"help": "generator/discriminator updates per GAN (400: half the cost of 800, UA -0.6 to +1.9 points from it on EmoDB-4/RAVDESS-4 over 3 seeds; README 'Stage 2 at 400 steps')"})
    gan_lr: float = field(default=5e-4, metadata={"help": "GAN Adam learning rate"})
    gan_batch_size: int = field(default=64, metadata={"help": "real rows per GAN step"})
    synthetic_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0], metadata={"help": "candidate synthetic/real ratios, chosen on validation speakers"})
    synthetic_weight: float = field(default=0.5, metadata={"help": "loss weight of a synthetic row in stage 3 (real rows weigh 1)"})
    synthetic_oversample: int = field(default=1, metadata={"help": "draw N candidates per generated sample and keep the best by --synthetic_selection (1: no filtering); the realism metrics score the kept samples"})
    synthetic_selection: Literal[SAMPLE_SELECTIONS] = field(default="q_confidence", metadata={"help": "which score keeps one of --synthetic_oversample candidates: Q's confidence in the class, or the discriminator's realness (discriminator rejection, Azadi et al. 2019)"})
    stage3_epochs: int = field(default=100, metadata={"help": "stage-3 epochs (full batch on a small corpus)"})
    stage3_lr: float = field(default=3e-3, metadata={"help": "stage-3 Adam learning rate"})
    extraction_batch_size: int = field(default=8, metadata={"help": "clips per encoder forward"})
    extraction_dtype: Literal["auto", "bfloat16", "float32"] = field(default="auto", metadata={"help": "encoder autocast dtype; auto: bfloat16 on a CPU with avx512_bf16/AMX or a GPU with bf16, else float32"})
    encoder_epochs: int = field(default=3, metadata={"help": "epochs of end-to-end stage 1 per fold (encoder_mode lora/full)"})
    encoder_lr: list[float] | None = field(default=None, metadata={"help": "encoder learning rate(s) of end-to-end stage 1; several: one adaptation each on the inner rows, the best stage-1 UA on the validation speakers is kept; None: 1e-4 for lora, 1e-5 for full"})
    encoder_heads_lr: float = field(default=1e-3, metadata={"help": "learning rate of the heads in end-to-end stage 1 (small batches: lower than --stage1_lr)"})
    encoder_batch_size: int = field(default=8, metadata={"help": "clips per optimizer micro-batch in end-to-end stage 1 (split over the processes)"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step in end-to-end stage 1 (InfoNCE and IM see one micro-batch at a time)"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute encoder activations in the backward pass (model.gradient_checkpointing_enable): less memory, more time"})
    mixed_precision: Literal["no", "bf16", "fp16"] | None = field(default=None, metadata={"help": "autocast of end-to-end stage 1 (fp16 with loss scaling, GPU only); None: what `accelerate launch --mixed_precision` set, else no"})
    resume: bool = field(default=False, metadata={"help": "continue a killed run from output_dir/checkpoints/state.json"})
    final_model: bool = field(default=True, metadata={"help": "train and save a model on all speakers"})
    report: bool = field(default=True, metadata={"help": "write report/ (plots and report.md)"})
    disable_tqdm: bool | None = field(default=None, metadata={"help": "no progress bars; None: bars only on a terminal"})
    push_to_hub: bool = field(default=False, metadata={"help": "push the final model to the Hub (needs --hub_model_id)"})
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repository id for --push_to_hub, e.g. you/mirgan-emodb4"})

    def __post_init__(self):
        check_choices("methods", self.methods, METHODS)
        check_choices("synthetic_selection", [self.synthetic_selection], SAMPLE_SELECTIONS)
        for item in self.imbalance or []:
            name, _, share = item.partition("=")
            try:
                ok = bool(name) and 0 < float(share) <= 1
            except ValueError:
                ok = False
            if not ok:
                raise flag_error("imbalance", f"{item!r}: expected CLASS=SHARE with SHARE in (0, 1], e.g. happy=0.15")
        if not self.methods:
            raise flag_error("methods", f"give at least one of {', '.join(METHODS)}")
        for name in ("fractions",):
            bad = [f for f in getattr(self, name) if not 0 < f <= 1]
            if bad:
                raise flag_error(name, f"{bad}: shares must lie in (0, 1]")
        for name in ("synthetic_ratios", "weight_decays"):
            values = getattr(self, name)
            if not values or any(v < 0 for v in values):
                raise flag_error(name, f"{values}: give one or more values >= 0")
        for name in ("stage1_epochs", "eval_every", "patience", "batch_size", "gan_steps", "gan_batch_size", "stage3_epochs",
                     "extraction_batch_size", "synthetic_oversample", "encoder_epochs", "encoder_batch_size",
                     "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise flag_error(name, f"{getattr(self, name)}: must be >= 1")
        if self.encoder_lr is not None and (not self.encoder_lr or any(lr <= 0 for lr in self.encoder_lr)):
            raise flag_error("encoder_lr", f"{self.encoder_lr}: give one or more learning rates > 0")
        if self.synthetic_weight < 0:
            raise flag_error("synthetic_weight", f"{self.synthetic_weight}: must be >= 0")
        if self.push_to_hub and not self.hub_model_id:
            raise flag_error("push_to_hub", "needs --hub_model_id")
        if self.push_to_hub and not self.final_model:
            raise flag_error("push_to_hub", "needs the final model (--final_model true)")

    @property
    def imbalance_shares(self) -> dict[str, float]:
        return {k: float(v) for k, _, v in (item.partition("=") for item in self.imbalance or [])}

    def encoder_lrs(self, encoder_mode: str) -> list[float]:
        """The encoder learning rates end-to-end stage 1 tries: the given ones, else the mode's default."""
        return list(self.encoder_lr or [DEFAULT_ENCODER_LR[encoder_mode]])

    @property
    def seed_list(self) -> list[int]:
        return list(self.seeds or [self.seed])


ARGUMENT_TYPES = (DataArguments, ModelArguments, TrainArguments)


def parse_args(argv: list[str] | None = None) -> tuple[DataArguments, ModelArguments, TrainArguments]:
    """Command-line flags, or a YAML/JSON file first and flags after it that override the file."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(ARGUMENT_TYPES)
    argv = [a.replace("--data_dir", "--dataset_dir") for a in (sys.argv[1:] if argv is None else argv)]
    if argv and argv[0].endswith((".yaml", ".yml", ".json")):
        path = Path(argv[0])
        values = parser.parse_yaml_file(path, allow_extra_keys=False) if path.suffix != ".json" else parser.parse_json_file(path)
        if len(argv) > 1:
            merged = {k: v for dc in values for k, v in asdict(dc).items()}
            overrides = parser.parse_args_into_dataclasses(argv[1:], look_for_args_file=False)
            for dc in overrides:
                default = type(dc)()
                merged.update({k: v for k, v in asdict(dc).items() if v != getattr(default, k)})
            values = parser.parse_dict(merged)
        return tuple(values)
    return tuple(parser.parse_args_into_dataclasses(argv, look_for_args_file=False))
