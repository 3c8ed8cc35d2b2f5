"""IEMOCAP from its official release layout -> the unified schema.

Layout read (``IEMOCAP_full_release`` as distributed by USC SAIL; ``data_dir`` may be that folder
or its parent)::

    IEMOCAP_full_release/Session1..Session5/
        dialog/EmoEvaluation/<dialog>.txt      consensus labels, one block per turn
        dialog/transcriptions/<dialog>.txt     transcripts
        sentences/wav/<dialog>/<utterance>.wav  one WAV per turn

``EmoEvaluation`` block headers are tab separated, ``[START - END]\\tTURN\\tEMOTION\\t[V, A, D]``,
e.g. ``[6.2901 - 8.2357]\\tSes01F_impro01_F000\\tneu\\t[2.5000, 2.5000, 2.5000]``; the triple is
valence, activation (arousal), dominance on a 1-5 scale. The per-annotator lines that follow each
header (``C-E1:``, ``A-F1:`` ...) and the ``%`` header lines are ignored, as are the Categorical/,
Attribute/ and Self-evaluation/ sub-folders. Transcript lines are
``Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.``; lines for turns without a label (overlaps,
``MXX``/``FXX`` turns) are ignored. Emotion codes: ang, hap, exc, sad, neu, fru, fea, sur, dis, oth
and xxx (no majority among the annotators).

Speaker: the session and the gender of the turn's speaker, which is the first letter of the last
``_`` part of the turn name (``Ses01F_impro01_M012`` -> speaker ``Ses01M``, gender ``m``); the
letter after ``Ses01`` is the gender of the actor wearing the markers, not of the speaker.
Improvised dialogs have ``impro`` in their name, scripted ones ``script``.

Protocols (folds: leave one session out, 5 folds over the ``session`` column ``Session1..5``):

- ``4class`` (default): ang -> angry, hap + exc -> happy, neu -> neutral, sad -> sad; 5531 turns on
  the full corpus (1103 angry, 1636 happy, 1708 neutral, 1084 sad), the literature's standard set.
- ``4class_improvised``: the same mapping on the improvised dialogs only (scripted turns skipped).
- ``raw``: the nine emotion categories unmerged (angry, happy, excited, neutral, sad, frustrated,
  fearful, surprised, disgust); ``xxx`` (no agreement) and ``oth`` (other) are skipped in every
  protocol because neither is an emotion class.

Sources relied on: the release's own file formats as parsed by s3prl
(``s3prl/dataio/corpus/iemocap.py``: ``SessionN/dialog/EmoEvaluation`` and ``sentences/wav/<dialog>``),
public IEMOCAP parsers showing the EmoEvaluation and transcription line formats, and the 5531-turn
4-class count reported with ``hap+exc`` merged (e.g. the enmwmak SER teaching recipe: 1103 ang,
1636 hap+exc, 1084 sad, 1708 neu).

This module also holds the small helpers the other release builders share (protocol and class
selection, the final Dataset with its extra columns).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from datasets import Dataset, Features, Value

from .audiofolder import SCHEMA, CorpusData, CorpusLayoutError
from .protocol import Fold, Protocol

# ---------------------------------------------------------------- shared by the release builders


def pick_protocol(corpus: str, protocol: str | None, protocols: dict, default: str) -> tuple[str, dict]:
    """The named protocol spec (``None`` -> the default); an unknown name lists the known ones."""
    name = default if protocol is None else protocol
    if name not in protocols:
        raise ValueError(f"{corpus}: unknown protocol {name!r}; choose one of {', '.join(protocols)}")
    return name, protocols[name]


def pick_classes(corpus: str, protocol: str, protocol_classes: list[str], classes: list[str] | None) -> list[str]:
    """``classes`` restricts and orders the protocol's labels; a label the protocol lacks is an error."""
    if not classes:
        return list(protocol_classes)
    classes = [str(c) for c in classes]
    unknown = [c for c in classes if c not in protocol_classes]
    if unknown:
        raise ValueError(f"{corpus}: classes {unknown} are not labels of protocol {protocol!r} "
                         f"(its labels: {', '.join(protocol_classes)})")
    if len(set(classes)) != len(classes):
        raise ValueError(f"{corpus}: classes {classes} repeat a label")
    return classes


def keep_label(corpus: CorpusData, label: str | None, raw: str, protocol: str, classes: list[str],
               example: str) -> bool:
    """True when ``label`` (the protocol's mapping of ``raw``, None if unmapped) is kept; else counted."""
    if label is None:
        corpus.skip(f"label not in protocol {protocol}: {raw}", example)
        return False
    if label not in classes:
        corpus.skip(f"label not in classes: {label}", example)
        return False
    return True


