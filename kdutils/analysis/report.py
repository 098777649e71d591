"""The numbers the results and discussion chapters state, computed from results files only.

Each function returns plain Python values and preformatted strings, so notebooks can glue
them and `kdutils.bookcheck` can check that the built HTML shows them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from kdutils.analysis.stats import (
    detectable_difference,
    format_ci,
    holm,
    mean_ci,
    paired_difference,
    tost,
    wilson,
)
from kdutils.results import budgets_table

# What the original report printed, quoted for comparison only. Its notebook shows that its
# student numbers are 1 - CategoricalAccuracy on integer labels (0.931 = 1 - 0.0691), not
# accuracies; its teacher's 98.8% is stated in the text, while the notebook's one real
# teacher reached 97.27% after 10 epochs.
REPORT = {"teacher_test_accuracy": 0.988, "student_alpha1_test_accuracy": 0.931, "best_alpha": 0.5}
REPORT_NOTEBOOK_TEACHER = 0.9727


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


def best_alpha(records: list[dict], epochs: int) -> dict:
    """The alpha with the highest mean *validation* accuracy at `epochs`, and its test score.

    The test set plays no part in the choice.
    """
    val = _pivot(records, "val_accuracy", epochs).mean(axis=1)
    alpha = float(val.idxmax())
    test = _pivot(records, "test_accuracy", epochs).loc[alpha]
    return {"alpha": alpha, "val_mean": float(val.max()), "test": mean_ci(test.to_numpy())}


def headline(records: list[dict], teacher: dict, n_test: int | None = None) -> dict[str, str]:
    """Formatted headline numbers: the teacher (with a Wilson interval over its `n_test` test
    images, if given), the alpha = 1 and alpha = 0 students and the alpha chosen on validation
    (t-intervals over seeds), at the longest budget."""
    epochs = max(b["epochs"] for b in records[0]["budgets"])
    test = _pivot(records, "test_accuracy", epochs)
    best = best_alpha(records, epochs)
    half = [mean_ci(row.to_numpy())["half_width"] for _, row in test.iterrows()]
    return {
        "epochs": str(epochs),
        "n_seeds": str(test.shape[1]),
        "n_alphas": str(test.shape[0]),
        "n_runs": str(len(records)),
        "teacher_test": pct(teacher["test_accuracy"])
        + (f" {wilson_text(teacher['test_accuracy'], n_test)}" if n_test else ""),
        "alpha1_test": format_ci(mean_ci(test.loc[1.0].to_numpy())),
        "alpha0_test": format_ci(mean_ci(test.loc[0.0].to_numpy())),
        "best_alpha": f"{best['alpha']:g}",
        "best_alpha_test": format_ci(best["test"]),
        "best_alpha_val": pct(best["val_mean"]),
        "max_half_width": f"{100 * max(half):.2f}",
        "report_teacher": pct(REPORT["teacher_test_accuracy"]),
        "report_alpha1": pct(REPORT["student_alpha1_test_accuracy"]),
        "report_best_alpha": f"{REPORT['best_alpha']:g}",
    }


def wilson_text(rate: float, n: int) -> str:
    """'[97.51%, 98.09%]': the Wilson 95% interval of a rate measured on `n` items."""
    low, high = wilson(round(rate * n), n)
    return f"[{pct(low)}, {pct(high)}]"


def comparison_table(records: list[dict], teacher: dict, n_test: int | None = None) -> pd.DataFrame:
    """The report's printed numbers, what each measures, and this reproduction's."""
    h = headline(records, teacher, n_test)
    cat = "1 − CategoricalAccuracy on integer labels, not an accuracy"
    rows = [
        ("Teacher test accuracy", h["report_teacher"],
         f"stated in its text; its notebook's teacher reached {pct(REPORT_NOTEBOOK_TEACHER)}",
         h["teacher_test"]),
        ("Student at α = 1", h["report_alpha1"], cat, h["alpha1_test"]),
        ("Student at α = 0", "—", "—", h["alpha0_test"]),
        (f"Best α at the longest budget ({h['epochs']} epochs here)", h["report_best_alpha"],
         "read off the 1 − CategoricalAccuracy curves of the test set",
         h["best_alpha"] + " (chosen on validation accuracy)"),
        ("Test accuracy at that α", "—", "—", h["best_alpha_test"]),
        ("Seeds per point", "1", "—", h["n_seeds"]),
    ]  # fmt: skip
    columns = ["quantity", "report printed", "what the report's number is", "this reproduction"]
    return pd.DataFrame(rows, columns=columns)


# The smallest effect of interest: differences of test accuracy within ±0.3 points count as
# no difference. Declared in notebooks/hypothesis.md, before any result is shown.
DELTA = 0.003
LEVEL = 0.05
POWER = 0.8

# The claims the discussion tests, by key, with the names the book shows.
CLAIM_NAMES = {
    "drop_after_0p8": "H1: accuracy drops above α = 0.8",
    "no_initial_rise": "H2: no rise from α = 0",
    "peak_at_0p5": "H3: the peak is at α = 0.5",
    "diverge_with_budget": "H4: the α values spread apart with the budget",
    "distillation_helps": "distillation beats the labels alone",
}


OUTCOME_NAMES = {
    "holds": "holds",
    "does not hold": "does not hold",
    "equivalent": f"equivalent within ±{100 * DELTA:g} points",
    "inconclusive": "inconclusive",
}


def _comparisons(records: list[dict]) -> dict[str, tuple[str, np.ndarray, np.ndarray, str]]:
    """Per claim: (what is compared, a, b, predicted sign of a - b: "+", "-" or "<= 0"),
    a and b paired by seed at the longest budget (H4: per-seed spreads at two budgets)."""
    budgets = sorted({b["epochs"] for b in records[0]["budgets"]})
    test = _pivot(records, "test_accuracy", budgets[-1])
    val = _pivot(records, "val_accuracy", budgets[-1]).mean(axis=1)
    not_half, not_one = val.drop(0.5).idxmax(), val.drop(1.0).idxmax()
    first = _pivot(records, "test_accuracy", budgets[0])
    return {
        "drop_after_0p8": ("α = 1 − α = 0.8", test.loc[1.0], test.loc[0.8], "-"),
        "no_initial_rise": ("α = 0.1 − α = 0", test.loc[0.1], test.loc[0.0], "<= 0"),
        "peak_at_0p5": (f"α = 0.5 − α = {not_half:g}", test.loc[0.5], test.loc[not_half], "+"),
        "diverge_with_budget": (
            f"SD across α after {budgets[-1]} − after {budgets[0]} epochs",
            test.std(axis=0, ddof=1),
            first.std(axis=0, ddof=1),
            "+",
        ),
        "distillation_helps": (f"α = {not_one:g} − α = 1", test.loc[not_one], test.loc[1.0], "+"),
    }


def _outcome(mean: float, p_holm: float, p_tost_holm: float, predicted: str) -> str:
    """'holds', 'does not hold', 'equivalent' (within ±DELTA) or 'inconclusive'."""
    if p_holm < LEVEL:
        agrees = mean < 0 if predicted in ("-", "<= 0") else mean > 0
        return "holds" if agrees else "does not hold"
    if p_tost_holm < LEVEL:
        return "equivalent"
    return "inconclusive"


def claims(records: list[dict]) -> dict[str, dict]:
    """Test each of the report's claims, and "distillation helps", on paired seeds.

    Each difference gets a paired t-test and a TOST for equivalence within ±DELTA, both
    Holm-corrected across the claims, and the difference a paired test would detect with 80%
    power given the measured seed spread. The outcome is "holds" or "does not hold" (a
    significant difference, in the claimed direction or against it), "equivalent" (within
    ±DELTA) or "inconclusive"; a choice of alpha inside a claim uses validation accuracy only.
    """
    rows = {}
    for key, (compared, a, b, predicted) in _comparisons(records).items():
        d = paired_difference(a.to_numpy(), b.to_numpy())
        sd, n = d["sd"], d["n"]
        rows[key] = d | {
            "name": CLAIM_NAMES[key],
            "compared": compared,
            "predicted": predicted,
            "p_tost": tost(a.to_numpy(), b.to_numpy(), DELTA),
            "detectable": detectable_difference(sd, n, LEVEL, POWER),
        }
    p_holm = holm([r["p_value"] for r in rows.values()])
    p_tost_holm = holm([r["p_tost"] for r in rows.values()])
    for r, ph, pt in zip(rows.values(), p_holm, p_tost_holm, strict=True):
        r |= {"p_holm": float(ph), "p_tost_holm": float(pt)}
        r["outcome"] = _outcome(r["mean"], r["p_holm"], r["p_tost_holm"], r["predicted"])
    return rows


def claims_table(claims: dict[str, dict]) -> pd.DataFrame:
    """One row per claim: the difference tested, its mean and 95% CI in points, the
    Holm-corrected p-values, the detectable difference and the outcome."""

    def p(x: float) -> str:
        return "—" if math.isnan(x) else ("< 0.001" if x < 0.001 else f"{x:.3f}")

    return pd.DataFrame(
        {
            "claim": [c["name"] for c in claims.values()],
            "difference tested": [c["compared"] for c in claims.values()],
            "mean [95% CI], points": [points(c) for c in claims.values()],
            "p (paired t, Holm)": [p(c["p_holm"]) for c in claims.values()],
            f"p (TOST ±{100 * DELTA:g}, Holm)": [p(c["p_tost_holm"]) for c in claims.values()],
            "detectable (80% power), points": [
                f"{100 * c['detectable']:.2f}" for c in claims.values()
            ],
            "outcome": [OUTCOME_NAMES[c["outcome"]] for c in claims.values()],
        }
    ).set_index("claim")


def seed_spread(records: list[dict]) -> pd.DataFrame:
    """Seed-to-seed standard deviation of test accuracy, per alpha and budget."""
    table = budgets_table(records)
    return (
        table.groupby(["epochs", "alpha"])["test_accuracy"]
        .agg(lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else math.nan)
        .unstack("epochs")
    )
