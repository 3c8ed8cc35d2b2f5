"""Inference and generation with a model trained by train.py on real EmoDB audio (real whisper-tiny.en)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr

from tests.conftest import EMBEDDED_EMODB, ROOT, shared_corpus

LABELS = {"angry", "happy", "neutral", "sad"}


@pytest.fixture(scope="module")
def classifier(trained):
    import modeling_mirgan  # noqa: F401  registers mirgan with the Auto classes
    from transformers import pipeline

    return pipeline("audio-classification", model=str(trained[2] / "model"))


def scores(result) -> dict:
    return {s["label"]: s["score"] for s in result}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """One real EmoDB clip written at other rates, channel counts and formats."""
    folder = tmp_path_factory.mktemp("clips")
    source = next((EMBEDDED_EMODB / "angry").glob("*.wav"))
    wave, rate = sf.read(source, dtype="float32")
    paths = {"original": source}
    for name, target, channels, fmt in (("44k_stereo.wav", 44100, 2, "WAV"), ("8k.flac", 8000, 1, "FLAC"),
                                         ("48k_stereo.ogg", 48000, 2, "OGG")):
        data = soxr.resample(wave, rate, target)
        data = np.stack([data, data], 1) if channels == 2 else data
        sf.write(folder / name, data, target, format=fmt)
        paths[name] = folder / name
    return wave, paths


@pytest.mark.slow
def test_pipeline_on_files_of_any_rate_and_channels(classifier, clips):
    wave, paths = clips
    reference = scores(classifier(str(paths["original"])))
    assert set(reference) == LABELS and abs(sum(reference.values()) - 1) < 1e-4
    # 8 kHz removes everything above 4 kHz, a real change of the signal (how far the scores move with it
    # depends on the trained heads: 0.16-0.26 measured): its reference is the original band-limited the
    # same way, so the comparison checks the file's decoding and resampling, not the model's robustness
    rate = sf.info(paths["original"]).samplerate
    band_limited = soxr.resample(soxr.resample(wave, rate, 8000), 8000, rate)
    references = {"8k.flac": scores(classifier({"raw": band_limited, "sampling_rate": rate}))}
    for name, path in paths.items():
        converted = scores(classifier(str(path)))
        assert set(converted) == LABELS
        # resampling and codecs change the signal slightly; the decision must not move much
        assert max(reference, key=reference.get) == max(converted, key=converted.get), (name, converted, reference)
        expected = references.get(name, reference)
        assert max(abs(converted[k] - expected[k]) for k in LABELS) < 0.15, (name, converted, expected)


@pytest.mark.slow
def test_pipeline_batch_equals_one_by_one_and_takes_arrays(classifier, clips):
    wave, paths = clips
    files = [str(p) for p in paths.values()] + [str(p) for p in sorted((EMBEDDED_EMODB / "sad").glob("*.wav"))[:3]]
    one_by_one = [scores(classifier(f)) for f in files]
    batched = [scores(r) for r in classifier(files, batch_size=4)]
    for a, b in zip(one_by_one, batched):
        assert max(abs(a[k] - b[k]) for k in LABELS) < 1e-5
    as_array = scores(classifier({"raw": wave, "sampling_rate": 16000}))
    assert max(abs(as_array[k] - one_by_one[0][k]) for k in LABELS) < 1e-5


@pytest.mark.slow
def test_pipeline_on_a_real_ravdess_clip(classifier):
    ravdess = shared_corpus("ravdess")
    clip = next((ravdess / "Actor_01").glob("*.flac"))
    assert set(scores(classifier(str(clip)))) == LABELS


@pytest.mark.slow
def test_ten_minute_recording_runs_in_bounded_memory(trained, tmp_path):
    """Concatenated real clips, 10 minutes: 20 windows of 30 s, peak memory of the predict process bounded."""
    waves = [sf.read(p, dtype="float32")[0] for p in sorted(EMBEDDED_EMODB.glob("*/*.wav"))]
    long = np.concatenate(waves * 2)[: 600 * 16000]
    assert len(long) == 600 * 16000
    sf.write(tmp_path / "ten_minutes.flac", long, 16000)
    script = ("import resource, runpy, sys; sys.argv = sys.argv[1:]; "
              "runpy.run_module('modeling_mirgan.predict', run_name='__main__'); "
              "print('PEAK_RSS_MB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = tmp_path / "preds.json"
    proc = subprocess.run([sys.executable, "-c", script, "predict", "--model", str(trained[2] / "model"),
                           str(tmp_path / "ten_minutes.flac"), "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    [result] = json.loads(out.read_text())
    assert len(result["windows"]) == 20 and result["windows"][-1]["end_s"] == 600.0
    peak = float(proc.stdout.split("PEAK_RSS_MB")[-1])
    # measured 1.2 GB (the model + 10 min of audio); an encoder run over the whole recording at once
    # would need several GB for attention alone
    assert peak < 2500, peak


@pytest.mark.slow
def test_generated_dataset(trained, tmp_path):
    from datasets import load_from_disk

    model_dir = str(trained[2] / "model")

    def generate(seed: int, folder: str):
        subprocess.run([sys.executable, "-m", "modeling_mirgan.generate", "--model", model_dir, "--num_per_class", "50",
                        "--seed", str(seed), "--output", str(tmp_path / folder)], cwd=ROOT, check=True, capture_output=True)
        return load_from_disk(str(tmp_path / folder))

    first, again, other = generate(0, "a"), generate(0, "b"), generate(1, "c")
    assert first.features["label"].names == ["angry", "happy", "neutral", "sad"]
    assert np.bincount(first["label"]).tolist() == [50, 50, 50, 50]
    features = np.array(first["features"])
    assert features.shape == (200, 256) and np.isfinite(features).all()
    assert np.array_equal(features, np.array(again["features"]))  # same seed, same data
    assert not np.array_equal(features, np.array(other["features"]))
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert {"mi_bits", "q_accuracy", "diversity_ratio", "frechet_distance"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())
    assert "mirgan" in (tmp_path / "a" / "README.md").read_text()
