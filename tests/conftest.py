"""Shared fixtures: the embedded EmoDB copy, ../shared/data when present, small real models."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EMBEDDED_EMODB = ROOT / "data" / "emodb4"
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shared_corpus(name: str) -> Path:
    """A corpus from ../shared/data, or skip: a user's fresh clone has no ../shared (CI always has it)."""
    path = SHARED_DATA / name
    if not (path / "metadata.csv").is_file():
        pytest.skip(f"needs ../shared/data/{name} (present in CI, absent from a user's fresh clone)")
    return path


@pytest.fixture(scope="session")
def emodb_files():
    import csv

    with open(EMBEDDED_EMODB / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [dict(row, path=str(EMBEDDED_EMODB / row["file_name"])) for row in rows]


@pytest.fixture(scope="session")
def processor(tmp_path_factory):
    """The real processor classes with a Whisper feature extractor and a six-word BERT tokenizer (no weights)."""
    from transformers import BertTokenizerFast

    from processing import MirganProcessor, MirganWhisperFeatureExtractor

    vocab = tmp_path_factory.mktemp("tok") / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello"]))
    return MirganProcessor(MirganWhisperFeatureExtractor(), BertTokenizerFast(vocab_file=str(vocab)))


@pytest.fixture(scope="session")
def tiny_en_model():
    """The real whisper-tiny.en encoder + MiniLM in a fresh mirgan model (4 emotion classes)."""
    from modeling_mirgan import from_encoders
    from modeling_mirgan.processors import build_processor

    model = from_encoders(["angry", "happy", "neutral", "sad"], "openai/whisper-tiny.en").eval()
    return model, build_processor("openai/whisper-tiny.en", "sentence-transformers/all-MiniLM-L6-v2")


SPEAKERS = ["03", "08", "10", "16"]  # 2 male + 2 female speakers of the embedded EmoDB
QUICK = ["--audio_encoder", "openai/whisper-tiny.en", "--folds", "2", "--stage1_epochs", "30", "--gan_steps", "150",
         "--stage3_epochs", "15", "--synthetic_ratios", "0.5", "1.0"]


@pytest.fixture(scope="session")
def small_emodb(tmp_path_factory) -> Path:
    """An audiofolder with 4 speakers of the embedded EmoDB (real audio, real labels and transcripts)."""
    folder = tmp_path_factory.mktemp("emodb-small")
    with open(EMBEDDED_EMODB / "metadata.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["speaker"] in SPEAKERS]
    for row in rows:
        (folder / row["file_name"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EMBEDDED_EMODB / row["file_name"], folder / row["file_name"])
    with open(folder / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


def run_train(args: list[str], cache: Path, env_extra: dict | None = None, launcher: list[str] | None = None,
              check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, MIRGAN_CACHE=str(cache), HF_HUB_OFFLINE="1", **(env_extra or {}))
    command = (launcher or [sys.executable]) + [str(ROOT / "train.py"), *args]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def trained(small_emodb, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    out = tmp_path_factory.mktemp("run")
    first = run_train(["--dataset_dir", str(small_emodb), "--output_dir", str(out), *QUICK], cache)
    return small_emodb, cache, out, first
