"""Label noise and denoising: does distillation recover the true labels that noise flipped?

Each condition is one noise rate: that fraction of the training labels is flipped to another
class (validation and test labels stay clean), the teachers are trained on the same noisy
labels, and the whole alpha sweep reruns at the studies' scale (`sweeps.variant`). Every run
record holds, on the training examples whose label was flipped, how often the model predicts
the true label (`recovery`) and how often it repeats the wrong one (`memorisation`); so does
every teacher record. The best alpha is chosen on validation accuracy only.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from kdutils.plots import WIDTH
from kdutils.profiles import Profile, alpha_slug
from kdutils.stats import format_ci, mean_ci, summarize
from kdutils.studies import load_study, sweeps
from kdutils.studies import sweepstats as ss

TITLE = "Label noise and denoising"

# The noise rates per profile. 0.05 is the studies' base condition (its teachers are shared).
# Smoke trains 3 alphas, not 11: compiling 11 fused students costs ~40 s of CPU per seed.
SETTINGS = {
    "smoke": {"rates": (0.0, 0.05, 0.4), "alphas": (0.0, 0.5, 1.0)},
    "default": {"rates": (0.0, 0.05, 0.1, 0.2, 0.4)},
    "full": {"rates": (0.0, 0.05, 0.1, 0.2, 0.4)},
}


def rates(profile: Profile) -> tuple[float, ...]:
    return SETTINGS[profile.name]["rates"]


def slug(rate: float) -> str:
    """0.05 -> 'rate_0p05', 0 -> 'rate_0p0'."""
    return "rate_" + alpha_slug(rate).removeprefix("alpha_")


def conditions(profile: Profile) -> list[str]:
    return [slug(r) for r in rates(profile)]


def rate_of(profile: Profile, condition: str) -> float:
    """The noise rate of `condition`."""
    for rate in rates(profile):
        if slug(rate) == condition:
            return rate
    raise ValueError(f"unknown condition={condition!r}; choose one of {conditions(profile)}")


def variant(profile: Profile, condition: str) -> Profile:
    """The condition's profile: the studies' scale with its noise rate."""
    extra = {k: v for k, v in SETTINGS[profile.name].items() if k != "rates"}
    return sweeps.variant(profile, noise_rate=rate_of(profile, condition), **extra)


def run(profile: Profile, condition: str, directory: Path) -> list[dict]:
    return sweeps.run(variant(profile, condition), Path(directory))


def is_done(profile: Profile, condition: str, directory: Path) -> bool:
    return sweeps.is_done(variant(profile, condition), Path(directory))


def summary(records: list[dict]) -> pd.DataFrame:
    """The sweep's table, with recovery and memorisation of the flipped labels per alpha."""
    out = sweeps.summary(records)
    table = ss.final_table(records).dropna(subset=["recovery"])
    for key in ("recovery", "memorisation"):
        if not table.empty:
            s = summarize(table, ["alpha"], key)
            out[key] = [format_ci(r) for r in s.to_dict("records")]
    return out


# --- the chapter: everything from records -----------------------------------------------------


def load(profile: Profile) -> dict[float, dict]:
    """{rate: {"records", "teachers", "table"}} for every condition; raises if one is missing."""
    study = load_study(profile, "noise")
    missing = [c for c in conditions(profile) if c not in study]
    if missing:
        raise RuntimeError(
            f"No results for {missing} in profile {profile.name!r}: run "
            f"`python -m kdutils.sweep --profile {profile.name} --study noise` first."
        )
    out = {}
    for condition, records in study.items():
        rate = rate_of(profile, condition)
        teachers = ss.teacher_records(variant(profile, condition))
        out[rate] = {"records": records, "teachers": teachers, "table": ss.final_table(records)}
    return out


def _teacher(entry: dict, key: str) -> pd.Series:
    """A teacher quantity by seed (`noisy_labels` keys too)."""
    values = {
        t["config"]["seed"]: t["noisy_labels"][key] if key in t["noisy_labels"] else t[key]
        for t in entry["teachers"]
    }
    return pd.Series(values).sort_index()


