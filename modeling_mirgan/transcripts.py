"""Transcripts by ASR: fill a corpus's ``text`` column with Whisper, cached like the encoder features.

    data, info = transcribe_dataset(dataset, "openai/whisper-base", cache_dir, language="de")

Audio is decoded at any rate/channel count and converted to 16 kHz mono. Rows are sorted by
duration so each ``generate`` batch holds clips of similar length; ``max_new_tokens`` is sized
for the longest clip of the batch. A clip longer than 30 s (Whisper's window) is cut into equal
consecutive chunks of at most 30 s, each transcribed on its own, and the texts are joined.
Decoding is greedy, without timestamps; multilingual models get ``language`` and
``task="transcribe"`` (``language=None`` lets Whisper detect the language of each clip).

The transcripts are written by ``datasets.map`` into an Arrow file whose name is a fingerprint
of the rows' audio files (path, size, mtime), the ASR model's name and weights hash, the language
and the generation settings (see :func:`asr_cache_path`); a second identical call reads it back.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, Features, Value

from processing.audio import load_audio, to_mono_16k

from datasets_scripts.features import audio_durations, cached_map, fingerprint, rows_signature

logger = logging.getLogger("mirgan")

ASR_VERSION = "1"  # bump when the transcription code changes what it writes
SAMPLING_RATE = 16000
CHUNK_SECONDS = 30.0  # Whisper's input window
TOKENS_PER_SECOND = 10  # generous: fast speech is ~4 words/s and a German word is often 2+ tokens
MIN_NEW_TOKENS = 16
MAX_NEW_TOKENS = 440  # the decoder has 448 positions, the prompt takes up to 4
GENERATION = {
    "version": ASR_VERSION, "decoding": "greedy", "num_beams": 1, "do_sample": False, "task": "transcribe",
    "return_timestamps": False, "chunk_seconds": CHUNK_SECONDS, "tokens_per_second": TOKENS_PER_SECOND,
    "min_new_tokens": MIN_NEW_TOKENS, "max_new_tokens": MAX_NEW_TOKENS, "dtype": "float32",
}
ENGLISH = {"en", "english", "<|en|>"}


@dataclass
class ASRModel:
    name: str
    folder: Path
    weights_hash: str
    model: torch.nn.Module
    processor: object  # WhisperProcessor
    multilingual: bool
    device: torch.device


@functools.lru_cache(maxsize=None)
def resolve_asr(model_name: str) -> tuple[Path, str]:
    """(local folder, weights hash) of an ASR model name; resolved once per process."""
    from .encoders import resolve_pretrained, weights_hash

    folder = resolve_pretrained(model_name)
    return folder, weights_hash(folder)


@functools.lru_cache(maxsize=2)
def load_asr(model_name: str) -> ASRModel:
    """A Whisper model with its decoder (``WhisperForConditionalGeneration``) and processor; kept per process."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    folder, digest = resolve_asr(model_name)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = WhisperForConditionalGeneration.from_pretrained(folder, dtype=torch.float32, use_safetensors=True)
    model = model.to(device).eval()
    processor = WhisperProcessor.from_pretrained(folder)
    multilingual = bool(getattr(model.generation_config, "is_multilingual", True))
    return ASRModel(model_name, folder, digest, model, processor, multilingual, device)


def generation_kwargs(model_name: str, multilingual: bool, language: str | None) -> dict:
    """``language``/``task`` for a multilingual model; an English-only model accepts only English."""
    if not multilingual:
        if language is not None and language.lower() not in ENGLISH:
            raise ValueError(f"{model_name} is an English-only model; it cannot transcribe language={language!r} "
                             "(use a multilingual model such as openai/whisper-base)")
        return {}
    kwargs = {"task": "transcribe"}
    if language is not None:
        kwargs["language"] = language
    return kwargs


def max_new_tokens(seconds: float) -> int:
    """A token budget for a clip of ``seconds``: enough for fast speech, bounded for hallucination loops."""
    return int(min(MAX_NEW_TOKENS, MIN_NEW_TOKENS + math.ceil(TOKENS_PER_SECOND * seconds)))


def chunk_spans(n_samples: int, rate: int = SAMPLING_RATE, seconds: float = CHUNK_SECONDS) -> list[tuple[int, int]]:
    """Equal consecutive spans of at most ``seconds`` covering ``n_samples`` (no short tail chunk)."""
    limit = int(seconds * rate)
    n = max(1, math.ceil(n_samples / limit))
    size = math.ceil(n_samples / n)
    return [(k * size, min((k + 1) * size, n_samples)) for k in range(n)]


