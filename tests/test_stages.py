"""The three stages on small random features: what each stage trains, freezes and reuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modeling_mirgan import stages
from modeling_mirgan.arguments import TrainArguments
from tests.test_modeling import tiny_model


def corpus_features(model, n=48, seed=0) -> stages.CorpusFeatures:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % model.config.num_labels
    audio = torch.randn(n, model.config.num_audio_layers, model.config.audio_hidden_size, generator=g) + labels[:, None, None]
    text = torch.randn(n, model.config.text_hidden_size, generator=g)
    return stages.CorpusFeatures(stages.AudioLayerStore.from_tensor(audio), text, labels, torch.arange(n) % 5)


def quick_args(**overrides) -> TrainArguments:
    return TrainArguments(**{"stage1_epochs": 5, "gan_steps": 20, "stage3_epochs": 3, "gan_batch_size": 16, **overrides})


def stage1_then_features(model, data, args):
    rows = torch.arange(len(data))
    stages.train_stage1(model, data, rows, args, 1e-3, args.stage1_epochs, seed=0)
    return stages.stage1_embeddings(model, data)


def stage1_state(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(("generator", "discriminator"))}


def test_stage2_reuses_frozen_stage1_layers_and_mi_gradient_reaches_generator():
    model = tiny_model()
    data = corpus_features(model)
    args = quick_args()
    h, u = stage1_then_features(model, data, args)
    before = stage1_state(model)
    stages.train_stage2(model, h, data.labels, u, data.groups, args, 1.0, seed=1)
    after = stage1_state(model)
    assert before.keys() == after.keys()
    for key in before:  # the classifier used as Q and the alignment heads are untouched by stage 2
        assert torch.equal(before[key], after[key]), key
    # the MI term is computed through the very stage-1 classifier (reused, not a copy): its gradient
    # reaches the generator through C while C itself stays frozen
    model.generator.requires_grad_(True)
    model.generator.zero_grad()
    noise = torch.randn(8, model.config.noise_dim)
    labels = torch.arange(8) % model.config.num_labels
    fake = model.generator(noise, labels, u[:8])
    mi, _ = stages.info_loss(model, fake, labels, u[:8], data.groups[:8])
    mi.backward()
    assert all(not p.requires_grad for p in model.classifier.parameters())
    grads = [p.grad for p in model.generator.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_gan_and_stage3_loops_run_on_one_thread(monkeypatch):
    """The GAN and stage-3 loops are thousands of small ops: a second OpenMP thread only adds
    synchronisation (0.6x wall time per GAN step on a busy 2-core machine), so both run on one and give
    the caller's thread count back."""
    model = tiny_model()
    data = corpus_features(model)
    args = quick_args(gan_steps=2, stage3_epochs=1)
    h, u = stage1_then_features(model, data, args)
    seen = []
    for head in (model.generator, model.classifier):
        forward = head.forward
        monkeypatch.setattr(head, "forward", lambda *a, _f=forward, **k: seen.append(torch.get_num_threads()) or _f(*a, **k))
    torch.set_num_threads(2)
    stages.train_stage2(model, h, data.labels, u, data.groups, args, 1.0, seed=1)
    in_stage2 = list(seen)
    init = stages.snapshot(model, ("classifier",))
    stages.train_stage3(model, h, data.labels, h[:0], data.labels[:0], args, 1e-3, seed=0, init=init)
    assert in_stage2 and set(in_stage2) == {1} and len(seen) > len(in_stage2) and set(seen) == {1}
    assert torch.get_num_threads() == 2


def test_held_out_info_target_sets_how_hard_the_samples_are():
    """The MI term pushes only while the samples' cross-entropy is above the held-out level: a level no
    sample reaches (0) keeps pushing, one every sample is below (100) switches the term off (= cGAN)."""
    generators = {}
    for name, target, lam in (("push", 0.0, 1.0), ("off", 100.0, 1.0), ("cgan", 0.0, 0.0)):
        model = tiny_model(info_target="held_out")
        data = corpus_features(model)
        args = quick_args()
        h, u = stage1_then_features(model, data, args)
        stages.train_stage2(model, h, data.labels, u, data.groups, args, lam, seed=1, held_out_ce=target)
        generators[name] = torch.cat([p.detach().flatten() for p in model.generator.parameters()])
    assert torch.equal(generators["off"], generators["cgan"])
    assert not torch.allclose(generators["push"], generators["cgan"])
    with pytest.raises(ValueError, match="held_out_ce"):
        stages.train_stage2(model, h, data.labels, u, data.groups, args, 1.0, seed=1)


