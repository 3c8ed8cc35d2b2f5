"""The speed benchmark (issue 8): extraction against the naive Whisper path, fraction of the machine's
peak, the levers tried, stages 2-3, the main job end to end, scaling and two-process extraction.

    python bench/speed.py                                   # everything (about 30 minutes on 2 quiet cores)
    python bench/speed.py --skip_main_job                   # everything but the two train.py runs
    python bench/speed.py --corpora data/emodb4 ../shared/data/ravdess --max_clips 339
    python bench/speed.py --smoke --out /tmp/speed         # seconds: tiny random encoder, 6 clips

Every comparison is measured side by side in one run, interleaved in rounds, because the machine
may be shared: ratios (speedup, fraction of peak) are the figures to trust, absolute rates move with
the load. Writes ``bench/results/speed.json``, ``speed.md`` and ``scaling.png`` (``--out`` elsewhere).

What is measured
- extraction: ``extract_encoder_features`` (the cached ``datasets.map`` path of ``train.py``: decode,
  unpadded log-mel, length-bucketed batches, masked encoder, Arrow cache) against the naive path a
  user writes today: ``WhisperFeatureExtractor`` (30 s padding) + the Whisper encoder, one clip at a
  time, mean-pooled hidden states. The naive path runs on a subset and is extrapolated per clip.
  Cosines compare like with like: the same layer (last, or the mean of all layers) and the same time
  pooling (the clip's real frames; ``*_all_frames`` pools the naive path's 1500 frames, as users do).
- fraction of peak: encoder FLOPs at the clips' real lengths (conv stem, Q/K/V/out projections,
  attention scores and values 4*T^2*d, the two MLP matmuls; 2 FLOPs per multiply-add) over the
  time taken, divided by the best ``torch.mm`` fp32 rate measured in this run at the same threads.
- levers on a subset, encoder only, interleaved rounds: batch size, length bucketing, inference_mode,
  threads, SDPA vs eager attention, torch.compile, bf16 autocast; in fresh processes: OMP_WAIT_POLICY.
- stages 2-3: ``stages.train_stage2`` / ``train_stage3`` with default arguments on random features of the
  right shape; the generator's features/s on a big batch; stage 2's ms per step by OpenMP setting.
- end to end: ``python train.py`` twice in a fresh MIRGAN_CACHE (cold, then warm), wall time and
  peak RSS; scaling: 1x/4x/16x the clips, each size in a fresh process; two processes: torchrun
  with the feature cache sharded by rank, the merged cache compared with the single-process one.

On a busy machine OpenMP's default (spinning) wait makes two threads far slower than one on small
ops (stage 2, log-mel, whisper-tiny): compare the omp_* rows, and run ``--threads 1`` for figures
that do not depend on what else runs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
LABELS = ["angry", "happy", "neutral", "sad"]
SMOKE_ENCODER = "tiny-random-whisper"
RSS_WRAPPER = (
    "import json,resource,subprocess,sys\n"
    "rc=subprocess.call(sys.argv[2:])\n"
    "r=resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "open(sys.argv[1],'w').write(json.dumps({'rc':rc,'maxrss_kb':r.ru_maxrss}))\n"
    "sys.exit(rc)\n"
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(ROOT))


def log(*parts) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


# --------------------------------------------------------------------------------------------
# Machine, peak, FLOPs
# --------------------------------------------------------------------------------------------


def machine_info() -> dict:
    import torch

    model, flags = platform.processor(), set()
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_flags": {f: f in flags for f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512f", "avx2")},
        "omp_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS") if k in os.environ},
        "loadavg_at_start": load,
        "python": platform.python_version(),
    }


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak(sizes=(2048,), reps: int = 8, dtype_name: str = "float32", device: str = "cpu") -> float:
    """Best ``torch.mm`` rate (GFLOP/s) over square sizes and repetitions at the current thread count."""
    import torch

    dtype = getattr(torch, dtype_name)
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
        torch.mm(a, b)
        sync(device)
        for _ in range(reps):
            t = time.perf_counter()
            torch.mm(a, b)
            sync(device)
            best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


class Peak:
    """The machine's fp32 matmul peak, re-measured during the run; the best value is the reference."""

    def __init__(self, sizes, device: str = "cpu"):
        self.sizes, self.device, self.samples = sizes, device, []

    def measure(self) -> float:
        value = matmul_peak(self.sizes, device=self.device)
        self.samples.append(round(value, 1))
        return value

    @property
    def best(self) -> float:
        return max(self.samples) if self.samples else float("nan")


def whisper_window_flops(cfg, mel_frames: int) -> float:
    """FLOPs of one Whisper encoder forward over ``mel_frames`` log-mel frames (one window)."""
    d, ffn, mels = cfg.d_model, cfg.encoder_ffn_dim, cfg.num_mel_bins
    t = (mel_frames + 1) // 2  # conv2 has stride 2
    conv = 2 * mel_frames * mels * 3 * d + 2 * t * d * 3 * d
    per_layer = 8 * t * d * d + 4 * t * t * d + 4 * t * d * ffn
    return conv + cfg.encoder_layers * per_layer


def whisper_flops(cfg, mel_frames: int) -> float:
    """FLOPs of our encode path for one clip: consecutive windows of 2 * max_source_positions frames."""
    window = 2 * cfg.max_source_positions
    return sum(whisper_window_flops(cfg, min(window, mel_frames - s)) for s in range(0, mel_frames, window))


def mel_frames_of(n_samples: int, hop: int = 160) -> int:
    return n_samples // hop  # torch.stft(center=True) gives n // hop + 1 frames; the last is dropped


def samples_of(paths: list[str], rate: int = 16000) -> list[int]:
    import soundfile as sf

    out = []
    for p in paths:
        info = sf.info(p)
        out.append(int(round(info.frames * rate / info.samplerate)))
    return out


# --------------------------------------------------------------------------------------------
# Models and data
# --------------------------------------------------------------------------------------------


def tiny_configs(vocab_size: int):
    from transformers import BertConfig, WhisperConfig

    audio = WhisperConfig(d_model=64, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=128,
                          decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64, num_mel_bins=80,
                          max_source_positions=1500, vocab_size=100)
    text = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=vocab_size)
    return audio, text


def build(encoder: str):
    """(model, processor, naive feature extractor) for a real encoder name or the tiny random one."""
    import torch
    from transformers import AutoTokenizer, WhisperFeatureExtractor

    from modeling_mirgan import MirganConfig, MirganForEmotionClassification, from_encoders
    from modeling_mirgan.encoders import resolve_pretrained
    from modeling_mirgan.processors import build_processor
    from processing import MirganProcessor, MirganWhisperFeatureExtractor

    if encoder != SMOKE_ENCODER:
        model = from_encoders(LABELS, encoder, TEXT_ENCODER).eval()
        processor = build_processor(encoder, TEXT_ENCODER)
        return model, processor, WhisperFeatureExtractor.from_pretrained(resolve_pretrained(encoder))
    tokenizer = AutoTokenizer.from_pretrained(resolve_pretrained(TEXT_ENCODER))
    audio, text = tiny_configs(tokenizer.vocab_size)
    torch.manual_seed(0)
    config = MirganConfig(audio_encoder=audio.to_dict(), text_encoder=text.to_dict(), audio_encoder_name=encoder,
                          text_encoder_name=TEXT_ENCODER, audio_encoder_hash="random-0", text_encoder_hash="random-0",
                          id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)})
    model = MirganForEmotionClassification(config).eval()
    processor = MirganProcessor(MirganWhisperFeatureExtractor(), tokenizer)
    return model, processor, WhisperFeatureExtractor()


def load_rows(corpus: str, max_clips: int | None = None, repeat: int = 1):
    """The corpus rows (id, audio, text, label, speaker), the first ``max_clips``, repeated ``repeat`` times."""
    from datasets import Dataset

    from datasets_scripts import load_corpus

    data = load_corpus("audiofolder", corpus).dataset
    if max_clips:
        data = data.select(range(min(max_clips, len(data))))
    if repeat == 1:
        return data
    columns = {c: list(data[c]) * repeat for c in data.column_names}
    columns["id"] = [f"{k // len(data)}-{i}" for k, i in enumerate(columns["id"])]
    return Dataset.from_dict(columns)


# --------------------------------------------------------------------------------------------
# Extraction: ours vs naive
# --------------------------------------------------------------------------------------------


