"""One trial without Ray or MLflow: set it up, sample with a method and budget, measure quality and cost.

`setup` is the one place a trial's pieces are put together (bundle, base model on its device, method,
sampler, autocast): `eval`, `sample`, `train-shortcut`, the sweep's trials and the benchmarks all call it.
`evaluate` is what a sweep trial runs, so `python -m ablate eval` shows exactly what a trial logs.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch

import ablate
from ablate import methods, pretrained
from ablate.data import check_dataset, dataset_key, load_dataset
from ablate.device import autocast_dtype, check_device, check_precision, describe, resolve_device
from ablate.errors import AblateError
from ablate.metrics import cost, quality
from ablate.metrics.feature_error import feature_error
from ablate.models.select import check_base, is_native, load_base
from ablate.sampling import MaskGITSampler, SamplerConfig
from ablate.sampling.sampler import balanced_labels, batch_seed


@dataclass(frozen=True)
class EvalConfig:
    dataset: str = "mnist"
    method: str = "vanilla"
    steps: int = 16
    budget: Optional[int] = None
    knobs: dict = field(default_factory=dict)  # the method's own options
    n_samples: int = 1000
    seed: int = 0
    extractor: str = "classifier"
    batch_size: int = 250
    cfg_w: float = 1.0
    r_temp: float = 7.0
    sm_temp: float = 1.0
    flops_images: int = 2  # FLOPs per image do not depend on the batch; a small one is enough
    feature_error_images: int = 32
    base: Optional[str] = None  # None/"native": the dataset's MaskGIT; "hf:PATH": a transformers masked LM
    device: str = "cpu"  # cpu | cuda | cuda:N | auto
    precision: str = "auto"  # autocast on GPUs: auto (bf16, else fp16) | fp32 | bf16 | fp16; CPU runs fp32


def validate(cfg: EvalConfig) -> None:
    """Cheap checks first, so bad input fails before anything is loaded or computed."""
    check_dataset(cfg.dataset)
    quality.check_extractor(cfg.extractor)
    if cfg.n_samples < 2:
        raise AblateError(f"n_samples: need at least 2 samples for FID/KID, got {cfg.n_samples}")
    if cfg.batch_size < 1:
        raise AblateError(f"batch_size: must be at least 1, got {cfg.batch_size}")
    check_device(cfg.device)
    check_precision(cfg.precision)
    methods.check_base_support(cfg.method, is_native(cfg.base), cfg.base)
    methods.build(cfg.method, steps=cfg.steps, budget=cfg.budget, **cfg.knobs)  # bad knobs fail here, first


def save_pngs(images: torch.Tensor, labels: torch.Tensor, folder: Path) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, (img, label) in enumerate(zip(images, labels)):
        Image.fromarray(img[0].numpy(), mode="L").save(folder / f"{i:05d}_class{int(label)}.png")


@dataclass
class Setup:
    """The pieces of one trial, put together once (`setup`)."""

    cfg: EvalConfig
    device: torch.device
    method: methods.Method
    bundle: pretrained.Bundle
    base: torch.nn.Module
    amp: Optional[torch.dtype]
    sampler: MaskGITSampler  # runs method.steps (step_reduction: B of them)
    labels: torch.Tensor

    def vanilla_sampler(self) -> MaskGITSampler:
        """The unaccelerated sampler at the method's N (what feature errors compare against)."""
        c = self.cfg
        return MaskGITSampler(self.base, SamplerConfig(self.method.nominal_steps, c.cfg_w, c.r_temp, c.sm_temp),
                              amp_dtype=self.amp)

    def describe(self) -> dict:
        """The trial's full resolved description: method, every knob (defaults too), base model and its weights'
        digest, dataset and split, seeds, full steps and package versions (logged to MLflow with its measures)."""
        man = self.bundle.manifest
        if is_native(self.cfg.base):
            base_id, digest = f"native:{dataset_key(self.cfg.dataset)}", man["files"]["base.safetensors"]["sha256"]
        else:
            base_id, digest = self.cfg.base, self.base.weights_hash()
        return {
            **self.method.describe(),
            "base_id": base_id, "base_digest": digest,
            "dataset": self.cfg.dataset, "reference_split": f"train (held_out={man['config']['held_out']}, "
                                                             f"seed={man['config']['seed']})",
            "seed": self.cfg.seed,
            "versions": _versions(),
        }


