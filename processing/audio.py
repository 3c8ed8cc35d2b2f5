"""Decode, validate, downmix and resample audio; every problem names the file and what is wrong."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


class AudioError(ValueError):
    """A clip that cannot be used; the message starts with the file (or 'array') and the problem."""


def to_mono_16k(array: np.ndarray, sampling_rate: int, target_rate: int, source: str = "array") -> np.ndarray:
    """Validate a decoded waveform ``[samples]`` or ``[samples, channels]`` and convert it."""
    array = np.asarray(array)
    if array.dtype.kind not in "fiu":
        raise AudioError(f"{source}: audio samples have dtype {array.dtype}, expected numbers")
    if array.dtype.kind in "iu":  # integer PCM given as an array: scale to [-1, 1]
        info = np.iinfo(array.dtype)
        array = (array.astype(np.float64) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    array = array.astype(np.float32, copy=False)
    if array.ndim == 2:
        # soundfile gives [samples, channels]; arrays from other tools are often [channels, samples]
        if array.shape[0] <= 8 < array.shape[1]:
            array = array.T
        array = array.mean(axis=1)
    elif array.ndim != 1:
        raise AudioError(f"{source}: audio has shape {array.shape}, expected [samples] or [samples, channels]")
    if array.size == 0:
        raise AudioError(f"{source}: audio is empty (0 samples)")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise AudioError(f"{source}: audio contains {bad} NaN/inf samples")
    peak = float(np.abs(array).max())
    if peak > 1e6:  # float audio lives in [-1, 1]; this would overflow the spectrogram
        raise AudioError(f"{source}: samples reach {peak:.3g}; expected floating-point audio in [-1, 1]")
    if not sampling_rate or sampling_rate <= 0:
        raise AudioError(f"{source}: invalid sampling rate {sampling_rate}")
    if sampling_rate != target_rate:
        array = soxr.resample(array, sampling_rate, target_rate, quality="HQ").astype(np.float32)
    return array


def load_audio(source: str | Path | bytes, target_rate: int = 16000) -> np.ndarray:
    """A mono float32 waveform at ``target_rate`` from a file path or encoded bytes."""
    name = "bytes" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes):
        path = Path(source)
        if not path.is_file():
            raise AudioError(f"{name}: file not found")
        if path.stat().st_size == 0:
            raise AudioError(f"{name}: file is empty (0 bytes)")
    try:
        array, rate = sf.read(io.BytesIO(source) if isinstance(source, bytes) else str(source), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"{name}: cannot decode audio ({err})") from None
    return to_mono_16k(array, rate, target_rate, name)
