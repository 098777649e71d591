"""Before a long build: what would run, and can every dataset it needs be found?

    python -m kdutils.sweep --profile default --check-data book

is the first thing `make book` runs. It takes seconds and trains nothing. A dataset is needed
when a run that would have to train (or a page that would have to be executed) uses it: runs
whose records and pages are stored need no data, so a build from the committed results needs
data only for the chapters that load it themselves (`chapter_datasets`). A dataset that
cannot be found stops the build here, with where `kdutils.data.find_dataset` looked and the
ways to provide it, instead of after minutes of executing notebooks.

Scopes: `sweep` (the alpha sweep and every study, what `make sweep` runs), `chapters` (what
the book's own pages load) and `book` (both).
"""

from __future__ import annotations

import sys
from pathlib import Path

from kdutils.data import DataError, find_dataset
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
    from kdutils.studies import fashion

    return {
        "experiments": {profile.dataset, "mnist"},  # and the official MNIST split
        "literature": {profile.dataset},
        "fashion": {fashion.variant(profile, "fashion_mnist").dataset},
    }


def needed_datasets(profile: Profile, scope: str, results_root=None, pages=PAGES):
    """{dataset: what needs it} for `scope` (one of `SCOPES`)."""
    from kdutils.studies import available_studies

    if scope not in SCOPES:
        raise ValueError(f"unknown scope={scope!r}; choose one of {SCOPES}")
    users: dict[str, set[str]] = {}
    if scope in ("sweep", "book"):
        work = pending_work(profile, None, None, results_root, pages)
        work |= pending_work(profile, available_studies(), None, results_root, pages)
    else:
        work = {}
    if scope in ("chapters", "book"):
        work |= {f"chapter {c}": d for c, d in chapter_datasets(profile).items()}
    for user, datasets in work.items():
        for name in datasets:
            users.setdefault(name, set()).add(user)
    return users


def check_data(profile: Profile, scope: str, results_root=None, pages=PAGES) -> int:
    """Print where each needed dataset is, or why it cannot be found; 0 when all are found."""
    users = needed_datasets(profile, scope, results_root, pages)
    if not users:
        print(f"data ({profile.name}, {scope}): nothing to train, so no dataset is needed")
    missing = []
    for name in sorted(users):
        more = len(users[name]) - 4
        needs = ", ".join(sorted(users[name])[:4]) + (f" and {more} more" if more > 0 else "")
        try:
            print(f"data ({profile.name}, {scope}): {name} at {find_dataset(name)} ({needs})")
        except DataError as error:
            missing.append(f"{name} is needed by {needs}.\n{error}")
    if missing:
        print(
            f"Stopped before building ({profile.name} profile, {scope}): "
            f"{len(missing)} dataset(s) cannot be found.\n\n" + "\n".join(missing),
            file=sys.stderr,
        )
        return 1
    return 0
