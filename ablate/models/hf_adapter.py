"""A transformers masked language model over image tokens, behind the base-model protocol.

Any `AutoModelForMaskedLM` checkpoint in a local folder (a bidirectional encoder whose last hidden
state is "the feature" and whose LM head maps it to logits: BERT, RoBERTa, ... or local
`trust_remote_code` models such as LLaDA / Lumina-DiMOO) becomes a base model the sampler and the
feature-level methods (vanilla, step_reduction, feature_cache, taylor, shortcut) can drive. It is
loaded with `local_files_only=True`: nothing is fetched from a hub at run time.

The folder holds the checkpoint (config.json + weights) and `ablate.json`, which says how image
tokens, the mask and the class condition map onto the model's vocabulary:

    {"image_vocab_size": 128, "seq_len": 49, "num_classes": 10,
     "image_offset": 0, "mask_token_id": 128, "class_offset": 129, "null_class_token_id": 139,
     "dataset": "mnist"}

- sequence fed to the model: [class token] + seq_len image tokens (image token i -> id image_offset + i,
  a masked position -> mask_token_id, class c -> class_offset + c, the unconditional (CFG) branch ->
  null_class_token_id, default class_offset + num_classes);
- feature: the last hidden state (`output_hidden_states`) at the image positions;
- head(feature): the model's LM head on it, restricted to the image-token logits. The head is found
  among the usual names (`cls`, `lm_head`, `head`+`decoder`, ...) and checked at load time to
  reproduce the model's own logits; name it in ablate.json (`"head": ["cls"]`, a list of dotted
  module paths applied in turn) when the search fails;
- token / position embedding (what the shortcut embeds new tokens with): the input embedding of the
  image ids, and the model's absolute position table at the image positions (`"position_embedding"`:
  a dotted path, else the first embedding named like `embeddings.position_embeddings`, `wpe` or
  `embed_positions`; `"position_offset"`: its row of model position 0); a model without one (rotary
  positions) gets a fixed sinusoidal table;
- optional: `"trust_remote_code": true` (a folder whose local code you trust), `"autocast": false`
  (keep the forward in fp32 on GPUs).

Position-level methods (ml_cache, recap) need the model to run only some positions against cached
K/V, which a generic transformers model does not offer: they stop with one line naming the method.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn

from ablate.errors import AblateError
from ablate.hashing import file_digest

SIDECAR = "ablate.json"
_HEAD_CANDIDATES = (("cls",), ("lm_head",), ("head", "decoder"), ("generator_lm_head",), ("model.transformer.ff_out",))
_HASHED_SUFFIXES = (".json", ".safetensors", ".bin", ".py")
# Where configs state the longest sequence (BERT/RoBERTa, GPT-2 style, others), first found wins.
_LENGTH_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "max_seq_len")
# Absolute position tables by module name (BERT-style, GPT-2 style, BART/OPT style), after ablate.json's own.
_POSITION_NAMES = ("embeddings.position_embeddings", "wpe", "embed_positions", "position_embeddings", "pos_emb")


@dataclass(frozen=True)
class TokenLayout:
    """ablate.json: where image tokens, the mask and the classes live in the model's vocabulary."""

    image_vocab_size: int
    seq_len: int
    num_classes: int
    mask_token_id: int
    image_offset: int = 0
    class_offset: Optional[int] = None
    null_class_token_id: Optional[int] = None
    dataset: Optional[str] = None
    head: Optional[list] = None
    position_embedding: Optional[str] = None
    position_offset: int = 0
    trust_remote_code: bool = False
    autocast: bool = True

    @property
    def class_ids(self) -> list[int]:
        off = self.class_offset
        null = self.null_class_token_id if self.null_class_token_id is not None else off + self.num_classes
        return [off + c for c in range(self.num_classes)] + [null]

    def to_json(self) -> str:
        d = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return json.dumps(d, indent=2) + "\n"


