"""Trained tokenizer + base model + evaluation classifier of a dataset: train, save, verify, load.

A bundle is a folder with three safetensors files and manifest.json (sha256 of each file, the
configs, the command and seed that rebuild it, and what it measured). Bundles are looked up in the
local cache first (`prepare --retrain` writes there), then among the weights shipped in the package.
Every file is checked against its sha256 before use: a wrong model is never used silently.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors.torch import load_file, save_file

import ablate
from ablate.data import dataset_key, load_dataset
from ablate.errors import AblateError
from ablate.hashing import file_digest
from ablate.models.classifier import Classifier, ClassifierConfig, train_classifier
from ablate.models.maskgit import MaskGIT, MaskGITConfig
from ablate.models.train import BaseTrainConfig, train_maskgit
from ablate.paths import SHIPPED_WEIGHTS, weights_dir
from ablate.tokenizer.vqvae import VQVAE, VQVAEConfig, train_vqvae

FILES = ("tokenizer.safetensors", "base.safetensors", "classifier.safetensors")


@dataclass(frozen=True)
class PrepareConfig:
    """Everything `prepare` trains, as data. Override fields with --set section.field=value."""

    seed: int = 0
    held_out: float = 0.2
    tokenizer: VQVAEConfig = field(default_factory=VQVAEConfig)
    base: MaskGITConfig = field(default_factory=MaskGITConfig)
    base_train: BaseTrainConfig = field(default_factory=BaseTrainConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)


# What a dataset's bundle trains differently from PrepareConfig's defaults, as --set lines (recorded in
# the manifest's config). mnist14: the scaling study's longer sequence as a real workload, 14x14 tokens
# (196) and a base twice as wide (d = 256, 8 heads; depth 12 as the shipped base). Meant for a GPU:
# `python -m ablate prepare --dataset mnist14 --device cuda` (minutes there; many hours on 2 CPU cores).
DATASET_DEFAULTS = {
    "mnist14": ["tokenizer.downsample=1", "base.dim=256", "base.heads=8", "base_train.steps=6000",
                "base_train.batch_size=128"],
}


def config_for(dataset: str, seed: int = 0, overrides: list[str] = ()) -> PrepareConfig:
    """PrepareConfig of `dataset`: the defaults, the dataset's own settings, then the user's --set lines."""
    return apply_overrides(PrepareConfig(seed=seed), DATASET_DEFAULTS.get(dataset_key(dataset), []) + list(overrides))


def apply_overrides(cfg: PrepareConfig, overrides: list[str]) -> PrepareConfig:
    """`section.field=value` (or `field=value` at top level), values parsed as the field's type."""
    for item in overrides:
        if "=" not in item:
            raise AblateError(f"--set: expected section.field=value, got {item!r}")
        key, raw = item.split("=", 1)
        parts = key.split(".")
        if len(parts) == 1:
            cfg = _replace_field(cfg, parts[0], raw, key)
        elif len(parts) == 2 and parts[0] in {f.name for f in dataclasses.fields(cfg)} and dataclasses.is_dataclass(
            getattr(cfg, parts[0])
        ):
            section = _replace_field(getattr(cfg, parts[0]), parts[1], raw, key)
            cfg = dataclasses.replace(cfg, **{parts[0]: section})
        else:
            raise AblateError(f"--set: unknown setting {key!r}")
    return cfg


def _replace_field(obj, name: str, raw: str, key: str):
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if name not in fields or dataclasses.is_dataclass(getattr(obj, name)):
        raise AblateError(f"--set: unknown setting {key!r}")
    kind = type(getattr(obj, name))
    try:
        value = kind(raw) if kind is not bool else raw.lower() in {"1", "true", "yes"}
    except ValueError:
        raise AblateError(f"--set: {key} expects {kind.__name__}, got {raw!r}") from None
    return dataclasses.replace(obj, **{name: value})


