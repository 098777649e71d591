"""Studies beyond the report. Each study is a module here with the same small interface.

A study module defines:

- `TITLE`: the chapter's short title;
- `conditions(profile) -> list[str]`: the settings it compares (noise rates, temperatures...),
  each a docname-safe slug;
- `run(profile, condition, directory) -> list[dict]`: computes one condition, writes one JSON
  record per run under `directory` (atomically, resuming what is done) and returns them;
- `is_done(profile, condition, directory) -> bool`: True when every run of the condition has
  a record under `directory` whose config matches what `run` would train now; the sweep skips
  a condition that is done and whose run page exists, so a rebuild from committed results
  trains nothing;
- `summary(records) -> pandas.DataFrame`: the table shown on the condition's run page;
- optionally `datasets(profile, condition) -> set[str]`: the datasets
  (`kdutils.distill.data.DATASETS`) the condition trains on, when not only `profile.dataset`.
  The build checks they can be found before it starts (`kdutils.preflight`).

`python -m kdutils.sweep --profile P --study NAME` executes `notebooks/study_run.md` once per
condition with papermill; the executed notebook becomes the page
`book/runs/<profile>/<study>-<condition>.ipynb`. The study's chapter only reads the records.
A study that reruns the alpha sweep under another setting builds on `kdutils.studies.grid`
(`noise` is the smallest example); `CONTRIBUTING.md` walks through adding one.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

from kdutils.profiles import Profile
from kdutils.results import read_json, results_dir

# In the order of the book's chapters.
STUDIES: tuple[str, ...] = (
    "audit",
    "noise",
    "teachers",
    "temperature",
    "calibration",
    "fashion",
    "theory",
    "hinton",
    # CIFAR-10: the other course reports (issue 5).
    "cifar_dark",
    "cifar_features",
    "cifar_alexnet",
)


def get_study(name: str) -> ModuleType:
    """The module of study `name`."""
    if name not in STUDIES:
        raise ValueError(f"unknown study={name!r}; choose one of {list(STUDIES)}")
    return importlib.import_module(f"kdutils.studies.{name}")


def trains(study: str) -> bool:
    """Whether the pages of `study` train networks (and so want a GPU): every study's but one
    whose module says `TRAINS = False`."""
    return getattr(get_study(study), "TRAINS", True)


def available_studies() -> list[str]:
    """The studies whose module exists (all of `STUDIES` once every chapter is written)."""
    here = Path(__file__).parent
    return [name for name in STUDIES if (here / f"{name}.py").exists()]


def study_dir(
    profile: Profile | str, study: str, condition: str, root: str | os.PathLike | None = None
) -> Path:
    """`results/<profile>/studies/<study>/<condition>`: where one condition's records go."""
    name = profile if isinstance(profile, str) else profile.name
    return results_dir(name, root) / "studies" / study / condition


def load_records(directory: str | os.PathLike) -> list[dict]:
    """Every JSON record directly under `directory/runs`, in file-name order."""
    paths = sorted(Path(directory).glob("runs/*.json"))
    return [r for r in (read_json(p) for p in paths) if r is not None]


def load_study(
    profile: Profile | str, study: str, root: str | os.PathLike | None = None
) -> dict[str, list[dict]]:
    """{condition: records} for every condition of `study` that has records."""
    from kdutils.profiles import get_profile

    profile = get_profile(profile) if isinstance(profile, str) else profile
    out = {}
    for condition in get_study(study).conditions(profile):
        records = load_records(study_dir(profile, study, condition, root))
        if records:
            out[condition] = records
    return out


def run_condition(
    profile: Profile, study: str, condition: str, root: str | os.PathLike | None = None
) -> list[dict]:
    """Run (or resume) one condition of `study` and return its records."""
    module = get_study(study)
    if condition not in module.conditions(profile):
        raise ValueError(
            f"study {study!r} has no condition {condition!r} in profile {profile.name!r}; "
            f"choose one of {module.conditions(profile)}"
        )
    return module.run(profile, condition, study_dir(profile, study, condition, root))


def condition_datasets(study: str, profile: Profile, condition: str) -> set[str]:
    """The datasets `condition` of `study` trains on: the module's `datasets`, else the
    profile's dataset."""
    module = get_study(study)
    if hasattr(module, "datasets"):
        return set(module.datasets(profile, condition))
    return {profile.dataset}
