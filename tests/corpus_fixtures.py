"""Tiny corpora written in each official release layout (real WAV/FLAC files, 0.2 s of noise).

Each writer returns what the tests need to know about what it wrote. Layouts and line formats
follow the module docstrings of ``datasets_scripts/{iemocap,msp_improv,msp_podcast,emodb,ravdess}.py``.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf


@lru_cache(maxsize=None)
def _clip_bytes(fmt: str) -> bytes:
    wave = (np.random.default_rng(0).standard_normal(3200) * 0.05).astype(np.float32)  # 0.2 s at 16 kHz
    buf = io.BytesIO()
    sf.write(buf, wave, 16000, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def write_clip(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_clip_bytes("FLAC" if path.suffix == ".flac" else "WAV"))
    return path


# ---------------------------------------------------------------- IEMOCAP

# per session: (dialog suffix, turn, emotion code); dialog names get the SesNN[FM] prefix
IEMOCAP_TURNS = [
    ("F_impro01", "F000", "neu"), ("F_impro01", "M000", "hap"), ("F_impro01", "F001", "exc"),
    ("F_impro01", "M001", "ang"), ("F_impro01", "F002", "xxx"),
    ("M_script01_1", "F000", "sad"), ("M_script01_1", "M000", "fru"), ("M_script01_1", "F001", "oth"),
    ("M_script01_1", "M001", "neu"),
]
IEMOCAP_SESSION5_EXTRA = [("M_script01_1", "F002", "fea"), ("M_script01_1", "M002", "sur"),
                          ("M_script01_1", "F003", "dis")]


def iemocap_vad(session: int, index: int) -> tuple[float, float, float]:
    return 1.0 + 0.5 * (index % 5), 2.0 + 0.25 * session, 5.0 - 0.5 * (index % 3)


def write_iemocap(parent: Path) -> Path:
    """``parent/IEMOCAP_full_release/Session1..5``; returns the IEMOCAP_full_release folder."""
    root = parent / "IEMOCAP_full_release"
    (root / "Documentation").mkdir(parents=True)
    for s in range(1, 6):
        session = root / f"Session{s}"
        turns = IEMOCAP_TURNS + (IEMOCAP_SESSION5_EXTRA if s == 5 else [])
        by_dialog: dict[str, list[tuple[int, str, str]]] = {}
        for index, (suffix, turn, code) in enumerate(turns):
            by_dialog.setdefault(f"Ses0{s}{suffix}", []).append((index, turn, code))
        for sub in ("dialog/EmoEvaluation/Categorical", "dialog/transcriptions", "dialog/wav", "sentences/wav"):
            (session / sub).mkdir(parents=True, exist_ok=True)
        for dialog, items in by_dialog.items():
            labels = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            transcript = []
            for index, turn, code in items:
                utt = f"{dialog}_{turn}"
                start, end = 1.5 * index + 0.25, 1.5 * index + 1.2
                v, a, d = iemocap_vad(s, index)
                labels += [f"[{start:.4f} - {end:.4f}]\t{utt}\t{code}\t[{v:.4f}, {a:.4f}, {d:.4f}]",
                           "C-E2:\tNeutral;\t()", "C-E3:\tNeutral;\t()", "A-E3:\tval 3; act 2; dom  2;\t()", ""]
                transcript.append(f"{utt} [{start:08.4f}-{end:08.4f}]: Words of {utt}, said once.")
                write_clip(session / "sentences" / "wav" / dialog / f"{utt}.wav")
            transcript.append(f"{dialog}_MXX0 [099.0000-100.0000]: [LAUGHTER] overlapping speech.")
            (session / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(labels) + "\n")
            (session / "dialog" / "EmoEvaluation" / "Categorical" / f"{dialog}_e1_cat.txt").write_text(
                f"{items[0][1]} :Neutral state; ()\n")
            (session / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("\n".join(transcript) + "\n")
    return root


# ---------------------------------------------------------------- MSP-IMPROV

# per session n: (sentence+target, gender, condition, turn, consensus code)
IMPROV_CLIPS = [("S01A", "F", "T", "FM01", "A"), ("S02H", "M", "S", "MF01", "H"), ("S03N", "F", "P", "FM02", "N"),
                ("S04S", "M", "R", "MF02", "S"), ("S05N", "F", "P", "FM03", "O"), ("S06A", "M", "S", "MF03", "X")]


def improv_name(n: int, sentence: str, gender: str, condition: str, turn: str) -> str:
    return f"MSP-IMPROV-{sentence}-{gender}0{n}-{condition}-{turn}"


def write_msp_improv(root: Path) -> Path:
    lines = []
    for n in range(1, 7):
        for i, (sentence, gender, condition, turn, code) in enumerate(IMPROV_CLIPS):
            name = improv_name(n, sentence, gender, condition, turn)
            act, val = 1.0 + i * 0.5, 5.0 - n * 0.5
            dom = "NaN" if (n, i) == (1, 0) else f"{2.0 + 0.25 * i:.6f}"
            lines.append(f"{name.replace('MSP-', 'UTD-')}.avi; {code}; A:{act:.6f}; V:{val:.6f}; D:{dom} ; N:3.500000;")
            lines.append("rater-01; Angry; Frustrated; A:3.0; V:2.0; D:3.0; N:4.0;")
            lines.append("rater-02; Neutral; ; A:2.0; V:3.0; D:3.0; N:3.0;")
            lines.append("")
            write_clip(root / "Audio" / f"session{n}" / sentence / condition / f"{name}.wav")
    (root / "Evaluation.txt").write_text("\n".join(lines) + "\n")
    return root


# ---------------------------------------------------------------- MSP-Podcast

# (FileName stem, EmoClass, SpkrID, Gender, Split_Set)
PODCAST_ROWS = [
    ("MSP-PODCAST_0001_0001", "A", "127", "Male", "Train"), ("MSP-PODCAST_0001_0002", "H", "127", "Male", "Train"),
    ("MSP-PODCAST_0001_0003", "N", "128", "Female", "Train"), ("MSP-PODCAST_0001_0004", "S", "128", "Female", "Train"),
    ("MSP-PODCAST_0002_0001", "A", "200", "Female", "Development"),
    ("MSP-PODCAST_0002_0002", "H", "Unknown", "Unknown", "Development"),
    ("MSP-PODCAST_0003_0001", "N", "300", "Male", "Test1"), ("MSP-PODCAST_0003_0002", "S", "300", "Male", "Test1"),
    ("MSP-PODCAST_0004_0001", "A", "400", "Female", "Test2"),
    ("MSP-PODCAST_0004_0002", "H", "Unknown", "Unknown", "Test2"),
    ("MSP-PODCAST_0005_0001", "U", "127", "Male", "Train"), ("MSP-PODCAST_0005_0002", "F", "128", "Female", "Train"),
    ("MSP-PODCAST_0005_0003", "D", "127", "Male", "Test1"), ("MSP-PODCAST_0005_0004", "C", "128", "Female", "Test2"),
    ("MSP-PODCAST_0006_0001", "O", "127", "Male", "Train"), ("MSP-PODCAST_0006_0002", "X", "128", "Female", "Train"),
    ("MSP-PODCAST_0006_0003", "X", "Unknown", "Unknown", "Test1"),
]


def podcast_avd(i: int) -> tuple[float, float, float]:
    return 1.0 + 0.25 * i, 7.0 - 0.25 * i, 4.0 + (0.5 if i % 2 else -0.5)


def write_msp_podcast(root: Path) -> Path:
    (root / "Labels").mkdir(parents=True)
    lines = ["FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"]
    for i, (stem, code, spk, gender, split) in enumerate(PODCAST_ROWS):
        act, val, dom = podcast_avd(i)
        lines.append(f"{stem}.wav,{code},{act},{val},{dom},{spk},{gender},{split}")
        write_clip(root / "Audios" / f"{stem}.wav")
        (root / "Transcripts").mkdir(exist_ok=True)
        (root / "Transcripts" / f"{stem}.txt").write_text(f"transcript of {stem}\n")
    (root / "Labels" / "labels_consensus.csv").write_text("\n".join(lines) + "\n")
    return root


# ---------------------------------------------------------------- EmoDB

EMODB_GENDERS = {"03": "m", "08": "f", "09": "f", "10": "m", "11": "m", "12": "m", "13": "f", "14": "f", "15": "m",
                 "16": "f"}
EMODB_TEXT_CODES = ["a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10"]


def write_emodb(root: Path) -> list[str]:
    """``root/wav``: every speaker says one sentence in W, F, N, T; plus L, E, A once each. Returns names."""
    names = []
    for i, speaker in enumerate(EMODB_GENDERS):
        for letter in "WFNT":
            names.append(f"{speaker}{EMODB_TEXT_CODES[i]}{letter}a.wav")
    names += ["03a01La.wav", "08a02Eb.wav", "09a04Ac.wav"]
    for name in names:
        write_clip(root / "wav" / name)
    write_clip(root / "wav" / "notes.wav")  # not an EmoDB name
    (root / "lablaut").mkdir()
    (root / "erkennung.txt").write_text("Erkennungsraten\n")
    return names


# ---------------------------------------------------------------- RAVDESS


def ravdess_name(emotion: int, actor: int, channel: int = 1, intensity: int = 1, statement: int = 1,
                 repetition: int = 1, ext: str = ".wav") -> str:
    return f"03-{channel:02d}-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}{ext}"


def write_ravdess(root: Path, actors: range = range(1, 13)) -> Path:
    """The two release zips unpacked side by side: speech (8 emotions per actor) and one song file each."""
    for actor in actors:
        for emotion in range(1, 9):
            statement = 1 + emotion % 2
            write_clip(root / "Audio_Speech_Actors_01-24" / f"Actor_{actor:02d}" /
                       ravdess_name(emotion, actor, intensity=1 if emotion == 1 else 2, statement=statement))
        write_clip(root / "Audio_Song_Actors_01-24" / f"Actor_{actor:02d}" / ravdess_name(3, actor, channel=2))
    return root
