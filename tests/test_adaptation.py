"""Stage 1 end to end (encoder_mode lora/full) on tiny random encoders: what trains, what the loss reaches,
merged = unmerged, save/reload/pipeline, gradient checkpointing, the feature-encoder freeze."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from modeling_mirgan import adaptation, stages
from modeling_mirgan.arguments import ModelArguments, TrainArguments
from modeling_mirgan.losses import info_nce, information_maximization
from tests.test_modeling import tiny_model

TEXTS = ["hello", "hello hello", "hello hello hello", "hello hello hello hello"]


def clips(n=12, seed=0):
    """Random waves of 0.5-1.5 s whose loudness carries the label, with four repeating transcripts."""
    rng = np.random.default_rng(seed)
    labels = torch.arange(n) % 4
    waves = [(0.02 * (1 + int(y)) * rng.standard_normal(int(rng.integers(8000, 24000)))).astype(np.float32) for y in labels]
    texts = [TEXTS[i % 4] for i in range(n)]
    return waves, texts, labels, torch.tensor([i % 4 for i in range(n)])


def prepared(mode="unimodal", **config):
    model = tiny_model(mode=mode, **{"lambda_con": 0.5, "lambda_im": 0.5, **config})
    pristine = {w: copy.deepcopy(getattr(model, f"{w}_encoder").state_dict()) for w in ("audio", "text")}
    return model, pristine


def heads_reset(model, processor, waves, texts):
    """Standardisation statistics from the frozen encoders' features of the clips (as training does)."""
    with torch.no_grad():
        audio = model.encode_audio(**processor(audio=waves, sampling_rate=16000))
        text = model.encode_text(**processor(text=texts))
    data = stages.CorpusFeatures(stages.AudioLayerStore.from_tensor(audio), text, torch.zeros(len(waves)), torch.zeros(len(waves)))
    stages.reset_heads(model, data, torch.arange(len(waves)))
    return text


def train(model, pristine, processor, waves, texts, labels, groups, text_mode="frozen", audio_mode="lora", **train):
    text = heads_reset(model, processor, waves, texts)
    model_args = ModelArguments(encoder_mode=audio_mode, text_encoder_mode=text_mode, lora_dropout=0.0)
    args = TrainArguments(**{"encoder_epochs": 2, "encoder_batch_size": 4, "encoder_lr": [1e-2], **train})
    used = {w: s for w, s in pristine.items() if (audio_mode if w == "audio" else text_mode) != "frozen"}
    return adaptation.train_end_to_end(model, used, processor, waves, texts, text, labels, groups, model_args, args,
                                       Accelerator(cpu=True), seed=0, lr=args.encoder_lr[0])


def test_lora_trains_only_adapters_and_heads_and_merging_keeps_the_logits(processor):
    model, pristine = prepared()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    waves, texts, labels, groups = clips()
    fit = train(model, pristine, processor, waves, texts, labels, groups)
    assert fit.steps == 2 * 3 and fit.trainable_parameters["audio"] > 0 and fit.trainable_parameters["text"] == 0
    after = dict(model.state_dict())
    lora = [k for k in after if "lora_" in k]
    assert lora and all(k.startswith("audio_encoder.") for k in lora)
    assert any(not torch.equal(after[k], torch.zeros_like(after[k])) for k in lora if "lora_B" in k)  # B starts at 0
    heads = ("audio_projection.", "classifier.", "multimodal_classifier.", "text_projection.", "logit_scale", "layer_weights",
             "audio_mean", "audio_std", "text_mean", "text_std")  # the heads and their standardisation (reset_heads)
    for key, value in after.items():
        if "lora_" not in key and not key.startswith(heads):  # the encoders' own weights are bitwise unchanged
            assert torch.equal(before[key.replace("base_model.model.", "").replace("base_layer.", "")], value), key
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
    inputs = processor(audio=waves[:4], sampling_rate=16000)
    with torch.no_grad():
        unmerged = model(**inputs).logits
    adaptation.merge_adapters(model, fit.encoders)
    assert not any("lora_" in k for k in model.state_dict())
    with torch.no_grad():
        merged = model(**inputs).logits
    # measured max |diff| 2.1e-5 on logits up to 6.3 on an AMD EPYC without AVX-512 (1.4e-6 on the earlier machines):
    # float32 rounding of W + BA, which depends on the CPU kernels
    assert torch.allclose(merged, unmerged, atol=1e-4), (merged - unmerged).abs().max()
    assert "+" in model.config.audio_encoder_hash and "+" not in model.config.text_encoder_hash


def test_adaptation_is_reproducible_whatever_the_global_random_state(processor):
    """torch seeds its default generator at random in every process: the heads' initialisation must come
    from the run's seed (it did not, and RAVDESS-4 LoRA cells moved by up to 1.6 UA points between runs)."""
    waves, texts, labels, groups = clips()
    fits = []
    for disturbance in (1, 2):
        model, pristine = prepared()
        with torch.no_grad():
            audio = model.encode_audio(**processor(audio=waves, sampling_rate=16000))
            text = model.encode_text(**processor(text=texts))
        frozen = stages.CorpusFeatures(stages.AudioLayerStore.from_tensor(audio), text, labels, groups)
        torch.manual_seed(disturbance)
        fit = adaptation.adapt_encoders(model, {"audio": pristine["audio"]}, processor, waves, texts, frozen, torch.arange(8),
                                        ModelArguments(encoder_mode="lora"), TrainArguments(encoder_epochs=2, encoder_batch_size=4),
                                        Accelerator(cpu=True), seed=0, lr=1e-4)
        fits.append((fit.curve, model.classifier.weight.clone(), model.config.audio_encoder_hash))
    assert fits[0][0] == fits[1][0] and torch.equal(fits[0][1], fits[1][1]) and fits[0][2] == fits[1][2]


