"""Release-layout corpus builders: tiny corpora in each official layout, plus EmoDB/RAVDESS from real clips."""

from __future__ import annotations

import csv
import math
import shutil
from collections import Counter
from pathlib import Path

import pytest

from datasets_scripts.audiofolder import SCHEMA, CorpusLayoutError
from datasets_scripts.emodb import load_emodb
from datasets_scripts.iemocap import load_iemocap
from datasets_scripts.msp_improv import load_msp_improv
from datasets_scripts.msp_podcast import load_msp_podcast
from datasets_scripts.ravdess import load_ravdess
from tests import corpus_fixtures as fx

ROOT = Path(__file__).resolve().parents[1]
EMODB4 = ROOT / "data" / "emodb4"
SHARED_RAVDESS = ROOT.parent / "shared" / "data" / "ravdess"


def counts(corpus, column="label"):
    return dict(Counter(corpus.dataset[column]))


def row(corpus, utt):
    ids = corpus.dataset["id"]
    return corpus.dataset[ids.index(utt)]


def assert_schema(corpus):
    for name in SCHEMA:
        assert name in corpus.dataset.column_names
    for path in corpus.dataset["audio"]:
        assert Path(path).is_absolute() and Path(path).is_file()


# ---------------------------------------------------------------- IEMOCAP


@pytest.fixture
def iemocap(tmp_path):
    return fx.write_iemocap(tmp_path)


def test_iemocap_4class(iemocap):
    corpus = load_iemocap(iemocap)
    assert_schema(corpus)
    assert len(corpus.dataset) == 30
    assert counts(corpus) == {"angry": 5, "happy": 10, "neutral": 10, "sad": 5}  # hap + exc merged
    assert corpus.protocol.classes == ["angry", "happy", "neutral", "sad"]
    assert corpus.skipped == {"no majority label (xxx)": 5, "label oth (other)": 5,
                              "label not in protocol 4class: fru": 5, "label not in protocol 4class: fea": 1,
                              "label not in protocol 4class: sur": 1, "label not in protocol 4class: dis": 1}
    assert corpus.skipped_examples["no majority label (xxx)"][0] == "Ses01F_impro01_F002"
    # speaker = session + gender of the turn (last part), not of the dialog prefix
    assert sorted(set(corpus.dataset["speaker"])) == [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]
    r = row(corpus, "Ses01M_script01_1_F000")
    assert (r["speaker"], r["gender"], r["session"], r["label"], r["improvised"]) == \
        ("Ses01F", "f", "Session1", "sad", False)
    r = row(corpus, "Ses02F_impro01_F001")  # exc -> happy
    assert (r["label"], r["raw_label"], r["speaker"], r["improvised"], r["dialog"]) == \
        ("happy", "exc", "Ses02F", True, "Ses02F_impro01")
    assert r["text"] == "Words of Ses02F_impro01_F001, said once."
    v, a, d = fx.iemocap_vad(2, 2)
    assert (r["valence"], r["arousal"], r["dominance"]) == pytest.approx((v, a, d))
    assert r["audio"].endswith("Session2/sentences/wav/Ses02F_impro01/Ses02F_impro01_F001.wav")
    assert all(corpus.dataset["text"])
    # leave-one-session-out
    folds = corpus.protocol.folds
    assert [(f.name, f.column, f.test_values) for f in folds] == [(f"session{s}", "session", [f"Session{s}"])
                                                                 for s in range(1, 6)]
    train, test = folds[2].split(corpus.dataset["session"])
    assert len(test) == 6 and len(train) == 24
    assert {corpus.dataset["session"][i] for i in test} == {"Session3"}
    assert "leave-one-session-out" in corpus.protocol.name and "5531" in corpus.protocol.description