def read_layout(folder: Path) -> TokenLayout:
    path = folder / SIDECAR
    if not path.is_file():
        raise AblateError(
            f"base: {folder} has no {SIDECAR} (image_vocab_size, seq_len, num_classes, mask_token_id, class_offset: "
            "how image tokens and classes map onto the model's vocabulary)"
        )
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise AblateError(f"base: {path} is not valid JSON ({e})") from None
    fields = {f.name: f for f in dataclasses.fields(TokenLayout)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise AblateError(f"base: {path}: unknown field {unknown[0]!r} (fields: {', '.join(fields)})")
    for name in ("image_vocab_size", "seq_len", "num_classes", "mask_token_id", "class_offset"):
        if not isinstance(raw.get(name), int) or isinstance(raw.get(name), bool) or raw[name] < 0:
            raise AblateError(f"base: {path}: {name} must be a non-negative integer")
    if raw["image_vocab_size"] < 1 or raw["seq_len"] < 1 or raw["num_classes"] < 1:
        raise AblateError(f"base: {path}: image_vocab_size, seq_len and num_classes must be at least 1")
    if isinstance(raw.get("head"), str):
        raw["head"] = [raw["head"]]
    return TokenLayout(**raw)


def resolve_folder(path: str) -> Path:
    """A checkpoint folder: PATH as given, else a name under $ABLATE_HOME/weights/, else a shipped one."""
    from ablate.paths import SHIPPED_WEIGHTS, home

    given = Path(path).expanduser()
    candidates = [given] if given.is_absolute() else [given, home() / "weights" / path, SHIPPED_WEIGHTS / path]
    for c in candidates:
        if c.is_dir():
            folder = c.resolve()
            break
    else:
        raise AblateError(
            f"base: {path} is not a folder (a local transformers checkpoint, or a name under ablate/weights/)"
        )
    if not (folder / "config.json").is_file():
        raise AblateError(f"base: {folder} has no config.json (not a transformers checkpoint folder)")
    read_layout(folder)
    return folder


def _get(root: nn.Module, dotted: str):
    return functools.reduce(getattr, dotted.split("."), root)


class HFMaskedLM(nn.Module):
    """The adapter: `forward(tokens, labels, drop_label) -> (logits, feature)` over image tokens."""

    supports_positions = False

    def __init__(self, lm: nn.Module, layout: TokenLayout, folder: Optional[Path] = None):
        super().__init__()
        self.lm = lm.eval().requires_grad_(False)
        self.layout = layout
        self.folder = Path(folder) if folder is not None else None
        self.vocab_size = layout.image_vocab_size
        self.mask_id = layout.image_vocab_size
        self.seq_len = layout.seq_len
        self.num_classes = layout.num_classes
        self.autocast_ok = layout.autocast
        self.prefix = 1  # the class token
        model_vocab = self.lm.get_input_embeddings().weight.shape[0]
        self.dim = int(getattr(lm.config, "hidden_size", self.lm.get_input_embeddings().weight.shape[1]))
        if min(layout.image_offset, layout.mask_token_id, min(layout.class_ids)) < 0:
            raise AblateError(f"base: {SIDECAR}: token ids must be non-negative")
        ids = {"image tokens": layout.image_offset + layout.image_vocab_size - 1, "mask_token_id": layout.mask_token_id,
               "class tokens": max(layout.class_ids)}
        for what, top in ids.items():
            if top >= model_vocab:
                raise AblateError(
                    f"base: {SIDECAR}: {what} reach id {top}, beyond the model's vocabulary of {model_vocab}"
                )
        for key in _LENGTH_KEYS:  # the first length limit the config states
            max_pos = getattr(lm.config, key, None)
            if isinstance(max_pos, int) and not isinstance(max_pos, bool):
                if max_pos < layout.position_offset + self.prefix + layout.seq_len:
                    raise AblateError(f"base: {SIDECAR}: seq_len {layout.seq_len} + 1 class token exceed the model's "
                                      f"{key} ({max_pos})")
                break
        self.register_buffer("class_ids", torch.tensor(layout.class_ids, dtype=torch.long), persistent=False)
        self.head_path = self._find_head()
        self._pos_source = None

    # -- vocabulary mapping ----------------------------------------------------------------------
    @property
    def null_label(self) -> int:
        return self.num_classes

    def model_ids(self, tokens: torch.Tensor) -> torch.Tensor:
        """Image token ids (mask = vocab_size) -> the model's ids."""
        masked = tokens == self.mask_id
        mask = torch.full_like(tokens, self.layout.mask_token_id)
        return torch.where(masked, mask, tokens + self.layout.image_offset)

    def input_ids(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.class_ids[labels][:, None], self.model_ids(tokens)], dim=1)

    # -- the protocol ----------------------------------------------------------------------------
    def forward(self, tokens, labels, drop_label=None, *, positions=None, kv_cache=None, return_kv=False):
        if positions is not None or kv_cache is not None or return_kv:
            raise AblateError(
                "method: position-level methods (ml_cache, recap) need a base that runs only some positions against "
                "cached K/V; the transformers adapter does not offer it (use vanilla, step_reduction, feature_cache, "
                "taylor or shortcut)"
            )
        if drop_label is not None:
            labels = torch.where(drop_label, torch.full_like(labels, self.null_label), labels)
        out = self.lm(input_ids=self.input_ids(tokens, labels), output_hidden_states=True, return_dict=True)
        feature = out.hidden_states[-1][:, self.prefix :]
        lo = self.layout.image_offset
        logits = out.logits[:, self.prefix :, lo : lo + self.vocab_size]
        return logits, feature

    def head(self, feature: torch.Tensor) -> torch.Tensor:
        """Feature (..., d) -> image-token logits (..., vocab_size) through the model's own LM head."""
        x = feature
        for path in self.head_path:
            x = _get(self.lm, path)(x)
        lo = self.layout.image_offset
        return x[..., lo : lo + self.vocab_size]

    def token_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(self.model_ids(tokens))

    def position_embedding(self) -> torch.Tensor:
        """(seq_len, d): the model's absolute position embedding at the image positions (sinusoidal if it has none)."""
        table = self._position_table()
        start = self.layout.position_offset + self.prefix
        if table is not None:
            self._pos_source = "model"
            return table[start : start + self.seq_len].detach()
        self._pos_source = "sinusoidal"
        d = self.lm.get_input_embeddings().weight.shape[1]
        pos = torch.arange(start, start + self.seq_len, dtype=torch.float32)[:, None]
        freqs = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float32) / d)
        pe = torch.zeros(self.seq_len, d)
        pe[:, 0::2] = torch.sin(pos * freqs)
        pe[:, 1::2] = torch.cos(pos * freqs[: d // 2])
        scale = self.lm.get_input_embeddings().weight.detach().float().std()
        return (pe * scale).to(self.lm.get_input_embeddings().weight.device)

    def _position_table(self) -> Optional[torch.Tensor]:
        paths = [self.layout.position_embedding] if self.layout.position_embedding else []
        modules = [n for n, m in self.lm.named_modules() if isinstance(m, nn.Embedding)]
        for name in _POSITION_NAMES:  # the shortest module path ending in a known name
            paths += sorted((n for n in modules if n == name or n.endswith("." + name)), key=len)[:1]
        for path in paths:
            try:
                t = _get(self.lm, path)
            except AttributeError:
                if path == self.layout.position_embedding:
                    msg = f"base: {SIDECAR}: position_embedding {path!r} is not a module of the model"
                    raise AblateError(msg) from None
                continue
            t = t.weight if isinstance(t, nn.Embedding) else t
            if isinstance(t, torch.Tensor):
                t = t.squeeze(0) if t.dim() == 3 else t
                if t.dim() == 2 and t.shape[0] >= self.layout.position_offset + self.prefix + self.seq_len:
                    return t
        return None

    # -- identity and cost -----------------------------------------------------------------------
    def weights_hash(self) -> str:
        """sha256 over the checkpoint's files (config, weights, ablate.json, local code): keys the shortcut cache."""
        if self.folder is None:
            raise AttributeError("weights_hash needs the checkpoint folder")
        h = hashlib.sha256()
        for p in sorted(self.folder.rglob("*")):  # sub-folders too: remote code may import its own package
            rel = p.relative_to(self.folder)
            if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                continue
            if p.is_file() and p.suffix in _HASHED_SUFFIXES and rel.as_posix() != "manifest.json":
                h.update(rel.as_posix().encode())
                h.update(file_digest(p, "sha256").encode())
        return h.hexdigest()

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- load-time checks ------------------------------------------------------------------------
    @torch.no_grad()
    def _find_head(self) -> tuple:
        """The LM head path whose output on the last hidden state reproduces the model's logits."""
        gen = torch.Generator().manual_seed(0)
        tokens = torch.randint(0, self.vocab_size + 1, (2, self.seq_len), generator=gen)
        labels = torch.tensor([0, self.null_label])
        dev = next(self.lm.parameters()).device
        out = self.lm(input_ids=self.input_ids(tokens.to(dev), labels.to(dev)), output_hidden_states=True,
                      return_dict=True)
        hidden, logits = out.hidden_states[-1], out.logits
        atol = 1e-4 * float(logits.abs().max()) + 1e-6

        def same(x):
            return x.shape == logits.shape and torch.allclose(x, logits, rtol=1e-4, atol=atol)

        candidates = [tuple(self.layout.head)] if self.layout.head else list(_HEAD_CANDIDATES)
        out_emb = self.lm.get_output_embeddings()
        tried = []
        for path in candidates:
            try:
                x = hidden
                for p in path:
                    x = _get(self.lm, p)(x)
            except AttributeError:
                if self.layout.head:
                    raise AblateError(f"base: {SIDECAR}: head {list(path)} is not a module path of the model") from None
                continue
            except Exception:  # a module that does not take the hidden state
                tried.append("+".join(path))
                continue
            tried.append("+".join(path))
            if same(x):
                return path
        if out_emb is not None and not self.layout.head:
            name = next((n for n, m in self.lm.named_modules() if m is out_emb), None)
            if name is not None:
                x = out_emb(hidden)
                tried.append(name)
                if same(x):
                    return (name,)
        raise AblateError(
            "base: no LM head of the model maps its last hidden state to its logits "
            f"(tried {', '.join(tried) or 'none'}); "
            f"name it in {SIDECAR} as \"head\": [\"dotted.module.path\", ...]"
        )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300]}" if text else type(e).__name__


