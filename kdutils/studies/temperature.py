"""Temperature × α: the α sweep rerun at several distillation temperatures T.

Every condition is the studies' base sweep (`sweeps.variant`) with another T. The teacher's
config does not depend on T, so all conditions share the base teachers and only students
train. Two temperatures are there for a bug report: another course report got a NaN loss at
T = 1.01 (from the log of a softmax); `t_1` and `t_1p01` check that every loss is finite here.

Nothing is chosen on test data: the best (T, α) is the one with the best mean validation
accuracy at the longest budget.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from kdutils import plots
from kdutils.plots import WIDTH
from kdutils.profiles import Profile
from kdutils.report import pct, points
from kdutils.stats import format_ci, mean_ci, paired_difference, summarize
from kdutils.studies import sweeps
from kdutils.studies import sweepstats as ss

TITLE = "Temperature × α"

TEMPERATURES: tuple[float, ...] = (1.0, 1.01, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0, 20.0)

# Per profile: the temperatures swept (each a condition) and, where set, the alphas. The rest
# of each sweep's scale (data, epochs, seeds) is the studies' base (`sweeps.BASE`).
SETTINGS: dict[str, dict] = {
    # CI: the two temperatures of the NaN report and the book's T = 10; three alphas, because
    # scoring 11 students on the 10k test images costs most of a smoke sweep.
    "smoke": {"temperatures": (1.0, 1.01, 10.0), "alphas": (0.0, 0.5, 1.0)},
    # The book, on 2 CPU cores: 9 fused sweeps of 11 alphas x 3 seeds (about a minute each).
    "default": {"temperatures": TEMPERATURES},
    # The same grid at the full profile's scale (all images, 5 seeds, 100 epochs), for a GPU.
    "full": {"temperatures": TEMPERATURES},
}

# The temperatures whose accuracy-vs-alpha curves the companion figure draws (when swept).
CURVE_TEMPERATURES: tuple[float, ...] = (1.0, 2.0, 4.0, 10.0, 20.0)
# The book's own temperature, the studies' base condition.
BASE_TEMPERATURE = 10.0
VALUES = ("val_accuracy", "test_accuracy", "test_fidelity", "test_kl")


def slug(temperature: float) -> str:
    """A docname-safe condition name: 1 -> 't_1', 1.5 -> 't_1p5', 1.01 -> 't_1p01'."""
    return "t_" + f"{float(temperature):g}".replace(".", "p")


def temperature_of(condition: str) -> float:
    """The temperature of a condition name (the inverse of `slug`)."""
    if not condition.startswith("t_"):
        raise ValueError(f"not a temperature condition: {condition!r}")
    return float(condition[2:].replace("p", "."))


def conditions(profile: Profile) -> list[str]:
    return [slug(t) for t in SETTINGS[profile.name]["temperatures"]]


def variant(profile: Profile, condition: str) -> Profile:
    """The condition's profile: the studies' base sweep at this condition's temperature."""
    if condition not in conditions(profile):
        raise ValueError(f"unknown condition={condition!r}; choose one of {conditions(profile)}")
    alphas = SETTINGS[profile.name].get("alphas")
    changes = {"alphas": alphas} if alphas else {}
    return sweeps.variant(profile, temperature=temperature_of(condition), **changes)


def run(profile: Profile, condition: str, directory: Path) -> list[dict]:
    """Every (alpha, seed) at this temperature, fused per seed; stored records are reused."""
    return sweeps.run(variant(profile, condition), Path(directory))


def is_done(profile: Profile, condition: str, directory: Path) -> bool:
    return sweeps.is_done(variant(profile, condition), Path(directory))


def variants(profile: Profile) -> dict[str, Profile]:
    """{condition: its profile} for every condition of `profile`."""
    return {c: variant(profile, c) for c in conditions(profile)}


def current(profile: Profile, study: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The records of `study` whose config is the one each condition runs now (stale ones out)."""
    return ss.current(study, variants(profile))


def missing(profile: Profile, study: dict[str, list[dict]]) -> list[str]:
    """The conditions of `profile` without a current record for every (alpha, seed)."""
    return ss.missing(study, variants(profile))


# --- losses -----------------------------------------------------------------------------------


def loss_values(records: list[dict]) -> list[float]:
    """Every loss value the runs logged: each epoch's training and validation losses (total,
    hard and soft), whatever the run's alpha (the soft loss is logged even at alpha = 1)."""
    return [v for r in records for epoch in r["history"] for k, v in epoch.items() if "loss" in k]


