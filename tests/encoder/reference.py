"""An independent reference for ReasonIR/GritLM embeddings: a plain-torch Llama forward read straight from
the safetensors file, with GritLM's algorithm (string concatenation, instruction masked out of the mean).

It shares no code with reasonir_rag: no transformers model, no batching, no id concatenation.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file


class ReferenceLlama:
    def __init__(self, folder: Path):
        cfg = json.loads((folder / "config.json").read_text())
        self.cfg = cfg
        state = load_file(str(folder / "model.safetensors"))
        self.w = {k.removeprefix("model."): v.double() for k, v in state.items()}
        self.heads = cfg["num_attention_heads"]
        self.kv_heads = cfg["num_key_value_heads"]
        self.head_dim = cfg["hidden_size"] // self.heads
        self.eps = cfg["rms_norm_eps"]
        rope = cfg["rope_parameters"]
        inv = 1.0 / (rope["rope_theta"] ** (torch.arange(0, self.head_dim, 2, dtype=torch.float64) / self.head_dim))
        if rope["rope_type"] == "llama3":  # Llama-3.1's frequency scaling for long context
            old, factor = rope["original_max_position_embeddings"], rope["factor"]
            low, high = rope["low_freq_factor"], rope["high_freq_factor"]
            wavelen = 2 * math.pi / inv
            scaled = torch.where(wavelen > old / low, inv / factor, inv)
            smooth = (old / wavelen - low) / (high - low)
            smoothed = (1 - smooth) * scaled / factor + smooth * scaled
            medium = (wavelen >= old / high) & (wavelen <= old / low)
            inv = torch.where(medium, smoothed, scaled)
        self.inv_freq = inv

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return weight * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    @staticmethod
    def _rotate_half(x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        return torch.cat([-x[..., half:], x[..., :half]], dim=-1)

    def hidden(self, ids: list[int], causal: bool = False) -> torch.Tensor:
        w, n = self.w, len(ids)
        x = w["embed_tokens.weight"][torch.tensor(ids)]
        freqs = torch.outer(torch.arange(n, dtype=torch.float64), self.inv_freq)
        cos, sin = torch.cat([freqs, freqs], -1).cos(), torch.cat([freqs, freqs], -1).sin()
        for i in range(self.cfg["num_hidden_layers"]):
            p = f"layers.{i}."
            h = self._rms(x, w[p + "input_layernorm.weight"])
            q = (h @ w[p + "self_attn.q_proj.weight"].T).view(n, self.heads, self.head_dim).transpose(0, 1)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).view(n, self.kv_heads, self.head_dim).transpose(0, 1)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).view(n, self.kv_heads, self.head_dim).transpose(0, 1)
            q = q * cos + self._rotate_half(q) * sin
            k = k * cos + self._rotate_half(k) * sin
            rep = self.heads // self.kv_heads
            k, v = k.repeat_interleave(rep, 0), v.repeat_interleave(rep, 0)
            scores = q @ k.transpose(1, 2) / self.head_dim**0.5
            if causal:
                scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))
            attn = scores.softmax(-1) @ v
            x = x + attn.transpose(0, 1).reshape(n, -1) @ w[p + "self_attn.o_proj.weight"].T
            h = self._rms(x, w[p + "post_attention_layernorm.weight"])
            gate = torch.nn.functional.silu(h @ w[p + "mlp.gate_proj.weight"].T)
            x = x + (gate * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
        return self._rms(x, w["norm.weight"])


def gritlm_embedding(ref: ReferenceLlama, tokenizer, instruction: str, text: str, *, causal: bool = False,
                     pool_instruction: bool = False) -> torch.Tensor:
    """GritLM.encode for one text: tokenize instruction+text with BOS; mask the instruction's tokens; mean; L2."""
    ids = tokenizer(instruction + text, add_special_tokens=True)["input_ids"]
    n_instruction = len(tokenizer(instruction, add_special_tokens=True)["input_ids"])
    hidden = ref.hidden(ids, causal=causal)
    pooled = hidden.mean(0) if pool_instruction else hidden[n_instruction:].mean(0)
    return torch.nn.functional.normalize(pooled, dim=-1).float()
