"""A study is one YAML file (studies/NAME.yaml): its question, the spaces its stages run, its store, how stages feed
each other, its claims as data and the analyses it writes. Validated like a space, before anything runs: an unknown
key, method or knob, or a claim whose variants no stage runs, stops with one line naming the field.

    name: claims_B4
    question: At B = 4 of N = 16, do the paper's claims about the shortcut hold on this model?
    store: results/runs/claims_B4.db
    stages:
      - space: claims_B4                  # a file in search_spaces/, or the space itself inline
        analyses: [report, small_sample]
    claims:
      - name: beats feature caching at equal full steps
        better: {method: shortcut}
        other: {method: feature_cache}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from ablate import methods
from ablate.errors import AblateError
from ablate.metrics.measures import MEASURES

ANALYSES = ("report", "tuning", "small_sample", "search_cost", "latency")
STUDIES = Path(__file__).resolve().parents[2] / "studies"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage(_Strict):
    """One sweep of the study and the analyses of its runs."""

    name: Optional[str] = None  # default: the space's name
    space: Union[str, dict[str, Any]]  # a name in search_spaces/, a YAML path, or the space inline
    experiment: Optional[str] = None  # default: the space's name
    store: Optional[str] = None  # default: the study's
    tuned_by: Optional[str] = Field(None, description="a tuning stage: every method runs at the knobs it chose, under "
                                                      "the knobs a grid block gives itself")
    analyses: list[Literal[ANALYSES]] = Field(default_factory=list)
    small: list[int] = Field(default_factory=lambda: [500], description="small_sample: the smaller sample counts")
    replay: Union[dict[str, Any], list[dict[str, Any]]] = Field(
        default_factory=dict, description="search_cost: rungs, eta, reps, live, score_seconds (what a run at a smaller "
                                          "count costs besides sampling and set-up); a list for several replays, "
                                          "each but the first with a `folder` of its own")
    latency: dict[str, Any] = Field(default_factory=lambda: {"rounds": 5, "batch_size": 100},
                                    description="latency: rounds and batch size of the interleaved timing")


class Variant(_Strict):
    """One side of a claim: a method at knobs (the tuning stage's choice under them where the stage is tuned), at the
    claim's budget unless it names its own (`budget: null` for vanilla at N is implied)."""

    method: str
    knobs: dict[str, Any] = Field(default_factory=dict)
    budget: Optional[int] = None
    sampler: dict[Literal["cfg_w", "r_temp", "sm_temp", "unmasking"], Union[float, str]] = Field(default_factory=dict)

    @field_validator("method")
    @classmethod
    def _known(cls, v):
        try:
            methods.get(v)
        except AblateError as e:
            raise ValueError(str(e).split(": ", 1)[1]) from None
        return v

    @model_validator(mode="after")
    def _knobs(self):
        try:
            methods.knobs(self.method, self.knobs)
        except AblateError as e:
            raise ValueError(str(e)) from None
        return self

    def text(self) -> str:
        knobs = ", ".join(f"{k}={v}" for k, v in {**self.knobs, **self.sampler}.items())
        return self.method + (f" ({knobs})" if knobs else "") + (f" at B = {self.budget}" if self.budget else "")


class Claim(_Strict):
    """What a claim says of its two variants, seed-paired, at each budget and on each measure:
    - `better` (default): the first is better than the second;
    - `no_loss`: the second is worse than the first by less than `margin` (non-inferiority, one-sided);
    - `equivalent`: they differ by less than `margin` either way (two one-sided tests), as "adds nothing" says.
    A margin is the claim's own, in the measure's units, chosen and justified (`why`) before the runs: an interval
    inside it HOLDS, anything else is NOT SHOWN (never "holds because nothing was significant")."""

    name: str
    better: Variant
    other: Variant
    measures: list[str] = Field(default_factory=lambda: ["fid", "token_agreement"], min_length=1)
    budgets: Optional[list[int]] = None  # default: every budget at which both variants ran
    at: Literal["budget", "equal_cost"] = Field(
        "budget", description="budget: paired at equal B (and at equal FLOPs where costs differ); equal_cost: only at "
                              "equal FLOPs, for a first variant with no budget to pair by (parallel decoding)")
    stage: Optional[str] = None  # default: the last stage
    family: Optional[str] = None  # for multiple testing (with each measure); default: the study's name
    kind: Literal["better", "no_loss", "equivalent"] = "better"
    margin: dict[str, float] = Field(default_factory=dict, description="no_loss/equivalent: measure -> margin")
    why: Optional[str] = Field(None, description="how the margin was chosen, before the runs")

    @field_validator("measures")
    @classmethod
    def _are_measures(cls, v):
        for m in v:
            if m not in MEASURES:
                raise ValueError(f"{m!r} is not a measure (one of {', '.join(MEASURES)})")
        return v

    @model_validator(mode="after")
    def _margins(self):
        if self.at == "equal_cost" and (self.kind != "better" or self.budgets):
            raise ValueError("at: a claim at equal FLOPs only is a `better` claim with no budgets")
        if self.kind == "better":
            if self.margin:
                raise ValueError("margin: only a no_loss or equivalent claim has one")
            return self
        missing = [m for m in self.measures if not (self.margin.get(m, 0) > 0)]
        if missing:
            raise ValueError(f"margin: a {self.kind} claim needs a positive margin for each of its measures "
                             f"(missing: {', '.join(missing)}), declared before the runs")
        if not self.why:
            raise ValueError(f"why: say how the margin of a {self.kind} claim was chosen (before the runs)")
        return self


class SeedPlan(_Strict):
    """Seeds as needed: every claim's variants run `min` seeds; while a claim is undecided (after correction, under
    a group-sequential test that spends alpha over the looks) its variants get one more seed, up to `max`."""

    min: int = Field(3, ge=2)
    max: int = Field(8, ge=2)
    until: Literal["decided"] = "decided"

    @model_validator(mode="after")
    def _order(self):
        if self.max < self.min:
            raise ValueError(f"max: {self.max} is below min {self.min}")
        return self


class Study(_Strict):
    name: str
    question: str = Field(min_length=1)
    store: Optional[str] = None  # default: the local store (runs/mlflow.db); committed studies: results/runs/NAME.db
    out: Optional[str] = None  # default: results/NAME
    stages: list[Stage] = Field(min_length=1)
    claims: list[Claim] = Field(default_factory=list)
    claims_title: Optional[str] = None  # the first line of claims.md (default: what the claims compare)
    alpha: float = Field(0.05, gt=0, lt=0.5, description="the error rate of each family of claims")
    correction: Literal["holm", "bh"] = Field("holm", description="holm (family-wise error) or bh (false discovery "
                                                                  "rate, Benjamini-Hochberg)")
    seeds: Optional[SeedPlan] = None
    _root: Path = PrivateAttr(default_factory=Path.cwd)  # relative paths (store, out) start here: the project root

    @property
    def root(self) -> Path:
        return self._root

    def path(self, p: str) -> Path:
        """A path of the study, relative to its project (the folder holding studies/), as the user wrote it."""
        return Path(p) if Path(p).is_absolute() else self._root / p

    @model_validator(mode="after")
    def _stages_refer(self):
        names = [s.stage_name for s in self.stage_objects()]
        if len(set(names)) != len(names):
            raise ValueError(f"stages: two stages named {next(n for n in names if names.count(n) > 1)!r}")
        for i, s in enumerate(self.stages):
            if s.tuned_by is not None:
                earlier = names[:i]
                if s.tuned_by not in earlier:
                    raise ValueError(f"stages[{i}].tuned_by: {s.tuned_by!r} is not an earlier stage "
                                     f"(earlier: {', '.join(earlier) or 'none'})")
                if "tuning" not in self.stages[names.index(s.tuned_by)].analyses:
                    raise ValueError(f"stages[{i}].tuned_by: stage {s.tuned_by!r} has no tuning analysis")
        for i, c in enumerate(self.claims):
            if c.stage is not None and c.stage not in names:
                raise ValueError(f"claims[{i}].stage: no stage {c.stage!r} (stages: {', '.join(names)})")
            if c.at == "equal_cost" and self.seeds is not None:
                raise ValueError(f"claims[{i}].at: a seed plan adds seeds at a claim's budget; a claim at equal "
                                 "FLOPs only has none (give the study fixed seeds)")
        return self

    def stage_objects(self) -> list["StageView"]:
        return [StageView(self, i) for i in range(len(self.stages))]

    def out_dir(self) -> Path:
        return self.path(self.out or f"results/{self.name}")

    def uri_of(self, store: Optional[str]) -> Optional[str]:
        """A store as MLflow names it: a URI as given, a file path as sqlite:///ABSOLUTE; None: the default store."""
        if store is None:
            return None
        if "://" in store:
            return store
        return f"sqlite:///{self.path(store).resolve()}"


class StageView:
    """A stage with its space loaded (validated as any space is)."""

    def __init__(self, study: Study, index: int):
        self.study, self.index, self.stage = study, index, study.stages[index]
        self.space = _space(self.stage.space, f"stages[{index}].space")
        self.stage_name = self.stage.name or self.space.name
        self.experiment = self.stage.experiment or self.space.name
        self.store = self.stage.store or study.store
        self.uri = study.uri_of(self.store)

    def out_dir(self) -> Path:
        """Where its analyses write: the study's folder, or a folder of its own when the study has several stages."""
        root = self.study.out_dir()
        return root if len(self.study.stages) == 1 else root / self.stage_name


def _space(spec, field: str):
    from ablate.sweep.space import load_space, space_from_dict

    try:
        if isinstance(spec, dict):
            if "name" not in spec:
                raise AblateError("name: an inline space needs a name (its MLflow experiment)")
            return space_from_dict(spec)
        return load_space(spec)
    except AblateError as e:
        raise AblateError(f"{field}.{e}" if not str(e).startswith("space:") else f"{field}: {str(e)[7:]}") from None


def find(name: str) -> Path:
    """studies/NAME.yaml here or in the source checkout, or a path."""
    path = Path(name)
    if path.is_file():
        return path
    for folder in (Path.cwd() / "studies", STUDIES):
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    known = sorted(p.stem for p in STUDIES.glob("*.yaml")) if STUDIES.is_dir() else []
    raise AblateError(f"study: no study {name!r} (a YAML file, or a name in studies/: {', '.join(known) or 'none'})")


def studies(checkable: bool = False) -> list[str]:
    """Every study in studies/ (`checkable`: those whose committed manifest says their outputs were made by the
    study from a committed store, not historical records awaiting a rerun)."""
    import json

    names = sorted(p.stem for p in STUDIES.glob("*.yaml")) if STUDIES.is_dir() else []
    if checkable:
        keep = []
        for n in names:
            man = load_study(n).out_dir() / "manifest.json"
            if man.is_file() and json.loads(man.read_text()).get("checkable"):
                keep.append(n)
        names = keep
    return names


def load_study(name: str) -> Study:
    """Read and validate a study; a one-line AblateError names the first bad field."""
    from ablate.sweep.space import read_mapping

    path = find(name)
    raw = read_mapping(path, "study")
    raw.setdefault("name", path.stem)
    try:
        study = Study.model_validate(raw)
        study._root = (path.resolve().parent.parent if path.resolve().parent.name == "studies"
                       else path.resolve().parent)
    except ValidationError as e:
        from ablate.sweep.space import _loc

        err = e.errors()[0]
        loc = _loc(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise AblateError(f"{loc}: {msg}" if loc else msg) from None
    return study
