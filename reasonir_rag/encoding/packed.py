"""Padding-free ("packed") encoding for the ReasonIR (Llama) backbone.

A batch's sequences are concatenated into ONE row: position ids restart at 0 for each sequence (so RoPE sees
exactly what it sees in a padded row), attention is block-diagonal and bidirectional (each sequence sees all of
itself and nothing of the others), and the mean runs over each sequence's text tokens only. No token is padding,
so no FLOP is spent on pads: on a mixed-length corpus that is most of the gap between padded batches and the
GPU's matmul ceiling.

The stock ``LlamaModel`` runs unchanged: :func:`enable_packed` registers one attention function with
transformers' ``AttentionInterface``. Calls that carry ``cu_seq_lens_q`` (packed) go to a variable-length kernel;
every other call (padded batches) goes to transformers' own SDPA function, so one model serves both paths.
Kernels, in order: PyTorch's ``torch.nn.attention.varlen.varlen_attn`` (CUDA, flash), the ``flash-attn`` package's
``flash_attn_varlen_func`` (CUDA), and off CUDA (or for dtypes flash cannot run) SDPA over each diagonal block,
which is the block-diagonal mask's maths without building the T x T mask.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from reasonir_rag._deps import require
from reasonir_rag.errors import InvalidInputError, UsageError

logger = logging.getLogger(__name__)

ATTENTION_NAME = "reasonir_packed"
ATTENTION_MODES = ("auto", "packed", "padded")
_VARLEN_KWARGS = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")

# A kernel: (q (T, Hq, D), k (T, Hkv, D), v (T, Hkv, D), cu_seqlens int32 (N+1,), max_len, scale) -> (T, Hq, D)
Kernel = Callable[[Any, Any, Any, Any, int, float], Any]
# Kernels that passed their trial, by (device type, dtype): a plain dict that torch.compile can read in the
# attention function (it would trace into a cached function, trial run included).
_READY: dict[tuple[str, Any], Kernel] = {}


# ---------------------------------------------------------------------------------------------- kernels
def _torch_varlen() -> tuple[Kernel | None, str]:
    """PyTorch's own varlen flash attention, adapted to the signature of the installed release.

    torch 2.10 takes ``is_causal``; later releases take ``window_size`` ((-1, -1) = full, bidirectional) and,
    from some release on, ``enable_gqa``; without it the key/value heads are repeated for grouped-query attention.
    """
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError as exc:
        return None, f"torch.nn.attention.varlen is not in this torch ({exc})"
    params = inspect.signature(varlen_attn).parameters
    fixed: dict[str, Any] = {}
    if "window_size" in params:
        fixed["window_size"] = (-1, -1)
    elif "is_causal" in params:
        fixed["is_causal"] = False
    else:
        return None, "torch varlen_attn has neither window_size nor is_causal: cannot ask for bidirectional attention"
    native_gqa = "enable_gqa" in params
    has_scale = "scale" in params

    def kernel(q, k, v, cu, max_len, scale):
        extra = dict(fixed)
        if k.shape[1] != q.shape[1]:
            if native_gqa:
                extra["enable_gqa"] = True
            else:
                rep = q.shape[1] // k.shape[1]
                k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if has_scale:
            extra["scale"] = scale
        elif not math.isclose(scale, q.shape[-1] ** -0.5, rel_tol=1e-6):
            raise InvalidInputError(f"this torch varlen_attn has no scale argument and the model's scale {scale} "
                                    "is not 1/sqrt(head_dim)")
        return varlen_attn(q, k, v, cu, cu, max_len, max_len, **extra)

    return kernel, "torch.nn.attention.varlen.varlen_attn"


def _flash_attn_varlen() -> tuple[Kernel | None, str]:
    try:
        from flash_attn import flash_attn_varlen_func
    except ImportError as exc:
        return None, f"flash-attn is not installed ({exc})"

    def kernel(q, k, v, cu, max_len, scale):
        return flash_attn_varlen_func(q, k, v, cu, cu, max_len, max_len, dropout_p=0.0, softmax_scale=scale,
                                      causal=False)

    return kernel, "flash_attn.flash_attn_varlen_func"


@functools.cache
def varlen_kernel(device: str, dtype: Any) -> tuple[Kernel | None, str]:
    """The first variable-length kernel that runs on ``device`` in ``dtype`` (tried on a small input), with its name;
    or ``(None, why not)``. Cached per (device, dtype)."""
    torch = require("torch")
    if not str(device).startswith("cuda") or not torch.cuda.is_available():
        return None, f"varlen flash kernels need a CUDA device (device is {device})"
    if dtype not in (torch.float16, torch.bfloat16):
        return None, f"varlen flash kernels need fp16 or bf16 (dtype is {dtype})"
    reasons = []
    for factory in (_torch_varlen, _flash_attn_varlen):
        kernel, name = factory()
        if kernel is None:
            reasons.append(name)
            continue
        try:  # a trial that checks maths, not only that it runs: two sequences, GQA, against SDPA per block
            _check_kernel(kernel, device, dtype)
        except Exception as exc:  # a build without flash for this GPU, an old signature, ...
            reasons.append(f"{name} failed a trial run: {type(exc).__name__}: {exc}")
            continue
        _READY[(torch.device(device).type, dtype)] = kernel
        return kernel, name
    return None, "; ".join(reasons)


def _check_kernel(kernel: Kernel, device: str, dtype: Any) -> None:
    torch = require("torch")
    gen = torch.Generator(device="cpu").manual_seed(0)
    lengths, hq, hkv, d = [5, 11], 4, 2, 64
    total = sum(lengths)
    q, k, v = (torch.randn(total, h, d, generator=gen).to(device, dtype) for h in (hq, hkv, hkv))
    cu = torch.tensor([0, 5, 16], dtype=torch.int32, device=device)
    got = kernel(q, k, v, cu, max(lengths), d**-0.5).float()
    want = _blockwise_sdpa(q[None].transpose(1, 2), k[None].transpose(1, 2), v[None].transpose(1, 2),
                           cu, d**-0.5)[0].float()
    err = (got - want).abs().max().item()
    if not err < 0.05:
        raise InvalidInputError(f"differs from SDPA by {err:.3g}")


def _blockwise_sdpa(query, key, value, cu, scale):
    """SDPA over each diagonal block of the packed row: (1, H, T, D) in, (1, T, H, D) out."""
    torch = require("torch")
    bounds = cu.tolist()
    gqa = key.shape[1] != query.shape[1]
    parts = []
    for start, end in itertools.pairwise(bounds):
        if end > start:
            parts.append(torch.nn.functional.scaled_dot_product_attention(
                query[:, :, start:end], key[:, :, start:end], value[:, :, start:end], scale=scale,
                is_causal=False, enable_gqa=gqa))
    return torch.cat(parts, dim=2).transpose(1, 2)


# ---------------------------------------------------------------------------------------------- attention
def packed_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                     **kwargs):
    """transformers attention function: packed calls (``cu_seq_lens_q`` given) run block-diagonal bidirectional
    attention; all other calls are transformers' SDPA, unchanged."""
    cu = kwargs.get("cu_seq_lens_q")
    if cu is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    if query.shape[0] != 1:
        raise InvalidInputError(f"packed attention expects one packed row, got a batch of {query.shape[0]}")
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    kernel = _READY.get((query.device.type, query.dtype))  # filled by varlen_kernel(), which embed_packed calls
    if kernel is None:
        return _blockwise_sdpa(query, key, value, cu, scale), None
    # (1, H, T, D) -> (T, H, D): usually a view of the projections' (T, H, D) layout; copied only if it is not
    q, k, v = (x[0].transpose(0, 1) for x in (query, key, value))
    q, k, v = (x if x.is_contiguous() else x.contiguous() for x in (q, k, v))
    # max_length_q stays as given (no int()): under torch.compile it is symbolic, and int() would recompile per value
    return kernel(q, k, v, cu, kwargs["max_length_q"], scale)[None], None


