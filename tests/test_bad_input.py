"""Bad audio gets a clear error naming the file and the problem; odd but valid audio is converted."""

from __future__ import annotations


import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from processing import MIN_SAMPLES, AudioError, load_audio, to_mono_16k
from tests.conftest import EMBEDDED_EMODB


@pytest.fixture(scope="module")
def speech():
    clip = next((EMBEDDED_EMODB / "angry").glob("*.wav"))
    wave, rate = sf.read(clip, dtype="float32")
    assert rate == 16000
    return wave


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match=r"nope\.wav: file not found"):
        load_audio(tmp_path / "nope.wav")


def test_zero_length_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: file is empty"):
        load_audio(tmp_path / "empty.wav")


def test_corrupt_file(tmp_path):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    with pytest.raises(AudioError, match=r"corrupt\.wav: cannot decode audio"):
        load_audio(tmp_path / "corrupt.wav")


def test_header_only_wav_is_empty_audio(tmp_path):
    sf.write(tmp_path / "noframes.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match=r"noframes\.wav: audio is empty"):
        load_audio(tmp_path / "noframes.wav")


def test_nan_and_inf_samples(tmp_path):
    wave = np.zeros(16000, np.float32)
    wave[100], wave[200] = np.nan, np.inf
    sf.write(tmp_path / "nan.wav", wave, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: audio contains 2 NaN/inf samples"):
        load_audio(tmp_path / "nan.wav")


def test_too_short_clip(processor, tmp_path):
    sf.write(tmp_path / "short.wav", np.zeros(200, np.float32), 16000)
    with pytest.raises(AudioError, match=rf"short\.wav: clip has 200 samples .* minimum of {MIN_SAMPLES}"):
        processor.prepare_audio(tmp_path / "short.wav")


def test_silence_is_valid_and_finite(processor):
    features = processor(audio=np.zeros(16000, np.float32), sampling_rate=16000)["input_features"]
    assert np.isfinite(features.numpy()).all()


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_sample_formats_decode_to_the_same_signal(tmp_path, speech, subtype):
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, speech, 16000, subtype=subtype)
    decoded = load_audio(path)
    tolerance = 0.02 if subtype == "PCM_U8" else 1e-3
    assert decoded.shape == speech.shape and np.abs(decoded - speech).max() < tolerance


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_rates_and_stereo_are_converted(tmp_path, speech, rate):
    import soxr

    resampled = soxr.resample(speech, 16000, rate)
    stereo = np.stack([resampled, resampled * 0.5], axis=1)
    sf.write(tmp_path / "stereo.wav", stereo, rate)
    decoded = load_audio(tmp_path / "stereo.wav")
    assert abs(len(decoded) - len(speech)) <= 2
    n = min(len(decoded), len(speech))
    expected = speech[:n] * 0.75  # the mean of the two channels
    if rate >= 16000:  # resampling back and forth keeps the speech band
        assert np.corrcoef(decoded[:n], expected)[0, 1] > 0.99
    else:  # 8 kHz loses everything above 4 kHz
        assert np.corrcoef(decoded[:n], expected)[0, 1] > 0.8


@pytest.mark.parametrize("fmt,ext", [("FLAC", "flac"), ("OGG", "ogg"), ("MP3", "mp3")])
def test_compressed_formats(tmp_path, speech, fmt, ext):
    path = tmp_path / f"clip.{ext}"
    try:
        sf.write(path, speech, 16000, format=fmt)
    except (sf.LibsndfileError, TypeError, ValueError) as err:
        pytest.fail(f"libsndfile cannot write {fmt}: {err}")
    decoded = load_audio(path)
    n = min(len(decoded), len(speech))
    assert abs(len(decoded) - len(speech)) < 2000 and np.isfinite(decoded).all()
    if fmt == "FLAC":
        assert np.abs(decoded[:n] - speech[:n]).max() < 1e-4


def test_channel_first_arrays_are_downmixed():
    wave = np.random.default_rng(0).normal(0, 0.1, (2, 16000)).astype(np.float32)
    assert to_mono_16k(wave, 16000, 16000).shape == (16000,)


def test_integer_arrays_are_scaled():
    wave = (np.sin(np.linspace(0, 100, 16000)) * 32767).astype(np.int16)
    out = to_mono_16k(wave, 16000, 16000)
    assert out.dtype == np.float32 and 0.99 < np.abs(out).max() <= 1.0


def test_array_without_sampling_rate(processor):
    with pytest.raises(AudioError, match="needs its sampling_rate"):
        processor.prepare_audio(np.zeros(16000, np.float32))


def test_empty_transcript(processor):
    with pytest.raises(ValueError, match=r"text\[1\]: transcript is empty"):
        processor(text=["hello", "  "])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_never_crash(processor, data):
    try:
        wave = processor.prepare_audio(data)
    except AudioError as err:
        assert str(err).startswith("bytes: ")
    else:
        assert wave.dtype == np.float32 and np.isfinite(wave).all()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    arrays(np.float64, st.tuples(st.integers(0, 3000), st.integers(1, 3)),
           elements=st.floats(allow_nan=True, allow_infinity=True, width=32)),
    st.sampled_from([0, -1, 8000, 16000, 44100]),
)
def test_random_arrays_never_crash(processor, array, rate):
    try:
        inputs = processor(audio=array, sampling_rate=rate)
    except AudioError as err:
        assert str(err).startswith("array[0]: ")
    else:
        assert np.isfinite(inputs["input_features"].numpy()).all()


