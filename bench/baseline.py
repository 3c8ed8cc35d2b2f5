"""The stage-1 baseline against a full-batch L-BFGS linear probe, and bf16 against fp32 extraction.

    python bench/baseline.py --dataset_dir data/emodb4 --folds 5
    python bench/baseline.py --dataset_dir ../shared/data/ravdess --folds 6 --classes angry happy neutral sad

For each extraction dtype, the same speaker-independent folds: the stage-1 baseline of
``train_mirgan`` (weight decay and epochs chosen on validation speakers inside the training fold,
refit on the whole training fold) and the DESIGN §6 probe (one linear layer on the layer-mean of the
standardised features, L-BFGS, weight decay 1e-3) on the same cached features. Paired Wilcoxon
tests over folds: stage 1 vs probe, bf16 vs fp32. Writes ``bench/results/baseline_<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as train.py: spinning OpenMP threads crawl on a busy machine

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def lbfgs_probe(audio: torch.Tensor, labels: torch.Tensor, train: np.ndarray, test: np.ndarray, k: int) -> float:
    """DESIGN §6: mean over layers of standardised features, one linear layer, L-BFGS, weight decay 1e-3."""
    from modeling_mirgan.stages import scores

    x = audio[torch.as_tensor(train)]
    mean, std = x.mean(0), x.std(0).clamp_min(1e-4)
    feats = lambda rows: ((audio[torch.as_tensor(rows)] - mean) / std).mean(1)  # noqa: E731
    xt, yt = feats(train), labels[torch.as_tensor(train)]
    layer = torch.nn.Linear(xt.shape[1], k)
    opt = torch.optim.LBFGS(layer.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(xt), yt) + 1e-3 * (layer.weight ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return scores(layer(feats(test)).argmax(-1), labels[torch.as_tensor(test)])["ua"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset_dir", default=str(ROOT / "data" / "emodb4"))
    p.add_argument("--classes", nargs="+", default=None)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--audio_encoder", default="openai/whisper-base")
    p.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    p.add_argument("--name", default=None)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from scipy.stats import wilcoxon

    from datasets_scripts import load_corpus
    from modeling_mirgan import stages, training
    from modeling_mirgan.arguments import TrainArguments
    from modeling_mirgan.encoders import cache_dir
    from modeling_mirgan.processors import build_processor
    from modeling_mirgan.modeling_mirgan import from_encoders

    corpus = load_corpus("audiofolder", args.dataset_dir, classes=args.classes, folds=args.folds)
    ds, protocol = corpus.dataset, corpus.protocol
    classes = protocol.classes
    labels = torch.tensor([classes.index(l) for l in ds["label"]])
    texts = ds["text"]
    index = {t: i for i, t in enumerate(sorted(set(texts)))}
    groups = torch.tensor([index[t] for t in texts])
    speakers, genders = ds["speaker"], ds["gender"]
    result = {"command": "python bench/baseline.py " + " ".join(os.sys.argv[1:]), "dataset": Path(args.dataset_dir).name,
              "audio_encoder": args.audio_encoder, "n_clips": len(ds), "folds": [f.name for f in protocol.folds], "by_dtype": {}}
    model = from_encoders(classes, args.audio_encoder).eval()
    processor = build_processor(args.audio_encoder, "sentence-transformers/all-MiniLM-L6-v2")
    for dtype in args.dtypes:
        targs = TrainArguments(extraction_dtype=dtype)
        timing = {"stage1_s": 0.0, "stage2_s": 0.0, "stage3_s": 0.0}
        t0 = time.time()
        _, data = training.encoder_features(ds, model, processor, cache_dir() / "features", targs, True, labels, groups, timing)
        extract_s = time.time() - t0
        audio = data.audio.gather(np.arange(len(ds)))
        per_fold = []
        for i, fold in enumerate(protocol.folds):
            train, test = fold.split(ds[fold.column])
            val_spk = set(training.validation_speakers([speakers[j] for j in train], [genders[j] for j in train], len(protocol.folds)))
            inner = [j for j in train if speakers[j] not in val_spk]
            val = [j for j in train if speakers[j] in val_spk]
            run = training.run_fold(model, data, np.asarray(train), inner, val, test, [], targs, i * 1009 + 100, timing)
            per_fold.append({"fold": fold.name, "stage1_ua": run["methods"]["baseline"]["ua"],
                             "probe_ua": lbfgs_probe(audio, labels, np.asarray(train), np.asarray(test), len(classes)),
                             **run["stage1"]})
            print(dtype, per_fold[-1], flush=True)
        s1, pr = [f["stage1_ua"] for f in per_fold], [f["probe_ua"] for f in per_fold]
        result["by_dtype"][dtype] = {"per_fold": per_fold, "extract_s": extract_s, "stage1_s": timing["stage1_s"],
                                     "stage1_ua_mean": float(np.mean(s1)), "stage1_ua_std": float(np.std(s1)),
                                     "probe_ua_mean": float(np.mean(pr)), "probe_ua_std": float(np.std(pr)),
                                     "stage1_minus_probe_p": float(wilcoxon(s1, pr).pvalue) if s1 != pr else 1.0}
    if len(result["by_dtype"]) == 2:
        a, b = (result["by_dtype"][d]["per_fold"] for d in args.dtypes)
        x, y = [f["stage1_ua"] for f in a], [f["stage1_ua"] for f in b]
        result["dtype_difference"] = {"mean_ua_difference": float(np.mean(np.subtract(x, y))),
                                      "p_wilcoxon": float(wilcoxon(x, y).pvalue) if x != y else 1.0}
    out = ROOT / "bench" / "results" / f"baseline_{args.name or result['dataset']}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({d: {k: v for k, v in r.items() if k != "per_fold"} for d, r in result["by_dtype"].items()}, indent=2))
    print(result.get("dtype_difference"))


if __name__ == "__main__":
    main()