def test_match_held_out_pulls_easy_samples_up_to_the_held_out_level():
    """Unlike the hinge, ``match_held_out`` also acts when the samples are easier than the level: with a
    level well above the cGAN samples' cross-entropy, the hinge is off and matching makes them harder."""
    ce, level = {}, None
    for name in ("cgan", "hinge", "match"):
        model = tiny_model(info_target="match_held_out" if name == "match" else "held_out")
        data = corpus_features(model)
        args = quick_args(gan_steps=60)
        h, u = stage1_then_features(model, data, args)
        stages.train_stage2(model, h, data.labels, u, data.groups, args, 0.0 if name == "cgan" else 5.0, seed=1,
                            held_out_ce=level or 0.0)
        labels = torch.arange(200) % model.config.num_labels
        ce[name] = stages.q_cross_entropy(model, model.sample_features(labels, None, seed=3), labels)
        level = level or ce["cgan"] + 10.0
    assert ce["hinge"] == pytest.approx(ce["cgan"])  # every sample below the level: the hinge is off
    assert ce["match"] > ce["cgan"] + 0.5, ce


def test_lambda_info_changes_the_generator():
    generators = {}
    for lam in (0.0, 1.0):
        model = tiny_model(info_target="max")
        data = corpus_features(model)
        args = quick_args()
        h, u = stage1_then_features(model, data, args)
        stages.train_stage2(model, h, data.labels, u, data.groups, args, lam, seed=1)
        generators[lam] = torch.cat([p.detach().flatten() for p in model.generator.parameters()])
    assert not torch.allclose(generators[0.0], generators[1.0])


@pytest.mark.parametrize("mode", ["unimodal", "multimodal"])
def test_stage3_trains_only_the_classifier(mode):
    model = tiny_model(mode=mode)
    data = corpus_features(model)
    args = quick_args()
    h, u = stage1_then_features(model, data, args)
    x = torch.cat([h, u], -1) if mode == "multimodal" else h
    stages.train_stage2(model, x, data.labels, u, data.groups, args, 1.0, seed=1)
    init = stages.snapshot(model, stages.CLASSIFIER_PREFIXES)
    synth, synth_y = stages.synthetic_rows("mirgan", model, x, data.labels, u, 1.0, seed=2)
    assert synth.shape == (len(x), x.shape[1]) and torch.equal(torch.bincount(synth_y), torch.bincount(data.labels))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stages.train_stage3(model, x, data.labels, synth, synth_y, args, 1e-3, 3, init)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    trained_heads = ("classifier.", "multimodal_classifier.") if mode == "multimodal" else ("classifier.",)
    assert changed and all(k.startswith(trained_heads) for k in changed), changed


@pytest.mark.parametrize("method", ["class_weight", "oversample"])
def test_class_balancing_peers_change_stage3_and_leave_stage1_alone(method):
    model = tiny_model()
    data = corpus_features(model, n=60)
    keep = torch.cat([torch.nonzero(data.labels != 1)[:, 0], torch.nonzero(data.labels == 1)[:3, 0]])  # class 1 is rare
    args = quick_args(stage3_epochs=30)
    stages.train_stage1(model, data, keep, args, 1e-3, args.stage1_epochs, seed=0)
    h, u = stages.stage1_embeddings(model, data)
    x, y = h[keep], data.labels[keep]
    init = stages.snapshot(model, stages.CLASSIFIER_PREFIXES)
    stage1 = stage1_state(model)
    plain = stages.synthetic_rows("none", model, x, y, u[keep], 1.0, seed=2)
    stages.train_stage3(model, x, y, *plain, args, 1e-3, 3, init)
    baseline = stages.snapshot(model, stages.CLASSIFIER_PREFIXES)
    synth, synth_y = stages.synthetic_rows(method, model, x, y, u[keep], 1.0, seed=2)
    if method == "oversample":  # real rows repeated, the rare class first
        assert len(synth) and all(any(torch.equal(s, r) for r in x) for s in synth)
        assert torch.bincount(synth_y, minlength=4)[1] == synth_y.bincount().max()
    else:
        assert len(synth) == 0
    stages.train_stage3(model, x, y, synth, synth_y, args, 1e-3, 3, init, balance_classes=method == "class_weight")
    balanced = stages.snapshot(model, stages.CLASSIFIER_PREFIXES)
    assert any(not torch.equal(balanced[k], baseline[k]) for k in balanced)
    after = stage1_state(model)
    for key in stage1:
        if not key.startswith(stages.CLASSIFIER_PREFIXES):
            assert torch.equal(stage1[key], after[key]), key
    stages.restore(model, init)  # the stage-1 classifier itself is the one kept for the baseline
    assert all(torch.equal(model.state_dict()[k], stage1[k]) for k in init)


