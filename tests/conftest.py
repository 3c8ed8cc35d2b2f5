"""Shared fixtures: the embedded EmoDB copy, ../shared/data when present, small real models."""

from __future__ import annotations

import os
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
def tiny_en_model():
    """The real whisper-tiny.en encoder + MiniLM in a fresh mirgan model (4 emotion classes)."""
    from modeling_mirgan import from_encoders
    from processing import build_processor

    model = from_encoders(["angry", "happy", "neutral", "sad"], "openai/whisper-tiny.en").eval()
    return model, build_processor("openai/whisper-tiny.en", "sentence-transformers/all-MiniLM-L6-v2")
