"""Faults of issue 15: silent wrong results, lost output, hangs and unbounded memory, unnamed errors.

Each test builds the bad input or fault itself (real EmoDB clips from data/emodb4) and checks that
the package names the problem (or recovers) instead of producing a result."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from datasets_scripts.audiofolder import CorpusLayoutError, load_audiofolder
from tests.conftest import ROOT

HEADER = ["file_name", "label", "speaker", "gender", "text"]


@pytest.fixture
def corpus(tmp_path, emodb_files):
    """An audiofolder of 3 EmoDB speakers x 4 classes x 2 clips (real audio)."""
    root = tmp_path / "corpus"
    picked, count = [], {}
    for row in emodb_files:
        key = (row["speaker"], row["label"])
        if row["speaker"] in ("03", "08", "09") and count.get(key, 0) < 2:
            count[key] = count.get(key, 0) + 1
            picked.append(row)
    for row in picked:
        (root / row["label"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(row["path"], root / row["file_name"])
    write_metadata(root, [[r[c] for c in HEADER] for r in picked])
    return root


def write_metadata(root: Path, rows: list[list[str]], header: list[str] = HEADER) -> None:
    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def read_metadata(root: Path) -> list[list[str]]:
    with open(root / "metadata.csv", newline="", encoding="utf-8") as f:
        return list(csv.reader(f))[1:]


# ---------------------------------------------------------------- silent wrong results: metadata


def test_duplicate_header_column_is_refused(corpus):
    rows = read_metadata(corpus)
    write_metadata(corpus, [r + ["angry"] for r in rows], HEADER + ["label"])
    with pytest.raises(CorpusLayoutError, match=r"metadata\.csv line 1: the header names column 'label' twice"):
        load_audiofolder(corpus, folds=3)


def test_label_case_and_space_variants_are_refused_or_merged_on_request(corpus):
    rows = read_metadata(corpus)
    angry = [i for i, r in enumerate(rows) if r[1] == "angry"]
    rows[angry[1]][1], rows[angry[2]][1] = "ANGRY", "Angry "
    write_metadata(corpus, rows)
    line = angry[1] + 2  # header is line 1
    with pytest.raises(CorpusLayoutError, match=rf"line {line}: 'label' 'ANGRY' differs from 'angry' .*"
                                                rf"'Angry ' .*--normalize_labels"):
        load_audiofolder(corpus, folds=3)
    merged = load_audiofolder(corpus, folds=3, normalize_labels=True)
    assert merged.protocol.classes == ["angry", "happy", "neutral", "sad"]
    assert merged.dataset["label"].count("angry") == len(angry)


def test_row_with_more_cells_than_the_header_names_the_line(corpus):
    rows = read_metadata(corpus)
    rows[3] = rows[3][:4] + ["Der Lappen", " liegt auf dem Eisschrank."]  # an unquoted comma in the transcript
    with open(corpus / "metadata.csv", "w", encoding="utf-8") as f:
        f.write(",".join(HEADER) + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    with pytest.raises(CorpusLayoutError, match=r"line 5: .*6 cells but the header has 5.*must be quoted"):
        load_audiofolder(corpus, folds=3)
    skipped = load_audiofolder(corpus, folds=3, skip_bad=True)
    assert skipped.skipped == {"more cells than the header": 1} and len(skipped.dataset) == len(rows) - 1


def test_a_class_from_one_speaker_stops_before_training(corpus):
    from datasets_scripts import load_corpus
    from datasets_scripts.protocol import FoldCoverageError

    rows = [r for r in read_metadata(corpus) if r[1] != "sad" or r[2] == "03"]
    write_metadata(corpus, rows)
    with pytest.raises(FoldCoverageError, match=r"fold fold\d: class 'sad' has no training clips .*speaker 03"):
        load_corpus("audiofolder", corpus, folds=3)
    flagged = load_corpus("audiofolder", corpus, folds=3, allow_missing_classes=True)
    held_out = [f.name for f in flagged.protocol.folds if "03" in f.test_values]
    assert flagged.untestable == {held_out[0]: ["sad"]}


def test_transcript_column_under_another_name_names_text_column(corpus, caplog):
    rows = read_metadata(corpus)
    write_metadata(corpus, rows, HEADER[:4] + ["transcript"])
    with caplog.at_level(logging.WARNING, logger="mirgan"):
        load_audiofolder(corpus, folds=3)
    assert "--text_column transcript" in caplog.text


# ---------------------------------------------------------------- unnamed errors: files that are not audio


@pytest.mark.parametrize("kind,problem", [
    ("directory", r"not a file \(it is a directory\)"),
    ("fifo", r"not a regular file \(it is a named pipe, FIFO\)"),
    ("loop", r"symbolic link loop"),
    ("broken", r"broken symbolic link"),
])
def test_metadata_row_pointing_at_a_non_file_names_what_it_is(corpus, kind, problem):
    from processing import AudioError, load_audio

    target = corpus / "angry" / "odd.wav"
    if kind == "directory":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "loop":
        os.symlink(target, target)
    else:
        os.symlink(corpus / "nowhere.wav", target)
    write_metadata(corpus, read_metadata(corpus) + [["angry/odd.wav", "angry", "03", "m", "x"]])
    with pytest.raises(CorpusLayoutError, match=rf"'angry/odd\.wav': audio file .*odd\.wav: {problem}"):
        load_audiofolder(corpus, folds=3)
    with pytest.raises(AudioError, match=rf"odd\.wav: {problem}"):
        load_audio(target)


def test_unreadable_file_is_named_permission_denied(tmp_path, emodb_files, monkeypatch):
    from processing import AudioError, load_audio

    clip = tmp_path / "locked.wav"
    shutil.copy(emodb_files[0]["path"], clip)
    clip.chmod(0)
    if os.geteuid() == 0:  # root reads any file: make open() fail the way it does for a user
        import builtins

        real_open = builtins.open

        def denying_open(file, *args, **kwargs):
            if str(file) == str(clip):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", denying_open)
    with pytest.raises(AudioError, match=r"locked\.wav: permission denied"):
        load_audio(clip)
