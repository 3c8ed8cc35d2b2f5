"""EmoDB (Berlin Database of Emotional Speech) from its original release layout -> the unified schema.

Layout read (``emodb.zip`` from emodb.bilderbar.info as distributed; ``data_dir`` may be the
unpacked folder, which also holds lablaut/, labsilb/, silb/ and erkennung.txt, or its ``wav/``)::

    <root>/wav/03a01Wa.wav

Names: speaker (2 digits), text code (a01..b10), emotion letter, version letter. Emotion letters
(German initials): W Wut anger, L Langeweile boredom, E Ekel disgust, A Angst fear, F Freude
happiness, T Trauer sadness, N neutral. Speakers and genders: 03 m, 08 f, 09 f, 10 m, 11 m, 12 m,
13 f, 14 f, 15 m, 16 f. The ten fixed German sentences are joined as ``text`` by their code.

Protocols (folds: 5 speaker-independent folds of one male + one female speaker, from
``speaker_folds``):

- ``4class`` (default): W/F/N/T -> angry/happy/neutral/sad (339 clips: 127, 71, 79, 62).
- ``7class``: all seven -> angry, bored, disgust, fearful, happy, sad, neutral (535 clips).

Sources relied on: the EmoDB documentation (Burkhardt et al., Interspeech 2005) as restated by
public loaders (e.g. the TensorFlow Datasets emoDB builder) for the name code and speaker genders;
the sentence texts and the 4-class counts checked against the byte-identical copy in
``data/emodb4`` (metadata.csv: 339 clips, text for all ten codes).
"""

from __future__ import annotations

import re
from pathlib import Path

from datasets import Value

from .audiofolder import CorpusData, CorpusLayoutError, speaker_folds
from .iemocap import build_dataset, class_counts, empty_file, keep_label, pick_classes, pick_protocol, skipped_text
from .protocol import Protocol

GENDERS = {"03": "m", "08": "f", "09": "f", "10": "m", "11": "m", "12": "m", "13": "f", "14": "f", "15": "m", "16": "f"}
TEXTS = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
EMOTIONS = {"W": "angry", "L": "bored", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad", "N": "neutral"}
PROTOCOLS = {
    "4class": {"classes": ["angry", "happy", "neutral", "sad"],
               "about": "W/F/N/T -> angry/happy/neutral/sad (boredom, disgust and fear left out)"},
    "7class": {"classes": ["angry", "bored", "disgust", "fearful", "happy", "sad", "neutral"],
               "about": "all seven EmoDB emotions"},
}
EXTRA = {"text_id": Value("string"), "version": Value("string"), "raw_label": Value("string")}
NAME = re.compile(r"^(\d{2})([ab]\d{2})([A-Z])([a-z])\.wav$")
LAYOUT = "the EmoDB release has wav/<speaker><text><emotion><version>.wav, e.g. wav/03a01Wa.wav"


def load_emodb(data_dir: str | Path, protocol: str | None = None, skip_bad: bool = False,
               classes: list[str] | None = None) -> CorpusData:
    """Original EmoDB release -> CorpusData (speaker-independent 5 folds, one male + one female each)."""
    name, spec = pick_protocol("emodb", protocol, PROTOCOLS, "4class")
    classes = pick_classes("emodb", name, spec["classes"], classes)
    root = Path(data_dir).expanduser().resolve()
    if (root / "wav").is_dir():
        wav_dir = root / "wav"
    elif root.is_dir() and any(NAME.match(p.name) for p in root.glob("*.wav")):
        wav_dir = root
    else:
        raise CorpusLayoutError(f"{root / 'wav'}: not found; {LAYOUT}")
    corpus = CorpusData(dataset=None, protocol=None)
    rows = []
    for path in sorted(wav_dir.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        m = NAME.match(path.name)
        if not m:
            if path.suffix.lower() == ".wav":
                corpus.skip("file name not an EmoDB code (SSTTTEV.wav)", path.name)
            continue
        speaker, text_id, letter, version = m.groups()
        if speaker not in GENDERS:
            corpus.skip(f"unknown speaker {speaker}", path.name)
            continue
        if text_id not in TEXTS:
            corpus.skip(f"unknown text code {text_id}", path.name)
            continue
        emotion = EMOTIONS.get(letter)
        label = emotion if emotion in spec["classes"] else None
        if not keep_label(corpus, label, f"{emotion} ({letter})" if emotion else letter, name, classes, path.name):
            continue
        if empty_file(corpus, path, skip_bad, path.name):
            continue
        rows.append({"id": path.stem, "audio": str(path), "label": label, "speaker": speaker,
                     "gender": GENDERS[speaker], "session": "", "text": TEXTS[text_id], "dataset": "emodb",
                     "text_id": text_id, "version": version, "raw_label": letter})
    corpus.dataset = build_dataset(rows, EXTRA, classes, wav_dir, corpus)
    folds = speaker_folds(corpus.dataset["speaker"], corpus.dataset["gender"], 5)
    corpus.protocol = Protocol(
        name=f"emodb-{name}-5fold-speakers",
        description=(f"EmoDB original release ({wav_dir}), protocol {name}: {spec['about']}. {len(corpus.dataset)} "
                     f"clips ({class_counts(corpus.dataset, classes)}) of {len(set(corpus.dataset['speaker']))} "
                     f"speakers; speaker-independent {len(folds)}-fold cross-validation, each fold one male and one "
                     f"female speaker ({'; '.join('+'.join(f.test_values) for f in folds)}). Text is the fixed "
                     f"sentence of each text code (10 sentences, lexically matched across emotions). "
                     f"{skipped_text(corpus)}."),
        classes=classes,
        folds=folds,
    )
    return corpus
