"""bench/speed.py runs end to end in its smoke mode and writes the keys issue 8 asks for; its FLOP
count agrees with torch's own counter."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import ROOT

EXTRACTION_KEYS = {"clips_per_s", "naive_clips_per_s", "speedup", "cosine_vs_naive", "gflops_per_s",
                   "peak_gflops_per_s", "fraction_of_peak"}
TOP_KEYS = {"extraction", "generation_features_per_s", "gan_steps_per_s", "stage3_s", "main_job_cold_s",
            "main_job_warm_s", "main_job_peak_rss_mb", "peak_rss_mb", "scaling", "distributed", "machine", "date", "command"}


def load_speed():
    spec = importlib.util.spec_from_file_location("bench_speed", ROOT / "bench" / "speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_writes_every_key(tmp_path):
    env = {**os.environ, "MIRGAN_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}  # tiny tensors: one thread, so a busy machine does not stall OpenMP
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "speed.py"), "--smoke", "--skip_distributed",
                           "--scaling_factors", "1", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads((out / "speed.json").read_text())
    assert TOP_KEYS <= result.keys()
    (encoder, extraction), = result["extraction"].items()
    assert EXTRACTION_KEYS <= extraction.keys()
    assert all(np.isfinite(extraction[k]) and extraction[k] > 0 for k in EXTRACTION_KEYS)
    assert 0.9 < extraction["cosine_vs_naive"] <= 1.0 + 1e-6  # the same encoder on unpadded input, real frames
    assert result["generation_features_per_s"] > 0 and result["gan_steps_per_s"] > 0 and result["stage3_s"] > 0
    assert result["main_job_cold_s"] is None and result["distributed"] is None  # skipped in smoke mode
    (size,) = result["scaling"]
    assert size["n_clips"] == 6 and size["peak_rss_mb"] > 0 and size["seconds"] > size["extract_s"] > 0
    assert {"cpu_model", "cores", "torch", "threads"} <= result["machine"].keys()
    assert "--smoke" in result["command"]
    assert (out / "speed.md").read_text().startswith("# Speed benchmark")
    assert (out / "scaling.png").stat().st_size > 0


def test_flop_count_matches_torch_counter():
    from torch.utils.flop_counter import FlopCounterMode

    speed = load_speed()
    audio, _ = speed.tiny_configs(100)
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from modeling_mirgan.encoders import pooled_audio_layers

    audio._attn_implementation = "eager"  # its attention matmuls are visible to the counter (CPU SDPA is not)
    encoder = WhisperEncoder(audio).eval()
    for frames in (101, 400, 3000, 3500):  # odd length, short, one full window, two windows
        features = torch.randn(1, frames, audio.num_mel_bins)  # time-major, as MirganWhisperFeatureExtractor gives
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            pooled_audio_layers(encoder, audio, features, attention_mask=torch.ones(1, frames, dtype=torch.bool))
        assert counter.get_total_flops() == pytest.approx(speed.whisper_flops(audio, frames), rel=1e-6), frames


@pytest.mark.slow
def test_smoke_two_process_extraction_merges_the_same_cache(tmp_path):
    env = {**os.environ, "MIRGAN_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "speed.py"), "--smoke", "--skip_scaling", "--skip_stages",
                           "--lever_clips", "0", "--master_port", "29577", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    dist = json.loads((out / "speed.json").read_text())["distributed"]
    assert dist["torchrun_2"]["world_size"] == 2 and dist["single"]["world_size"] == 1
    assert dist["check"]["equal"], dist["check"]  # one merged cache file, same rows in the same order, same values


def test_stacked_stage1_candidates_train_what_select_stage1_trains():
    """bench/stage1_stacking.py times the stacked candidates against select_stage1's sequential ones;
    without dropout both are the same optimisation, so each candidate reaches the same validation UA
    at the same epoch (else the timing compares different work)."""
    from modeling_mirgan import stages
    from tests.test_stages import corpus_features, quick_args
    from tests.test_modeling import tiny_model

    spec = importlib.util.spec_from_file_location("bench_stacking", ROOT / "bench" / "stage1_stacking.py")
    stacking = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stacking)
    model = tiny_model(classifier_dropout=0.0)
    data = corpus_features(model, n=64)
    rows, val = torch.arange(48), torch.arange(48, 64)
    args = quick_args(stage1_epochs=40, eval_every=5, patience=2, weight_decays=[1e-4, 1e-2, 1.0])
    sequential = [stages.train_stage1(model, data, rows, args, wd, args.stage1_epochs, 0, val) for wd in args.weight_decays]
    best_ua, best_epoch = stacking.stacked_candidates(model, data, rows, val, args, 0)
    assert best_epoch == [r.epochs for r in sequential]
    assert best_ua == pytest.approx([r.validation_ua for r in sequential])
