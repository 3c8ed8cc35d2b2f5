"""The training entry point end to end on real audio and real encoders, in subprocesses."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import EMBEDDED_EMODB, QUICK, SPEAKERS, run_train


def metrics_of(results: dict) -> dict:
    return {m: [(f["fold"], round(f["ua"], 6), round(f["wa"], 6), round(f["f1"], 6)) for f in v["per_fold"]]
            for m, v in results["methods"].items()}


@pytest.mark.slow
def test_train_writes_every_output(trained):
    _, _, out, first = trained
    results = json.loads((out / "results.json").read_text())
    for key in ("dataset", "n_clips", "n_skipped", "skipped", "classes", "protocol", "methods", "mi", "timing", "versions"):
        assert key in results, key
    assert results["n_clips"] == sum(1 for _ in open(Path(results["dataset_dir"]) / "metadata.csv")) - 1
    assert results["classes"] == ["angry", "happy", "neutral", "sad"]
    assert len(results["protocol"]["folds"]) == 2
    tested = sorted(s for run in results["protocol"]["runs"] for s in run["test_speakers"])
    assert tested == sorted(SPEAKERS)  # every speaker is held out exactly once
    for method in ("baseline", "mirgan"):
        entry = results["methods"][method]
        for key in ("ua_mean", "ua_std", "wa_mean", "wa_std", "f1_mean", "f1_std", "per_fold"):
            assert key in entry
        assert 0.25 < entry["ua_mean"] <= 1.0  # above chance on 4 classes
    assert {"mi_bits", "q_accuracy", "diversity_ratio", "frechet_distance"} <= set(results["mi"]["mirgan"]["mean"])
    for key in ("extract_s", "stage1_s", "stage2_s", "stage3_s", "total_s"):
        assert results["timing"][key] >= 0
    assert results["versions"]["audio_encoder"] == "openai/whisper-tiny.en" and results["versions"]["audio_encoder_hash"]
    from modeling_mirgan.training import extraction_dtype  # the dtype auto resolved to on this machine is on record

    assert results["versions"]["extraction_dtype"] == ("bfloat16" if extraction_dtype("auto") else "float32")
    assert {"confusion_baseline.png", "confusion_mirgan.png", "curves.png", "tsne_real_vs_generated.png", "report.md"} <= {p.name for p in (out / "report").iterdir()}
    assert list((out / "runs").rglob("events.out.tfevents*")), "no TensorBoard log"
    card = (out / "model" / "README.md").read_text()
    assert "model-index" in card and "UA (macro recall)" in card and "speaker" in card.lower()
    assert "computed and cached" in first.stderr
    assert "it/s]" not in first.stderr and "examples/s]" not in first.stderr  # no progress bars in a captured log


@pytest.mark.slow
def test_saved_model_classifies_a_clip(trained):
    import modeling_mirgan  # noqa: F401  registers the classes
    from transformers import pipeline

    _, _, out, _ = trained
    classifier = pipeline("audio-classification", model=str(out / "model"))
    clip = next((EMBEDDED_EMODB / "sad").glob("*.wav"))  # any clip: the final model saw all 4 speakers' folders only
    scores = classifier(str(clip))
    assert {s["label"] for s in scores} == {"angry", "happy", "neutral", "sad"}
    assert abs(sum(s["score"] for s in scores) - 1) < 1e-4


@pytest.mark.slow
def test_second_run_reuses_feature_cache(trained, tmp_path):
    small, cache, out, _ = trained
    second = run_train(["--dataset_dir", str(small), "--output_dir", str(tmp_path), *QUICK, "--final_model", "false"], cache)
    assert "reused from cache" in second.stderr
    first, again = json.loads((out / "results.json").read_text()), json.loads((tmp_path / "results.json").read_text())
    assert metrics_of(first) == metrics_of(again)  # same seed, same data: identical metrics


@pytest.mark.slow
@pytest.mark.parametrize("kill_at, complete", [
    ("stage1:11", 1),  # each fold fits stage 1 once per candidate (2 alignment weights x 4 weight decays) and refits once: the 11th is in fold 2
    ("stage2:3", 1),  # fold 2's selection GAN
    ("stage3:5", 1),  # stage 3 runs once per candidate ratio (2) + once for the refit: the 5th is in fold 2
    ("final:1", 2),   # every fold done, killed before the final model
])
def test_resume_after_kill_matches_uninterrupted_run(trained, tmp_path, kill_at, complete):
    small, cache, out, _ = trained
    args = ["--dataset_dir", str(small), "--output_dir", str(tmp_path), *QUICK]
    killed = run_train(args, cache, {"MIRGAN_KILL_AT": kill_at}, check=False)
    assert killed.returncode == 137
    assert not (tmp_path / "results.json").exists() and not (tmp_path / "model").exists()
    state = json.loads((tmp_path / "checkpoints" / "state.json").read_text())
    assert len(state["runs"]) == complete  # completed fold runs were checkpointed atomically
    resumed = run_train(args + ["--resume"], cache)
    assert f"resuming: {complete} fold runs already complete" in resumed.stderr
    assert metrics_of(json.loads((tmp_path / "results.json").read_text())) == metrics_of(json.loads((out / "results.json").read_text()))
    # the final model of the resumed run is the one of the uninterrupted run
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "model" / "model.safetensors"), load_file(out / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_torchrun_two_processes_matches_single_process(trained, tmp_path):
    small, cache, out, _ = trained
    proc = run_train(["--dataset_dir", str(small), "--output_dir", str(tmp_path), *QUICK, "--final_model", "false"], cache,
                     launcher=[sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533"])
    single = json.loads((out / "results.json").read_text())
    double = json.loads((tmp_path / "results.json").read_text())
    for method in ("baseline", "mirgan"):
        n_single = [f["n"] for f in single["methods"][method]["per_fold"]]
        assert [f["n"] for f in double["methods"][method]["per_fold"]] == n_single  # no lost or duplicated clips
        # DDP splits every batch over 2 ranks, so optimisation differs slightly: measured |dUA| 0.005 (baseline)
        # and 0.015 (mirgan) on this subset
        assert abs(double["methods"][method]["ua_mean"] - single["methods"][method]["ua_mean"]) < 0.06
    assert "computed and cached" not in proc.stderr  # the feature cache is shared with the single-process run
    checks = double["distributed"]
    assert checks["processes"] == 2
    # bit-identical weights on both ranks after every stage of every fit: stage 1 once per weight-decay
    # and alignment candidate (4 x 2) plus the refit, per fold; the GAN once for selection and once for the refit
    assert checks["rank_weight_checks_passed"]["stage1"] == 2 * (8 + 1) and checks["rank_weight_checks_passed"]["stage2"] == 4
    assert checks["rank_weight_checks_passed"]["stage3"] == 6  # 2 candidate ratios + the refit, per fold


@pytest.mark.slow
def test_lora_encoder_mode_end_to_end(small_emodb, tmp_path):
    """Stage 1 end to end with LoRA on the real Whisper encoder, per fold on the inner rows, then re-extracted
    features and all stages; the final model's adapted encoder reloads and classifies through the pipeline."""
    import modeling_mirgan  # noqa: F401  registers the classes
    from transformers import pipeline

    from modeling_mirgan import MirganForEmotionClassification

    proc = run_train(["--dataset_dir", str(small_emodb), "--output_dir", str(tmp_path), *QUICK, "--encoder_mode", "lora",
                      "--encoder_epochs", "1", "--max_folds", "1", "--mixed_precision", "bf16"], tmp_path / "cache")
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["timing"]["adapt_s"] > 0 and results["arguments"]["model"]["encoder_mode"] == "lora"
    assert results["distributed"]["mixed_precision"] == "bf16"
    assert 0.25 < results["methods"]["baseline"]["ua_mean"] <= 1.0
    (run,) = results["adaptation"]["runs"]
    validation = {s.split("=")[-1] for s in results["protocol"]["runs"][0]["validation_speakers"]}
    n_train = results["protocol"]["runs"][0]["n_train"]
    assert validation and run["rows"] < n_train  # adapted on the inner rows: the validation speakers were held out
    assert run["steps"] > 0 and run["trainable_parameters"]["audio"] > 0 and run["trainable_parameters"]["text"] == 0
    # frozen features once, then the adapted encoder's features under a new cache key (fold, final model)
    assert proc.stderr.count("computed and cached") == 3
    model = MirganForEmotionClassification.from_pretrained(tmp_path / "model")
    assert "+" in model.config.audio_encoder_hash and not any("lora" in k for k in model.state_dict())
    clip = str(next((small_emodb / "sad").glob("*.wav")))
    scores = {s["label"]: s["score"] for s in pipeline("audio-classification", model=str(tmp_path / "model"))(clip)}
    processor = __import__("transformers").AutoProcessor.from_pretrained(tmp_path / "model")
    with torch.no_grad():
        direct = model.eval()(**processor(audio=clip)).logits.softmax(-1)[0]
    assert all(abs(scores[model.config.id2label[i]] - float(p)) < 1e-5 for i, p in enumerate(direct))