def missing_file(corpus: CorpusData, path: Path, skip_bad: bool, listed_in: str, example: str) -> None:
    """A labelled clip whose audio cannot be read: an error naming it and what it is (missing, a
    directory, a FIFO, a broken or looping link, unreadable), or counted with ``skip_bad``."""
    from processing.audio import file_problem

    problem, reason = file_problem(path) or ("file not found", "file not found")
    if reason == "file not found":
        problem, reason = "is missing", "missing audio file"
    else:
        reason = f"audio file {reason}"
    if not skip_bad:
        raise CorpusLayoutError(f"{path}: file listed in {listed_in} {problem} (pass skip_bad=True to skip it)")
    corpus.skip(reason, example)


def empty_file(corpus: CorpusData, path: Path, skip_bad: bool, example: str) -> bool:
    """True for a zero-byte audio file: an error naming it, or counted with ``skip_bad``."""
    if path.stat().st_size > 0:
        return False
    if not skip_bad:
        raise CorpusLayoutError(f"{path}: file is empty (0 bytes) (pass skip_bad=True to skip it)")
    corpus.skip("empty audio file", example)
    return True


def build_dataset(rows: list[dict], extra: dict[str, Value], classes: list[str], where: Path | str,
                  corpus: CorpusData) -> Dataset:
    """Rows (SCHEMA keys + ``extra`` keys) sorted by id -> a Dataset; every class must have rows."""
    if not rows:
        raise CorpusLayoutError(f"{where}: no usable clips (skipped: {corpus.skipped})")
    present = Counter(r["label"] for r in rows)
    empty = [c for c in classes if not present[c]]
    if empty:
        raise CorpusLayoutError(f"{where}: classes {empty} have no clips (clips per label: {dict(present)}; "
                                f"skipped: {corpus.skipped})")
    rows = sorted(rows, key=lambda r: r["id"])
    features = Features({**SCHEMA, **extra})
    return Dataset.from_dict({k: [r[k] for r in rows] for k in features}, features=features)


def class_counts(dataset: Dataset, classes: list[str]) -> str:
    counts = Counter(dataset["label"])
    return ", ".join(f"{c} {counts[c]}" for c in classes)


def skipped_text(corpus: CorpusData) -> str:
    if not corpus.skipped:
        return "nothing skipped"
    return "skipped: " + "; ".join(f"{reason} ({n})" for reason, n in sorted(corpus.skipped.items()))


# ---------------------------------------------------------------- IEMOCAP

SESSIONS = [f"Session{i}" for i in range(1, 6)]
SESSION_PARTS = ("dialog/EmoEvaluation", "dialog/transcriptions", "sentences/wav")
NO_CLASS = {"xxx": "no majority label (xxx)", "oth": "label oth (other)"}
NAMES = {"ang": "angry", "hap": "happy", "exc": "excited", "neu": "neutral", "sad": "sad", "fru": "frustrated",
         "fea": "fearful", "sur": "surprised", "dis": "disgust"}
FOUR = {"ang": "angry", "hap": "happy", "exc": "happy", "neu": "neutral", "sad": "sad"}
PROTOCOLS = {
    "4class": {"map": FOUR, "classes": ["angry", "happy", "neutral", "sad"], "improvised_only": False,
               "about": "ang -> angry, hap + exc -> happy, neu -> neutral, sad -> sad (5531 turns on the full "
                        "corpus)"},
    "4class_improvised": {"map": FOUR, "classes": ["angry", "happy", "neutral", "sad"], "improvised_only": True,
                          "about": "improvised dialogs only; ang -> angry, hap + exc -> happy, neu -> neutral, "
                                   "sad -> sad"},
    "raw": {"map": NAMES, "classes": ["angry", "happy", "excited", "neutral", "sad", "frustrated", "fearful",
                                      "surprised", "disgust"], "improvised_only": False,
            "about": "the nine IEMOCAP emotion categories unmerged (hap and exc kept apart)"},
}
EXTRA = {"valence": Value("float32"), "arousal": Value("float32"), "dominance": Value("float32"),
         "improvised": Value("bool"), "dialog": Value("string"), "start": Value("float32"), "end": Value("float32"),
         "raw_label": Value("string")}

_NUM = r"(-?\d+(?:\.\d*)?|nan)"
LABEL_LINE = re.compile(
    rf"^\[\s*{_NUM}\s*-\s*{_NUM}\s*\]\s+(Ses\S+)\s+(\S+)\s+\[\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*\]", re.I)
TRANSCRIPT_LINE = re.compile(r"^(Ses\S+)\s+\[[^\]]*\]:\s?(.*)$")
TURN = re.compile(r"^Ses(\d{2})[FM]_.+_([FM])[A-Za-z0-9]*$")


def _find_root(data_dir: str | Path) -> Path:
    root = Path(data_dir).expanduser().resolve()
    for candidate in (root, root / "IEMOCAP_full_release"):
        if any((candidate / s).is_dir() for s in SESSIONS):
            return candidate
    raise CorpusLayoutError(
        f"{root}: no Session1..Session5 folders here nor in {root / 'IEMOCAP_full_release'}; point data_dir at "
        "IEMOCAP_full_release (or its parent) as unpacked from the release")


