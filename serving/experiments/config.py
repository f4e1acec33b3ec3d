"""The experiments file (serving/experiments.yaml) as typed settings: one versioned file, validated when loaded.

An experiment splits users between arms by a hash of the user id and its salt (assignment.py); experiments in
different layers are independent, at most one experiment of a layer runs at a time. An arm changes one thing: the
model (``model_tag``), the business rules (``rules: false``, or another ``rules_file``), or interleaves two models'
lists (``interleave: [tagA, tagB]``, team draft: interleaving.py). An arm that names nothing serves the champion;
``model_tag: popularity`` serves the popularity order as a model (popularity.py).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import yaml  # type: ignore[import-untyped]
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$", min_length=1, max_length=64)]
# Traffic shares may be written as decimals (0.333...): they must sum to 1 within this tolerance.
SHARE_TOLERANCE = 1e-6


class ExperimentConfigError(ValueError):
    """The experiments file is invalid; the message names the field (e.g. ``experiments.0.arms.1.model_tag``)."""


class Arm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    share: float = Field(gt=0, le=1)
    model_tag: str | None = None
    rules: bool = True
    rules_file: Path | None = None
    interleave: tuple[str, str] | None = None

    @model_validator(mode="after")
    def _one_ranker(self) -> Arm:
        if self.interleave is not None and self.model_tag is not None:
            raise ValueError("an arm either interleaves two models or serves one model_tag, not both")
        return self

    def model_tags(self) -> list[str]:
        return [*(self.interleave or ()), *([self.model_tag] if self.model_tag else [])]


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    layer: Name = "default"
    salt: str = Field(min_length=1)
    arms: list[Arm] = Field(min_length=2)
    start: AwareDatetime | None = None
    stop: AwareDatetime | None = None

    @field_validator("arms")
    @classmethod
    def _shares_and_names(cls, arms: list[Arm]) -> list[Arm]:
        total = sum(arm.share for arm in arms)
        if abs(total - 1) > SHARE_TOLERANCE:
            raise ValueError(f"traffic shares sum to {total:g}, not 1")
        names = [arm.name for arm in arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        return arms

    @model_validator(mode="after")
    def _window(self) -> Experiment:
        if self.start and self.stop and self.stop <= self.start:
            raise ValueError("stop must be after start")
        return self

    def running(self, now: datetime) -> bool:
        return (self.start is None or self.start <= now) and (self.stop is None or now < self.stop)

    @property
    def control(self) -> Arm:
        """The first arm: the analysis compares every other arm with it."""
        return self.arms[0]


class ExperimentsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str
    experiments: list[Experiment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> ExperimentsConfig:
        names = [e.name for e in self.experiments]
        if len(set(names)) != len(names):
            raise ValueError(f"experiments: names must be unique, got {names}")
        salts = [e.salt for e in self.experiments]
        if len(set(salts)) != len(salts):
            raise ValueError("experiments: every experiment needs its own salt (a shared salt correlates them)")
        for i, a in enumerate(self.experiments):
            for b in self.experiments[i + 1 :]:
                if a.layer == b.layer and _overlap(a, b):
                    raise ValueError(f"experiments: {a.name} and {b.name} share layer {a.layer} at the same time")
        return self

    def model_tags(self) -> dict[str, str]:
        """Every model tag an arm names, with the field that names it (for errors)."""
        tags: dict[str, str] = {}
        for i, experiment in enumerate(self.experiments):
            for j, arm in enumerate(experiment.arms):
                if arm.model_tag:
                    tags.setdefault(arm.model_tag, f"experiments.{i}.arms.{j}.model_tag")
                for n, tag in enumerate(arm.interleave or ()):
                    tags.setdefault(tag, f"experiments.{i}.arms.{j}.interleave.{n}")
        return tags


def _overlap(a: Experiment, b: Experiment) -> bool:
    """Whether the two experiments' [start, stop) windows meet (no start/stop: unbounded)."""
    a_before_b = a.stop is not None and b.start is not None and a.stop <= b.start
    b_before_a = b.stop is not None and a.start is not None and b.stop <= a.start
    return not (a_before_b or b_before_a)


def load_experiments(path: Path, state_file: Path | None = None) -> ExperimentsConfig:
    """The file's experiments; a missing file is an empty config. Invalid: ExperimentConfigError naming the field.

    ``state_file`` (settings.experiments_state_file, written by `shoprank experiment start|stop`): the start/stop
    operators recorded replace the declared ones before validation, so a start that would overlap another experiment
    of the same layer is refused like a file that declares it."""
    path = Path(path)
    if not path.exists():
        return ExperimentsConfig(version="none")
    from pydantic import ValidationError

    from serving.experiments.lifecycle import apply_state

    try:
        return ExperimentsConfig.model_validate(apply_state(yaml.safe_load(path.read_text()), state_file))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<file>'}: {e['msg']}" for e in exc.errors())
        raise ExperimentConfigError(f"{path.name}: {problems}") from None
