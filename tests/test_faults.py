"""Faults of issue 15: silent wrong results, lost output, hangs and unbounded memory, unnamed errors.

Each test builds the bad input or fault itself (real EmoDB clips from data/emodb4) and checks that
the package names the problem (or recovers) instead of producing a result."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from datasets_scripts.audiofolder import CorpusLayoutError, load_audiofolder
from tests.conftest import ROOT

HEADER = ["file_name", "label", "speaker", "gender", "text"]


@pytest.fixture
def corpus(tmp_path, emodb_files):
    """An audiofolder of 3 EmoDB speakers x 4 classes x 2 clips (real audio)."""
    root = tmp_path / "corpus"
    picked, count = [], {}
    for row in emodb_files:
        key = (row["speaker"], row["label"])
        if row["speaker"] in ("03", "08", "09") and count.get(key, 0) < 2:
            count[key] = count.get(key, 0) + 1
            picked.append(row)
    for row in picked:
        (root / row["label"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(row["path"], root / row["file_name"])
    write_metadata(root, [[r[c] for c in HEADER] for r in picked])
    return root


def write_metadata(root: Path, rows: list[list[str]], header: list[str] = HEADER) -> None:
    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def read_metadata(root: Path) -> list[list[str]]:
    with open(root / "metadata.csv", newline="", encoding="utf-8") as f:
        return list(csv.reader(f))[1:]


# ---------------------------------------------------------------- silent wrong results: metadata


def test_duplicate_header_column_is_refused(corpus):
    rows = read_metadata(corpus)
    write_metadata(corpus, [r + ["angry"] for r in rows], HEADER + ["label"])
    with pytest.raises(CorpusLayoutError, match=r"metadata\.csv line 1: the header names column 'label' twice"):
        load_audiofolder(corpus, folds=3)


def test_label_case_and_space_variants_are_refused_or_merged_on_request(corpus):
    rows = read_metadata(corpus)
    angry = [i for i, r in enumerate(rows) if r[1] == "angry"]
    rows[angry[1]][1], rows[angry[2]][1] = "ANGRY", "Angry "
    write_metadata(corpus, rows)
    line = angry[1] + 2  # header is line 1
    with pytest.raises(CorpusLayoutError, match=rf"line {line}: 'label' 'ANGRY' differs from 'angry' .*"
                                                rf"'Angry ' .*--normalize_labels"):
        load_audiofolder(corpus, folds=3)
    merged = load_audiofolder(corpus, folds=3, normalize_labels=True)
    assert merged.protocol.classes == ["angry", "happy", "neutral", "sad"]
    assert merged.dataset["label"].count("angry") == len(angry)


def test_row_with_more_cells_than_the_header_names_the_line(corpus):
    rows = read_metadata(corpus)
    rows[3] = rows[3][:4] + ["Der Lappen", " liegt auf dem Eisschrank."]  # an unquoted comma in the transcript
    with open(corpus / "metadata.csv", "w", encoding="utf-8") as f:
        f.write(",".join(HEADER) + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    with pytest.raises(CorpusLayoutError, match=r"line 5: .*6 cells but the header has 5.*must be quoted"):
        load_audiofolder(corpus, folds=3)
    skipped = load_audiofolder(corpus, folds=3, skip_bad=True)
    assert skipped.skipped == {"more cells than the header": 1} and len(skipped.dataset) == len(rows) - 1


def test_a_class_from_one_speaker_stops_before_training(corpus):
    from datasets_scripts import load_corpus
    from datasets_scripts.protocol import FoldCoverageError

    rows = [r for r in read_metadata(corpus) if r[1] != "sad" or r[2] == "03"]
    write_metadata(corpus, rows)
    with pytest.raises(FoldCoverageError, match=r"fold fold\d: class 'sad' has no training clips .*speaker 03"):
        load_corpus("audiofolder", corpus, folds=3)
    flagged = load_corpus("audiofolder", corpus, folds=3, allow_missing_classes=True)
    held_out = [f.name for f in flagged.protocol.folds if "03" in f.test_values]
    assert flagged.untestable == {held_out[0]: ["sad"]}


def test_transcript_column_under_another_name_names_text_column(corpus, caplog):
    rows = read_metadata(corpus)
    write_metadata(corpus, rows, HEADER[:4] + ["transcript"])
    with caplog.at_level(logging.WARNING, logger="mirgan"):
        load_audiofolder(corpus, folds=3)
    assert "--text_column transcript" in caplog.text


# ---------------------------------------------------------------- unnamed errors: files that are not audio


@pytest.mark.parametrize("kind,problem", [
    ("directory", r"not a file \(it is a directory\)"),
    ("fifo", r"not a regular file \(it is a named pipe, FIFO\)"),
    ("loop", r"symbolic link loop"),
    ("broken", r"broken symbolic link"),
])
def test_metadata_row_pointing_at_a_non_file_names_what_it_is(corpus, kind, problem):
    from processing import AudioError, load_audio

    target = corpus / "angry" / "odd.wav"
    if kind == "directory":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "loop":
        os.symlink(target, target)
    else:
        os.symlink(corpus / "nowhere.wav", target)
    write_metadata(corpus, read_metadata(corpus) + [["angry/odd.wav", "angry", "03", "m", "x"]])
    with pytest.raises(CorpusLayoutError, match=rf"'angry/odd\.wav': audio file .*odd\.wav: {problem}"):
        load_audiofolder(corpus, folds=3)
    with pytest.raises(AudioError, match=rf"odd\.wav: {problem}"):
        load_audio(target)


def test_unreadable_file_is_named_permission_denied(tmp_path, emodb_files, monkeypatch):
    from processing import AudioError, load_audio

    clip = tmp_path / "locked.wav"
    shutil.copy(emodb_files[0]["path"], clip)
    clip.chmod(0)
    if os.geteuid() == 0:  # root reads any file: make open() fail the way it does for a user
        import builtins

        real_open = builtins.open

        def denying_open(file, *args, **kwargs):
            if str(file) == str(clip):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", denying_open)
    with pytest.raises(AudioError, match=r"locked\.wav: permission denied"):
        load_audio(clip)


# ---------------------------------------------------------------- loading: silent wrong results and unnamed errors


@pytest.fixture
def saved(tmp_path):
    from tests.test_modeling import tiny_model

    model = tiny_model()
    model.save_pretrained(tmp_path / "model")
    return model, tmp_path / "model"


def rewrite_weights(folder: Path, change) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(folder / "model.safetensors")
    change(state)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})


def test_model_with_missing_heads_is_refused_naming_them(saved):
    from modeling_mirgan import MirganForEmotionClassification

    _, folder = saved
    rewrite_weights(folder, lambda s: [s.pop("classifier.weight"), s.pop("classifier.bias")])
    with pytest.raises(ValueError, match=r"lacks weights classifier\.bias, classifier\.weight"):
        MirganForEmotionClassification.from_pretrained(folder)


def test_model_with_nan_weights_is_refused(saved):
    from modeling_mirgan import MirganForEmotionClassification

    _, folder = saved
    rewrite_weights(folder, lambda s: s["audio_projection.weight"].view(-1)[:3].fill_(float("nan")))
    with pytest.raises(ValueError, match=r"NaN/inf values \(audio_projection\.weight\)"):
        MirganForEmotionClassification.from_pretrained(folder)


def test_model_folder_errors_name_the_folder_and_problem(saved, tmp_path):
    from modeling_mirgan import MirganForEmotionClassification

    _, folder = saved
    for missing in (tmp_path / "outputs" / "run" / "model", tmp_path / "model-typo"):
        with pytest.raises(ValueError, match=rf"{missing.name}: no such folder"):
            MirganForEmotionClassification.from_pretrained(missing)
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {"0": "angry", "1": "happy", "2": "neutral", "7": "sad"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config\.json: id2label must number the classes 0\.\.3, found ids \[0, 1, 2, 7\] "
                                         r"\(missing \[3, 4, 5, 6\]\)"):
        MirganForEmotionClassification.from_pretrained(folder)
    (folder / "config.json").write_text("")
    with pytest.raises(ValueError, match=r"config\.json: damaged or truncated config file"):
        MirganForEmotionClassification.from_pretrained(folder)


@pytest.mark.parametrize("keep", [0.5, 0.999, 0.0001])
def test_truncated_safetensors_names_the_file(saved, keep):
    from modeling_mirgan import MirganForEmotionClassification

    _, folder = saved
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: max(int(len(data) * keep), 4)])
    with pytest.raises(ValueError, match=r"model\.safetensors: damaged or truncated safetensors file"):
        MirganForEmotionClassification.from_pretrained(folder)


def test_trainer_output_and_checkpoints_load_without_unpickling(tmp_path, monkeypatch):
    """Fine-tune with transformers.Trainer, reload the output folder and a checkpoint; pickled weights stay refused."""
    import pickle

    import torch
    from transformers import Trainer, TrainingArguments

    from modeling_mirgan import MirganForEmotionClassification
    from tests.test_modeling import tiny_model

    model = tiny_model().train()
    layers, dim = model.config.num_audio_layers, model.config.audio_hidden_size
    generator = torch.Generator().manual_seed(0)
    rows = [{"audio_layer_features": torch.randn(layers, dim, generator=generator), "labels": i % 4} for i in range(32)]
    args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, max_steps=4, per_device_train_batch_size=8,
                             save_steps=2, learning_rate=1e-2, report_to=[], disable_tqdm=True, logging_steps=100)
    trainer = Trainer(model=model, args=args, train_dataset=rows)
    trainer.train()
    trainer.save_model(str(tmp_path / "out"))
    checkpoint = tmp_path / "out" / "checkpoint-2"
    assert (tmp_path / "out" / "training_args.bin").is_file() and (checkpoint / "optimizer.pt").is_file()

    def no_unpickling(*args, **kwargs):
        raise AssertionError("a Trainer state file was unpickled")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    monkeypatch.setattr(torch, "load", no_unpickling)
    trained_state = model.state_dict()
    loaded = MirganForEmotionClassification.from_pretrained(tmp_path / "out")
    assert all(torch.equal(trained_state[k], v) for k, v in loaded.state_dict().items())
    from_checkpoint = MirganForEmotionClassification.from_pretrained(checkpoint)
    assert not torch.equal(from_checkpoint.classifier.weight, loaded.classifier.weight)  # step 2, not step 4
    (checkpoint / "model.safetensors").rename(checkpoint / "pytorch_model.bin")  # pickled weights alone: refused
    with pytest.raises(ValueError, match=r"pickle files \['pytorch_model\.bin'\] \(instead of model\.safetensors\)"):
        MirganForEmotionClassification.from_pretrained(checkpoint)


# ---------------------------------------------------------------- lost output: model replacement, state files


def test_model_killed_between_renames_is_recovered_by_the_loader(saved, tmp_path):
    """The state a SIGKILL left in issue 15: .model.old and .model.tmp, no model/ -> a complete model loads."""
    from modeling_mirgan import MirganForEmotionClassification

    model, folder = saved
    shutil.copytree(folder, tmp_path / ".model.tmp")
    folder.rename(tmp_path / ".model.old")
    loaded = MirganForEmotionClassification.from_pretrained(folder)
    assert loaded.config.id2label == model.config.id2label
    assert (folder / "model.safetensors").is_file() and not (tmp_path / ".model.old").exists()


KILL_LOOP = """
import importlib.util, shutil, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("safe_io", "modeling_mirgan/safe_io.py")  # without the package's imports
safe_io = importlib.util.module_from_spec(spec)
spec.loader.exec_module(safe_io)
if sys.argv[2] == "fallback":
    safe_io._exchange = lambda a, b: False
