"""The README's two commands stay true: CI runs the README's test command word for word."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text.split("\n## ")[0], flags=re.S)


def test_readme_opens_with_exactly_two_commands():
    install_and_run, install_and_test = readme_commands()
    assert "\n" not in install_and_run and install_and_run.endswith("python train.py")
    assert "pip install torch==2.13.0" in install_and_run and "pip install torch==2.13.0" in install_and_test
    assert install_and_test.endswith("python -m pytest -q tests")


def test_ci_runs_the_readme_test_command():
    _, install_and_test = readme_commands()
    assert install_and_test in (ROOT / ".ci" / "run").read_text().splitlines()