@dataclass
class Bundle:
    dataset: str
    tokenizer: VQVAE
    base: MaskGIT
    classifier: Classifier
    manifest: dict
    path: Path

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, L) -> uint8 images (B, 1, 28, 28)."""
        return (self.tokenizer.decode(tokens) * 255).round().clamp(0, 255).to(torch.uint8)


def sha256(path: Path) -> str:
    return file_digest(path, "sha256")


def _on_gpu(dataset: str) -> str:
    """Datasets with settings of their own (mnist14) are sized for a GPU: their hints say so."""
    return " --device cuda" if dataset_key(dataset) in DATASET_DEFAULTS else ""


def _retrain_hint(dataset: str) -> str:
    return f"rebuild with `python -m ablate prepare --dataset {dataset} --retrain{_on_gpu(dataset)}`"


def find(dataset: str) -> Optional[Path]:
    """The folder holding the bundle of `dataset` (cache first, then shipped), or None."""
    for folder in (weights_dir(dataset_key(dataset)), SHIPPED_WEIGHTS / dataset_key(dataset)):
        if (folder / "manifest.json").is_file():
            return folder
    return None


def verify(folder: Path, dataset: str) -> dict:
    """Check every file against the manifest's sha256; one-line AblateError naming the bad file."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise AblateError(f"weights: {folder / 'manifest.json'} is unreadable ({e}); {_retrain_hint(dataset)}") from None
    for name in FILES:
        path = folder / name
        if not path.is_file():
            raise AblateError(f"weights: {path} is missing; {_retrain_hint(dataset)}")
        expected = manifest.get("files", {}).get(name, {}).get("sha256")
        got = sha256(path)
        if got != expected:
            raise AblateError(
                f"weights: {path} fails its sha256 check (expected {str(expected)[:12]}..., got {got[:12]}...); "
                f"{_retrain_hint(dataset)}"
            )
    return manifest


def _load_state(path: Path) -> dict:
    return {k: v.float() for k, v in load_file(str(path)).items()}


def require(dataset: str) -> Path:
    """The bundle folder of `dataset`, or a one-line error saying how to build it."""
    folder = find(dataset)
    if folder is None:
        raise AblateError(
            f"weights: no trained models for dataset {dataset!r}; run `python -m ablate prepare --dataset {dataset}"
            f"{_on_gpu(dataset)}`"
        )
    return folder


def load(dataset: str = "mnist") -> Bundle:
    """The verified bundle of `dataset`; a clear error when there is none or it is damaged."""
    return _load_folder(dataset, require(dataset))


def _save(module: torch.nn.Module, path: Path) -> None:
    """fp16 on disk keeps the shipped files small; the saved file *is* the model (it is what we measure)."""
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path))


def prepare_command(dataset: str, out: Optional[Path], overrides: list[str], device=None) -> str:
    parts = ["python -m ablate prepare", f"--dataset {dataset}", "--retrain"]
    if out is not None:
        parts.append(f"--out {out}")
    if device is not None and str(device) != "cpu":
        parts.append(f"--device {device}")
    parts.append(f"--threads {torch.get_num_threads()}")
    parts += [f"--set {o}" for o in overrides]
    return " ".join(parts)


