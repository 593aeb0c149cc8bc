"""What a method is: one class per file that registers itself, with its knobs, its look and its cost.

The sampler owns the loop and talks to a method through `StepPolicy` (sampling/policy.py), which `Method`
implements. At every step it asks `is_full(state)`:
- full step: `full_step` runs the base model (default) and `observe`s the fresh feature, so the
  method can cache whatever it needs;
- other steps: `skip_step` returns (logits, feature) without the full model, however it likes.
Both branches of classifier-free guidance are stacked on the batch dimension: [cond; uncond].

A subclass that sets `name` is registered when its module is imported (as timm's models are), so the
CLI, search spaces, run names, MLflow and the report find it without any list kept by hand. Its knobs
are one pydantic model (`Knobs`, nested in the class): typed, with defaults, bounds and help text; the
knob's field name is its only name, from YAML to MLflow param to table. A method outside the package is
named by import path, `module:Class` (the module is imported, and so registers it).
"""

from __future__ import annotations

import importlib
from typing import ClassVar, Optional

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from ablate.errors import AblateError
from ablate.sampling.policy import StepState, confidence_top_k
from ablate.sampling.schedule import check_budget, full_steps


class Knobs(BaseModel):
    """A method's knobs: subclass with typed fields, defaults, bounds and `description=` help text."""

    model_config = ConfigDict(extra="forbid", frozen=True)


REGISTRY: dict[str, type["Method"]] = {}


class Method:
    name: ClassVar[str] = ""  # registered under this name; empty for abstract helpers
    label: ClassVar[str] = ""  # how figures and tables name it
    color: ClassVar[str] = "#8c564b"
    marker: ClassVar[str] = "X"
    rank: ClassVar[float] = 100  # order in tables and legends (vanilla 0)
    Knobs: ClassVar[type[Knobs]] = Knobs
    # True: cheap steps run the base model on some positions against cached K/V (forward(positions=,
    # kv_cache=, return_kv=)), which only a base with `supports_positions` offers (the native model).
    position_level: ClassVar[bool] = False
    # True: the method has weights of its own to load or train before sampling (`prepare`).
    learned: ClassVar[bool] = False
    # What its learned product's training data mean (bumped when that changes): part of every trial key and store
    # key of the method, so a change reruns its trials and retrains instead of serving the old product.
    training_format: ClassVar[Optional[int]] = None
    # True: which steps are full is decided while sampling, so the number of full steps varies per batch; a
    # trial then counts FLOPs and the ideal speedup from the full steps actually taken.
    adaptive: ClassVar[bool] = False
    # True: the number of steps varies per batch (a policy that commits faster than the schedule); a trial counts FLOPs
    # and the ideal speedup from the steps and full steps actually taken.
    variable_steps: ClassVar[bool] = False
    # True: a sample with nothing masked leaves the batch (the base no longer computes it), so the sampler records
    # each sample's own steps and FLOPs count a step over the images it computed.
    per_sample: bool = False

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.__dict__.get("name"):
            other = REGISTRY.get(cls.name)
            if other is not None and (other.__module__, other.__qualname__) != (cls.__module__, cls.__qualname__):
                raise AblateError(f"method: {cls.name!r} is defined twice ({other.__module__} and {cls.__module__})")
            REGISTRY[cls.name] = cls
            cls.label = cls.__dict__.get("label") or cls.name

    def __init__(self, steps: int, budget: Optional[int] = None, knobs: Optional[Knobs] = None):
        budget = steps if budget is None else budget
        check_budget(steps, budget)
        self.knobs = knobs if knobs is not None else self.Knobs()
        self.steps = steps  # what the sampler runs
        self.nominal_steps = steps  # N the method is compared at (step reduction runs fewer)
        self.budget = budget
        self.full = set(full_steps(steps, budget))
        self.steps_taken: list[int] = []  # per image, set by a trial where the steps vary
        self.full_taken: list[int] = []

    # -- the sampler's side ------------------------------------------------------------------
    def follow_sampler(self, cfg) -> None:
        """The sampler settings (`SamplerConfig`) this method will run under, before `prepare`: a learned
        method trains for them (the shortcut's teacher trajectories use its guidance)."""

    def prepare(self, model, log=print) -> None:
        """Load or train whatever the method learns (called before anything is timed)."""

    def begin(self, model, batch_size: int) -> None:
        """Called before each batch: drop any state carried from the previous one."""

    def is_full(self, state: StepState) -> bool:
        return state.step in self.full

    def full_step(self, model, state: StepState) -> tuple[torch.Tensor, torch.Tensor]:
        logits, feature = model(state.model_tokens(), state.model_labels())
        self.observe(state, logits, feature)
        return logits, feature

    def observe(self, state: StepState, logits: torch.Tensor, feature: torch.Tensor) -> None:
        """See the fresh full-step output (e.g. to cache it)."""

    def skip_step(self, model, state: StepState) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError(f"{self.name} has no cheap step")

    def commit(self, state: StepState, confidence: torch.Tensor, count: int) -> torch.Tensor:
        """Which still-masked positions take their sampled token: MaskGIT's `count` most confident (the
        sampler's protocol, sampling/policy.py; a method that decodes differently overrides it)."""
        return confidence_top_k(state, confidence, count)

    def num_params(self) -> int:
        """Parameters the method adds to the base model (a learned shortcut has some)."""
        return 0

    # -- its cost model -----------------------------------------------------------------------
    def cheap_step_cost(self, measured: float) -> float:
        """c: a cheap step's FLOPs over a full step's, from the one measured (vanilla and step reduction
        have no cheap steps: 0)."""
        return measured

    def ideal_speedup(self, measured_c: float) -> float:
        """N / (B + (N - B) c): the speedup over N full steps when N - B steps cost c of a full one each."""
        n, b = self.nominal_steps, self.budget
        if self.steps_taken:  # N / (F + (S - F) c) from the steps S and full steps F actually taken
            s, f = (sum(x) / len(x) for x in (self.steps_taken, self.full_taken))
            return n / (f + (s - f) * self.cheap_step_cost(measured_c))
        return n / (b + (n - b) * self.cheap_step_cost(measured_c))

    def describe(self) -> dict:
        """Everything the report needs of this method's run, so it never imports method code: name, N, B, every
        knob (defaults included), its full steps, and its look (label, colour, marker, rank)."""
        return {"method": self.name, "steps": self.nominal_steps, "budget": self.budget,
                "knobs": self.knobs.model_dump(mode="json"),
                "full_steps": sorted(self.full) if self.steps == self.nominal_steps else [],
                "label": self.label, "color": self.color, "marker": self.marker, "rank": self.rank}