def naive_extract(paths, processor, naive_fe, encoder, device: str = "cpu") -> tuple[list, list]:
    """What a user writes today: one clip at a time, padded to 30 s, the encoder's hidden states pooled.

    Returns per clip the hidden states pooled over all 1500 frames and over the clip's real frames."""
    import torch

    pooled_all, pooled_real = [], []
    for path in paths:
        wave = processor.prepare_audio(path)
        inputs = naive_fe(wave, sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            out = encoder(inputs.input_features.to(device), output_hidden_states=True)
        states = torch.stack(out.hidden_states, 1)[0].float().cpu()  # [layers + 1, 1500, D]
        real = max(1, min(states.shape[1], math.ceil(mel_frames_of(min(len(wave), 480000)) / 2)))
        pooled_all.append(states.mean(1).numpy())
        pooled_real.append(states[:, :real].mean(1).numpy())
    return pooled_all, pooled_real


def cosines(ours, naive) -> dict:
    import numpy as np

    ours, naive = np.asarray(ours, np.float64), np.asarray(naive, np.float64)

    def cos(a, b):
        return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-30)

    out = {}
    for name, a, b in (("last", ours[:, -1], naive[:, -1]), ("layer_mean", ours.mean(1), naive.mean(1))):
        c = cos(a, b)
        out[name] = {"mean": float(c.mean()), "min": float(c.min())}
        if len(a) > 2:  # centred on the naive features' mean over clips: the part that tells clips apart
            center = b.mean(0)
            cc = cos(a - center, b - center)
            out[name]["centred_mean"] = float(cc.mean())
    return out


def bench_extraction(encoder: str, corpus: str, args, peak: Peak, workdir: Path) -> dict:
    import numpy as np
    import torch

    from datasets_scripts.features import extract_encoder_features

    log(f"extraction: {encoder} on {corpus}")
    model, processor, naive_fe = build(encoder)
    model.to(args.device)
    cfg = model.config.audio_encoder
    data = load_rows(corpus, args.max_clips)
    n = len(data)
    samples = np.array(samples_of(data["audio"]))
    audio_s = float(samples.sum() / 16000)
    rng = np.random.default_rng(0)
    perm = rng.permutation(n)
    naive_idx = perm[: min(args.naive_clips, n)]
    rounds = max(1, min(args.rounds, len(naive_idx)))
    our_shards = np.array_split(perm, rounds)
    naive_shards = np.array_split(naive_idx, rounds)
    ours_t, naive_t, warm_t = [], [], []
    our_features = np.zeros((n, cfg.encoder_layers + 1, cfg.d_model), np.float32)
    naive_all, naive_real = {}, {}
    peak.measure()
    for r in range(rounds):
        def run_ours():
            shard = np.sort(our_shards[r])
            cache = workdir / f"cache-{encoder.replace('/', '--')}-{Path(corpus).name}"
            t = time.perf_counter()
            out, hit = extract_encoder_features(data.select(shard), model, processor, cache, batch_size=args.batch_size, use_text=False)
            sync(args.device)
            ours_t.append(time.perf_counter() - t)
            assert not hit, "the benchmark's cache folder must start empty"
            our_features[shard] = np.asarray(out["audio_features"], np.float32)
            t = time.perf_counter()
            _, hit = extract_encoder_features(data.select(shard), model, processor, cache, batch_size=args.batch_size, use_text=False)
            warm_t.append(time.perf_counter() - t)
            assert hit

        def run_naive():
            shard = naive_shards[r]
            t = time.perf_counter()
            pa, pr = naive_extract([data[int(i)]["audio"] for i in shard], processor, naive_fe, model.audio_encoder, args.device)
            naive_t.append(time.perf_counter() - t)
            for i, a, b in zip(shard, pa, pr):
                naive_all[int(i)], naive_real[int(i)] = a, b

        for step in ((run_ours, run_naive) if r % 2 == 0 else (run_naive, run_ours)):
            step()
        log(f"  round {r + 1}/{rounds}: ours {len(our_shards[r])} clips {ours_t[-1]:.1f} s, "
            f"naive {len(naive_shards[r])} clips {naive_t[-1]:.1f} s")
    peak.measure()
    ours_cps = n / sum(ours_t)
    naive_cps = len(naive_idx) / sum(naive_t)
    round_speedups = [(len(o) / to) / (len(nv) / tn) for o, nv, to, tn in zip(our_shards, naive_shards, ours_t, naive_t)]
    useful = float(sum(whisper_flops(cfg, mel_frames_of(s)) for s in samples))
    executed = padded_flops(cfg, samples, args.batch_size)
    naive_flops_per_clip = whisper_window_flops(cfg, 2 * cfg.max_source_positions)
    gflops = useful / sum(ours_t) / 1e9
    naive_gflops = naive_flops_per_clip * naive_cps / 1e9
    ours_sel = our_features[naive_idx]
    cos_real = cosines(ours_sel, [naive_real[int(i)] for i in naive_idx])
    cos_all = cosines(ours_sel, [naive_all[int(i)] for i in naive_idx])
    result = {
        "corpus": Path(corpus).name,
        "n_clips": n,
        "audio_seconds": round(audio_s, 1),
        "batch_size": args.batch_size,
        "seconds": round(sum(ours_t), 2),
        "clips_per_s": ours_cps,
        "audio_s_per_s": audio_s / sum(ours_t),
        "warm_cache_clips_per_s": n / sum(warm_t),
        "naive_clips": len(naive_idx),
        "naive_seconds": round(sum(naive_t), 2),
        "naive_clips_per_s": naive_cps,
        "naive_audio_s_per_s": naive_cps * audio_s / n,
        "speedup": ours_cps / naive_cps,
        "speedup_per_round": [round(s, 2) for s in round_speedups],
        "cosine_vs_naive": cos_real["last"]["mean"],
        "cosine_vs_naive_detail": {"real_frames": cos_real, "all_frames": cos_all},
        "gflop_per_clip": useful / n / 1e9,
        "naive_gflop_per_clip": naive_flops_per_clip / 1e9,
        "padding_overhead": executed / useful - 1.0,
        "gflops_per_s": gflops,
        "naive_gflops_per_s": naive_gflops,
        "peak_gflops_per_s": peak.best,
        "fraction_of_peak": gflops / peak.best,
        "naive_fraction_of_peak": naive_gflops / peak.best,
    }
    if args.lever_clips and args.device == "cpu":
        result["levers"] = bench_levers(model, processor, data, args, peak, encoder)
    log(f"  {encoder}: ours {ours_cps:.2f} clips/s, naive {naive_cps:.3f} clips/s, speedup {result['speedup']:.1f}x, "
        f"cosine {result['cosine_vs_naive']:.4f}, {gflops:.1f} GFLOP/s = {result['fraction_of_peak']:.0%} of {peak.best:.0f}")
    del model
    return result


def padded_flops(cfg, samples, batch_size: int) -> float:
    """FLOPs executed by features.py's bucketing: map batches of 4 * batch_size in duration order,
    each cut into sorted batches padded to their longest clip."""
    import numpy as np

    order = np.argsort(samples, kind="stable")
    total = 0.0
    for start in range(0, len(order), batch_size * 4):
        chunk = np.sort(samples[order[start : start + batch_size * 4]])
        for s in range(0, len(chunk), batch_size):
            part = chunk[s : s + batch_size]
            total += len(part) * whisper_flops(cfg, mel_frames_of(int(part.max())))
    return total


# --------------------------------------------------------------------------------------------
# Levers: the encoder alone on pre-decoded batches, every configuration once per round
# --------------------------------------------------------------------------------------------


