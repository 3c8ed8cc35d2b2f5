"""Reliability and security (issue 7): fuzzed decoding, pickle refusal, no network, cache damage, determinism."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from processing import AudioError, load_audio, to_mono_16k
from tests.conftest import EMBEDDED_EMODB, ROOT

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def real_wav() -> bytes:
    return next((EMBEDDED_EMODB / "sad").glob("*.wav")).read_bytes()


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def valid_wave(wave) -> bool:
    return isinstance(wave, np.ndarray) and wave.dtype == np.float32 and wave.ndim == 1 and np.isfinite(wave).all()


# ---------------------------------------------------------------- property tests: only our own clear errors

SUFFIXES = st.sampled_from(["wav", "flac", "ogg", "mp3", "aiff", "au", "raw", ""])


@FUZZ
@given(data=st.binary(max_size=3000), suffix=SUFFIXES)
def test_random_files_give_audio_or_our_error(processor, fuzz_dir, data, suffix):
    path = fuzz_dir / f"clip.{suffix}"
    path.write_bytes(data)
    try:
        wave = processor.prepare_audio(path)
    except AudioError as err:
        assert str(err).startswith(f"{path}: ") and len(str(err)) > len(str(path)) + 5 and err.reason
    else:
        assert valid_wave(wave)


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 4096)))
def test_damaged_real_wav_gives_audio_or_our_error(processor, real_wav, flips, cut):
    """A real EmoDB clip with random bytes overwritten (header included) and/or truncated."""
    data = bytearray(real_wav[:8192])
    for position, value in flips:
        data[position] = value
    data = bytes(data[:cut] if cut is not None else data)
    try:
        wave = processor.prepare_audio(data)
    except AudioError as err:
        assert str(err).startswith("bytes: ") and err.reason
    else:
        assert valid_wave(wave)


DTYPES = st.sampled_from([np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
                          np.float16, np.float32, np.float64, np.bool_, np.complex64])
RATES = st.one_of(st.sampled_from([16000, 8000, 44100, 48000, 1000, 1_000_000, 16000.0, 22050.5]),
                  st.integers(-10**7, 10**7), st.floats(allow_nan=True, allow_infinity=True),
                  st.sampled_from([None, "16000", True, b"16000", [16000]]))


@st.composite
def any_array(draw):
    dtype = np.dtype(draw(DTYPES))
    shape = draw(array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=2500).filter(lambda s: np.prod(s) <= 6000))
    return draw(arrays(dtype, shape))  # hypothesis' defaults include NaN, inf, huge and extreme integers


@FUZZ
@given(array=any_array(), rate=RATES)
def test_random_arrays_give_audio_or_our_error(array, rate):
    try:
        wave = to_mono_16k(array, rate, 16000, "clip")
    except AudioError as err:
        assert str(err).startswith("clip: ") and err.reason
    else:
        assert valid_wave(wave)


@FUZZ
@given(clips=st.lists(any_array(), min_size=1, max_size=3), rate=RATES,
       wrap=st.sampled_from(["array", "list", "tensor", "dict", "list-of-lists"]))
def test_random_inputs_through_the_processor(processor, clips, rate, wrap):
    if wrap == "array":
        audio = clips[0]
    elif wrap == "list":
        audio = clips
    elif wrap == "tensor":
        audio = [torch.from_numpy(c.astype(np.float64)) if c.dtype.kind in "fiub" else c for c in clips]
    elif wrap == "dict":
        audio = {"array": clips[0], "sampling_rate": rate, "path": None}
    else:
        audio = [c.tolist() for c in clips]
    try:
        inputs = processor(audio=audio, sampling_rate=rate)
    except AudioError as err:
        assert err.reason and ": " in str(err)
    else:
        assert np.isfinite(inputs["input_features"].numpy()).all()
        assert inputs["attention_mask"].sum(-1).min() > 0


# ---------------------------------------------------------------- security: safetensors only


@pytest.fixture()
def saved_model(tmp_path):
    from tests.test_modeling import tiny_model

    model = tiny_model()
    model.save_pretrained(tmp_path / "model")
    return model, tmp_path / "model"


class Planted:
    """Unpickling this creates a file: proof of whether a loader unpickled anything."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("keep_safetensors", [True, False])