def enable_packed(model: Any) -> None:
    """Route ``model``'s attention through :func:`packed_attention` (padded calls still get SDPA)."""
    transformers = require("transformers")
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    transformers.AttentionInterface.register(ATTENTION_NAME, packed_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)  # padded calls keep SDPA's padding masks
    try:
        model.set_attn_implementation(ATTENTION_NAME)
    except (AttributeError, ValueError, KeyError):  # older transformers: set it on the config
        model.config._attn_implementation = ATTENTION_NAME


def supports_packed(model: Any) -> tuple[bool, str]:
    """Whether the packed path applies to ``model``: the stock transformers Llama with bidirectional attention."""
    transformers = require("transformers")
    if not isinstance(model, transformers.LlamaModel):
        return False, f"packed encoding needs the stock transformers LlamaModel, not {type(model).__name__}"
    if getattr(model.config, "is_causal", True):
        return False, "packed encoding is for the bidirectional ReasonIR backbone; this model is causal"
    return True, ""


def resolve_attention(requested: str, model: Any, device: str, dtype: Any) -> tuple[str, str]:
    """``("packed" | "padded", why)`` for ``requested`` in ``auto`` / ``packed`` / ``padded``.

    ``auto``: packed on CUDA when a varlen kernel runs there, padded otherwise. ``packed``: packed on CUDA with a
    varlen kernel and off CUDA (blockwise SDPA); on CUDA without a kernel it falls back to padded (logged).
    """
    if requested not in ATTENTION_MODES:
        raise InvalidInputError(f"attention must be one of {ATTENTION_MODES}, got {requested!r}")
    if requested == "padded":
        return "padded", "asked for"
    ok, why = supports_packed(model)
    if not ok:
        if requested == "packed":
            logger.warning("attention='packed' falls back to padded batches: %s", why)
        return "padded", why
    on_cuda = str(device).startswith("cuda")
    kernel, name = varlen_kernel(str(device), dtype) if on_cuda else (None, "not on CUDA")
    if kernel is not None:
        return "packed", f"varlen kernel {name}"
    if requested == "packed" and not on_cuda:
        return "packed", "blockwise SDPA (no varlen kernel off CUDA)"
    if requested == "packed":
        logger.warning("attention='packed' falls back to padded batches: no varlen kernel (%s)", name)
    return "padded", f"no varlen kernel: {name}"