def rate_numbers(entry: dict) -> dict:
    """The per-rate quantities (summaries and paired differences) the chapter states."""
    table, records = entry["table"], entry["records"]
    best = ss.best_alpha(records)
    test = {a: ss.by_seed(table, a, "test_accuracy") for a in (0.0, best, 1.0)}
    out = {
        "best_alpha": best,
        "teacher_test": mean_ci(_teacher(entry, "test_accuracy")),
        "test": {a: mean_ci(v) for a, v in test.items()},
        "gain": ss.paired(test[best], test[1.0]),
        "flipped": int(records[0]["noisy_labels"]["flipped"]),
    }
    if out["flipped"]:
        rec = {a: ss.by_seed(table, a, "recovery") for a in (0.0, best, 1.0)}
        teacher = _teacher(entry, "recovery")
        mean = table.groupby("alpha")["recovery"].mean()
        out |= {
            "recovery": {a: mean_ci(v) for a, v in rec.items()},
            "teacher_recovery": mean_ci(teacher),
            "teacher_memorisation": mean_ci(_teacher(entry, "memorisation")),
            "memorisation": {
                a: mean_ci(ss.by_seed(table, a, "memorisation")) for a in (0.0, best, 1.0)
            },
            "rec_zero_vs_one": ss.paired(rec[0.0], rec[1.0]),
            "rec_best_vs_one": ss.paired(rec[best], rec[1.0]),
            "rec_best_vs_teacher": ss.paired(rec[best], teacher),
            "rec_zero_vs_teacher": ss.paired(rec[0.0], teacher),
            "most_recovering_alpha": float(mean.idxmax()),
        }
    return out


def _pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}%"


def rate_table(study: dict[float, dict]) -> pd.DataFrame:
    """One row per noise rate: the teacher, the best alpha and what it buys, with 95% CIs."""
    rows = []
    for rate, entry in sorted(study.items()):
        n = rate_numbers(entry)
        best = n["best_alpha"]
        row = {
            "label noise": _pct(rate, 0),
            "flipped labels": n["flipped"],
            "teacher test accuracy": format_ci(n["teacher_test"]),
            "best α (validation)": f"{best:g}",
            "test accuracy, best α": format_ci(n["test"][best]),
            "test accuracy, α = 1": format_ci(n["test"][1.0]),
            "best α − α = 1 (test)": ss.gain_text(n["gain"], best),
        }
        if n["flipped"]:
            row |= {
                "teacher recovery": format_ci(n["teacher_recovery"]),
                "recovery, α = 0": format_ci(n["recovery"][0.0]),
                "recovery, best α": format_ci(n["recovery"][best]),
                "recovery, α = 1": format_ci(n["recovery"][1.0]),
                "recovery, best α − α = 1": ss.gain_text(n["rec_best_vs_one"], best),
                "recovery, α = 0 − α = 1": ss.diff_text(n["rec_zero_vs_one"]),
                "recovery, best α − teacher": ss.diff_text(n["rec_best_vs_teacher"]),
            }
        rows.append(row)
    return pd.DataFrame(rows).set_index("label noise").T.fillna("—")


def _role_numbers(prefix: str, rate: float, n: dict) -> dict[str, str]:
    best = n["best_alpha"]
    out = {
        f"{prefix}_rate": _pct(rate, 0),
        f"{prefix}_flipped": f"{n['flipped']:,}",
        f"{prefix}_teacher_test": format_ci(n["teacher_test"]),
        f"{prefix}_best_alpha": f"{best:g}",
        f"{prefix}_test_best": format_ci(n["test"][best]),
        f"{prefix}_test_zero": format_ci(n["test"][0.0]),
        f"{prefix}_test_one": format_ci(n["test"][1.0]),
        f"{prefix}_gain": ss.gain_text(n["gain"], best),
        f"{prefix}_gain_dir": ss.direction(n["gain"]),
    }
    if n["flipped"]:
        out |= {
            f"{prefix}_teacher_recovery": format_ci(n["teacher_recovery"]),
            f"{prefix}_teacher_memorisation": format_ci(n["teacher_memorisation"]),
            f"{prefix}_rec_zero": format_ci(n["recovery"][0.0]),
            f"{prefix}_rec_best": format_ci(n["recovery"][best]),
            f"{prefix}_rec_one": format_ci(n["recovery"][1.0]),
            f"{prefix}_mem_one": format_ci(n["memorisation"][1.0]),
            f"{prefix}_mem_best": format_ci(n["memorisation"][best]),
            f"{prefix}_rec_zero_vs_one": ss.diff_text(n["rec_zero_vs_one"]),
            f"{prefix}_rec_best_vs_one": ss.gain_text(n["rec_best_vs_one"], best),
            f"{prefix}_rec_best_vs_teacher": ss.diff_text(n["rec_best_vs_teacher"]),
            f"{prefix}_rec_zero_vs_teacher": ss.diff_text(n["rec_zero_vs_teacher"]),
            f"{prefix}_rec_zero_vs_one_dir": ss.direction(n["rec_zero_vs_one"]),
            f"{prefix}_rec_best_vs_one_dir": ss.direction(n["rec_best_vs_one"]),
            f"{prefix}_rec_best_vs_teacher_dir": ss.direction(n["rec_best_vs_teacher"]),
            f"{prefix}_most_recovering_alpha": f"{n['most_recovering_alpha']:g}",
        }
    return out