def setup(cfg: EvalConfig, prepare: bool = True, log=print) -> Setup:
    """Validate, then load the bundle, put the base model on its device, build the method (loading or training
    what it learns when `prepare`) and its sampler."""
    validate(cfg)
    dev = resolve_device(cfg.device)
    method = methods.build(cfg.method, steps=cfg.steps, budget=cfg.budget, **cfg.knobs)
    bundle = pretrained.load(cfg.dataset)
    base = load_base(cfg.base, bundle, dev)  # the tokenizer and classifier stay on the CPU
    amp = autocast_dtype(dev, cfg.precision, base)
    sampler = MaskGITSampler(base, SamplerConfig(method.steps, cfg.cfg_w, cfg.r_temp, cfg.sm_temp), amp_dtype=amp)
    if prepare:
        method.prepare(base, log=log)
    return Setup(cfg, dev, method, bundle, base, amp, sampler, balanced_labels(cfg.n_samples, base.num_classes))


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "ablate": ablate.__version__}
    for pkg in ("torch", "torch-fidelity", "mlflow", "ray", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def evaluate(cfg: EvalConfig, save_samples: Optional[Path] = None, keep_images: bool = False) -> dict:
    """Every measure of one (method, steps, budget) on n_samples with a fixed seed.

    keep_images adds the uint8 samples and their labels (for sample grids) to the result.
    """
    t_start = time.perf_counter()
    st = setup(cfg)
    acc, base, bundle, sampler, labels, dev = st.method, st.base, st.bundle, st.sampler, st.labels, st.device

    # Warm-up (allocator, kernels), then every generation batch is timed.
    sampler.sample(labels[:2], torch.Generator().manual_seed(batch_seed(cfg.seed, 10**6)), acc)
    batch_times: list = []
    out = sampler.generate(labels, cfg.seed, cfg.batch_size, acc, batch_times=batch_times)
    images, decode_s = cost.timed(bundle.decode, out.tokens.cpu())

    flops = cost.count_flops(
        sampler, labels[: cfg.flops_images], torch.Generator().manual_seed(batch_seed(cfg.seed, 0)), acc
    )
    man = bundle.manifest["config"]
    reference = load_dataset(cfg.dataset).split(man["held_out"], seed=man["seed"])[0]
    tag = f"{dataset_key(cfg.dataset)}-train-s{man['seed']}-h{man['held_out']}"
    t_q = time.perf_counter()
    measures = quality.quality(images, reference.images, bundle, cfg.extractor, tag, device=dev)
    measures["class_acc"] = quality.class_accuracy(images, labels, bundle)
    quality_s = time.perf_counter() - t_q

    per_step = feature_error(st.vanilla_sampler(), labels[: cfg.feature_error_images], batch_seed(cfg.seed, 0), acc)
    latency = cost.median_ms_per_image(batch_times)
    flop_measures = flops.as_measures()
    measures.update(
        latency_ms_per_image=latency,
        images_per_s=1000.0 / latency,
        latency_batch_size=min(cfg.batch_size, cfg.n_samples),
        decode_ms_per_image=1000.0 * decode_s / len(images),
        **flop_measures,
        ideal_speedup=acc.ideal_speedup(flop_measures["accel_cost_ratio"]),
        params=cost.num_params(base) + acc.num_params(),
        base_params=cost.num_params(base),
        accel_params=acc.num_params(),
        sample_seconds=sum(s for s, _ in batch_times),
        quality_seconds=quality_s,
        feature_mse=_mean(per_step["feature_mse"]),
        feature_cos=_mean(per_step["feature_cos"]),
        shortcut_params=acc.num_params() if acc.learned else 0,
        train_seconds=float(getattr(acc, "meta", {}).get("stats", {}).get("train_seconds", 0.0)),
        eval_seconds=time.perf_counter() - t_start,
    )
    if save_samples is not None:
        save_pngs(images, labels, Path(save_samples))
    result = {
        "config": asdict(cfg),
        "description": st.describe(),
        "full_steps": out.full_steps,
        "device": describe(dev),
        "precision": str(st.amp).removeprefix("torch.") if st.amp is not None else "float32",
        "measures": measures,
        "per_step": per_step,
    }
    if keep_images:
        result["images"], result["labels"] = images, labels
    return result


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else None  # step_reduction: no step-by-step counterpart


def format_table(result: dict) -> str:
    rows = [(k, f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in result["measures"].items()]
    width = max(len(k) for k, _ in rows)
    c = result["config"]
    where = ", ".join(x for x in (c["extractor"], result.get("device"), result.get("precision"), c.get("base")) if x)
    head = f"{c['method']} N={c['steps']} B={c['budget'] or c['steps']} n={c['n_samples']} seed={c['seed']} ({where})"
    return "\n".join([head] + [f"  {k:<{width}}  {v}" for k, v in rows])
