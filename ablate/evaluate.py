"""One trial without Ray or MLflow: set it up, sample with a method and budget, measure quality and cost.

`setup` is the one place a trial's pieces are put together (bundle, base model on its device, method,
sampler, autocast): `eval`, `sample`, `train-shortcut`, the sweep's trials and the benchmarks all call it.
`evaluate` is what a sweep trial runs, so `python -m ablate eval` shows exactly what a trial logs.
"""

from __future__ import annotations

import json
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
from ablate.models.select import is_native, load_base
from ablate.sampling import MaskGITSampler, SamplerConfig
from ablate.sampling.sampler import balanced_labels, batch_seed
from ablate.sampling.schedule import ORDERS


REFERENCES = ("held_out", "train")
PREFIXES = (250, 500, 1000)  # smaller sample counts scored from the first images of the same run


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
    reference: str = "held_out"  # FID's real images: held_out (never seen by the base or the classifier) | train
    batch_size: int = 250
    cfg_w: float = 1.0
    r_temp: float = 7.0
    sm_temp: float = 1.0
    flops_images: int = 2  # FLOPs per image do not depend on the batch; a small one is enough
    feature_error_images: int = 32
    base: Optional[str] = None  # None/"native": the dataset's MaskGIT; "hf:PATH": a transformers masked LM
    device: str = "cpu"  # cpu | cuda | cuda:N | auto
    amp: str = "auto"  # autocast: auto (GPU: bf16, else fp16; CPU: fp32) | fp32 | bf16 (GPU or CPU) | fp16 (GPU)
    reuse_samples: bool = False  # keep each generated batch in the store; a larger run of the same trial reuses them
    unmasking: str = "confidence"  # which masked positions a step commits first: confidence | halton
    # "all", or the comma-separated measures the run must give (a halving sweep's lower rungs: what promotion
    # compares); the cost measures are always given, the rest of the scoring and the feature error only if asked
    measures: str = "all"


KEY_VERSION = 2  # how trial keys are derived (1: the trial as given, defaults dropped; runs logged so are read back)


def trial_identity(trial) -> dict:
    """What makes two trials the same trial: every field of its EvalConfig (every sampler setting among them), the
    method's knobs resolved to their values (a default given and one left out are one trial), the precision it runs
    at (a CPU trial runs fp32 unless `amp` is bf16) and a learned method's training format (a change of what its
    training data mean reruns its trials). The one place a trial's identity is derived: `trial_key` hashes it for
    --resume, the tracker tags it, sweeps and studies match runs by it."""
    cfg = trial if isinstance(trial, EvalConfig) else EvalConfig(**trial)
    d = asdict(cfg)
    cls = methods.get(cfg.method)
    d["knobs"] = methods.knobs(cfg.method, cfg.knobs).model_dump(mode="json")
    d["base"] = None if cfg.base in (None, "", "native") else cfg.base
    d["amp"] = ("bf16" if cfg.amp == "bf16" else "fp32") if cfg.device == "cpu" else cfg.amp
    d["training_format"] = cls.training_format
    return d


def trial_key(trial) -> str:
    """The trial's resume key: a hash of `trial_identity`."""
    from ablate.store import config_hash

    return config_hash(trial_identity(trial))[:16]


# Measures a trial computes in parts that cost time; a run asked for some `measures` computes only the parts they
# need (the cost measures, FID of the reference split's images and the features under it are always computed).
SCORING_PARTS = {
    "kid": ("kid_mean", "kid_std"),
    "prc": ("precision", "recall"),
    "splits": tuple(f"{k}_{s}" for s in REFERENCES for k in ("fid", "kid_mean")),
    "prefixes": tuple(f"{k}_n{n}" for n in PREFIXES for k in ("fid", "kid_mean")),
    "floor": ("floor_fid", "floor_kid_mean", "floor_precision", "floor_recall"),
    "class_acc": ("class_acc",),
    "paired": ("token_agreement", "psnr", "ssim", "paired_feature_dist"),
    "feature_error": ("feature_mse", "feature_cos"),
}


def parts_needed(cfg: EvalConfig) -> set[str]:
    """The SCORING_PARTS a run computes (all of them unless it names its `measures`)."""
    if cfg.measures == "all":
        return set(SCORING_PARTS)
    asked = set(cfg.measures.split(","))
    return {part for part, names in SCORING_PARTS.items() if asked & set(names)}