def verify(folder: Path) -> None:
    """A folder written by `train-mlm` carries manifest.json with each file's sha256: check them."""
    path = folder / "manifest.json"
    if not path.is_file():
        return  # a user's own checkpoint: nothing to check against
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise AblateError(f"base: {path} is unreadable ({e})") from None
    for name, entry in manifest.get("files", {}).items():
        f = folder / name
        if not f.is_file() or file_digest(f, "sha256") != entry.get("sha256"):
            what = "is missing" if not f.is_file() else "fails its sha256 check"
            command = manifest.get("command", "python -m ablate train-mlm")
            raise AblateError(f"base: {f} {what}; rebuild with `{command}`")


def _has_own_code(folder: Path) -> bool:
    """config.json names classes of its own (auto_map), as remote-code models such as LLaDA do."""
    try:
        return bool(json.loads((folder / "config.json").read_text()).get("auto_map"))
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def load(path: str | Path, device: Optional[torch.device] = None) -> HFMaskedLM:
    """The adapter around the checkpoint in `path` (a folder, or a name under ablate/weights/), in eval mode."""
    folder = resolve_folder(str(path))
    layout = read_layout(folder)
    verify(folder)
    try:
        import transformers
        from transformers import AutoModelForMaskedLM
    except ImportError as e:  # pragma: no cover - transformers is a dependency
        raise AblateError(f"base: the transformers adapter needs the package transformers ({e})") from None
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        lm = AutoModelForMaskedLM.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=layout.trust_remote_code, dtype=torch.float32
        )
    except Exception as e:  # anything transformers raises: a broken folder, an unknown architecture, remote code
        hint = "" if layout.trust_remote_code or not _has_own_code(folder) else (
            ' (a model with its own code needs "trust_remote_code": true in ablate.json)'
        )
        raise AblateError(f"base: {folder} could not be loaded as a masked LM ({_first_line(e)}){hint}") from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    lm = lm.float().eval()
    if device is not None:
        lm = lm.to(device)
    return HFMaskedLM(lm, layout, folder)