def test_iemocap_parent_folder_raw_and_variants(iemocap):
    corpus = load_iemocap(iemocap.parent, protocol="raw")  # the parent of IEMOCAP_full_release works too
    assert len(corpus.dataset) == 38
    assert counts(corpus) == {"neutral": 10, "happy": 5, "excited": 5, "angry": 5, "sad": 5, "frustrated": 5,
                              "fearful": 1, "surprised": 1, "disgust": 1}
    assert corpus.skipped == {"no majority label (xxx)": 5, "label oth (other)": 5}

    impro = load_iemocap(iemocap, protocol="4class_improvised", classes=["neutral", "angry", "happy"])
    assert impro.protocol.classes == ["neutral", "angry", "happy"]
    assert counts(impro) == {"neutral": 5, "happy": 10, "angry": 5}
    assert all(impro.dataset["improvised"])
    assert impro.skipped["scripted dialog (protocol 4class_improvised is improvised only)"] == 18

    only = load_iemocap(iemocap, classes=["sad", "angry"])
    assert only.protocol.classes == ["sad", "angry"]
    assert only.skipped["label not in classes: happy"] == 10
    assert only.skipped["label not in classes: neutral"] == 10

    with pytest.raises(ValueError, match="unknown protocol '6class'.*4class, 4class_improvised, raw"):
        load_iemocap(iemocap, protocol="6class")
    with pytest.raises(ValueError, match=r"classes \['frustrated'\] are not labels of protocol '4class'"):
        load_iemocap(iemocap, classes=["angry", "frustrated"])


def test_iemocap_missing_wav(iemocap):
    wav = iemocap / "Session2" / "sentences" / "wav" / "Ses02F_impro01" / "Ses02F_impro01_M001.wav"
    wav.unlink()
    with pytest.raises(CorpusLayoutError,
                       match=r"Ses02F_impro01_M001\.wav: file listed in Ses02F_impro01\.txt is missing"):
        load_iemocap(iemocap)
    corpus = load_iemocap(iemocap, skip_bad=True)
    assert corpus.skipped["missing audio file"] == 1
    assert corpus.skipped_examples["missing audio file"] == ["Ses02F_impro01_M001"]
    assert len(corpus.dataset) == 29 and counts(corpus)["angry"] == 4


def test_iemocap_layout_errors(iemocap, tmp_path):
    shutil.rmtree(iemocap / "Session3" / "dialog" / "EmoEvaluation")
    with pytest.raises(CorpusLayoutError) as err:
        load_iemocap(iemocap)
    assert str(err.value) == (f"{iemocap}/Session3/dialog/EmoEvaluation: not found; IEMOCAP_full_release/SessionN "
                              "needs dialog/EmoEvaluation, dialog/transcriptions and sentences/wav")
    shutil.rmtree(iemocap / "Session4")
    with pytest.raises(CorpusLayoutError, match=r"Session3/dialog/EmoEvaluation: not found"):
        load_iemocap(iemocap)
    shutil.rmtree(iemocap / "Session3")
    with pytest.raises(CorpusLayoutError, match=r"/Session3: not found; IEMOCAP_full_release needs Session1..Session5"):
        load_iemocap(iemocap)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusLayoutError, match=r"no Session1..Session5 folders here nor in .*IEMOCAP_full_release"):
        load_iemocap(empty)


def test_iemocap_bad_label_line(iemocap):
    path = iemocap / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    path.write_text(path.read_text() + "[1.0 - 2.0] Ses01F_impro01_F009 neu\n")
    with pytest.raises(CorpusLayoutError, match=r"Ses01F_impro01\.txt line \d+: not '\[START - END\]"):
        load_iemocap(iemocap)


# ---------------------------------------------------------------- MSP-IMPROV


