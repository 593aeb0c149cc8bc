"""Search spaces: YAML -> validated `SearchSpace` -> the trials it means.

Everything is checked before anything runs: unknown keys, wrong types, impossible budgets, empty
grids, unknown methods or knobs, objectives that are not measures. Errors are one line naming the
field (e.g. `grid[1].budget: 20 full steps cannot fit in 16 steps`).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator

from ablate import methods
from ablate.data import check_dataset
from ablate.errors import AblateError
from ablate.evaluate import EvalConfig
from ablate.metrics.measures import MEASURES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvalSettings(_Strict):
    n_samples: int = Field(1000, ge=2)
    extractor: Literal["classifier", "inception"] = "classifier"
    reference: Literal["held_out", "train"] = "held_out"  # FID's real images (held-out: never trained on)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    batch_size: int = Field(250, ge=1)
    amp: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # autocast; on a CPU only bf16 autocasts


ORDER = Literal["confidence", "halton"]


class SamplerSettings(_Strict):
    cfg_w: float = 1.0
    r_temp: float = 7.0
    sm_temp: float = 1.0
    unmasking: ORDER = "confidence"  # which masked positions a step commits first (every method)


class Resources(_Strict):
    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)


class Objective(_Strict):
    metric: str
    mode: Literal["min", "max"]

    @field_validator("metric")
    @classmethod
    def _is_measure(cls, v):
        if v not in MEASURES:
            raise ValueError(f"{v!r} is not a measure (one of {', '.join(MEASURES)})")
        return v


def _as_list(v):
    return v if isinstance(v, list) else [v]


class SamplerAxes(_Strict):
    """Sampler settings a grid block varies (each a value or a list: a grid axis); unset ones are the space's."""

    cfg_w: Optional[Union[float, list[float]]] = None
    r_temp: Optional[Union[float, list[float]]] = None
    sm_temp: Optional[Union[float, list[float]]] = None
    unmasking: Optional[Union[ORDER, list[ORDER]]] = None


class GridBlock(_Strict):
    """One method with a grid over its budget (or skip rate), knobs and sampler settings; lists are grid axes."""

    method: str
    steps: Optional[Union[int, list[int]]] = None
    budget: Optional[Union[int, list[int]]] = None
    skip_rate: Optional[Union[float, list[float]]] = None
    knobs: dict[str, Any] = Field(default_factory=dict)
    sampler: SamplerAxes = Field(default_factory=SamplerAxes)

    @field_validator("method")
    @classmethod
    def _known(cls, v):
        try:
            methods.get(v)  # a registered name, or module:Class (imported now, so it registers)
        except AblateError as e:
            raise ValueError(str(e).split(": ", 1)[1]) from None
        return v

    @model_validator(mode="after")
    def _one_budget_form(self):
        if self.budget is not None and self.skip_rate is not None:
            raise ValueError("give budget or skip_rate, not both")
        for name in ("steps", "budget", "skip_rate"):
            v = getattr(self, name)
            if isinstance(v, list) and not v:
                raise ValueError(f"{name}: empty list")
        for k, v in self.knobs.items():
            if isinstance(v, list) and not v:
                raise ValueError(f"knobs.{k}: empty list")
        for k, v in self.sampler:
            if isinstance(v, list) and not v:
                raise ValueError(f"sampler.{k}: empty list")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        """A block that varies no sampler setting dumps as before the axis existed (the space's hash stays)."""
        d = handler(self)
        if isinstance(d, dict) and not any(v is not None for v in (d.get("sampler") or {}).values()):
            d.pop("sampler", None)
        return d