# ---------------------------------------------------------------- more of issue 7's matrix on real clips


@pytest.fixture(scope="module")
def real_clip():
    return next((EMBEDDED_EMODB / "angry").glob("*.wav"))


def test_real_clip_with_damaged_header(tmp_path, real_clip):
    data = bytearray(real_clip.read_bytes())
    data[:12] = b"\x13\x37" * 6  # RIFF/WAVE magic gone: libsndfile cannot tell the format
    (tmp_path / "damaged.wav").write_bytes(bytes(data))
    with pytest.raises(AudioError, match=r"damaged\.wav: cannot decode audio \(Format not recognised"):
        load_audio(tmp_path / "damaged.wav")


def test_truncated_real_clip_decodes_what_is_there(tmp_path, real_clip, speech):
    data = real_clip.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])  # header still claims the full length
    decoded = load_audio(tmp_path / "cut.wav")
    n = len(decoded)
    assert 0.4 * len(speech) < n < 0.6 * len(speech) and np.abs(decoded - speech[:n]).max() < 1e-3


def test_directory_instead_of_file(tmp_path):
    (tmp_path / "clip.wav").mkdir()
    with pytest.raises(AudioError, match=r"clip\.wav: not a file"):
        load_audio(tmp_path / "clip.wav")


def test_silent_file_gives_finite_features(processor, tmp_path):
    sf.write(tmp_path / "silence.wav", np.zeros(32000, np.int16), 16000, subtype="PCM_16")
    wave = processor.prepare_audio(tmp_path / "silence.wav")
    features = processor(audio=wave, sampling_rate=16000)["input_features"]
    assert wave.shape == (32000,) and np.isfinite(features.numpy()).all()


