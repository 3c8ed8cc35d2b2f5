"""Part (b) of ``bench/gpu_check.sh`` and its JSON: whisper-base extraction throughput on the GPU vs the CPU
and the cosine between their pooled features, with part (a)'s training run checked to have used CUDA."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def extract(model, processor, waves, device: str, dtype: torch.dtype | None) -> tuple[torch.Tensor, float]:
    """Pooled features of every clip, one clip at a time at its own length; (features, clips per second)."""
    model.to(device)
    out = []
    with torch.inference_mode(), torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
        for i, wave in enumerate(waves):
            inputs = processor(audio=wave, sampling_rate=processor.sampling_rate).to(device)
            if i == 2:  # after warm-up
                if device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.time()
            out.append(model.encode_audio(**inputs).float().cpu())
    if device == "cuda":
        torch.cuda.synchronize()
    return torch.cat(out), (len(waves) - 2) / (time.time() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_results", required=True)
    parser.add_argument("--train_s", type=float, required=True)
    parser.add_argument("--dataset_dir", required=True)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--out", default="bench/results/gpu_check.json")
    args = parser.parse_args()

    train = json.loads(Path(args.train_results).read_text())
    used = train["distributed"]
    if used.get("device") != "cuda":
        raise SystemExit(f"gpu_check: train.py ran on {used.get('device')!r}, not CUDA")

    from modeling_mirgan import from_encoders
    from modeling_mirgan.processors import build_processor

    model = from_encoders(["a", "b"], "openai/whisper-base").eval()
    processor = build_processor("openai/whisper-base", "sentence-transformers/all-MiniLM-L6-v2")
    files = sorted(p for p in Path(args.dataset_dir).rglob("*") if p.suffix.lower() in (".wav", ".flac"))[: args.clips]
    waves = [processor.prepare_audio(str(p)) for p in files]
    cpu, cpu_rate = extract(model, processor, waves, "cpu", None)
    gpu32, gpu32_rate = extract(model, processor, waves, "cuda", None)
    gpu16, gpu16_rate = extract(model, processor, waves, "cuda", torch.bfloat16)
    cosine = lambda a, b: torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1))  # noqa: E731
    result = {
        "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
        "train": {"command": "accelerate launch --mixed_precision bf16 train.py --encoder_mode lora --mixed_precision bf16 "
                             "(RAVDESS-4, whisper-base, fold 1 of 6)",
                  "wall_s": args.train_s, "device": used["device"], "mixed_precision": used.get("mixed_precision"),
                  "processes": used["processes"], "adapt_s": train["timing"].get("adapt_s"),
                  "extract_s": train["timing"].get("extract_s"),
                  "ua": {m: v["ua_mean"] for m, v in train["methods"].items()}},
        "extraction": {"clips": len(waves), "clips_per_s": {"cpu_fp32": cpu_rate, "gpu_fp32": gpu32_rate, "gpu_bf16": gpu16_rate},
                       "cosine_gpu_fp32_vs_cpu": {"mean": float(cosine(gpu32, cpu).mean()), "min": float(cosine(gpu32, cpu).min())},
                       "cosine_gpu_bf16_vs_cpu": {"mean": float(cosine(gpu16, cpu).mean()), "min": float(cosine(gpu16, cpu).min())}},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