class Distribution(_Strict):
    """One Optuna axis: exactly one of `choice: [...]`, `int: [lo, hi]`, `float: [lo, hi]` (+ `log`)."""

    choice: Optional[list[Any]] = None
    int_range: Optional[tuple[int, int]] = Field(None, alias="int")
    float_range: Optional[tuple[float, float]] = Field(None, alias="float")
    log: bool = False

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [k for k in ("choice", "int_range", "float_range") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of choice, int, float")
        if self.choice is not None and not self.choice:
            raise ValueError("choice: empty list")
        for k in ("int_range", "float_range"):
            lo_hi = getattr(self, k)
            if lo_hi is not None and lo_hi[0] > lo_hi[1]:
                raise ValueError(f"{k.split('_')[0]}: low {lo_hi[0]} > high {lo_hi[1]}")
        return self


class OptunaSettings(_Strict):
    method: str = "shortcut"
    num_samples: int = Field(20, ge=1)
    budget: Distribution
    knobs: dict[str, Distribution] = Field(default_factory=dict)
    seed: int = 0


class HalvingSettings(_Strict):
    """Multi-fidelity search over sample counts: every grid trial runs on rungs[0] samples; at each rung the best
    1/eta by Pareto rank (then crowding) within that rung go on to the next, keeping the samples they drew."""

    rungs: list[int] = Field(min_length=2)
    eta: float = Field(3.0, gt=1)
    # promotion: a lower rung computes only the objectives (their cost measures, FID; no KID, floor, feature error,
    # ...); all: every measure on every rung (as sweeps did before the setting existed)
    lower_rungs: Literal["promotion", "all"] = "promotion"

    @field_validator("rungs")
    @classmethod
    def _increasing(cls, v):
        if any(b <= a for a, b in zip(v, v[1:])) or v[0] < 2:
            raise ValueError(f"must increase from at least 2, got {v}")
        return v


class SearchSpace(_Strict):
    name: str
    dataset: str = "mnist"
    base: Optional[str] = None  # native (default) or hf:PATH, a local transformers masked LM (models/select.py)
    device: Literal["cpu", "cuda", "auto"] = "auto"  # auto: cuda when resources.gpu > 0, else cpu
    steps: int = Field(16, ge=1)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    sampler: SamplerSettings = Field(default_factory=SamplerSettings)
    resources: Resources = Field(default_factory=Resources)
    search: Literal["grid", "optuna", "halving"] = "grid"
    objectives: list[Objective] = Field(default_factory=lambda: [Objective(metric="fid", mode="min")], min_length=1)
    references: list[int] = Field(default_factory=list, description="vanilla step counts run as references")
    grid: list[GridBlock] = Field(default_factory=list)
    optuna: Optional[OptunaSettings] = None
    halving: Optional[HalvingSettings] = None

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, v):
        try:
            check_dataset(v)
        except AblateError as e:
            raise ValueError(str(e).split(": ", 1)[1]) from None
        return v

    @field_validator("base")
    @classmethod
    def _base(cls, v):
        from ablate.models.select import check_base

        try:
            return check_base(v)  # an absolute folder: Ray trials run in their own working directory
        except AblateError as e:
            raise ValueError(str(e).split(": ", 1)[1]) from None

    @model_validator(mode="after")
    def _gpu_when_cuda(self):
        if self.device == "cuda" and self.resources.gpu <= 0:
            raise ValueError("device: cuda needs resources.gpu > 0 (Ray hands a trial a GPU only when it asks for one)")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        """Fields added after sweeps were first run are left out at their defaults: the space's hash (what
        --resume finds the sweep by) stays what it was."""
        d = handler(self)
        if isinstance(d, dict):
            if d.get("base") is None:
                d.pop("base", None)
            if d.get("device") == "auto":
                d.pop("device", None)
            if isinstance(d.get("eval"), dict) and d["eval"].get("amp") == "auto":
                d["eval"].pop("amp", None)
            if isinstance(d.get("sampler"), dict) and d["sampler"].get("unmasking") == "confidence":
                d["sampler"].pop("unmasking", None)
            if isinstance(d.get("halving"), dict) and d["halving"].get("lower_rungs") == "promotion":
                d["halving"].pop("lower_rungs", None)
        return d

    def trial_device(self) -> str:
        """Where each trial runs: cuda when asked (or auto with a GPU share in resources), else cpu."""
        if self.device == "auto":
            return "cuda" if self.resources.gpu > 0 else "cpu"
        return self.device

    def trial_resources(self) -> dict:
        """What each trial asks Ray for; a cpu trial asks for no GPU share."""
        return {"cpu": self.resources.cpu, "gpu": self.resources.gpu if self.trial_device() == "cuda" else 0.0}

    @model_validator(mode="after")
    def _search_has_space(self):
        if self.search in ("grid", "halving") and not self.grid:
            raise ValueError(f"grid: empty grid (search: {self.search} needs at least one block)")
        if self.search == "halving":
            if self.halving is None:
                raise ValueError("halving: search: halving needs a halving section (rungs, eta)")
            r = self.halving.rungs
            if r[-1] != self.eval.n_samples:
                raise ValueError(f"halving.rungs: the last rung must be eval.n_samples ({self.eval.n_samples}), got {r[-1]}")
            if any(n % self.eval.batch_size for n in r[:-1]):
                raise ValueError(f"halving.rungs: every rung but the last must be a multiple of eval.batch_size "
                                 f"({self.eval.batch_size}), so a promoted trial keeps whole batches")
        if self.search == "optuna" and self.optuna is None:
            raise ValueError("optuna: search: optuna needs an optuna section")
        if self.search == "optuna" and len(self.eval.seeds) > 1:  # its trials are asked on the first seed only
            raise ValueError(f"eval.seeds: search: optuna runs each trial on one seed, got {self.eval.seeds}: give "
                             "one seed, or use search: grid or halving for several")
        if self.optuna is not None:
            b = self.optuna.budget
            ints = b.int_range if b.int_range is not None else b.choice or [0.5]
            if b.float_range is not None or not all(isinstance(x, int) for x in ints) or min(ints) < 1 or max(ints) > self.steps:
                raise ValueError(f"optuna.budget: must be integers within 1..{self.steps} (the steps)")
        return self

    def eval_config(self, method: str, steps: int, budget: Optional[int], knobs: dict, seed: int,
                    sampler: Optional[dict] = None) -> EvalConfig:
        """One trial: the space's settings, a block's sampler settings over them."""
        return EvalConfig(
            dataset=self.dataset, method=method, steps=steps, budget=budget, knobs=dict(knobs),
            n_samples=self.eval.n_samples, seed=seed, extractor=self.eval.extractor, reference=self.eval.reference,
            batch_size=self.eval.batch_size, base=self.base, device=self.trial_device(),
            amp=self.eval.amp, **(self.sampler.model_dump() | (sampler or {})),
        )


