"""Any ``datasets`` dataset -> the unified schema: a ``save_to_disk`` folder, a Hub repo (read from the
Hub cache when offline) or ``audiofolder`` with a ``data_dir``.

Columns map by name (``audio_column``, ``label_column``, ...); a missing one stops loading with the flag
to pass and the column that probably means it. A ``ClassLabel`` label is read as its names. The audio
column is read undecoded (``Audio(decode=False)``, no torchcodec): a row's file is used where it
exists, else its encoded bytes are written once to ``audio_dir/<fingerprint>/`` (train.py:
``$MIRGAN_CACHE/datasets``), so the rest of training decodes (soundfile), sorts and caches files as
it does for every other corpus.
The protocol is k speaker folds, balanced by gender when a gender column exists.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from datasets import Audio, ClassLabel, Dataset, DatasetDict, concatenate_datasets, load_dataset, load_from_disk

from .audiofolder import SCHEMA, TEXT_COLUMN_NAMES, CorpusData, CorpusLayoutError, logger, speaker_folds, suggest_column
from .protocol import Protocol, check_folds_cover_classes

# columns that usually hold what the flag names, for the "did you mean" of a missing column
KNOWN_COLUMNS = {
    "--audio_column": ("audio", "file", "path", "file_name", "wav", "speech"),
    "--label_column": ("label", "emotion", "emotions", "labels", "class", "category"),
    "--speaker_column": ("speaker", "speaker_id", "spk", "spk_id", "actor", "client_id"),
    "--text_column": TEXT_COLUMN_NAMES,
}


def open_dataset(name: str, config: str | None = None, split: str | None = None, data_dir: str | None = None) -> Dataset:
    """The dataset behind ``--dataset_name``: a ``save_to_disk`` folder or anything ``load_dataset`` reads.
    Without ``split``, the splits are joined: speaker folds, not the dataset's splits, test."""
    folder = Path(name).expanduser()
    try:
        if (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file():
            data = load_from_disk(str(folder))
        else:
            data = load_dataset(name, config, data_dir=data_dir)
    except (FileNotFoundError, ConnectionError, ValueError) as err:
        raise CorpusLayoutError(f"--dataset_name {name!r}: {err}") from None
    if isinstance(data, DatasetDict):
        if split is None:
            return concatenate_datasets(list(data.values()))
        if split not in data:
            raise CorpusLayoutError(f"--dataset_split {split!r}: {name} has the splits {list(data)}")
        return data[split]
    return data


def column(data: Dataset, name: str, wanted: str, flag: str) -> str:
    """``wanted`` if the dataset has it; else CorpusLayoutError naming ``flag`` and a likely column."""
    if wanted in data.column_names:
        return wanted
    like = suggest_column(wanted, data.column_names, KNOWN_COLUMNS[flag])
    hint = f"; did you mean {like!r}? pass {flag} {like}" if like else ""
    raise CorpusLayoutError(f"{name}: no column {wanted!r} for {flag} (columns: {data.column_names}){hint}")


def audio_file(value, store: Path, index: int) -> str | None:
    """A file holding the row's audio: its own path when that file exists, else its bytes written to ``store``."""
    path, data = (value.get("path"), value.get("bytes")) if isinstance(value, dict) else (value, None)
    if path and Path(path).is_file():
        return str(Path(path).resolve())
    if not data:
        return None
    target = store / f"{index:07d}{Path(path or '').suffix or '.wav'}"
    if not target.is_file():  # written under a temporary name: a concurrent rank never reads half a file
        store.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=store, delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, target)
    return str(target)


def load_hf_dataset(name: str, audio_dir: Path, config: str | None = None, split: str | None = None, data_dir: str | None = None,
                    audio_column: str = "audio", label_column: str = "label", speaker_column: str = "speaker",
                    text_column: str = "text", gender_column: str = "gender", classes: list[str] | None = None,
                    folds: int = 5, skip_bad: bool = False, allow_missing_classes: bool = False) -> CorpusData:
    """``open_dataset`` mapped onto the unified schema with speaker folds (see the module docstring); every
    fold's training part must hold every class, as ``load_corpus`` checks (``allow_missing_classes``)."""
    data = open_dataset(name, config, split, data_dir)
    audio_column = column(data, name, audio_column, "--audio_column")
    label_column = column(data, name, label_column, "--label_column")
    speaker_column = column(data, name, speaker_column, "--speaker_column")
    if text_column not in data.column_names:
        like = suggest_column(text_column, data.column_names, TEXT_COLUMN_NAMES)
        if like is not None:
            logger.warning("%s: no column %r, but column %r looks like transcripts; pass --text_column %s to use "
                           "it (the corpus is loaded without transcripts)", name, text_column, like, like)
    if isinstance(data.features[audio_column], Audio):
        data = data.cast_column(audio_column, Audio(decode=False))
    labels = data.features[label_column]
    label_of = labels.int2str if isinstance(labels, ClassLabel) else lambda v: "" if v is None else str(v).strip()
    store = Path(audio_dir) / data._fingerprint
    title = Path(name).name
    corpus = CorpusData(dataset=None, protocol=None)
    columns = {key: [] for key in SCHEMA}
    wanted = set(classes or [])
    for i, row in enumerate(data):
        label, speaker = label_of(row[label_column]), str(row[speaker_column] or "").strip()
        problem = "empty label" if not label else "no speaker" if not speaker else None
        if wanted and label and label not in wanted:  # --classes selects labels: the others are dropped and counted
            corpus.skip(f"label not in classes: {label}", f"row {i}")
            continue
        path = audio_file(row[audio_column], store, i) if problem is None else None
        problem = problem or ("no audio (neither an existing file nor bytes)" if path is None else None)
        if problem is not None:
            if not skip_bad:
                raise CorpusLayoutError(f"{name} row {i}: {problem} (pass --skip_bad to skip such rows)")
            corpus.skip(problem, f"row {i}")
            continue
        values = {"id": str(row.get("id") or f"{title}/{i:07d}"), "audio": path, "label": label, "speaker": speaker,
                  "gender": str(row.get(gender_column) or "").lower()[:1], "session": "",
                  "text": str(row.get(text_column) or "").strip(), "dataset": title}
        for key, value in values.items():
            columns[key].append(value)
    if not columns["id"]:
        raise CorpusLayoutError(f"{name}: no usable rows (skipped: {corpus.skipped})")
    present = sorted(set(columns["label"]))
    classes = list(classes) if classes else present
    unknown = [c for c in classes if c not in present]
    if unknown:
        raise CorpusLayoutError(f"{name}: classes {unknown} have no rows (labels present: {present})")
    corpus.dataset = Dataset.from_dict(columns, features=SCHEMA)
    fold_list = speaker_folds(columns["speaker"], columns["gender"], folds)
    corpus.protocol = Protocol(
        name=f"{title}-{len(fold_list)}fold-speakers",
        description=f"{title}: {len(columns['id'])} clips of {len(set(columns['speaker']))} speakers, classes "
                    f"{', '.join(classes)}; speaker-independent {len(fold_list)}-fold cross-validation.",
        classes=classes,
        folds=fold_list,
    )
    corpus.untestable = check_folds_cover_classes(corpus.dataset, corpus.protocol, allow_missing_classes)
    return corpus
