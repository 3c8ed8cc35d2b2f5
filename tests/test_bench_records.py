"""The run record bench/augmentation.py commits for every benchmark run (bench/runs/ is not committed):
it carries what bench/regime.py pools across seeds, the code that produced it, and nothing local."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from tests.conftest import ROOT


def bench_module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_run_record_of_a_real_run_pools_and_leaks_no_path(trained):
    small, cache, out, _ = trained
    results = json.loads((out / "results.json").read_text())
    augmentation, regime = bench_module("augmentation"), bench_module("regime")
    commit = augmentation.code_commit()
    record = json.loads(json.dumps(augmentation.run_record(results, commit)))
    text = json.dumps(record)
    for local in (str(out), str(small), str(cache), str(ROOT), str(ROOT.parent)):
        assert local not in text, local
    assert record["code_commit"] == commit and (commit == "unknown" or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", commit))
    assert record["arguments"]["model"]["encoder_mode"] == results["arguments"]["model"]["encoder_mode"] == "frozen"
    assert regime.per_run(record) == regime.per_run(results)  # every (fold, seed, fraction) UA of every method


def test_mirgan_is_paired_against_the_peer_with_the_highest_mean_ua_of_that_fraction():
    regime = bench_module("regime")
    runs = lambda *ua: {(fold, 0, fraction): v for (fold, fraction), v in zip([(0, 0.25), (1, 0.25), (0, 1.0), (1, 1.0)], ua)}  # noqa: E731
    by_method = {"baseline": runs(0.9, 0.9, 0.9, 0.9), "none": runs(0.5, 0.5, 0.5, 0.5),
                 "smote": runs(0.6, 0.7, 0.8, 0.8), "cgan": runs(0.7, 0.7, 0.7, 0.7), "mirgan": runs(0.5, 0.6, 0.9, 0.9)}
    at = lambda fraction: {m: {k: v for k, v in r.items() if k[2] == fraction} for m, r in by_method.items()}  # noqa: E731
    quarter, full = regime.mirgan_vs_best_peer(at(0.25)), regime.mirgan_vs_best_peer(at(1.0))
    assert quarter["peer"] == "cgan" and quarter["diff"] == pytest.approx(-15.0)  # baseline and none are never the peer
    assert full["peer"] == "smote" and full["diff"] == pytest.approx(10.0)
    assert regime.mirgan_vs_best_peer({"none": at(1.0)["none"], "mirgan": at(1.0)["mirgan"]}) is None