def get(method: str) -> type[Method]:
    """The class of a registered name, or of `module:Class` (importing the module registers it)."""
    if ":" in method:
        module, _, attr = method.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise AblateError(f"method: cannot import {method!r} ({type(e).__name__}: {e})") from None
        if not (isinstance(cls, type) and issubclass(cls, Method) and cls.__dict__.get("name")):
            raise AblateError(f"method: {method!r} is not a registered Method subclass (it needs a `name`)")
        return cls
    if method not in REGISTRY:
        raise AblateError(f"method: unknown method {method!r}; choose one of {', '.join(sorted(REGISTRY))} "
                          "or name one outside the package as module:Class")
    return REGISTRY[method]


def source(method: str) -> Optional[str]:
    """`module:Class` of a method defined outside the package (what a Ray worker must import), else None."""
    cls = get(method)
    return None if cls.__module__.startswith("ablate.") else f"{cls.__module__}:{cls.__qualname__}"


def knobs(method: str, values: Optional[dict] = None) -> Knobs:
    """The method's validated knobs; a one-line AblateError names the first bad one."""
    cls = get(method)
    values = dict(values or {})
    allowed = list(cls.Knobs.model_fields)
    for k in values:
        if k not in allowed:
            raise AblateError(f"knob: method {cls.name} has no knob {k!r} (its knobs: {', '.join(allowed) or 'none'})")
    try:
        return cls.Knobs.model_validate(values)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise AblateError(f"{loc}: {msg}" if loc else msg) from None


def defaults(method: str) -> dict:
    return get(method).Knobs().model_dump(mode="json")


def build(method: str, steps: int, budget: Optional[int] = None, **values) -> Method:
    """The method with its knobs; budget None means every step is full."""
    cls = get(method)
    return cls(steps=steps, budget=budget, knobs=knobs(method, values))


def parse_knobs(items: list[str]) -> dict:
    """['order=2', 'use_tokens=false'] -> {'order': '2', ...}: strings that the method's Knobs model types."""
    out = {}
    for item in items:
        if "=" not in item:
            raise AblateError(f"--knob: expected NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k] = v
    return out


def check_base_support(method: str, native_base: bool, base_spec: Optional[str] = None) -> None:
    """Position-level methods need a base that runs only some positions against cached K/V (the native model)."""
    cls = get(method)
    if cls.position_level and not native_base:
        ok = ", ".join(n for n, c in sorted(REGISTRY.items()) if not c.position_level)
        raise AblateError(f"method: {cls.name} runs only some positions against cached K/V, which the transformers "
                          f"adapter ({base_spec}) does not offer; use {ok}")


def run_name(trial: dict) -> str:
    """The one readable name of a trial: method, N, B, then every knob given away from its default, sampler settings
    away from the sampler's defaults, then the seed: `shortcut-N16-B4-n_block=2-cfg_w=2-s1`. Run names, tables of benchmarks and logs all use it."""
    method = trial["method"]
    try:
        name = get(method).name  # module:Class -> the name it registered
    except AblateError:
        name = method
    parts = [name, f"N{trial['steps']}"]
    if trial.get("budget") is not None:
        parts.append(f"B{trial['budget']}")
    given = trial.get("knobs") or {}
    try:
        resolved, base = knobs(method, given).model_dump(mode="json"), defaults(method)
    except AblateError:  # a method this process cannot load: name it by what was given
        resolved, base = dict(given), {}
    for k in sorted(given):
        if k == "checkpoint" or (k in base and resolved[k] == base[k]):
            continue
        v = resolved[k]
        parts.append(f"{k}={str(v).lower() if isinstance(v, bool) else v}")
    from ablate.sampling.sampler import SamplerConfig

    for k in ("cfg_w", "r_temp", "sm_temp"):  # sampler settings away from the sampler's defaults
        if trial.get(k) is not None and float(trial[k]) != float(getattr(SamplerConfig, k)):
            parts.append(f"{k}={trial[k]:g}")
    if trial.get("unmasking", "confidence") != "confidence":
        parts.append(str(trial["unmasking"]))
    if trial.get("seed", 0):
        parts.append(f"s{trial['seed']}")
    return "-".join(str(p) for p in parts)
