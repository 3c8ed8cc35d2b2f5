"""Any corpus as a Hugging Face audiofolder: audio files + ``metadata.csv`` -> the unified schema.

Columns of ``metadata.csv``: ``file_name`` (relative to the folder), a label column, a speaker
column, optional gender and transcript columns (names are arguments). The default protocol is
k folds over speakers, balanced by gender when a gender column exists.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, Features, Value

from .protocol import Fold, Protocol

SCHEMA = Features({name: Value("string") for name in ("id", "audio", "label", "speaker", "gender", "session", "text", "dataset")})


class CorpusLayoutError(ValueError):
    """A corpus folder that does not have the expected layout; the message names what is missing."""


@dataclass
class CorpusData:
    dataset: Dataset
    protocol: Protocol
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, example: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        examples = self.skipped_examples.setdefault(reason, [])
        if len(examples) < 10:
            examples.append(example)


def speaker_folds(speakers: list[str], genders: list[str], k: int) -> list[Fold]:
    """k folds over speakers; speakers of each gender are dealt round-robin so folds mix genders."""
    gender_of = dict(zip(speakers, genders))
    unique = sorted(set(speakers))
    k = min(k, len(unique))
    if k < 2:
        raise CorpusLayoutError(f"speaker-independent folds need at least 2 speakers, found {len(unique)}")
    by_gender: dict[str, list[str]] = {}
    for s in unique:
        by_gender.setdefault(gender_of[s], []).append(s)
    ordered = [s for g in sorted(by_gender) for s in by_gender[g]]
    folds = [[] for _ in range(k)]
    for i, s in enumerate(ordered):
        folds[i % k].append(s)
    return [Fold(f"fold{i + 1}", "speaker", sorted(f)) for i, f in enumerate(folds)]


def load_audiofolder(
    data_dir: str | Path,
    classes: list[str] | None = None,
    folds: int = 5,
    label_column: str = "label",
    speaker_column: str = "speaker",
    text_column: str = "text",
    gender_column: str = "gender",
    skip_bad: bool = False,
) -> CorpusData:
    root = Path(data_dir).expanduser().resolve()
    metadata = root / "metadata.csv" if root.is_dir() else root
    if not metadata.is_file():
        raise CorpusLayoutError(f"{metadata}: not found; an audiofolder needs metadata.csv beside its audio files")
    root = metadata.parent
    with open(metadata, newline="", encoding="utf-8-sig") as f:
        try:
            rows = list(csv.DictReader(f))
        except UnicodeDecodeError as err:
            raise CorpusLayoutError(f"{metadata}: not UTF-8 text ({err})") from None
    if not rows:
        raise CorpusLayoutError(f"{metadata}: no rows")
    for column in ("file_name", label_column, speaker_column):
        if column not in rows[0]:
            raise CorpusLayoutError(f"{metadata}: no column {column!r} (columns: {list(rows[0])})")
    labels_present = list(dict.fromkeys(r[label_column] for r in rows))
    classes = list(classes) if classes else sorted(labels_present)
    unknown = [c for c in classes if c not in labels_present]
    if unknown:
        raise CorpusLayoutError(f"{metadata}: classes {unknown} have no rows (labels present: {labels_present})")
    corpus = CorpusData(dataset=None, protocol=None)
    columns = {name: [] for name in SCHEMA}
    seen = set()
    for line, row in enumerate(rows, start=2):
        name = row["file_name"]
        if name in seen:
            raise CorpusLayoutError(f"{metadata} line {line}: duplicate file_name {name!r}")
        seen.add(name)
        path = (root / name).resolve()
        if root not in path.parents:
            raise CorpusLayoutError(f"{metadata} line {line}: file_name {name!r} points outside {root}")
        if row[label_column] not in classes:
            corpus.skip(f"label not in classes: {row[label_column]}", name)
            continue
        if not row[speaker_column].strip():
            raise CorpusLayoutError(f"{metadata} line {line}: {name} has no speaker")
        if not path.is_file():
            if not skip_bad:
                raise CorpusLayoutError(f"{path}: file listed in {metadata} line {line} is missing")
            corpus.skip("missing file", name)
            continue
        values = {"id": name, "audio": str(path), "label": row[label_column], "speaker": row[speaker_column].strip(),
                  "gender": (row.get(gender_column) or "").strip().lower()[:1], "session": "",
                  "text": (row.get(text_column) or "").strip(), "dataset": root.name}
        for key, value in values.items():
            columns[key].append(value)
    if not columns["id"]:
        raise CorpusLayoutError(f"{metadata}: no usable rows (skipped: {corpus.skipped})")
    corpus.dataset = Dataset.from_dict(columns, features=SCHEMA)
    fold_list = speaker_folds(columns["speaker"], columns["gender"], folds)
    has_gender = any(columns["gender"])
    corpus.protocol = Protocol(
        name=f"{root.name}-{len(fold_list)}fold-speakers",
        description=f"{root.name}: {len(columns['id'])} clips of {len(set(columns['speaker']))} speakers, classes "
                    f"{', '.join(classes)}; speaker-independent {len(fold_list)}-fold cross-validation"
                    + (" (speakers dealt round-robin by gender)" if has_gender else "") + ".",
        classes=classes,
        folds=fold_list,
    )
    return corpus
