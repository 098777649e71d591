"""The numbers the results and discussion chapters state, computed from results files only.

Each function returns plain Python values and preformatted strings, so notebooks can glue
them and `kdutils.bookcheck` can check that the built HTML shows them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from kdutils.results import budgets_table
from kdutils.stats import format_ci, mean_ci, paired_difference

# What the original report stated (its Table/Figures), quoted for comparison only.
REPORT = {"teacher_test_accuracy": 0.988, "student_alpha1_test_accuracy": 0.931, "best_alpha": 0.5}


def _pivot(records: list[dict], value: str, epochs: int) -> pd.DataFrame:
    """alpha x seed table of `value` at one epoch budget."""
    table = budgets_table(records)
    table = table[table["epochs"] == epochs]
    return table.pivot(index="alpha", columns="seed", values=value).sort_index()


def pct(x: float) -> str:
    """'97.31%' for a rate."""
    return f"{100 * x:.2f}%"


def points(summary: dict) -> str:
    """'+0.41 points [+0.12, +0.70]' for a paired difference of rates (95% CI)."""
    if math.isnan(summary["half_width"]):
        return f"{100 * summary['mean']:+.2f} points (one seed: no interval)"
    return (
        f"{100 * summary['mean']:+.2f} points "
        f"[{100 * summary['low']:+.2f}, {100 * summary['high']:+.2f}]"
    )


def diff_text(summary: dict) -> str:
    """`points` with its p-value: '+0.41 points [+0.12, +0.70], p = 0.020'."""
    if math.isnan(summary["half_width"]):
        return points(summary)
    return f"{points(summary)}, p = {summary['p_value']:.3f}"


def _significant(summary: dict) -> bool:
    return not math.isnan(summary["half_width"]) and (summary["low"] > 0 or summary["high"] < 0)


def best_alpha(records: list[dict], epochs: int) -> dict:
    """The alpha with the highest mean *validation* accuracy at `epochs`, and its test score.

    The test set plays no part in the choice.
    """
    val = _pivot(records, "val_accuracy", epochs).mean(axis=1)
    alpha = float(val.idxmax())
    test = _pivot(records, "test_accuracy", epochs).loc[alpha]
    return {"alpha": alpha, "val_mean": float(val.max()), "test": mean_ci(test.to_numpy())}


def headline(records: list[dict], teachers: list[dict]) -> dict[str, str]:
    """Formatted headline numbers: teacher, alpha=1 student, best alpha, all with 95% CIs."""
    epochs = max(b["epochs"] for b in records[0]["budgets"])
    test = _pivot(records, "test_accuracy", epochs)
    teacher = mean_ci([t["test_accuracy"] for t in teachers])
    alpha_one = mean_ci(test.loc[1.0].to_numpy())
    alpha_zero = mean_ci(test.loc[0.0].to_numpy())
    best = best_alpha(records, epochs)
    return {
        "epochs": str(epochs),
        "n_seeds": str(test.shape[1]),
        "n_alphas": str(test.shape[0]),
        "n_runs": str(len(records)),
        "teacher_test": format_ci(teacher),
        "alpha1_test": format_ci(alpha_one),
        "alpha0_test": format_ci(alpha_zero),
        "best_alpha": f"{best['alpha']:g}",
        "best_alpha_test": format_ci(best["test"]),
        "best_alpha_val": pct(best["val_mean"]),
        "report_teacher": pct(REPORT["teacher_test_accuracy"]),
        "report_alpha1": pct(REPORT["student_alpha1_test_accuracy"]),
        "report_best_alpha": f"{REPORT['best_alpha']:g}",
    }


def comparison_table(records: list[dict], teachers: list[dict]) -> pd.DataFrame:
    """The report's numbers next to this reproduction's."""
    h = headline(records, teachers)
    rows = [
        ("Teacher test accuracy", h["report_teacher"], h["teacher_test"]),
        ("Student test accuracy at α = 1", h["report_alpha1"], h["alpha1_test"]),
        ("Student test accuracy at α = 0", "—", h["alpha0_test"]),
        (
            f"Best α at the longest budget ({h['epochs']} epochs here)",
            h["report_best_alpha"] + " (chosen on test data)",
            h["best_alpha"] + " (chosen on validation data)",
        ),
        ("Test accuracy at that α", "—", h["best_alpha_test"]),
        ("Seeds per point", "1", h["n_seeds"]),
    ]
    return pd.DataFrame(rows, columns=["quantity", "report", "this reproduction"])


def _verdict(holds: bool | None) -> str:
    return {True: "holds", False: "does not hold", None: "is inconclusive"}[holds]


def claims(records: list[dict]) -> dict[str, dict]:
    """Test each of the report's claims against the data; every verdict is computed."""
    budgets = sorted({b["epochs"] for b in records[0]["budgets"]})
    longest = budgets[-1]
    test = _pivot(records, "test_accuracy", longest)
    mean = test.mean(axis=1)
    out: dict[str, dict] = {}

    # 1. Accuracy drops once alpha passes about 0.8.
    drop = paired_difference(test.loc[1.0], test.loc[0.8])
    holds = _significant(drop) and drop["mean"] < 0
    out["drop_after_0p8"] = {
        "verdict": _verdict(holds if _significant(drop) else None),
        "detail": f"accuracy(α=1) − accuracy(α=0.8): {diff_text(drop)}",
    }

    # 2. There is no initial rise from alpha = 0.
    rise = paired_difference(test.loc[0.1], test.loc[0.0])
    # Only a significant difference decides: a rise refutes it, a drop supports it.
    out["no_initial_rise"] = {
        "verdict": _verdict(bool(rise["mean"] < 0) if _significant(rise) else None),
        "detail": f"accuracy(α=0.1) − accuracy(α=0): {diff_text(rise)}",
    }

    # 3. Accuracy peaks at alpha = 0.5 with the longest budget (chosen on validation data).
    best = best_alpha(records, longest)
    gap = paired_difference(test.loc[best["alpha"]], test.loc[0.5])
    # Holds if 0.5 is the best alpha; fails if another alpha beats it beyond seed noise.
    peak = {True: True, False: False if _significant(gap) else None}[best["alpha"] == 0.5]
    out["peak_at_0p5"] = {
        "verdict": _verdict(peak),
        "detail": (
            f"best α on validation data: {best['alpha']:g}; "
            f"accuracy(α={best['alpha']:g}) − accuracy(α=0.5): {diff_text(gap)}"
        ),
    }

    # 4. Stable at low epoch counts, diverging at high ones: spread across alphas per budget.
    spreads = {}
    for epochs in budgets:
        m = _pivot(records, "test_accuracy", epochs).mean(axis=1)
        spreads[epochs] = float(m.max() - m.min())
    grows = spreads[budgets[-1]] > spreads[budgets[0]]
    out["diverge_with_budget"] = {
        "verdict": _verdict(grows),
        "detail": "range of mean test accuracy across α: "
        + ", ".join(
            f"after {e} epoch{'s' * (e != 1)}: {100 * s:.2f} points" for e, s in spreads.items()
        ),
    }
    # 5. Does distillation help here at all? The best alpha (validation) against alpha = 1.
    if best["alpha"] == 1.0:
        out["distillation_helps"] = {
            "verdict": "does not hold",
            "detail": "the α with the best validation accuracy is 1 itself, training on the "
            "labels alone",
        }
    else:
        gain = paired_difference(test.loc[best["alpha"]], test.loc[1.0])
        out["distillation_helps"] = {
            "verdict": _verdict(bool(gain["mean"] > 0) if _significant(gain) else None),
            "detail": (
                f"best α on validation data: {best['alpha']:g}; "
                f"accuracy(α={best['alpha']:g}) − accuracy(α=1): {diff_text(gain)}"
            ),
        }
    out["mean_by_alpha"] = {
        "verdict": "",
        "detail": ", ".join(f"{a:g}: {pct(v)}" for a, v in mean.items()),
    }
    return out


def seed_spread(records: list[dict]) -> pd.DataFrame:
    """Seed-to-seed standard deviation of test accuracy, per alpha and budget."""
    table = budgets_table(records)
    return (
        table.groupby(["epochs", "alpha"])["test_accuracy"]
        .agg(lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else math.nan)
        .unstack("epochs")
    )
