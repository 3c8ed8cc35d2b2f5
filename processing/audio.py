"""Decode, validate, downmix and resample audio; every problem names the file and what is wrong."""

from __future__ import annotations

import errno
import io
import math
import numbers
import os
import stat
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

MIN_RATE, MAX_RATE = 1_000, 1_000_000  # Hz: outside this a "sampling rate" is a mistake, not audio
MAX_PEAK = 1e6  # float audio lives in [-1, 1]; beyond this the spectrogram would overflow


class AudioError(ValueError):
    """A clip that cannot be used; the message starts with the file (or 'array') and the problem.

    ``reason`` is the problem without the file name or clip-specific numbers, e.g. "cannot decode
    audio": clips skipped for the same problem are counted under the same reason (``--skip_bad``)."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


def check_sampling_rate(sampling_rate, source: str = "array") -> float | int:
    """The rate as a number of Hz, or AudioError: not a number, NaN, or outside 1 kHz..1 MHz."""
    if isinstance(sampling_rate, (bool, np.bool_)) or not isinstance(sampling_rate, numbers.Real):
        raise AudioError(f"{source}: invalid sampling rate {sampling_rate!r}; expected a number of Hz",
                         "invalid sampling rate")
    rate = float(sampling_rate)
    if not math.isfinite(rate) or not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"{source}: invalid sampling rate {sampling_rate!r}; expected {MIN_RATE} to {MAX_RATE} Hz",
                         "invalid sampling rate")
    return int(rate) if rate.is_integer() else rate


def to_mono_16k(array: np.ndarray, sampling_rate: int, target_rate: int, source: str = "array") -> np.ndarray:
    """Validate a decoded waveform ``[samples]`` or ``[samples, channels]`` and convert it."""
    try:
        array = np.asarray(array)
    except (ValueError, TypeError) as err:  # ragged nested lists and the like
        raise AudioError(f"{source}: not an array of audio samples ({err})", "not an array of audio samples") from None
    if array.dtype.kind not in "fiu":
        raise AudioError(f"{source}: audio samples have dtype {array.dtype}, expected numbers", "audio samples are not numbers")
    rate = check_sampling_rate(sampling_rate, source)
    if array.ndim not in (1, 2):
        raise AudioError(f"{source}: audio has shape {array.shape}, expected [samples] or [samples, channels]",
                         "audio has the wrong shape")
    if array.size == 0:
        raise AudioError(f"{source}: audio is empty (0 samples)", "audio is empty")
    if array.dtype.kind in "iu":  # integer PCM given as an array: scale to [-1, 1]
        info = np.iinfo(array.dtype)
        array = (array.astype(np.float64) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    finite = np.isfinite(array)
    if not finite.all():
        bad = int((~finite).sum())
        raise AudioError(f"{source}: audio contains {bad} NaN/inf samples", "audio contains NaN/inf samples")
    peak = float(np.abs(array).max())
    if peak > MAX_PEAK:
        raise AudioError(f"{source}: samples reach {peak:.3g}; expected floating-point audio in [-1, 1]",
                         "samples far outside [-1, 1]")
    array = array.astype(np.float32, copy=False)
    if array.ndim == 2:
        # soundfile gives [samples, channels]; arrays from other tools are often [channels, samples]
        if array.shape[0] <= 8 < array.shape[1]:
            array = array.T
        array = array.mean(axis=1)
    if rate != target_rate:
        array = soxr.resample(array, rate, target_rate, quality="HQ").astype(np.float32)
    return array


def file_problem(path: str | Path) -> tuple[str, str] | None:
    """Why ``path`` cannot be read as an audio file, as (problem, reason), or None when it can.

    Named as what it is: missing, a broken or looping symbolic link, a directory, a FIFO or device,
    permission denied, empty. Never opens a FIFO (that would block)."""
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symbolic link loop (the link points back at itself)", "symbolic link loop"
        if err.errno in (errno.EACCES, errno.EPERM):
            return "permission denied (cannot look up the file)", "permission denied"
        if err.errno == errno.ENOENT and path.is_symlink():
            return f"broken symbolic link (points to {os.readlink(path)}, which does not exist)", "broken symbolic link"
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return "file not found", "file not found"
        return f"cannot read file ({err.strerror or err})", "cannot read file"
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return "not a file (it is a directory)", "not a file"
    if stat.S_ISFIFO(mode):
        return "not a regular file (it is a named pipe, FIFO)", "not a regular file"
    if not stat.S_ISREG(mode):
        kind = "socket" if stat.S_ISSOCK(mode) else "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file"
        return f"not a regular file (it is a {kind})", "not a regular file"
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        return "permission denied (the file is not readable by this user)", "permission denied"
    except OSError as err:
        return f"cannot read file ({err.strerror or err})", "cannot read file"
    if info.st_size == 0:
        return "file is empty (0 bytes)", "file is empty"
    return None


def _decode_error(name: str, err: Exception) -> AudioError:
    if isinstance(err, sf.LibsndfileError):
        return AudioError(f"{name}: cannot decode audio ({err.error_string})", "cannot decode audio")
    if isinstance(err, PermissionError):
        return AudioError(f"{name}: permission denied", "permission denied")
    if isinstance(err, OSError) and not isinstance(err, sf.SoundFileRuntimeError):
        return AudioError(f"{name}: cannot read file ({err.strerror or err})", "cannot read file")
    return AudioError(f"{name}: cannot decode audio ({err})", "cannot decode audio")


DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OverflowError, EOFError, OSError)


def load_audio(source: str | Path | bytes, target_rate: int = 16000) -> np.ndarray:
    """A mono float32 waveform at ``target_rate`` from a file path or encoded bytes."""
    name = "bytes" if isinstance(source, (bytes, bytearray)) else str(source)
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise AudioError(f"{name}: file is empty (0 bytes)", "file is empty")
        handle = io.BytesIO(source)
    else:
        problem = file_problem(source)
        if problem is not None:
            raise AudioError(f"{name}: {problem[0]}", problem[1])
        handle = str(source)
    try:
        array, rate = sf.read(handle, dtype="float32", always_2d=True)
    except DECODE_ERRORS as err:
        raise _decode_error(name, err) from None
    return to_mono_16k(array, rate, target_rate, name)


def _check_block(block: np.ndarray, name: str, offset: int) -> None:
    finite = np.isfinite(block)
    if not finite.all():
        raise AudioError(f"{name}: audio contains {int((~finite).sum())} NaN/inf samples (from sample {offset})",
                         "audio contains NaN/inf samples")
    peak = float(np.abs(block).max()) if block.size else 0.0
    if peak > MAX_PEAK:
        raise AudioError(f"{name}: samples reach {peak:.3g}; expected floating-point audio in [-1, 1]",
                         "samples far outside [-1, 1]")


def stream_audio(path: str | Path, target_rate: int = 16000, block_seconds: float = 10.0):
    """Mono float32 blocks at ``target_rate`` decoded from ``path`` a block at a time.

    Memory stays flat in the length of the recording: soundfile reads ``block_seconds`` of the file,
    the block is downmixed and fed to soxr's streaming resampler (the same HQ filter as
    :func:`to_mono_16k`). The same checks as :func:`load_audio` apply (file problems, undecodable,
    NaN/inf, far outside [-1, 1], empty); errors name the file."""
    name = str(path)
    problem = file_problem(path)
    if problem is not None:
        raise AudioError(f"{name}: {problem[0]}", problem[1])
    try:
        handle = sf.SoundFile(str(path))
    except DECODE_ERRORS as err:
        raise _decode_error(name, err) from None
    with handle:
        rate = check_sampling_rate(handle.samplerate, name)
        block = max(int(block_seconds * handle.samplerate), 1)
        stream = None if rate == target_rate else soxr.ResampleStream(rate, target_rate, 1, dtype="float32", quality="HQ")
        offset = 0
        while True:
            try:
                data = handle.read(block, dtype="float32", always_2d=True)
            except DECODE_ERRORS as err:
                raise _decode_error(name, err) from None
            last = len(data) < block
            if offset == 0 and last and len(data) == 0:
                raise AudioError(f"{name}: audio is empty (0 samples)", "audio is empty")
            _check_block(data, name, offset)
            mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
            mono = np.ascontiguousarray(mono, dtype=np.float32)
            offset += len(data)
            out = mono if stream is None else stream.resample_chunk(mono, last=last)
            if len(out):
                yield out.astype(np.float32, copy=False)
            if last:
                return