def _text_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.txt") if p.is_file() and not p.name.startswith("._"))


def load_iemocap(data_dir: str | Path, protocol: str | None = None, skip_bad: bool = False,
                 classes: list[str] | None = None) -> CorpusData:
    """IEMOCAP_full_release -> CorpusData (labelled turns, leave-one-session-out folds)."""
    name, spec = pick_protocol("iemocap", protocol, PROTOCOLS, "4class")
    classes = pick_classes("iemocap", name, spec["classes"], classes)
    root = _find_root(data_dir)
    for session in SESSIONS:
        if not (root / session).is_dir():
            raise CorpusLayoutError(f"{root / session}: not found; {root.name} needs Session1..Session5, "
                                    "each with dialog/EmoEvaluation, dialog/transcriptions and sentences/wav")
        for part in SESSION_PARTS:
            if not (root / session / part).is_dir():
                raise CorpusLayoutError(f"{root / session / part}: not found; {root.name}/SessionN needs "
                                        "dialog/EmoEvaluation, dialog/transcriptions and sentences/wav")

    corpus = CorpusData(dataset=None, protocol=None)
    rows, seen = [], set()
    for session in SESSIONS:
        label_dir = root / session / "dialog" / "EmoEvaluation"
        label_files = _text_files(label_dir)
        if not label_files:
            raise CorpusLayoutError(f"{label_dir}: no <dialog>.txt label files (expected e.g. Ses01F_impro01.txt)")
        texts = {}
        for path in _text_files(root / session / "dialog" / "transcriptions"):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                m = TRANSCRIPT_LINE.match(line.strip())
                if m:
                    texts[m.group(1)] = " ".join(m.group(2).split())
        for path in label_files:
            for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                if not line.startswith("["):
                    continue
                m = LABEL_LINE.match(line)
                if not m:
                    raise CorpusLayoutError(f"{path} line {number}: not '[START - END]<TAB>TURN<TAB>EMOTION<TAB>"
                                            f"[V, A, D]': {line.strip()[:120]!r}")
                start, end, utt, code, val, act, dom = m.groups()
                code = code.lower()
                if utt in seen:
                    corpus.skip("duplicate label line", utt)
                    continue
                seen.add(utt)
                turn = TURN.match(utt)
                if not turn:
                    raise CorpusLayoutError(f"{path} line {number}: turn name {utt!r} is not SesNN[FM]_<dialog>_"
                                            "[FM]NNN (e.g. Ses01F_impro01_M012)")
                if code in NO_CLASS:
                    corpus.skip(NO_CLASS[code], utt)
                    continue
                dialog = utt.rsplit("_", 1)[0]
                improvised = "impro" in dialog
                if spec["improvised_only"] and not improvised:
                    corpus.skip(f"scripted dialog (protocol {name} is improvised only)", utt)
                    continue
                label = spec["map"].get(code)
                if not keep_label(corpus, label, code, name, classes, utt):
                    continue
                wav = root / session / "sentences" / "wav" / dialog / f"{utt}.wav"
                if not wav.is_file():
                    missing_file(corpus, wav, skip_bad, path.name, utt)
                    continue
                if empty_file(corpus, wav, skip_bad, utt):
                    continue
                gender = turn.group(2).lower()
                rows.append({"id": utt, "audio": str(wav), "label": label,
                             "speaker": f"Ses{turn.group(1)}{gender.upper()}", "gender": gender, "session": session,
                             "text": texts.get(utt, ""), "dataset": "iemocap",
                             "valence": float(val), "arousal": float(act), "dominance": float(dom),
                             "improvised": improvised, "dialog": dialog, "start": float(start), "end": float(end),
                             "raw_label": code})
    corpus.dataset = build_dataset(rows, EXTRA, classes, root, corpus)
    sessions = sorted(set(corpus.dataset["session"]), key=lambda s: int(s[len("Session"):]))
    folds = [Fold(s.lower(), "session", [s]) for s in sessions]
    n_text = sum(1 for t in corpus.dataset["text"] if t)
    corpus.protocol = Protocol(
        name=f"iemocap-{name}-leave-one-session-out",
        description=(f"IEMOCAP ({root}), protocol {name}: {spec['about']}. {len(corpus.dataset)} turns "
                     f"({class_counts(corpus.dataset, classes)}) of {len(set(corpus.dataset['speaker']))} speakers; "
                     f"leave-one-session-out cross-validation over {len(folds)} sessions (each session is one male "
                     f"and one female actor). Transcripts for {n_text} turns. {skipped_text(corpus)}."),
        classes=classes,
        folds=folds,
    )
    return corpus