@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.pkl", "last.ckpt"])
def test_checkpoint_with_pickle_files_is_refused(saved_model, tmp_path, keep_safetensors, name):
    from transformers import AutoModelForAudioClassification

    from modeling_mirgan import MirganForEmotionClassification

    model, folder = saved_model
    marker = tmp_path / "unpickled"
    state = dict(model.state_dict(), planted=Planted(marker))
    torch.save(state, folder / name)  # a real pickle of the state_dict, plus a payload
    if not keep_safetensors:
        (folder / "model.safetensors").unlink()
    where = "beside" if keep_safetensors else "instead of"
    for loader in (MirganForEmotionClassification, AutoModelForAudioClassification):
        with pytest.raises(ValueError, match=rf"refusing to load a checkpoint that carries pickle files "
                                             rf"\['{name}'\] \({where} model\.safetensors\)"):
            loader.from_pretrained(folder)
    assert not marker.exists()


def test_safetensors_checkpoint_loads_and_pickle_options_are_refused(saved_model):
    from modeling_mirgan import MirganForEmotionClassification

    model, folder = saved_model
    loaded = MirganForEmotionClassification.from_pretrained(folder)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(ValueError, match="use_safetensors=False is not supported"):
        MirganForEmotionClassification.from_pretrained(folder, use_safetensors=False)
    (folder / "sub").mkdir()
    torch.save({}, folder / "sub" / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"sub: refusing .* \['pytorch_model\.bin'\] \(instead of"):
        MirganForEmotionClassification.from_pretrained(folder, subfolder="sub")


LIBRARY = ["modeling_mirgan", "processing", "datasets_scripts", "train.py", "bench"]


def library_sources():
    for item in LIBRARY:
        path = ROOT / item
        yield from ([path] if path.is_file() else sorted(path.rglob("*.py")))


def calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def test_library_never_unpickles_or_trusts_remote_code():
    problems = []
    for path in library_sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in ("pickle", "cPickle", "dill", "joblib", "cloudpickle", "marshal") for n in names):
                    problems.append(f"{where}:{node.lineno}: imports {names}")
        for node, func in calls(tree):
            kwargs = {k.arg: k.value for k in node.keywords}
            if func.endswith(("torch.load", ".load")) and func.split(".")[0] in ("torch",):
                flag = kwargs.get("weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    problems.append(f"{where}:{node.lineno}: {func}() without weights_only=True")
            if func.endswith(("np.load", "numpy.load")):
                flag = kwargs.get("allow_pickle")
                if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                    problems.append(f"{where}:{node.lineno}: {func}(allow_pickle=...)")
            flag = kwargs.get("trust_remote_code")
            if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                problems.append(f"{where}:{node.lineno}: {func}(trust_remote_code=...)")
            if func in ("eval", "exec"):
                problems.append(f"{where}:{node.lineno}: {func}()")
    assert not problems, "\n".join(problems)


def weight_loads_without_safetensors() -> list[str]:
    """``<Model class>.from_pretrained(...)`` calls (weights, not configs/tokenizers) without use_safetensors=True;
    Mirgan classes are exempt: their override forces it."""
    found = []
    for path in library_sources():
        for node, func in calls(ast.parse(path.read_text())):
            receiver = func.rsplit(".", 1)[0]
            if not func.endswith(".from_pretrained") or receiver.startswith(("super", "Mirgan")) or not (
                    "Model" in receiver or "For" in receiver):
                continue
            flag = {k.arg: k.value for k in node.keywords}.get("use_safetensors")
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {func}()")
    return found


def test_pretrained_encoders_load_from_safetensors_only():
    assert weight_loads_without_safetensors() == []


def test_the_scan_finds_what_it_looks_for():
    bad = textwrap.dedent("""
        import pickle
        torch.load(path)
        torch.load(path, weights_only=False)
        AutoModel.from_pretrained(name, trust_remote_code=True)
    """)
    tree = ast.parse(bad)
    found = [func for node, func in calls(tree)]
    assert found == ["torch.load", "torch.load", "AutoModel.from_pretrained"]
    assert any(isinstance(n, ast.Import) and n.names[0].name == "pickle" for n in ast.walk(tree))


# ---------------------------------------------------------------- feature cache: damage is detected and rebuilt


def mapper(calls_made: list):
    def double(batch):
        calls_made.append(len(batch["x"]))
        return {"_row": batch["_row"], "y": [[float(x) * 2] * 64 for x in batch["x"]]}
    return double


def cache_features():
    from datasets import Features, Sequence, Value

    return Features({"_row": Value("int64"), "y": Sequence(Value("float32"), length=64)})


@pytest.fixture()
def cache(tmp_path):
    from datasets import Dataset

    from datasets_scripts.features import cached_map

    dataset = Dataset.from_dict({"x": list(range(50))})
    path = tmp_path / "cache" / "encoder-test.arrow"
    made = []

    def run():
        made.clear()
        result, hit = cached_map(dataset, mapper(made), path, cache_features(), batch_size=16)
        return [row[0] for row in result["y"][:]], hit, bool(made)

    return run, path


def test_cache_is_reused_when_intact(cache):
    run, path = cache
    values, hit, computed = run()
    assert values == [2.0 * i for i in range(50)] and not hit and computed
    assert run() == (values, True, False)
    leftovers = sorted(p.name for p in path.parent.iterdir())
    assert leftovers == [path.name, path.name + ".sha256"]  # no temporary files left behind


def damage_truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def damage_flip(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4] = bytes(b ^ 0x5A for b in data[middle : middle + 4])  # inside the float values
    path.write_bytes(bytes(data))


def damage_marker(path):
    path.with_name(path.name + ".sha256").unlink()  # e.g. killed after the rename, before the checksum


def damage_empty(path):
    path.write_bytes(b"")


def damage_other_rows(path):
    """A valid, checksummed cache of 10 other rows under the same name."""
    from datasets import Dataset

    from datasets_scripts.features import cached_map

    cached_map(Dataset.from_dict({"x": list(range(10))}), mapper([]), path, cache_features(), batch_size=16)


@pytest.mark.parametrize("damage", [damage_truncate, damage_flip, damage_marker, damage_empty, damage_other_rows])
def test_damaged_cache_is_detected_and_rebuilt(cache, damage, caplog):
    run, path = cache
    values, _, _ = run()
    damage(path)
    with caplog.at_level("WARNING", logger="mirgan"):
        rebuilt, hit, computed = run()
    assert not hit and computed and rebuilt == values
    assert "is damaged" in caplog.text and "rebuilding it" in caplog.text
    assert run() == (values, True, False)


def test_cache_write_interrupted_leaves_no_cache(cache, tmp_path):
    """A map that dies half-way (exception, or the process killed) leaves nothing at the cache path."""
    from datasets import Dataset

    from datasets_scripts.features import cached_map

    run, path = cache

    def dies(batch):
        if batch["_row"][0] >= 16:
            raise RuntimeError("killed")
        return {"_row": batch["_row"], "y": [[0.0] * 64] * len(batch["_row"])}

    with pytest.raises(RuntimeError, match="killed"):
        cached_map(Dataset.from_dict({"x": list(range(50))}), dies, path, cache_features(), batch_size=16)
    assert not path.exists() and not path.with_name(path.name + ".sha256").exists()
    pid = os.fork()
    if pid == 0:  # the child dies like SIGKILL half-way through the map: no cleanup, no exception handlers
        try:
            def killed(batch):
                if batch["_row"][0] >= 16:
                    os._exit(9)
                return {"_row": batch["_row"], "y": [[0.0] * 64] * len(batch["_row"])}

            cached_map(Dataset.from_dict({"x": list(range(50))}), killed, path, cache_features(), batch_size=16)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 9
    assert not path.exists() and not path.with_name(path.name + ".sha256").exists()
    values, hit, computed = run()
    assert values == [2.0 * i for i in range(50)] and not hit and computed


# ---------------------------------------------------------------- determinism


def test_generate_features_is_deterministic_per_seed(tmp_path):
    from modeling_mirgan import MirganForEmotionClassification
    from tests.test_modeling import tiny_model

    model = tiny_model()
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        model.real_feature_cov.copy_(torch.eye(model.config.projection_dim))
        model.real_class_spread.fill_(1.0)
    rng_state = torch.random.get_rng_state()
    a = model.generate_features(num_per_class=5, seed=3)
    b = model.generate_features(num_per_class=5, seed=3)
    c = model.generate_features(num_per_class=5, seed=4)
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # the global RNG is neither used nor moved
    assert torch.equal(a.features, b.features) and a.metrics == b.metrics and a.label_names == b.label_names
    assert not torch.equal(a.features, c.features)
    model.save_pretrained(tmp_path / "m")
    reloaded = MirganForEmotionClassification.from_pretrained(tmp_path / "m").generate_features(num_per_class=5, seed=3)
    assert torch.equal(reloaded.features, a.features) and reloaded.metrics == a.metrics
    rebuilt = tiny_model()  # same construction seed -> same weights -> same features
    with torch.no_grad():
        rebuilt.load_state_dict(model.state_dict())
    assert torch.equal(rebuilt.generate_features(num_per_class=5, seed=3).features, a.features)


def test_load_audio_is_deterministic(tmp_path):
    import soxr

    wave, _ = sf.read(next((EMBEDDED_EMODB / "sad").glob("*.wav")), dtype="float32")
    sf.write(tmp_path / "44k.flac", soxr.resample(wave, 16000, 44100), 44100)
    runs = [load_audio(tmp_path / "44k.flac") for _ in range(3)]
    assert all(np.array_equal(runs[0], r) for r in runs[1:])


# ---------------------------------------------------------------- no network unless the user asks for the Hub

NO_NETWORK = r"""
import json, socket, sys, tempfile
from pathlib import Path

attempts = []

def refuse(kind):
    def blocked(*args, **kwargs):
        attempts.append(f"{kind} {args[1:] if kind != 'dns' else args[:1]}")
        raise OSError(f"network blocked by the test ({kind})")
    return blocked

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        return refuse("connect")(self, address)
    return _connect(self, address)
def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        return refuse("connect_ex")(self, address)
    return _connect_ex(self, address)
socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
socket.getaddrinfo = refuse("dns")
socket.create_connection = refuse("create_connection")

import numpy as np, torch
import modeling_mirgan, processing, datasets_scripts, train  # noqa: F401
from transformers import AutoModelForAudioClassification, AutoProcessor, BertTokenizerFast
from modeling_mirgan import MirganForEmotionClassification, from_encoders
from processing import MirganProcessor, MirganWhisperFeatureExtractor
from modeling_mirgan.processors import build_processor
from tests.test_modeling import tiny_model
import evaluate

out = Path(tempfile.mkdtemp())
model = tiny_model()
(out / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello"]))
processor = MirganProcessor(MirganWhisperFeatureExtractor(), BertTokenizerFast(vocab_file=str(out / "vocab.txt")))
model.save_pretrained(out / "m"); processor.save_pretrained(out / "m")
loaded = AutoModelForAudioClassification.from_pretrained(out / "m")
loaded_processor = AutoProcessor.from_pretrained(out / "m")
wave = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
logits = loaded(**loaded_processor(audio=wave, sampling_rate=16000)).logits
loaded.generate_features(num_per_class=2)
evaluate.load(str(Path("datasets_scripts/metrics/ser_metrics")))
real = from_encoders(["angry", "sad"], "openai/whisper-tiny.en")  # the offline encoder resolution of train.py
build_processor("openai/whisper-tiny.en", "sentence-transformers/all-MiniLM-L6-v2")
print("RESULT " + json.dumps({"attempts": attempts, "logits": list(logits.shape)}))
"""


@pytest.fixture(scope="module", autouse=True)
def no_network_run(tmp_path_factory):
    """Started when this module's first test runs, so the fresh interpreter's imports overlap the other tests."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY",
                        "DO_NOT_TRACK", "HF_EVALUATE_OFFLINE")}
    env["PYTHONPATH"] = str(ROOT)
    script = tmp_path_factory.mktemp("no_network") / "script.py"
    script.write_text(NO_NETWORK)
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_no_network_access_without_hf_hub_offline(no_network_run):
    """Import, build, save, load, predict, generate and resolve the bundled encoders with the network cut
    (``HF_HUB_OFFLINE`` unset; sockets and DNS blocked and recorded in a fresh interpreter)."""
    stdout, stderr = no_network_run.communicate(timeout=240)
    assert no_network_run.returncode == 0, stderr[-3000:]
    result = json.loads(stdout.split("RESULT ", 1)[1])
    assert result == {"attempts": [], "logits": [1, 4]}