def numbers(study: dict[float, dict]) -> dict[str, str]:
    """Every number the chapter's prose states, formatted (glue them with a `noise_` prefix).

    Roles: `clean` (0% noise, if run), `base` (5%, the book's own setting) and `high` (the
    highest rate); `n_*` count the noisy rates where a paired difference excludes 0.
    """
    per_rate = {rate: rate_numbers(entry) for rate, entry in study.items()}
    noisy = sorted(r for r in per_rate if per_rate[r]["flipped"])
    out: dict[str, str] = {}
    roles = {"base": 0.05, "high": max(noisy)} | ({"clean": 0.0} if 0.0 in per_rate else {})
    for prefix, rate in roles.items():
        out |= _role_numbers(prefix, rate, per_rate[rate])

    def count(key: str, sign: int, among=noisy) -> str:
        hits = [r for r in among if ss.significant(per_rate[r][key])]
        return str(sum(np.sign(per_rate[r][key]["mean"]) == sign for r in hits))

    up, down = int(count("rec_best_vs_one", 1)), int(count("rec_best_vs_one", -1))
    if up == len(noisy):
        answer = "yes, at every noise rate"
    elif up:
        answer = f"yes, but only at {up} of the {len(noisy)} noise rates"
    elif down:
        answer = f"no: it recovers fewer true labels at {down} of the {len(noisy)} noise rates"
    elif all(per_rate[r]["best_alpha"] == 1.0 for r in noisy):
        answer = "no: validation data choose α = 1, no distillation, at every noise rate"
    else:
        answer = "not that these seeds can tell: every interval includes 0"
    out["answer"] = answer
    first = study[noisy[0]]["records"][0]["config"]
    out |= {
        "rates": ", ".join(_pct(r, 0) for r in sorted(per_rate)),
        "n_rates": str(len(per_rate)),
        "n_noisy": str(len(noisy)),
        "n_seeds": str(len({r["config"]["seed"] for r in study[noisy[0]]["records"]})),
        "n_alphas": str(len({r["config"]["alpha"] for r in study[noisy[0]]["records"]})),
        "n_runs": str(sum(len(e["records"]) for e in study.values())),
        "train_size": f"{first['data']['train_size']:,}",
        "epochs": str(first["epochs"]),
        "temperature": f"{first['temperature']:g}",
        "teacher_epochs": str(study[noisy[0]]["teachers"][0]["config"]["epochs"]),
        "best_alphas": ", ".join(
            f"{per_rate[r]['best_alpha']:g} at {_pct(r, 0)}" for r in sorted(per_rate)
        ),
        "n_rec_best_up": count("rec_best_vs_one", 1),
        "n_rec_best_down": count("rec_best_vs_one", -1),
        "n_rec_zero_up": count("rec_zero_vs_one", 1),
        "n_rec_zero_down": count("rec_zero_vs_one", -1),
        "n_rec_teacher_up": count("rec_best_vs_teacher", 1),
        "n_rec_teacher_down": count("rec_best_vs_teacher", -1),
        "n_best_below_one": str(sum(per_rate[r]["best_alpha"] < 1 for r in noisy)),
        "student_parameters": f"{study[noisy[0]]['records'][0]['parameters']:,}",
        "n_gain_up": count("gain", 1, sorted(per_rate)),
        "n_gain_down": count("gain", -1, sorted(per_rate)),
        "seconds": ss.seconds(study.values(), "records"),
        "teacher_seconds": ss.seconds(study.values(), "teachers"),
    }
    return out