def train_bundle(
    dataset: str, cfg: PrepareConfig, out: Path, overrides: list[str] = (), log=print, device=None
) -> Bundle:
    """Train tokenizer, classifier and base model of `dataset` into `out` and write the manifest.

    `device` only speeds training up (a GPU); the saved files, and everything measured, are on the CPU.
    """
    data = load_dataset(dataset)
    train, held = data.split(cfg.held_out, seed=cfg.seed)
    if len(held) == 0 or len(train) == 0:
        raise AblateError(f"dataset: {dataset!r} has too few images to split ({len(data)})")
    tok_cfg = dataclasses.replace(cfg.tokenizer, seed=cfg.seed)
    cls_cfg = dataclasses.replace(cfg.classifier, num_classes=data.num_classes, seed=cfg.seed)
    base_train = dataclasses.replace(cfg.base_train, seed=cfg.seed)
    seconds = {}
    out.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    tokenizer = train_vqvae(train.images, tok_cfg, desc=f"{dataset}: tokenizer", device=device)
    seconds["tokenizer"] = time.perf_counter() - t
    _save(tokenizer, out / "tokenizer.safetensors")

    t = time.perf_counter()
    classifier = train_classifier(train.images, train.labels, cls_cfg, desc=f"{dataset}: classifier",
                                  device=device)
    seconds["classifier"] = time.perf_counter() - t
    _save(classifier, out / "classifier.safetensors")

    # The base model learns the tokens of the *saved* tokenizer, exactly what sampling decodes with.
    tokenizer = VQVAE(tok_cfg)
    tokenizer.load_state_dict(_load_state(out / "tokenizer.safetensors"))
    tokenizer.eval()
    codes = torch.cat([tokenizer.encode(train.as_float()[i : i + 500]) for i in range(0, len(train), 500)]).flatten(1)
    base_cfg = dataclasses.replace(
        cfg.base, vocab_size=tok_cfg.codebook_size, seq_len=codes.shape[1], num_classes=data.num_classes
    )
    t = time.perf_counter()
    base = train_maskgit(codes, train.labels, base_cfg, base_train, desc=f"{dataset}: base model", device=device)
    seconds["base"] = time.perf_counter() - t
    _save(base, out / "base.safetensors")

    cfg = dataclasses.replace(cfg, tokenizer=tok_cfg, base=base_cfg, base_train=base_train, classifier=cls_cfg)
    manifest: dict[str, Any] = {
        "dataset": dataset,
        "command": prepare_command(dataset, out, list(overrides), device),
        "seed": cfg.seed,
        "note": "bit-for-bit on the same torch version and thread count (float reductions depend on both)",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "train_device": str(device or "cpu"),
        "machine": platform.machine(),
        "ablate_version": ablate.__version__,
        "config": asdict(cfg),
        "files": {n: {"sha256": sha256(out / n), "bytes": (out / n).stat().st_size} for n in FILES},
        "train_seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    bundle = _load_folder(dataset, out)
    manifest["measured"] = measure_bundle(bundle, held)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    bundle.manifest = manifest
    log(f"{dataset}: wrote {out} ({json.dumps(manifest['measured'])})")
    return bundle


def _load_folder(dataset: str, folder: Path) -> Bundle:
    manifest = verify(folder, dataset)
    cfg = manifest["config"]
    tokenizer = VQVAE(VQVAEConfig(**cfg["tokenizer"]))
    tokenizer.load_state_dict(_load_state(folder / "tokenizer.safetensors"))
    base = MaskGIT(MaskGITConfig(**cfg["base"]))
    base.load_state_dict(_load_state(folder / "base.safetensors"))
    classifier = Classifier(ClassifierConfig(**cfg["classifier"]))
    classifier.load_state_dict(_load_state(folder / "classifier.safetensors"))
    for m in (tokenizer, base, classifier):
        m.eval().requires_grad_(False)
    return Bundle(dataset, tokenizer, base, classifier, manifest, folder)


@torch.no_grad()
def measure_bundle(bundle: Bundle, held) -> dict:
    """Held-out classifier accuracy, classifier accuracy on VQ reconstructions, codes in use."""
    x = held.as_float()
    codes = torch.cat([bundle.tokenizer.encode(x[i : i + 500]) for i in range(0, len(x), 500)])
    recon = bundle.decode(codes.flatten(1)).float() / 255.0
    return {
        "classifier_held_out_acc": round(bundle.classifier.accuracy(x, held.labels), 4),
        "reconstruction_class_acc": round(bundle.classifier.accuracy(recon, held.labels), 4),
        "codes_used_held_out": int(codes.unique().numel()),
        "held_out_images": len(held),
    }
