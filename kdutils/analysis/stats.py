"""Means with Student-t 95% confidence intervals, over seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as st

RATE = (0.0, 1.0)  # accuracies, recall, recovery, ECE: shares of examples
CORRELATION = (-1.0, 1.0)


def mean_ci(values, confidence: float = 0.95, bounds: tuple[float, float] | None = None) -> dict:
    """Mean, sample SD and the t-interval of the mean. With one value the interval is NaN.

    `bounds` (`RATE`, `CORRELATION`) is the range the quantity can take. The interval is cut
    to it: the true mean lies inside, so the cut interval covers it exactly as often, and no
    reported interval leaves the possible values. `half_width` stays the t half-width.
    """
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else math.nan
    half = float(st.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)) if n > 1 else math.nan
    low, high = mean - half, mean + half
    if bounds is not None and n > 1:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {
        "mean": mean,
        "sd": sd,
        "n": n,
        "half_width": half,
        "low": low,
        "high": high,
        "confidence": confidence,
    }


def is_cut(summary: dict) -> bool:
    """Whether a `mean_ci` interval was cut at a bound (so it is not mean ± half-width)."""
    half = summary["half_width"]
    return not math.isnan(half) and (
        summary["low"] > summary["mean"] - half or summary["high"] < summary["mean"] + half
    )


def error_bar(summaries, scale: float = 1.0) -> np.ndarray:
    """Matplotlib's `yerr` (2, n) for `mean_ci` summaries: to `low` and to `high`, 0 if none."""
    rows = [summaries] if isinstance(summaries, dict) else list(summaries)
    below = [s["mean"] - s["low"] for s in rows]
    above = [s["high"] - s["mean"] for s in rows]
    return np.nan_to_num(scale * np.array([below, above], dtype=float))


def interval_text(summary: dict, scale: float = 100.0, digits: int = 2, unit: str = "") -> str:
    """'97.31 ± 0.12' from a `mean_ci` result; a cut interval as '99.95 [99.80, 100.00]';
    the mean alone when there is no interval."""
    mean = f"{summary['mean'] * scale:.{digits}f}{unit}"
    if math.isnan(summary["half_width"]):
        return mean
    if is_cut(summary):
        low, high = summary["low"] * scale, summary["high"] * scale
        return f"{mean} [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{mean} ± {summary['half_width'] * scale:.{digits}f}"


def format_ci(summary: dict, percent: bool = True, digits: int = 2) -> str:
    """'97.31% ± 0.12 (95% CI, n=3)' from a `mean_ci` result; a cut interval as [low, high]."""
    scale, unit = (100.0, "%") if percent else (1.0, "")
    n = int(summary["n"])
    text = interval_text(summary, scale, digits, unit)
    if math.isnan(summary["half_width"]):
        return f"{text} (n={n}, no CI)"
    return f"{text} ({summary['confidence']:.0%} CI, n={n})"


def summarize(
    table: pd.DataFrame, by: list[str] | str, value: str, bounds: tuple[float, float] | None = None
) -> pd.DataFrame:
    """`mean_ci` of `value` for each group of `by`: one row per group, one column per field."""
    rows = []
    for key, group in table.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        s = mean_ci(group[value], bounds=bounds)
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


def tost(a, b, delta: float) -> float:
    """p-value of two one-sided paired t-tests that the mean of a - b lies within ±`delta`.

    Small means equivalent: both "the difference is above -delta" and "below +delta" are
    shown at that level. With fewer than two pairs or no spread it is NaN.
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    if n < 2 or sd == 0.0:
        return math.nan
    se = sd / math.sqrt(n)
    lower = st.t.sf((d.mean() + delta) / se, n - 1)  # H0: mean <= -delta
    upper = st.t.cdf((d.mean() - delta) / se, n - 1)  # H0: mean >= +delta
    return float(max(lower, upper))


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN, and is not
    counted in the family)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, math.nan)
    known = np.flatnonzero(~np.isnan(p))
    order = known[np.argsort(p[known], kind="stable")]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def detectable_difference(sd: float, n: int, level: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean paired difference a two-sided paired t-test at `level` finds
    with probability `power`, for `n` pairs whose differences have standard deviation `sd`
    (exact, from the noncentral t distribution)."""
    if n < 2 or not sd > 0:
        return math.nan
    df, critical = n - 1, st.t.ppf(1 - level / 2, n - 1)

    def shortfall(effect: float) -> float:
        nc = effect * math.sqrt(n) / sd
        # Deep in a tail scipy's noncentral t can return NaN: there the far side is 0 and
        # the near side 1 (nc >= 0 throughout).
        near, far = st.nct.sf(critical, df, nc), st.nct.cdf(-critical, df, nc)
        return float(np.nan_to_num(near, nan=1.0) + np.nan_to_num(far, nan=0.0)) - power

    high = sd
    while shortfall(high) < 0:
        high *= 2
    from scipy.optimize import brentq

    return float(brentq(shortfall, 0.0, high, xtol=sd * 1e-9))


def wilson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a rate: always inside [0, 1]."""
    if trials <= 0:
        raise ValueError(f"trials must be positive, got {trials}")
    z = st.norm.ppf(0.5 + confidence / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials**2))
    return max(0.0, centre - half), min(1.0, centre + half)


def fisher_ci(r: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Fisher-z interval of a Pearson correlation from `n` pairs: always inside [-1, 1]."""
    if n <= 3:
        return (-1.0, 1.0)
    z, half = math.atanh(max(-1 + 1e-15, min(1 - 1e-15, r))), st.norm.ppf(0.5 + confidence / 2)
    half /= math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)
