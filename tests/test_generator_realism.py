"""The default generator on a real EmoDB fold cannot be told from held-out real features the way
round 1's could (C2ST 1.0, about ten point-clusters per class)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import EMBEDDED_EMODB


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["unimodal", "multimodal"])
def test_default_generator_is_realistic_on_a_real_emodb_fold(tmp_path_factory, mode):
    from datasets_scripts import load_corpus
    from modeling_mirgan import stages, training
    from modeling_mirgan.arguments import TrainArguments
    from modeling_mirgan.processors import build_processor
    from modeling_mirgan.modeling_mirgan import from_encoders

    corpus = load_corpus("audiofolder", EMBEDDED_EMODB)
    ds, protocol = corpus.dataset, corpus.protocol
    classes = protocol.classes
    model = from_encoders(classes, "openai/whisper-tiny.en", mode=mode).eval()
    processor = build_processor("openai/whisper-tiny.en", "sentence-transformers/all-MiniLM-L6-v2")
    labels = torch.tensor([classes.index(l) for l in ds["label"]])
    texts = ds["text"]
    groups = torch.tensor([sorted(set(texts)).index(t) for t in texts])
    args = TrainArguments()
    timing = {"stage1_s": 0.0, "stage2_s": 0.0, "stage3_s": 0.0}
    _, data = training.encoder_features(ds, model, processor, tmp_path_factory.mktemp("cache"), args, True, labels, groups, timing)
    train, _ = protocol.folds[0].split(ds["speaker"])
    speakers, genders = ds["speaker"], ds["gender"]
    held = set(training.validation_speakers([speakers[i] for i in train], [genders[i] for i in train], 5))
    inner = torch.tensor([i for i in train if speakers[i] not in held])
    val = torch.tensor([i for i in train if speakers[i] in held])
    fit = training.fit_stage1(model, data, inner, args, 0, timing, validation=val,
                              alignment_weights=training.alignment_candidates(model, args))
    stages.resolve_text_condition(model, data.groups[inner])
    training.fit_methods(model, data, fit, inner, ["mirgan"], {"mirgan": [1.0]}, args, 0, timing, realism_rows=val)
    q = fit.methods["mirgan"]["quality"]
    # measured on this fold (whisper-tiny.en, default config, 2026-12-02; 0.60 and recall 0.67 on 2026-12-04): C2ST 0.56 (floor 0.55), precision
    # 0.87 (floor 0.91), recall 0.67 (floor 0.69), Fréchet ratio 1.16, NN ratio 0.92, memorisation 0.92,
    # Q-accuracy 0.995 (real 0.984); the previous default ([256, 256], info_target real): C2ST 0.60-0.63,
    # recall 0.61-0.66; round 1's linear text-conditioned generator: C2ST 1.0, ten point-clusters per class.
    # Multimodal, scored on the pairs (2026-12-04): C2ST 0.59 (floor 0.51), precision 0.98, recall 0.74, Fréchet
    # ratio 1.32, NN ratio 0.70, memorisation 0.89; with a generated text half (paired_text generated, text
    # condition off) on this fold C2ST 0.68 and recall 0.40, which fails (whisper-base, 5 folds: recall 0.35, Fréchet 4.1)
    assert q["c2st"] <= 0.70, q
    assert q["recall"] >= 0.5 and q["precision"] >= 0.75, q
    assert q["nn_ratio"] >= 0.6 and q["memorisation"] >= 0.5, q  # neither point clusters nor copies of training rows
    assert q["frechet_ratio"] <= 1.6, q
    assert q["q_accuracy"] <= q["real_accuracy"] + 0.05, q  # samples as hard as real ones
    assert np.isfinite(q["mi_bits"])
