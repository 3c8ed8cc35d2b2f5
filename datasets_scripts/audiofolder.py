"""Any corpus as a Hugging Face audiofolder: audio files + ``metadata.csv`` -> the unified schema.

Columns of ``metadata.csv``: ``file_name`` (relative to the folder), a label column, a speaker
column, optional gender and transcript columns (names are arguments). The default protocol is
k folds over speakers, balanced by gender when a gender column exists.

A bad row (not UTF-8, no file_name, a file_name outside the folder, a duplicate, an empty label or
speaker, more cells than the header, an audio file that is missing, a directory, a FIFO, a broken
or looping link or unreadable) stops loading with an error naming metadata.csv, the line and the
file; with ``skip_bad`` it is skipped and counted in ``CorpusData.skipped``. Rows whose label is not
in ``classes`` are always dropped and counted.

Ambiguous metadata is an error, never a guess: a header that names a column twice, and labels that
differ only in case or spacing (``ANGRY``, ``Angry `` and ``angry``), which would otherwise become
separate classes; ``normalize_labels=True`` (``--normalize_labels``) merges such variants into one
lower-case label.
"""

from __future__ import annotations

import csv
import difflib
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, Features, Value

from processing.audio import file_problem

from .protocol import Fold, Protocol

logger = logging.getLogger("mirgan")
# columns that usually hold the transcript when ``text`` is absent
TEXT_COLUMN_NAMES = ("text", "transcript", "transcription", "transcripts", "sentence", "utterance", "words",
                     "normalized_text", "raw_text", "caption")

SCHEMA = Features({name: Value("string") for name in ("id", "audio", "label", "speaker", "gender", "session", "text", "dataset")})


class CorpusLayoutError(ValueError):
    """A corpus folder that does not have the expected layout; the message names what is missing."""


@dataclass
class CorpusData:
    dataset: Dataset
    protocol: Protocol
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    untestable: dict[str, list[str]] = field(default_factory=dict)  # fold -> classes without training clips

    def skip(self, reason: str, example: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        examples = self.skipped_examples.setdefault(reason, [])
        if len(examples) < 10:
            examples.append(example)


def check_header(path: Path, fieldnames: list[str] | None) -> list[str]:
    """The header's column names, or CorpusLayoutError when one is empty or named twice (line 1)."""
    names = list(fieldnames or [])
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        key = (name or "").strip().casefold()
        if not key:
            raise CorpusLayoutError(f"{path} line 1: column {i + 1} of the header has no name (header: {names})")
        if key in seen:
            first = names[seen[key]]
            same = "" if first == name else " (differing only in case or spaces)"
            raise CorpusLayoutError(
                f"{path} line 1: the header names column {name!r} twice{same}, columns {seen[key] + 1} and {i + 1}: "
                f"which one holds the values is ambiguous; rename or remove one (header: {names})")
        seen[key] = i
    return names


def extra_cells(row: dict) -> list[str] | None:
    """The cells of a csv.DictReader row beyond the header (restkey None), or None."""
    extra = row.get(None)
    return list(extra) if extra else None


def suggest_column(wanted: str, columns: list[str], known: tuple[str, ...] = ()) -> str | None:
    """A column of ``columns`` that probably means ``wanted`` (case, a known synonym, a close spelling)."""
    folded = {c.casefold(): c for c in columns if c}
    if wanted.casefold() in folded and folded[wanted.casefold()] != wanted:
        return folded[wanted.casefold()]
    for name in known:
        if name != wanted and name in folded:
            return folded[name]
    close = difflib.get_close_matches(wanted.casefold(), list(folded), n=1, cutoff=0.75)
    return folded[close[0]] if close else None


def label_key(label: str) -> str:
    """Labels that differ only in case or spacing share this key."""
    return " ".join(label.split()).casefold()


def check_label_variants(metadata: Path, labelled: list[tuple[int, str, str]], column: str) -> None:
    """CorpusLayoutError when two spellings of ``column`` differ only in case or spacing.

    ``labelled`` holds (line, raw cell, stripped label). The error names the first line of the
    second spelling, every spelling with its first line and count, and the way out."""
    spellings: dict[str, dict[str, list]] = {}
    for line, raw, label in labelled:
        entry = spellings.setdefault(label_key(label), {}).setdefault(raw, [line, 0])
        entry[1] += 1
    for key, variants in spellings.items():
        if len(variants) > 1:
            ordered = sorted(variants.items(), key=lambda kv: kv[1][0])
            line = ordered[1][1][0]
            listed = ", ".join(f"{raw!r} ({n} rows, first on line {first})" for raw, (first, n) in ordered)
            raise CorpusLayoutError(
                f"{metadata} line {line}: {column!r} {ordered[1][0]!r} differs from {ordered[0][0]!r} (line "
                f"{ordered[0][1][0]}) only in case or spacing; variants: {listed}. They would become separate "
                f"classes: fix the file, or pass --normalize_labels (normalize_labels=True) to merge them as {key!r}")


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
    normalize_labels: bool = False,
) -> CorpusData:
    """Load an audiofolder; see the module docstring for what stops loading and what is counted.

    ``normalize_labels``: merge labels that differ only in case or spacing into one lower-case
    label (and match ``classes`` the same way) instead of refusing them."""
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
    header = check_header(metadata, reader.fieldnames)
    if not rows:
        raise CorpusLayoutError(f"{metadata}: no rows")
    flags = {label_column: "--label_column", speaker_column: "--speaker_column"}
    for column in ("file_name", label_column, speaker_column):
        if column not in header:
            like = suggest_column(column, header)
            hint = (f"; did you mean {like!r}? pass {flags[column]} {like}" if like and column in flags
                    else f"; did you mean {like!r}?" if like else "")
            raise CorpusLayoutError(f"{metadata}: no column {column!r} (columns: {header}){hint}")
    if text_column not in header:
        like = suggest_column(text_column, header, TEXT_COLUMN_NAMES)
        if like is not None:
            logger.warning("%s: no column %r, but column %r looks like transcripts; pass --text_column %s to use "
                           "it (the corpus is loaded without transcripts)", metadata, text_column, like, like)

    def raw_cell(row: dict, column: str) -> str:
        return row.get(column) or ""  # a short row leaves its last cells None

    def cell(row: dict, column: str) -> str:
        return raw_cell(row, column).strip()

    if not normalize_labels:
        check_label_variants(metadata, [(line, raw_cell(r, label_column), cell(r, label_column)) for line, r in rows
                                        if cell(r, label_column) and not extra_cells(r)], label_column)

    def label_of(row: dict) -> str:
        label = cell(row, label_column)
        return label_key(label) if normalize_labels else label

    labels_present = list(dict.fromkeys(label_of(r) for _, r in rows if label_of(r) and not extra_cells(r)))
    if classes and normalize_labels:
        classes = list(dict.fromkeys(label_key(str(c)) for c in classes))
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
        extra = extra_cells(row)
        if extra is not None:
            bad(line, name, f"the row has {len(header) + len(extra)} cells but the header has {len(header)} "
                f"(extra: {extra}); a comma inside a value (e.g. in the transcript) must be quoted",
                "more cells than the header")
            continue
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
        label = label_of(row)
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
        problem = file_problem(path)
        if problem is not None and problem[1] != "file is empty":  # empty files are counted when decoded
            if problem[1] == "file not found":
                bad(line, name, f"audio file {path} is missing", "missing file")
            else:
                bad(line, name, f"audio file {path}: {problem[0]}", f"audio file {problem[1]}")
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
