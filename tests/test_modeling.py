"""Model classes on tiny random encoders of every supported family, and exact save/load round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    ASTConfig,
    AutoFeatureExtractor,
    AutoModelForAudioClassification,
    BertConfig,
    HubertConfig,
    RobertaConfig,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    WavLMConfig,
    WhisperConfig,
)

from modeling_mirgan import MirganConfig, MirganForEmotionClassification, MirganProcessor, MirganWhisperFeatureExtractor

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
W2V_TINY = dict(TINY, conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                num_conv_pos_embedding_groups=2, feat_extract_norm="layer", do_stable_layer_norm=True)
AUDIO_CONFIGS = {
    "whisper": WhisperConfig(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
                             decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64, num_mel_bins=80,
                             max_source_positions=1500, vocab_size=100),
    "wav2vec2": Wav2Vec2Config(**W2V_TINY),
    "hubert": HubertConfig(**W2V_TINY),
    "wavlm": WavLMConfig(**W2V_TINY, num_buckets=16, max_bucket_distance=32),
    "ast": ASTConfig(**TINY, patch_size=16, frequency_stride=10, time_stride=10, max_length=100, num_mel_bins=128),
}
TEXT_CONFIGS = {
    "bert": BertConfig(**TINY, vocab_size=120),
    "roberta": RobertaConfig(**TINY, vocab_size=120),
}
LABELS = ["angry", "happy", "neutral", "sad"]


def tiny_model(audio="whisper", text="bert", **kwargs) -> MirganForEmotionClassification:
    torch.manual_seed(0)
    kwargs.setdefault("info_target", "real")  # stage-2 unit tests have no held-out rows to measure a level on
    config = MirganConfig(audio_encoder=AUDIO_CONFIGS[audio].to_dict(), text_encoder=TEXT_CONFIGS[text].to_dict(),
                          id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)},
                          projection_dim=16, noise_dim=8, **kwargs)
    return MirganForEmotionClassification(config).eval()


def audio_inputs(family: str, waves: list[np.ndarray]):
    if family == "whisper":
        return MirganWhisperFeatureExtractor()(waves)
    if family == "ast":
        from transformers import ASTFeatureExtractor

        return ASTFeatureExtractor(max_length=100)(waves, sampling_rate=16000, return_tensors="pt")
    return Wav2Vec2FeatureExtractor(return_attention_mask=True)(waves, sampling_rate=16000, padding=True,
                                                                return_attention_mask=True, return_tensors="pt")


@pytest.mark.parametrize("family", list(AUDIO_CONFIGS))
def test_audio_family_pools_with_padding_masks(family):
    model = tiny_model(family)
    rng = np.random.default_rng(0)
    waves = [rng.normal(0, 0.1, n).astype(np.float32) for n in (8000, 12800, 5600)]
    with torch.inference_mode():
        batched = model.encode_audio(**audio_inputs(family, waves))
        single = torch.cat([model.encode_audio(**audio_inputs(family, [w])) for w in waves])
    assert batched.shape == (3, model.config.num_audio_layers, model.config.audio_hidden_size)
    assert torch.isfinite(batched).all()
    torch.testing.assert_close(batched, single, atol=2e-5, rtol=1e-4)
    # padding must matter only through the mask: a different padded batch gives the same features
    assert not torch.allclose(batched[0], batched[1])


@pytest.mark.parametrize("family", list(TEXT_CONFIGS))
def test_text_family_pools_over_real_tokens(family):
    model = tiny_model(text=family)
    ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with torch.inference_mode():
        batched = model.encode_text(ids, mask)
        alone = model.encode_text(ids[1:, :3], mask[1:, :3])
    torch.testing.assert_close(batched[1:], alone, atol=1e-5, rtol=1e-4)


def test_long_whisper_input_is_windowed_not_truncated():
    model = tiny_model("whisper")
    model.audio_encoder.embed_positions.weight.data = model.audio_encoder.embed_positions.weight.data[:50]
    model.audio_encoder.embed_positions.num_embeddings = 50  # windows of 100 mel frames
    wave = np.random.default_rng(1).normal(0, 0.1, 16000 * 3).astype(np.float32)  # 300 frames = 3 windows
    mel = audio_inputs("whisper", [wave])["input_features"]
    assert mel.shape[1] == 300
    with torch.inference_mode():
        pooled = model.encode_audio(input_features=mel)
        parts = [model.encode_audio(input_features=mel[:, i : i + 100]) for i in (0, 100, 200)]
    torch.testing.assert_close(pooled, torch.stack(parts).mean(0), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("mode", ["unimodal", "multimodal"])
def test_save_load_reproduces_logits_exactly(tmp_path, mode):
    model = tiny_model(mode=mode)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # not the init values: a load that re-initialises fails
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin")) and not list(tmp_path.glob("*.pt"))
    loaded = AutoModelForAudioClassification.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, MirganForEmotionClassification)
    inputs = audio_inputs("whisper", [np.random.default_rng(2).normal(0, 0.1, 9000).astype(np.float32)])
    ids, mask = torch.tensor([[5, 6, 7]]), torch.ones(1, 3, dtype=torch.long)
    with torch.no_grad():
        a = model(**inputs, input_ids=ids, text_attention_mask=mask)
        b = loaded(**inputs, input_ids=ids, text_attention_mask=mask)
    assert torch.equal(a.logits, b.logits)
    assert loaded.config.id2label == model.config.id2label
    noise = torch.randn(4, model.config.noise_dim)
    labels = torch.arange(4)
    text = torch.randn(4, model.config.projection_dim)
    with torch.no_grad():
        assert torch.equal(model.generator(noise, labels, text), loaded.generator(noise, labels, text))


def test_config_rejects_unknown_choices():
    with pytest.raises(ValueError, match="layer_pooling"):
        MirganConfig(layer_pooling="max")


def test_layer_poolings_differ():
    model = tiny_model()
    feats = torch.randn(2, model.config.num_audio_layers, model.config.audio_hidden_size)
    with torch.no_grad():
        model.layer_weights.copy_(torch.tensor([3.0, 0.0, -3.0]))
        weighted = model.project_audio(feats)
        model.config.layer_pooling = "mean"
        mean = model.project_audio(feats)
        model.config.layer_pooling = "last"
        last = model.project_audio(feats)
    assert not torch.allclose(weighted, mean) and not torch.allclose(mean, last)



@pytest.mark.parametrize("pooling", ["weighted", "mean", "last"])
def test_layers_outermost_storage_projects_the_same(pooling):
    """``standardise_audio`` stores features as [L, B, D] memory seen as [B, L, D]; the heads must not see the layout."""
    model = tiny_model(layer_pooling=pooling)
    feats = torch.randn(9, model.config.num_audio_layers, model.config.audio_hidden_size) * 3 + 1
    with torch.no_grad():
        model.layer_weights.copy_(torch.tensor([1.0, 0.0, -2.0]))
        model.audio_mean.normal_()
        model.audio_std.uniform_(0.5, 2.0)
        outermost = model.standardise_audio(feats)
        assert not outermost.is_contiguous() and outermost.transpose(0, 1).is_contiguous()
        ordinary = outermost.contiguous()
        torch.testing.assert_close(ordinary, (feats - model.audio_mean) / model.audio_std, rtol=0, atol=0)
        assert torch.equal(model.project_standardised_audio(outermost), model.project_standardised_audio(ordinary))


def test_processor_round_trip(tmp_path):
    from transformers import AutoProcessor, BertTokenizerFast

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]))
    processor = MirganProcessor(MirganWhisperFeatureExtractor(), BertTokenizerFast(vocab_file=str(vocab)))
    processor.save_pretrained(tmp_path / "p")
    tiny_model().config.save_pretrained(tmp_path / "p")
    loaded = AutoProcessor.from_pretrained(tmp_path / "p")
    assert isinstance(loaded, MirganProcessor)
    assert isinstance(AutoFeatureExtractor.from_pretrained(tmp_path / "p"), MirganWhisperFeatureExtractor)
    wave = np.random.default_rng(3).normal(0, 0.1, 8000).astype(np.float32)
    a, b = processor(audio=wave, text="hello world", sampling_rate=16000), loaded(audio=wave, text="hello world", sampling_rate=16000)
    assert torch.equal(a["input_features"], b["input_features"]) and torch.equal(a["input_ids"], b["input_ids"])
