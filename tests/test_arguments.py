"""Bad arguments stop train.py before any audio is read, naming the flag and what is allowed;
the library imports no script, and a non-editable install trains and writes its card."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EMBEDDED_EMODB, QUICK, ROOT, run_train


@pytest.mark.parametrize("flags, expected", [
    (["--methods", "mirgn"], ["--methods", "'mirgn'", "class_weight", "mirgan"]),
    (["--mode", "bimodal"], ["--mode", "unimodal", "multimodal"]),
    (["--encoder_mode", "lora2"], ["--encoder_mode", "frozen", "lora", "full"]),
    (["--synthetic_selection", "realness"], ["--synthetic_selection", "q_confidence", "discriminator"]),
    (["--folds", "1"], ["--folds", "at least 2"]),
    (["--synthetic_ratios", "-1"], ["--synthetic_ratios", ">= 0"]),
    (["--fractions", "0"], ["--fractions", "(0, 1]"]),
    (["--encoder_lr", "1e-4", "0"], ["--encoder_lr", "> 0"]),
    (["--classes", "angry", "joyful"], ["joyful", "no rows", "angry"]),
])
def test_bad_flag_fails_before_extraction(tmp_path, flags, expected):
    proc = run_train(["--output_dir", str(tmp_path / "out"), *flags], tmp_path / "cache", check=False)
    assert proc.returncode != 0
    message = proc.stderr[-2000:]
    for word in expected:
        assert word in message, (word, message)
    assert "Encoding audio" not in proc.stderr and not (tmp_path / "cache" / "features").exists()


def test_every_argument_has_help_with_its_default():
    from dataclasses import fields

    from modeling_mirgan.arguments import ARGUMENT_TYPES

    for dc in ARGUMENT_TYPES:
        for f in fields(dc):
            assert f.metadata.get("help"), f"{dc.__name__}.{f.name} has no help"
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "(default: 5)" in " ".join(proc.stdout.split())  # --folds


def test_help_loads_no_model_code_and_shows_the_config_defaults():
    """``train.py --help`` builds its parser from torch-free modules (no torch, no transformers models),
    and an override whose default is the config's shows the config's value, lists included."""
    code = ("import runpy, sys\n"
            "sys.argv = ['train.py', '--help']\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in ('torch', 'transformers.modeling_utils') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LOADED []" in proc.stdout, proc.stdout[-300:]
    text = " ".join(proc.stdout.split())
    from modeling_mirgan.configuration_mirgan import MirganConfig

    config = MirganConfig()
    assert f"config default {config.generator_hidden_sizes}" in text and f"config default {config.discriminator_hidden_sizes}" in text
    assert f"config default {config.info_target!r}" in text and "config default None" not in text


def test_config_settings_live_once():
    """Model settings are MirganConfig fields that the arguments only override; run settings are not in the config."""
    from dataclasses import fields

    from modeling_mirgan.arguments import CONFIG_FIELDS_START, DataArguments, ModelArguments, TrainArguments
    from modeling_mirgan.configuration_mirgan import MirganConfig

    config_fields = {f.name for f in fields(MirganConfig)}
    overrides = [f.name for f in fields(ModelArguments)[CONFIG_FIELDS_START:]]
    assert overrides and all(name in config_fields for name in overrides)
    assert all(getattr(ModelArguments(), name) is None for name in overrides)  # the default is the config's
    for dc in (DataArguments, TrainArguments):
        assert not {f.name for f in fields(dc)} & config_fields, dc
    assert "initializer_range" not in config_fields  # unused in round 1: gone


def test_no_upward_or_circular_imports_between_packages():
    """processing <- datasets_scripts <- modeling_mirgan, and nothing imports train."""
    order = {"processing": 0, "datasets_scripts": 1, "modeling_mirgan": 2}
    for package, level in order.items():
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
                for name in names:
                    top = name.split(".")[0]
                    assert top != "train", f"{path} imports train"
                    if top in order:
                        assert order[top] <= level, f"{path.relative_to(ROOT)} imports {name} (upward)"
    for path in [*(ROOT / "tests").glob("*.py"), *(ROOT / "bench").glob("*.py")]:
        tree = ast.parse(path.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert "train" not in imported, f"{path} imports train"


@pytest.mark.slow
def test_non_editable_install_trains_and_writes_its_card(small_emodb, tmp_path):
    """``pip install .`` (not editable) into a target folder: train.py from there, away from the repository."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "--target", str(target), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=600)
    assert not (target / "modeling_mirgan" / "__init__.py").is_symlink()
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(target), MIRGAN_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, str(target / "train.py"), "--dataset_dir", str(small_emodb), "--output_dir", str(out),
                           *QUICK, "--max_folds", "1", "--report", "false"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    where = subprocess.run([sys.executable, "-c", "import modeling_mirgan; print(modeling_mirgan.__file__)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True).stdout.strip()
    assert where.startswith(str(target)), where
    card = (out / "model" / "README.md").read_text()
    assert "model-index" in card
    assert json.loads((out / "results.json").read_text())["methods"]["baseline"]["ua_mean"] > 0.25