def check_measures(value: str) -> None:
    from ablate.metrics.measures import MEASURES

    if value == "all":
        return
    known = set(MEASURES) | {n for names in SCORING_PARTS.values() for n in names}
    bad = [n for n in value.split(",") if n not in known]  # (no spaces: the value is part of the trial's key)
    if bad:
        raise AblateError(f"measures: unknown measure {bad[0]!r}; give all or comma-separated measures "
                          f"({', '.join(sorted(known))})")


def validate(cfg: EvalConfig) -> None:
    """Cheap checks first, so bad input fails before anything is loaded or computed."""
    check_measures(cfg.measures)
    check_dataset(cfg.dataset)
    quality.check_extractor(cfg.extractor)
    if cfg.reference not in REFERENCES:
        raise AblateError(f"reference: must be one of {', '.join(REFERENCES)}, got {cfg.reference!r}")
    if cfg.n_samples < 2:
        raise AblateError(f"n_samples: need at least 2 samples for FID/KID, got {cfg.n_samples}")
    if cfg.batch_size < 1:
        raise AblateError(f"batch_size: must be at least 1, got {cfg.batch_size}")
    check_device(cfg.device)
    check_precision(cfg.amp)
    if cfg.unmasking not in ORDERS:
        raise AblateError(f"unmasking: unknown order {cfg.unmasking!r}; choose {' or '.join(ORDERS)}")
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
        return MaskGITSampler(self.base, SamplerConfig(self.method.nominal_steps, c.cfg_w, c.r_temp, c.sm_temp,
                                                       unmasking=c.unmasking),
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
            "dataset": self.cfg.dataset,
            "reference_split": f"{self.cfg.reference} (held-out share {man['config']['held_out']}, "
                               f"split seed {man['config']['seed']})",
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
    amp = autocast_dtype(dev, cfg.amp, base)
    sampler = MaskGITSampler(base, SamplerConfig(method.steps, cfg.cfg_w, cfg.r_temp, cfg.sm_temp, unmasking=cfg.unmasking),
                             amp_dtype=amp)
    method.follow_sampler(sampler.cfg)
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
    setup_s = time.perf_counter() - t_start
    acc, base, bundle, sampler, labels, dev = st.method, st.base, st.bundle, st.sampler, st.labels, st.device

    # Warm-up (allocator, kernels), then every generation batch is timed.
    sampler.sample(labels[:2], torch.Generator().manual_seed(batch_seed(cfg.seed, 10**6)), acc)
    batch_times: list = []
    out = _generate(st, batch_times)
    images, decode_s = cost.timed(bundle.decode, out.tokens.cpu())

    flops = cost.count_flops(
        sampler, labels[: cfg.flops_images], torch.Generator().manual_seed(batch_seed(cfg.seed, 0)), acc
    )
    t_q = time.perf_counter()
    measures = quality_measures(st, images, out.tokens.cpu())
    quality_s = time.perf_counter() - t_q

    per_step = (feature_error(st.vanilla_sampler(), labels[: cfg.feature_error_images], batch_seed(cfg.seed, 0), acc)
                if "feature_error" in parts_needed(cfg) else {"feature_mse": [], "feature_cos": []})
    latency = cost.median_ms_per_image(batch_times)
    flop_measures = flops.as_measures()
    if acc.adaptive or acc.variable_steps:  # steps vary per batch: count those taken, not the 2-image FLOPs run's
        # a batch's steps, or each sample's where finished samples left the batch (a list): its full steps are those
        # before its last
        per_image = [(f, k) for f, n, ks in out.batches for k in (ks if isinstance(ks, list) else [ks] * n)]
        acc.full_taken = [sum(1 for x in f if x < k) for f, k in per_image]
        f = sum(acc.full_taken) / len(acc.full_taken)
        s = float(acc.nominal_steps)
        if acc.variable_steps:
            acc.steps_taken = [k for _, k in per_image]
            s = sum(acc.steps_taken) / len(acc.steps_taken)
            measures["steps_mean"] = s
        flop_measures["gflops_per_image"] = (f * flop_measures["gflops_full_step"]
                                             + (s - f) * flop_measures["gflops_accel_step"])
        measures["full_steps_mean"] = f
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
        sampled_images=sum(n for _, n in batch_times),  # fewer than n_samples where stored batches were reused
        **prefix_seconds(batch_times, cfg.n_samples),
        # Scoring; it also holds the unaccelerated run when the store lacks it, and the floor's score for the
        # first run of a sample count (later runs read it), so compare it across runs of one sweep.
        quality_seconds=quality_s,
        feature_mse=_mean(per_step["feature_mse"]),
        feature_cos=_mean(per_step["feature_cos"]),
        shortcut_params=acc.num_params() if acc.learned else 0,
        train_seconds=float(getattr(acc, "meta", {}).get("stats", {}).get("train_seconds", 0.0)),
        setup_seconds=setup_s,  # loading, building, and training a learned method's model when the store lacks it
        eval_seconds=time.perf_counter() - t_start,
    )
    if save_samples is not None:
        save_pngs(images, labels, Path(save_samples))
    result = {
        "config": asdict(cfg),
        "description": st.describe(),
        "full_steps": out.full_steps,
        "device": describe(dev),
        "amp": str(st.amp).removeprefix("torch.") if st.amp is not None else "float32",
        "measures": measures,
        "per_step": per_step,
    }
    if keep_images:
        result["images"], result["labels"] = images, labels
    return result