def bench_levers(model, processor, data, args, peak: Peak, encoder: str) -> dict:
    import numpy as np
    import torch

    from modeling_mirgan.encoders import pooled_audio_layers

    enc, cfg = model.audio_encoder, model.config.audio_encoder
    k = min(args.lever_clips, len(data))
    idx = np.random.default_rng(1).permutation(len(data))[:k]
    paths = [data[int(i)]["audio"] for i in idx]
    t = time.perf_counter()
    waves = [processor.prepare_audio(p) for p in paths]
    decode_s = time.perf_counter() - t
    lengths = np.array([len(w) for w in waves])
    useful = sum(whisper_flops(cfg, mel_frames_of(int(s))) for s in lengths)

    def make_batches(bs, bucketed=True):
        order = np.argsort(lengths, kind="stable") if bucketed else np.arange(k)
        return [[int(i) for i in order[s : s + bs]] for s in range(0, k, bs)]

    def featurize(groups):
        return [processor.feature_extractor([waves[i] for i in g]) for g in groups]

    t = time.perf_counter()
    base_groups = make_batches(args.batch_size)
    base_inputs = featurize(base_groups)
    features_s = time.perf_counter() - t

    def encode(inputs, fn=None):
        fn = fn or (lambda f, m: pooled_audio_layers(enc, cfg, f, attention_mask=m))
        return [fn(b["input_features"], b["attention_mask"]) for b in inputs]

    def plain(bs, bucketed=True, mode="inference"):
        inputs = base_inputs if (bs == args.batch_size and bucketed) else featurize(make_batches(bs, bucketed))
        ctx = {"inference": torch.inference_mode, "no_grad": torch.no_grad, "grad": contextlib.nullcontext}[mode]

        def run():
            with ctx():
                return encode(inputs)
        return run

    def threads(n):
        def run():
            old = torch.get_num_threads()
            torch.set_num_threads(n)
            try:
                with torch.inference_mode():
                    return encode(base_inputs)
            finally:
                torch.set_num_threads(old)
        return run

    def attention(kind):
        def run():
            old = enc.config._attn_implementation
            enc.config._attn_implementation = kind
            try:
                with torch.inference_mode():
                    return encode(base_inputs)
            finally:
                enc.config._attn_implementation = old
        return run

    def bf16():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return [o.float() for o in encode(base_inputs)]

    configs = {"baseline": plain(args.batch_size)}
    for bs in args.lever_batch_sizes:
        if bs != args.batch_size:
            configs[f"batch_{bs}"] = plain(bs)
    configs[f"batch_{args.batch_size}_unbucketed"] = plain(args.batch_size, bucketed=False)
    configs["no_grad"] = plain(args.batch_size, mode="no_grad")
    configs["grad_enabled"] = plain(args.batch_size, mode="grad")
    if torch.get_num_threads() > 1:
        configs["threads_1"] = threads(1)
    elif (os.cpu_count() or 1) > 1:
        configs[f"threads_{os.cpu_count()}"] = threads(os.cpu_count())
    configs["eager_attention"] = attention("eager")
    configs["bf16_autocast"] = bf16
    notes = {}
    if args.compile:
        compiled = torch.compile(lambda f, m: pooled_audio_layers(enc, cfg, f, attention_mask=m), dynamic=True)
        t = time.perf_counter()
        try:
            with torch.inference_mode():
                encode(base_inputs, compiled)
            notes["compile_warmup_s"] = round(time.perf_counter() - t, 1)

            def run_compiled():
                with torch.inference_mode():
                    return encode(base_inputs, compiled)
            configs["torch_compile"] = run_compiled
        except Exception as err:  # noqa: BLE001 - report why compile does not work here
            notes["torch_compile_error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
    times = {name: [] for name in configs}
    outputs = {}
    for r in range(args.lever_rounds):
        names = list(configs) if r % 2 == 0 else list(configs)[::-1]
        for name in names:
            t = time.perf_counter()
            out = configs[name]()
            times[name].append(time.perf_counter() - t)
            if r == 0:
                outputs[name] = out
        peak.measure()
        log(f"  levers round {r + 1}/{args.lever_rounds}: " + ", ".join(f"{n} {v[-1]:.2f}s" for n, v in times.items()))
    # per clip features of each configuration, in the clips' order, against the baseline's
    def per_clip(name):
        groups = {"baseline": base_groups}.get(name)
        if name.startswith("batch_") and not name.endswith("unbucketed"):
            groups = make_batches(int(name.split("_")[1]))
        elif name.endswith("unbucketed"):
            groups = make_batches(args.batch_size, bucketed=False)
        groups = groups or base_groups
        feats = np.zeros((k, cfg.encoder_layers + 1, cfg.d_model), np.float32)
        for g, o in zip(groups, outputs[name]):
            feats[g] = o.detach().float().numpy()
        return feats

    base = per_clip("baseline")
    base_best = min(times["baseline"])
    results = {}
    for name, ts in times.items():
        feats = per_clip(name)
        diff = np.abs(feats - base).max() / (np.abs(base).max() + 1e-30)
        best = min(ts)
        results[name] = {
            "seconds_best": round(best, 3),
            "seconds_median": round(float(np.median(ts)), 3),
            "relative_time": round(best / base_best, 3),
            "gflops_per_s": useful / best / 1e9,
            "fraction_of_peak": useful / best / 1e9 / peak.best,
            "max_rel_diff_vs_baseline": float(diff),
            "cosine_vs_baseline_min": float(cosines(feats, base)["last"]["min"]),
        }
    # where one clip's time goes in our path (the rest of the e2e time is datasets.map + Arrow + text)
    encoder_s = base_best
    breakdown = {"decode_s_per_clip": decode_s / k, "log_mel_and_pad_s_per_clip": features_s / k,
                 "encoder_s_per_clip": encoder_s / k}
    if args.omp_policy_rounds:
        results.update(bench_omp_policy(encoder, data.select(idx.tolist()), args, useful, peak))
    return {"clips": k, "rounds": args.lever_rounds, "batch_size": args.batch_size, "configs": results,
            "breakdown": breakdown, **notes}


def bench_omp_policy(encoder: str, data, args, useful: float, peak: Peak) -> dict:
    """OMP_WAIT_POLICY is read when the OpenMP runtime starts: fresh processes, interleaved."""
    import numpy as np

    tmp = Path(tempfile.mkdtemp(prefix="speed-omp-"))
    paths = tmp / "paths.json"
    paths.write_text(json.dumps(list(data["audio"])))
    variants = {"omp_default": {}, "omp_wait_passive": {"OMP_WAIT_POLICY": "PASSIVE"}}
    times = {name: [] for name in variants}
    for r in range(args.omp_policy_rounds):
        for name, extra in (variants.items() if r % 2 == 0 else list(variants.items())[::-1]):
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            env.update(extra)
            out = tmp / f"{name}-{r}.json"
            cmd = [sys.executable, __file__, "--_encode_worker", "--encoder", encoder, "--_paths", str(paths),
                   "--batch_size", str(args.batch_size), "--_out", str(out)]
            subprocess.run(cmd, env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
            times[name].append(json.loads(out.read_text())["seconds_best"])
    shutil.rmtree(tmp, ignore_errors=True)
    return {name: {"seconds_best": round(min(ts), 3), "seconds_median": round(float(np.median(ts)), 3),
                   "relative_time": round(min(ts) / min(times["omp_default"]), 3),
                   "gflops_per_s": useful / min(ts) / 1e9, "fraction_of_peak": useful / min(ts) / 1e9 / peak.best,
                   "note": "fresh process, encoder only, best of 2 passes"}
            for name, ts in times.items()}


def encode_worker(args) -> None:
    import numpy as np
    import torch

    from modeling_mirgan.encoders import pooled_audio_layers

    model, processor, _ = build(args.encoder)
    waves = [processor.prepare_audio(p) for p in json.loads(Path(args._paths).read_text())]
    order = np.argsort([len(w) for w in waves], kind="stable")
    inputs = [processor.feature_extractor([waves[i] for i in order[s : s + args.batch_size]])
              for s in range(0, len(waves), args.batch_size)]
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        with torch.inference_mode():
            for b in inputs:
                pooled_audio_layers(model.audio_encoder, model.config.audio_encoder, b["input_features"], attention_mask=b["attention_mask"])
        best = min(best, time.perf_counter() - t)
    Path(args._out).write_text(json.dumps({"seconds_best": best, "threads": torch.get_num_threads()}))


# --------------------------------------------------------------------------------------------
# Stages 2-3 and generation
# --------------------------------------------------------------------------------------------


def random_rows(model, n_rows: int):
    """Random stage-1 features of the model's shape: (h, u, labels, groups)."""
    import torch

    d, k = model.config.projection_dim, model.config.num_labels
    g = torch.Generator().manual_seed(0)
    return (torch.randn(n_rows, d, generator=g), torch.randn(n_rows, d, generator=g), torch.arange(n_rows) % k,
            torch.arange(n_rows) % 10)


def bench_stages(n_rows: int, args, peak: Peak) -> dict:
    """``stages.train_stage2`` / ``model.sample_features`` / ``stages.train_stage3`` with default arguments
    on random features of the right shape, and the generator's throughput on a big batch.

    Stages 2-3 touch only the heads (generator, discriminator, classifier: sizes set by
    projection_dim, noise_dim and the classes), so the model around them has tiny random encoders."""
    import torch

    from modeling_mirgan import stages
    from modeling_mirgan.arguments import TrainArguments

    log(f"stages 2-3 on {n_rows} rows of random features")
    model, _, _ = build(SMOKE_ENCODER)
    targs = TrainArguments()
    if args.smoke:
        targs.gan_steps, targs.stage3_epochs = 20, 2
    real, text, labels, groups = random_rows(model, n_rows)
    init = stages.snapshot(model, stages.CLASSIFIER_PREFIXES)
    t = time.perf_counter()
    stages.train_stage2(model, real, labels, text, groups, targs, model.config.lambda_info, 1,
                        held_out_ce=stages.q_cross_entropy(model, real, labels))  # no held-out rows: the training level
    stage2_s = time.perf_counter() - t
    synth, synth_y = stages.synthetic_rows("mirgan", model, real, labels, text, 1.0, 2)
    t = time.perf_counter()
    stages.train_stage3(model, real, labels, synth, synth_y, targs, 1e-3, 3, init)
    stage3_s = time.perf_counter() - t
    gen = bench_generation(model, args, peak)
    threads = bench_stage2_threads(n_rows, args) if args.stage2_thread_rounds else {}
    return {"n_rows": n_rows, "gan_steps": targs.gan_steps, "gan_batch_size": targs.gan_batch_size,
            "stage2_s": stage2_s, "gan_steps_per_s": targs.gan_steps / stage2_s,
            "stage3_epochs": targs.stage3_epochs, "stage3_rows": n_rows + len(synth), "stage3_s": stage3_s, **gen,
            "stage2_thread_settings": threads}


STAGE2_VARIANTS = {"omp_default": ({}, None), "omp_wait_passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, None),
                   "threads_1": ({}, 1)}


def bench_stage2_threads(n_rows: int, args) -> dict:
    """Stage 2 is thousands of tiny ops: how OpenMP waits decides its speed on a busy machine.
    Fresh processes (the wait policy is read when OpenMP starts), interleaved rounds."""
    import numpy as np

    tmp = Path(tempfile.mkdtemp(prefix="speed-stage2-"))
    times = {name: [] for name in STAGE2_VARIANTS}
    for r in range(args.stage2_thread_rounds):
        items = list(STAGE2_VARIANTS.items())
        for name, (extra, threads) in (items if r % 2 == 0 else items[::-1]):
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            env.update(extra)
            out = tmp / f"{name}-{r}.json"
            cmd = [sys.executable, __file__, "--_stage2_worker", "--_factor", str(n_rows), "--_out", str(out)]
            if threads:
                cmd += ["--threads", str(threads)]
            if args.smoke:
                cmd.append("--smoke")
            subprocess.run(cmd, env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[name].append(json.loads(out.read_text())["ms_per_step"])
    shutil.rmtree(tmp, ignore_errors=True)
    base = min(times["omp_default"])
    return {name: {"ms_per_step_best": round(min(ts), 3), "ms_per_step_median": round(float(np.median(ts)), 3),
                   "relative_time": round(min(ts) / base, 3)} for name, ts in times.items()}


def stage2_worker(args) -> None:
    import torch

    from modeling_mirgan import stages
    from modeling_mirgan.arguments import TrainArguments

    if args.threads:
        torch.set_num_threads(args.threads)
    model, _, _ = build(SMOKE_ENCODER)
    targs = TrainArguments()
    targs.gan_steps = 20 if args.smoke else 100
    real, text, labels, groups = random_rows(model, args._factor)
    best = float("inf")
    for _ in range(2):  # the first pass includes one-time warm-up
        t = time.perf_counter()
        stages.train_stage2(model, real, labels, text, groups, targs, model.config.lambda_info, 1,
                        held_out_ce=stages.q_cross_entropy(model, real, labels))  # no held-out rows: the training level
        best = min(best, time.perf_counter() - t)
    Path(args._out).write_text(json.dumps({"ms_per_step": best / targs.gan_steps * 1e3, "threads": torch.get_num_threads()}))


def bench_generation(model, args, peak: Peak) -> dict:
    import torch

    n = args.generation_batch
    d, k = model.config.projection_dim, model.config.num_labels
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(n, model.config.noise_dim, generator=g)
    labels = torch.randint(0, k, (n,), generator=g)
    text = torch.randn(n, d, generator=g)
    in_dim = sum(m.in_features for m in model.generator.modules() if isinstance(m, torch.nn.Linear))
    flops_per_feature = sum(2 * m.in_features * m.out_features for m in model.generator.modules() if isinstance(m, torch.nn.Linear))
    model.eval()

    def fp32():
        with torch.inference_mode():
            model.generator(noise, labels, text)

    def bf16():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            model.generator(noise, labels, text)

    def sampled():  # the model's sampler, as stage 3 and generate_features call it
        model.sample_features(labels, text, seed=0)

    runs = {"fp32": fp32, "bf16_autocast": bf16, "sample_generator": sampled}
    best = {name: float("inf") for name in runs}
    fn_names = list(runs)
    for r in range(args.generation_reps):
        for name in (fn_names if r % 2 == 0 else fn_names[::-1]):
            t = time.perf_counter()
            runs[name]()
            best[name] = min(best[name], time.perf_counter() - t)
    rate = {name: n / s for name, s in best.items()}
    peak.measure()
    return {
        "generation_batch": n,
        "generator_in_features": in_dim,
        "generator_flops_per_feature": flops_per_feature,
        "generation_features_per_s": rate["fp32"],
        "generation_features_per_s_bf16": rate["bf16_autocast"],
        "sample_generator_features_per_s": rate["sample_generator"],
        "generation_gflops_per_s": rate["fp32"] * flops_per_feature / 1e9,
        "generation_fraction_of_peak": rate["fp32"] * flops_per_feature / 1e9 / peak.best,
        "generation_1M_needs_gflops_per_s": 1e6 * flops_per_feature / 1e9,
    }


# --------------------------------------------------------------------------------------------
# Subprocess runs: main job, scaling, distributed
# --------------------------------------------------------------------------------------------


def run_measured(cmd: list[str], env: dict, log_path: Path) -> dict:
    """Run ``cmd``; wall seconds and the peak RSS of its largest process (via getrusage in a wrapper)."""
    rss_file = Path(tempfile.mkstemp(prefix="speed-rss-", suffix=".json")[1])
    t = time.perf_counter()
    with open(log_path, "w") as out:
        rc = subprocess.call([sys.executable, "-c", RSS_WRAPPER, str(rss_file), *cmd], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t
    info = json.loads(rss_file.read_text())
    rss_file.unlink()
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({rc}); log: {log_path}\n" + log_path.read_text()[-3000:])
    return {"seconds": wall, "peak_rss_mb": info["maxrss_kb"] / 1024}


def seed_encoders(cache: Path) -> None:
    """Carry the converted Whisper folders into a fresh MIRGAN_CACHE (the conversion is timed on its own)."""
    from modeling_mirgan.encoders import cache_dir

    src = cache_dir() / "encoders"
    if src.is_dir():
        shutil.copytree(src, cache / "encoders", symlinks=True, dirs_exist_ok=True)


def bench_main_job(args, workdir: Path) -> dict:
    cache = workdir / "main-cache"
    out_dir = Path(args.main_output_dir)
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    if not args.main_cold_converts:
        seed_encoders(cache)
    env = {**os.environ, "MIRGAN_CACHE": str(cache), **dict(kv.split("=", 1) for kv in args.main_env)}
    cmd = [sys.executable, str(ROOT / "train.py"), "--output_dir", str(out_dir), *args.main_args]
    res = {}
    for name in ("cold", "warm"):
        shutil.rmtree(out_dir, ignore_errors=True)
        log(f"main job ({name} cache): {' '.join(cmd)}")
        run = run_measured(cmd, env, workdir / f"main-{name}.log")
        timing = json.loads((out_dir / "results.json").read_text()).get("timing", {})
        res[name] = {**run, "timing": {k: round(v, 2) for k, v in timing.items()}}
        log(f"  {name}: {run['seconds']:.1f} s, peak RSS {run['peak_rss_mb']:.0f} MB")
    return {
        "main_job_command": " ".join([*args.main_env, "python", "train.py", "--output_dir", str(out_dir), *args.main_args]),
        "main_job_cold_includes_whisper_conversion": bool(args.main_cold_converts),
        "main_job_cold_s": res["cold"]["seconds"],
        "main_job_warm_s": res["warm"]["seconds"],
        "main_job_peak_rss_mb": max(res["cold"]["peak_rss_mb"], res["warm"]["peak_rss_mb"]),
        # all stages of the main job (stage 1 + 2 + 3 + final model) over its cold encoder extraction
        "stages_over_extraction": sum(res["cold"]["timing"].get(k, 0.0) for k in ("stage1_s", "stage2_s", "stage3_s"))
        / res["cold"]["timing"]["extract_s"],
        "main_job_detail": res,
    }


def scaling_worker(args) -> None:
    """One scaling size in a fresh process: extraction (with text, as train.py), then one fit of stages 1-3."""
    import resource

    import torch

    from modeling_mirgan import stages, training
    from modeling_mirgan.arguments import TrainArguments

    data = load_rows(args.corpora[0], args.max_clips, args._factor)
    model, processor, _ = build(args.encoder)
    rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    labels = torch.tensor([LABELS.index(l) for l in data["label"]])
    texts = data["text"]
    text_ids = {t_: i for i, t_ in enumerate(sorted(set(texts)))}
    groups = torch.tensor([text_ids[t_] for t_ in texts])
    targs = TrainArguments(extraction_batch_size=args.batch_size, extraction_dtype="float32")
    if args.smoke:
        targs.stage1_epochs, targs.gan_steps, targs.stage3_epochs = 2, 20, 2
    timing = {"stage1_s": 0.0, "stage2_s": 0.0, "stage3_s": 0.0}
    _, features = training.encoder_features(data, model, processor, Path(args._cache), targs, True, labels, groups, timing)
    rss_extract = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = torch.arange(len(labels))
    fit = training.fit_stage1(model, features, rows, targs, 0, timing, weight_decay=1e-3, epochs=targs.stage1_epochs)
    fit.held_out_ce = stages.q_cross_entropy(model, fit.h_all, features.labels)  # no held-out rows: the training level
    training.fit_methods(model, features, fit, rows, ["mirgan"], {"mirgan": [1.0]}, targs, 0, timing)
    Path(args._out).write_text(json.dumps({
        "n_clips": len(data), **timing,
        "stages_s": timing["stage1_s"] + timing["stage2_s"] + timing["stage3_s"],
        "rss_after_model_mb": rss_model, "rss_after_extraction_mb": rss_extract,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def bench_scaling(args, workdir: Path) -> dict:
    import numpy as np

    encoder = args.scaling_encoder
    rows = []
    for factor in args.scaling_factors:
        cache = workdir / f"scaling-cache-{factor}"
        shutil.rmtree(cache, ignore_errors=True)
        out = workdir / f"scaling-{factor}.json"
        cmd = [sys.executable, __file__, "--_scaling_worker", "--encoder", encoder, "--corpora", args.corpora[0],
               "--batch_size", str(args.batch_size), "--_factor", str(factor), "--_cache", str(cache), "--_out", str(out)]
        if args.max_clips:
            cmd += ["--max_clips", str(args.max_clips)]
        if args.smoke:
            cmd.append("--smoke")
        log(f"scaling x{factor} ({encoder})")
        run = run_measured(cmd, dict(os.environ), workdir / f"scaling-{factor}.log")
        row = {"factor": factor, **json.loads(out.read_text()), "process_seconds": run["seconds"]}
        row["seconds"] = row["extract_s"] + row["stages_s"]
        rows.append(row)
        shutil.rmtree(cache, ignore_errors=True)
        log(f"  {row['n_clips']} clips: extract {row['extract_s']:.1f} s, stages {row['stages_s']:.1f} s, peak RSS {row['peak_rss_mb']:.0f} MB")
    n = np.array([r["n_clips"] for r in rows], float)
    fits = {}
    for key in ("extract_s", "stages_s", "stage1_s", "stage2_s", "stage3_s", "peak_rss_mb"):
        y = np.array([max(r[key], 1e-9) for r in rows])
        fits[key] = float(np.polyfit(np.log(n), np.log(y), 1)[0]) if len(rows) > 1 else None
    return {"encoder": encoder, "sizes": rows, "loglog_slope": fits,
            "note": "slope 1 = linear time, 0 = flat; stage 2 is a fixed number of GAN steps (flat by design)"}


SCALE_LAYERS, SCALE_DIM, SCALE_TEXT = 7, 512, 384  # whisper-base: embeddings + 6 layers, d_model 512; MiniLM


def scale_write_worker(args) -> None:
    """Write an encoder cache of ``_factor`` rows of whisper-base-sized features (real EmoDB features, tiled)."""
    import numpy as np
    from datasets import Array2D, Features, Sequence, Value
    from datasets.arrow_writer import ArrowWriter

    from modeling_mirgan import stages, training
    from modeling_mirgan.arguments import TrainArguments

    import torch

    data = load_rows(str(ROOT / "data" / "emodb4"), 64)
    model, processor, _ = build("openai/whisper-base")
    labels = torch.tensor([LABELS.index(l) for l in data["label"]])
    _, real = training.encoder_features(data, model, processor, Path(args._cache) / "source", TrainArguments(extraction_dtype="float32"),
                                        True, labels, torch.zeros(len(labels), dtype=torch.long), {})
    audio, text = real.audio.gather(np.arange(len(labels))).numpy(), real.text.numpy()
    features = Features({"audio_features": Array2D((SCALE_LAYERS, SCALE_DIM), "float32"),
                         "text_features": Sequence(Value("float32"), length=SCALE_TEXT), "label": Value("int64")})
    with ArrowWriter(features=features, path=args._out, writer_batch_size=1000) as writer:
        for start in range(0, args._factor, 1000):
            idx = np.arange(start, min(start + 1000, args._factor)) % len(audio)
            writer.write_batch({"audio_features": list(audio[idx]), "text_features": list(text[idx]), "label": labels.numpy()[idx].tolist()})
        writer.finalize()


def scale_stages_worker(args) -> None:
    """Stages 1-3 (one fit, mirgan) on the written cache, features streamed from its memory map."""
    import resource

    import numpy as np
    import torch
    from datasets import Dataset

    from modeling_mirgan import stages, training
    from modeling_mirgan.arguments import TrainArguments
    from modeling_mirgan.modeling_mirgan import MirganForEmotionClassification
    from modeling_mirgan.configuration_mirgan import MirganConfig
    from transformers import BertConfig, WhisperConfig

    cache = Dataset.from_file(args._cache)
    audio_cfg = WhisperConfig(d_model=SCALE_DIM, encoder_layers=SCALE_LAYERS - 1, encoder_attention_heads=8, decoder_layers=1,
                              encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=100)
    text_cfg = BertConfig(hidden_size=SCALE_TEXT, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64, vocab_size=100)
    config = MirganConfig(audio_encoder=audio_cfg.to_dict(), text_encoder=text_cfg.to_dict(),
                          id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)})
    model = MirganForEmotionClassification(config).eval()
    labels = torch.from_numpy(np.asarray(cache["label"]))
    text = torch.from_numpy(np.asarray(cache.with_format("numpy", columns=["text_features"])[:]["text_features"], np.float32))
    data = stages.CorpusFeatures(stages.AudioLayerStore.from_cache(cache), text, labels, torch.arange(len(labels)) % 1000)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    targs = TrainArguments(stage1_epochs=args.scale_epochs, stage3_epochs=args.scale_epochs)
    timing = {"stage1_s": 0.0, "stage2_s": 0.0, "stage3_s": 0.0}
    rows = torch.arange(len(labels))
    t = time.perf_counter()
    fit = training.fit_stage1(model, data, rows, targs, 0, timing, weight_decay=1e-3, epochs=targs.stage1_epochs)
    fit.held_out_ce = stages.q_cross_entropy(model, fit.h_all, data.labels)  # no held-out rows: the training level
    training.fit_methods(model, data, fit, rows, ["mirgan"], {"mirgan": [1.0]}, targs, 0, timing)
    Path(args._out).write_text(json.dumps({
        "n_rows": len(labels), "seconds": time.perf_counter() - t, **timing, "stage1_epochs": targs.stage1_epochs,
        "gan_steps": targs.gan_steps, "rss_after_loading_mb": rss_before,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cache_gb": Path(args._cache).stat().st_size / 1e9}))


def bench_scale(args, workdir: Path) -> dict:
    """The stages at MSP-Podcast size: time and peak RSS at each of ``--scale_rows``; log-log slope of time."""
    import numpy as np

    rows = []
    for n in args.scale_rows:
        path = workdir / f"scale-{n}.arrow"
        log(f"scale: writing {n} rows of whisper-base-sized features")
        subprocess.run([sys.executable, __file__, "--_scale_write_worker", "--_factor", str(n), "--_cache", str(workdir),
                        "--_out", str(path)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = workdir / f"scale-{n}.json"
        run = run_measured([sys.executable, __file__, "--_scale_stages_worker", "--_cache", str(path), "--_out", str(out),
                            "--scale_epochs", str(args.scale_epochs)], dict(os.environ), workdir / f"scale-{n}.log")
        row = {**json.loads(out.read_text()), "process_peak_rss_mb": run["peak_rss_mb"]}
        rows.append(row)
        path.unlink()
        log(f"  {n} rows: stages {row['seconds']:.1f} s (stage 1 {row['stage1_s']:.1f}, 2 {row['stage2_s']:.1f}, "
            f"3 {row['stage3_s']:.1f}), peak RSS {row['peak_rss_mb']:.0f} MB")
    n = np.array([r["n_rows"] for r in rows], float)
    slope = {k: float(np.polyfit(np.log(n), np.log([max(r[k], 1e-9) for r in rows]), 1)[0]) if len(rows) > 1 else None
             for k in ("seconds", "stage1_s", "stage2_s", "stage3_s", "peak_rss_mb")}
    large = 33 * 1280 * 4  # whisper-large-v3: 32 layers + embeddings, d_model 1280, float32
    return {"sizes": rows, "loglog_slope": slope, "features_per_row_bytes": SCALE_LAYERS * SCALE_DIM * 4,
            "whisper_large_v3_per_row_bytes": large, "whisper_large_v3_160k_cache_gb": 160_000 * large / 1e9,
            "note": "stage 1 streams batches from the memory-mapped Arrow cache and releases its pages after every batch, "
                    "so peak RSS follows the batch size, not the corpus; the GAN runs a fixed number of steps"}


def dist_worker(args) -> None:
    """Extraction of the corpus with the feature cache; under torchrun each rank encodes its shard."""
    import torch
    from accelerate import Accelerator

    from datasets_scripts.features import extract_encoder_features

    accelerator = Accelerator(cpu=True)
    data = load_rows(args.corpora[0], args.max_clips)
    model, processor, _ = build(args.encoder)
    accelerator.wait_for_everyone()
    t = time.perf_counter()
    features, hit = extract_encoder_features(data, model, processor, Path(args._cache), batch_size=args.batch_size, use_text=True)
    accelerator.wait_for_everyone()
    seconds = time.perf_counter() - t
    if accelerator.is_main_process:
        Path(args._out).write_text(json.dumps({"seconds": seconds, "hit": hit, "world_size": accelerator.num_processes,
                                               "threads_per_process": torch.get_num_threads(), "n_clips": len(features)}))


def bench_distributed(args, workdir: Path) -> dict:
    import numpy as np
    from datasets import Dataset

    encoder = args.dist_encoder
    res = {}
    for name in ("single", "torchrun_2"):
        cache = workdir / f"dist-cache-{name}"
        shutil.rmtree(cache, ignore_errors=True)
        out = workdir / f"dist-{name}.json"
        worker = [__file__, "--_dist_worker", "--encoder", encoder, "--corpora", args.corpora[0], "--batch_size",
                  str(args.batch_size), "--_cache", str(cache), "--_out", str(out)]
        if args.max_clips:
            worker += ["--max_clips", str(args.max_clips)]
        if args.smoke:
            worker.append("--smoke")
        env = dict(os.environ)
        if name == "single":
            cmd = [sys.executable, *worker]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(args.master_port), *worker]
            env["OMP_NUM_THREADS"] = "1"  # two processes on two cores
        log(f"distributed: {name} ({encoder})")
        run = run_measured(cmd, env, workdir / f"dist-{name}.log")
        info = json.loads(out.read_text())
        files = sorted(cache.glob("encoder-*.arrow"))
        res[name] = {**info, "process_seconds": run["seconds"], "peak_rss_mb_per_process": run["peak_rss_mb"],
                     "cache_files": [f.name for f in files],
                     "leftover_files": sorted(p.name for p in cache.iterdir() if ".shard" in p.name or p.name.startswith("."))}
        log(f"  {name}: extraction {info['seconds']:.1f} s, process {run['seconds']:.1f} s")
    a = Dataset.from_file(str(workdir / "dist-cache-single" / res["single"]["cache_files"][0]))
    b = Dataset.from_file(str(workdir / "dist-cache-torchrun_2" / res["torchrun_2"]["cache_files"][0]))
    fa, fb = (np.asarray(d["audio_features"], np.float32) for d in (a, b))
    ta, tb = (np.asarray(d["text_features"], np.float32) for d in (a, b))
    check = {
        "same_cache_file_name": res["single"]["cache_files"] == res["torchrun_2"]["cache_files"],
        "rows_single": len(a), "rows_merged": len(b),
        "row_order_equal": a["_row"] == b["_row"],
        "audio_features_max_abs_diff": float(np.abs(fa - fb).max()),
        "audio_features_max_rel_diff": float(np.abs(fa - fb).max() / np.abs(fa).max()),
        "text_features_max_abs_diff": float(np.abs(ta - tb).max()),
        "bit_identical": bool(np.array_equal(fa, fb) and np.array_equal(ta, tb)),
    }
    check["equal"] = bool(check["same_cache_file_name"] and check["rows_single"] == check["rows_merged"]
                          and check["row_order_equal"] and check["audio_features_max_rel_diff"] < 1e-4
                          and not res["torchrun_2"]["leftover_files"])
    for name in res:
        shutil.rmtree(workdir / f"dist-cache-{name}", ignore_errors=True)
    return {"encoder": encoder, **res, "speedup": res["single"]["seconds"] / res["torchrun_2"]["seconds"], "check": check}


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def fmt(x, spec=".2f"):
    return "—" if x is None else (format(x, spec) if isinstance(x, (int, float)) else str(x))


def write_markdown(result: dict, path: Path) -> None:
    m = result["machine"]
    lines = [f"# Speed benchmark ({result['date']})", "",
             f"`{result['command']}`", "",
             f"Machine: {m['cpu_model']}, {m['cores']} cores, torch {m['torch']}, {m['threads']} threads, "
             f"bf16 flags {', '.join(k for k, v in m['bf16_flags'].items() if v) or 'none'}; "
             f"load average at start {fmt(m['loadavg_at_start'], '')}. Peak fp32 matmul (best `torch.mm`): "
             f"{fmt(result.get('peak_gflops_per_s'), '.0f')} GFLOP/s (samples {result.get('peak_samples')}).", ""]
    if result["extraction_by_corpus"]:
        lines += [
             "## Extraction: ours (`extract_encoder_features`, cached `datasets.map`) vs naive (30 s padding, one clip at a time)", "",
             "| encoder | corpus | clips | ours clips/s | audio s/s | naive clips/s | speedup | cosine (last, real frames) | cosine (layer mean) | GFLOP/s | peak | fraction of peak | naive fraction | padding overhead |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for corpus, per_encoder in result["extraction_by_corpus"].items():
        for enc, e in per_encoder.items():
            det = e["cosine_vs_naive_detail"]["real_frames"]
            lines.append(f"| {enc} | {corpus} | {e['n_clips']} | {e['clips_per_s']:.2f} | {e['audio_s_per_s']:.1f} | "
                         f"{e['naive_clips_per_s']:.3f} ({e['naive_clips']} clips) | **{e['speedup']:.1f}x** {e['speedup_per_round']} | "
                         f"{e['cosine_vs_naive']:.4f} (min {det['last']['min']:.4f}) | {det['layer_mean']['mean']:.4f} | "
                         f"{e['gflops_per_s']:.1f} | {e['peak_gflops_per_s']:.0f} | **{e['fraction_of_peak']:.0%}** | "
                         f"{e['naive_fraction_of_peak']:.0%} | {e['padding_overhead']:.1%} |")
    if result["extraction_by_corpus"]:
        lines += ["", "Cosine after centring on the naive features' mean over the clips (the part that tells clips apart), real frames: " + "; ".join(
            f"{enc} last {fmt(e['cosine_vs_naive_detail']['real_frames']['last'].get('centred_mean'), '.3f')}, "
            f"layer mean {fmt(e['cosine_vs_naive_detail']['real_frames']['layer_mean'].get('centred_mean'), '.3f')}"
            for per in result["extraction_by_corpus"].values() for enc, e in per.items()) + ".", "",
            "Cosine against the naive features pooled over all 1500 frames (what a naive user keeps): " + "; ".join(
            f"{enc} last {e['cosine_vs_naive_detail']['all_frames']['last']['mean']:.4f}, layer mean {e['cosine_vs_naive_detail']['all_frames']['layer_mean']['mean']:.4f}"
            for per in result["extraction_by_corpus"].values() for enc, e in per.items()) + ".", ""]
    for corpus, per_encoder in result["extraction_by_corpus"].items():
        for enc, e in per_encoder.items():
            lv = e.get("levers")
            if not lv:
                continue
            lines += [f"### Levers: {enc} on {corpus} ({lv['clips']} clips, encoder only, best of {lv['rounds']} interleaved rounds)", "",
                      "| configuration | best s | time vs baseline | GFLOP/s | fraction of peak | max rel. diff of features |", "|---|---|---|---|---|---|"]
            for name, c in lv["configs"].items():
                lines.append(f"| {name} | {c['seconds_best']:.2f} | {c['relative_time']:.2f} | {c['gflops_per_s']:.1f} | "
                             f"{c['fraction_of_peak']:.0%} | {fmt(c.get('max_rel_diff_vs_baseline'), '.1e')} |")
            b = lv["breakdown"]
            if "omp_default" in lv["configs"]:
                lines += ["", "The omp_* rows run in fresh processes (the wait policy is read when OpenMP starts), timed against each other (omp_default = 1.00)."]
            lines += ["", f"Per clip: decode {b['decode_s_per_clip'] * 1e3:.1f} ms, log-mel + padding {b['log_mel_and_pad_s_per_clip'] * 1e3:.1f} ms, "
                      f"encoder {b['encoder_s_per_clip'] * 1e3:.1f} ms (end to end {1e3 / e['clips_per_s']:.1f} ms)."
                      + (f" torch.compile warm-up {lv['compile_warmup_s']} s." if "compile_warmup_s" in lv else "")
                      + (f" torch.compile failed: {lv['torch_compile_error']}" if "torch_compile_error" in lv else ""), ""]
    s = result.get("stages")
    if s:
        lines += ["## Stages 2-3", "", "| GAN steps/s | stage 2 s | stage 3 s | generated features/s (fp32) | bf16 | via sample_generator | generator GFLOP/s | goal 1M/s needs |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| {s['gan_steps_per_s']:.0f} | {s['stage2_s']:.2f} | {s['stage3_s']:.2f} | {s['generation_features_per_s']:,.0f} | "
                  f"{s['generation_features_per_s_bf16']:,.0f} | {s['sample_generator_features_per_s']:,.0f} | {s['generation_gflops_per_s']:.0f} "
                  f"({s['generation_fraction_of_peak']:.0%} of peak) | {s['generation_1M_needs_gflops_per_s']:.0f} GFLOP/s |", ""]
        if s.get("stage2_thread_settings"):
            lines += ["Stage 2 ms per GAN step by OpenMP setting (fresh processes, best of interleaved rounds): " + ", ".join(
                f"{k} {v['ms_per_step_best']:.1f} ms ({v['relative_time']:.2f}x)" for k, v in s["stage2_thread_settings"].items()), ""]
    if result.get("main_job_cold_s") is not None:
        lines += ["## End to end", "", f"`{result['main_job_command']}`: cold cache {result['main_job_cold_s']:.0f} s, "
                  f"warm cache {result['main_job_warm_s']:.0f} s, peak RSS {result['main_job_peak_rss_mb']:.0f} MB.",
                  "", "Timing inside train.py: " + "; ".join(f"{k}: {v['timing']}" for k, v in result["main_job_detail"].items()), ""]
    sc = {**result["scaling_summary"], "sizes": result["scaling"]} if result.get("scaling") else None
    if sc:
        lines += [f"## Scaling ({sc['encoder']}, EmoDB clips repeated)", "", "| clips | extraction s | stage 1 s | stage 2 s | stage 3 s | peak RSS MB | RSS after model MB |",
                  "|---|---|---|---|---|---|---|"]
        for r in sc["sizes"]:
            lines.append(f"| {r['n_clips']} | {r['extract_s']:.1f} | {r['stage1_s']:.1f} | {r['stage2_s']:.1f} | {r['stage3_s']:.1f} | "
                         f"{r['peak_rss_mb']:.0f} | {r['rss_after_model_mb']:.0f} |")
        lines += ["", "Log-log slopes (1 = linear, 0 = flat): " + ", ".join(f"{k} {fmt(v)}" for k, v in sc["loglog_slope"].items()), ""]
    d = result.get("distributed")
    if d:
        c = d["check"]
        lines += ["## Two processes (torchrun --nproc_per_node 2, CPU/gloo)", "",
                  f"{d['encoder']}: single process ({d['single']['threads_per_process']} threads) {d['single']['seconds']:.1f} s, "
                  f"2 processes x {d['torchrun_2']['threads_per_process']} thread {d['torchrun_2']['seconds']:.1f} s (speedup {d['speedup']:.2f}x). "
                  f"Merged cache: same file name {c['same_cache_file_name']}, rows {c['rows_merged']}/{c['rows_single']}, "
                  f"row order equal {c['row_order_equal']}, max rel. diff {c['audio_features_max_rel_diff']:.1e}, bit-identical {c['bit_identical']} "
                  f"→ **{'equal' if c['equal'] else 'DIFFERENT'}**.", ""]
    path.write_text("\n".join(lines))


def plot_scaling(scaling: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = scaling["sizes"]
    n = [r["n_clips"] for r in rows]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("extract_s", "extraction"), ("stage1_s", "stage 1"), ("stage2_s", "stage 2"), ("stage3_s", "stage 3")):
        ax.loglog(n, [max(r[key], 1e-3) for r in rows], "o-", label=f"{label} (slope {fmt(scaling['loglog_slope'][key])})")
    ax.loglog(n, [n_ / n[0] * rows[0]["extract_s"] for n_ in n], "k:", label="linear")
    ax.set_xlabel("clips")
    ax.set_ylabel("seconds")
    ax.set_title(f"time ({scaling['encoder']})")
    ax.legend(fontsize=8)
    ax2.loglog(n, [r["peak_rss_mb"] for r in rows], "o-", label="peak RSS")
    ax2.loglog(n, [r["rss_after_model_mb"] for r in rows], "s--", label="RSS after model load")
    ax2.set_xlabel("clips")
    ax2.set_ylabel("MB")
    ax2.set_title("memory")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoders", nargs="+", default=["openai/whisper-tiny.en", "openai/whisper-base"])
    p.add_argument("--corpora", nargs="+", default=[str(ROOT / "data" / "emodb4")])
    p.add_argument("--max_clips", type=int, default=None, help="first N clips of each corpus")
    p.add_argument("--batch_size", type=int, default=8, help="extraction batch size (train.py's default)")
    p.add_argument("--naive_clips", type=int, default=24, help="clips encoded by the naive path (extrapolated per clip)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds of ours / naive")
    p.add_argument("--lever_clips", type=int, default=48, help="clips for the lever study (0: skip)")
    p.add_argument("--lever_rounds", type=int, default=3)
    p.add_argument("--lever_batch_sizes", type=int, nargs="+", default=[1, 4, 16, 32])
    p.add_argument("--lever_encoders", nargs="+", default=None, help="encoders with a lever study (default: all)")
    p.add_argument("--omp_policy_rounds", type=int, default=2, help="fresh-process rounds for OMP_WAIT_POLICY (0: skip)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True, help="try torch.compile as a lever")
    p.add_argument("--peak_sizes", type=int, nargs="+", default=[2048], help="square torch.mm sizes for the peak (4096 gives the same rate, 8x slower)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for the whole run (default: torch's)")
    p.add_argument("--device", default="cpu", help="extraction device (cuda: ours and naive on the GPU; levers stay CPU-only)")
    p.add_argument("--generation_batch", type=int, default=1 << 18)
    p.add_argument("--generation_reps", type=int, default=5)
    p.add_argument("--skip_extraction", action="store_true")
    p.add_argument("--skip_stages", action="store_true")
    p.add_argument("--stage2_thread_rounds", type=int, default=2, help="fresh-process rounds: OpenMP wait policy / threads in stage 2 (0: skip)")
    p.add_argument("--skip_main_job", action="store_true")
    p.add_argument("--main_args", type=shlex.split, default=[], help='extra train.py arguments for the main job, one string: "--max_folds 1"')
    p.add_argument("--main_output_dir", default="/tmp/speed_main")
    p.add_argument("--main_env", nargs="*", default=[], metavar="KEY=VALUE", help="environment for the main job, e.g. OMP_WAIT_POLICY=PASSIVE")
    p.add_argument("--main_cold_converts", action=argparse.BooleanOptionalAction, default=True,
                   help="cold run starts from an empty MIRGAN_CACHE, so it converts Whisper too (--no-main_cold_converts: copy the converted encoders in)")
    p.add_argument("--skip_scaling", action="store_true")
    p.add_argument("--scaling_encoder", default="openai/whisper-tiny.en")
    p.add_argument("--scaling_factors", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--scale", action="store_true", help="only the scale study: stages on --scale_rows rows of whisper-base-sized features")
    p.add_argument("--scale_rows", type=int, nargs="+", default=[10_000, 40_000, 160_000])
    p.add_argument("--scale_epochs", type=int, default=10, help="stage-1 and stage-3 epochs of the scale study")
    p.add_argument("--skip_distributed", action="store_true")
    p.add_argument("--dist_encoder", default="openai/whisper-tiny.en")
    p.add_argument("--master_port", type=int, default=29561)
    p.add_argument("--out", default=str(RESULTS), help="folder for speed.json, speed.md, scaling.png")
    p.add_argument("--smoke", action="store_true", help="seconds: a tiny random Whisper, a few clips, short stages")
    p.add_argument("--encoder", help=argparse.SUPPRESS)
    for hidden in ("--_encode_worker", "--_scaling_worker", "--_dist_worker", "--_stage2_worker", "--_scale_write_worker",
                   "--_scale_stages_worker"):
        p.add_argument(hidden, action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--_paths", "--_cache", "--_out"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    p.add_argument("--_factor", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.encoders = [SMOKE_ENCODER]
        args.scaling_encoder = args.dist_encoder = SMOKE_ENCODER
        args.max_clips = args.max_clips or 6
        args.naive_clips, args.lever_clips, args.lever_rounds = min(args.naive_clips, 2), min(args.lever_clips, 4), 1
        args.lever_batch_sizes, args.omp_policy_rounds, args.compile, args.stage2_thread_rounds = [2], 0, False, 0
        args.peak_sizes, args.generation_batch, args.generation_reps = [512], 4096, 2
        args.scaling_factors = args.scaling_factors if args.scaling_factors != [1, 4, 16] else [1, 2]
        args.skip_main_job = True
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:  # this process and the ones it starts (torchrun ranks keep 1 thread each)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args._encode_worker:
        return encode_worker(args)
    if args._scaling_worker:
        return scaling_worker(args)
    if args._dist_worker:
        return dist_worker(args)
    if args._stage2_worker:
        return stage2_worker(args)
    if args._scale_write_worker:
        return scale_write_worker(args)
    if args._scale_stages_worker:
        return scale_stages_worker(args)
    if args.scale:  # merged into the existing speed.json
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="speed-scale-"))
        result = json.loads((out / "speed.json").read_text()) if (out / "speed.json").exists() else {}
        result["scale"] = {"command": "python bench/speed.py " + shlex.join(sys.argv[1:] if argv is None else argv),
                           "date": datetime.datetime.now().isoformat(timespec="seconds"), **bench_scale(args, workdir)}
        (out / "speed.json").write_text(json.dumps(result, indent=2, default=float))
        shutil.rmtree(workdir, ignore_errors=True)
        print(json.dumps(result["scale"], indent=2, default=float))
        return result
    import datasets
    import torch

    datasets.disable_progress_bars()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="speed-"))
    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": "python bench/speed.py " + shlex.join(sys.argv[1:] if argv is None else argv),
              "machine": machine_info(), "smoke": args.smoke}
    log(f"machine: {result['machine']['cpu_model']}, {result['machine']['cores']} cores, {torch.get_num_threads()} threads; work in {workdir}")
    peak = Peak(args.peak_sizes, args.device)
    peak.measure()
    if args.device.startswith("cuda"):
        result["machine"]["gpu"] = torch.cuda.get_device_name(0)
    result["peak_bf16_gflops_per_s"] = matmul_peak(args.peak_sizes, dtype_name="bfloat16", device=args.device)
    by_corpus = {}
    for corpus in ([] if args.skip_extraction else args.corpora):
        name = Path(corpus).name
        by_corpus[name] = {}
        for enc in args.encoders:
            lever_args = argparse.Namespace(**vars(args))
            if args.lever_encoders is not None and enc not in args.lever_encoders or corpus != args.corpora[0]:
                lever_args.lever_clips = 0
            by_corpus[name][enc] = bench_extraction(enc, corpus, lever_args, peak, workdir)
    for per in by_corpus.values():  # every fraction against the best peak of the whole run
        for e in per.values():
            e["peak_gflops_per_s"] = peak.best
            e["fraction_of_peak"] = e["gflops_per_s"] / peak.best
            e["naive_fraction_of_peak"] = e["naive_gflops_per_s"] / peak.best
            for c in (e.get("levers") or {}).get("configs", {}).values():
                c["fraction_of_peak"] = c["gflops_per_s"] / peak.best
            if e.get("levers"):
                e["encoder_only_fraction_of_peak"] = e["levers"]["configs"]["baseline"]["fraction_of_peak"]
    result["extraction_by_corpus"] = by_corpus
    first = by_corpus.get(Path(args.corpora[0]).name, {})
    result["extraction"] = {enc: {k: e.get(k) for k in (
        "clips_per_s", "audio_s_per_s", "naive_clips_per_s", "speedup", "cosine_vs_naive", "gflops_per_s",
        "peak_gflops_per_s", "fraction_of_peak", "encoder_only_fraction_of_peak", "naive_fraction_of_peak",
        "warm_cache_clips_per_s", "n_clips", "corpus")}
        for enc, e in first.items()}
    cpu_peak = peak if args.device == "cpu" else Peak(args.peak_sizes)
    stages = None if args.skip_stages else bench_stages(len(load_rows(args.corpora[0], args.max_clips)), args, cpu_peak)
    result["stages"] = stages
    for key in ("generation_features_per_s", "gan_steps_per_s", "stage3_s"):
        result[key] = stages[key] if stages else None
    result.update(main_job_cold_s=None, main_job_warm_s=None, main_job_peak_rss_mb=None)
    if not args.skip_main_job:
        result.update(bench_main_job(args, workdir))
    result["peak_rss_mb"] = result["main_job_peak_rss_mb"]
    scaling = None if args.skip_scaling else bench_scaling(args, workdir)
    result["scaling"] = scaling["sizes"] if scaling else None  # [{n_clips, seconds, peak_rss_mb, ...}]
    result["scaling_summary"] = {k: v for k, v in scaling.items() if k != "sizes"} if scaling else None
    result["distributed"] = None if args.skip_distributed else bench_distributed(args, workdir)
    result["peak_gflops_per_s"] = peak.best
    result["peak_samples"] = peak.samples
    result["total_s"] = round(time.time() - started, 1)
    (out / "speed.json").write_text(json.dumps(result, indent=2, default=float))
    write_markdown(result, out / "speed.md")
    if scaling:
        plot_scaling(scaling, out / "scaling.png")
    print((out / "speed.md").read_text())
    shutil.rmtree(workdir, ignore_errors=True)
    log(f"done in {result['total_s']:.0f} s; results in {out}")
    return result


if __name__ == "__main__":
    main()