def test_stage3_and_forward_use_the_one_classify_method(monkeypatch):
    """Perturbing ``classify`` changes what stage 3 trains and what ``model(...).logits`` returns."""
    from modeling_mirgan import MirganForEmotionClassification

    def run():
        model = tiny_model()
        data = corpus_features(model)
        args = quick_args(stage3_epochs=5)
        h, u = stage1_then_features(model, data, args)
        init = stages.snapshot(model, stages.CLASSIFIER_PREFIXES)
        stages.train_stage3(model, h, data.labels, h[:0], data.labels[:0], args, 1e-3, 3, init)
        audio = data.audio.gather(np.arange(4))
        with torch.no_grad():
            logits = model(audio_layer_features=audio).logits
        return stages.snapshot(model, stages.CLASSIFIER_PREFIXES), logits

    weights, logits = run()
    original = MirganForEmotionClassification.classify

    def shifted(self, audio_embeds, text_embeds=None):
        return original(self, audio_embeds, text_embeds) * torch.tensor([3.0, 1.0, 1.0, 1.0])

    monkeypatch.setattr(MirganForEmotionClassification, "classify", shifted)
    weights2, logits2 = run()
    assert any(not torch.allclose(weights[k], weights2[k]) for k in weights)  # stage 3 trained through it
    assert not torch.allclose(logits, logits2)  # forward answers through it


def test_stage1_early_stopping_keeps_the_best_validation_check():
    model = tiny_model()
    data = corpus_features(model, n=64)
    rows, val = torch.arange(48), torch.arange(48, 64)
    args = quick_args(stage1_epochs=60, eval_every=5, patience=3)
    result = stages.train_stage1(model, data, rows, args, 1e-3, args.stage1_epochs, 0, validation=val)
    checks = [c for c in result.curve if "validation_ua" in c]
    assert result.validation_ua == max(c["validation_ua"] for c in checks)
    assert result.epochs == min(c["epoch"] for c in checks if c["validation_ua"] == result.validation_ua)
    audio = data.audio.gather(val.numpy())
    # those heads are kept
    assert stages.heads_ua(model, model.standardise_audio(audio), data.text[val], data.labels[val]) == result.validation_ua


def test_weight_decay_is_selected_on_validation_rows():
    model = tiny_model()
    data = corpus_features(model, n=64)
    rows, val = torch.arange(48), torch.arange(48, 64)
    args = quick_args(stage1_epochs=20, eval_every=5, weight_decays=[1e-4, 10.0])
    best, tried = stages.select_stage1(model, data, rows, val, args, 0, alignment_weights=(0.1, 0.0))
    assert set(tried) == {f"lambda_con={a},weight_decay={w}" for a in ("0", "0.1") for w in ("0.0001", "10")}
    assert best.validation_ua == max(t["validation_ua"] for t in tried.values())
    assert model.config.lambda_con == best.lambda_con  # the model keeps the chosen alignment


def test_candidate_filters_keep_the_most_confident_or_the_most_real_sample():
    model = tiny_model()
    data = corpus_features(model)
    args = quick_args()
    h, u = stage1_then_features(model, data, args)
    stages.train_stage2(model, h, data.labels, u, data.groups, args, 1.0, seed=1)
    labels = torch.repeat_interleave(torch.arange(4), torch.tensor([5, 3, 4, 2]))
    plain = model.sample_features(labels, seed=0)
    kept = model.sample_features(labels, seed=0, oversample=4)
    assert plain.shape == kept.shape

    def confidence(x):
        with torch.no_grad():
            return model.q_logits(x).softmax(-1).gather(1, labels[:, None]).mean()

    assert confidence(kept) >= confidence(plain)

    def realness(x, classes=labels):
        with torch.no_grad():
            return model.discriminator(x, classes)

    chosen = model.sample_features(labels, seed=0, oversample=4, select_by="discriminator")
    assert chosen.shape == plain.shape and realness(chosen).mean() > realness(plain).mean()
    # each kept sample is the best of its own 4 candidates, which are the unfiltered draw of 4 per label
    first = model.sample_features(labels.repeat_interleave(4), seed=0).view(len(labels), 4, -1)
    torch.testing.assert_close(realness(chosen), realness(first.flatten(0, 1), labels.repeat_interleave(4)).view(len(labels), 4).max(1).values)
    with pytest.raises(ValueError, match="select_by"):
        model.sample_features(labels, oversample=2, select_by="realness")