def test_msp_improv_4class_sessions(tmp_path):
    root = fx.write_msp_improv(tmp_path / "MSP-IMPROV")
    corpus = load_msp_improv(root)
    assert_schema(corpus)
    assert counts(corpus) == {"angry": 6, "happy": 6, "neutral": 6, "sad": 6}
    assert corpus.skipped == {"consensus label O (other)": 6, "consensus label X (no agreement)": 6}
    assert sorted(set(corpus.dataset["speaker"])) == sorted(f"{g}0{n}" for n in range(1, 7) for g in "FM")
    assert counts(corpus, "gender") == {"f": 12, "m": 12}
    r = row(corpus, "MSP-IMPROV-S02H-M02-S-MF01")
    assert (r["label"], r["speaker"], r["gender"], r["session"]) == ("happy", "M02", "m", "session2")
    assert (r["condition"], r["target_emotion"], r["sentence"]) == ("other_improvised", "happy", "S02")
    assert (r["arousal"], r["valence"], r["dominance"], r["naturalness"]) == pytest.approx((1.5, 4.0, 2.25, 3.5))
    assert r["audio"].endswith("Audio/session2/S02H/S/MSP-IMPROV-S02H-M02-S-MF01.wav")
    assert r["text"] == ""
    assert math.isnan(row(corpus, "MSP-IMPROV-S01A-F01-T-FM01")["dominance"])
    assert counts(corpus, "condition") == {"target_improvised": 6, "other_improvised": 6, "natural_interaction": 6,
                                           "target_read": 6}
    folds = corpus.protocol.folds
    assert [(f.name, f.column, f.test_values) for f in folds] == [(f"session{n}", "session", [f"session{n}"])
                                                                 for n in range(1, 7)]
    train, test = folds[0].split(corpus.dataset["session"])
    assert len(test) == 4 and len(train) == 20
    assert "No transcripts" in corpus.protocol.description

    by_speaker = load_msp_improv(root, protocol="4class_speaker")
    assert len(by_speaker.protocol.folds) == 12
    assert [f.test_values for f in by_speaker.protocol.folds][:2] == [["F01"], ["M01"]]
    assert {f.column for f in by_speaker.protocol.folds} == {"speaker"}


def test_msp_improv_transcripts_and_errors(tmp_path):
    root = fx.write_msp_improv(tmp_path / "MSP-IMPROV")
    (root / "Text").mkdir()
    (root / "Text" / "MSP-IMPROV-S03N-F04-P-FM02.txt").write_text("  we could go\nthere tomorrow \n")
    corpus = load_msp_improv(root)
    assert row(corpus, "MSP-IMPROV-S03N-F04-P-FM02")["text"] == "we could go there tomorrow"

    wav = root / "Audio" / "session5" / "S04S" / "R" / "MSP-IMPROV-S04S-M05-R-MF02.wav"
    wav.unlink()
    with pytest.raises(CorpusLayoutError, match=r"MSP-IMPROV-S04S-M05-R-MF02\.wav: file listed in Evaluation\.txt "
                                                 r"line \d+ is missing"):
        load_msp_improv(root)
    assert load_msp_improv(root, skip_bad=True).skipped["missing audio file"] == 1

    shutil.rmtree(root / "Audio" / "session3")
    with pytest.raises(CorpusLayoutError, match=r"Audio/session3: not found \(needed for MSP-IMPROV-S01A-F03-T-FM01"):
        load_msp_improv(root)
    corpus = load_msp_improv(root, skip_bad=True)
    assert corpus.skipped["missing audio file"] == 5 and len(corpus.dataset) == 19

    shutil.rmtree(root / "Audio")
    with pytest.raises(CorpusLayoutError, match=r"/Audio: not found; MSP-IMPROV needs Evaluation\.txt"):
        load_msp_improv(root)
    (root / "Evaluation.txt").unlink()
    with pytest.raises(CorpusLayoutError, match=r"MSP-IMPROV/Evaluation\.txt: not found; MSP-IMPROV needs Evaluation"):
        load_msp_improv(root)


# ---------------------------------------------------------------- MSP-Podcast