# --- figures ----------------------------------------------------------------------------------


def _long(study: dict[float, dict]) -> pd.DataFrame:
    return pd.concat(
        [e["table"].assign(noise=round(100 * rate, 1)) for rate, e in sorted(study.items())],
        ignore_index=True,
    )


def accuracy_figure(study: dict[float, dict], value: str = "test_accuracy") -> plt.Figure:
    """`value` against alpha, one line per noise rate, 95% CIs (the teachers are in the table)."""
    fig, ax = plt.subplots(figsize=(WIDTH, 4.4))
    ss.curves(ax, _long(study), value, "noise", {}, dodge=0.01)
    ax.set_ylabel(value.replace("_", " ").replace("val ", "validation "))
    ss.clamp(ax)
    ax.legend(title="label noise (%)", fontsize="small", loc="lower right", ncols=2)
    fig.tight_layout()
    return fig


def recovery_figure(study: dict[float, dict]) -> plt.Figure:
    """Per noisy rate (columns): students' recovery (top) and memorisation (bottom) of the
    flipped labels against alpha, 95% CIs; the dotted lines and bands are the teachers'."""
    noisy = [(r, e) for r, e in sorted(study.items()) if e["table"]["recovery"].notna().any()]
    fig, axes = plt.subplots(
        2, len(noisy), figsize=(WIDTH, 5.4), sharey="row", sharex=True, squeeze=False
    )
    for j, (rate, entry) in enumerate(noisy):
        table = entry["table"].assign(what=0.0)
        best = ss.best_alpha(entry["records"])
        for i, key in enumerate(("recovery", "memorisation")):
            ax = axes[i, j]
            ss.curves(ax, table, key, "what", style="o-" if i == 0 else "s--", first_colour=i)
            ss.band(ax, [t["noisy_labels"][key] for t in entry["teachers"]], f"C{i}")
            ax.axvline(best, color="gray", lw=0.8, ls="-.")
            ax.set_xticks([0, 0.5, 1], ["0", "0.5", "1"])
            ax.set_xlabel("α" if i == 1 else "")
            ss.clamp(ax)
        axes[0, j].set_title(f"{_pct(rate, 0)} flipped\n(best α = {best:g})", fontsize=9)
    axes[0, 0].set_ylabel("recovery\n(true label)")
    axes[1, 0].set_ylabel("memorisation\n(given wrong label)")
    handles = [
        plt.Line2D([], [], color="C0", marker="o", label="student: recovery"),
        plt.Line2D([], [], color="C1", marker="s", ls="--", label="student: memorisation"),
        plt.Line2D([], [], color="gray", ls=":", label="teacher (band: 95% CI)"),
        plt.Line2D([], [], color="gray", ls="-.", label="best α (validation)"),
    ]
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.legend(handles=handles, loc="lower center", ncols=4, fontsize="x-small", frameon=False)
    return fig


def comparison_figure(study: dict[float, dict]) -> plt.Figure:
    """Recovery against the noise rate: the teacher, and students at α = 0, best α, α = 1."""
    rows = []
    for rate, entry in sorted(study.items()):
        n = rate_numbers(entry)
        if not n["flipped"]:
            continue
        series = {
            "teacher": n["teacher_recovery"],
            "student, α = 0": n["recovery"][0.0],
            "student, best α (validation)": n["recovery"][n["best_alpha"]],
            "student, α = 1": n["recovery"][1.0],
        }
        rows += [{"noise": 100 * rate, "who": k} | s for k, s in series.items()]
    frame = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(WIDTH, 3.8))
    levels = sorted(frame["noise"].unique())
    position = {x: i for i, x in enumerate(levels)}
    for i, (who, part) in enumerate(frame.groupby("who", sort=False)):
        ax.errorbar(
            part["noise"].map(position) + 0.08 * (i - 1.5),
            part["mean"],
            yerr=part["half_width"].fillna(0),
            fmt="o-" if who != "teacher" else "D:",
            ms=5,
            capsize=3,
            color="k" if who == "teacher" else f"C{i}",
            label=who,
        )
    ax.set_xticks(range(len(levels)), [f"{x:g}%" for x in levels])
    ax.set(xlabel="label noise (share of training labels flipped)")
    ax.set_ylabel("recovery of the true label")
    ss.clamp(ax)
    ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    return fig
