"""Where and how the results were computed: environment, versions, git commits, run times.

Every results file records the environment it was computed in (`kdutils.distill.repro.environment`)
and its training time; every run page records papermill's wall time. The functions here
read those records back, compare them with the environment that builds the book, and
return plain values, pandas DataFrames (ready to display) and preformatted strings, so the
appendix notebooks only glue and show them. Nothing here trains or measures anything.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from kdutils.distill.repro import environment, git_commit
from kdutils.experiment import load_run
from kdutils.profiles import PROFILES, Profile
from kdutils.results import ROOT, read_json
from kdutils.sweep import PAGES, page_path
from kdutils.teacher_cache import Teacher, load_teacher

NOT_RUN = "not run yet"
MISSING = "—"  # a table cell with no value
SETUP_FIELDS = {
    "Keras backend": "backend",
    "Python": "python",
    "machine": "machine",
    "git commit": "git_commit",
}


def format_duration(seconds: float | None) -> str:
    """A duration for prose: '42.0 s', '3 min 05 s', '2 h 07 min'; None is 'not run yet'."""
    if seconds is None:
        return NOT_RUN
    seconds = float(seconds)
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def stored_results(profile: Profile, directory: Path) -> tuple[list[dict], dict[int, Teacher]]:
    """The run records and teachers under `directory` whose config matches `profile`.

    Records come in the order of the profile's alphas, then seeds; teachers are keyed by
    seed. Stale files (computed with another config) and missing ones are left out.
    """
    records = [
        record
        for alpha in profile.alphas
        for seed in profile.seeds
        if (record := load_run(profile, alpha, seed, directory)) is not None
    ]
    teachers = {
        seed: teacher
        for seed in profile.teacher_seeds()
        if (teacher := load_teacher(profile, seed, directory)) is not None
    }
    return records, teachers


def recorded_environments(records: list[dict], teachers: dict[int, Teacher]) -> list[dict]:
    """The environment recorded by every run record, then by every teacher."""
    return [r["environment"] for r in records] + [
        t.record["environment"] for t in teachers.values()
    ]


def current_environment(root: Path = ROOT) -> dict:
    """The environment that runs now, with the git commit of the checkout at `root`."""
    now = environment()
    now["git_commit"] = git_commit(root)
    return now


def page_metadata(profile: Profile, alpha: float, pages: Path = PAGES) -> dict:
    """papermill's metadata of the run page of `alpha` ({} when there is no page)."""
    path = page_path(pages, profile, alpha)
    if not path.exists():
        return {}
    import nbformat  # the `sweep` extra: needed only where run pages exist

    return dict(nbformat.read(path, as_version=4).metadata.get("papermill", {}))


def page_seconds(profile: Profile, pages: Path = PAGES) -> dict[float, float | None]:
    """papermill's wall time of each alpha's run page, None where there is no page."""
    return {alpha: page_metadata(profile, alpha, pages).get("duration") for alpha in profile.alphas}


def distinct_values(environments: list[dict], key: str) -> str | None:
    """The distinct recorded values of one environment field, joined by '; '; None if none."""
    values = sorted({str(env[key]) for env in environments if env.get(key) is not None})
    return "; ".join(values) or None


def recorded_value(environments: list[dict], key: str) -> str:
    """Like `distinct_values`, for prose: 'not run yet' without results, else 'not recorded'."""
    if not environments:
        return NOT_RUN
    return distinct_values(environments, key) or "not recorded"


def recorded_versions(environments: list[dict]) -> str:
    """Package versions as 'keras 3.x, numpy 2.y', one entry per distinct set, joined by '; '."""
    sets = {tuple(sorted(env.get("versions", {}).items())) for env in environments}
    texts = sorted(", ".join(f"{name} {v}" for name, v in s) for s in sets if s)
    return "; ".join(texts) if texts else (NOT_RUN if not environments else "not recorded")


def compare(now: str | None, recorded: str | None) -> str:
    """'yes', 'no', 'not recorded' (no value in the results) or 'not installed now'."""
    if recorded is None:
        return "not recorded"
    if now is None:
        return "not installed now"
    return "yes" if str(now) == recorded else "no"


def _comparison(index: str, values: dict[str, tuple[str | None, str | None]]) -> list[dict]:
    """Rows of a now-versus-results table from {label: (now, in the results)}."""
    return [
        {index: label, "now": now, "in the results": then, "same": compare(now, then)}
        for label, (now, then) in values.items()
    ]


def versions_table(now: dict, recorded: list[dict]) -> pd.DataFrame:
    """Package versions now next to those in the results.

    Indexed by package, with columns 'now', 'in the results' (all distinct recorded versions)
    and 'same' ('yes', 'no', 'not installed now' or 'not recorded'); a missing value is '—'.
    """
    installed = now.get("versions", {})
    then = [env.get("versions", {}) for env in recorded]
    packages = sorted(set(installed).union(*then))
    rows = _comparison(
        "package", {name: (installed.get(name), distinct_values(then, name)) for name in packages}
    )
    table = pd.DataFrame(rows, columns=["package", "now", "in the results", "same"])
    return table.set_index("package").fillna(MISSING)


def setup_table(now: dict, recorded: list[dict]) -> pd.DataFrame:
    """Keras backend, Python, machine and git commit now and in the results."""
    rows = _comparison(
        "",
        {
            label: (now.get(key), distinct_values(recorded, key))
            for label, key in SETUP_FIELDS.items()
        },
    )
    return pd.DataFrame(rows).set_index("").fillna(MISSING)


def _total(values: list[float]) -> float | None:
    return float(sum(values)) if values else None