def test_msp_podcast_4class_official_splits(tmp_path):
    root = fx.write_msp_podcast(tmp_path / "MSP-PODCAST-Publish-1.12")
    corpus = load_msp_podcast(root)
    assert_schema(corpus)
    assert counts(corpus) == {"angry": 3, "happy": 3, "neutral": 2, "sad": 2}
    assert corpus.skipped == {"label not in protocol 4class: surprised (U)": 1,
                              "label not in protocol 4class: fearful (F)": 1,
                              "label not in protocol 4class: disgust (D)": 1,
                              "label not in protocol 4class: contempt (C)": 1,
                              "EmoClass O (other)": 1, "EmoClass X (no agreement)": 2}
    r = row(corpus, "MSP-PODCAST_0002_0001")
    assert (r["label"], r["speaker"], r["gender"], r["split"], r["podcast"], r["raw_label"]) == \
        ("angry", "200", "f", "Development", "0002", "A")
    assert (r["arousal"], r["valence"], r["dominance"]) == pytest.approx(fx.podcast_avd(4))
    assert r["text"] == "transcript of MSP-PODCAST_0002_0001"
    unknown = row(corpus, "MSP-PODCAST_0002_0002")
    assert (unknown["speaker"], unknown["gender"]) == ("Unknown", "")
    assert "2 segments have speaker 'Unknown'" in corpus.protocol.description
    folds = corpus.protocol.folds
    assert [(f.name, f.column, f.test_values, f.train_values, f.validation_values) for f in folds] == [
        ("test1", "split", ["Test1"], ["Train"], ["Development"]),
        ("test2", "split", ["Test2"], ["Train"], ["Development"])]
    train, test = folds[0].split(corpus.dataset["split"])
    assert len(train) == 4 and len(test) == 2  # Development rows are neither train nor test

    eight = load_msp_podcast(root, protocol="8class")
    assert eight.protocol.classes == ["angry", "sad", "happy", "surprised", "fearful", "disgust", "contempt", "neutral"]
    assert len(eight.dataset) == 14
    assert counts(eight)["contempt"] == 1
    assert eight.skipped == {"EmoClass O (other)": 1, "EmoClass X (no agreement)": 2}


def test_msp_podcast_errors(tmp_path):
    root = fx.write_msp_podcast(tmp_path / "podcast")
    (root / "Audios" / "MSP-PODCAST_0003_0002.wav").unlink()
    with pytest.raises(CorpusLayoutError, match=r"Audios/MSP-PODCAST_0003_0002\.wav: file listed in "
                                                r"labels_consensus\.csv line 9 is missing"):
        load_msp_podcast(root)
    corpus = load_msp_podcast(root, skip_bad=True)
    assert corpus.skipped["missing audio file"] == 1 and len(corpus.dataset) == 9

    shutil.rmtree(root / "Transcripts")
    assert set(load_msp_podcast(root, skip_bad=True).dataset["text"]) == {""}

    label_file = root / "Labels" / "labels_consensus.csv"
    text = label_file.read_text()
    label_file.write_text(text.replace(",Split_Set", ",Partition"))
    with pytest.raises(CorpusLayoutError, match=r"labels_consensus\.csv: no column\(s\) \['Split_Set'\]"):
        load_msp_podcast(root)
    label_file.unlink()
    with pytest.raises(CorpusLayoutError, match=r"podcast/Labels/labels_consensus\.csv: not found; MSP-Podcast needs"):
        load_msp_podcast(root)


def test_msp_podcast_older_release_names_and_test3(tmp_path):
    root = fx.write_msp_podcast(tmp_path / "MSP-PODCAST-Publish-1.6")
    new = root / "Labels" / "labels_consensus.csv"
    text = new.read_text().replace(",Development", ",Validation")
    text += "MSP-PODCAST_0007_0001.wav,A,3.0,3.0,3.0,500,Female,Test3\nMSP-PODCAST_0007_0002.wav,,,,,501,Male,Test3\n"
    new.unlink()
    (root / "Labels" / "labels_concensus.csv").write_text(text)  # the older releases' spelling
    fx.write_clip(root / "Audios" / "MSP-PODCAST_0007_0001.wav")
    fx.write_clip(root / "Audios" / "MSP-PODCAST_0007_0002.wav")
    (root / "Audios").rename(root / "Audio")
    corpus = load_msp_podcast(root)
    assert [(f.name, f.test_values, f.validation_values) for f in corpus.protocol.folds] == [
        ("test1", ["Test1"], ["Validation"]), ("test2", ["Test2"], ["Validation"]),
        ("test3", ["Test3"], ["Validation"])]
    assert corpus.skipped["no EmoClass (label withheld or missing)"] == 1
    assert row(corpus, "MSP-PODCAST_0007_0001")["text"] == ""  # no transcript file for it


