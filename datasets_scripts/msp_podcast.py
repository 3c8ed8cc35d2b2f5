"""MSP-Podcast from its release layout -> the unified schema.

Layout read (``MSP-PODCAST-Publish-1.x`` / 2.0 as distributed by the UTD MSP lab)::

    <root>/Labels/labels_consensus.csv   FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set
    <root>/Audios/<FileName>              e.g. Audios/MSP-PODCAST_0001_0008.wav
    <root>/Transcripts/<name>.txt         e.g. Transcripts/MSP-PODCAST_0001_0008.txt (optional)

Older releases name the label file ``labels_concensus.csv`` and the audio folder ``Audio``; both
spellings are accepted. EmoClass codes: A angry, S sad, H happy, U surprise, F fear, D disgust,
C contempt, N neutral, O other, X no agreement (O and X are skipped in every protocol). EmoAct,
EmoVal and EmoDom are the mean arousal, valence and dominance ratings (1-7). SpkrID is a number or
``Unknown``: segments whose speaker was not identified share the value ``Unknown``, which is kept
as it is but is NOT one person (the description counts them). Gender ``Male``/``Female`` -> m/f,
``Unknown`` -> empty.

Protocol: the official partitions, not cross-validation. ``Split_Set`` (kept as the ``split``
column) is Train, Development, Test1, Test2 and, in 2.0, Test3 (releases before ~1.8 call the
development set ``Validation``; it is used the same way). One fold per test set:
``Fold("test1", column="split", test_values=["Test1"], train_values=["Train"],
validation_values=["Development"])`` and likewise for Test2/Test3. Test1 is the primary test set;
Test2 was collected without the retrieval-based sampling (reported separately); Test3 is the
emotion-balanced set of the 2024 challenge (its labels may be withheld).

- ``4class`` (default): A, H, N, S -> angry, happy, neutral, sad.
- ``8class``: A, S, H, U, F, D, C, N -> angry, sad, happy, surprised, fearful, disgust, contempt,
  neutral (the Odyssey 2024 challenge's categorical task).

Sources relied on: public MSP-Podcast loaders reading ``Labels/labels_consensus.csv`` with these
columns and ``Audios/<FileName>``, transcript loaders reading ``Transcripts/<stem>.txt``, the
older ``labels_concensus.csv`` spelling with ``Validation``/``Test1``/``Test2`` split names (v1.6-1.8
recipes), and descriptions of Test1/Test2/Test3 from public data-file scripts and the corpus paper.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from datasets import Value

from .audiofolder import CorpusData, CorpusLayoutError, check_header, extra_cells
from .iemocap import (build_dataset, class_counts, empty_file, keep_label, missing_file, pick_classes, pick_protocol,
                      skipped_text)
from .protocol import Fold, Protocol

LABEL_FILES = ("labels_consensus.csv", "labels_concensus.csv")
AUDIO_DIRS = ("Audios", "Audio")
COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
NO_CLASS = {"O": "EmoClass O (other)", "X": "EmoClass X (no agreement)"}
CODE_NAMES = {"A": "angry", "S": "sad", "H": "happy", "U": "surprised", "F": "fearful", "D": "disgust", "C": "contempt",
              "N": "neutral"}
PROTOCOLS = {
    "4class": {"map": {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"},
               "classes": ["angry", "happy", "neutral", "sad"],
               "about": "EmoClass A/H/N/S -> angry/happy/neutral/sad"},
    "8class": {"map": {"A": "angry", "S": "sad", "H": "happy", "U": "surprised", "F": "fearful", "D": "disgust",
                       "C": "contempt", "N": "neutral"},
               "classes": ["angry", "sad", "happy", "surprised", "fearful", "disgust", "contempt", "neutral"],
               "about": "EmoClass A/S/H/U/F/D/C/N -> angry/sad/happy/surprised/fearful/disgust/contempt/neutral"},
}
EXTRA = {"arousal": Value("float32"), "valence": Value("float32"), "dominance": Value("float32"),
         "split": Value("string"), "podcast": Value("string"), "raw_label": Value("string")}
LAYOUT = ("MSP-Podcast needs Labels/labels_consensus.csv (columns " + ", ".join(COLUMNS) + "), Audios/<FileName> "
          "and optionally Transcripts/<name>.txt")


def _float(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def load_msp_podcast(data_dir: str | Path, protocol: str | None = None, skip_bad: bool = False,
                     classes: list[str] | None = None) -> CorpusData:
    """MSP-Podcast release folder -> CorpusData (official Train/Development/Test partitions)."""
    name, spec = pick_protocol("msp_podcast", protocol, PROTOCOLS, "4class")
    classes = pick_classes("msp_podcast", name, spec["classes"], classes)
    root = Path(data_dir).expanduser().resolve()
    label_file = next((root / "Labels" / n for n in LABEL_FILES if (root / "Labels" / n).is_file()), None)
    if label_file is None:
        raise CorpusLayoutError(f"{root / 'Labels' / LABEL_FILES[0]}: not found; {LAYOUT}")
    audio_dir = next((root / d for d in AUDIO_DIRS if (root / d).is_dir()), None)
    if audio_dir is None:
        raise CorpusLayoutError(f"{root / AUDIO_DIRS[0]}: not found; {LAYOUT}")
    transcript_dir = root / "Transcripts"
    with open(label_file, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in check_header(label_file, reader.fieldnames)]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise CorpusLayoutError(f"{label_file}: no column(s) {missing} (columns: {header}); {LAYOUT}")
        records = []
        for row in reader:
            extra = extra_cells(row)
            if extra is not None:  # the extra cells would be dropped and the others misread
                raise CorpusLayoutError(f"{label_file} line {reader.line_num}: the row has {len(header) + len(extra)} "
                                        f"cells but the header has {len(header)} (extra: {extra})")
            records.append({(k or "").strip(): (v or "").strip() for k, v in row.items()})
    audio_files = {p.name for p in audio_dir.iterdir()}
    transcripts = ({p.stem: p for p in transcript_dir.glob("*.txt") if not p.name.startswith("._")}
                   if transcript_dir.is_dir() else {})

    corpus = CorpusData(dataset=None, protocol=None)
    rows, seen = [], set()
    for line, rec in enumerate(records, start=2):
        file_name = rec["FileName"]
        utt = Path(file_name).stem
        if not file_name:
            raise CorpusLayoutError(f"{label_file} line {line}: empty FileName")
        if utt in seen:
            corpus.skip("duplicate label line", utt)
            continue
        seen.add(utt)
        code = rec["EmoClass"].upper()
        if not code:
            corpus.skip("no EmoClass (label withheld or missing)", utt)
            continue
        if code in NO_CLASS:
            corpus.skip(NO_CLASS[code], utt)
            continue
        label = spec["map"].get(code)
        if not keep_label(corpus, label, f"{CODE_NAMES.get(code, '?')} ({code})", name, classes, utt):
            continue
        wav = audio_dir / file_name
        if file_name not in audio_files or not wav.is_file():
            missing_file(corpus, wav, skip_bad, f"{label_file.name} line {line}", utt)
            continue
        if empty_file(corpus, wav, skip_bad, utt):
            continue
        text = ""
        if utt in transcripts:
            text = " ".join(transcripts[utt].read_text(encoding="utf-8", errors="replace").split())
        gender = rec["Gender"].lower()
        parts = utt.split("_")
        rows.append({"id": utt, "audio": str(wav), "label": label, "speaker": rec["SpkrID"] or "Unknown",
                     "gender": gender[:1] if gender in ("male", "female", "m", "f") else "", "session": "",
                     "text": text, "dataset": "msp_podcast", "arousal": _float(rec["EmoAct"]),
                     "valence": _float(rec["EmoVal"]), "dominance": _float(rec["EmoDom"]), "split": rec["Split_Set"],
                     "podcast": parts[1] if len(parts) > 2 else "", "raw_label": code})
    corpus.dataset = build_dataset(rows, EXTRA, classes, label_file, corpus)

    splits = set(corpus.dataset["split"])
    if "Train" not in splits:
        raise CorpusLayoutError(f"{label_file}: no kept row has Split_Set 'Train' (splits: {sorted(splits)}); {LAYOUT}")
    validation = next((v for v in ("Development", "Validation") if v in splits), None)
    tests = sorted(s for s in splits if s.startswith("Test"))
    if not tests:
        raise CorpusLayoutError(f"{label_file}: no kept row has a Split_Set Test1/Test2/... (splits: {sorted(splits)})")
    folds = [Fold(t.lower(), "split", [t], train_values=["Train"],
                  validation_values=[validation] if validation else None) for t in tests]
    per_split = {s: sum(1 for v in corpus.dataset["split"] if v == s) for s in sorted(splits)}
    unknown = sum(1 for s in corpus.dataset["speaker"] if s == "Unknown")
    n_text = sum(1 for t in corpus.dataset["text"] if t)
    corpus.protocol = Protocol(
        name=f"msp_podcast-{name}-official",
        description=(f"MSP-Podcast ({root}), protocol {name}: {spec['about']}. {len(corpus.dataset)} segments "
                     f"({class_counts(corpus.dataset, classes)}). Official partitions {per_split}: train on Train, "
                     f"select on {validation or '(no development set)'}, one fold per test set ({', '.join(tests)}; "
                     f"Test1 is the primary one). {unknown} segments have speaker 'Unknown' (unidentified speakers "
                     f"sharing one placeholder, not one person). Transcripts for {n_text} segments. "
                     f"{skipped_text(corpus)}."),
        classes=classes,
        folds=folds,
    )
    return corpus