root = Path(sys.argv[1])
i = 0
while True:
    tmp = root / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(root / ("A" if i % 2 else "B"), tmp)
    safe_io.replace_folder(tmp, root / "model", durable=False)
    i += 1
    if i == 3:
        print("running", flush=True)
"""


@pytest.mark.parametrize("mode", ["exchange", "fallback"])
def test_sigkill_at_any_point_of_replace_folder_leaves_a_complete_model(tmp_path, mode):
    """Kill a loop of replacements at random instants: after recovery model/ is always version A or B, whole."""
    import random
    import signal
    import time

    from modeling_mirgan.safe_io import recover_folder

    versions = {}
    for name in ("A", "B"):
        (tmp_path / name).mkdir()
        for k in range(30):
            (tmp_path / name / f"part{k}.bin").write_bytes(name.encode() * (20000 + k))
        versions[name] = sorted((p.name, p.read_bytes()) for p in (tmp_path / name).iterdir())
    shutil.copytree(tmp_path / "A", tmp_path / "model")
    rng = random.Random(0)
    for attempt in range(12):
        proc = subprocess.Popen([sys.executable, "-c", KILL_LOOP, str(tmp_path), mode], cwd=ROOT, stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline().strip() == "running"
        time.sleep(rng.uniform(0, 0.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert recover_folder(tmp_path / "model") == tmp_path / "model"
        content = sorted((p.name, p.read_bytes()) for p in (tmp_path / "model").iterdir())
        assert content in (versions["A"], versions["B"]), f"attempt {attempt}: an incomplete model/"


def test_state_file_and_json_writes(tmp_path, monkeypatch):
    from modeling_mirgan.safe_io import read_json_state, write_json_atomic

    state = tmp_path / "checkpoints" / "state.json"
    assert read_json_state(state) is None
    write_json_atomic(state, {"run_key": "k", "runs": {}})
    assert read_json_state(state) == {"run_key": "k", "runs": {}}
    for damage in ("", '{"run_key": "k", "ru', "[1, 2]"):
        state.write_text(damage)
        with pytest.raises(ValueError, match=r"state\.json: .*delete it or run without --resume"):
            read_json_state(state)

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_json_atomic(state, {"big": 1})
    assert sorted(p.name for p in state.parent.iterdir()) == ["state.json"]  # no temporary file left behind


# ---------------------------------------------------------------- feature cache: every file read is verified; no leftovers


def cache_map(path: Path, n: int = 50):
    from datasets import Dataset, Features, Sequence, Value

    from datasets_scripts.features import cached_map

    features = Features({"_row": Value("int64"), "y": Sequence(Value("float32"), length=8)})

    def double(batch):
        return {"_row": batch["_row"], "y": [[2.0 * x] * 8 for x in batch["x"]]}

    return cached_map(Dataset.from_dict({"x": list(range(n))}), double, path, features, batch_size=16)


def test_disk_full_during_a_cache_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    from datasets import arrow_writer

    path = tmp_path / "cache" / "encoder-x.arrow"

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:  # a full disk fails every write, the final flush included
        patch.setattr(arrow_writer.ArrowWriter, "write_batch", disk_full)
        patch.setattr(arrow_writer.ArrowWriter, "finalize", disk_full)
        with pytest.raises(OSError, match="No space left"):
            cache_map(path)
    assert sorted(p.name for p in path.parent.iterdir()) == []
    result, hit = cache_map(path)
    assert not hit and result["y"][3][0] == 6.0
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".sha256"]


def test_every_cache_file_read_has_a_checksum(tmp_path, caplog):
    """A datasets ``cache-*.arrow`` (no checksum) beside the cache, damaged: never read; the rerun is unchanged."""
    path = tmp_path / "cache" / "encoder-x.arrow"
    result, _ = cache_map(path)
    expected = result["y"][:]
    result.select([3, 1, 2, 0]).map(lambda b: b, batched=True)  # datasets writes unverified cache-*.arrow files
    derived = sorted(path.parent.glob("cache-*.arrow"))
    assert derived
    for item in derived:  # a flipped byte in each
        data = bytearray(item.read_bytes())
        data[len(data) // 2] ^= 0x5A
        item.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="mirgan"):
        again, hit = cache_map(path)
    assert hit and again["y"][:] == expected
    assert "without a checksum" in caplog.text
    arrows = sorted(p for p in path.parent.iterdir() if p.suffix == ".arrow")
    assert arrows == [path] and all(p.with_name(p.name + ".sha256").is_file() for p in arrows)
    assert all(Path(f["filename"]).with_name(Path(f["filename"]).name + ".sha256").is_file() for f in again.cache_files)


# ---------------------------------------------------------------- predict: arguments, folders, bad files, scores, memory


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from tests.test_transcripts import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny") / "model", "unimodal")


def run_predict(argv, capsys):
    from modeling_mirgan.predict import main

    try:
        results = main(argv)
        code = 0
    except SystemExit as exit:
        results, code = None, exit.code
    out = capsys.readouterr()
    return code, results, out.out, out.err


@pytest.mark.parametrize("flag,value", [("--window_seconds", "-1"), ("--window_seconds", "0"), ("--window_seconds", "nan"),
                                        ("--batch_size", "0"), ("--batch_size", "-3"), ("--asr_batch_size", "0")])
def test_predict_refuses_bad_numbers_naming_the_flag(tiny_model_dir, emodb_files, capsys, flag, value):
    code, _, _, err = run_predict(["--model", str(tiny_model_dir), emodb_files[0]["path"], flag, value], capsys)
    assert code == 2 and f"{flag} must be" in err


def test_predict_function_validates_its_numbers(tiny_model_dir, emodb_files):
    from modeling_mirgan import MirganForEmotionClassification, MirganProcessor
    from modeling_mirgan.predict import predict

    model = MirganForEmotionClassification.from_pretrained(tiny_model_dir)
    processor = MirganProcessor.from_pretrained(tiny_model_dir)
    for kwargs, problem in [({"window_seconds": -1}, "window_seconds must be a positive"),
                            ({"window_seconds": 0.001}, "shorter than the encoder's minimum"),
                            ({"batch_size": 0}, "batch_size must be a whole number >= 1")]:
        with pytest.raises(ValueError, match=problem):
            predict(model, processor, [emodb_files[0]["path"]], **kwargs)


def test_predict_on_a_folder_without_audio_is_an_error(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "metadata.csv").write_text("file_name,label\n")
    for folder, what in [("empty", "is empty"), ("notes", "holds 1 file, none of them audio")]:
        code, _, _, err = run_predict(["--model", str(tiny_model_dir), str(tmp_path / folder),
                                       "--output", str(tmp_path / "p.csv")], capsys)
        assert code == 1 and f"{folder}: no audio files found (the folder {what}" in err
    assert not (tmp_path / "p.csv").exists()


def test_predict_walks_sub_folders_and_every_decodable_format(tiny_model_dir, tmp_path, emodb_files, capsys):
    wave, rate = sf.read(emodb_files[0]["path"], dtype="float32")
    root = tmp_path / "audio"
    (root / "x.wav").mkdir(parents=True)  # a folder named like a file: walked into
    sf.write(root / "x.wav" / "inner.wav", wave, rate)
    sf.write(root / "a.opus", wave, 48000 if rate != 48000 else rate, format="OGG", subtype="OPUS")
    sf.write(root / "b.oga", wave, rate, format="OGG", subtype="VORBIS")
    sf.write(root / "c.wave", wave, rate, format="WAV")
    sf.write(root / "no_extension", wave, rate, format="FLAC")  # decodable without an audio extension
    (root / "README.txt").write_text("not audio")
    (root / ".hidden.wav").write_bytes(b"junk")
    out = tmp_path / "p.json"
    code, results, _, err = run_predict(["--model", str(tiny_model_dir), str(root), "--output", str(out)], capsys)
    assert code == 0, err
    names = sorted(Path(r["source"]).name for r in results)
    assert names == ["a.opus", "b.oga", "c.wave", "inner.wav", "no_extension"]
    assert json.loads(out.read_text()) == results


def test_predict_skip_bad_counts_and_lists_the_skipped_files(tiny_model_dir, tmp_path, emodb_files, capsys):
    root = tmp_path / "audio"
    root.mkdir()
    shutil.copy(emodb_files[0]["path"], root / "good.wav")
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 20)
    (root / "empty.flac").write_bytes(b"")
    argv = ["--model", str(tiny_model_dir), str(root), "--output", str(tmp_path / "p.csv")]
    code, _, _, err = run_predict(argv, capsys)
    assert code == 1 and "broken.wav: cannot decode audio" in err and "--skip_bad" in err
    code, results, _, err = run_predict(argv + ["--skip_bad"], capsys)
    assert code == 0 and [Path(r["source"]).name for r in results] == ["good.wav"]
    assert "skipped 2 of 3 files" in err and "cannot decode audio: 1" in err and "file is empty: 1" in err
    assert str(root / "broken.wav") in err and str(root / "empty.flac") in err


def test_non_finite_scores_are_an_error(emodb_files, processor):
    import torch

    from modeling_mirgan.predict import predict
    from tests.test_modeling import tiny_model

    model = tiny_model()
    with torch.no_grad():
        model.classifier.bias[1] = float("nan")
    with pytest.raises(ValueError, match=r"03a01Wa\.wav window 0\.00-.* s: the model produced non-finite scores"):
        predict(model, processor, [str(ROOT / "data" / "emodb4" / "angry" / "03a01Wa.wav")])


PEAK_SCRIPT = ("import resource, runpy, sys; sys.argv = sys.argv[1:]; "
               "runpy.run_module('modeling_mirgan.predict', run_name='__main__'); "
               "print('PEAK_RSS_MB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")


def test_long_recording_memory_is_flat_in_its_length(tiny_model_dir, tmp_path, emodb_files):
    """Peak RSS of predict on 20 minutes of 44.1 kHz stereo is within 15 % of that on 5 minutes."""
    speech = np.concatenate([sf.read(r["path"], dtype="float32")[0] for r in emodb_files[:40]])
    import soxr

    speech = soxr.resample(speech, 16000, 44100).astype(np.float32)
    stereo = np.stack([speech, 0.5 * speech], axis=1)
    peaks = {}
    for minutes in (5, 20):
        path = tmp_path / f"{minutes}min.wav"
        frames = minutes * 60 * 44100
        with sf.SoundFile(path, "w", 44100, 2, "PCM_16") as f:
            written = 0
            while written < frames:
                block = stereo[: frames - written]
                f.write(block)
                written += len(block)
        out = tmp_path / f"{minutes}.json"
        proc = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, "predict", "--model", str(tiny_model_dir), str(path),
                               "--output", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        [result] = json.loads(out.read_text())
        assert len(result["windows"]) == minutes * 2 and result["windows"][-1]["end_s"] == minutes * 60.0
        peaks[minutes] = float(proc.stdout.split("PEAK_RSS_MB")[-1])
        path.unlink()
    print("peak RSS MB", peaks)
    assert peaks[20] <= 1.15 * peaks[5], peaks


# ---------------------------------------------------------------- generate: arguments, never into a foreign folder


def run_generate(argv, capsys):
    from modeling_mirgan.generate import main

    try:
        main(argv)
        code = 0
    except SystemExit as exit:
        code = exit.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("extra,problem", [
    (["--num_per_class", "0"], "--num_per_class must be >= 1"),
    (["--num_per_class", "-5"], "--num_per_class must be >= 1"),
    (["--labels"], "--labels needs at least one class name"),
    (["--labels", "angry", "angry"], "--labels repeats"),
    (["--labels", "joy"], r"--labels \['joy'\]: not classes of this model; it knows \['angry', 'happy', 'neutral', 'sad'\]"),
    (["--num_per_class", "1", "--labels", "angry"], "need at least 2"),
])
def test_generate_validates_its_arguments(tiny_model_dir, tmp_path, capsys, extra, problem):
    import re

    code, err = run_generate(["--model", str(tiny_model_dir), "--output", str(tmp_path / "synth"), *extra], capsys)
    assert code == 2 and re.search(problem, err), err
    assert not (tmp_path / "synth").exists()


def test_generate_never_writes_into_a_folder_it_did_not_create(tiny_model_dir, tmp_path, capsys):
    from datasets import load_from_disk

    model_copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_copy)
    before = {p.name: p.read_bytes() for p in model_copy.iterdir() if p.is_file()}
    code, err = run_generate(["--model", str(model_copy), "--num_per_class", "3", "--output", str(model_copy)], capsys)
    assert code == 2 and "holds a model" in err and "refusing to write into it" in err
    assert {p.name: p.read_bytes() for p in model_copy.iterdir() if p.is_file()} == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    code, err = run_generate(["--model", str(model_copy), "--num_per_class", "3", "--output", str(other)], capsys)
    assert code == 2 and "did not create" in err and (other / "keep.txt").read_text() == "mine"
    synth = tmp_path / "synth"
    for n in (3, 5):  # its own earlier output is replaced whole
        code, err = run_generate(["--model", str(model_copy), "--num_per_class", str(n), "--output", str(synth)], capsys)
        assert code == 0, err
        assert len(load_from_disk(str(synth))) == 4 * n
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "notes", "synth"]  # no temporary folder left


@pytest.mark.parametrize("module", ["predict", "generate"])
def test_cli_help_imports_no_heavy_library(module):
    """The CLI modules answer --help before importing torch, transformers or datasets."""
    script = ("import importlib.util, sys, time; t = time.time(); "
              f"spec = importlib.util.spec_from_file_location('cli', 'modeling_mirgan/{module}.py'); "
              "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
              "exec('try:\\n m.build_parser().parse_args([\"--help\"])\\nexcept SystemExit: pass'); "
              "heavy = [n for n in ('torch', 'transformers', 'datasets') if n in sys.modules]; "
              "print('HEAVY', heavy, time.time() - t)")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--help" in proc.stdout or "usage:" in proc.stdout
    line = proc.stdout.split("HEAVY")[-1]
    assert line.strip().startswith("[]"), line
    assert float(line.split("]")[-1]) < 1.0