def test_audio_store_streams_the_cache_in_bounded_batches(tmp_path):
    """The memory-mapped Arrow store gives the same rows as the dataset, in any order."""
    from datasets import Array2D, Dataset, Features, Sequence, Value

    rng = np.random.default_rng(0)
    audio = rng.standard_normal((37, 3, 5)).astype(np.float32)
    features = Features({"audio_features": Array2D((3, 5), "float32"), "text_features": Sequence(Value("float32"), length=2)})
    path = tmp_path / "cache.arrow"
    Dataset.from_dict({"audio_features": audio, "text_features": np.zeros((37, 2), np.float32)}, features=features).map(
        lambda b: b, batched=True, batch_size=10, writer_batch_size=10, cache_file_name=str(path))
    ds = Dataset.from_file(str(path))
    order = rng.permutation(37)
    selected = ds.select(order, keep_in_memory=True)
    store = stages.AudioLayerStore.from_cache(selected)
    assert len(store.starts) > 2  # several record batches
    rows = torch.tensor([5, 0, 36, 17])
    assert np.array_equal(store.gather(rows.numpy()).numpy(), audio[order[rows.numpy()]])
    seen = torch.cat([idx for idx, _ in store.batches(torch.arange(37), 8, torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(37))
    mean, std = store.moments(torch.arange(37))
    assert torch.allclose(mean, torch.from_numpy(audio.mean(0)), atol=1e-5)
    assert torch.allclose(std, torch.from_numpy(audio.std(0, ddof=1)), atol=1e-4)


@pytest.mark.parametrize("overrides", [{}, {"generator_conditioning": "concat"}, {"generator_hidden_sizes": []},
                                       {"generator_text_condition": "on"},
                                       {"generator_text_condition": "on", "generator_conditioning": "concat"},
                                       {"mode": "multimodal", "paired_text": "generated", "generator_text_condition": "off"},
                                       {"mode": "multimodal", "generator_text_condition": "off"},
                                       {"mode": "multimodal", "generator_text_condition": "on"}])
def test_generator_reads_the_text_condition_only_where_the_config_says(overrides):
    """The samples equal the generator written out: without film the text condition is the last input
    columns (its unit direction at the noise's norm; zeros when unused, which the first layer skips),
    under film a scale and shift beside the class's. A multimodal generator with real paired text pairs
    its audio half with exactly the text it was given."""
    model = tiny_model(**overrides)
    g, config = model.generator, model.config
    for layer in g.modules():
        model._init_weights(layer)
    assert all(torch.all(w == 0) for w in g.text_films)  # a text condition starts from the text-free generator
    with torch.no_grad():
        for w in g.text_films:  # as after training
            w.normal_(0, 0.1)
    noise, labels = torch.randn(6, config.noise_dim), torch.arange(6) % config.num_labels
    text = torch.randn(6, config.projection_dim)
    unit = F.normalize(text, dim=-1)
    inputs = [noise * config.generator_noise_scale]
    if not g.films:
        inputs.append(F.one_hot(labels, config.num_labels).float())
    inputs.append(unit * config.noise_dim ** 0.5 if g.uses_text and not g.films else torch.zeros_like(text))
    x = torch.cat(inputs, -1)
    for i, layer in enumerate(g.layers):
        x = layer(x)
        if g.films:
            scale, shift = g.films[i](labels).chunk(2, -1)
            if g.uses_text:
                text_scale, text_shift = (unit @ g.text_films[i]).chunk(2, -1)
                scale, shift = scale + text_scale, shift + text_shift
            x = F.layer_norm(x, x.shape[-1:]) * (1 + scale) + shift
        x = F.leaky_relu(x, 0.2)
    expected = g.out(x) @ g.basis + g.offset
    if g.pairs_real_text:
        expected = torch.cat([expected[:, : config.projection_dim], text], -1)
    torch.testing.assert_close(g(noise, labels, text), expected, atol=1e-5, rtol=1e-5)
    if g.uses_text:  # the condition is read: another transcript, other samples
        assert not torch.allclose(g(noise, labels, text.flip(0))[:, : config.projection_dim], expected[:, : config.projection_dim])


def test_multimodal_generator_pairs_its_audio_half_with_a_real_transcript():
    """The default multimodal generator reads a real ``u`` as its condition (auto resolves on, even on a
    fixed-sentence corpus) and emits ``[h_hat; u]``: its principal basis spans only the audio half of the
    real pairs, the text half of every sample is the ``u`` it was given (a generated text half collapsed
    onto a few points), and it refuses to run without one."""
    model = tiny_model(mode="multimodal")
    config, g = model.config, model.generator
    d = config.projection_dim
    stages.resolve_text_condition(model, torch.zeros(40, dtype=torch.long))
    assert config.generator_text_condition == "on" and g.pairs_real_text and g.needs_text
    for layer in g.modules():
        model._init_weights(layer)
    real = torch.randn(40, 2 * d) * torch.linspace(0.1, 3, 2 * d)
    g.fit_basis(real)
    assert torch.all(g.basis[:, d:] == 0) and torch.all(g.offset[d:] == 0)
    torch.testing.assert_close(g.offset[:d], real[:, :d].mean(0))
    labels = torch.arange(12) % config.num_labels
    text = real[labels.argsort(), d:][:12]
    samples = model.sample_features(labels, text, seed=3)
    assert samples.shape == (12, 2 * d)
    assert torch.equal(samples[:, d:], text)
    assert not torch.allclose(samples[:6, :d], samples[6:, :d])  # the audio half is generated
    with pytest.raises(ValueError, match="real transcript embedding"):
        model.sample_features(labels)


@pytest.mark.parametrize("oversample", [1, 3])
def test_sampling_in_batches_gives_the_same_samples(oversample):
    """A corpus-sized draw runs the generator in batches (bounded memory); the samples do not depend on the batch size."""
    model = tiny_model()
    for layer in model.generator.modules():
        model._init_weights(layer)
    labels = torch.arange(23) % model.config.num_labels
    whole = model.sample_features(labels, seed=4, oversample=oversample)
    batched = model.sample_features(labels, seed=4, oversample=oversample, batch_size=5)
    assert whole.shape == (23, model.config.sample_dim)
    # equal up to float32 rounding (a matmul's kernel depends on its row count: 1.2e-6 seen on an AVX-512 CPU);
    # a draw that depended on the batch size would differ by the noise itself, O(1)
    torch.testing.assert_close(batched, whole, atol=1e-5, rtol=1e-4)
    assert model.sample_features(labels[:0]).shape == (0, model.config.sample_dim)


@pytest.mark.parametrize("backend, expected", [("gloo", "cpu"), ("nccl", "cuda:1")])
def test_gradient_all_reduce_runs_where_the_backend_reduces(monkeypatch, backend, expected):
    """The cached-feature stages train on the CPU; under NCCL (accelerate launch on GPUs) their gradient
    all_reduce must go through a CUDA tensor, under gloo a CPU one (this machine has no GPU to run NCCL)."""
    import torch.distributed as dist

    monkeypatch.setattr(dist, "get_backend", lambda group=None: backend)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert str(stages.collective_device()) == expected


def test_mode_seeking_term_spreads_the_samples_of_a_condition():
    """MSGAN's term is large for two draws that land on one point and about 1 for draws as far apart as
    random real rows; trained with it, samples of one class spread out more than without it."""
    from modeling_mirgan.losses import mode_seeking

    g = torch.Generator().manual_seed(0)
    real, z1, z2 = torch.randn(64, 16, generator=g), torch.randn(32, 8, generator=g), torch.randn(32, 8, generator=g)
    assert mode_seeking(real[:32], real[:32], z1, z2, real) > 1e4
    assert 0.7 < float(mode_seeking(real[:32], real[32:], z1, z2, real)) < 1.4
    spread = {}
    for lam in (0.0, 5.0):
        model = tiny_model(lambda_diversity=lam)
        data = corpus_features(model)
        args = quick_args(gan_steps=60)
        h, u = stage1_then_features(model, data, args)
        stages.train_stage2(model, h, data.labels, u, data.groups, args, 1.0, seed=1)
        samples = model.sample_features(torch.zeros(100, dtype=torch.long), None, seed=3)
        spread[lam] = float(torch.pdist(samples).mean())
    assert spread[5.0] > 1.08 * spread[0.0], spread  # measured 1.14x


def test_noise_scale_is_refused_where_it_cannot_reach_the_samples():
    """Under film the first hidden layer is layer-normalised: with its bias at zero, z and 2z give the same
    samples, so a noise scale other than 1 is refused there and accepted with concat (where it matters)."""
    from modeling_mirgan import MirganConfig

    model = tiny_model()
    for layer in model.generator.modules():
        model._init_weights(layer)
    torch.nn.init.zeros_(model.generator.layers[0].bias)
    noise, labels = torch.randn(6, model.config.noise_dim), torch.arange(6) % model.config.num_labels
    torch.testing.assert_close(model.generator(2 * noise, labels), model.generator(noise, labels), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="generator_noise_scale=2.0: film"):
        MirganConfig(generator_noise_scale=2.0)
    concat = tiny_model(generator_conditioning="concat", generator_noise_scale=2.0)
    assert not torch.allclose(concat.generator(2 * noise, labels), concat.generator(noise, labels))
