"""Tables, paired comparisons and figures shared by the chapters that rerun the alpha sweep
under another condition (label noise, teacher quality). Everything reads records only.

"Best alpha" is always the alpha with the highest mean *validation* accuracy at the last epoch
budget (`kdutils.analysis.report.best_alpha`); the test set chooses nothing.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from kdutils.analysis.report import best_alpha as _best_alpha
from kdutils.analysis.report import diff_text
from kdutils.analysis.stats import RATE, error_bar, mean_ci, paired_difference, summarize
from kdutils.profiles import Profile, same_config
from kdutils.results import budgets_table, read_json
from kdutils.studies import grid, load_study
from kdutils.teacher_cache import matches, teacher_paths


def current(study: dict[str, list[dict]], variants: dict[str, Profile]) -> dict[str, list[dict]]:
    """The records of `study` whose config is the one its condition's variant runs now.

    `variants` maps each condition to its profile; stale records and conditions not in it go.
    """
    out = {}
    for condition, records in study.items():
        if condition not in variants:
            continue
        v = variants[condition]
        kept = [
            r
            for r in records
            if same_config(r["config"], v.run_config(r["config"]["alpha"], r["config"]["seed"]))
        ]
        if kept:
            out[condition] = kept
    return out


def missing(study: dict[str, list[dict]], variants: dict[str, Profile]) -> list[str]:
    """The conditions of `variants` without a record for every (alpha, seed)."""
    return [c for c, v in variants.items() if len(study.get(c, [])) != len(v.alphas) * len(v.seeds)]


def load_sweep_study(profile: Profile, study: str, variants: dict[str, Profile]) -> dict:
    """{condition: {"records", "teachers", "table"}} for every condition of `variants`, a
    sweep study's; raises, naming the command that runs them, if one has no records."""
    found = load_study(profile, study)
    missing = [c for c in variants if c not in found]
    if missing:
        raise RuntimeError(
            f"No results for {missing} in profile {profile.name!r}: run "
            f"`python -m kdutils.sweep --profile {profile.name} --study {study}` first."
        )
    return {
        c: {"records": found[c], "teachers": teacher_records(v), "table": final_table(found[c])}
        for c, v in variants.items()
    }


def teacher_records(variant: Profile) -> list[dict]:
    """The cached teachers' JSON records of `variant`, one per seed (their logits not needed)."""
    directory = grid.teacher_directory(variant)
    out = []
    for seed in variant.teacher_seeds():
        path = teacher_paths(directory, seed)[0]
        record = read_json(path)
        if not matches(record, variant.teacher_config(seed)):
            raise FileNotFoundError(f"no teacher record matching the config of seed {seed}: {path}")
        out.append(record)
    return out


def last_epochs(records: list[dict]) -> int:
    """The longest epoch budget of the runs."""
    return max(b["epochs"] for b in records[0]["budgets"])


def final_table(records: list[dict]) -> pd.DataFrame:
    """One row per (alpha, seed) at the last budget: val/test accuracy, fidelity and, where
    labels were flipped, recovery and memorisation on the flipped training examples."""
    table = budgets_table(records)
    table = table[table["epochs"] == last_epochs(records)].copy()
    noisy = {
        (r["config"]["alpha"], r["config"]["seed"]): r.get("noisy_labels") or {} for r in records
    }
    keys = list(zip(table["alpha"], table["seed"], strict=True))
    for key in ("recovery", "memorisation"):
        values = [noisy[k].get(key) for k in keys]
        table[key] = pd.Series(values, index=table.index, dtype=float)
    return table.reset_index(drop=True)


def best_alpha(records: list[dict]) -> float:
    """The alpha with the highest mean validation accuracy at the last budget."""
    return _best_alpha(records, last_epochs(records))["alpha"]


def by_seed(table: pd.DataFrame, alpha: float, value: str, **where) -> pd.Series:
    """`value` of one alpha (and the rows whose columns equal `where`), indexed by seed."""
    mask = np.isclose(table["alpha"], alpha)
    for column, wanted in where.items():
        mask &= table[column] == wanted
    return table[mask].set_index("seed")[value].sort_index()


def paired(a: pd.Series, b: pd.Series) -> dict:
    """`stats.paired_difference` of a − b over the seeds both have."""
    seeds = sorted(set(a.index) & set(b.index))
    return paired_difference(a.loc[seeds].to_numpy(), b.loc[seeds].to_numpy())


def significant(summary: dict) -> bool:
    """True when the 95% interval of a difference excludes 0."""
    return not math.isnan(summary["half_width"]) and (summary["low"] > 0 or summary["high"] < 0)


def gain_text(summary: dict, best: float) -> str:
    """`diff_text` of best alpha − alpha = 1, or a note when the best alpha is 1 itself."""
    return "none: the best α is 1 itself" if best == 1.0 else diff_text(summary)


def seconds(entries, key: str) -> str:
    """Total training seconds of the `key` records ("records" or "teachers") of `entries`."""
    return f"{sum(r['train_seconds'] for e in entries for r in e[key]):.0f}"


def curves(
    ax: plt.Axes,
    table: pd.DataFrame,
    value: str,
    hue: str,
    labels: dict | None = None,
    dodge: float = 0.006,
    style: str = "o-",
    first_colour: int = 0,
    bounds: tuple[float, float] | None = RATE,
) -> list[str]:
    """Mean of `value` over seeds against alpha with 95% CI bars (cut to `bounds`), one line
    per `hue` level, dodged sideways so the bars do not hide each other. Returns the colours."""
    summary = summarize(table.dropna(subset=[value]), [hue, "alpha"], value, bounds=bounds)
    levels = sorted(summary[hue].unique())
    colours = []
    for i, level in enumerate(levels):
        part = summary[summary[hue] == level]
        shift = dodge * (i - (len(levels) - 1) / 2)
        colour = f"C{(first_colour + i) % 10}"
        ax.errorbar(
            part["alpha"] + shift,
            part["mean"],
            yerr=error_bar(part.to_dict("records")),
            fmt=style,
            ms=4,
            capsize=3,
            color=colour,
            label=(labels or {}).get(level, f"{level:g}"),
        )
        colours.append(colour)
    ax.set(xlabel="α (weight on the hard labels)", xticks=np.linspace(0, 1, 11))
    return colours


def clamp(ax: plt.Axes, axis: str = "y", low: float = 0.0, high: float = 1.0) -> None:
    """Keep an axis inside [low, high] even where an interval from few seeds would leave it."""
    get, set_ = (ax.get_ylim, ax.set_ylim) if axis == "y" else (ax.get_xlim, ax.set_xlim)
    a, b = get()
    span = 0.02 * (high - low)
    set_(max(a, low - span), min(b, high + span))


def band(ax: plt.Axes, values, colour: str, label: str | None = None, ls: str = ":") -> None:
    """A horizontal line at the mean of `values` (shares) with its 95% CI, cut to [0, 1]."""
    s = mean_ci(np.asarray(values, dtype=float), bounds=RATE)
    ax.axhline(s["mean"], color=colour, ls=ls, lw=1.2, label=label)
    if not math.isnan(s["half_width"]):
        ax.axhspan(s["low"], s["high"], color=colour, alpha=0.12, lw=0)
