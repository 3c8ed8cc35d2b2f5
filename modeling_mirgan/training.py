"""A whole mirgan run on a ``datasets.Dataset``: ``train_mirgan(dataset, protocol, ...)``.

1. transcripts (ground truth or cached ASR) and the clips the run can use;
2. the model around the pre-trained encoders, and its processor;
3. encoder features of every clip, cached with ``datasets.map``;
4. speaker-independent cross-validation: for every fold (x seed x data fraction), stage-1
   regularisation and each method's synthetic ratio are chosen on validation speakers inside the
   training fold, everything is refitted on the whole training fold, and the held-out speakers are
   scored for the stage-1 baseline and every method;
5. a final model on all speakers (the choices of the folds), saved with its processor and card;
6. ``results.json``, the report and the trackers.

``train.py`` is a thin command-line caller of this function.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import adaptation, stages
from .arguments import GENERATIVE, DataArguments, ModelArguments, TrainArguments
from .safe_io import write_json_atomic
from .stages import CorpusFeatures

logger = logging.getLogger("mirgan")
REPORTED_CONFIG = ("mode", "layer_pooling", "projection_dim", "noise_dim", "generator_noise_scale", "generator_hidden_sizes",
                   "generator_rank", "generator_conditioning", "generator_text_condition", "paired_text", "discriminator_hidden_sizes", "adversarial_loss",
                   "lambda_mmd", "lambda_diversity", "lambda_con", "lambda_im", "lambda_info", "info_target", "lambda_text_info")


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


def stratified_subsample(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a stratified ``fraction`` of rows (at least 2 per class), the same for every method."""
    if fraction >= 1.0:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.extend(rng.permutation(idx)[: max(2, int(round(fraction * len(idx))))])
    return np.sort(np.array(keep))


def imbalanced_subsample(labels: np.ndarray, shares: dict[int, float], seed: int) -> np.ndarray:
    """Indices keeping ``shares[c]`` of class c's rows (at least 2), all rows of the other classes."""
    rng = np.random.default_rng(seed + 7)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n = max(2, int(round(shares[c] * len(idx)))) if c in shares else len(idx)
        keep.extend(rng.permutation(idx)[:n])
    return np.sort(np.array(keep))


