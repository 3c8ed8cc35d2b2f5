"""The three stages on small random features: what each stage trains, freezes and reuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from accelerate import Accelerator

import train
from tests.test_modeling import tiny_model


def fold_data(model, n=48, seed=0) -> train.FoldData:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % model.config.num_labels
    audio = torch.randn(n, model.config.num_audio_layers, model.config.audio_hidden_size, generator=g) + labels[:, None, None]
    text = torch.randn(n, model.config.text_hidden_size, generator=g)
    return train.FoldData(audio, text, labels, torch.arange(n) % 5, torch.arange(n))


def quick_args(**overrides) -> train.TrainArguments:
    return train.TrainArguments(**{"stage1_epochs": 5, "gan_steps": 20, "stage3_epochs": 3, "gan_batch_size": 16, **overrides})


def stage1_then_features(model, data, args):
    accelerator = Accelerator(cpu=True)
    train.run_stage1(model, data, args, accelerator, seed=0)
    with torch.no_grad():
        h = model.project_audio(data.audio)
        u = model.project_text(data.text)
    return accelerator, h, u


def stage1_state(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(("generator", "discriminator"))}


def test_stage2_reuses_frozen_stage1_layers_and_mi_gradient_reaches_generator():
    model = tiny_model()
    data = fold_data(model)
    args = quick_args()
    accelerator, h, u = stage1_then_features(model, data, args)
    before = stage1_state(model)
    train.run_stage2(model, h, data.labels, u, data.groups, args, 1.0, accelerator, seed=1)
    after = stage1_state(model)
    assert before.keys() == after.keys()
    for key in before:  # the classifier used as Q and the alignment heads are untouched by stage 2
        assert torch.equal(before[key], after[key]), key
    # the MI term is computed through the very stage-1 classifier (reused, not a copy): its gradient
    # reaches the generator through C while C itself stays frozen
    model.generator.zero_grad()
    noise = torch.randn(8, model.config.noise_dim)
    labels = torch.arange(8) % model.config.num_labels
    fake = model.generator(noise, labels, u[:8])
    mi, _ = train.info_loss(model, fake, labels, u[:8], data.groups[:8], 0.0)
    mi.backward()
    assert all(not p.requires_grad for p in model.classifier.parameters())
    grads = [p.grad for p in model.generator.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_lambda_info_changes_the_generator():
    generators = {}
    for lam in (0.0, 1.0):
        model = tiny_model()
        data = fold_data(model)
        args = quick_args()
        accelerator, h, u = stage1_then_features(model, data, args)
        train.run_stage2(model, h, data.labels, u, data.groups, args, lam, accelerator, seed=1)
        generators[lam] = torch.cat([p.detach().flatten() for p in model.generator.parameters()])
    assert not torch.allclose(generators[0.0], generators[1.0])


@pytest.mark.parametrize("mode", ["unimodal", "multimodal"])
def test_stage3_trains_only_the_classifier(mode):
    model = tiny_model(mode=mode)
    data = fold_data(model)
    args = quick_args()
    accelerator, h, u = stage1_then_features(model, data, args)
    x = torch.cat([h, u], -1) if mode == "multimodal" else h
    train.run_stage2(model, x, data.labels, u, data.groups, args, 1.0, accelerator, seed=1)
    init = {"classifier": {k: v.clone() for k, v in model.classifier.state_dict().items()},
            "multimodal_classifier": {k: v.clone() for k, v in model.multimodal_classifier.state_dict().items()}}
    synth, synth_y = train.synthetic_for("mirgan", model, x, data.labels, u, 1.0, seed=2)
    assert synth.shape == (len(x), x.shape[1]) and torch.equal(torch.bincount(synth_y), torch.bincount(data.labels))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train.run_stage3(model, x, data.labels, synth, synth_y, args, accelerator, 3, init)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    trained_heads = ("classifier.", "multimodal_classifier.") if mode == "multimodal" else ("classifier.",)
    assert changed and all(k.startswith(trained_heads) for k in changed), changed


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_encoder_adaptation_changes_only_the_audio_encoder(mode):
    import numpy as np

    from tests.test_modeling import MirganWhisperFeatureExtractor

    model = tiny_model()
    pristine = {k: v.clone() for k, v in model.audio_encoder.state_dict().items()}
    text_before = {k: v.clone() for k, v in model.text_encoder.state_dict().items()}

    class Processor:  # the audio half of MirganProcessor is all adaptation needs
        sampling_rate = 16000
        feature_extractor = MirganWhisperFeatureExtractor()

        def __call__(self, audio, sampling_rate):
            return self.feature_extractor(audio)

    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(4000 + 800 * i).astype(np.float32) * 0.1 for i in range(8)]
    labels = torch.arange(8) % 4
    model_args = train.ModelArguments(encoder_mode=mode)
    args = quick_args(encoder_epochs=2, batch_size=16, encoder_lr=1e-2)
    train.adapt_audio_encoder(model, pristine, Processor(), waves, labels, model_args, args, Accelerator(cpu=True), seed=0)
    after = model.audio_encoder.state_dict()
    assert after.keys() == pristine.keys()  # LoRA adapters are merged: a plain encoder is saved
    changed = {k for k in after if not torch.equal(after[k], pristine[k])}
    if mode == "lora":  # only the default target modules (attention q/v projections) change
        assert changed and all(k.split(".")[-2] in ("q_proj", "v_proj") for k in changed), changed
    else:
        assert any("fc1" in k for k in changed) and any("conv1" in k for k in changed)
    assert all(torch.equal(v, text_before[k]) for k, v in model.text_encoder.state_dict().items())
    assert "+" + mode + ":" in model.config.audio_encoder_hash  # feature caches of adapted encoders get new keys
    # a second call starts again from the pre-trained weights
    train.adapt_audio_encoder(model, pristine, Processor(), waves, labels, model_args, args, Accelerator(cpu=True), seed=0)
    assert all(torch.equal(model.audio_encoder.state_dict()[k], after[k]) for k in after)


def test_q_confidence_filter_keeps_the_most_confident_samples_per_class():
    model = tiny_model()
    data = fold_data(model)
    args = quick_args()
    accelerator, h, u = stage1_then_features(model, data, args)
    train.run_stage2(model, h, data.labels, u, data.groups, args, 1.0, accelerator, seed=1)
    counts = np.array([5, 3, 4, 2])
    plain, plain_y = train.sample_generator(model, counts, u, data.labels, seed=0)
    kept, kept_y = train.sample_generator(model, counts, u, data.labels, seed=0, oversample=4)
    assert torch.equal(torch.bincount(kept_y), torch.as_tensor(counts)) and torch.equal(torch.bincount(plain_y), torch.as_tensor(counts))

    def confidence(x, y):
        with torch.no_grad():
            return model.classifier(x).softmax(-1).gather(1, y[:, None]).mean()

    assert confidence(kept, kept_y) >= confidence(plain, plain_y)
