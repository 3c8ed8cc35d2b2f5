"""Any corpus as a Hugging Face audiofolder: audio files + ``metadata.csv`` -> the unified schema.

Columns of ``metadata.csv``: ``file_name`` (relative to the folder), a label column, a speaker
column, optional gender and transcript columns (names are arguments). The default protocol is
k folds over speakers, balanced by gender when a gender column exists.

A bad row (not UTF-8, no file_name, a file_name outside the folder, a duplicate, an empty label or
speaker, a missing audio file) stops loading with an error naming metadata.csv, the line and the
file; with ``skip_bad`` it is skipped and counted in ``CorpusData.skipped``. Rows whose label is not
in ``classes`` are always dropped and counted.
"""

from __future__ import annotations

import csv
import io
import os
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
    # Undecodable bytes become lone surrogates: the rows holding them are reported by line, not the whole file.
    text = metadata.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as err:
        raise CorpusLayoutError(f"{metadata} line {reader.line_num}: not valid CSV ({err})") from None
    if not rows:
        raise CorpusLayoutError(f"{metadata}: no rows")
    for column in ("file_name", label_column, speaker_column):
        if column not in (reader.fieldnames or []):
            raise CorpusLayoutError(f"{metadata}: no column {column!r} (columns: {reader.fieldnames})")

    def cell(row: dict, column: str) -> str:
        return (row.get(column) or "").strip()  # a short row leaves its last cells None

    labels_present = list(dict.fromkeys(cell(r, label_column) for _, r in rows if cell(r, label_column)))
    classes = list(classes) if classes else sorted(labels_present)
    unknown = [c for c in classes if c not in labels_present]
    if unknown:
        raise CorpusLayoutError(f"{metadata}: classes {unknown} have no rows (labels present: {labels_present})")
    corpus = CorpusData(dataset=None, protocol=None)
    columns = {name: [] for name in SCHEMA}
    seen = set()

    def bad(line: int, name: str, problem: str, reason: str) -> None:
        """Stop naming the line and file, or with skip_bad count the row under ``reason``."""
        if not skip_bad:
            raise CorpusLayoutError(f"{metadata} line {line}: {name!r}: {problem} (pass --skip_bad to skip such rows)")
        corpus.skip(reason, name or f"line {line}")

    for line, row in rows:
        name = cell(row, "file_name")
        undecodable = [c for c, v in row.items() if isinstance(v, str) and any("\udc80" <= ch <= "\udcff" for ch in v)]
        if undecodable:
            bad(line, name, f"column {undecodable[0]!r} is not UTF-8 text; save metadata.csv as UTF-8", "metadata row not UTF-8")
            continue
        if not name:
            bad(line, name, "no file_name", "no file_name")
            continue
        relative = Path(os.path.normpath(name))
        if relative.is_absolute() or relative.parts[:1] == ("..",):
            bad(line, name, f"file_name points outside the dataset folder {root}", "file_name outside the dataset folder")
            continue
        if str(relative) in seen:
            bad(line, name, "duplicate file_name (listed on an earlier line)", "duplicate file_name")
            continue
        seen.add(str(relative))
        label = cell(row, label_column)
        if not label:
            bad(line, name, f"empty {label_column!r}", "empty label")
            continue
        if label not in classes:  # --classes selects labels: the others are dropped and counted, not errors
            corpus.skip(f"label not in classes: {label}", name)
            continue
        speaker = cell(row, speaker_column)
        if not speaker:
            bad(line, name, f"empty {speaker_column!r}", "no speaker")
            continue
        path = root / relative
        if not path.is_file():
            bad(line, name, f"audio file {path} is missing", "missing file")
            continue
        values = {"id": str(relative), "audio": str(path), "label": label, "speaker": speaker,
                  "gender": cell(row, gender_column).lower()[:1], "session": "",
                  "text": cell(row, text_column), "dataset": root.name}
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
