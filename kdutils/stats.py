"""Means with Student-t 95% confidence intervals, over seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as st


def mean_ci(values, confidence: float = 0.95) -> dict:
    """Mean, sample SD and the t-interval of the mean. With one value the interval is NaN."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else math.nan
    half = float(st.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)) if n > 1 else math.nan
    return {
        "mean": mean,
        "sd": sd,
        "n": n,
        "half_width": half,
        "low": mean - half,
        "high": mean + half,
        "confidence": confidence,
    }


def format_ci(summary: dict, percent: bool = True, digits: int = 2) -> str:
    """'97.31% ± 0.12 (95% CI, n=3)' from a `mean_ci` result."""
    scale, unit = (100.0, "%") if percent else (1.0, "")
    n = int(summary["n"])
    level = f"{summary['confidence']:.0%} CI, n={n}"
    if math.isnan(summary["half_width"]):
        return f"{summary['mean'] * scale:.{digits}f}{unit} (n={n}, no CI)"
    return (
        f"{summary['mean'] * scale:.{digits}f}{unit} ± "
        f"{summary['half_width'] * scale:.{digits}f} ({level})"
    )


def summarize(table: pd.DataFrame, by: list[str] | str, value: str) -> pd.DataFrame:
    """`mean_ci` of `value` for each group of `by`: one row per group, one column per field."""
    rows = []
    for key, group in table.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        s = mean_ci(group[value])
        names = [by] if isinstance(by, str) else by
        rows.append(dict(zip(names, key, strict=True)) | s)
    return pd.DataFrame(rows)


def paired_difference(a, b, confidence: float = 0.95) -> dict:
    """Mean of a - b over paired seeds, its t-interval, and the paired t-test p-value."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same shape, got {a.shape} and {b.shape}")
    summary = mean_ci(a - b, confidence)
    if len(a) > 1 and np.any(a != b):
        summary["p_value"] = float(st.ttest_rel(a, b).pvalue)
    else:
        summary["p_value"] = math.nan if len(a) < 2 else 1.0
    return summary
