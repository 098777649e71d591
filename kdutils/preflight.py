"""Before a long build: what would run, and can every dataset it needs be found?

    python -m kdutils.sweep --profile default --check-data book

is the first thing `make book` runs; it trains nothing. A dataset is needed when a run that
would have to train (or a page that would have to be executed) uses it: runs whose records
and pages are stored need no data, so a build from the committed results needs data only for
the chapters that load it themselves (`chapter_datasets`). A dataset that cannot be found
stops the build here, with where `kdutils.distill.data.find_dataset` looked and the ways to provide
it, instead of after minutes of executing notebooks. The chapters' datasets are checked
first, in seconds (`kdutils` loads TensorFlow only when it is used); then what the runs
still to train need, which imports every study.

Scopes: `sweep` (the alpha sweep and every study, what `make sweep` runs), `chapters` (what
the book's own pages load) and `book` (both).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from kdutils.distill.data import DataError, find_dataset
from kdutils.profiles import Profile
from kdutils.results import results_dir
from kdutils.sweep import PAGES, pending_alphas, pending_conditions, pending_teachers

SCOPES = ("sweep", "chapters", "book")


def pending_work(
    profile: Profile, studies: list[str] | None, alphas=None, results_root=None, pages=PAGES
) -> dict[str, set[str]]:
    """{what would run: the datasets it trains on}; empty when everything is stored.

    With `studies` None: the alpha sweep (its unfinished alphas and uncached teachers);
    otherwise each unfinished condition of those studies, as '<study>/<condition>'.
    """
    from kdutils.studies import condition_datasets

    if studies is None:
        directory = results_dir(profile.name, results_root)
        alphas = list(profile.alphas if alphas is None else alphas)
        todo = pending_alphas(profile, alphas, directory, Path(pages))
        if todo or pending_teachers(profile, directory):
            return {"the alpha sweep": {profile.dataset}}
        return {}
    return {
        f"{study}/{condition}": condition_datasets(study, profile, condition)
        for study in studies
        for condition in pending_conditions(profile, study, results_root, Path(pages))
    }


def chapter_datasets(profile: Profile) -> dict[str, set[str]]:
    """{chapter: the datasets it loads itself}. The other chapters only read records."""
    return {
        "experiments": {profile.dataset, "mnist"},  # and the official MNIST split
        "literature": {profile.dataset},
        "results": {profile.dataset},  # the test labels: the teacher's interval, a perfect model
        "calibration": {profile.dataset},  # one run's test labels, for its confusion matrix
        "hinton": {"mnist"},  # the test labels of the teacher's bias shift
        "fashion": {"fashion_mnist"},  # fashion.variant(profile, "fashion_mnist")
    }


def run_work(profile: Profile, results_root=None, pages=PAGES) -> dict[str, set[str]]:
    """`pending_work` of the alpha sweep and of every study: what `make sweep` would run."""
    from kdutils.studies import available_studies

    work = pending_work(profile, None, None, results_root, pages)
    return work | pending_work(profile, available_studies(), None, results_root, pages)


def _steps(profile: Profile, scope: str, results_root, pages) -> list[Callable[[], dict]]:
    """What needs data in `scope`, cheapest first: {user: datasets} per step."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope={scope!r}; choose one of {SCOPES}")
    steps = []
    if scope in ("chapters", "book"):  # a second: no study (so no TensorFlow) is imported
        steps.append(lambda: {f"chapter {c}": d for c, d in chapter_datasets(profile).items()})
    if scope in ("sweep", "book"):
        steps.append(lambda: run_work(profile, results_root, pages))
    return steps


def _users(work: dict[str, set[str]]) -> dict[str, set[str]]:
    """{user: datasets} turned round: {dataset: its users}."""
    users: dict[str, set[str]] = {}
    for user, datasets in work.items():
        for name in datasets:
            users.setdefault(name, set()).add(user)
    return users


def needed_datasets(profile: Profile, scope: str, results_root=None, pages=PAGES):
    """{dataset: what needs it} for `scope` (one of `SCOPES`)."""
    work: dict[str, set[str]] = {}
    for step in _steps(profile, scope, results_root, pages):
        work |= step()
    return _users(work)


def check_data(profile: Profile, scope: str, results_root=None, pages=PAGES) -> int:
    """Print where each needed dataset is, or why it cannot be found; 0 when all are found.

    The chapters' datasets are checked first, in seconds; what the runs still to train need
    is worked out (importing every study) only when those are found.
    """
    label, found = f"data ({profile.name}, {scope})", {}
    for step in _steps(profile, scope, results_root, pages):
        missing = []
        for name, users in sorted(_users(step()).items()):
            more = len(users) - 4
            needs = ", ".join(sorted(users)[:4]) + (f" and {more} more" if more > 0 else "")
            try:
                found[name] = found.get(name) or find_dataset(name)
                print(f"{label}: {name} at {found[name]} ({needs})", flush=True)
            except DataError as error:
                missing.append(f"{name} is needed by {needs}.\n{error}")
        if missing:
            print(
                f"Stopped before building ({profile.name} profile, {scope}): "
                f"{len(missing)} dataset(s) cannot be found.\n\n" + "\n".join(missing),
                file=sys.stderr,
            )
            return 1
    if not found:
        print(f"{label}: nothing to train, so no dataset is needed")
    return 0
