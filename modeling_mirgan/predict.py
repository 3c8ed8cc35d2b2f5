"""Classify audio files with a trained mirgan model; long recordings are scored in windows.

    python -m modeling_mirgan.predict --model outputs/emodb4-unimodal/model clip.wav folder/ --output preds.csv

Every file is decoded at any sample rate and channel count and converted to the encoder's rate.
Recordings longer than ``--window_seconds`` are split into consecutive windows; each window gets its
own scores and the file's scores are the duration-weighted mean of its windows'. Batching windows of
several files gives the same numbers as one window at a time. Files are decoded a block at a time
and scored a few minutes of audio at a time, so memory does not grow with the recording's length.

Folders are walked recursively (a sub-folder named like ``x.wav`` too): every file with an audio
extension, and every other file that soundfile can decode, is scored; hidden files are ignored.
A file that cannot be scored stops the run naming it, or with ``--skip_bad`` is skipped, counted
and listed. A folder with no audio, and scores that are not finite, are errors.

A multimodal model also reads a transcript: ``--text`` (one per file) or, without it, the words
that ``--asr_model`` (Whisper, default openai/whisper-base) hears in each window; every file's
output says which transcript was used (``transcript`` and ``transcript_source``, also CSV columns).
Unimodal models ignore text.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from pathlib import Path

# Extensions of the formats soundfile (libsndfile) decodes; other files in a folder are probed.
AUDIO_SUFFIXES = {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au",
                  ".snd", ".caf", ".w64", ".rf64", ".bwf", ".voc", ".htk", ".nist", ".sph", ".sd2", ".ircam",
                  ".sf", ".paf", ".pvf", ".xi", ".avr", ".wve", ".mpc", ".svx", ".8svx", ".mat"}
CHUNK_SECONDS = 300.0  # audio held at once: windows are scored (and transcribed) in chunks of about this much


class NoAudioError(ValueError):
    """An input folder without a single audio file."""


def _decodable(path: Path) -> bool:
    """Whether soundfile recognises ``path`` as audio (reads its header only)."""
    import soundfile as sf

    try:
        sf.info(str(path))
    except Exception:  # noqa: BLE001 - not audio
        return False
    return True


def audio_files(inputs: list[str]) -> list[Path]:
    """The files to score: files as given (problems are reported when they are decoded), folders walked.

    A folder yields every non-hidden file under it with an audio extension or that soundfile can
    decode, in sorted order; sub-folders are walked whatever their name. A folder that yields
    nothing is ``NoAudioError`` naming it."""
    files = []
    for item in inputs:
        path = Path(item)
        if not path.is_dir():
            files.append(path)
            continue
        found, others = [], 0
        for root, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                if name.startswith("."):
                    continue
                candidate = Path(root) / name
                if candidate.suffix.lower() in AUDIO_SUFFIXES or (candidate.is_file() and _decodable(candidate)):
                    found.append(candidate)
                else:
                    others += 1
        if not found:
            what = "is empty" if not others else f"holds {others} file{'s' if others != 1 else ''}, none of them audio"
            raise NoAudioError(f"{path}: no audio files found (the folder {what}; looked for files that soundfile "
                               "decodes: .wav, .flac, .ogg, .opus, .mp3, .aiff and other libsndfile formats)")
        files += found
    return files


def windows(wave, rate: int, seconds: float) -> list[tuple[int, int]]:
    size = int(seconds * rate)
    starts = list(range(0, max(len(wave), 1), size))
    spans = [(s, min(s + size, len(wave))) for s in starts]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < rate:  # a tail under 1 s joins the previous window
        spans[-2] = (spans[-2][0], spans[-1][1])
        spans.pop()
    return spans


def check_window(window_seconds, rate: int, name: str = "window_seconds") -> float:
    """``window_seconds`` as a float, or ValueError naming ``name``: not a number, not finite, or
    shorter than the encoder's minimum input."""
    from processing import MIN_SAMPLES

    try:
        seconds = float(window_seconds)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds, got {window_seconds!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {window_seconds!r}")
    if int(seconds * rate) < MIN_SAMPLES:
        raise ValueError(f"{name} {window_seconds!r} is shorter than the encoder's minimum input "
                         f"({MIN_SAMPLES / rate:g} s at {rate} Hz)")
    return seconds


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return value


def file_windows(path: str, processor, seconds: float):
    """``(start, end, waveform)`` windows of a file, decoded a block at a time (the spans of ``windows``)."""
    import numpy as np

    from processing import MIN_SAMPLES
    from processing.audio import AudioError, stream_audio

    rate = processor.sampling_rate
    size = int(seconds * rate)
    pending, offset, total, buffered = [], 0, 0, 0
    for block in stream_audio(path, rate, block_seconds=max(min(seconds, 30.0), 1.0)):
        pending.append(block)
        buffered += len(block)
        total += len(block)
        while buffered >= size + rate:  # a whole window with at least 1 s after it: it is final
            joined = np.concatenate(pending)
            yield offset, offset + size, joined[:size]
            offset += size
            rest = joined[size:]
            pending, buffered = [rest], len(rest)
    if total < MIN_SAMPLES:
        raise AudioError(f"{path}: clip has {total} samples at {rate} Hz, shorter than the encoder's minimum of "
                         f"{MIN_SAMPLES}", "clip shorter than the encoder's minimum")
    joined = np.concatenate(pending) if pending else np.zeros(0, np.float32)
    for a, b in windows(joined, rate, seconds):  # the rest, with the rule for a short tail
        if b > a:
            yield offset + a, offset + b, joined[a:b]


def window_transcripts(model, items: list[tuple], texts: list[str] | None, asr) -> tuple[list[str] | None, str | None]:
    """The text of every window and where it came from; (None, None) when the model uses no text."""
    if model.config.mode != "multimodal":
        return None, None  # a unimodal model ignores text: no ASR is run
    if texts is not None:
        return [texts[i] for i, *_ in items], "given"
    if asr is None:
        return None, None
    return [t.strip() for t in asr([w for *_, w in items])], f"asr:{getattr(asr, 'model_name', 'asr')}"


def encode_texts(model, processor, texts: list[str], batch_size: int, known: dict | None = None) -> dict:
    """Text features of each distinct non-empty transcript (``known`` ones are not encoded again)."""
    features = dict(known or {})
    unique = sorted({t for t in texts if t.strip() and t not in features})
    for start in range(0, len(unique), batch_size):
        part = unique[start : start + batch_size]
        tokens = processor(text=part)
        encoded = model.encode_text(tokens["input_ids"], tokens["text_attention_mask"], tokens.get("token_type_ids"))
        features.update(zip(part, encoded))
    return features


def predict(model, processor, inputs, texts: list[str] | None = None, window_seconds: float = 30.0,
            batch_size: int = 8, sampling_rate: int | None = None, asr=None, skip_bad: bool = False,
            skipped: dict | None = None) -> list[dict]:
    """Scores per file (or array): ``{"source", "label", "scores", "transcript", "transcript_source", "windows"}``.

    A multimodal model reads ``texts`` (one transcript per input, used for all its windows) or,
    when ``texts`` is None, ``asr(waves) -> transcripts`` run on the windows' waveforms (at the
    processor's rate, a few minutes of audio per call), so each window is scored with its own
    words; a window whose transcript is empty is scored by the audio-only head. ``transcript`` is
    the text used (the windows' texts joined) and ``transcript_source`` is ``"given"``,
    ``"asr:<model>"`` or None. Unimodal models ignore text and never call ``asr``.

    Files are decoded a block at a time. An input that cannot be used raises ``AudioError`` naming
    it; with ``skip_bad`` it is left out of the results and recorded in ``skipped`` (``{reason:
    [sources]}``). Non-finite scores are a ValueError naming the input and window."""
    import torch

    from processing.audio import AudioError

    rate = processor.sampling_rate
    window_seconds = check_window(window_seconds, rate)
    batch_size = check_positive_int(batch_size, "batch_size")
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    inputs = list(inputs)
    if texts is not None:
        if len(texts) != len(inputs):
            raise ValueError(f"{len(texts)} transcripts for {len(inputs)} inputs")
        if model.config.mode == "multimodal":
            for i, text in enumerate(texts):  # given transcripts must have words; only ASR may come back empty
                if not isinstance(text, str) or not text.strip():
                    raise ValueError(f"text[{i}]: transcript is empty or not a string ({text!r})")
    skipped = {} if skipped is None else skipped
    sources = [str(item) if isinstance(item, (str, Path)) else f"array[{i}]" for i, item in enumerate(inputs)]
    scored: dict[int, list] = {i: [] for i in range(len(inputs))}  # item -> [(start, end, probs, transcript)]
    failed: set[int] = set()
    state = {"text_features": {}, "source": None}
    chunk_limit = int(CHUNK_SECONDS * rate)
    model.eval()

    def score(chunk: list[tuple]) -> None:
        chunk = [c for c in chunk if c[0] not in failed]
        if not chunk:
            return
        item_texts, source = window_transcripts(model, chunk, texts, asr)
        state["source"] = source if source is not None else state["source"]
        if item_texts is not None:
            state["text_features"] = encode_texts(model, processor, item_texts, batch_size, state["text_features"])
        features = state["text_features"]
        for start in range(0, len(chunk), batch_size):
            part = range(start, min(start + batch_size, len(chunk)))
            audio = processor(audio=[chunk[k][3] for k in part], sampling_rate=rate)
            out = model(**audio)
            logits = out.logits
            with_text = [j for j, k in enumerate(part) if item_texts is not None and item_texts[k] in features]
            if with_text:
                text = torch.stack([features[item_texts[part[j]]] for j in with_text])
                logits[with_text] = model.classify(out.audio_embeds[with_text], model.project_text(text))
            probs = logits.softmax(-1)
            for j, k in enumerate(part):
                i, a, b, _ = chunk[k]
                if not bool(torch.isfinite(probs[j]).all()):
                    raise ValueError(f"{sources[i]} window {a / rate:.2f}-{b / rate:.2f} s: the model produced "
                                     "non-finite scores (NaN/inf); its weights or this input are damaged")
                scored[i].append((a, b, probs[j], item_texts[k] if item_texts is not None else None))

    pending, held = [], 0
    with torch.no_grad():
        for i, item in enumerate(inputs):
            try:
                if isinstance(item, (str, Path)):
                    spans = file_windows(str(item), processor, window_seconds)
                else:
                    whole = processor.prepare_audio(item, sampling_rate, name=f"array[{i}]")
                    spans = [(a, b, whole[a:b]) for a, b in windows(whole, rate, window_seconds)]
                for a, b, piece in spans:
                    pending.append((i, a, b, piece))
                    held += b - a
                    if held >= chunk_limit and len(pending) % batch_size == 0:
                        score(pending)
                        pending, held = [], 0
            except AudioError as err:
                if not skip_bad:
                    raise
                failed.add(i)
                skipped.setdefault(getattr(err, "reason", None) or str(err), []).append(sources[i])
                pending = [p for p in pending if p[0] != i]
                held = sum(p[2] - p[1] for p in pending)
        score(pending)
    results = []
    for i in range(len(inputs)):
        if i in failed:
            continue
        rows = scored[i]
        probs = torch.stack([p for _, _, p, _ in rows])
        durations = torch.tensor([(b - a) / rate for a, b, _, _ in rows])
        mean = (probs * durations[:, None]).sum(0) / durations.sum()
        source = state["source"] if rows[0][3] is not None else None
        if source is None:
            transcript = None
        elif source == "given":
            transcript = texts[i]
        else:
            transcript = " ".join(t for *_, t in rows if t)
        results.append({
            "source": sources[i],
            "label": labels[int(mean.argmax())],
            "scores": dict(zip(labels, mean.tolist())),
            "transcript": transcript,
            "transcript_source": source,
            "windows": [{"start_s": a / rate, "end_s": b / rate, "label": labels[int(p.argmax())],
                         "scores": dict(zip(labels, p.tolist())), "transcript": t} for a, b, p, t in rows],
        })
    return results


def write(results: list[dict], path: Path, labels: list[str]) -> None:
    """The results as JSON (``.json``) or CSV, written to a temporary file and renamed into place."""
    from .safe_io import write_bytes_atomic

    path = Path(path)
    if path.suffix == ".json":
        write_bytes_atomic(path, json.dumps(results, indent=2, ensure_ascii=False).encode("utf-8"))
        return
    f = io.StringIO(newline="")
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
    write_bytes_atomic(path, f.getvalue().encode("utf-8"))


def positive_float(flag: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a number, got {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{flag} must be a positive number of seconds, got {text!r}")
        return value
    return parse


def positive_int(flag: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a whole number, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{flag} must be >= 1, got {text!r}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modeling_mirgan.predict", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="a saved model folder or Hub id")
    parser.add_argument("inputs", nargs="+", help="audio files or folders (walked recursively)")
    parser.add_argument("--output", default="predictions.csv", help=".csv (one row per window + one per file) or .json")
    parser.add_argument("--window_seconds", type=positive_float("--window_seconds"), default=30.0,
                        help="length of the windows a recording is scored in")
    parser.add_argument("--batch_size", type=positive_int("--batch_size"), default=8, help="windows per forward pass")
    parser.add_argument("--text", nargs="*", help="transcripts, one per file (multimodal models); "
                        "without it a multimodal model transcribes each window with --asr_model")
    parser.add_argument("--asr_model", default="openai/whisper-base",
                        help="Whisper model that transcribes the windows when a multimodal model gets no --text")
    parser.add_argument("--asr_language", default=None,
                        help="language of the speech for a multilingual ASR model, e.g. de "
                        "(default: detected per window)")
    parser.add_argument("--asr_batch_size", type=positive_int("--asr_batch_size"), default=8,
                        help="windows per ASR forward pass")
    parser.add_argument("--skip_bad", action="store_true",
                        help="skip files that cannot be decoded or used (counted and listed) instead of stopping")
    return parser


def report_skipped(skipped: dict, total: int) -> None:
    count = sum(len(v) for v in skipped.values())
    print(f"skipped {count} of {total} files (--skip_bad):", file=sys.stderr)
    for reason, files in sorted(skipped.items()):
        print(f"  {reason}: {len(files)}", file=sys.stderr)
        for f in files:
            print(f"    {f}", file=sys.stderr)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = build_parser()
    args = parser.parse_args(argv)  # before any heavy import: --help and bad flags answer at once
    output = Path(args.output)
    if output.is_dir():
        parser.error(f"--output {output}: is a folder; give a file name ending in .csv or .json")
    try:
        files = audio_files(args.inputs)
    except NoAudioError as err:
        parser.exit(1, f"error: {err}\n")
    if args.text is not None and len(args.text) != len(files):
        parser.error(f"--text has {len(args.text)} transcripts for {len(files)} files")

    import modeling_mirgan  # noqa: F401  registers the Auto classes
    from processing import MirganProcessor
    from processing.audio import AudioError

    from .modeling_mirgan import MirganForEmotionClassification

    try:
        model = MirganForEmotionClassification.from_pretrained(args.model)
        processor = MirganProcessor.from_pretrained(args.model)
    except (OSError, ValueError) as err:
        parser.exit(1, f"error: cannot load the model {args.model}: {err}\n")
    asr = None
    if model.config.mode != "multimodal":
        if args.text is not None:
            print("note: a unimodal model ignores --text", file=sys.stderr)
    elif args.text is None:
        from .transcripts import asr_function

        asr = asr_function(args.asr_model, args.asr_language, args.asr_batch_size, processor.sampling_rate)
    skipped: dict[str, list[str]] = {}
    try:
        results = predict(model, processor, [str(f) for f in files], args.text, args.window_seconds, args.batch_size,
                          asr=asr, skip_bad=args.skip_bad, skipped=skipped)
    except AudioError as err:
        parser.exit(1, f"error: {err} (pass --skip_bad to skip such files)\n")
    except ValueError as err:
        parser.exit(1, f"error: {err}\n")
    if skipped:
        report_skipped(skipped, len(files))
    if not results:
        parser.exit(1, f"error: none of the {len(files)} files could be scored\n")
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    write(results, output, labels)
    for r in results:
        line = f"{r['source']}\t{r['label']}\t" + " ".join(f"{k}={v:.3f}" for k, v in r["scores"].items())
        if r["transcript_source"] is not None:
            line += f"\ttranscript ({r['transcript_source']}): {r['transcript']!r}"
        print(line)
    return results


if __name__ == "__main__":
    main()
