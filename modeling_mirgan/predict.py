"""Classify audio files with a trained mirgan model; long recordings are scored in windows.

    python -m modeling_mirgan.predict --model outputs/emodb4-unimodal/model clip.wav folder/ --output preds.csv

Every file is decoded at any sample rate and channel count and converted to the encoder's rate.
Recordings longer than ``--window_seconds`` are split into consecutive windows; each window gets its
own scores and the file's scores are the duration-weighted mean of its windows'. Batching windows of
several files gives the same numbers as one window at a time.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au"}


def audio_files(inputs: list[str]) -> list[Path]:
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            files.append(path)
    return files


def windows(wave: np.ndarray, rate: int, seconds: float) -> list[tuple[int, int]]:
    size = int(seconds * rate)
    starts = list(range(0, max(len(wave), 1), size))
    spans = [(s, min(s + size, len(wave))) for s in starts]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < rate:  # a tail under 1 s joins the previous window
        spans[-2] = (spans[-2][0], spans[-1][1])
        spans.pop()
    return spans


@torch.no_grad()
def predict(model, processor, inputs, texts: list[str] | None = None, window_seconds: float = 30.0,
            batch_size: int = 8, sampling_rate: int | None = None) -> list[dict]:
    """Scores per file (or array): ``{"source", "label", "scores", "windows": [...]}``."""
    model.eval()
    rate = processor.sampling_rate
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    items = []  # (item index, start, end, waveform slice)
    for i, item in enumerate(inputs):
        wave = processor.prepare_audio(item, sampling_rate, name=f"array[{i}]")
        items += [(i, a, b, wave[a:b]) for a, b in windows(wave, rate, window_seconds)]
    text_features = None
    if texts is not None and model.config.mode == "multimodal":
        tokens = processor(text=texts)
        text_features = model.encode_text(tokens["input_ids"], tokens["text_attention_mask"], tokens.get("token_type_ids"))
    probs = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        audio = processor(audio=[w for *_, w in chunk], sampling_rate=rate)
        text = text_features[[c[0] for c in chunk]] if text_features is not None else None
        out = model(**audio, text_features=text)
        probs.append(out.logits.softmax(-1))
    probs = torch.cat(probs) if probs else torch.zeros(0, len(labels))
    results = []
    for i, item in enumerate(inputs):
        rows = [(k, it) for k, it in enumerate(items) if it[0] == i]
        durations = torch.tensor([(it[2] - it[1]) / rate for _, it in rows])
        mean = (probs[[k for k, _ in rows]] * durations[:, None]).sum(0) / durations.sum()
        results.append({
            "source": str(item) if isinstance(item, (str, Path)) else f"array[{i}]",
            "label": labels[int(mean.argmax())],
            "scores": dict(zip(labels, mean.tolist())),
            "windows": [{"start_s": it[1] / rate, "end_s": it[2] / rate, "label": labels[int(probs[k].argmax())],
                         "scores": dict(zip(labels, probs[k].tolist()))} for k, it in rows],
        })
    return results


def write(results: list[dict], path: Path, labels: list[str]) -> None:
    if path.suffix == ".json":
        path.write_text(json.dumps(results, indent=2))
        return
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "window_start_s", "window_end_s", "label", *[f"score_{l}" for l in labels]])
        for r in results:
            for w in r["windows"]:
                writer.writerow([r["source"], f"{w['start_s']:.2f}", f"{w['end_s']:.2f}", w["label"], *[f"{w['scores'][l]:.6f}" for l in labels]])
            writer.writerow([r["source"], "all", "all", r["label"], *[f"{r['scores'][l]:.6f}" for l in labels]])


def main(argv: list[str] | None = None) -> list[dict]:
    import modeling_mirgan  # noqa: F401  registers the Auto classes
    from processing import MirganProcessor

    from .modeling_mirgan import MirganForEmotionClassification

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a saved model folder or Hub id")
    parser.add_argument("inputs", nargs="+", help="audio files or folders")
    parser.add_argument("--output", default="predictions.csv", help=".csv (one row per window + one per file) or .json")
    parser.add_argument("--window_seconds", type=float, default=30.0)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--text", nargs="*", help="transcripts, one per file (multimodal models)")
    args = parser.parse_args(argv)
    model = MirganForEmotionClassification.from_pretrained(args.model)
    processor = MirganProcessor.from_pretrained(args.model)
    files = audio_files(args.inputs)
    if args.text is not None and len(args.text) != len(files):
        parser.error(f"--text has {len(args.text)} transcripts for {len(files)} files")
    results = predict(model, processor, [str(f) for f in files], args.text, args.window_seconds, args.batch_size)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    write(results, Path(args.output), labels)
    for r in results:
        print(f"{r['source']}\t{r['label']}\t" + " ".join(f"{k}={v:.3f}" for k, v in r["scores"].items()))
    return results


if __name__ == "__main__":
    main()