# ---------------------------------------------------------------------------------------------- batches
def packed_batches(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices grouped longest-first so that each group's TOTAL tokens stay within ``max_tokens`` (no padding to
    pay for, so the row count is free). Every index appears once; a longer item gets its own group."""
    if max_tokens < 1:
        raise InvalidInputError("max_tokens must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in order:
        if current and used + lengths[i] > max_tokens:
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += lengths[i]
    if current:
        batches.append(current)
    return batches


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def pack(rows: Sequence[Sequence[int]], pool_ranges: Sequence[tuple[int, int]], *, pad_id: int,
         bucket: int = 1) -> dict[str, Any]:
    """The packed row for ``rows``: ids, restarting positions, ``cu_seqlens`` and which tokens each mean takes.

    ``bucket > 1`` pads the row's length up to a multiple of ``bucket`` with a filler sequence of its own (it
    attends only to itself and is never pooled), so a compiled model sees few distinct shapes.
    """
    torch = require("torch")
    lengths = [len(r) for r in rows]
    if not rows or min(lengths) < 1:
        raise InvalidInputError("every packed row needs at least one token")
    total = sum(lengths)
    filler = _round_up(total, bucket) - total
    seg_lengths = torch.tensor(lengths + ([filler] if filler else []), dtype=torch.long)
    ids = torch.tensor([t for r in rows for t in r] + [pad_id] * filler, dtype=torch.long)
    cu = torch.zeros(len(seg_lengths) + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(seg_lengths, 0)
    starts = cu[:-1].long().repeat_interleave(seg_lengths)
    positions = torch.arange(total + filler) - starts
    n = len(rows)
    segment = torch.arange(len(seg_lengths)).repeat_interleave(seg_lengths)
    lo = torch.tensor([a for a, _ in pool_ranges] + [0] * bool(filler), dtype=torch.long).repeat_interleave(seg_lengths)
    hi = torch.tensor([b for _, b in pool_ranges] + [0] * bool(filler), dtype=torch.long).repeat_interleave(seg_lengths)
    pooled = (positions >= lo) & (positions < hi) & (segment < n)
    max_len = max(lengths + ([filler] if filler else []))
    return {"input_ids": ids[None], "position_ids": positions[None], "cu_seqlens": cu,
            "max_length": _round_up(max_len, bucket), "pool_tokens": pooled.nonzero().squeeze(1),
            "pool_segments": segment[pooled], "n": n}


def embed_packed(backbone: Any, rows: list[list[int]], pool_ranges: list[tuple[int, int]], *,
                 model: Any = None, bucket: int = 1) -> Any:
    """One packed forward pass; each row's mean over its ``pool_ranges``; L2-normalised fp32 on the CPU.

    The padded path's twin (:func:`reasonir_rag.encoding.backbones.embed_batch`): same rows, same ranges, same vectors.
    ``model`` overrides ``backbone.model`` (a compiled copy).
    """
    torch = require("torch")
    if getattr(backbone.model.config, "_attn_implementation", None) != ATTENTION_NAME:
        raise UsageError("call enable_packed(model) first: the stock attention would let packed sequences see "
                           "each other")
    packed = pack(rows, pool_ranges, pad_id=backbone.tokenizer.pad_token_id or 0, bucket=bucket)
    device = backbone.device
    varlen_kernel(str(device), backbone.dtype)  # resolved (and tried) once, outside any compiled code
    cu = packed["cu_seqlens"].to(device)
    with torch.inference_mode():
        hidden = (model if model is not None else backbone.model)(
            input_ids=packed["input_ids"].to(device), position_ids=packed["position_ids"].to(device),
            cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=packed["max_length"],
            max_length_k=packed["max_length"],
        ).last_hidden_state[0]
        tokens = packed["pool_tokens"].to(device)
        segments = packed["pool_segments"].to(device)
        sums = torch.zeros((packed["n"], hidden.shape[-1]), dtype=torch.float32, device=device)
        sums.index_add_(0, segments, hidden.index_select(0, tokens).float())
        counts = torch.bincount(segments, minlength=packed["n"]).clamp(min=1).to(torch.float32)
        return torch.nn.functional.normalize(sums / counts[:, None], dim=-1).cpu()


def compile_model(model: Any, backend: str = "inductor") -> Any:
    """``torch.compile`` of the packed forward, with dynamic shapes (lengths are bucketed by :func:`pack`)."""
    torch = require("torch")
    return torch.compile(model, backend=backend, dynamic=True)
