"""The feature cache: encoder outputs and stage-1 features written by ``datasets.map``.

Each map writes an Arrow file whose name is a fingerprint of everything that determines its
content (rows and their audio files, encoder names and weight hashes, pooling, stage-1 weights),
through a temporary file renamed into place, then its SHA-256 beside it (``<name>.sha256``).
A second identical run finds the file and loads it instead of recomputing; a file without its
checksum (an interrupted write), with a checksum that does not match (a flipped byte, a
truncation) or with the wrong rows is deleted and rebuilt, never used. Under several processes
each rank maps its own shard of the rows and the main process merges the shards into the one
cache file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from datasets import Array2D, Dataset, Features, Sequence, Value, concatenate_datasets

from processing import AudioError

logger = logging.getLogger("mirgan")
FEATURE_VERSION = "1"  # bump when the extraction code changes what it writes


def fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def rows_signature(dataset: Dataset) -> str:
    """Ids, audio paths with size and mtime, and transcripts: changes when any input changes."""
    digest = hashlib.sha256()
    for row_id, path, text in zip(dataset["id"], dataset["audio"], dataset["text"]):
        stat = os.stat(path) if os.path.exists(path) else None
        digest.update(f"{row_id}|{path}|{stat.st_size if stat else -1}|{stat.st_mtime_ns if stat else -1}|{text}\n".encode())
    return digest.hexdigest()


def digest_path(path: Path) -> Path:
    """The checksum written beside a cache file once it is complete: without it the file is not used."""
    return path.with_name(path.name + ".sha256")


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def write_cache_digest(path: Path) -> None:
    """Mark ``path`` complete: its checksum, written to a temporary file and renamed into place
    (removed again if the write fails, e.g. on a full disk)."""
    marker = digest_path(path)
    tmp = marker.with_name(f".{marker.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(file_digest(path) + "\n")
        os.replace(tmp, marker)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_cache_folder(folder: Path) -> None:
    """Remove what no verified read may ever use: the temporary files and folders of writes whose
    process is gone (a kill, a full disk), and ``cache-*.arrow`` files, which ``datasets`` writes
    for derived datasets without a checksum and would reuse unverified (this package never
    creates them; older versions did)."""
    for item in folder.glob(".tmp-*"):  # private folders of cached_map: .tmp-<pid>-<random>
        pid = item.name.split("-")[1] if item.name.count("-") >= 2 else ""
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(item, ignore_errors=True)
    for item in folder.glob(".*.tmp*"):  # checksum and merge temporaries: .<name>.tmp<pid>
        pid = item.name.rsplit(".tmp", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)) and item.is_file():
            item.unlink(missing_ok=True)
    for item in folder.glob("cache-*.arrow"):
        logger.warning("feature cache: removing %s, a datasets cache file without a checksum that would be "
                       "read unverified", item)
        item.unlink(missing_ok=True)


def check_verified(dataset: Dataset) -> Dataset:
    """``dataset`` if every file it reads has its checksum beside it (was verified); else RuntimeError."""
    for entry in dataset.cache_files:
        path = Path(entry["filename"])
        if not digest_path(path).exists():
            raise RuntimeError(f"feature cache: {path} would be read without a checksum; this is a bug, please report it")
    return dataset


def load_cached(path: Path, n_rows: int) -> Dataset | None:
    """A complete cache file, or None; a damaged, truncated or unfinished file is deleted (then rebuilt).

    Complete means: its checksum file exists and matches (so a flipped byte is caught, not only a
    truncation), Arrow can read it, and it holds rows 0..n_rows-1 in order."""
    clean_cache_folder(path.parent)
    if not path.exists():
        return None
    marker = digest_path(path)
    try:
        if not marker.exists():
            problem = f"no checksum file {marker.name}: its write never finished"
        elif file_digest(path) != marker.read_text().strip():
            problem = "its checksum does not match: the file changed after it was written"
        else:
            data = Dataset.from_file(str(path))
            if len(data) == n_rows and data["_row"][:] == list(range(n_rows)):
                return data
            problem = f"{len(data)} rows, expected {n_rows}"
    except Exception as err:  # noqa: BLE001 - any damage means rebuild
        problem = f"{type(err).__name__}: {err}"
    logger.warning("feature cache %s is damaged (%s); rebuilding it", path, problem)
    path.unlink(missing_ok=True)
    marker.unlink(missing_ok=True)
    return None


def distributed() -> tuple[int, int, callable]:
    """(rank, world size, barrier) of the torch.distributed group that Accelerate started, if any."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), dist.barrier
    return 0, 1, lambda: None


