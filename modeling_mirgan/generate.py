"""Write synthetic emotion features from a trained mirgan generator as a ``datasets.Dataset``.

    python -m modeling_mirgan.generate --model outputs/emodb4-unimodal/model --num_per_class 500 --output synth/

The folder holds the dataset (``save_to_disk``), a dataset card ``README.md`` and ``metrics.json``
with the generator's MI quality metrics. The same seed gives the same features.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from datasets import ClassLabel, Dataset, Features, Sequence, Value


def features_dataset(generated, model) -> Dataset:
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    d = generated.features.shape[1]
    columns = {"features": generated.features.tolist(), "label": generated.labels.tolist()}
    schema = {"features": Sequence(Value("float32"), length=d), "label": ClassLabel(names=names)}
    if generated.text_features is not None:
        columns["text_features"] = generated.text_features.tolist()
        schema["text_features"] = Sequence(Value("float32"), length=d)
    return Dataset.from_dict(columns, features=Features(schema))


def dataset_card(model_dir: str, model, metrics: dict, num_per_class: int, seed: int) -> str:
    return f"""---
tags: [mirgan, synthetic, speech-emotion-recognition, features]
---
# Synthetic emotion features from `{model_dir}`

{num_per_class} generated features per class ({", ".join(model.config.id2label.values())}), seed {seed}, from the
mirgan generator of that model. They are vectors in the model's shared audio-text space
(dimension {model.config.projection_dim}), not audio: use them to train or probe classifiers on this model's features.

Generator quality (MI metrics): {json.dumps({k: round(v, 4) for k, v in metrics.items()})}

Regenerate: `python -m modeling_mirgan.generate --model {model_dir} --num_per_class {num_per_class} --seed {seed} --output DIR`
"""


def main(argv: list[str] | None = None):
    import modeling_mirgan  # noqa: F401
    from processing import MirganProcessor

    from .modeling_mirgan import MirganForEmotionClassification

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--num_per_class", type=int, default=100)
    parser.add_argument("--labels", nargs="*", help="default: every class")
    parser.add_argument("--text", nargs="*", help="transcripts that condition a text-conditioned generator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True)
    parser.add_argument("--push_to_hub", metavar="REPO_ID", help="also push the dataset as a Hub dataset repo")
    args = parser.parse_args(argv)
    model = MirganForEmotionClassification.from_pretrained(args.model)
    processor = MirganProcessor.from_pretrained(args.model) if args.text else None
    generated = model.generate_features(args.labels, args.num_per_class, args.text, processor, args.seed)
    dataset = features_dataset(generated, model)
    out = Path(args.output)
    dataset.save_to_disk(str(out))
    (out / "README.md").write_text(dataset_card(args.model, model, generated.metrics, args.num_per_class, args.seed))
    (out / "metrics.json").write_text(json.dumps(generated.metrics, indent=2))
    print(json.dumps(generated.metrics))
    if args.push_to_hub:
        from .hub import push_dataset

        push_dataset(out, args.push_to_hub)
    return dataset, generated.metrics


if __name__ == "__main__":
    main()