@pytest.mark.slow
def test_encoder_lr_is_chosen_on_the_validation_speakers(small_emodb, tmp_path):
    """Several --encoder_lr: one adaptation each on the inner rows, the best stage-1 UA on the validation
    speakers is kept for the fold (ties: the first given), and the final model adapts at the folds' choice."""
    run_train(["--dataset_dir", str(small_emodb), "--output_dir", str(tmp_path), *QUICK, "--encoder_mode", "lora",
               "--encoder_lr", "1e-4", "3e-2", "--encoder_epochs", "1", "--max_folds", "1"], tmp_path / "cache")
    results = json.loads((tmp_path / "results.json").read_text())
    (run,) = results["adaptation"]["runs"]
    scores = run["encoder_lr_validation_ua"]
    assert set(scores) == {"0.0001", "0.03"} and all(0 <= v <= 1 for v in scores.values())
    assert f"{run['encoder_lr']:g}" == max(scores, key=scores.get)  # the first of the best, in the order given
    assert results["final_model"]["adaptation"]["encoder_lr"] == run["encoder_lr"]
    assert "encoder learning rate is chosen" in results["adaptation"]["scheme"]


@pytest.mark.slow
def test_text_encoder_lora_on_the_real_encoders(small_emodb, tmp_path):
    """Both real encoders adapted with LoRA in multimodal mode (MiniLM's query/value projections): the text
    adapters train, merge and save; the reloaded text encoder is the adapted one, not MiniLM's own weights."""
    from modeling_mirgan import MirganForEmotionClassification
    from modeling_mirgan.stages import state_hash

    run_train(["--dataset_dir", str(small_emodb), "--output_dir", str(tmp_path), *QUICK, "--mode", "multimodal",
               "--encoder_mode", "lora", "--text_encoder_mode", "lora", "--encoder_epochs", "1", "--max_folds", "1"],
              tmp_path / "cache")
    results = json.loads((tmp_path / "results.json").read_text())
    (fold_run,) = results["adaptation"]["runs"]
    assert fold_run["trainable_parameters"]["text"] > 0 and fold_run["trainable_parameters"]["audio"] > 0
    assert 0.25 < results["methods"]["baseline"]["ua_mean"] <= 1.0
    model = MirganForEmotionClassification.from_pretrained(tmp_path / "model")
    pretrained, adapted = model.config.text_encoder_hash.split("+")
    assert not any("lora" in k for k in model.state_dict())
    assert state_hash(model.text_encoder)[:16] == adapted != pretrained[:16]