# ---------------------------------------------------------------- EmoDB


def test_emodb_fixture(tmp_path):
    fx.write_emodb(tmp_path / "emodb")
    corpus = load_emodb(tmp_path / "emodb")
    assert_schema(corpus)
    assert counts(corpus) == {"angry": 10, "happy": 10, "neutral": 10, "sad": 10}
    assert corpus.skipped == {"label not in protocol 4class: bored (L)": 1,
                              "label not in protocol 4class: disgust (E)": 1,
                              "label not in protocol 4class: fearful (A)": 1,
                              "file name not an EmoDB code (SSTTTEV.wav)": 1}
    r = row(corpus, "16b10Ta")
    assert (r["label"], r["speaker"], r["gender"], r["text_id"], r["version"]) == ("sad", "16", "f", "b10", "a")
    assert r["text"] == "Die wird auf dem Platz sein, wo wir sie immer hinlegen."
    for fold in corpus.protocol.folds:
        assert sorted(fx.EMODB_GENDERS[s] for s in fold.test_values) == ["f", "m"]
    seven = load_emodb(tmp_path / "emodb" / "wav", protocol="7class")  # the wav/ folder itself works too
    assert len(seven.dataset) == 43
    assert counts(seven)["bored"] == counts(seven)["disgust"] == counts(seven)["fearful"] == 1
    with pytest.raises(CorpusLayoutError, match=r"/wav: not found; the EmoDB release has wav/"):
        load_emodb(tmp_path)


def test_emodb_dispatch_and_empty_file(tmp_path):
    from datasets_scripts import load_corpus

    fx.write_emodb(tmp_path / "emodb")
    (tmp_path / "emodb" / "wav" / "03a01Wa.wav").write_bytes(b"")
    with pytest.raises(CorpusLayoutError, match=r"03a01Wa\.wav: file is empty"):
        load_corpus("emodb", tmp_path / "emodb")
    corpus = load_corpus("emodb", tmp_path / "emodb", skip_bad=True, classes=["sad", "angry"])
    assert corpus.skipped["empty audio file"] == 1
    assert corpus.protocol.classes == ["sad", "angry"] and counts(corpus) == {"sad": 10, "angry": 9}


def test_emodb_original_layout_from_real_clips(tmp_path):
    with open(EMODB4 / "metadata.csv", newline="", encoding="utf-8") as f:
        meta = {Path(r["file_name"]).stem: r for r in csv.DictReader(f)}
    wav = tmp_path / "emodb" / "wav"
    wav.mkdir(parents=True)
    for stem, r in meta.items():
        (wav / f"{stem}.wav").symlink_to(EMODB4 / r["file_name"])
    corpus = load_emodb(tmp_path / "emodb")
    assert len(corpus.dataset) == 339
    assert counts(corpus) == {"angry": 127, "happy": 71, "neutral": 79, "sad": 62}
    assert corpus.skipped == {}
    folds = corpus.protocol.folds
    assert len(folds) == 5
    gender = dict(zip(corpus.dataset["speaker"], corpus.dataset["gender"]))
    assert len(gender) == 10
    for fold in folds:
        assert len(fold.test_values) == 2 and sorted(gender[s] for s in fold.test_values) == ["f", "m"]
    assert sorted(s for f in folds for s in f.test_values) == sorted(gender)
    for r in corpus.dataset:
        m = meta[r["id"]]
        assert (r["label"], r["speaker"], r["gender"], r["text"], r["text_id"]) == \
            (m["label"], m["speaker"], m["gender"], m["text"], m["text_id"])


# ---------------------------------------------------------------- RAVDESS


