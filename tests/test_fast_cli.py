"""Every CLI answers --help with its defaults, and ``import modeling_mirgan`` loads no torch or model code
(the Auto classes find the classes on first use). Timings are in the issue's closing note, not here."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

CLIS = {"train.py": [str(ROOT / "train.py")], "predict": ["-m", "modeling_mirgan.predict"],
        "generate": ["-m", "modeling_mirgan.generate"], "embed": ["-m", "modeling_mirgan.embed"]}
LAZY = ("torch", "transformers.modeling_utils", "transformers.processing_utils", "datasets", "accelerate", "peft",
        "matplotlib", "modeling_mirgan.modeling_mirgan", "processing.processing_mirgan")


@pytest.mark.parametrize("cli", list(CLIS))
def test_help_succeeds_and_shows_defaults(cli):
    proc = subprocess.run([sys.executable, *CLIS[cli], "--help"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "usage:" in proc.stdout and "(default:" in proc.stdout, proc.stdout[-3000:]


def test_import_loads_no_heavy_module():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import modeling_mirgan"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert sorted(imported & set(LAZY)) == []