def underflow_gap() -> int:
    """The smallest whole logit gap g for which exp(-g) rounds to 0 in float32: a class that far
    below the top one gets probability exactly 0 from a softmax, and log(0) = -inf."""
    return next(g for g in range(1, 200) if np.float32(np.exp(-g)) == 0)


def nonfinite(records: list[dict]) -> int:
    """How many logged loss values are NaN or infinite."""
    return sum(not math.isfinite(v) for v in loss_values(records))


# --- tables -----------------------------------------------------------------------------------


def table(study: dict[str, list[dict]]) -> pd.DataFrame:
    """One row per (temperature, alpha, seed, budget) with validation/test accuracy, test
    fidelity and test KL(teacher || student) at T = 1."""
    rows = []
    for records in study.values():
        for r in records:
            for b in r["budgets"]:
                rows.append(
                    {
                        "temperature": r["config"]["temperature"],
                        "alpha": r["config"]["alpha"],
                        "seed": r["config"]["seed"],
                        "epochs": b["epochs"],
                    }
                    | {k: b[k] for k in VALUES}
                )
    return pd.DataFrame(rows)


def last_budget(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the longest budget."""
    return frame[frame["epochs"] == frame["epochs"].max()]


def _by_seed(frame: pd.DataFrame, temperature: float, alpha: float, value: str) -> pd.Series:
    part = frame[(frame["temperature"] == temperature) & (frame["alpha"] == alpha)]
    return part.set_index("seed")[value].sort_index()


def best_pair(frame: pd.DataFrame) -> dict:
    """The (T, alpha) with the best mean validation accuracy at the longest budget."""
    last = last_budget(frame)
    val = last.groupby(["temperature", "alpha"])["val_accuracy"].mean()
    temperature, alpha = val.idxmax()
    test = _by_seed(last, temperature, alpha, "test_accuracy")
    return {
        "temperature": float(temperature),
        "alpha": float(alpha),
        "val_mean": float(val.max()),
        "test": mean_ci(test.to_numpy()),
    }


def best_by_temperature(frame: pd.DataFrame) -> pd.DataFrame:
    """Per T: the alpha chosen on validation, its test accuracy, its gain over alpha = 1
    (labels only; paired over seeds) and the range of mean test accuracy across alpha."""
    last = last_budget(frame)
    rows = []
    for temperature, part in last.groupby("temperature"):
        val = part.groupby("alpha")["val_accuracy"].mean()
        alpha = float(val.idxmax())
        test = _by_seed(part, temperature, alpha, "test_accuracy")
        labels_only = _by_seed(part, temperature, 1.0, "test_accuracy")
        means = part.groupby("alpha")["test_accuracy"].mean()
        rows.append(
            {
                "temperature": float(temperature),
                "alpha": alpha,
                "val_mean": float(val.max()),
                "test": mean_ci(test.to_numpy()),
                "gain": paired_difference(test.to_numpy(), labels_only.to_numpy()),
                "range": float(means.max() - means.min()),
            }
        )
    return pd.DataFrame(rows)


def cell_differences(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (T, alpha < 1): test accuracy minus that of alpha = 1 at the same T, paired over
    seeds, with its 95% CI (NaN bounds with one seed)."""
    last = last_budget(frame)
    rows = []
    for (temperature, alpha), _ in last[last["alpha"] < 1.0].groupby(["temperature", "alpha"]):
        d = paired_difference(
            _by_seed(last, temperature, alpha, "test_accuracy").to_numpy(),
            _by_seed(last, temperature, 1.0, "test_accuracy").to_numpy(),
        )
        rows.append({"temperature": temperature, "alpha": alpha} | d)
    return pd.DataFrame(rows)


def best_table(frame: pd.DataFrame) -> pd.DataFrame:
    """`best_by_temperature` as the chapter shows it, plus the best (T, alpha) overall."""
    rows = best_by_temperature(frame)
    pair = best_pair(frame)
    out = pd.DataFrame(
        {
            "T": [f"{t:g}" for t in rows["temperature"]],
            "best α (validation)": [f"{a:g}" for a in rows["alpha"]],
            "validation accuracy": [pct(v) for v in rows["val_mean"]],
            "test accuracy at that α": [format_ci(s) for s in rows["test"]],
            "minus α = 1 (test, paired)": [
                "— (α = 1 itself)" if a == 1.0 else points(s)
                for a, s in zip(rows["alpha"], rows["gain"], strict=True)
            ],
            "range across α (test)": [f"{100 * r:.2f} points" for r in rows["range"]],
        }
    )
    out["best (T, α) overall"] = [
        "◀" if t == pair["temperature"] and a == pair["alpha"] else ""
        for t, a in zip(rows["temperature"], rows["alpha"], strict=True)
    ]
    return out.set_index("T")


def summary(records: list[dict]) -> pd.DataFrame:
    """The run page's table: per alpha, test accuracy and fidelity with 95% CIs, seeds, and
    the number of logged loss values that are not finite."""
    out = sweeps.summary(records)
    bad = {}
    for r in records:
        bad[r["config"]["alpha"]] = bad.get(r["config"]["alpha"], 0) + nonfinite([r])
    out["non-finite losses"] = [bad[a] for a in out.index]
    return out


# --- figures ----------------------------------------------------------------------------------


def heatmap(
    frame: pd.DataFrame,
    value: str,
    label: str,
    scale: float = 100.0,
    digits: int = 1,
    cmap: str = "viridis",
) -> plt.Figure:
    """T (rows) × alpha (columns) of the mean of `value` over seeds at the longest budget; each
    cell is annotated with its mean and the half-width of its 95% CI."""
    s = summarize(last_budget(frame), ["temperature", "alpha"], value)
    mean = s.pivot(index="temperature", columns="alpha", values="mean") * scale
    half = s.pivot(index="temperature", columns="alpha", values="half_width") * scale
    fig, ax = plt.subplots(figsize=(WIDTH * 1.25, 1.4 + 0.5 * len(mean)))
    image = ax.imshow(mean.to_numpy(), aspect="auto", cmap=cmap)
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            m, h = mean.iat[i, j], half.iat[i, j]
            text = f"{m:.{digits}f}" + ("" if np.isnan(h) else f"\n±{h:.{digits}f}")
            red, green, blue, _ = image.cmap(image.norm(m))
            light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5  # the cell's luminance
            color = "black" if light else "white"
            ax.text(j, i, text, ha="center", va="center", fontsize=7.5, color=color)
    ax.set_xticks(range(mean.shape[1]), [f"{a:g}" for a in mean.columns])
    ax.set_yticks(range(mean.shape[0]), [f"{t:g}" for t in mean.index])
    ax.set(xlabel="α (weight on the hard labels)", ylabel="temperature T")
    ax.grid(False)
    fig.colorbar(image, ax=ax, label=label, pad=0.015)
    fig.tight_layout()
    return fig


def curves_figure(frame: pd.DataFrame, study: dict[str, list[dict]]) -> plt.Figure:
    """Test accuracy against alpha for a few T (mean ± 95% CI; the T are dodged sideways),
    with the teachers' accuracy."""
    last = last_budget(frame)
    swept = sorted(last["temperature"].unique())
    shown = [t for t in swept if t in CURVE_TEMPERATURES]
    shown = shown if len(shown) >= 2 else swept
    last = last[last["temperature"].isin(shown)]
    # dodge the temperatures sideways, so that their CI bars do not hide each other
    offset = {t: (i - (len(shown) - 1) / 2) * 0.012 for i, t in enumerate(shown)}
    last = last.assign(alpha=last["alpha"] + last["temperature"].map(offset))
    fig = plots.accuracy_vs_alpha(
        last,
        "test_accuracy",
        hue="temperature",
        references={"teacher (95% CI)": teacher_accuracy(study)},
        hue_title="temperature T",
    )
    ax = fig.axes[0]
    ax.legend(
        title="temperature T",
        fontsize="small",
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncols=len(shown) + 1,
    )
    fig.tight_layout()
    return fig


def teacher_accuracy(study: dict[str, list[dict]]) -> dict:
    """`mean_ci` of the teachers' test accuracy, one value per seed (all T share them)."""
    by_seed = {r["config"]["seed"]: r["teacher_test_accuracy"] for rs in study.values() for r in rs}
    return mean_ci(list(by_seed.values()))


# --- numbers for the chapter ----------------------------------------------------------------


def _cell(frame: pd.DataFrame, temperature: float, alpha: float, value: str) -> dict:
    return mean_ci(_by_seed(last_budget(frame), temperature, alpha, value).to_numpy())


def _kl(s: dict) -> str:
    if math.isnan(s["half_width"]):
        return f"{s['mean']:.3f} nats (one seed: no interval)"
    return f"{s['mean']:.3f} nats ± {s['half_width']:.3f} (95% CI, n={s['n']})"


def numbers(study: dict[str, list[dict]]) -> dict[str, str]:
    """Every number the chapter states, as formatted strings (glued as `temperature_<key>`)."""
    frame = table(study)
    last = last_budget(frame)
    temps = sorted(last["temperature"].unique())
    first = next(iter(study.values()))[0]["config"]
    out = {
        "temperatures": ", ".join(f"{t:g}" for t in temps),
        "n_temperatures": str(len(temps)),
        "n_alphas": str(last["alpha"].nunique()),
        "n_seeds": str(last["seed"].nunique()),
        "n_runs": str(sum(len(r) for r in study.values())),
        "epochs": str(int(last["epochs"].max())),
        "train_size": f"{first['data']['train_size']:,}",
        "noise": f"{first['data']['noise_rate']:.0%}",
        "teacher": format_ci(teacher_accuracy(study)),
        "book_t": f"{BASE_TEMPERATURE:g}",
        "underflow_gap": str(underflow_gap()),
    }
    # Finite losses, everywhere and at T = 1 and 1.01 in particular.
    every = [r for rs in study.values() for r in rs]
    out["n_losses"] = f"{len(loss_values(every)):,}"
    out["n_nonfinite"] = str(nonfinite(every))
    for t in (1.0, 1.01):
        records = study.get(slug(t), [])
        out[f"{slug(t)}_n_losses"] = f"{len(loss_values(records)):,}"
        out[f"{slug(t)}_n_nonfinite"] = str(nonfinite(records))
        out[f"{slug(t)}_runs"] = str(len(records))

    # alpha = 1 ignores the teacher, so T cannot change it: the largest gap across T, per seed.
    ones = last[last["alpha"] == 1.0].pivot(
        index="seed", columns="temperature", values="test_accuracy"
    )
    out["alpha1_spread"] = f"{100 * float((ones.max(axis=1) - ones.min(axis=1)).max()):.2f}"

    # The best pair on validation, against the base T's own best alpha and against alpha = 1.
    pair = best_pair(frame)
    best = best_by_temperature(frame).set_index("temperature")
    out["best_t"] = f"{pair['temperature']:g}"
    out["best_alpha"] = f"{pair['alpha']:g}"
    out["best_val"] = pct(pair["val_mean"])
    out["best_test"] = format_ci(pair["test"])
    test = _by_seed(last, pair["temperature"], pair["alpha"], "test_accuracy")
    labels_only = _by_seed(last, pair["temperature"], 1.0, "test_accuracy")
    gain = paired_difference(test.to_numpy(), labels_only.to_numpy())
    itself = pair["alpha"] == 1.0
    out["best_vs_alpha1"] = "none: it is α = 1" if itself else points(gain)
    out["best_vs_alpha1_verdict"] = "the same as" if itself else ss.verdict(gain)
    out["alpha1_test"] = format_ci(mean_ci(labels_only.to_numpy()))
    if BASE_TEMPERATURE in best.index:
        base = best.loc[BASE_TEMPERATURE]
        base_test = _by_seed(last, BASE_TEMPERATURE, base["alpha"], "test_accuracy")
        vs_base = paired_difference(test.to_numpy(), base_test.to_numpy())
        out["base_t"] = f"{BASE_TEMPERATURE:g}"
        out["base_alpha"] = f"{base['alpha']:g}"
        out["base_test"] = format_ci(base["test"])
        out["best_vs_base"] = points(vs_base)
        out["best_vs_base_verdict"] = ss.verdict(vs_base)

    # Does the best alpha move with T? Does a good T make alpha matter less?
    out["best_alpha_low"] = f"{best['alpha'].min():g}"
    out["best_alpha_high"] = f"{best['alpha'].max():g}"
    out["best_alpha_by_t"] = ", ".join(f"{a:g} at T = {t:g}" for t, a in best["alpha"].items())
    out["n_t_gain"] = str(sum(ss.significant(g) and g["mean"] > 0 for g in best["gain"]))
    narrow, wide = best["range"].idxmin(), best["range"].idxmax()
    out["range_low"] = f"{100 * best['range'].min():.2f}"
    out["range_low_t"] = f"{narrow:g}"
    out["range_high"] = f"{100 * best['range'].max():.2f}"
    out["range_high_t"] = f"{wide:g}"

    # Verdicts for the chapter's answer, computed so that the prose cannot outrun the data.
    gains = int(out["n_t_gain"])
    out["move_verdict"] = (
        "inconclusive at this scale: at no temperature does the α chosen on validation beat "
        "α = 1 beyond seed noise"
        if gains == 0
        else f"answered only at the {gains} temperatures whose chosen α beats α = 1 beyond "
        "seed noise"
    )
    out["finite_verdict"] = "every one was finite" if out["n_nonfinite"] == "0" else "not all were"

    # Every cell with alpha < 1 against alpha = 1 at the same T, paired over seeds.
    cells = cell_differences(frame)
    out["n_cells"] = str(len(cells))
    out["cells_better"] = str(int((cells["low"] > 0).sum()))
    out["cells_worse"] = str(int((cells["high"] < 0).sum()))
    out["cells_expected"] = f"{0.05 * len(cells):.1f}"
    half = summarize(last, ["temperature", "alpha"], "test_accuracy")["half_width"]
    out["median_half_width"] = f"{100 * float(half.median()):.2f}"
    out["range_verdict"] = (
        "smaller than the typical 95% CI half-width of a single cell, so these seeds cannot "
        "rank the temperatures by how much α matters"
        if best["range"].max() < half.median()
        else "in part larger than the typical 95% CI half-width of a single cell"
    )

    # Imitation (alpha = 0) at the lowest and highest T: accuracy, fidelity, KL to the teacher.
    low_t, high_t = temps[0], temps[-1]
    for name, t in (("low", low_t), ("high", high_t)):
        out[f"{name}_t"] = f"{t:g}"
        out[f"a0_{name}_test"] = format_ci(_cell(frame, t, 0.0, "test_accuracy"))
        out[f"a0_{name}_fidelity"] = format_ci(_cell(frame, t, 0.0, "test_fidelity"))
        out[f"a0_{name}_kl"] = _kl(_cell(frame, t, 0.0, "test_kl"))
    kl0 = last[last["alpha"] == 0.0].groupby("temperature")["test_kl"].mean()
    fid0 = last[last["alpha"] == 0.0].groupby("temperature")["test_fidelity"].mean()
    out["a0_kl_min_t"] = f"{kl0.idxmin():g}"
    out["a0_kl_min"] = f"{kl0.min():.3f}"
    out["a0_fid_max_t"] = f"{fid0.idxmax():g}"
    out["a0_fid_max"] = pct(fid0.max())
    high_vs_low = paired_difference(
        _by_seed(last, high_t, 0.0, "test_accuracy").to_numpy(),
        _by_seed(last, low_t, 0.0, "test_accuracy").to_numpy(),
    )
    kl_diff = paired_difference(
        _by_seed(last, high_t, 0.0, "test_kl").to_numpy(),
        _by_seed(last, low_t, 0.0, "test_kl").to_numpy(),
    )
    out["a0_kl_high_vs_low"] = (
        f"{kl_diff['mean']:+.3f} nats"
        if math.isnan(kl_diff["half_width"])
        else f"{kl_diff['mean']:+.3f} nats [{kl_diff['low']:+.3f}, {kl_diff['high']:+.3f}]"
    )
    out["a0_kl_verdict"] = {True: "lower", False: "not resolved"}[
        ss.significant(kl_diff) and kl_diff["mean"] < 0
    ]
    out["a0_high_vs_low"] = points(high_vs_low)
    out["a1_kl"] = _kl(_cell(frame, temps[0], 1.0, "test_kl"))
    out["a1_fidelity"] = format_ci(_cell(frame, temps[0], 1.0, "test_fidelity"))
    return out


def profiles_table() -> pd.DataFrame:
    """The study's scale in each profile: what `default` cuts from `full`."""
    from kdutils.profiles import PROFILES

    rows = {}
    for name, profile in PROFILES.items():
        p = variant(profile, conditions(profile)[0])
        rows[name] = {
            "temperatures": ", ".join(f"{t:g}" for t in SETTINGS[name]["temperatures"]),
            "α values": len(p.alphas),
            "seeds": len(p.seeds),
            "training images": f"{p.train_size:,}" if p.train_size else "all (55,000)",
            "student epochs (budgets)": f"{p.epochs} ({', '.join(map(str, p.budgets))})",
            "teacher epochs": p.teacher_epochs,
        }
    return pd.DataFrame(rows).T.rename_axis("profile")
