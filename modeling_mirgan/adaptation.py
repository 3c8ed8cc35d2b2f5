"""Stage 1 end to end (``encoder_mode`` lora/full): the pre-trained encoders fine-tuned together with the
projections and classifiers under the full stage-1 loss L_1 = CE (+ CE of the multimodal head) +
lambda_con InfoNCE + lambda_IM IM, as in the paper. LoRA adapters are merged afterwards, so the adapted
encoders are plain transformers modules that produce the cached features of stages 2 and 3 and load
with ``from_pretrained``. Every call starts from the pre-trained weights; under ``torchrun`` each rank
takes its slice of every micro-batch and gradients are averaged, as in the cached stages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .arguments import LORA_TARGETS, ModelArguments, TrainArguments
from .stages import (CorpusFeatures, average_gradients, check_ranks_agree, freeze_all_but, head_parameters, my_slice,
                     reset_heads, simulate_kill, stage1_loss, state_hash, uses_text, world)


@dataclass
class AdaptationResult:
    encoders: list[str]  # "audio" and/or "text": the encoders that were fine-tuned
    seconds: float
    steps: int
    trainable_parameters: dict[str, int]
    curve: list[dict] = field(default_factory=list)  # {"step", "loss"} per optimizer step


def lora_targets(encoder: nn.Module, model_type: str, model_args: ModelArguments) -> list[str]:
    """The LoRA target names present in ``encoder``: ``--lora_target_modules`` or the architecture's default."""
    wanted = model_args.lora_target_modules or LORA_TARGETS.get(model_type)
    if not wanted:
        raise ValueError(f"no default LoRA target modules for {model_type!r}; pass --lora_target_modules")
    names = {name.rsplit(".", 1)[-1] for name, _ in encoder.named_modules()}
    present = [t for t in wanted if t in names]
    if not present:
        raise ValueError(f"--lora_target_modules {wanted}: none is a module of the {model_type} encoder")
    return present


def make_trainable(model, which: str, mode: str, model_args: ModelArguments) -> list[nn.Parameter]:
    """Wrap ``model.<which>_encoder`` with LoRA adapters (``lora``) or open all its weights (``full``)."""
    encoder = getattr(model, f"{which}_encoder")
    if mode == "frozen":
        return []
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        model_type = getattr(model.config, f"{which}_encoder").model_type
        lora = LoraConfig(r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout,
                          target_modules=lora_targets(encoder, model_type, model_args))
        encoder = get_peft_model(encoder, lora)
        setattr(model, f"{which}_encoder", encoder)
        return [p for n, p in encoder.named_parameters() if "lora_" in n]
    return list(encoder.parameters())


def length_bucketed_batches(lengths: np.ndarray, batch_size: int, generator: torch.Generator, bucket: int = 50) -> list[np.ndarray]:
    """Shuffled batches of clips of similar length (less padding): a random order is cut into buckets
    of ``bucket`` batches, each sorted by length and cut into batches, and the batches are shuffled."""
    order = torch.randperm(len(lengths), generator=generator).numpy()
    batches = []
    for start in range(0, len(order), bucket * batch_size):
        chunk = order[start : start + bucket * batch_size]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def adapt_encoders(model, pristine: dict[str, dict], processor, waves: list[np.ndarray], texts: list[str],
                   frozen: CorpusFeatures, rows: torch.Tensor, model_args: ModelArguments, args: TrainArguments,
                   accelerator, seed: int, lr: float) -> AdaptationResult:
    """Stage 1 end to end on the training clips ``rows`` (of the corpus's ``waves``/``texts``, with
    ``frozen`` its features under the pre-trained encoders), then the adapters merged and the encoders
    frozen. The config's encoder hashes then name the adapted weights, so the feature cache keys change."""
    torch.manual_seed(seed)  # the heads' initialisation: torch seeds its default generator at random per process
    reset_heads(model, frozen, rows)
    index = rows.tolist()
    fit = train_end_to_end(model, pristine, processor, [waves[i] for i in index], [texts[i] for i in index], frozen.text[rows],
                           frozen.labels[rows], frozen.groups[rows], model_args, args, accelerator, seed, lr)
    merge_adapters(model, fit.encoders)
    return fit


