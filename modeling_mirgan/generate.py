"""Write synthetic emotion features from a trained mirgan generator as a ``datasets.Dataset``.

    python -m modeling_mirgan.generate --model outputs/emodb4-unimodal/model --num_per_class 500 --output synth/

The folder holds the dataset (``save_to_disk``), a dataset card ``README.md`` and ``metrics.json``
with the generator's MI quality metrics. The same seed gives the same features.

``--output`` must be a new folder, an empty one, or one this command wrote before (it carries a
``.mirgan-generated`` marker): a model folder or any other folder is never written into. The
dataset is written to a temporary folder beside it and swapped in whole (``safe_io.replace_folder``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

MARKER = ".mirgan-generated"  # written into every output folder: only such a folder is ever replaced


def features_dataset(generated, model):
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    d = generated.features.shape[1]
    columns = {"features": generated.features.tolist(), "label": generated.labels.tolist()}
    schema = {"features": Sequence(Value("float32"), length=d), "label": ClassLabel(names=names)}
    if generated.text_features is not None:
        columns["text_features"] = generated.text_features.tolist()
        schema["text_features"] = Sequence(Value("float32"), length=d)
    return Dataset.from_dict(columns, features=Features(schema))


def output_problem(out: Path) -> str | None:
    """Why ``out`` must not be written, or None: it is new, empty, or an earlier output of this command."""
    if out.is_symlink() and not out.exists():
        return "is a broken symbolic link"
    if not out.exists():
        return None
    if not out.is_dir():
        return "exists and is a file, not a folder"
    entries = [p.name for p in out.iterdir()]
    if not entries or MARKER in entries:
        return None
    if "config.json" in entries or any(name.endswith(".safetensors") for name in entries):
        what = "holds a model (config.json / safetensors)"
    else:
        what = f"is a folder this command did not create ({len(entries)} entries, e.g. {sorted(entries)[0]!r})"
    return f"{what}; refusing to write into it. Choose a new folder for the synthetic dataset"


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
    parser = argparse.ArgumentParser(prog="python -m modeling_mirgan.generate", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="a saved model folder or Hub id")
    parser.add_argument("--num_per_class", type=positive_int("--num_per_class"), default=100,
                        help="generated features per class")
    parser.add_argument("--labels", nargs="*", help="classes to generate (default: every class)")
    parser.add_argument("--text", nargs="*", help="transcripts that condition a text-conditioned generator")
    parser.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same features")
    parser.add_argument("--output", required=True,
                        help="a new (or empty) folder, or an earlier output of this command, for the dataset")
    parser.add_argument("--push_to_hub", metavar="REPO_ID", help="also push the dataset as a Hub dataset repo")
    return parser


def main(argv: list[str] | None = None):
    parser = build_parser()
    args = parser.parse_args(argv)  # before any heavy import: --help and bad flags answer at once
    if args.labels is not None:
        if not args.labels or any(not label.strip() for label in args.labels):
            parser.error("--labels needs at least one class name (omit it to generate every class)")
        repeated = sorted({l for l in args.labels if args.labels.count(l) > 1})
        if repeated:
            parser.error(f"--labels repeats {repeated}")
    if args.text is not None and (not args.text or any(not t.strip() for t in args.text)):
        parser.error("--text needs at least one non-empty transcript")
    out = Path(args.output)
    problem = output_problem(out)
    if problem:
        parser.error(f"--output {out}: {problem}")
    if args.labels is not None and args.num_per_class * len(args.labels) < 2:
        parser.error("--num_per_class 1 with one label is a single sample: the quality metrics (covariance, "
                     "Fréchet distance) need at least 2; ask for more samples")

    import modeling_mirgan  # noqa: F401
    from processing import MirganProcessor

    from .modeling_mirgan import MirganForEmotionClassification
    from .safe_io import replace_folder, write_bytes_atomic

    try:
        model = MirganForEmotionClassification.from_pretrained(args.model)
        processor = MirganProcessor.from_pretrained(args.model) if args.text else None
    except (OSError, ValueError) as err:
        parser.exit(1, f"error: cannot load the model {args.model}: {err}\n")
    known = [model.config.id2label[i] for i in range(model.config.num_labels)]
    unknown = [l for l in args.labels or [] if l not in known]
    if unknown:
        parser.error(f"--labels {unknown}: not classes of this model; it knows {known}")
    if args.labels is None and args.num_per_class * len(known) < 2:
        parser.error("--num_per_class 1 of a one-class model is a single sample; the quality metrics need at least 2")
    generated = model.generate_features(args.labels, args.num_per_class, args.text, processor, args.seed)
    from .card import dataset_card

    dataset = features_dataset(generated, model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        dataset.save_to_disk(str(tmp))
        (tmp / "README.md").write_text(dataset_card(args.model, model, generated.metrics, args.num_per_class, args.seed))
        (tmp / "metrics.json").write_text(json.dumps(generated.metrics, indent=2))
        write_bytes_atomic(tmp / MARKER, json.dumps({"model": str(args.model), "seed": args.seed}).encode())
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # an empty folder: replaced by the new one
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(json.dumps(generated.metrics))
    if args.push_to_hub:
        from .hub import push_dataset

        push_dataset(out, args.push_to_hub)
    return dataset, generated.metrics


if __name__ == "__main__":
    main()
