"""Read a CTranslate2 Whisper ``model.bin`` and rebuild the transformers ``WhisperModel``.

The binary layout is the one written by ``ctranslate2.specs.model_spec.ModelSpec._serialize``:
``uint32 version, string spec_name, uint32 revision, uint32 n_vars``, then per variable
``string name, uint8 rank, uint32 dims[rank], uint8 dtype, uint32 n_bytes, bytes``, then
``uint32 n_aliases`` and ``(string alias, string target)`` pairs. Strings are ``uint16 length``
(including a trailing NUL) followed by UTF-8 bytes. We read it with numpy only, so the package
does not need the ctranslate2 runtime to use these weights.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import torch

_CT2_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, "bfloat16")


def read_ct2_variables(path: str | Path) -> dict[str, np.ndarray]:
    """All variables of a CTranslate2 ``model.bin`` (aliases resolved), as numpy arrays."""
    data = memoryview(Path(path).read_bytes())
    pos = 0

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def take_string() -> str:
        nonlocal pos
        length = take("H")
        text = bytes(data[pos : pos + length - 1]).decode("utf-8")
        pos += length
        return text

    version = take("I")
    if version < 5 or version > 6:
        raise ValueError(f"{path}: unsupported CTranslate2 binary version {version} (expected 5 or 6)")
    spec = take_string()
    take("I")  # spec revision
    if spec != "WhisperSpec":
        raise ValueError(f"{path}: this is a {spec} model, not a Whisper model")
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = take_string()
        rank = take("B")
        shape = [take("I") for _ in range(rank)]
        dtype = _CT2_DTYPES[take("B")]
        n_bytes = take("I")
        raw = bytes(data[pos : pos + n_bytes])
        pos += n_bytes
        if dtype == "bfloat16":
            array = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16).float().numpy()
        else:
            array = np.frombuffer(raw, dtype=dtype).copy()
        variables[name] = array.reshape(shape)
    for _ in range(take("I")):
        alias, target = take_string(), take_string()
        variables[alias] = variables[target]
    return variables


def _linear(state: dict, prefix: str, source: dict, name: str, bias: bool = True) -> None:
    state[f"{prefix}.weight"] = source[f"{name}/weight"]
    if bias:
        state[f"{prefix}.bias"] = source[f"{name}/bias"]


def _layer_norm(state: dict, prefix: str, source: dict, name: str) -> None:
    state[f"{prefix}.weight"] = source[f"{name}/gamma"]
    state[f"{prefix}.bias"] = source[f"{name}/beta"]


def _split_fused(state: dict, prefixes: list[str], source: dict, name: str, key_prefix: str | None) -> None:
    """CTranslate2 fuses q/k/v projections; Whisper's key projection has no bias."""
    weights = np.split(source[f"{name}/weight"], len(prefixes))
    biases = np.split(source[f"{name}/bias"], len(prefixes))
    for prefix, weight, bias in zip(prefixes, weights, biases):
        state[f"{prefix}.weight"] = weight
        if prefix != key_prefix:
            state[f"{prefix}.bias"] = bias


