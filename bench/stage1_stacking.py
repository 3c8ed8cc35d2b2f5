"""Would stage 1 be faster if a fold's weight-decay candidates trained at once?

Stage 1 fits every (alignment weight, weight decay) candidate of a fold one after another
(``stages.select_stage1``). This measures the alternative: the candidates' head weights stacked and
trained together with ``torch.func.vmap`` over ``functional_call`` of the same ``stage1_loss`` (one
Adam over the stacked weights, per-candidate early stopping on the validation rows). Shapes are the
main job's (whisper-base: 7 layers x 512, 256-d shared space, 220 training and 51 validation rows), on
random features; sequential and stacked alternate ``--repeats`` times in one process, so their ratio
holds on a loaded machine.

    python bench/stage1_stacking.py            # writes bench/results/stage1_stacking.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call, vmap
from transformers import BertConfig, WhisperConfig

from modeling_mirgan import MirganConfig, MirganForEmotionClassification, stages
from modeling_mirgan.arguments import TrainArguments

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["angry", "happy", "neutral", "sad"]


class Stage1Objective(nn.Module):
    """``stage1_loss`` as a module forward, so ``functional_call`` can swap in stacked head weights."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, audio, text, labels, groups):
        return stages.stage1_loss(self.model, audio, text, labels, groups)


class HeadLogits(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, audio, text):
        return stages.head_logits(self.model, audio, text)


def main_job_shaped_model() -> MirganForEmotionClassification:
    audio = WhisperConfig(d_model=512, encoder_layers=6, encoder_attention_heads=2, encoder_ffn_dim=64, decoder_layers=1,
                          decoder_attention_heads=2, decoder_ffn_dim=64, num_mel_bins=80, max_source_positions=1500, vocab_size=100)
    text = BertConfig(hidden_size=384, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=100)
    config = MirganConfig(audio_encoder=audio.to_dict(), text_encoder=text.to_dict(), id2label=dict(enumerate(LABELS)),
                          label2id={name: i for i, name in enumerate(LABELS)})
    return MirganForEmotionClassification(config).eval()


def stacked_candidates(model, data, rows, validation, args: TrainArguments, seed: int) -> tuple[list[float], list[int]]:
    """Every weight decay of ``args`` trained at once; returns each candidate's best validation UA and epoch."""
    torch.manual_seed(seed)
    stages.reset_heads(model, data, rows)
    params = stages.head_parameters(model)
    stages.freeze_all_but(model, [])
    names = {id(p): "model." + n for n, p in model.named_parameters()}
    k = len(args.weight_decays)
    stacked = {names[id(p)]: p.detach().unsqueeze(0).repeat(k, *[1] * p.dim()).requires_grad_() for p in params}
    decayed = [n for n in (names[id(m.weight)] for m in stages.decayed_heads(model)) if n in stacked]  # trained ones only
    weight_decays = torch.tensor(args.weight_decays)
    optimizer = torch.optim.Adam(list(stacked.values()), lr=args.stage1_lr, foreach=True)
    inputs = (model.standardise_audio(data.audio.gather(rows.numpy())), data.text[rows], data.labels[rows], data.groups[rows])
    val_inputs = (model.standardise_audio(data.audio.gather(validation.numpy())), data.text[validation])
    losses = vmap(lambda p: functional_call(Stage1Objective(model), p, inputs), randomness="different")
    logits = vmap(lambda p: functional_call(HeadLogits(model), p, val_inputs))
    best_ua, best_epoch, stopped = [-1.0] * k, [0] * k, [False] * k
    model.dropout.train()
    for epoch in range(1, args.stage1_epochs + 1):
        penalty = sum((stacked[n] ** 2).flatten(1).sum(1) for n in decayed)
        total = (losses(stacked) + weight_decays * penalty).sum()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if epoch % args.eval_every == 0 or epoch == args.stage1_epochs:
            with torch.no_grad():
                model.dropout.eval()
                predictions = logits(stacked).argmax(-1)
                model.dropout.train()
            for c in range(k):
                ua = stages.scores(predictions[c], data.labels[validation])["ua"]
                if not stopped[c] and ua > best_ua[c]:
                    best_ua[c], best_epoch[c] = ua, epoch
                elif epoch - best_epoch[c] >= args.patience * args.eval_every:
                    stopped[c] = True
            if all(stopped):
                break
    model.dropout.eval()
    return best_ua, best_epoch


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "stage1_stacking.json"))
    cli = parser.parse_args()
    torch.set_num_threads(1)
    load = list(os.getloadavg())
    model, args = main_job_shaped_model(), TrainArguments()
    n, g = 271, torch.Generator().manual_seed(0)
    labels = torch.arange(n) % len(LABELS)
    audio = 0.3 * torch.randn(n, model.config.num_audio_layers, model.config.audio_hidden_size, generator=g) + 0.05 * labels[:, None, None]
    data = stages.CorpusFeatures(stages.AudioLayerStore.from_tensor(audio), torch.randn(n, 384, generator=g), labels, torch.arange(n) % 10)
    rows, validation = torch.arange(220), torch.arange(220, n)
    runs = []
    for _ in range(cli.repeats):
        run = {}
        for how in ("sequential", "stacked"):
            t0 = time.perf_counter()
            for lambda_con in (0.1, 0.0):  # the two alignment candidates of select_stage1
                model.config.lambda_con = lambda_con
                if how == "sequential":
                    for wd in args.weight_decays:
                        stages.train_stage1(model, data, rows, args, wd, args.stage1_epochs, 0, validation)
                else:
                    stacked_candidates(model, data, rows, validation, args, 0)
            run[f"{how}_s"] = time.perf_counter() - t0
        run["stacked_over_sequential"] = run["stacked_s"] / run["sequential_s"]
        runs.append(run)
        print(run, flush=True)
    result = {"what": "8 stage-1 candidates of one fold (2 alignment weights x 4 weight decays), main-job shapes, 1 thread",
              "command": "python bench/stage1_stacking.py", "torch": torch.__version__,
              "load_average_at_start": load, "runs": runs,
              "stacked_over_sequential_median": sorted(r["stacked_over_sequential"] for r in runs)[len(runs) // 2]}
    Path(cli.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
