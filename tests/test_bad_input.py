"""Bad audio gets a clear error naming the file and the problem; odd but valid audio is converted."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from processing import MIN_SAMPLES, AudioError, MirganProcessor, MirganWhisperFeatureExtractor, load_audio, to_mono_16k
from tests.conftest import EMBEDDED_EMODB


@pytest.fixture(scope="module")
def processor(tmp_path_factory):
    from transformers import BertTokenizerFast

    vocab = tmp_path_factory.mktemp("tok") / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello"]))
    return MirganProcessor(MirganWhisperFeatureExtractor(), BertTokenizerFast(vocab_file=str(vocab)))


@pytest.fixture(scope="module")
def speech():
    clip = next((EMBEDDED_EMODB / "angry").glob("*.wav"))
    wave, rate = sf.read(clip, dtype="float32")
    assert rate == 16000
    return wave


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match=r"nope\.wav: file not found"):
        load_audio(tmp_path / "nope.wav")


def test_zero_length_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: file is empty"):
        load_audio(tmp_path / "empty.wav")


def test_corrupt_file(tmp_path):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    with pytest.raises(AudioError, match=r"corrupt\.wav: cannot decode audio"):
        load_audio(tmp_path / "corrupt.wav")


def test_header_only_wav_is_empty_audio(tmp_path):
    sf.write(tmp_path / "noframes.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match=r"noframes\.wav: audio is empty"):
        load_audio(tmp_path / "noframes.wav")


def test_nan_and_inf_samples(tmp_path):
    wave = np.zeros(16000, np.float32)
    wave[100], wave[200] = np.nan, np.inf
    sf.write(tmp_path / "nan.wav", wave, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: audio contains 2 NaN/inf samples"):
        load_audio(tmp_path / "nan.wav")


def test_too_short_clip(processor, tmp_path):
    sf.write(tmp_path / "short.wav", np.zeros(200, np.float32), 16000)
    with pytest.raises(AudioError, match=rf"short\.wav: clip has 200 samples .* minimum of {MIN_SAMPLES}"):
        processor.prepare_audio(tmp_path / "short.wav")


def test_silence_is_valid_and_finite(processor):
    features = processor(audio=np.zeros(16000, np.float32), sampling_rate=16000)["input_features"]
    assert np.isfinite(features.numpy()).all()


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_sample_formats_decode_to_the_same_signal(tmp_path, speech, subtype):
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, speech, 16000, subtype=subtype)
    decoded = load_audio(path)
    tolerance = 0.02 if subtype == "PCM_U8" else 1e-3
    assert decoded.shape == speech.shape and np.abs(decoded - speech).max() < tolerance


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_rates_and_stereo_are_converted(tmp_path, speech, rate):
    import soxr

    resampled = soxr.resample(speech, 16000, rate)
    stereo = np.stack([resampled, resampled * 0.5], axis=1)
    sf.write(tmp_path / "stereo.wav", stereo, rate)
    decoded = load_audio(tmp_path / "stereo.wav")
    assert abs(len(decoded) - len(speech)) <= 2
    n = min(len(decoded), len(speech))
    expected = speech[:n] * 0.75  # the mean of the two channels
    if rate >= 16000:  # resampling back and forth keeps the speech band
        assert np.corrcoef(decoded[:n], expected)[0, 1] > 0.99
    else:  # 8 kHz loses everything above 4 kHz
        assert np.corrcoef(decoded[:n], expected)[0, 1] > 0.8


@pytest.mark.parametrize("fmt,ext", [("FLAC", "flac"), ("OGG", "ogg"), ("MP3", "mp3")])
def test_compressed_formats(tmp_path, speech, fmt, ext):
    path = tmp_path / f"clip.{ext}"
    try:
        sf.write(path, speech, 16000, format=fmt)
    except (sf.LibsndfileError, TypeError, ValueError) as err:
        pytest.fail(f"libsndfile cannot write {fmt}: {err}")
    decoded = load_audio(path)
    n = min(len(decoded), len(speech))
    assert abs(len(decoded) - len(speech)) < 2000 and np.isfinite(decoded).all()
    if fmt == "FLAC":
        assert np.abs(decoded[:n] - speech[:n]).max() < 1e-4


def test_channel_first_arrays_are_downmixed():
    wave = np.random.default_rng(0).normal(0, 0.1, (2, 16000)).astype(np.float32)
    assert to_mono_16k(wave, 16000, 16000).shape == (16000,)


def test_integer_arrays_are_scaled():
    wave = (np.sin(np.linspace(0, 100, 16000)) * 32767).astype(np.int16)
    out = to_mono_16k(wave, 16000, 16000)
    assert out.dtype == np.float32 and 0.99 < np.abs(out).max() <= 1.0


def test_array_without_sampling_rate(processor):
    with pytest.raises(AudioError, match="needs its sampling_rate"):
        processor.prepare_audio(np.zeros(16000, np.float32))


def test_empty_transcript(processor):
    with pytest.raises(ValueError, match=r"text\[1\]: transcript is empty"):
        processor(text=["hello", "  "])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_never_crash(processor, data):
    try:
        wave = processor.prepare_audio(data)
    except AudioError as err:
        assert str(err).startswith("bytes: ")
    else:
        assert wave.dtype == np.float32 and np.isfinite(wave).all()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    arrays(np.float64, st.tuples(st.integers(0, 3000), st.integers(1, 3)),
           elements=st.floats(allow_nan=True, allow_infinity=True, width=32)),
    st.sampled_from([0, -1, 8000, 16000, 44100]),
)
def test_random_arrays_never_crash(processor, array, rate):
    try:
        inputs = processor(audio=array, sampling_rate=rate)
    except AudioError as err:
        assert str(err).startswith("array[0]: ")
    else:
        assert np.isfinite(inputs["input_features"].numpy()).all()
