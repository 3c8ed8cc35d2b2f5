"""Every snippet in the README's usage sections runs as written, on a model trained by train.py.

The snippets run in a folder laid out like the repository after the main job (``outputs/`` holds a
trained model, ``data/emodb4`` the embedded corpus), with ``HF_ENDPOINT`` pointing at the local
Hub-compatible server, so ``you/...`` repositories are pushed and pulled for real."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from hub_server import HubServer
from tests.conftest import EMBEDDED_EMODB, ROOT

SECTIONS = ("Using a trained model", "Sharing on the Hub")


def snippets() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    found = []
    for section in re.split(r"\n## ", text)[1:]:
        if section.startswith(SECTIONS):
            found += re.findall(r"```(python|bash)\n(.+?)```", section, flags=re.S)
    return found


def test_usage_sections_have_snippets():
    kinds = [kind for kind, _ in snippets()]
    assert kinds.count("python") >= 3 and kinds.count("bash") >= 3, kinds


@pytest.mark.slow
def test_readme_snippets_run_as_written(trained, tmp_path):
    _, _, out, _ = trained
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "emodb4-unimodal").symlink_to(out)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "emodb4").symlink_to(EMBEDDED_EMODB)
    with HubServer() as hub:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
        env.update(HF_ENDPOINT=hub.url, HF_TOKEN="dummy", HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf"),
                   HF_HUB_DISABLE_XET="1", PATH=f"{os.path.dirname(sys.executable)}:{env['PATH']}")
        for kind, code in snippets():
            command = code if kind == "bash" else None
            args = ["bash", "-euo", "pipefail", "-c", command] if command else [sys.executable, "-c", code]
            proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"README snippet failed:\n{code}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
            assert not hub.unhandled, hub.unhandled
    assert (tmp_path / "predictions.csv").read_text().count("\n") > 1
    assert (tmp_path / "synthetic" / "metrics.json").is_file()
