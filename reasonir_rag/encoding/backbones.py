"""Loading the encoder backbones and running one padded batch through them.

Two backbones share one forward: a Llama model made bidirectional (ReasonIR) and BERT (MiniLM).
Heavy imports stay inside functions so that ``import reasonir_rag`` does not load torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasonir_rag._deps import require
from reasonir_rag.errors import InvalidInputError, StorageError

logger = logging.getLogger(__name__)

_EMBED_KEY = "embed_tokens.weight"


@dataclass
class Backbone:
    """A loaded model with the facts the encoder needs about it."""

    model: Any
    tokenizer: Any
    dim: int
    device: Any
    dtype: Any
    weights_id: str


def resolve_local(name_or_path: str, *, revision: str | None = None, use_safetensors: bool = True) -> Path:
    """A local folder for ``name_or_path``: the folder itself, or a hub snapshot of config, tokenizer and weights."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    hub = require("huggingface_hub")
    weights = ["*.safetensors", "*.safetensors.index.json"] if use_safetensors else ["*.safetensors*", "*.bin*"]
    patterns = ["*.json", "tokenizer*", "*.model", "*.txt", *weights]
    try:
        return Path(hub.snapshot_download(name_or_path, revision=revision, allow_patterns=patterns))
    except Exception as exc:
        raise StorageError(
            f"could not find {name_or_path!r} locally nor download it from the Hugging Face hub ({exc}). "
            "Pass a local folder, or check the model id and your network/HF_TOKEN."
        ) from exc


def check_weight_format(folder: Path, use_safetensors: bool) -> None:
    """Refuse pickled weights unless asked: a ``.bin`` file can run code when it is loaded."""
    if use_safetensors and not any(folder.glob("*.safetensors")) and any(folder.glob("*.bin")):
        raise StorageError(
            f"{folder} has no model.safetensors, only pickled .bin weights, which can run code when loaded. "
            "Convert them to safetensors, or pass use_safetensors=False if you trust this checkpoint."
        )


def weights_fingerprint(folder: Path) -> str:
    """A cheap identity of the weights: names and sizes of the weight files (no hashing of GBs)."""
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))
    digest = hashlib.sha256(json.dumps([(p.name, p.stat().st_size) for p in files]).encode())
    return digest.hexdigest()[:16]


def checkpoint_key_mapping(folder: Path) -> dict[str, str] | None:
    """Map a checkpoint's key layout onto LlamaModel's (``layers.N...``, ``embed_tokens``, ``norm``).

    Handles ``layers.*`` (a saved LlamaModel, as ReasonIR's remote class saves), ``model.layers.*``
    (LlamaForCausalLM) and deeper wrappers such as ``model.model.layers.*`` (GritLM-style training
    wrappers) by finding the prefix in front of ``embed_tokens.weight``.
    """
    safetensors = require("safetensors")
    keys: list[str] = []
    for file in sorted(folder.glob("*.safetensors")):
        with safetensors.safe_open(str(file), framework="pt") as f:
            keys.extend(f.keys())
    embed = [k for k in keys if k.endswith(_EMBED_KEY)]
    if not embed:
        return None
    prefix = embed[0][: -len(_EMBED_KEY)]
    if prefix in ("", "model."):
        return None  # transformers handles both layouts itself
    logger.info("checkpoint keys carry the prefix %r; mapping them onto LlamaModel", prefix)
    return {"^" + re.escape(prefix): ""}


def load_llama(
    folder: Path, *, device: str, dtype: Any, trust_remote_code: bool, use_safetensors: bool
) -> Backbone:
    """ReasonIR's backbone. By default the stock LlamaModel with bidirectional attention, no remote code."""
    transformers = require("transformers")
    check_weight_format(folder, use_safetensors)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    if trust_remote_code:
        logger.warning("trust_remote_code=True: running the checkpoint's own modelling code from %s", folder)
        model = transformers.AutoModel.from_pretrained(
            str(folder), trust_remote_code=True, dtype=dtype, use_safetensors=use_safetensors
        )
    else:
        config = transformers.AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
        if config.model_type != "llama":
            raise InvalidInputError(
                f"{folder} holds a {config.model_type!r} model; the built-in ReasonIR path expects a Llama "
                "checkpoint. Pass trust_remote_code=True to run the checkpoint's own code."
            )
        model, info = transformers.LlamaModel.from_pretrained(
            str(folder),
            config=config,
            dtype=dtype,
            use_safetensors=use_safetensors,
            key_mapping=checkpoint_key_mapping(folder) if use_safetensors else None,
            output_loading_info=True,
        )
        missing = info.get("missing_keys") or []
        if missing:
            raise InvalidInputError(
                f"{folder}: {len(missing)} weights missing from the checkpoint (e.g. {sorted(missing)[:3]}); "
                "refusing to run with randomly initialised layers"
            )
        if info.get("unexpected_keys"):
            logger.info("ignored %d checkpoint keys (e.g. %s)", len(info["unexpected_keys"]),
                        sorted(info["unexpected_keys"])[:2])
        make_bidirectional(model)
    model.to(device).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return Backbone(model, tokenizer, int(model.config.hidden_size), device, dtype, weights_fingerprint(folder))


def make_bidirectional(model: Any) -> None:
    """Every token attends to every (non-pad) token: no causal triangle, as ReasonIR was trained.

    ``config.is_causal = False`` makes transformers build a bidirectional padding mask; each attention
    module's ``is_causal`` must be False too, or SDPA falls back to a causal kernel when no mask is needed.
    """
    model.config.is_causal = False
    for module in model.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = False


def load_bert(folder: Path, *, device: str, dtype: Any, use_safetensors: bool) -> Backbone:
    """A sentence-transformers style BERT encoder (MiniLM): mean pooling over all tokens."""
    transformers = require("transformers")
    check_weight_format(folder, use_safetensors)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.AutoModel.from_pretrained(str(folder), dtype=dtype, use_safetensors=use_safetensors)
    model.to(device).eval()
    return Backbone(model, tokenizer, int(model.config.hidden_size), device, dtype, weights_fingerprint(folder))


def embed_batch(backbone: Backbone, rows: list[list[int]], pool_ranges: list[tuple[int, int]]) -> Any:
    """One right-padded forward pass; mean of each row's hidden states over ``pool_ranges``; L2-normalised fp32."""
    torch = require("torch")
    longest = max(len(r) for r in rows)
    pad = backbone.tokenizer.pad_token_id or 0
    ids = torch.full((len(rows), longest), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), longest), dtype=torch.long)
    pool = torch.zeros((len(rows), longest), dtype=torch.float32)
    for r, (row, (start, end)) in enumerate(zip(rows, pool_ranges, strict=True)):
        ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention[r, : len(row)] = 1
        pool[r, start:end] = 1.0
    device = backbone.device
    with torch.inference_mode():
        hidden = backbone.model(
            input_ids=ids.to(device), attention_mask=attention.to(device)
        ).last_hidden_state
        pool = pool.to(device)
        summed = (hidden.float() * pool[..., None]).sum(dim=1)
        mean = summed / pool.sum(dim=1, keepdim=True).clamp(min=1.0)
        return torch.nn.functional.normalize(mean, dim=-1).cpu()