def test_infonce_and_im_each_reach_the_lora_weights(processor):
    model, pristine = prepared(mode="multimodal")
    waves, texts, labels, groups = clips(8)
    heads_reset(model, processor, waves, texts)
    params = adaptation.make_trainable(model, "audio", "lora", ModelArguments(encoder_mode="lora"))
    params += adaptation.make_trainable(model, "text", "lora", ModelArguments(encoder_mode="lora"))
    with torch.no_grad():  # B = 0 at init makes every gradient but B's zero: give the adapters a start
        for p in params:
            p.normal_(0, 0.1)
    h = model.project_audio(model.encode_audio(**processor(audio=waves, sampling_rate=16000)))
    u = model.project_text(model.encode_text(**processor(text=texts)))
    terms = {"info_nce": lambda: info_nce(h, u, model.logit_scale, groups), "im": lambda: information_maximization(model.classify(h))}
    for name, term in terms.items():
        grads = torch.autograd.grad(term(), params, retain_graph=True, allow_unused=True)
        reached = [g for g in grads if g is not None]
        assert reached and max(float(g.abs().max()) for g in reached) > 0, name
    text_params = params[len(params) // 2 :]
    text_grad = torch.autograd.grad(terms["info_nce"](), text_params, allow_unused=True)
    assert any(g is not None and float(g.abs().max()) > 0 for g in text_grad)


def test_text_encoder_lora_trains_saves_and_classifies_through_the_pipeline(processor, tmp_path):
    import modeling_mirgan  # noqa: F401  registers the classes
    from transformers import pipeline

    from modeling_mirgan import MirganForEmotionClassification

    model, pristine = prepared(mode="multimodal")
    waves, texts, labels, groups = clips()
    text_before = {k: v.clone() for k, v in model.text_encoder.state_dict().items()}
    fit = train(model, pristine, processor, waves, texts, labels, groups, text_mode="lora")
    assert fit.trainable_parameters["text"] > 0
    adaptation.merge_adapters(model, fit.encoders)
    changed = [k for k, v in model.text_encoder.state_dict().items() if not torch.equal(v, text_before[k])]
    assert changed and all(k.endswith(("query.weight", "value.weight")) for k in changed)  # merged LoRA targets only
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded = MirganForEmotionClassification.from_pretrained(tmp_path).eval()
    inputs = processor(audio=waves[:3], text=texts[:3], sampling_rate=16000)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, reloaded(**inputs).logits)
        audio_only = reloaded(**processor(audio=waves[0], sampling_rate=16000)).logits.softmax(-1)[0]
    scores = {s["label"]: s["score"] for s in pipeline("audio-classification", model=str(tmp_path))({"raw": waves[0], "sampling_rate": 16000})}
    assert all(abs(scores[model.config.id2label[i]] - float(p)) < 1e-6 for i, p in enumerate(audio_only))


def test_gradient_accumulation_averages_over_the_step(processor):
    """Two micro-batches of 4 per step: the same clips per step as one batch of 8, the same first-step loss
    (cross-entropy only: InfoNCE and IM are batch-level terms, computed within each micro-batch)."""
    waves, texts, labels, groups = clips(16)
    curves = []
    for batch, accumulate in ((8, 1), (4, 2)):
        model, pristine = prepared(classifier_dropout=0.0, lambda_con=0.0, lambda_im=0.0)
        fit = train(model, pristine, processor, waves, texts, labels, groups, encoder_epochs=1,
                    encoder_batch_size=batch, gradient_accumulation_steps=accumulate)
        assert fit.steps == 2
        curves.append(fit.curve[0]["loss"])
    assert abs(curves[0] - curves[1]) < 1e-4, curves


def test_gradient_checkpointing_enable_gives_the_same_gradients(processor):
    waves, texts, labels, groups = clips(4)
    grads = []
    for checkpointing in (False, True):
        model = tiny_model()
        if checkpointing:
            model.gradient_checkpointing_enable()  # a transformers user's habit: must work on the mirgan model
            assert all(layer.gradient_checkpointing for layer in model.audio_encoder.layers)
        model.train()
        loss = torch.nn.functional.cross_entropy(model(**processor(audio=waves, sampling_rate=16000)).logits, labels)
        grads.append(torch.autograd.grad(loss, model.audio_encoder.layers[0].self_attn.q_proj.weight)[0])
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_freeze_feature_encoder(processor):
    model = tiny_model(audio="wav2vec2")
    model.freeze_feature_encoder()
    assert not any(p.requires_grad for p in model.audio_encoder.feature_extractor.parameters())
    assert all(p.requires_grad for p in model.audio_encoder.encoder.parameters())
    with pytest.raises(ValueError, match="no convolutional feature encoder"):
        tiny_model(audio="whisper").freeze_feature_encoder()


def test_length_buckets_cover_every_clip_once_with_little_padding():
    lengths = np.random.default_rng(0).integers(1000, 100000, 1000)
    batches = adaptation.length_bucketed_batches(lengths, 8, torch.Generator().manual_seed(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    padding = np.mean([lengths[b].max() - lengths[b].mean() for b in batches])
    random_padding = np.mean([lengths[b].max() - lengths[b].mean() for b in np.array_split(np.arange(1000), 125)])
    assert padding < 0.2 * random_padding


def test_text_encoder_mode_without_a_loss_that_reaches_it_stops(processor):
    model, pristine = prepared()
    model.config.lambda_con = 0.0
    waves, texts, labels, groups = clips(4)
    with pytest.raises(ValueError, match="no stage-1 loss reaches the text encoder"):
        train(model, pristine, processor, waves, texts, labels, groups, text_mode="lora")