def test_clip_one_sample_short_of_minimum_at_8khz(processor, tmp_path, speech):
    import soxr

    # MIN_SAMPLES - 1 samples once resampled to 16 kHz: rejected after conversion, at the encoder's rate
    short = soxr.resample(speech, 16000, 8000)[: (MIN_SAMPLES - 2) // 2]
    sf.write(tmp_path / "short8k.wav", short, 8000, subtype="PCM_16")
    with pytest.raises(AudioError, match=rf"short8k\.wav: clip has \d+ samples at 16000 Hz, shorter than .* {MIN_SAMPLES}"):
        processor.prepare_audio(tmp_path / "short8k.wav")
    ok = soxr.resample(speech, 16000, 8000)[:MIN_SAMPLES]
    sf.write(tmp_path / "ok8k.wav", ok, 8000, subtype="PCM_16")
    assert processor.prepare_audio(tmp_path / "ok8k.wav").shape[0] >= MIN_SAMPLES


def test_very_long_clip_is_processed_whole_and_predicted_in_windows(processor, tmp_path, speech):
    """Ten minutes of real speech: decoded whole, features for every frame, predict() scores 30 s windows."""
    from modeling_mirgan.predict import predict
    from tests.test_modeling import tiny_model

    reps = int(np.ceil(600 * 16000 / len(speech)))
    long_wave = np.tile(speech, reps)[: 600 * 16000]
    sf.write(tmp_path / "long.flac", long_wave, 16000, subtype="PCM_16")
    wave = processor.prepare_audio(tmp_path / "long.flac")
    assert wave.shape == (600 * 16000,)
    features = processor(audio=wave, sampling_rate=16000)
    assert features["input_features"].shape[1] == 600 * 100 and np.isfinite(features["input_features"].numpy()).all()
    [result] = predict(tiny_model(), processor, [wave[: 90 * 16000 + 8000]], sampling_rate=16000, window_seconds=30)
    spans = [(w["start_s"], w["end_s"]) for w in result["windows"]]
    assert spans == [(0.0, 30.0), (30.0, 60.0), (60.0, 90.5)]  # the 0.5 s tail joins the last window
    assert abs(sum(result["scores"].values()) - 1) < 1e-5


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_S8", "PCM_24", "FLOAT"])
@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_formats_rates_and_stereo_together(processor, tmp_path, speech, subtype, rate):
    import soxr

    stereo = np.stack([speech, -speech], axis=1)  # opposite channels: the mean is silence
    stereo = soxr.resample(stereo, 16000, rate)
    fmt = "AIFF" if subtype == "PCM_S8" else "WAV"  # WAV has no signed 8-bit; AIFF has no unsigned
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, stereo, rate, subtype=subtype, format=fmt)
    wave = processor.prepare_audio(path)
    assert abs(len(wave) - len(speech)) <= 2 and np.abs(wave).max() < 0.02
    mono = soxr.resample(speech, 16000, rate)
    sf.write(path, mono, rate, subtype=subtype, format=fmt)
    wave = processor.prepare_audio(path)
    n = min(len(wave), len(speech))
    assert np.corrcoef(wave[:n], speech[:n])[0, 1] > (0.8 if rate == 8000 else 0.99)


def test_wav_with_more_channels_than_a_layout(processor, tmp_path, speech):
    sf.write(tmp_path / "6ch.wav", np.repeat(speech[:, None], 6, axis=1), 16000, subtype="PCM_16")
    wave = processor.prepare_audio(tmp_path / "6ch.wav")
    assert np.abs(wave - speech).max() < 1e-3


@pytest.mark.parametrize("audio,rate,problem", [
    (np.zeros((3, 0), np.float32), 16000, "audio is empty"),
    (np.full(16000, 1e30), 16000, r"samples reach 1e\+30"),
    (np.zeros(16000), float("nan"), "invalid sampling rate nan"),
    (np.zeros(16000), "16000", "invalid sampling rate '16000'"),
    (np.zeros(16000), True, "invalid sampling rate True"),
    (np.zeros(16000), 10**12, "invalid sampling rate"),
    (np.zeros(16000, np.complex64), 16000, "dtype complex64"),
    (np.zeros((2, 2, 4000)), 16000, r"shape \(2, 2, 4000\)"),
    ([np.zeros(3), np.zeros(4)], 16000, "not an array of audio samples"),
])
def test_bad_arrays_and_rates(audio, rate, problem):
    with pytest.raises(AudioError, match=rf"^clip: .*{problem}"):
        to_mono_16k(audio, rate, 16000, "clip")


def test_audio_dicts(processor, real_clip, speech):
    decoded = processor.prepare_audio({"array": speech, "sampling_rate": 16000, "path": "x.wav"})
    undecoded = processor.prepare_audio({"path": str(real_clip), "bytes": None})
    from_bytes = processor.prepare_audio({"path": "in-memory.wav", "bytes": real_clip.read_bytes()})
    assert np.array_equal(decoded, speech) and np.array_equal(undecoded, from_bytes)
    with pytest.raises(AudioError, match=r"x\.wav: an audio dict with 'array' needs its 'sampling_rate'"):
        processor.prepare_audio({"array": speech, "path": "x.wav"})
    with pytest.raises(AudioError, match=r"array: an audio dict needs"):
        processor.prepare_audio({"samples": speech})


def test_transcripts_that_are_not_text(processor):
    for bad in (None, b"hello", 3):
        with pytest.raises(ValueError, match=r"text\[0\]: transcript is empty or not a string"):
            processor(text=[bad])
    with pytest.raises(ValueError, match="no transcripts"):
        processor(text=[])
    assert processor(text="hello h\u00e9llo \u6587")["input_ids"].shape[0] == 1  # any Unicode is fine