def ct2_to_whisper_state_dict(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map CTranslate2 Whisper variable names to ``WhisperForConditionalGeneration`` keys."""
    state: dict[str, np.ndarray] = {}
    enc, dec = "model.encoder", "model.decoder"
    for side in ("encoder",):
        _linear(state, f"{enc}.conv1", variables, f"{side}/conv1")
        _linear(state, f"{enc}.conv2", variables, f"{side}/conv2")
    state[f"{enc}.embed_positions.weight"] = variables["encoder/position_encodings/encodings"]
    _layer_norm(state, f"{enc}.layer_norm", variables, "encoder/layer_norm")
    state[f"{dec}.embed_positions.weight"] = variables["decoder/position_encodings/encodings"]
    state[f"{dec}.embed_tokens.weight"] = variables["decoder/embeddings/weight"]
    _layer_norm(state, f"{dec}.layer_norm", variables, "decoder/layer_norm")
    for side, prefix in (("encoder", enc), ("decoder", dec)):
        i = 0
        while f"{side}/layer_{i}/ffn/linear_0/weight" in variables:
            src, dst = f"{side}/layer_{i}", f"{prefix}.layers.{i}"
            attn = f"{dst}.self_attn"
            _layer_norm(state, f"{dst}.self_attn_layer_norm", variables, f"{src}/self_attention/layer_norm")
            _split_fused(
                state, [f"{attn}.q_proj", f"{attn}.k_proj", f"{attn}.v_proj"],
                variables, f"{src}/self_attention/linear_0", key_prefix=f"{attn}.k_proj",
            )
            _linear(state, f"{attn}.out_proj", variables, f"{src}/self_attention/linear_1")
            if side == "decoder":
                cross = f"{dst}.encoder_attn"
                _layer_norm(state, f"{dst}.encoder_attn_layer_norm", variables, f"{src}/attention/layer_norm")
                _linear(state, f"{cross}.q_proj", variables, f"{src}/attention/linear_0")
                _split_fused(
                    state, [f"{cross}.k_proj", f"{cross}.v_proj"],
                    variables, f"{src}/attention/linear_1", key_prefix=f"{cross}.k_proj",
                )
                _linear(state, f"{cross}.out_proj", variables, f"{src}/attention/linear_2")
            _layer_norm(state, f"{dst}.final_layer_norm", variables, f"{src}/ffn/layer_norm")
            _linear(state, f"{dst}.fc1", variables, f"{src}/ffn/linear_0")
            _linear(state, f"{dst}.fc2", variables, f"{src}/ffn/linear_1")
            i += 1
    return {k: torch.from_numpy(np.ascontiguousarray(v)).float() for k, v in state.items()}


def convert_ct2_whisper(model_bin: str | Path, model_dir: str | Path, output_dir: str | Path) -> None:
    """Write a transformers Whisper folder (model, generation config, processor) to ``output_dir``.

    ``model_dir`` holds the CTranslate2 ``config.json`` and ``tokenizer.json`` next to the weights
    (for split packages the weights file may live elsewhere, hence ``model_bin``).
    """
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    model_dir, output_dir = Path(model_dir), Path(output_dir)
    variables = read_ct2_variables(model_bin)
    ct2_config = json.loads((model_dir / "config.json").read_text())
    tokenizer = WhisperTokenizer(tokenizer_file=str(model_dir / "tokenizer.json"))
    token_id = tokenizer.convert_tokens_to_ids

    vocab_size, d_model = variables["decoder/embeddings/weight"].shape
    n_enc = len({k.split("/")[1] for k in variables if re.match(r"encoder/layer_\d+/", k)})
    n_dec = len({k.split("/")[1] for k in variables if re.match(r"decoder/layer_\d+/", k)})
    ffn = variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]
    multilingual = vocab_size >= 51865
    eot = token_id("<|endoftext|>")
    config = WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=variables["encoder/conv1/weight"].shape[1],
        d_model=d_model,
        encoder_layers=n_enc,
        decoder_layers=n_dec,
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=ffn,
        decoder_ffn_dim=ffn,
        max_source_positions=variables["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=variables["decoder/position_encodings/encodings"].shape[0],
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=token_id("<|startoftranscript|>"),
        suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
        tie_word_embeddings=True,
    )
    model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(ct2_to_whisper_state_dict(variables), strict=False)
    missing = [k for k in missing if k != "proj_out.weight"]  # tied to the token embeddings
    if missing or unexpected:
        raise ValueError(f"{model_bin}: conversion mismatch, missing={missing[:5]} unexpected={unexpected[:5]}")
    model.tie_weights()

    lang_tokens = [tokenizer.convert_ids_to_tokens(i) for i in ct2_config.get("lang_ids", [])]
    model.generation_config = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        eos_token_id=eot,
        pad_token_id=eot,
        bos_token_id=eot,
        max_length=config.max_target_positions,
        suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
        no_timestamps_token_id=token_id("<|notimestamps|>"),
        is_multilingual=multilingual,
        lang_to_id={t: token_id(t) for t in lang_tokens} if multilingual else {},
        task_to_id={"transcribe": token_id("<|transcribe|>"), "translate": token_id("<|translate|>")},
        alignment_heads=ct2_config.get("alignment_heads"),
        forced_decoder_ids=None,
    )
    feature_extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    model.save_pretrained(output_dir)
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(output_dir)