def map_fingerprint(path: Path) -> str:
    """The fingerprint handed to ``datasets.map``: the cache file's name already says what it holds.

    Without it ``datasets`` hashes the mapped function with dill, which serialises the closure's
    whole model (hundreds of MB) on every call: 0.7-1.3 s per map (whisper-base, tiny.en), a fixed
    cost paid by every encoder and stage-1 map of a run, for a fingerprint nothing here reads."""
    return path.stem[-64:]


def cached_map(dataset: Dataset, function, cache_path: Path, features: Features, batch_size: int,
               desc: str = "") -> tuple[Dataset, bool]:
    """``dataset.map(function)`` cached at ``cache_path``; returns (result, whether it was a cache hit).

    With ``world_size > 1`` each rank maps one contiguous shard of the rows into a file, the main
    process merges the shards into ``cache_path``, and every rank reads that one file: no row is
    encoded twice and the cache is the same whatever the number of processes."""
    rank, world_size, barrier = distributed()
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    dataset = dataset.add_column("_row", list(range(len(dataset))))
    result = load_cached(cache_path, len(dataset)) if rank == 0 else None
    barrier()  # rank 0 has checked (and deleted a damaged file) before the others look
    if rank != 0:
        result = load_cached(cache_path, len(dataset))
    if result is not None:
        return check_verified(result.remove_columns("_row")), True
    remove = [c for c in dataset.column_names if c != "_row"]
    if rank == 0:
        digest_path(cache_path).unlink(missing_ok=True)  # a checksum left without its file
    if world_size == 1:
        private_map(dataset, function, cache_path, dict(batched=True, batch_size=batch_size, features=features,
                                                        remove_columns=remove, desc=desc))
        write_cache_digest(cache_path)
    else:
        shard_path = cache_path.with_name(f"{cache_path.stem}.shard{rank}of{world_size}.arrow")
        shard = dataset.shard(num_shards=world_size, index=rank, contiguous=True)
        private_map(shard, function, shard_path, dict(batched=True, batch_size=batch_size, features=features,
                                                      remove_columns=remove, desc=desc))
        barrier()
        if rank == 0:
            shards = [cache_path.with_name(f"{cache_path.stem}.shard{r}of{world_size}.arrow") for r in range(world_size)]
            merged = concatenate_datasets([Dataset.from_file(str(p)) for p in shards])
            tmp = cache_path.with_name(f".{cache_path.name}.tmp{os.getpid()}")
            try:
                merged.flatten_indices(cache_file_name=str(tmp))
                os.replace(tmp, cache_path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            write_cache_digest(cache_path)
            for p in shards:
                p.unlink()
    barrier()
    result = load_cached(cache_path, len(dataset))
    if result is None:
        raise RuntimeError(f"feature cache {cache_path} could not be written")
    return check_verified(result.remove_columns("_row")), False


def private_map(dataset: Dataset, function, path: Path, kwargs: dict) -> None:
    """``dataset.map`` written to ``path`` through a private temporary folder beside it.

    ``datasets`` writes a ``tmp*`` file beside its target and renames it; when the write fails (a
    full disk, an exception in ``function``) that file stays. Here it lives in
    ``.tmp-<pid>-<random>/``, removed on any failure (and by ``clean_cache_folder`` after a kill)."""
    work = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".tmp-{os.getpid()}-"))
    try:
        target = work / path.name
        dataset.map(function, cache_file_name=str(target), load_from_cache_file=False,
                    new_fingerprint=map_fingerprint(path), **kwargs)
        os.replace(target, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def audio_durations(paths: list[str]) -> list[float]:
    out = []
    for path in paths:
        try:
            info = sf.info(path)
            out.append(info.frames / info.samplerate)
        except Exception:  # noqa: BLE001 - unreadable files are reported when they are decoded
            out.append(0.0)
    return out


def extract_encoder_features(
    dataset: Dataset,
    model,
    processor,
    cache_dir: Path,
    batch_size: int = 8,
    use_text: bool = True,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[Dataset, bool]:
    """Per-layer pooled audio features ``[L, D]`` and pooled text features for every row.

    ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs the encoders under autocast; features are stored
    in float32 and the dtype is part of the cache key.

    A clip that cannot be decoded raises ``AudioError`` naming the file; callers that skip bad
    clips validate them first (``processing.validate_clips``)."""
    config = model.config
    layers, dim = config.num_audio_layers, config.audio_hidden_size
    key = fingerprint(
        FEATURE_VERSION, rows_signature(dataset), config.audio_encoder_name, config.audio_encoder_hash,
        config.audio_encoder.to_dict(), config.text_encoder_name, config.text_encoder_hash, use_text,
        processor.feature_extractor.to_dict(), str(autocast_dtype),
    )
    features = Features({
        "_row": Value("int64"),
        "audio_features": Array2D((layers, dim), "float32"),
        "text_features": Sequence(Value("float32"), length=config.text_hidden_size),
    })
    encoder_model = model
    device = next(model.parameters()).device  # inputs follow the model (a GPU when it was moved there)

    def encode(batch):
        with torch.inference_mode(), torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            return encode_batch(batch)

    def encode_batch(batch):
        waves = [processor.prepare_audio(path) for path in batch["audio"]]
        order = np.argsort([len(w) for w in waves])  # similar lengths together: less padding
        audio_out = np.zeros((len(waves), layers, dim), np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            inputs = processor(audio=[waves[i] for i in idx], sampling_rate=processor.sampling_rate).to(device)
            audio_out[idx] = encoder_model.encode_audio(**inputs).float().cpu().numpy()
        text_out = np.zeros((len(waves), config.text_hidden_size), np.float32)
        if use_text:
            tokens = processor(text=list(batch["text"])).to(device)
            text_out[:] = encoder_model.encode_text(
                tokens["input_ids"], tokens["text_attention_mask"], tokens.get("token_type_ids")
            ).float().cpu().numpy()
        return {"_row": batch["_row"], "audio_features": audio_out, "text_features": text_out}

    # Sort by duration so each map batch holds clips of similar length (less padding).
    order = np.argsort(audio_durations(dataset["audio"]), kind="stable")
    sorted_ds = dataset.select(order, keep_in_memory=True)  # in-memory indices: no unverified cache-*.arrow file
    result, hit = cached_map(
        sorted_ds, encode, cache_dir / f"encoder-{key}.arrow", features, batch_size=batch_size * 4, desc="Encoding audio",
    )
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return result.select(inverse, keep_in_memory=True), hit


def drop_bad_clips(dataset: Dataset, processor) -> tuple[Dataset, dict[str, list[str]]]:
    """Rows whose audio decodes and validates; the others grouped by problem (for --skip_bad)."""
    keep, bad = [], {}
    for i, path in enumerate(dataset["audio"]):
        try:
            processor.prepare_audio(path)
            keep.append(i)
        except AudioError as err:  # counted by the problem alone, not by its clip-specific numbers
            reason = getattr(err, "reason", None) or str(err)[len(str(path)) + 2 :].split(" (")[0]
            bad.setdefault(reason, []).append(str(path))
            logger.warning("skipping %s", err)
    return dataset.select(keep), bad