@contextlib.contextmanager
def quiet_transformers():
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def clean_text(text: str) -> str:
    return " ".join(text.split())


@torch.inference_mode()
def transcribe_waves(waves: list[np.ndarray], model_name: str = "openai/whisper-base", language: str | None = None,
                     batch_size: int = 8) -> list[str]:
    """Transcripts of 16 kHz mono waveforms; long ones in <= 30 s chunks whose texts are joined."""
    if not waves:
        return []
    asr = load_asr(model_name)
    kwargs = generation_kwargs(asr.name, asr.multilingual, language)
    pieces = []  # (wave index, chunk)
    for i, wave in enumerate(waves):
        wave = np.asarray(wave, dtype=np.float32).reshape(-1)
        pieces += [(i, wave[a:b]) for a, b in chunk_spans(len(wave))]
    order = sorted(range(len(pieces)), key=lambda k: len(pieces[k][1]))  # similar lengths together
    texts = [""] * len(pieces)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        chunks = [pieces[k][1] for k in idx]
        inputs = asr.processor.feature_extractor(chunks, sampling_rate=SAMPLING_RATE, return_tensors="pt",
                                                 return_attention_mask=True)
        budget = max_new_tokens(max(len(c) for c in chunks) / SAMPLING_RATE)
        with quiet_transformers():  # its notes on Whisper's own generation config are not ours to act on
            ids = asr.model.generate(inputs.input_features.to(asr.device),
                                     attention_mask=inputs.attention_mask.to(asr.device), max_new_tokens=budget,
                                     return_timestamps=False, do_sample=False, num_beams=1, **kwargs)
        for k, text in zip(idx, asr.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)):
            texts[k] = clean_text(text)
    joined = [[] for _ in waves]
    for (i, _), text in zip(pieces, texts):
        if text:
            joined[i].append(text)
    return [" ".join(parts) for parts in joined]


def transcribe_files(paths: list[str | Path], model_name: str = "openai/whisper-base", language: str | None = None,
                     batch_size: int = 8) -> list[str]:
    """Transcripts of audio files (any rate/channels; ``AudioError`` names a file that cannot be decoded)."""
    return transcribe_waves([load_audio(p, SAMPLING_RATE) for p in paths], model_name, language, batch_size)


def asr_function(model_name: str = "openai/whisper-base", language: str | None = None, batch_size: int = 8,
                 sampling_rate: int = SAMPLING_RATE):
    """``f(waves) -> texts`` for waveforms at ``sampling_rate`` (what ``predict`` calls per window)."""

    def transcribe(waves: list[np.ndarray]) -> list[str]:
        if sampling_rate != SAMPLING_RATE:
            waves = [to_mono_16k(w, sampling_rate, SAMPLING_RATE) for w in waves]
        return transcribe_waves(list(waves), model_name, language, batch_size)

    transcribe.model_name = model_name
    transcribe.language = language
    return transcribe


# ---- word error rate -------------------------------------------------------------------------

def normalize_words(text: str) -> list[str]:
    """Lower-cased words with punctuation removed (letters of any script and digits are kept)."""
    return re.sub(r"[^\w\s]|_", " ", (text or "").lower()).split()


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level Levenshtein distance: substitutions + deletions + insertions."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp in enumerate(hypothesis, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp))
        previous = current
    return previous[-1]


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER: total word edits over total reference words, after ``normalize_words``."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    edits = words = 0
    for ref, hyp in zip(references, hypotheses):
        ref_words = normalize_words(ref)
        edits += edit_distance(ref_words, normalize_words(hyp))
        words += len(ref_words)
    if words == 0:
        raise ValueError("the references have no words")
    return edits / words


# ---- datasets ----------------------------------------------------------------------------------

def audio_signature(dataset: Dataset) -> str:
    """Row ids, audio paths, sizes and mtimes in row order (not the transcripts: ASR does not read them)."""
    paths = [str(p) for p in dataset["audio"]]
    ids = dataset["id"] if "id" in dataset.column_names else paths
    return rows_signature({"id": ids, "audio": paths, "text": [""] * len(paths)})


def asr_cache_path(dataset: Dataset, model_name: str, cache_dir: str | Path, language: str | None = None) -> Path:
    """The cache file of ``dataset``'s transcripts by ``model_name`` in ``language``."""
    _, digest = resolve_asr(model_name)
    key = fingerprint("asr", audio_signature(dataset), model_name, digest, language, GENERATION)
    return Path(cache_dir) / f"asr-{key}.arrow"


