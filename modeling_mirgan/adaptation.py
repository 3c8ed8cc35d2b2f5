"""Stage 1 end to end: the encoders fine-tuned with the heads (encoder_mode lora/full)."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from .arguments import TrainArguments
from .stages import average_gradients, check_ranks_agree, freeze_all_but, my_slice, simulate_kill, state_hash, world




def adapt_audio_encoder(model, pristine: dict, processor, waves: list[np.ndarray], labels: torch.Tensor,
                        model_args, args: TrainArguments, seed: int) -> None:
    """Fine-tune the audio encoder (LoRA adapters, merged afterwards, or all weights) with the stage-1
    audio heads on one fold's training clips. Every call starts from the pre-trained weights ``pristine``;
    the config's encoder hash then names the adapted weights, so the feature cache keys change."""
    from .arguments import LORA_TARGETS

    simulate_kill("adapt")
    torch.manual_seed(seed)
    model.audio_encoder.load_state_dict(pristine)
    model.config.audio_encoder_hash = model.config.audio_encoder_hash.split("+")[0]
    mode = model_args.encoder_mode
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        kind = model.config.audio_encoder.model_type
        targets = model_args.lora_target_modules or LORA_TARGETS.get(kind)
        if not targets:
            raise ValueError(f"no default LoRA target modules for {kind!r}; pass --lora_target_modules")
        lora = LoraConfig(r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout,
                          target_modules=targets)
        model.audio_encoder = get_peft_model(model.audio_encoder, lora)
        encoder_params = [p for n, p in model.audio_encoder.named_parameters() if "lora_" in n]
    else:
        encoder_params = list(model.audio_encoder.parameters())
    lr = args.encoder_lr or (1e-4 if mode == "lora" else 1e-5)
    heads = [*model.audio_projection.parameters(), *model.classifier.parameters()]
    if model.config.layer_pooling == "weighted":
        heads.append(model.layer_weights)
    params = encoder_params + heads
    freeze_all_but(model, params)
    optimizer = torch.optim.AdamW([{"params": encoder_params, "lr": lr}, {"params": heads, "lr": args.stage1_lr}])
    generator = torch.Generator().manual_seed(seed)
    _, size = world()
    batch = 8 * size
    model.train()
    for _ in range(args.encoder_epochs):
        order = torch.randperm(len(waves), generator=generator)
        for start in range(0, len(order), batch):
            rows = np.sort(my_slice(order[start : start + batch]).numpy())
            if len(rows) == 0:
                continue
            inputs = processor(audio=[waves[i] for i in rows], sampling_rate=processor.sampling_rate)
            logits = model.classify(model.project_audio(model.encode_audio(**inputs)))
            loss = F.cross_entropy(logits, labels[torch.as_tensor(rows)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            average_gradients(params)
            optimizer.step()
    model.eval()
    if mode == "lora":
        model.audio_encoder = model.audio_encoder.merge_and_unload()
    freeze_all_but(model, [])
    model.config.audio_encoder_hash += f"+{mode}:{state_hash(model.audio_encoder)[:16]}"
    check_ranks_agree(model.audio_encoder, "adapt")