def prefix_seconds(batch_times: list, n_samples: int) -> dict:
    """Sampling seconds of the first 250 / 500 / 1,000 images (`sample_seconds_n500`, ...): what a smaller run of the
    same trial costs, for replaying searches over sample counts. Only when every batch was sampled here."""
    if sum(n for _, n in batch_times) != n_samples:
        return {}
    out = {}
    for n in PREFIXES:
        if n < n_samples:
            seen, secs = 0, 0.0
            for s, k in batch_times:
                secs += s * max(0, min(k, n - seen)) / k
                seen += k
            out[f"sample_seconds_n{n}"] = secs
    return out


def quality_measures(st: Setup, images: torch.Tensor, tokens: torch.Tensor) -> dict:
    """Every quality measure of one run's images (those its `measures` need), from one feature extraction of them:
    - fid, kid_mean, kid_std, precision, recall against the chosen reference split, and fid/kid_mean against
      each split by name (`fid_held_out`, `fid_train`);
    - the same at smaller sample counts, from the first 250 / 500 / 1,000 images (`fid_n500`, ...);
    - the real-vs-real floor: as many real images of the other split, scored against the reference
      (`floor_fid`, ...): what a perfect generator would get at this sample count;
    - class accuracy, and paired fidelity to the unaccelerated run of the same seeds and labels (token
      agreement, PSNR, SSIM, paired feature distance), except for methods that run another number of steps
      (step reduction consumes other noise: distribution measures only)."""
    cfg, bundle, dev = st.cfg, st.bundle, st.device
    need = parts_needed(cfg)
    man = bundle.manifest["config"]
    train, held = load_dataset(cfg.dataset).split(man["held_out"], seed=man["seed"])
    splits = {"held_out": held, "train": train}
    other = splits["train" if cfg.reference == "held_out" else "held_out"]
    feats = quality.features(images, bundle, cfg.extractor, dev)
    ref_feats = {name: quality.reference_features(s.images, bundle, cfg.extractor, dev) for name, s in splits.items()}
    m = quality.score(feats, ref_feats[cfg.reference], prc="prc" in need,
                      with_kid="kid" in need or "splits" in need)
    for name in splits if "splits" in need else ():  # the reference split's are the scores just computed
        s = m if name == cfg.reference else quality.score(feats, ref_feats[name], prc=False)
        m |= {f"{k}_{name}": s[k] for k in ("fid", "kid_mean")}
    for n in PREFIXES if "prefixes" in need else ():
        if n < len(images):
            m |= {f"{k}_n{n}": v for k, v in quality.score(feats[:n], ref_feats[cfg.reference], prc=False).items()
                  if k != "kid_std"}
    if "floor" in need:
        pick = torch.randperm(len(other), generator=torch.Generator().manual_seed(0))[: len(images)]
        floor = quality.reference_features(other.images[pick], bundle, cfg.extractor, dev)
        m |= {f"floor_{k}": v for k, v in quality.real_score(floor, ref_feats[cfg.reference]).items() if k != "kid_std"}
    if "class_acc" in need:
        m["class_acc"] = quality.class_accuracy(images, st.labels, bundle)
    if "kid" not in need:  # computed for the splits' entries only
        m.pop("kid_mean", None), m.pop("kid_std", None)
    if "paired" in need and st.method.steps == st.method.nominal_steps:
        van_tokens = vanilla_tokens(st, tokens if st.method.name == "vanilla" else None)
        van_images = bundle.decode(van_tokens)
        van_feats = feats if st.method.name == "vanilla" else quality.features(van_images, bundle, cfg.extractor, dev)
        m |= quality.paired(images, van_images, feats, van_feats, tokens, van_tokens)
    return m


