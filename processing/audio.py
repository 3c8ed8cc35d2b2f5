"""Decode, validate, downmix and resample audio; every problem names the file and what is wrong."""

from __future__ import annotations

import io
import math
import numbers
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


def load_audio(source: str | Path | bytes, target_rate: int = 16000) -> np.ndarray:
    """A mono float32 waveform at ``target_rate`` from a file path or encoded bytes."""
    name = "bytes" if isinstance(source, (bytes, bytearray)) else str(source)
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise AudioError(f"{name}: file is empty (0 bytes)", "file is empty")
        handle = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.exists():
            raise AudioError(f"{name}: file not found", "file not found")
        if not path.is_file():
            raise AudioError(f"{name}: not a file", "not a file")
        if path.stat().st_size == 0:
            raise AudioError(f"{name}: file is empty (0 bytes)", "file is empty")
        handle = str(path)
    try:
        array, rate = sf.read(handle, dtype="float32", always_2d=True)
    except sf.LibsndfileError as err:
        raise AudioError(f"{name}: cannot decode audio ({err.error_string})", "cannot decode audio") from None
    except (RuntimeError, TypeError, ValueError, OverflowError, EOFError) as err:
        raise AudioError(f"{name}: cannot decode audio ({err})", "cannot decode audio") from None
    except OSError as err:  # permission denied, I/O error
        raise AudioError(f"{name}: cannot read file ({err.strerror or err})", "cannot read file") from None
    return to_mono_16k(array, rate, target_rate, name)
