"""RAVDESS from its original release layout -> the unified schema.

Layout read (the Zenodo release, record 1188976): ``Audio_Speech_Actors_01-24.zip`` unpacks to
``Actor_01..Actor_24/03-01-05-01-01-01-01.wav``; a folder holding the ``Actor_XX`` folders
directly, or one level down (``Audio_Speech_Actors_01-24/Actor_XX``, ``Audio_Song_Actors_01-24/
Actor_XX``), is accepted. ``.wav`` (the release, 48 kHz) and ``.flac`` (re-encoded copies) are read;
other files (video ``.mp4``, ``metadata.csv``) are ignored.

Names ``MM-VV-EE-II-SS-RR-AA``: modality (01 audio-video, 02 video-only, 03 audio-only), vocal
channel (01 speech, 02 song), emotion (01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful,
07 disgust, 08 surprised), intensity (01 normal, 02 strong; neutral has no strong), statement (01
"Kids are talking by the door", 02 "Dogs are sitting by the door"), repetition (01, 02), actor
(01-24; odd = male, even = female). Only audio-only speech files are used: song files (and any
non-audio-only modality) are counted as skipped. The speech part is 1440 files, 60 per actor.

Protocols (folds: 6 speaker-independent folds of 4 actors, 2 male + 2 female, from
``speaker_folds``):

- ``4class`` (default): angry, happy, neutral, sad (calm, fearful, disgust, surprised skipped);
  672 clips: 192 each, neutral 96 (neutral has no strong-intensity take).
- ``8class``: all eight emotions (1440 clips).
- ``4class_calm_as_neutral``: as ``4class`` but calm is merged into neutral (neutral 288), a
  common choice that must be stated; the description states it.

Sources relied on: the RAVDESS README on Zenodo (the file-name code, as restated in public
repositories' copies of it), Livingstone & Russo (2018), PLoS ONE 13(5): e0196391, and the 1440-clip
speech copy in ``../shared/data/ravdess`` (its README: neutral 96, the others 192 each).
"""

from __future__ import annotations

import re
from pathlib import Path

from datasets import Value

from .audiofolder import CorpusData, CorpusLayoutError, speaker_folds
from .iemocap import build_dataset, class_counts, empty_file, keep_label, pick_classes, pick_protocol, skipped_text
from .protocol import Protocol

EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
            "07": "disgust", "08": "surprised"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
INTENSITY = {"01": "normal", "02": "strong"}
FOUR = {"angry": "angry", "happy": "happy", "neutral": "neutral", "sad": "sad"}
PROTOCOLS = {
    "4class": {"map": FOUR, "classes": ["angry", "happy", "neutral", "sad"],
               "about": "angry, happy, neutral, sad (calm, fearful, disgust, surprised left out)"},
    "8class": {"map": {e: e for e in EMOTIONS.values()},
               "classes": ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"],
               "about": "all eight RAVDESS emotions"},
    "4class_calm_as_neutral": {"map": {**FOUR, "calm": "neutral"}, "classes": ["angry", "happy", "neutral", "sad"],
                               "about": "angry, happy, neutral, sad with CALM MERGED INTO NEUTRAL (fearful, disgust, "
                                        "surprised left out)"},
}
EXTRA = {"intensity": Value("string"), "statement": Value("string"), "repetition": Value("string"),
         "raw_label": Value("string")}
NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})\.(wav|flac)$", re.I)
ACTOR = re.compile(r"^Actor_(\d{2})$")
AUDIO = (".wav", ".flac")
LAYOUT = ("the RAVDESS release (Audio_Speech_Actors_01-24.zip) unpacks to Actor_01..Actor_24/"
          "03-01-EE-II-SS-RR-AA.wav; point data_dir at the folder holding the Actor_XX folders")


def _actor_dirs(root: Path) -> list[Path]:
    found = [p for p in root.glob("Actor_*") if p.is_dir() and ACTOR.match(p.name)]
    found += [p for p in root.glob("*/Actor_*") if p.is_dir() and ACTOR.match(p.name)]
    return sorted(found)


def load_ravdess(data_dir: str | Path, protocol: str | None = None, skip_bad: bool = False,
                 classes: list[str] | None = None) -> CorpusData:
    """Original RAVDESS release (speech) -> CorpusData (6 folds of 4 actors, 2 male + 2 female)."""
    name, spec = pick_protocol("ravdess", protocol, PROTOCOLS, "4class")
    classes = pick_classes("ravdess", name, spec["classes"], classes)
    root = Path(data_dir).expanduser().resolve()
    actor_dirs = _actor_dirs(root)
    if not actor_dirs:
        raise CorpusLayoutError(f"{root}: no Actor_01..Actor_24 folders here or one level down; {LAYOUT}")
    corpus = CorpusData(dataset=None, protocol=None)
    rows, seen = [], set()
    for actor_dir in actor_dirs:
        folder_actor = ACTOR.match(actor_dir.name).group(1)
        for path in sorted(actor_dir.iterdir()):
            if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in AUDIO:
                continue
            m = NAME.match(path.name)
            if not m:
                corpus.skip("file name not a RAVDESS code (MM-VV-EE-II-SS-RR-AA)", path.name)
                continue
            modality, channel, emotion, intensity, statement, repetition, actor, _ext = m.groups()
            if actor != folder_actor:
                raise CorpusLayoutError(f"{path}: actor {actor} in the name but the file is in {actor_dir.name}")
            if modality != "03":
                corpus.skip(f"modality {modality} (only 03 audio-only is read)", path.name)
                continue
            if channel == "02":
                corpus.skip("song (speech-only protocol)", path.name)
                continue
            if channel != "01" or emotion not in EMOTIONS or intensity not in INTENSITY or statement not in STATEMENTS:
                corpus.skip("file name not a RAVDESS code (MM-VV-EE-II-SS-RR-AA)", path.name)
                continue
            if path.stem in seen:
                corpus.skip("duplicate file (same name found twice)", path.name)
                continue
            seen.add(path.stem)
            raw = EMOTIONS[emotion]
            label = spec["map"].get(raw)
            if not keep_label(corpus, label, raw, name, classes, path.name):
                continue
            if empty_file(corpus, path, skip_bad, path.name):
                continue
            rows.append({"id": path.stem, "audio": str(path), "label": label, "speaker": actor,
                         "gender": "m" if int(actor) % 2 else "f", "session": "", "text": STATEMENTS[statement],
                         "dataset": "ravdess", "intensity": INTENSITY[intensity], "statement": statement,
                         "repetition": repetition, "raw_label": raw})
    corpus.dataset = build_dataset(rows, EXTRA, classes, root, corpus)
    folds = speaker_folds(corpus.dataset["speaker"], corpus.dataset["gender"], 6)
    corpus.protocol = Protocol(
        name=f"ravdess-{name}-6fold-actors",
        description=(f"RAVDESS speech, original release ({root}), protocol {name}: {spec['about']}. "
                     f"{len(corpus.dataset)} clips ({class_counts(corpus.dataset, classes)}) of "
                     f"{len(set(corpus.dataset['speaker']))} actors; speaker-independent {len(folds)}-fold "
                     f"cross-validation, actors dealt by gender so each fold mixes male and female actors "
                     f"({'; '.join('+'.join(f.test_values) for f in folds)}). Text is one of two fixed statements, "
                     f"lexically matched across emotions. {skipped_text(corpus)}."),
        classes=classes,
        folds=folds,
    )
    return corpus