def test_feature_extractor_called_directly_validates(processor):
    with pytest.raises(AudioError, match=r"array\[1\]: clip has 100 samples"):
        processor.feature_extractor([np.zeros(1000), np.zeros(100)])
    with pytest.raises(AudioError, match=r"array\[0\]: audio contains NaN/inf"):
        processor.feature_extractor(np.full(1000, np.nan))


# ---------------------------------------------------------------- corpus rows (audiofolder metadata.csv)

from datasets_scripts.audiofolder import CorpusLayoutError, load_audiofolder  # noqa: E402

HEADER = "file_name,label,speaker,gender,text"


@pytest.fixture()
def corpus_dir(tmp_path, emodb_files):
    """A real audiofolder: 2 clips per class of 3 speakers, copied from the embedded EmoDB."""
    import shutil

    root = tmp_path / "corpus"
    picked, count = [], {}
    for row in emodb_files:
        key = (row["speaker"], row["label"])
        if row["speaker"] in ("03", "08", "09") and count.get(key, 0) < 2:
            count[key] = count.get(key, 0) + 1
            picked.append(row)
    lines = [HEADER]
    for row in picked:
        (root / row["label"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(row["path"], root / row["file_name"])
        lines.append(f"{row['file_name']},{row['label']},{row['speaker']},{row['gender']},\"{row['text']}\"")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def add_rows(root, *rows, encoding="utf-8"):
    with open(root / "metadata.csv", "ab") as f:
        for row in rows:
            f.write((row + "\n").encode(encoding) if isinstance(row, str) else row + b"\n")


def test_clean_audiofolder_loads(corpus_dir):
    corpus = load_audiofolder(corpus_dir, folds=3)
    assert len(corpus.dataset) == 24 and corpus.skipped == {} and corpus.protocol.classes == ["angry", "happy", "neutral", "sad"]


@pytest.mark.parametrize("row,problem,reason", [
    ("angry/nope.wav,angry,03,m,x", r"'angry/nope\.wav': audio file .*nope\.wav is missing", "missing file"),
    ("../outside.wav,angry,03,m,x", r"'\.\./outside\.wav': file_name points outside the dataset folder", "file_name outside the dataset folder"),
    ("angry/../../etc/passwd,angry,03,m,x", r"points outside the dataset folder", "file_name outside the dataset folder"),
    ("/etc/passwd,angry,03,m,x", r"'/etc/passwd': file_name points outside", "file_name outside the dataset folder"),
    ("FIRST,angry,03,m,again", r"'angry/03a01Wa\.wav': duplicate file_name", "duplicate file_name"),
    ("FIRST_DOTTED,angry,03,m,again", r"duplicate file_name", "duplicate file_name"),
    ("FIRST,,03,m,x", r"(duplicate file_name|empty 'label')", "duplicate file_name"),
    ("NEW,,03,m,x", r"empty 'label'", "empty label"),
    ("NEW,angry,,m,x", r"empty 'speaker'", "no speaker"),
    ("NEW,angry", r"empty 'speaker'", "no speaker"),  # a short row
    (",angry,03,m,x", r"no file_name", "no file_name"),
    (b"NEW,angry,03,m,Der Lappen liegt auf dem K\xfchlschrank.", r"column 'text' is not UTF-8", "metadata row not UTF-8"),
])
def test_bad_metadata_rows_stop_or_are_skipped_and_counted(corpus_dir, row, problem, reason):
    first = (corpus_dir / "metadata.csv").read_text().splitlines()[1].split(",")[0]
    spare = next(p for p in (corpus_dir / "angry").glob("*.wav"))
    new = "angry/spare_copy.wav"
    (corpus_dir / new).write_bytes(spare.read_bytes())
    if isinstance(row, str):
        row = row.replace("FIRST_DOTTED", first.replace("/", "/./")).replace("FIRST", first).replace("NEW", new)
    else:
        row = row.replace(b"NEW", new.encode())
    add_rows(corpus_dir, row)
    with pytest.raises(CorpusLayoutError, match=rf"metadata\.csv line 26: .*{problem}"):
        load_audiofolder(corpus_dir, folds=3)
    corpus = load_audiofolder(corpus_dir, folds=3, skip_bad=True)
    assert corpus.skipped == {reason: 1} and len(corpus.dataset) == 24
    assert len(corpus.skipped_examples[reason]) == 1


def test_unknown_and_unselected_labels_are_dropped_and_counted(corpus_dir):
    spare = corpus_dir / "angry" / "x_fear.wav"
    spare.write_bytes(next((corpus_dir / "angry").glob("*.wav")).read_bytes())
    add_rows(corpus_dir, "angry/x_fear.wav,fear,03,m,x")
    everything = load_audiofolder(corpus_dir, folds=3)  # no --classes: every label present is a class
    assert "fear" in everything.protocol.classes and len(everything.dataset) == 25
    corpus = load_audiofolder(corpus_dir, classes=["sad", "angry"], folds=3)  # default, not only with skip_bad
    assert corpus.skipped == {"label not in classes: fear": 1, "label not in classes: happy": 6,
                              "label not in classes: neutral": 6}
    assert corpus.protocol.classes == ["sad", "angry"] and sorted(set(corpus.dataset["label"])) == ["angry", "sad"]
    with pytest.raises(CorpusLayoutError, match=r"classes \['disgust'\] have no rows"):
        load_audiofolder(corpus_dir, classes=["angry", "disgust"], folds=3)


def test_labels_and_speakers_are_stripped(corpus_dir):
    add_rows(corpus_dir, f"{next(iter(sorted((corpus_dir / 'sad').glob('*.wav')))).relative_to(corpus_dir)}_dup,sad,03,m,x")
    text = (corpus_dir / "metadata.csv").read_text().replace(",sad,", ", sad ,").replace(",03,", ", 03 ,")
    (corpus_dir / "metadata.csv").write_text(text)
    corpus = load_audiofolder(corpus_dir, folds=3, skip_bad=True)
    assert sorted(set(corpus.dataset["label"])) == ["angry", "happy", "neutral", "sad"]
    assert sorted(set(corpus.dataset["speaker"])) == ["03", "08", "09"]
    assert corpus.skipped == {"missing file": 1}


def test_symlinked_audio_inside_the_folder_is_allowed(corpus_dir, tmp_path, real_clip):
    (tmp_path / "storage").mkdir()
    target = tmp_path / "storage" / "clip.wav"
    target.write_bytes(real_clip.read_bytes())
    (corpus_dir / "linked.wav").symlink_to(target)  # the user's own link, not a path in metadata.csv
    add_rows(corpus_dir, "linked.wav,angry,03,m,x")
    corpus = load_audiofolder(corpus_dir, folds=3)
    assert "linked.wav" in corpus.dataset["id"]


def test_speaker_column_missing(corpus_dir):
    text = (corpus_dir / "metadata.csv").read_text().replace("speaker", "spk", 1)
    (corpus_dir / "metadata.csv").write_text(text)
    with pytest.raises(CorpusLayoutError, match=r"no column 'speaker' \(columns: \['file_name', 'label', 'spk'"):
        load_audiofolder(corpus_dir)
    assert len(load_audiofolder(corpus_dir, speaker_column="spk", folds=3).dataset) == 24


def test_one_speaker_is_not_enough_for_speaker_folds(corpus_dir):
    lines = (corpus_dir / "metadata.csv").read_text().splitlines()
    (corpus_dir / "metadata.csv").write_text("\n".join([lines[0]] + [l for l in lines[1:] if ",03," in l]))
    with pytest.raises(CorpusLayoutError, match="need at least 2 speakers, found 1"):
        load_audiofolder(corpus_dir)


def test_empty_transcripts_load_as_empty_text(corpus_dir):
    lines = (corpus_dir / "metadata.csv").read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ","
    lines[2] = lines[2].rsplit(",", 1)[0] + ",\"   \""
    (corpus_dir / "metadata.csv").write_text("\n".join(lines))
    texts = load_audiofolder(corpus_dir, folds=3).dataset["text"]
    assert texts[:2] == ["", ""] and all(texts[2:])  # train.py decides: error, --skip_bad or no text alignment


def test_latin1_metadata_names_the_first_bad_line(corpus_dir):
    text = (corpus_dir / "metadata.csv").read_text()
    (corpus_dir / "metadata.csv").write_bytes(text.encode("latin-1"))  # EmoDB transcripts have umlauts
    lines = text.splitlines()
    first = next(i for i, l in enumerate(lines) if not l.isascii()) + 1
    with pytest.raises(CorpusLayoutError, match=rf"line {first}: .* column 'text' is not UTF-8"):
        load_audiofolder(corpus_dir, folds=3)
    corpus = load_audiofolder(corpus_dir, folds=3, skip_bad=True)
    n_bad = sum(not l.isascii() for l in lines)
    assert corpus.skipped == {"metadata row not UTF-8": n_bad} and len(corpus.dataset) == 24 - n_bad


def test_a_class_missing_from_a_fold(corpus_dir):
    """'sad' only from speaker 03: the folds without 03 in test have no 'sad' rows; UA and F1 leave it out."""
    import evaluate

    from tests.conftest import ROOT

    lines = (corpus_dir / "metadata.csv").read_text().splitlines()
    keep = [lines[0]] + [l for l in lines[1:] if ",sad," not in l or ",03," in l]
    (corpus_dir / "metadata.csv").write_text("\n".join(keep))
    corpus = load_audiofolder(corpus_dir, folds=3)
    labels = corpus.dataset["label"]
    classes = corpus.protocol.classes
    metric = evaluate.load(str(ROOT / "datasets_scripts" / "metrics" / "ser_metrics"))
    without_sad = 0
    for fold in corpus.protocol.folds:
        train_idx, test_idx = fold.split(corpus.dataset["speaker"])
        refs = [classes.index(labels[i]) for i in test_idx]
        if "sad" in {labels[i] for i in test_idx}:
            assert "sad" not in {labels[i] for i in train_idx}  # and its training part has none
            continue
        without_sad += 1
        perfect = metric.compute(predictions=refs, references=refs)
        assert perfect == {"ua": 1.0, "wa": 1.0, "f1": 1.0}
        wrong = metric.compute(predictions=[classes.index("sad")] * len(refs), references=refs)
        assert wrong == {"ua": 0.0, "wa": 0.0, "f1": 0.0}
    assert without_sad == 2


# ---------------------------------------------------------------- --skip_bad on decoded clips


def test_drop_bad_clips_counts_each_problem(corpus_dir, processor, real_clip):
    from datasets_scripts.features import drop_bad_clips

    def write(name, data):
        path = corpus_dir / "angry" / name
        path.write_bytes(data) if isinstance(data, bytes) else sf.write(path, *data)
        return path

    wave, _ = sf.read(real_clip, dtype="float32")
    nan = wave.copy()
    nan[::1000] = np.nan
    bad = [write("corrupt.wav", b"RIFF" + bytes(200)), write("empty.wav", b""),
           write("short1.wav", (wave[:100], 16000)), write("short2.wav", (wave[:300], 16000)),
           write("nan1.wav", (nan, 16000, "FLOAT")), write("nan2.wav", (nan[:5000], 16000, "FLOAT"))]
    add_rows(corpus_dir, *[f"angry/{p.name},angry,03,m,x" for p in bad])
    corpus = load_audiofolder(corpus_dir, folds=3)
    kept, dropped = drop_bad_clips(corpus.dataset, processor)
    assert len(kept) == 24 and set(kept["audio"]).isdisjoint(map(str, bad))
    assert {reason: len(paths) for reason, paths in dropped.items()} == {
        "cannot decode audio": 1, "file is empty": 1, "clip shorter than the encoder's minimum": 2,
        "audio contains NaN/inf samples": 2}
    assert sorted(p for paths in dropped.values() for p in paths) == sorted(map(str, bad))


# ---------------------------------------------------------------- label set of a checkpoint


def test_label_set_must_match_the_checkpoint():
    from modeling_mirgan.modeling_mirgan import check_label_set
    from tests.test_modeling import LABELS, tiny_model

    config = tiny_model().config
    assert check_label_set(config, ["sad", "angry", "neutral", "happy"]) == LABELS  # order: the checkpoint's ids
    with pytest.raises(ValueError, match=r"label set of emodb \['angry', 'fear', 'happy', 'neutral'\] does not match "
                                         r"the checkpoint's \['angry', 'happy', 'neutral', 'sad'\]; not in the "
                                         r"checkpoint: \['fear'\]; not in emodb: \['sad'\]"):
        check_label_set(config, ["angry", "happy", "neutral", "fear"], where="emodb")
    with pytest.raises(ValueError, match=r"not in the data: \['sad'\]"):
        check_label_set(config, LABELS[:3])