def test_ravdess_fixture(tmp_path):
    root = fx.write_ravdess(tmp_path / "ravdess")
    corpus = load_ravdess(root)
    assert_schema(corpus)
    assert counts(corpus) == {"angry": 12, "happy": 12, "neutral": 12, "sad": 12}
    assert corpus.skipped == {"song (speech-only protocol)": 12, "label not in protocol 4class: calm": 12,
                              "label not in protocol 4class: fearful": 12, "label not in protocol 4class: disgust": 12,
                              "label not in protocol 4class: surprised": 12}
    r = row(corpus, "03-01-05-02-02-01-07")
    assert (r["label"], r["speaker"], r["gender"], r["intensity"], r["statement"], r["text"]) == \
        ("angry", "07", "m", "strong", "02", "Dogs are sitting by the door")
    assert row(corpus, "03-01-04-02-01-01-08")["text"] == "Kids are talking by the door"
    assert row(corpus, "03-01-04-02-01-01-08")["gender"] == "f"
    folds = corpus.protocol.folds
    assert len(folds) == 6
    for fold in folds:
        assert sorted("m" if int(a) % 2 else "f" for a in fold.test_values) == ["f", "m"]

    eight = load_ravdess(root, protocol="8class")
    assert len(eight.dataset) == 96 and len(set(eight.dataset["label"])) == 8
    calm = load_ravdess(root, protocol="4class_calm_as_neutral")
    assert counts(calm)["neutral"] == 24
    assert "CALM MERGED INTO NEUTRAL" in calm.protocol.description
    assert row(calm, "03-01-02-02-01-01-03")["raw_label"] == "calm"

    # the bare Actor_XX layout (one zip unpacked in place) works too
    bare = tmp_path / "bare"
    shutil.copytree(root / "Audio_Speech_Actors_01-24", bare)
    assert len(load_ravdess(bare).dataset) == 48
    wrong = bare / "Actor_02" / fx.ravdess_name(3, 4)
    fx.write_clip(wrong)
    with pytest.raises(CorpusLayoutError, match=r"actor 04 in the name but the file is in Actor_02"):
        load_ravdess(bare)
    with pytest.raises(CorpusLayoutError, match=r"no Actor_01..Actor_24 folders here or one level down"):
        load_ravdess(tmp_path / "bare" / "Actor_01")


def test_ravdess_original_layout_from_real_clips(tmp_path):
    if not (SHARED_RAVDESS / "metadata.csv").is_file():
        pytest.skip("needs ../shared/data/ravdess (present in CI, absent from a user's fresh clone)")
    speech = tmp_path / "Audio_Speech_Actors_01-24"
    with open(SHARED_RAVDESS / "metadata.csv", newline="", encoding="utf-8") as f:
        meta = {Path(r["file_name"]).stem: r for r in csv.DictReader(f)}
    for r in meta.values():
        target = speech / r["file_name"]  # Actor_XX/03-01-EE-II-SS-RR-AA.flac
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(SHARED_RAVDESS / r["file_name"])
    assert len(meta) == 1440
    corpus = load_ravdess(tmp_path)
    assert counts(corpus) == {"angry": 192, "happy": 192, "neutral": 96, "sad": 192}
    assert sum(corpus.skipped.values()) == 1440 - 672
    gender = dict(zip(corpus.dataset["speaker"], corpus.dataset["gender"]))
    assert len(gender) == 24
    folds = corpus.protocol.folds
    assert len(folds) == 6
    for fold in folds:
        assert len(fold.test_values) == 4 and sorted(gender[a] for a in fold.test_values) == ["f", "f", "m", "m"]
    for r in corpus.dataset:
        m = meta[r["id"]]
        assert (r["label"], r["speaker"], r["gender"], r["text"]) == (m["label"], m["speaker"], m["gender"], m["text"])
    eight = load_ravdess(tmp_path, protocol="8class")
    assert len(eight.dataset) == 1440 and eight.skipped == {}
    assert counts(load_ravdess(tmp_path, protocol="4class_calm_as_neutral"))["neutral"] == 288
