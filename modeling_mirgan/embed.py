"""Audio embeddings from a trained mirgan model, for downstream tasks.

    python -m modeling_mirgan.embed clip.wav folder/ --model outputs/emodb4-unimodal/model --output embeddings.parquet

For every file (folders are searched for audio files) the Parquet file holds one row: ``file``,
``duration_s``, ``h`` (the clip's feature in the model's shared space: what the emotion classifier
and the generator work on, ``projection_dim`` floats) and ``audio_layer_features`` (the audio
encoder's hidden states averaged over the clip's frames, one vector per layer, ``[layers][hidden]``:
what the feature cache stores). Any sample rate and channel count works. Recordings longer than
``--window_seconds`` are embedded in windows whose features are averaged by duration, as
``modeling_mirgan.predict`` scores them. Batching gives the numbers of one file at a time.

In Python: ``model.get_audio_embeddings(audio, sampling_rate=None, processor=None, batch_size=8)``
(``audio_embeddings`` below) returns the same as tensors. Read the file with
``pandas.read_parquet`` or ``datasets.load_dataset("parquet", data_files="embeddings.parquet")``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au"}


def audio_embeddings(model, audio, sampling_rate=None, processor=None, batch_size: int = 8,
                     window_seconds: float = 30.0) -> dict:
    """``{"audio_layer_features": [n, layers, hidden], "h": [n, projection_dim], "duration_s": [n]}`` (tensors).

    audio: one clip or a list: paths, encoded bytes, arrays (with ``sampling_rate``), ``{"array",
    "sampling_rate"}`` / ``{"path"}`` dicts or decoded ``datasets`` Audio values. processor: default,
    the one saved with the model (``AutoProcessor.from_pretrained(model.name_or_path)``)."""
    import numpy as np
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be >= 1")
    if window_seconds <= 0:
        raise ValueError(f"window_seconds={window_seconds}: must be > 0")
    processor = processor if processor is not None else default_processor(model)
    clips = list(audio) if isinstance(audio, (list, tuple)) else [audio]
    if not clips:
        raise ValueError("no audio given")
    rate = processor.sampling_rate
    waves = [processor.prepare_audio(c, sampling_rate, f"array[{i}]") for i, c in enumerate(clips)]
    size = int(window_seconds * rate)
    items = []  # (clip index, weight, window)
    for i, wave in enumerate(waves):
        spans = windows(len(wave), rate, size)
        items += [(i, (b - a) / len(wave), wave[a:b]) for a, b in spans]
    model.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            batch = [w for _, _, w in items[start:start + batch_size]]
            inputs = processor(audio=batch, sampling_rate=rate)
            features = model.encode_audio(**{k: v for k, v in inputs.items()
                                             if k in ("input_features", "input_values", "attention_mask")})
            parts.append(features.float())
        window_features = torch.cat(parts)
        layers = torch.zeros(len(waves), *window_features.shape[1:], dtype=torch.float64)
        for k, (i, weight, _) in enumerate(items):
            layers[i] += weight * window_features[k].double()
        layers = layers.float()
        h = model.project_audio(layers)
    return {"audio_layer_features": layers, "h": h,
            "duration_s": torch.tensor([len(w) / rate for w in waves], dtype=torch.float64)}


def windows(n: int, rate: int, size: int) -> list[tuple[int, int]]:
    """Consecutive windows of ``size`` samples; a tail under 1 s joins the window before it."""
    spans = [(s, min(s + size, n)) for s in range(0, max(n, 1), size)]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < rate:
        spans[-2] = (spans[-2][0], spans[-1][1])
        spans.pop()
    return spans


def default_processor(model):
    source = str(getattr(model, "name_or_path", "") or "")
    if not source:
        raise ValueError("this model was not loaded with from_pretrained: pass processor=MirganProcessor.from_pretrained(...)")
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(source)


def audio_files(inputs: list[str]) -> list[Path]:
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            files.append(path)
    return files


def write_parquet(path: Path, files: list[str], embeddings: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    h = embeddings["h"].numpy().astype("float32")
    layers = embeddings["audio_layer_features"].numpy().astype("float32")
    n_layers, hidden = layers.shape[1:]
    layer_type = pa.list_(pa.list_(pa.float32(), hidden), n_layers)
    table = pa.table({
        "file": pa.array(files, pa.string()),
        "duration_s": pa.array(embeddings["duration_s"].numpy(), pa.float64()),
        "h": pa.FixedSizeListArray.from_arrays(pa.array(h.reshape(-1)), h.shape[1]),
        "audio_layer_features": pa.array(layers.tolist(), layer_type),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modeling_mirgan.embed", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("files", nargs="+", metavar="FILES", help="audio files or folders (searched for "
                        + ", ".join(sorted(AUDIO_SUFFIXES)) + ")")
    parser.add_argument("--model", required=True, help="a trained mirgan model: folder or Hub id")
    parser.add_argument("--output", default="embeddings.parquet", help="Parquet file, one row per audio file")
    parser.add_argument("--batch_size", type=int, default=8, help="windows per encoder forward")
    parser.add_argument("--window_seconds", type=float, default=30.0, help="longer recordings are embedded in windows")
    parser.add_argument("--skip_bad", action="store_true", help="skip files that cannot be decoded (counted and listed) "
                        "instead of stopping")
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch_size {args.batch_size}: must be >= 1")
    if args.window_seconds <= 0:
        parser.error(f"--window_seconds {args.window_seconds}: must be > 0")
    if Path(args.output).suffix.lower() != ".parquet":
        parser.error(f"--output {args.output}: expected a .parquet file")
    files = audio_files(args.files)
    if not files:
        parser.error(f"no audio files in {args.files}")

    import modeling_mirgan  # noqa: F401  heavy imports only once the arguments are known to be good
    from processing import AudioError
    from transformers import AutoProcessor

    from .modeling_mirgan import MirganForEmotionClassification

    model = MirganForEmotionClassification.from_pretrained(args.model)
    processor = AutoProcessor.from_pretrained(args.model)
    kept, waves, skipped = [], [], {}
    for f in files:
        try:
            waves.append(processor.prepare_audio(str(f)))
            kept.append(str(f))
        except AudioError as err:
            if not args.skip_bad:
                parser.exit(2, f"error: {err} (--skip_bad skips such files)\n")
            skipped[str(f)] = str(err)
            print(f"skipped: {err}", file=sys.stderr)
    if not kept:
        parser.exit(2, f"error: none of the {len(files)} files could be decoded\n")
    embeddings = audio_embeddings(model, waves, sampling_rate=processor.sampling_rate, processor=processor,
                                  batch_size=args.batch_size, window_seconds=args.window_seconds)
    write_parquet(Path(args.output), kept, embeddings)
    summary = {"output": str(args.output), "files": len(kept), "h_dim": int(embeddings["h"].shape[1]),
               "layers": int(embeddings["audio_layer_features"].shape[1]),
               "hidden": int(embeddings["audio_layer_features"].shape[2]), "skipped": len(skipped),
               "skipped_files": skipped}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
