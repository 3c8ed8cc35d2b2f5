"""Push to and pull from a local Hub-compatible server (tests/hub_server.py) with the real clients.

Every client runs in a subprocess whose environment points ``HF_ENDPOINT`` at the server (with
``HF_TOKEN=dummy``, ``HF_HUB_OFFLINE=0`` and its own ``HF_HOME``), so ``huggingface_hub``,
``transformers`` and ``datasets`` read the settings at import time exactly as a user's would and
nothing touches the network or the user's cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from hub_server import HubServer

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
MODEL_REPO = "user/mirgan-tiny"
DATASET_REPO = "user/mirgan-tiny-data"
# Files a trust_remote_code user needs besides config/weights/processor: what auto_map points to
# and what those modules import relatively.
CODE_FILES = {"configuration_mirgan.py", "modeling_mirgan.py", "encoders.py", "losses.py", "ct2_whisper.py",
              "processing_mirgan.py", "audio.py"}


@pytest.fixture(scope="module")
def hub():
    with HubServer() as server:
        yield server


def run(hub: HubServer, home: Path, args: list[str], *, cwd: Path = ROOT, env: dict | None = None,
        timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` against the server; fail with its output and the server's unhandled routes."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "PYTHONPATH"))}
    clean.update(
        HF_ENDPOINT=hub.url, HF_TOKEN="dummy", HF_HUB_OFFLINE="0", HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1",
        MIRGAN_CACHE=str(home / "mirgan"), TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
        **(env or {}),
    )
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"`python {' '.join(args)}` exited with {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n"
                    f"--- stderr\n{proc.stderr[-8000:]}\n--- server routes it did not implement: {hub.unhandled}")
    return proc


def script(folder: Path, name: str, code: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(code))
    return str(path)


def last_json(proc: subprocess.CompletedProcess) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON result on stdout:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1])


BUILD = """
    import sys
    from pathlib import Path

    import numpy as np
    import torch
    from transformers import BertTokenizerFast

    sys.path.insert(0, sys.argv[2])
    from test_modeling import tiny_model

    from modeling_mirgan import MirganProcessor, MirganWhisperFeatureExtractor
    from modeling_mirgan.card import write_model_card

    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    model = tiny_model(mode="multimodal")  # the text branch then feeds the logits too
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # not the init values: a load that re-initialises fails
    model.config.architectures = ["MirganForEmotionClassification"]
    model.save_pretrained(out / "model")
    (out / "vocab.txt").write_text("\\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]))
    processor = MirganProcessor(MirganWhisperFeatureExtractor(), BertTokenizerFast(vocab_file=str(out / "vocab.txt")))
    processor.save_pretrained(out / "model")
    stats = {"ua_mean": 0.5, "ua_std": 0.05, "wa_mean": 0.55, "wa_std": 0.04, "f1_mean": 0.45, "f1_std": 0.03,
             "per_fold": [{}, {}]}
    write_model_card(out / "model", {
        "dataset": "emodb4", "mode": "multimodal", "classes": ["angry", "happy", "neutral", "sad"], "n_clips": 12,
        "protocol": {"name": "loso", "description": "Leave one speaker out.",
                     "runs": [{"test_speakers": ["03"]}, {"test_speakers": ["08"]}]},
        "methods": {"baseline": stats, "mirgan": dict(stats, ua_mean=0.6)},
        "final_model": {"method": "mirgan"},
        "versions": {"audio_encoder": "tiny-random-whisper", "text_encoder": "tiny-random-bert"},
        "arguments": {"data": {"dataset_dir": "data/emodb4"}},
    }, model_name="mirgan-tiny")
    wave = np.random.default_rng(2).normal(0, 0.1, 9000).astype(np.float32)
    texts = ["hello world", "world"]
    inputs = processor(audio=[wave, wave[:6000]], text=texts, sampling_rate=16000)
    with torch.no_grad():
        logits = model(**inputs).logits
    torch.save({"wave": torch.from_numpy(wave), "texts": texts, "inputs": dict(inputs), "logits": logits},
               out / "expected.pt")
"""

# Runs with the package installed: the registered classes load the pulled files.
PULL = """
    import json
    import sys
    from pathlib import Path

    import torch
    from huggingface_hub import ModelCard, hf_hub_download
    from transformers import AutoModelForAudioClassification, AutoProcessor

    import modeling_mirgan

    torch.set_num_threads(1)
    repo, folder = sys.argv[1], Path(sys.argv[2])
    expected = torch.load(folder / "expected.pt", weights_only=True)
    result = {}
    for name, cls in (("direct", modeling_mirgan.MirganForEmotionClassification),
                      ("auto", AutoModelForAudioClassification)):
        model = cls.from_pretrained(repo).eval()
        with torch.no_grad():
            logits = model(**expected["inputs"]).logits
        result[name] = {"class": f"{type(model).__module__}.{type(model).__name__}",
                        "equal": torch.equal(logits, expected["logits"]),
                        "max_abs_diff": (logits - expected["logits"]).abs().max().item()}
    processor = AutoProcessor.from_pretrained(repo)
    wave = expected["wave"].numpy()
    inputs = processor(audio=[wave, wave[:6000]], text=expected["texts"], sampling_rate=16000)
    result["processor"] = {"class": type(processor).__name__,
                           "equal": sorted(inputs) == sorted(expected["inputs"]) and
                                    all(torch.equal(inputs[k], expected["inputs"][k]) for k in inputs)}
    pulled, local = ModelCard.load(repo), ModelCard.load(folder / "model" / "README.md")
    result["card_metadata_equal"] = pulled.data.to_dict() == local.data.to_dict()
    result["card_metadata"] = pulled.data.to_dict()
    from modeling_mirgan.card import retarget_card  # the pushed card names the repo id; otherwise it is the local one

    result["card_bytes_equal"] = Path(hf_hub_download(repo, "README.md")).read_text() == \\
        retarget_card((folder / "model" / "README.md").read_text(), repo)
    print(json.dumps(result))
"""

# Runs under `python -S` with only site-packages on PYTHONPATH: the package is not importable.
REMOTE_CODE = """
    import json
    import sys
    from pathlib import Path

    result = {}
    for name in ("modeling_mirgan", "processing"):
        try:
            module = __import__(name)
            result[f"import_{name}"] = f"imported from {getattr(module, '__file__', None)}"
        except ImportError as err:
            result[f"import_{name}"] = f"ImportError: {err}"

    import torch
    from transformers import AutoModelForAudioClassification, AutoProcessor

    torch.set_num_threads(1)
    repo, folder = sys.argv[1], Path(sys.argv[2])
    expected = torch.load(folder / "expected.pt", weights_only=True)
    model = AutoModelForAudioClassification.from_pretrained(repo, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(**expected["inputs"]).logits
    result["model"] = {"module": type(model).__module__, "class": type(model).__name__,
                       "equal": torch.equal(logits, expected["logits"]),
                       "max_abs_diff": (logits - expected["logits"]).abs().max().item()}
    try:
        processor = AutoProcessor.from_pretrained(repo, trust_remote_code=True)
        wave = expected["wave"].numpy()
        inputs = processor(audio=[wave, wave[:6000]], text=expected["texts"], sampling_rate=16000)
        result["processor"] = {"module": type(processor).__module__,
                               "equal": all(torch.equal(inputs[k], expected["inputs"][k]) for k in expected["inputs"])}
    except Exception as err:  # reported, judged by the test
        result["processor"] = {"error": f"{type(err).__name__}: {err}"}
    result["package_modules_loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in ("modeling_mirgan", "processing"))
    print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def pushed_model(hub, tmp_path_factory):
    """A tiny mirgan model + processor + model card saved, then pushed with the CLI."""
    work = tmp_path_factory.mktemp("model")
    run(hub, work / "home-build", [script(work, "build.py", BUILD), str(work), str(TESTS)])
    push = run(hub, work / "home-push", ["-m", "modeling_mirgan.hub", "push", "--model", str(work / "model"),
                                         "--repo_id", MODEL_REPO])
    return work, push.stdout.strip().splitlines()[-1]


def test_push_then_pull_reproduces_logits_and_card(hub, pushed_model):
    work, url = pushed_model
    assert url.startswith(f"{hub.url}/{MODEL_REPO}/commit/"), url
    local = {p.name for p in (work / "model").iterdir()}
    assert set(hub.file_list("model", MODEL_REPO)) == local | {".gitattributes"}
    assert {"config.json", "model.safetensors", "README.md", "processor_config.json", "tokenizer.json"} <= local
    assert CODE_FILES <= local, f"custom code files missing from the saved folder: {CODE_FILES - local}"

    result = last_json(run(hub, work / "home-pull", [script(work, "pull.py", PULL), MODEL_REPO, str(work)],
                           cwd=work))
    for name in ("direct", "auto"):
        assert result[name]["class"] == "modeling_mirgan.modeling_mirgan.MirganForEmotionClassification", result
        assert result[name]["equal"], f"{name}: pulled logits differ from the original by {result[name]['max_abs_diff']}"
    assert result["processor"] == {"class": "MirganProcessor", "equal": True}, result
    assert result["card_metadata_equal"] and result["card_bytes_equal"], result
    assert result["card_metadata"]["model-index"][0]["name"] == "mirgan-tiny"
    assert hub.unhandled == [], f"the client called routes the server does not implement: {hub.unhandled}"
    assert not any("xet" in path for _, path in hub.requests), "the client tried the Xet protocol"


@pytest.fixture(scope="module")
def remote_code_result(hub, pushed_model):
    """Load the pushed repo with trust_remote_code=True in `python -S`, outside the repo: no mirgan package."""
    work, _ = pushed_model
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    site_packages = os.pathsep.join(dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")))
    proc = run(hub, work / "home-remote", ["-S", script(elsewhere, "remote.py", REMOTE_CODE), MODEL_REPO, str(work)],
               cwd=elsewhere, env={"PYTHONPATH": site_packages})
    return last_json(proc)


def test_trust_remote_code_loads_model_without_the_package(remote_code_result):
    result = remote_code_result
    for name in ("modeling_mirgan", "processing"):
        assert result[f"import_{name}"].startswith("ImportError"), (
            f"`import {name}` worked in the `python -S` process ({result[f'import_{name}']}): the test would not "
            "show that the Hub code alone is enough")
    model = result["model"]
    assert model["module"].startswith("transformers_modules.") and model["class"] == "MirganForEmotionClassification", model
    assert model["equal"], f"remote-code logits differ from the original by {model['max_abs_diff']}"
    assert result["package_modules_loaded"] == [], result["package_modules_loaded"]


def test_trust_remote_code_loads_processor_without_the_package(remote_code_result):
    processor = remote_code_result["processor"]
    assert "error" not in processor, processor["error"]
    assert processor["module"].startswith("transformers_modules.") and processor["equal"], processor


DATASET_SCRIPTS = """
    import json
    import sys
    from pathlib import Path

    import datasets

    mode, folder = sys.argv[1], Path(sys.argv[2])
    features = datasets.Features({"file": datasets.Value("string"), "label": datasets.ClassLabel(names=["angry", "sad"]),
                                  "speaker": datasets.Value("string"), "duration": datasets.Value("float32"),
                                  "embedding": datasets.Sequence(datasets.Value("float32"), length=3)})
    rows = {"file": ["a.wav", "b.wav", "c.wav"], "label": [0, 1, 1], "speaker": ["03", "08", "03"],
            "duration": [1.5, 2.25, 0.75], "embedding": [[0.1, 0.2, 0.3], [1.0, -1.0, 0.5], [0.0, 0.0, 1e-3]]}
    if mode == "build":
        datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(folder / "data"))
        (folder / "data" / "README.md").write_text(
            "---\\nlicense: cc0-1.0\\npretty_name: mirgan tiny features\\ntags:\\n- speech-emotion-recognition\\n---\\n\\n"
            "# mirgan tiny features\\n\\nPer-clip features for a test. CARD-MARKER\\n")
    else:
        from huggingface_hub import DatasetCard

        pulled = datasets.load_dataset(sys.argv[3], split="train")
        original = datasets.load_from_disk(str(folder / "data"))
        card = DatasetCard.load(sys.argv[3], repo_type="dataset")
        print(json.dumps({"rows_equal": pulled.to_list() == original.to_list(),
                          "features_equal": pulled.features == original.features,
                          "pulled_rows": pulled.to_list(), "features": str(pulled.features),
                          "card": card.data.to_dict(), "card_text_kept": "CARD-MARKER" in card.text}))
"""


def test_push_dataset_round_trip(hub, tmp_path):
    code = script(tmp_path, "dataset.py", DATASET_SCRIPTS)
    run(hub, tmp_path / "home-build", [code, "build", str(tmp_path)])
    # datasets' push_to_hub needs the Parquet shards in LFS (see hub_server's docstring); the server offers
    # the legacy LFS "basic" transfer, which huggingface_hub uses only with hf_xet disabled.
    push = run(hub, tmp_path / "home-push", ["-m", "modeling_mirgan.hub", "push-dataset", "--folder",
                                             str(tmp_path / "data"), "--repo_id", DATASET_REPO],
               env={"HF_HUB_DISABLE_XET": "1"})
    assert push.stdout.strip().splitlines()[-1].startswith(f"{hub.url}/datasets/{DATASET_REPO}/commit/")
    files = hub.file_list("dataset", DATASET_REPO)
    assert "README.md" in files and any(p.startswith("data/train-") and p.endswith(".parquet") for p in files), sorted(files)

    result = last_json(run(hub, tmp_path / "home-pull", [code, "pull", str(tmp_path), DATASET_REPO], cwd=tmp_path))
    assert result["rows_equal"] and result["features_equal"], result
    card = result["card"]
    assert card["license"] == "cc0-1.0" and card["pretty_name"] == "mirgan tiny features", card
    assert card["tags"] == ["speech-emotion-recognition"] and result["card_text_kept"], card
    assert card["configs"][0]["data_files"][0]["split"] == "train", card  # what push_to_hub generated, kept
    assert hub.unhandled == [], f"the client called routes the server does not implement: {hub.unhandled}"


def test_push_model_refuses_incomplete_folders(tmp_path):
    from modeling_mirgan.hub import check_model_folder

    with pytest.raises(ValueError, match="no config.json"):
        check_model_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"auto_map": {"AutoConfig": "configuration_mirgan.MirganConfig"}}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValueError, match="no \\*.safetensors"):
        check_model_folder(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"{}")
    with pytest.raises(ValueError, match="configuration_mirgan.py"):  # trust_remote_code users would need it
        check_model_folder(tmp_path)
    (tmp_path / "configuration_mirgan.py").write_text("")
    assert check_model_folder(tmp_path) == tmp_path