def validation_speakers(speakers: list[str], genders: list[str], k: int) -> list[str]:
    """About 1/k of the training speakers (gender-balanced when genders are known) for selection."""
    unique = sorted(set(speakers))
    by_gender: dict[str, list[str]] = {}
    gender_of = dict(zip(speakers, genders))
    for s in unique:
        by_gender.setdefault(gender_of.get(s, ""), []).append(s)
    n = max(1, round(len(unique) / max(k, 2)))
    picked, groups = [], [g for g in by_gender.values() if g]
    while len(picked) < n and any(groups):
        for g in groups:
            if g and len(picked) < n:
                picked.append(g.pop(len(g) // 2))
    return picked


# --------------------------------------------------------------------------------------------
# One fit: stage 1 with given settings, then every method's stages 2-3
# --------------------------------------------------------------------------------------------


@dataclass
class Fit:
    """Weights and features of one fit on a set of training rows."""

    stage1: stages.Stage1Result
    heads: dict
    h_all: torch.Tensor
    u_all: torch.Tensor
    methods: dict = field(default_factory=dict)  # method -> {gan, curve, per_ratio, quality}
    held_out_ce: float | None = None  # the classifier's cross-entropy on held-out real rows (info_target held_out)


def fit_methods(model, data: CorpusFeatures, fit: Fit, rows: torch.Tensor, methods: list[str], ratios: dict[str, list[float]],
                args: TrainArguments, seed: int, timing: dict, realism_rows: torch.Tensor | None = None) -> None:
    """Stages 2-3 of every method on ``rows``; ``ratios[method]`` are the synthetic ratios to train.
    With ``realism_rows`` (held-out real rows) each generator's realism is measured against them."""
    from .realism import generator_realism

    x = stages.training_samples(model, data, fit.h_all, fit.u_all, rows)
    y, u, groups = data.labels[rows], fit.u_all[rows], data.groups[rows]
    init = stages.snapshot(model, stages.CLASSIFIER_PREFIXES)
    weight_decay = fit.stage1.weight_decay
    for method in methods:
        entry = {"curve": None, "quality": None, "gan": None, "per_ratio": {}}
        t0 = time.time()
        if method in GENERATIVE:
            lam = 0.0 if method == "cgan" else model.config.lambda_info
            entry["curve"] = stages.train_stage2(model, x, y, u, groups, args, lam, seed + 1, fit.held_out_ce)
            entry["gan"] = stages.snapshot(model, stages.GAN_PREFIXES)
            timing["stage2_s"] += time.time() - t0
            if realism_rows is not None:  # an evaluation of the generator, timed apart from training it
                t0 = time.time()
                held = stages.training_samples(model, data, fit.h_all, fit.u_all, realism_rows)
                entry["quality"] = generator_realism(model, x, y, held, data.labels[realism_rows], u, seed + 2,
                                                     args.synthetic_oversample, args.synthetic_selection)
                timing["realism_s"] = timing.get("realism_s", 0.0) + time.time() - t0
        t0 = time.time()
        for ratio in ratios[method]:
            if method in GENERATIVE:
                stages.restore(model, entry["gan"])
            synth, synth_y = stages.synthetic_rows(method, model, x, y, u, ratio, seed + 3, args.synthetic_oversample,
                                                   args.synthetic_selection)
            stages.train_stage3(model, x, y, synth, synth_y, args, weight_decay, seed + 4, init,
                                balance_classes=method == "class_weight")
            entry["per_ratio"][ratio] = stages.snapshot(model, stages.CLASSIFIER_PREFIXES)
        stages.restore(model, init)
        timing["stage3_s"] += time.time() - t0
        fit.methods[method] = entry


def method_ratios(method: str, candidates: list[float]) -> list[float]:
    """class_weight and none use no synthetic rows: one 'ratio' of 0."""
    return [0.0] if method in ("none", "class_weight") else list(candidates)


def score(model, fit: Fit, data: CorpusFeatures, rows: torch.Tensor, method: str | None = None, ratio=None) -> dict:
    """UA/WA/F1 of ``rows`` with the stage-1 classifier (``method`` None) or a method's stage-3 one."""
    stages.restore(model, fit.heads)
    if method is not None:
        stages.restore(model, fit.methods[method]["per_ratio"][ratio])
    model.eval()
    with torch.no_grad():
        logits = model.classify(fit.h_all[rows], fit.u_all[rows] if model.config.multimodal else None)
    return stages.scores(logits.argmax(-1), data.labels[rows])


def fit_stage1(model, data, rows, args, seed, timing, weight_decay=None, epochs=None, validation=None, alignment_weights=()):
    """Stage 1 on ``rows``: chosen on ``validation`` rows among ``alignment_weights`` (lambda_con) and the
    weight decays, or with the given settings; then ``h, u`` of every row, and the classifier's
    cross-entropy on the ``validation`` rows (the held-out level of info_target 'held_out'/'match_held_out')."""
    t0 = time.time()
    if validation is not None:
        result, tried = stages.select_stage1(model, data, rows, validation, args, seed, alignment_weights or (model.config.lambda_con,))
        result.curve = [{"candidates": tried}] + result.curve
    else:
        result = stages.train_stage1(model, data, rows, args, weight_decay, epochs, seed)
        result.lambda_con = model.config.lambda_con
    h_all, u_all = stages.stage1_embeddings(model, data)
    fit = Fit(result, stages.snapshot(model, stages.HEAD_PREFIXES), h_all, u_all)
    if validation is not None:
        model.eval()
        fit.held_out_ce = stages.q_cross_entropy(model, stages.training_samples(model, data, h_all, u_all, validation),
                                                 data.labels[validation])
    timing["stage1_s"] += time.time() - t0
    return fit


def alignment_candidates(model, args: TrainArguments) -> tuple[float, ...]:
    """``lambda_con`` values stage 1 chooses from: the config's and, with ``select_alignment``, none."""
    return (model.config.lambda_con, 0.0) if args.select_alignment else (model.config.lambda_con,)


def run_fold(model, data: CorpusFeatures, sub: np.ndarray, inner: list[int], val: list[int], test: list[int],
             methods: list[str], args: TrainArguments, seed: int, timing: dict) -> dict:
    """Select on validation rows, refit on the whole training part ``sub``, score ``test``. Leaves the
    model's ``lambda_con`` at the chosen value (callers reset it per fold)."""
    inner_t, val_t, sub_t, test_t = (torch.as_tensor(np.asarray(r, dtype=np.int64)) for r in (inner, val, sub, test))
    # 1. choose stage-1 alignment and regularisation, then each method's synthetic ratio, on the validation rows
    sel = fit_stage1(model, data, inner_t, args, seed, timing, validation=val_t, alignment_weights=alignment_candidates(model, args))
    stages.resolve_text_condition(model, data.groups[inner_t])
    model.eval()
    fit_methods(model, data, sel, inner_t, methods, {m: method_ratios(m, args.synthetic_ratios) for m in methods},
                args, seed, timing, realism_rows=val_t)
    chosen = {}
    for method in methods:
        val_ua = {r: score(model, sel, data, val_t, method, r)["ua"] for r in method_ratios(method, args.synthetic_ratios)}
        chosen[method] = max(val_ua, key=lambda r: (val_ua[r], -r))
    # 2. refit with those choices on the whole training part, score the held-out speakers
    fit = fit_stage1(model, data, sub_t, args, seed, timing, weight_decay=sel.stage1.weight_decay, epochs=sel.stage1.epochs)
    fit.held_out_ce = sel.held_out_ce  # the refit has no held-out rows left: the selection fit's measurement
    fit_methods(model, data, fit, sub_t, methods, {m: [chosen[m]] for m in methods}, args, seed, timing)
    result = {"stage1": {"lambda_con": sel.stage1.lambda_con, "weight_decay": sel.stage1.weight_decay,
                         "epochs": sel.stage1.epochs, "validation_ua": sel.stage1.validation_ua,
                         "validation_ce": sel.held_out_ce},
              "methods": {"baseline": score(model, fit, data, test_t)}}
    for method in methods:
        s = score(model, fit, data, test_t, method, chosen[method])
        s["synthetic_ratio"] = chosen[method]
        s["quality"] = sel.methods[method]["quality"]
        result["methods"][method] = s
    result["curves"] = {"stage1": sel.stage1.curve[1:], "stage1_candidates": sel.stage1.curve[0]["candidates"],
                        **{m: fit.methods[m]["curve"] for m in methods if fit.methods[m]["curve"]}}
    result["references"] = data.labels[test_t].tolist()
    return result


# --------------------------------------------------------------------------------------------
# Data preparation
# --------------------------------------------------------------------------------------------


def load_corpus_from_arguments(data_args: DataArguments):
    """The corpus ``data_args`` names: a ``datasets`` dataset (``--dataset_name``) or a release layout /
    audiofolder (``--dataset``, ``--dataset_dir``) with its standard protocol."""
    if data_args.dataset_name is not None:
        from datasets_scripts.hf_dataset import load_hf_dataset

        from .encoders import cache_dir

        corpus = load_hf_dataset(
            data_args.dataset_name, cache_dir() / "datasets", data_args.dataset_config, data_args.dataset_split,
            data_dir=None if data_args.dataset_dir == data_args.dataset_name else data_args.dataset_dir,
            audio_column=data_args.audio_column, label_column=data_args.label_column,
            speaker_column=data_args.speaker_column, text_column=data_args.text_column, classes=data_args.classes,
            folds=data_args.folds, skip_bad=data_args.skip_bad, allow_missing_classes=data_args.allow_missing_classes,
        )
    else:
        from datasets_scripts import load_corpus

        corpus = load_corpus(
            data_args.dataset, data_args.dataset_dir, protocol=data_args.protocol, skip_bad=data_args.skip_bad,
            classes=data_args.classes, folds=data_args.folds, label_column=data_args.label_column,
            speaker_column=data_args.speaker_column, text_column=data_args.text_column,
            normalize_labels=data_args.normalize_labels, allow_missing_classes=data_args.allow_missing_classes,
        )
    return corpus


def prepare_transcripts(dataset, data_args: DataArguments, config_defaults: dict, args: TrainArguments, accelerator,
                        skipped: dict, skipped_examples: dict):
    """Ground-truth or ASR transcripts; what to do where they are missing. Returns (dataset, transcripts info, use_text)."""
    transcripts = {"source": "ground truth"}
    if data_args.transcripts == "asr":
        from .transcripts import transcribe_dataset

        from .encoders import cache_dir as default_cache

        with accelerator.main_process_first():  # rank 0 transcribes and caches, the others reuse
            dataset, asr = transcribe_dataset(dataset, model_name=data_args.asr_model, batch_size=args.extraction_batch_size,
                                              cache_dir=Path(args.cache_dir) / "transcripts" if args.cache_dir else default_cache() / "transcripts",
                                              language=data_args.asr_language)
        transcripts = {"source": f"asr:{data_args.asr_model}",
                       **{k: asr[k] for k in ("language", "wer", "wer_clips", "cache_hit", "clips_per_s", "empty_asr")}}
        logger.info("transcripts: %s (%s), WER vs ground truth %s", transcripts["source"],
                    "reused from cache" if asr["cache_hit"] else "computed and cached", asr["wer"])
    multimodal = config_defaults["mode"] == "multimodal"
    use_text = config_defaults["lambda_con"] > 0 or multimodal or config_defaults["lambda_text_info"] > 0
    missing = [i for i, t in enumerate(dataset["text"]) if not t.strip()]
    if use_text and missing:
        if len(missing) == len(dataset) and not multimodal:
            logger.warning("no transcripts in this corpus (column %r is empty or absent; set --text_column or use "
                           "--transcripts asr): text alignment is off (lambda_con = lambda_text_info = 0)", data_args.text_column)
            transcripts = {"source": "none"}
            use_text = False
        elif data_args.skip_bad:
            paths = [dataset[i]["audio"] for i in missing]
            skipped["missing transcript"] = skipped.get("missing transcript", 0) + len(paths)
            skipped_examples.setdefault("missing transcript", []).extend(paths[:10])
            dataset = dataset.select(sorted(set(range(len(dataset))) - set(missing)))
        else:
            raise ValueError(f"{dataset[missing[0]]['audio']}: missing transcript ({len(missing)} clips have none); "
                             "fill the text column, pass --skip_bad, or use --transcripts asr")
    return dataset, transcripts, use_text


def check_launch() -> None:
    """``accelerate launch --cpu --num_processes N`` starts a single process (its simple launcher sets
    MASTER_ADDR for N > 1 but starts no ranks): stop instead of silently training on one."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("true", "1") and "MASTER_ADDR" in os.environ and "WORLD_SIZE" not in os.environ:
        raise SystemExit("accelerate launch --cpu with --num_processes > 1 starts only one process. For data parallelism "
                         "on CPUs run `accelerate launch --multi_gpu --num_processes N train.py ...` (without a GPU it "
                         "starts N CPU processes over gloo) or `torchrun --nproc_per_node N train.py ...`.")


def folds_majority(values: list[float]) -> float:
    """The value most folds chose (ties: the smallest), for the final model."""
    return max(set(values), key=lambda v: (values.count(v), -v))


def extraction_dtype(requested: str) -> torch.dtype | None:
    """The autocast dtype of encoder extraction: bf16 where the hardware runs it natively."""
    if requested == "float32":
        return None
    if requested == "bfloat16":
        return torch.bfloat16
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return torch.bfloat16 if ("avx512_bf16" in flags or "amx_bf16" in flags) else None


def encoder_features(dataset, model, processor, cache_dir: Path, args: TrainArguments, use_text: bool, label_ids, group_ids, timing,
                     device: torch.device | str = "cpu"):
    """Encoder outputs of every row (cached with ``datasets.map``, computed on ``device``), opened as a streamed store."""
    from datasets_scripts.features import extract_encoder_features

    t0 = time.time()
    dtype = extraction_dtype(args.extraction_dtype)
    model.to(device)
    features, hit = extract_encoder_features(dataset, model, processor, cache_dir, batch_size=args.extraction_batch_size,
                                             use_text=use_text, autocast_dtype=dtype)
    model.cpu()  # the stages run on the cached features, on the CPU
    timing["extract_s"] = timing.get("extract_s", 0.0) + time.time() - t0
    logger.info("encoder features: %s (%d clips, %.1f s, %s)", "reused from cache" if hit else "computed and cached",
                len(features), time.time() - t0, "bf16 autocast" if dtype else "fp32")
    text = torch.from_numpy(np.asarray(features.with_format("numpy", columns=["text_features"])[:]["text_features"], np.float32))
    return features, CorpusFeatures(stages.AudioLayerStore.from_cache(features), text, label_ids, group_ids)


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def train_mirgan(dataset, protocol=None, data_args: DataArguments | None = None, model_args: ModelArguments | None = None,
                 args: TrainArguments | None = None, skipped: dict | None = None, skipped_examples: dict | None = None) -> dict:
    """Cross-validate all three stages on ``dataset`` (unified schema: ``id, audio, label, speaker, gender,
    text``) under ``protocol`` (its folds; default: ``data_args.folds`` speaker folds, gender-balanced), train the
    final model, write the outputs; return the results dict that ``train.py`` writes to ``results.json``."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from datasets_scripts import Fold, Protocol

    from .configuration_mirgan import MirganConfig
    from .encoders import cache_dir as default_cache
    from .processors import build_processor
    from .modeling_mirgan import from_encoders

    data_args, model_args, args = data_args or DataArguments(), model_args or ModelArguments(), args or TrainArguments()
    if protocol is None:
        from datasets_scripts.audiofolder import speaker_folds

        missing = [c for c in ("id", "audio", "label", "speaker") if c not in dataset.column_names]
        if missing:
            raise ValueError(f"train_mirgan: the dataset lacks the columns {missing} of the unified schema "
                             "(id, audio, label, speaker, gender, text)")
        for column in ("gender", "text"):
            if column not in dataset.column_names:
                dataset = dataset.add_column(column, [""] * len(dataset))
        classes = data_args.classes or sorted(set(dataset["label"]))
        protocol = Protocol("speaker-folds", f"{data_args.folds} speaker-independent folds", classes,
                            speaker_folds(dataset["speaker"], dataset["gender"], data_args.folds))
    skipped, skipped_examples = dict(skipped or {}), {k: list(v) for k, v in (skipped_examples or {}).items()}
    started = time.time()
    overrides = model_args.config_overrides()
    config_defaults = {k: overrides.get(k, getattr(MirganConfig, k)) for k in ("mode", "lambda_con", "lambda_text_info")}
    dataset_name = Path(data_args.dataset_dir).name if data_args.dataset == "audiofolder" else data_args.dataset
    output_dir = Path(args.output_dir or Path.cwd() / "outputs" / f"{dataset_name}-{config_defaults['mode']}")
    cache_dir = Path(args.cache_dir or default_cache() / "features")
    check_launch()
    # cpu=True on machines without CUDA: Accelerate then sees torchrun/MPI ranks (MULTI_CPU over gloo)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=args.mixed_precision,
                              log_with="tensorboard", project_dir=str(output_dir / "runs"))
    if accelerator.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        raise ValueError("--mixed_precision fp16 needs a GPU; use bf16 on a CPU")
    main = accelerator.is_main_process
    output_dir.mkdir(parents=True, exist_ok=True)
    timing: dict[str, float] = {"stage1_s": 0.0, "stage2_s": 0.0, "stage3_s": 0.0}
    classes = list(protocol.classes)
    if data_args.test_speakers:
        protocol = Protocol(protocol.name + "-fixed-split", f"fixed test speakers {data_args.test_speakers}",
                            classes, [Fold("fixed", "speaker", list(data_args.test_speakers))])

    # 1. transcripts
    dataset, transcripts, use_text = prepare_transcripts(dataset, data_args, config_defaults, args, accelerator,
                                                         skipped, skipped_examples)
    if transcripts["source"] == "none":  # no text at all: the alignment terms are off
        overrides.update(lambda_con=0.0, lambda_text_info=0.0)

    # 2. model and processor
    t0 = time.time()
    with accelerator.main_process_first():  # the first Whisper conversion happens once
        model = from_encoders(classes, model_args.audio_encoder, model_args.text_encoder, **overrides)
        processor = build_processor(model_args.audio_encoder, model_args.text_encoder)
    model.eval()
    timing["load_encoders_s"] = time.time() - t0
    if data_args.skip_bad:
        from datasets_scripts.features import drop_bad_clips

        dataset, bad = drop_bad_clips(dataset, processor)
        for reason, paths in bad.items():
            skipped[reason] = skipped.get(reason, 0) + len(paths)
            skipped_examples.setdefault(reason, []).extend(paths[:10])

    # 3. encoder features
    label_ids = torch.tensor([classes.index(l) for l in dataset["label"]])
    texts = dataset["text"]
    text_index = {t: i for i, t in enumerate(sorted(set(texts)))}
    group_ids = torch.tensor([text_index[t] for t in texts])
    features, data = encoder_features(dataset, model, processor, cache_dir, args, use_text, label_ids, group_ids, timing,
                                      accelerator.device)
    adapting = model_args.encoder_mode != "frozen"
    if adapting:  # stage 1 end to end per fold: keep the pre-trained weights, the frozen features and the decoded clips
        modes = {"audio": model_args.encoder_mode, "text": model_args.text_encoder_mode}
        pristine = {which: {k: v.clone() for k, v in getattr(model, f"{which}_encoder").state_dict().items()}
                    for which, mode in modes.items() if mode != "frozen"}
        frozen = data
        waves = [processor.prepare_audio(path) for path in dataset["audio"]]

        encoder_lrs = args.encoder_lrs(model_args.encoder_mode)

    def adapted(rows, seed, lr):
        """Stage 1 end to end on ``rows`` (training clips only) at encoder learning rate ``lr``, then every
        row's features re-extracted with the adapted encoders. The heads start from statistics of the frozen
        features of ``rows``."""
        fit = adaptation.adapt_encoders(model, pristine, processor, waves, texts, frozen, torch.as_tensor(rows), model_args, args,
                                        accelerator, seed, lr)
        timing["adapt_s"] = timing.get("adapt_s", 0.0) + fit.seconds
        logger.info("stage 1 end to end on %d clips at lr %g: %d steps, %.1f s, trainable encoder parameters %s, loss %.3f -> %.3f",
                    len(rows), lr, fit.steps, fit.seconds, fit.trainable_parameters, fit.curve[0]["loss"], fit.curve[-1]["loss"])
        adapted_features = encoder_features(dataset, model, processor, cache_dir, args, use_text, label_ids, group_ids, timing,
                                            accelerator.device)
        return (*adapted_features, {"rows": len(rows), "encoder_lr": lr, "seconds": fit.seconds, "steps": fit.steps,
                                    "trainable_parameters": fit.trainable_parameters, "curve": fit.curve})

    def adapted_by_choice(inner, val, seed):
        """``adapted`` on the inner rows at each encoder learning rate; with several, the one whose features
        give the best stage-1 UA on the validation speakers (ties: the first given)."""
        candidates = [adapted(inner, seed, lr) for lr in encoder_lrs]
        if len(candidates) == 1:
            return candidates[0]
        scores = [fit_stage1(model, data, torch.as_tensor(inner), args, seed, timing, validation=torch.as_tensor(val)).stage1.validation_ua
                  for _, data, _ in candidates]
        features, data, adapted_on = candidates[int(np.argmax(scores))]  # argmax: the first of the best
        adapted_on["encoder_lr_validation_ua"] = {f"{lr:g}": score for lr, score in zip(encoder_lrs, scores)}
        return features, data, adapted_on

    # 4. cross-validation
    speakers, genders = dataset["speaker"], dataset["gender"]
    methods = list(dict.fromkeys(args.methods))
    folds = protocol.folds[: data_args.max_folds] if data_args.max_folds else protocol.folds
    state_path = output_dir / "checkpoints" / "state.json"
    run_key = fingerprint_run(data_args, model_args, args, features._fingerprint)
    done = load_state(state_path, run_key) if args.resume else {}
    runs = []
    show_bars = not args.disable_tqdm if args.disable_tqdm is not None else os.isatty(2)
    bar = tqdm(total=len(folds) * len(args.seed_list) * len(args.fractions), desc="folds", disable=not (main and show_bars))
    tracker_ready = False
    text_condition, lambda_con = model.config.generator_text_condition, model.config.lambda_con
    unknown = [c for c in args.imbalance_shares if c not in classes]
    if unknown:
        raise ValueError(f"--imbalance: {unknown} not among the classes {classes}")
    imbalance = {classes.index(c): share for c, share in args.imbalance_shares.items()}
    for fold_i, fold in enumerate(folds):
        column = dataset[fold.column]
        train_idx, test_idx = fold.split(column)
        for seed in args.seed_list:
            for fraction in args.fractions:
                key = f"{fold.name}|{seed}|{fraction}"
                if key in done:
                    runs.append(done[key])
                    bar.update(1)
                    continue
                model.config.generator_text_condition, model.config.lambda_con = text_condition, lambda_con
                base_seed = seed * 100003 + fold_i * 1009 + int(fraction * 100)
                sub = np.asarray(train_idx)[stratified_subsample(label_ids[train_idx].numpy(), fraction, base_seed)]
                if imbalance:  # the same cut for every method: a class-imbalance regime
                    sub = sub[imbalanced_subsample(label_ids[sub].numpy(), imbalance, base_seed)]
                if fold.validation_values:  # an official development partition (e.g. MSP-Podcast)
                    held = set(fold.validation_values)
                    inner, val = list(sub), [i for i, v in enumerate(column) if v in held]
                    val_spk = {f"{fold.column}={v}" for v in fold.validation_values}
                else:  # validation speakers drawn from the training fold
                    val_spk = set(validation_speakers([speakers[i] for i in sub], [genders[i] for i in sub], len(protocol.folds)))
                    inner = [i for i in sub if speakers[i] not in val_spk]
                    val = [i for i in sub if speakers[i] in val_spk]
                if len({int(label_ids[i]) for i in inner}) < len(classes) or not val:
                    inner, val = list(sub), list(sub)  # too few speakers to hold some out
                if adapting:  # on the inner rows only: the validation speakers stay unseen until the choices are made on them
                    features, data, adapted_on = adapted_by_choice(inner, val, base_seed)
                result = run_fold(model, data, sub, inner, val, test_idx, methods, args, base_seed, timing)
                result.update({"fold": fold.name, "seed": seed, "fraction": fraction, "n_train": len(sub), "n_test": len(test_idx),
                               "validation_speakers": sorted(val_spk), "test_speakers": sorted({speakers[i] for i in test_idx}),
                               "generator_text_condition": model.config.generator_text_condition})
                if adapting:
                    result["adaptation"] = adapted_on
                runs.append(result)
                done[key] = result
                if main:
                    write_json_atomic(state_path, {"run_key": run_key, "runs": done})
                    if not tracker_ready:
                        accelerator.init_trackers("mirgan", config=tracker_config(data_args, model_args, args))
                        tracker_ready = True
                    log_fold(accelerator, result, len(runs))
                accelerator.wait_for_everyone()
                bar.update(1)
                logger.info("%s seed %d fraction %.2f: baseline UA %.3f (lambda_con %g, weight decay %g, %d epochs) | %s",
                            fold.name, seed, fraction, result["methods"]["baseline"]["ua"], result["stage1"]["lambda_con"],
                            result["stage1"]["weight_decay"], result["stage1"]["epochs"], " ".join(f"{m} UA {result['methods'][m]['ua']:.3f}" for m in methods))
    bar.close()
    results = summarise(runs, methods, classes, protocol, folds, dataset, data_args, model_args, args, model, skipped, skipped_examples)
    results["transcripts"] = transcripts
    if adapting:
        results["adaptation"] = {
            "scheme": "stage 1 end to end (encoders + heads, full stage-1 loss) on each training fold's inner rows only; "
                      "the validation speakers score the choices with features of that encoder, and the fold's refit and "
                      "stages 2-3 use it too" + ("; the encoder learning rate is chosen the same way, one adaptation per candidate"
                                                 if len(encoder_lrs) > 1 else ""),
            "encoder_mode": model_args.encoder_mode, "text_encoder_mode": model_args.text_encoder_mode,
            "runs": [{k: r[k] for k in ("fold", "seed", "fraction")} | r["adaptation"] for r in runs]}

    # 5. final model on all speakers, with the folds' choices
    if args.final_model:
        stages.simulate_kill("final")
        t0 = time.time()
        final_method = "mirgan" if "mirgan" in methods else methods[0]
        ratio = float(np.median([r["methods"][final_method]["synthetic_ratio"] for r in runs]))
        weight_decay = float(np.median([r["stage1"]["weight_decay"] for r in runs]))
        epochs = int(np.median([r["stage1"]["epochs"] for r in runs]))
        aligned = [r["stage1"]["lambda_con"] for r in runs]
        model.config.lambda_con = folds_majority(aligned)
        every = np.arange(len(dataset))
        if adapting:  # at the folds' majority encoder learning rate
            features, data, adapted_on = adapted(every, args.seed, folds_majority([r["adaptation"]["encoder_lr"] for r in runs]))
        rows = torch.as_tensor(every)
        model.config.generator_text_condition = text_condition
        stages.resolve_text_condition(model, data.groups)  # after lambda_con: no alignment, no text condition
        fit = fit_stage1(model, data, rows, args, args.seed, timing, weight_decay=weight_decay, epochs=epochs)
        fit.held_out_ce = float(np.median([r["stage1"]["validation_ce"] for r in runs]))  # the folds' held-out level
        fit_methods(model, data, fit, rows, [final_method], {final_method: [ratio]}, args, args.seed, timing)
        stages.restore(model, fit.heads)
        stages.restore(model, fit.methods[final_method]["per_ratio"][ratio])
        if fit.methods[final_method]["gan"]:
            stages.restore(model, fit.methods[final_method]["gan"])
        model.set_generator_reference(stages.training_samples(model, data, fit.h_all, fit.u_all, rows), data.labels, fit.u_all)
        timing["final_model_s"] = time.time() - t0
        results["final_model"] = {"method": final_method, "synthetic_ratio": ratio, "lambda_con": model.config.lambda_con,
                                  "weight_decay": weight_decay,
                                  "stage1_epochs": epochs, "n_train": len(rows)}
        if adapting:
            results["final_model"]["adaptation"] = {k: v for k, v in adapted_on.items() if k != "curve"}
        if main:
            save_model(model, processor, output_dir / "model", results)
            if args.report:
                from datasets_scripts.report import write_report

                write_report(output_dir / "report", results, runs, fit, data, classes, model, final_method)

    # 6. outputs
    timing["total_s"] = time.time() - started
    results["timing"] = timing
    results["distributed"] = {"processes": accelerator.num_processes, "device": accelerator.device.type,
                              "mixed_precision": accelerator.mixed_precision, "rank_weight_checks_passed": dict(stages.RANK_CHECKS)}
    if main:
        write_json_atomic(output_dir / "results.json", results)
        if args.push_to_hub:
            from .hub import push_model

            push_model(output_dir / "model", args.hub_model_id)
        logger.info("baseline UA %.3f ± %.3f | %s | results in %s", results["methods"]["baseline"]["ua_mean"],
                    results["methods"]["baseline"]["ua_std"],
                    " ".join(f"{m} UA {results['methods'][m]['ua_mean']:.3f} ± {results['methods'][m]['ua_std']:.3f}" for m in methods),
                    output_dir)
    accelerator.end_training()
    return results


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


def fingerprint_run(data_args, model_args, args, features_key: str) -> str:
    from datasets_scripts.features import fingerprint

    run_only = ("resume", "push_to_hub", "hub_model_id", "report", "disable_tqdm")
    return fingerprint(asdict(data_args), asdict(model_args), {k: v for k, v in asdict(args).items() if k not in run_only}, features_key)


def load_state(path: Path, run_key: str) -> dict:
    """Completed fold runs of a killed run with the same arguments, or {}; a damaged file is an error naming it."""
    from .safe_io import read_json_state

    saved = read_json_state(path)
    if saved is None:
        return {}
    if saved.get("run_key") != run_key:
        logger.warning("--resume: checkpoint in %s is from different arguments; starting over", path)
        return {}
    logger.info("resuming: %d fold runs already complete", len(saved["runs"]))
    return saved["runs"]


def tracker_config(data_args, model_args, args) -> dict:
    """The arguments as TensorBoard hparams (scalars and strings only)."""
    out = {}
    for prefix, dc in (("data", data_args), ("model", model_args), ("train", args)):
        for k, v in asdict(dc).items():
            out[f"{prefix}/{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


def log_fold(accelerator, result: dict, step: int) -> None:
    """Per-fold curves and scores as TensorBoard scalars."""
    fold = result["fold"]
    tracker = accelerator.get_tracker("tensorboard", unwrap=True)
    for point in result["curves"]["stage1"]:
        tracker.add_scalar(f"{fold}/stage1/loss", point["loss"], point["epoch"])
        if "validation_ua" in point:
            tracker.add_scalar(f"{fold}/stage1/validation_ua", point["validation_ua"], point["epoch"])
    for point in result.get("adaptation", {}).get("curve", []):
        tracker.add_scalar(f"{fold}/stage1_end_to_end/loss", point["loss"], point["step"])
    for name, curve in result["curves"].items():
        if name in ("stage1", "stage1_candidates"):
            continue
        for point in curve:
            for key in ("d_loss", "g_adv", "info", "q_accuracy"):
                tracker.add_scalar(f"{fold}/{name}/{key}", point[key], point["step"])
    scalars = {f"{fold}/ua_{m}": v["ua"] for m, v in result["methods"].items()}
    for m, v in result["methods"].items():
        for key, value in (v.get("quality") or {}).items():
            if isinstance(value, (int, float)):
                scalars[f"{fold}/{m}/{key}"] = value
    accelerator.log(scalars, step=step)


def mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def summarise(runs, methods, classes, protocol, folds, dataset, data_args, model_args, args, model, skipped, skipped_examples) -> dict:
    import transformers

    from . import __version__

    out_methods = {}
    for method in ["baseline", *methods]:
        entry = {}
        for metric_name in ("ua", "wa", "f1"):
            entry[f"{metric_name}_mean"], entry[f"{metric_name}_std"] = mean_std([r["methods"][method][metric_name] for r in runs])
        entry["per_fold"] = [{"fold": r["fold"], "seed": r["seed"], "fraction": r["fraction"],
                              **{k: r["methods"][method][k] for k in ("ua", "wa", "f1", "n")},
                              **({"synthetic_ratio": r["methods"][method]["synthetic_ratio"]} if method != "baseline" else {}),
                              **({"quality": r["methods"][method]["quality"]} if r["methods"][method].get("quality") else {})}
                             for r in runs]
        if len(args.fractions) > 1:
            entry["by_fraction"] = {str(f): dict(zip(("ua_mean", "ua_std"), mean_std([r["methods"][method]["ua"] for r in runs if r["fraction"] == f])))
                                    for f in args.fractions}
        out_methods[method] = entry
    mi = {}
    for method in methods:
        qualities = [r["methods"][method]["quality"] for r in runs if r["methods"][method]["quality"]]
        if qualities:
            keys = [k for k, v in qualities[0].items() if isinstance(v, (int, float))]
            mi[method] = {"per_fold": qualities,
                          "mean": {k: float(np.nanmean([q[k] for q in qualities])) for k in keys},
                          "std": {k: float(np.nanstd([q[k] for q in qualities])) for k in keys}}
    return {
        "dataset": Path(data_args.dataset_dir).name if data_args.dataset == "audiofolder" else data_args.dataset,
        "dataset_dir": str(data_args.dataset_dir),
        "mode": model.config.mode,
        "n_clips": len(dataset),
        "n_skipped": sum(skipped.values()),
        "skipped": skipped,
        "skipped_examples": skipped_examples,
        "classes": classes,
        "protocol": {"name": protocol.name, "description": protocol.description + " Metrics: UA (mean per-class recall), WA (accuracy), macro-F1 on held-out speakers; mean ± std over folds and seeds.",
                     "folds": [asdict(f) for f in folds], "runs": [{k: r[k] for k in ("fold", "seed", "fraction", "n_train", "n_test", "test_speakers", "validation_speakers")} for r in runs]},
        "stage1_selection": [{"fold": r["fold"], "seed": r["seed"], "fraction": r["fraction"], **r["stage1"],
                              "candidates": r["curves"]["stage1_candidates"]} for r in runs],
        "methods": out_methods,
        "mi": mi,
        "arguments": {"data": asdict(data_args), "model": asdict(model_args), "train": asdict(args)},
        "config": {k: getattr(model.config, k) for k in REPORTED_CONFIG},
        "versions": {"mirgan": __version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "python": platform.python_version(),
                     "audio_encoder": model.config.audio_encoder_name, "audio_encoder_hash": model.config.audio_encoder_hash,
                     "text_encoder": model.config.text_encoder_name, "text_encoder_hash": model.config.text_encoder_hash,
                     # what --extraction_dtype auto resolved to here: the features, so the scores, depend on it
                     "extraction_dtype": "bfloat16" if extraction_dtype(args.extraction_dtype) else "float32"},
    }


def save_model(model, processor, folder: Path, results: dict) -> None:
    """``save_pretrained`` model + processor + model card, written to a temp folder then swapped into
    place (``safe_io.replace_folder``: a complete model sits at ``folder`` at every instant)."""
    from .card import write_model_card
    from .safe_io import replace_folder

    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.config.architectures = ["MirganForEmotionClassification"]
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    write_model_card(tmp, results)
    replace_folder(tmp, folder)