def _mean(values: list[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def timing_summary(profile: Profile, directory: Path, pages: Path = PAGES) -> dict[str, str]:
    """Preformatted text about where and in how much time the results were computed.

    Keys: profile, machine, backend, python, versions; teachers ('2 of 3'),
    teacher_seconds (total), teacher_epoch_seconds (mean); runs ('5 of 33'),
    student_seconds, student_epoch_seconds; pages ('0 of 11'), pages_seconds (total
    papermill time). Durations are 'not run yet' where nothing has run.
    """
    records, teachers = stored_results(profile, directory)
    envs = recorded_environments(records, teachers)
    done = [s for s in page_seconds(profile, pages).values() if s is not None]
    return {
        "profile": profile.name,
        "machine": recorded_value(envs, "machine"),
        "backend": recorded_value(envs, "backend"),
        "python": recorded_value(envs, "python"),
        "versions": recorded_versions(envs),
        "teachers": f"{len(teachers)} of {len(profile.teacher_seeds())}",
        "teacher_seconds": format_duration(
            _total([t.record["train_seconds"] for t in teachers.values()])
        ),
        "teacher_epoch_seconds": format_duration(
            _mean([t.record["seconds_per_epoch"] for t in teachers.values()])
        ),
        "runs": f"{len(records)} of {len(profile.alphas) * len(profile.seeds)}",
        "student_seconds": format_duration(_total([r["train_seconds"] for r in records])),
        "student_epoch_seconds": format_duration(
            _mean([r["train_seconds"] / r["config"]["epochs"] for r in records])
        ),
        "pages": f"{len(done)} of {len(profile.alphas)}",
        "pages_seconds": format_duration(_total(done)),
    } | sweep_wall_time(directory)


def sweep_wall_time(directory: Path) -> dict[str, str]:
    """The sweep invocations logged in `sweep.json`: `sweep_seconds`, their total wall time
    ('17 min 40 s'), `sweep_invocations`, how many, and `sweep_longest_started`, when the
    longest began ('2026-11-26 18:42 UTC'). Each is 'not run yet' without a log."""
    log = read_json(Path(directory) / "sweep.json")
    sessions = (log or {}).get("sessions", [])
    if not sessions:
        return dict.fromkeys(
            ("sweep_seconds", "sweep_invocations", "sweep_longest_started"), NOT_RUN
        )
    longest = max(sessions, key=lambda s: s["seconds"])
    started = datetime.fromisoformat(longest["started"]).astimezone(timezone.utc)
    return {
        "sweep_seconds": format_duration(sum(s["seconds"] for s in sessions)),
        "sweep_invocations": str(len(sessions)),
        "sweep_longest_started": started.strftime("%Y-%m-%d %H:%M UTC"),
    }


def teacher_times(profile: Profile, directory: Path) -> pd.DataFrame:
    """One row per stored teacher (index: seed): epochs, training time, seconds per epoch.

    Empty (no rows) when no teacher of the profile is stored.
    """
    _, teachers = stored_results(profile, directory)
    columns = ["epochs", "training time (s)", "seconds per epoch"]
    rows = {
        seed: [
            t.record["config"]["epochs"],
            t.record["train_seconds"],
            t.record["seconds_per_epoch"],
        ]
        for seed, t in teachers.items()
    }
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    table.index.name = "seed"
    return table.round(1)


def _not_run(table: pd.DataFrame) -> pd.DataFrame:
    """Rounded to 0.1, with 'not run yet' in every empty cell."""
    table = table.round(1).astype(object)
    return table.where(table.notna(), NOT_RUN)


def per_alpha_times(profile: Profile, directory: Path, pages: Path = PAGES) -> pd.DataFrame:
    """Per alpha: how many seeds have a results file, their training time summed over seeds
    and averaged per epoch, and the papermill wall time of the alpha's run page."""
    records, _ = stored_results(profile, directory)
    table = pd.DataFrame(index=pd.Index(profile.alphas, name="alpha"))
    runs = pd.DataFrame(
        {
            "alpha": r["config"]["alpha"],
            "training (s)": r["train_seconds"],
            "per epoch (s)": r["train_seconds"] / r["config"]["epochs"],
        }
        for r in records
    )
    table["runs"], table["training (s)"], table["per epoch (s)"] = 0, float("nan"), float("nan")
    if records:
        grouped = runs.groupby("alpha")
        table["runs"] = grouped.size().reindex(table.index, fill_value=0)
        table["training (s)"] = grouped["training (s)"].sum()
        table["per epoch (s)"] = grouped["per epoch (s)"].mean()
    table["papermill page (s)"] = list(page_seconds(profile, pages).values())
    return _not_run(table)


def run_times(profile: Profile, directory: Path, pages: Path = PAGES) -> pd.DataFrame:
    """Per alpha: the run page's papermill wall time and when it finished (UTC), then the
    training time recorded for each seed."""
    rows = []
    for alpha in profile.alphas:
        meta = page_metadata(profile, alpha, pages)
        row = {
            "alpha": alpha,
            "page (s)": meta.get("duration"),
            "page finished (UTC)": (meta.get("end_time") or "")[:16].replace("T", " ") or None,
        }
        for seed in profile.seeds:
            record = load_run(profile, alpha, seed, directory)
            row[f"seed {seed} training (s)"] = record["train_seconds"] if record else None
        rows.append(row)
    return _not_run(pd.DataFrame(rows).set_index("alpha"))


def _cell(value):
    """Lists as short comma-separated text, so a table stays narrow."""
    if isinstance(value, list):
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return value


def profiles_table(profiles: dict[str, Profile] = PROFILES) -> pd.DataFrame:
    """Every profile's fields, one column per profile (lists as comma-separated text)."""
    table = pd.DataFrame(
        {name: {k: _cell(v) for k, v in p.to_dict().items()} for name, p in profiles.items()}
    ).drop(index="name")
    table.index.name = "field"
    return table