def _budget_of(block: GridBlock, steps: int, field: str) -> list[Optional[int]]:
    if block.skip_rate is not None:
        out = []
        for r in _as_list(block.skip_rate):
            if not 0 <= r < 1:
                raise AblateError(f"{field}.skip_rate: must lie in [0, 1), got {r}")
            out.append(max(1, round(steps * (1 - r))))
        return out
    return [None] if block.budget is None else _as_list(block.budget)


def grid_trials(space: SearchSpace, tuned: Optional[dict] = None) -> list[EvalConfig]:
    """Every (block, steps, budget, knob and sampler combination, seed), checked by building its accelerator; one
    trial per trial key (a vanilla reference may also appear in a block; a default given and one left out are one).

    tuned: {method: knobs} a tuning stage chose; a block's own knobs override them knob by knob."""
    from ablate.evaluate import trial_key

    trials: list[EvalConfig] = []
    for seed in space.eval.seeds:
        for n in space.references:
            trials.append(_checked(space, "references", "vanilla", n, None, {}, seed))
    for i, block in enumerate(space.grid):
        field = f"grid[{i}]"
        names = list(block.knobs)
        axes = [_as_list(block.knobs[k]) for k in names]
        s_names = [k for k, v in block.sampler if v is not None]
        s_axes = [_as_list(getattr(block.sampler, k)) for k in s_names]
        for steps in _as_list(block.steps if block.steps is not None else space.steps):
            for budget in _budget_of(block, steps, field):
                for combo in itertools.product(*axes):
                    for s_combo in itertools.product(*s_axes):
                        for seed in space.eval.seeds:
                            knobs = {**(tuned or {}).get(block.method, {}), **dict(zip(names, combo))}
                            trials.append(_checked(space, field, block.method, steps, budget, knobs, seed,
                                                   dict(zip(s_names, s_combo))))
    seen, unique = set(), []
    for t in trials:
        key = trial_key(t)
        if key not in seen:
            seen.add(key)
            unique.append(t)
    return unique


def _checked(space, field, method, steps, budget, knobs, seed, sampler=None) -> EvalConfig:
    from ablate.models.select import is_native

    try:
        methods.build(method, steps=steps, budget=budget, **knobs)
        methods.check_base_support(method, is_native(space.base), space.base)
    except AblateError as e:
        raise AblateError(f"{field}.{e}") from None
    return space.eval_config(method, steps, budget, knobs, seed, sampler)


def load_space(path: Union[str, Path], device: Optional[str] = None) -> SearchSpace:
    """Read and validate a YAML search space; a one-line AblateError names the first bad field.

    device (the sweep's --device) overrides the space's `device`.
    """
    path = Path(path)
    if not path.is_file():
        # a bare name: search_spaces/NAME.yaml here, or in the source checkout (editable install)
        for folder in (Path.cwd() / "search_spaces", Path(__file__).resolve().parents[2] / "search_spaces"):
            if (folder / f"{path}.yaml").is_file():
                path = folder / f"{path}.yaml"
                break
        else:
            raise AblateError(f"space: no search space {str(path)!r} (a YAML file, or a name in search_spaces/)")
    raw = read_mapping(path, "space")
    raw.setdefault("name", path.stem)
    return space_from_dict(raw, device)


def read_mapping(path: Path, what: str) -> dict:
    """A YAML file holding a mapping (a space, a study), or a one-line AblateError."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        raise AblateError(f"{what}: {path} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise AblateError(f"{what}: {path} must hold a mapping at the top level")
    return raw


def space_from_dict(raw: dict, device: Optional[str] = None) -> SearchSpace:
    """Validate a space given as a mapping (a YAML file's, or one written inline in a study)."""
    raw = dict(raw)
    if device is not None:
        raw["device"] = device
    try:
        space = SearchSpace.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = _loc(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise AblateError(f"{loc}: {msg}" if loc else msg) from None
    if space.search in ("grid", "halving"):
        grid_trials(space)  # budgets, knobs and methods checked now, before anything runs
    return space


def _loc(parts) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p in ("int", "float", "str", "bool", "list[int]", "list[float]") or "[" in str(p):
            continue  # pydantic's union branch names
        else:
            out += f".{p}" if out else str(p)
    return out