def train_end_to_end(model, pristine: dict[str, dict], processor, waves: list[np.ndarray], texts: list[str],
                     text_features: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor,
                     model_args: ModelArguments, args: TrainArguments, accelerator, seed: int, lr: float) -> AdaptationResult:
    """Fine-tune the encoders at learning rate ``lr`` (``pristine``: the pre-trained states of those to adapt, by ``"audio"``/``"text"``)
    with the stage-1 heads; LoRA adapters stay attached. The heads must already be reset on these rows
    (``reset_heads``); ``text_features`` are the cached features of a frozen text encoder."""
    simulate_kill("adapt")
    t0 = time.time()
    torch.manual_seed(seed)
    modes = {"audio": model_args.encoder_mode, "text": model_args.text_encoder_mode}
    if modes["text"] != "frozen" and not uses_text(model):
        raise ValueError("--text_encoder_mode: no stage-1 loss reaches the text encoder when lambda_con is 0 "
                         "and --mode is unimodal; keep it frozen, or use alignment or --mode multimodal")
    if modes["text"] != "frozen" and not all(t.strip() for t in texts):
        raise ValueError("--text_encoder_mode: some training clips have no transcript (use --transcripts asr)")
    for which, state in pristine.items():  # merge_adapters names the adapted weights in the config afterwards
        getattr(model, f"{which}_encoder").load_state_dict(state)
    encoder_params = {which: make_trainable(model, which, mode, model_args) for which, mode in modes.items()}
    heads = head_parameters(model)
    freeze_all_but(model, [*encoder_params["audio"], *encoder_params["text"], *heads])
    if modes["audio"] == "full" and model_args.freeze_feature_encoder and hasattr(model.audio_encoder, "freeze_feature_encoder"):
        model.freeze_feature_encoder()
        encoder_params["audio"] = [p for p in encoder_params["audio"] if p.requires_grad]
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    params = [*encoder_params["audio"], *encoder_params["text"], *heads]
    optimizer = torch.optim.AdamW([{"params": encoder_params["audio"] + encoder_params["text"], "lr": lr},
                                   {"params": heads, "lr": args.encoder_heads_lr}])
    scaler = torch.amp.GradScaler(accelerator.device.type, enabled=accelerator.mixed_precision == "fp16")
    device = accelerator.device
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    lengths = np.array([len(w) for w in waves])
    text_trainable = bool(encoder_params["text"])
    curve, step = [], 0
    model.train()
    _, size = world()
    micro = args.encoder_batch_size * size  # clips per micro-batch, over all processes
    for _ in range(args.encoder_epochs):
        for batch in length_bucketed_batches(lengths, micro * args.gradient_accumulation_steps, generator):
            loss_sum = 0.0
            for start in range(0, len(batch), micro):
                rows = np.sort(my_slice(torch.as_tensor(batch[start : start + micro])).numpy())
                if len(rows) == 0:
                    continue
                audio_inputs = processor(audio=[waves[i] for i in rows], sampling_rate=processor.sampling_rate).to(device)
                with accelerator.autocast():
                    audio = model.encode_audio(**audio_inputs)
                    if text_trainable:
                        text = model.encode_text(**processor(text=[texts[i] for i in rows]).to(device))
                    else:
                        text = text_features[rows].to(device)
                    loss = stage1_loss(model, model.standardise_audio(audio.float()), text.float(), labels[rows].to(device),
                                       groups[rows].to(device))
                # weighted by the micro-batch's share of the step's clips: the step's gradient is the mean over all of them
                share = len(rows) * size / len(batch)
                scaler.scale(loss * share).backward()
                loss_sum += loss.detach().item() * share
            scaler.unscale_(optimizer)
            average_gradients(params)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            curve.append({"step": step, "loss": loss_sum})
    model.eval()
    if args.gradient_checkpointing:
        model.gradient_checkpointing_disable()
    model.cpu()
    freeze_all_but(model, [])
    sizes = {which: sum(p.numel() for p in ps) for which, ps in encoder_params.items()}
    return AdaptationResult([w for w, m in modes.items() if m != "frozen"], time.time() - t0, step, sizes, curve)


def merge_adapters(model, encoders: list[str]) -> None:
    """Fold LoRA adapters into the weights of ``encoders`` (plain transformers modules again) and name the
    adapted weights in the config; all ranks must hold the same ones."""
    from peft import PeftModel

    for which in encoders:
        encoder = getattr(model, f"{which}_encoder")
        if isinstance(encoder, PeftModel):
            encoder = encoder.merge_and_unload()
            setattr(model, f"{which}_encoder", encoder)
        name = f"{which}_encoder_hash"
        setattr(model.config, name, f"{getattr(model.config, name).split('+')[0]}+{state_hash(encoder)[:16]}")
        check_ranks_agree(encoder, "adapt")