def _generate(st: Setup, batch_times: list):
    """Every batch of the trial; with `reuse_samples`, batches already in the store (drawn by a smaller run of the
    same trial: batch j always has seed (seed, j) and the same labels) are loaded instead of sampled again, and
    new ones are stored. Only sampled batches are timed."""
    cfg = st.cfg
    if not cfg.reuse_samples:
        return st.sampler.generate(st.labels, cfg.seed, cfg.batch_size, st.method, batch_times=batch_times)
    from safetensors.torch import load_file, save_file

    from ablate import store
    from ablate.sampling.sampler import SampleOutput

    trial = {k: v for k, v in asdict(cfg).items() if k not in ("n_samples", "reuse_samples", "measures")}
    desc = {k: v for k, v in st.describe().items() if k != "versions"}
    known, keys = {}, {}
    for j, start in enumerate(range(0, cfg.n_samples, cfg.batch_size)):
        keys[j] = {"trial": trial, "description": desc, "batch": j, "images": min(cfg.batch_size, cfg.n_samples - start)}
        folder = store.lookup("sample_batches", keys[j])
        if folder is not None:
            d = load_file(str(folder / "batch.safetensors"))
            known[j] = SampleOutput(d["tokens"], d["order"], json.loads((folder / "full.json").read_text()))
    out = st.sampler.generate(st.labels, cfg.seed, cfg.batch_size, st.method, batch_times=batch_times, known=known)
    for j, start in enumerate(range(0, cfg.n_samples, cfg.batch_size)):
        if j in known:
            continue
        sl = slice(start, start + cfg.batch_size)

        def build(folder: Path, sl=sl):
            save_file({"tokens": out.tokens[sl].cpu().contiguous(), "order": out.order[sl].cpu().contiguous()},
                      str(folder / "batch.safetensors"))
            (folder / "full.json").write_text(json.dumps(out.batches[j][0]))  # steps taken: read from `order`

        store.get_or_build("sample_batches", keys[j], build, log=lambda *_: None)
    return out


def vanilla_tokens(st: Setup, own: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The unaccelerated run's tokens for this trial's seed, labels, sample count and batches: a store entry made
    once (by the vanilla trial itself, from its own samples, when it runs first; else sampled here, outside the
    sampling timers but inside `quality_seconds`, which then includes one unaccelerated run)."""
    from safetensors.torch import load_file, save_file

    from ablate import store
    from ablate.shortcut.cache import base_hash

    c = st.cfg
    key = {"base": base_hash(st.base), "dataset": c.dataset, "steps": st.method.nominal_steps, "cfg_w": c.cfg_w,
           "r_temp": c.r_temp, "sm_temp": c.sm_temp, "unmasking": c.unmasking, "seed": c.seed, "n_samples": c.n_samples,
           "batch_size": c.batch_size, "device": st.device.type, "amp": str(st.amp)}

    def build(folder: Path):
        tokens = own
        if tokens is None:
            print(f"sampling the unaccelerated run of seed {c.seed} ({c.n_samples} images) for paired measures; "
                  "cached after")
            tokens = st.vanilla_sampler().generate(st.labels, c.seed, c.batch_size).tokens.cpu()
        save_file({"tokens": tokens.contiguous()}, str(folder / "tokens.safetensors"))

    return load_file(str(store.get_or_build("vanilla_samples", key, build) / "tokens.safetensors"))["tokens"]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else None  # step_reduction: no step-by-step counterpart


def format_table(result: dict) -> str:
    rows = [(k, f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in result["measures"].items()]
    width = max(len(k) for k, _ in rows)
    c = result["config"]
    where = ", ".join(x for x in (c["extractor"], result.get("device"), result.get("amp"), c.get("base")) if x)
    head = f"{c['method']} N={c['steps']} B={c['budget'] or c['steps']} n={c['n_samples']} seed={c['seed']} ({where})"
    return "\n".join([head] + [f"  {k:<{width}}  {v}" for k, v in rows])