@pytest.mark.slow
def test_torchrun_two_process_lora_passes_the_rank_checks(small_emodb, tmp_path):
    run_train(["--dataset_dir", str(small_emodb), "--output_dir", str(tmp_path), *QUICK, "--encoder_mode", "lora",
               "--encoder_epochs", "1", "--max_folds", "1", "--final_model", "false"], tmp_path / "cache",
              launcher=[sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29534"])
    checks = json.loads((tmp_path / "results.json").read_text())["distributed"]
    assert checks["processes"] == 2
    assert checks["rank_weight_checks_passed"]["adapt"] == 1  # the adapted encoder is bit-identical on both ranks
    assert checks["rank_weight_checks_passed"]["stage1"] > 0


def accelerate_launch(flags: list[str]) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", *flags]


@pytest.mark.slow
def test_accelerate_launch_with_several_cpu_processes_runs_them_or_stops(trained, tmp_path):
    """`--cpu --num_processes 2` would silently train on one process: it stops with the message instead;
    `--multi_gpu --num_processes 2` on a machine without CUDA runs 2 CPU ranks. fp16 on a CPU stops too."""
    small, cache, _, _ = trained
    args = ["--dataset_dir", str(small), "--output_dir", str(tmp_path), *QUICK, "--max_folds", "1", "--final_model", "false"]
    stopped = run_train(args, cache, launcher=accelerate_launch(["--num_processes", "2", "--cpu"]), check=False)
    assert stopped.returncode != 0 and "starts only one process" in stopped.stderr
    assert not (tmp_path / "results.json").exists()
    if torch.cuda.is_available():
        pytest.skip("the rest checks CPU ranks and CPU precision on a machine without CUDA")
    fp16 = run_train(args + ["--mixed_precision", "fp16"], cache, check=False)
    assert fp16.returncode != 0 and "--mixed_precision fp16 needs a GPU" in fp16.stderr
    run_train(args, cache, launcher=accelerate_launch(["--num_processes", "2", "--multi_gpu", "--main_process_port", "29535"]))
    assert json.loads((tmp_path / "results.json").read_text())["distributed"]["processes"] == 2


@pytest.mark.slow
def test_official_partitions_select_on_the_development_set(tmp_path):
    """MSP-Podcast layout (fixture): Train trains, Development selects, Test1/Test2 are scored, never mixed."""
    from tests.corpus_fixtures import write_msp_podcast

    corpus = write_msp_podcast(tmp_path / "MSP-Podcast")
    run_train(["--dataset", "msp_podcast", "--data_dir", str(corpus), "--output_dir", str(tmp_path / "out"),
               "--audio_encoder", "openai/whisper-tiny.en", "--stage1_epochs", "5", "--gan_steps", "20",
               "--stage3_epochs", "2", "--final_model", "false"], tmp_path / "cache")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    runs = results["protocol"]["runs"]
    assert [r["fold"] for r in runs] == ["test1", "test2"]
    assert all(r["validation_speakers"] == ["split=Development"] and r["n_train"] == 4 for r in runs)
    assert [r["n_test"] for r in runs] == [2, 2]  # the 4-class rows of each test partition