def default_cache_dir() -> Path:
    from .encoders import cache_dir

    return cache_dir() / "transcripts"


def transcribe_dataset(dataset: Dataset, model_name: str = "openai/whisper-base", cache_dir: str | Path | None = None,
                       batch_size: int = 8, language: str | None = None,
                       keep_ground_truth: bool = False) -> tuple[Dataset, dict]:
    """``dataset`` (columns ``audio`` = file paths, optional ``id``/``text``) with ASR transcripts.

    Returns ``(data, info)``. ``data`` has the same rows and columns plus ``asr_text``; its
    ``text`` is the ASR transcript, or with ``keep_ground_truth=True`` the ground truth where a
    row has one (rows with an empty ground truth get the ASR transcript). ``info`` holds
    ``model``, ``weights_hash``, ``language``, ``cache_hit``, ``cache_file``, ``n_clips``,
    ``audio_seconds``, ``seconds`` (wall time of this call), ``clips_per_s`` (transcription speed,
    None on a cache hit), ``wer`` (ASR vs the non-empty ground-truth rows, None without any),
    ``wer_clips``, ``empty_asr`` (audio paths whose transcript came out empty), ``filled_from_asr``
    (rows whose ``text`` is the ASR transcript) and ``generation`` (the settings).
    """
    start = time.perf_counter()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder, digest = resolve_asr(model_name)
    cache_path = asr_cache_path(dataset, model_name, cache_dir, language)
    generation_kwargs(model_name, is_multilingual(folder), language)  # a bad language fails before any work
    paths = [str(p) for p in dataset["audio"]]
    durations = audio_durations(paths)

    def transcribe(batch):
        waves = [load_audio(p, SAMPLING_RATE) for p in batch["audio"]]
        return {"_row": batch["_row"], "asr_text": transcribe_waves(waves, model_name, language, batch_size)}

    order = np.argsort(durations, kind="stable")  # map batches of similar durations
    source = Dataset.from_dict({"audio": [paths[i] for i in order]})
    features = Features({"_row": Value("int64"), "asr_text": Value("string")})
    mapped_at = time.perf_counter()
    result, hit = cached_map(source, transcribe, cache_path, features, batch_size=batch_size * 4,
                             desc=f"Transcribing with {model_name}")
    mapped_seconds = time.perf_counter() - mapped_at
    asr = [""] * len(paths)
    for position, text in zip(order, result["asr_text"]):
        asr[int(position)] = text

    truth = list(dataset["text"]) if "text" in dataset.column_names else [""] * len(paths)
    scored = [i for i, t in enumerate(truth) if normalize_words(t)]
    wer = word_error_rate([truth[i] for i in scored], [asr[i] for i in scored]) if scored else None
    if keep_ground_truth:
        text = [t if normalize_words(t) else a for t, a in zip(truth, asr)]
    else:
        text = asr
    columns = dataset.column_names
    data = dataset.remove_columns([c for c in ("text", "asr_text") if c in columns])
    data = data.add_column("text", text).add_column("asr_text", asr)
    data = data.select_columns([*columns, *(["text"] if "text" not in columns else []),
                                *(["asr_text"] if "asr_text" not in columns else [])])
    empty = [paths[i] for i, a in enumerate(asr) if not a.strip()]
    if empty:
        logger.warning("ASR (%s) produced no words for %d clips, e.g. %s", model_name, len(empty), empty[0])
    info = {
        "model": model_name, "weights_hash": digest, "language": language, "cache_hit": hit,
        "cache_file": str(cache_path), "n_clips": len(paths), "audio_seconds": float(sum(durations)),
        "seconds": time.perf_counter() - start,
        "clips_per_s": None if hit or not paths else len(paths) / mapped_seconds,
        "wer": wer, "wer_clips": len(scored), "empty_asr": empty,
        "filled_from_asr": sum(1 for t in truth if not keep_ground_truth or not normalize_words(t)),
        "keep_ground_truth": keep_ground_truth, "generation": dict(GENERATION),
    }
    logger.info("transcripts by %s (%s): %d clips, cache %s, WER %s", model_name, language or "auto", len(paths),
                "hit" if hit else "miss", f"{wer:.3f}" if wer is not None else "n/a")
    return data, info


def is_multilingual(folder: Path) -> bool:
    """Whether a Whisper folder's generation config says it is multilingual (without loading it)."""
    import json

    config = folder / "generation_config.json"
    if not config.is_file():
        return True
    return bool(json.loads(config.read_text()).get("is_multilingual", True))
