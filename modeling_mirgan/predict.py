"""Classify audio files with a trained mirgan model; long recordings are scored in windows.

    python -m modeling_mirgan.predict --model outputs/emodb4-unimodal/model clip.wav folder/ --output preds.csv

Every file is decoded at any sample rate and channel count and converted to the encoder's rate.
Recordings longer than ``--window_seconds`` are split into consecutive windows; each window gets its
own scores and the file's scores are the duration-weighted mean of its windows'. Batching windows of
several files gives the same numbers as one window at a time.

A multimodal model also reads a transcript: ``--text`` (one per file) or, without it, the words
that ``--asr_model`` (Whisper, default openai/whisper-base) hears in each window; every file's
output says which transcript was used (``transcript`` and ``transcript_source``, also CSV columns).
Unimodal models ignore text.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
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


def window_transcripts(model, items: list[tuple], texts: list[str] | None, asr) -> tuple[list[str] | None, str | None]:
    """The text of every window and where it came from; (None, None) when the model uses no text."""
    if model.config.mode != "multimodal":
        return None, None  # a unimodal model ignores text: no ASR is run
    if texts is not None:
        for i, text in enumerate(texts):  # given transcripts must have words; only ASR may come back empty
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"text[{i}]: transcript is empty or not a string ({text!r})")
        return [texts[i] for i, *_ in items], "given"
    if asr is None:
        return None, None
    return [t.strip() for t in asr([w for *_, w in items])], f"asr:{getattr(asr, 'model_name', 'asr')}"


def encode_texts(model, processor, texts: list[str], batch_size: int) -> dict[str, torch.Tensor]:
    """Text features of each distinct non-empty transcript."""
    unique = sorted({t for t in texts if t.strip()})
    features = {}
    for start in range(0, len(unique), batch_size):
        part = unique[start : start + batch_size]
        tokens = processor(text=part)
        encoded = model.encode_text(tokens["input_ids"], tokens["text_attention_mask"], tokens.get("token_type_ids"))
        features.update(zip(part, encoded))
    return features


@torch.no_grad()
def predict(model, processor, inputs, texts: list[str] | None = None, window_seconds: float = 30.0,
            batch_size: int = 8, sampling_rate: int | None = None, asr=None) -> list[dict]:
    """Scores per file (or array): ``{"source", "label", "scores", "transcript", "transcript_source", "windows"}``.

    A multimodal model reads ``texts`` (one transcript per input, used for all its windows) or,
    when ``texts`` is None, ``asr(waves) -> transcripts`` run on every window's waveform (at the
    processor's rate), so each window is scored with its own words; a window whose transcript is
    empty is scored by the audio-only head. ``transcript`` is the text used (the windows' texts
    joined) and ``transcript_source`` is ``"given"``, ``"asr:<model>"`` or None. Unimodal models
    ignore text and never call ``asr``."""
    model.eval()
    rate = processor.sampling_rate
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    items = []  # (item index, start, end, waveform slice)
    for i, item in enumerate(inputs):
        wave = processor.prepare_audio(item, sampling_rate, name=f"array[{i}]")
        items += [(i, a, b, wave[a:b]) for a, b in windows(wave, rate, window_seconds)]
    if texts is not None and len(texts) != len(inputs):
        raise ValueError(f"{len(texts)} transcripts for {len(inputs)} inputs")
    item_texts, source = window_transcripts(model, items, texts, asr)
    text_features = encode_texts(model, processor, item_texts, batch_size) if item_texts is not None else {}
    probs = []
    for start in range(0, len(items), batch_size):
        chunk = range(start, min(start + batch_size, len(items)))
        audio = processor(audio=[items[k][3] for k in chunk], sampling_rate=rate)
        out = model(**audio)
        logits = out.logits
        with_text = [j for j, k in enumerate(chunk) if item_texts is not None and item_texts[k] in text_features]
        if with_text:
            text = torch.stack([text_features[item_texts[chunk[j]]] for j in with_text])
            logits[with_text] = model.classify(out.audio_embeds[with_text], model.project_text(text))
        probs.append(logits.softmax(-1))
    probs = torch.cat(probs) if probs else torch.zeros(0, len(labels))
    results = []
    for i, item in enumerate(inputs):
        rows = [(k, it) for k, it in enumerate(items) if it[0] == i]
        durations = torch.tensor([(it[2] - it[1]) / rate for _, it in rows])
        mean = (probs[[k for k, _ in rows]] * durations[:, None]).sum(0) / durations.sum()
        if item_texts is None:
            transcript = None
        elif source == "given":
            transcript = texts[i]
        else:
            transcript = " ".join(item_texts[k] for k, _ in rows if item_texts[k])
        results.append({
            "source": str(item) if isinstance(item, (str, Path)) else f"array[{i}]",
            "label": labels[int(mean.argmax())],
            "scores": dict(zip(labels, mean.tolist())),
            "transcript": transcript,
            "transcript_source": source,
            "windows": [{"start_s": it[1] / rate, "end_s": it[2] / rate, "label": labels[int(probs[k].argmax())],
                         "scores": dict(zip(labels, probs[k].tolist())),
                         "transcript": item_texts[k] if item_texts is not None else None} for k, it in rows],
        })
    return results


def write(results: list[dict], path: Path, labels: list[str]) -> None:
    if path.suffix == ".json":
        path.write_text(json.dumps(results, indent=2, ensure_ascii=False))
        return
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "window_start_s", "window_end_s", "label", *[f"score_{l}" for l in labels],
                         "transcript_source", "transcript"])
        for r in results:
            source = r.get("transcript_source") or ""
            for w in r["windows"]:
                writer.writerow([r["source"], f"{w['start_s']:.2f}", f"{w['end_s']:.2f}", w["label"],
                                 *[f"{w['scores'][l]:.6f}" for l in labels], source, w.get("transcript") or ""])
            writer.writerow([r["source"], "all", "all", r["label"], *[f"{r['scores'][l]:.6f}" for l in labels],
                             source, r.get("transcript") or ""])


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
    parser.add_argument("--text", nargs="*", help="transcripts, one per file (multimodal models); "
                        "without it a multimodal model transcribes each window with --asr_model")
    parser.add_argument("--asr_model", default="openai/whisper-base",
                        help="Whisper model that transcribes the windows when a multimodal model gets no --text")
    parser.add_argument("--asr_language", default=None,
                        help="language of the speech for a multilingual ASR model, e.g. de "
                        "(default: detected per window)")
    parser.add_argument("--asr_batch_size", type=int, default=8)
    args = parser.parse_args(argv)
    model = MirganForEmotionClassification.from_pretrained(args.model)
    processor = MirganProcessor.from_pretrained(args.model)
    files = audio_files(args.inputs)
    if args.text is not None and len(args.text) != len(files):
        parser.error(f"--text has {len(args.text)} transcripts for {len(files)} files")
    asr = None
    if model.config.mode != "multimodal":
        if args.text is not None:
            print("note: a unimodal model ignores --text", file=sys.stderr)
    elif args.text is None:
        from modeling_mirgan.transcripts import asr_function

        asr = asr_function(args.asr_model, args.asr_language, args.asr_batch_size, processor.sampling_rate)
    results = predict(model, processor, [str(f) for f in files], args.text, args.window_seconds, args.batch_size,
                      asr=asr)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    write(results, Path(args.output), labels)
    for r in results:
        line = f"{r['source']}\t{r['label']}\t" + " ".join(f"{k}={v:.3f}" for k, v in r["scores"].items())
        if r["transcript_source"] is not None:
            line += f"\ttranscript ({r['transcript_source']}): {r['transcript']!r}"
        print(line)
    return results


if __name__ == "__main__":
    main()
