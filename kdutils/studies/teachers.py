"""Teacher quality: where does the best alpha lie when the teacher is weaker or stronger?

Each condition is one teacher, and the whole alpha sweep reruns at the studies' scale
(`sweeps.variant`) with the same students, seeds and noisy labels:

- `epochs_<e>`: the report's teacher stopped after e epochs (the studies' base teacher is one
  of them; the longest is the "longest-trained" teacher, trained to the end of the budget,
  whether or not its validation accuracy still rises);
- `tiny`: a deliberately small teacher (`models.tiny_teacher`, smaller than the student),
  trained as long as the longest-trained one.

The best alpha is chosen on validation accuracy only. An alpha = 1 student never looks at its
teacher, so it is the same run in every condition (a check the chapter states).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from kdutils.plots import WIDTH
from kdutils.profiles import Profile
from kdutils.stats import format_ci, mean_ci
from kdutils.studies import load_study, sweeps
from kdutils.studies import sweepstats as ss

TITLE = "Teacher quality"

TINY = "tiny_teacher"  # the small teacher's name in kdutils.models

# Per profile: the report teacher's epoch counts (they must include the studies' base teacher
# epochs), which of them is the longest-trained teacher, the tiny teacher's epochs and, for
# smoke only, fewer alphas (compiling 11 fused students costs ~40 s of CPU per seed).
SETTINGS = {
    # CI: one short and one longer teacher, and the tiny one.
    "smoke": {"epochs": (1, 3), "trained": 3, "tiny_epochs": 3, "alphas": (0.0, 0.5, 1.0)},
    # The book: base teacher 3 epochs on 5k images; 10 epochs is the longest (it overfits);
    # 1, 2 and 5 are the early-stopped teachers.
    "default": {"epochs": (1, 2, 3, 5, 10), "trained": 10, "tiny_epochs": 10},
    # The report's scale (55k images; base teacher 10 epochs), for a GPU.
    "full": {"epochs": (1, 3, 10, 30), "trained": 30, "tiny_epochs": 30},
}


def settings(profile: Profile) -> dict:
    s = SETTINGS[profile.name]
    base = sweeps.base_profile(profile).teacher_epochs
    if base not in s["epochs"] or s["trained"] != max(s["epochs"]):
        raise ValueError(f"{profile.name}: epochs {s['epochs']} must hold the base {base}")
    return s | {"base": base}


def conditions(profile: Profile) -> list[str]:
    return [f"epochs_{e}" for e in settings(profile)["epochs"]] + ["tiny"]


def variant(profile: Profile, condition: str) -> Profile:
    """The condition's profile: the studies' scale with its teacher."""
    s = settings(profile)
    extra = {"alphas": s["alphas"]} if "alphas" in s else {}
    if condition == "tiny":
        return sweeps.variant(profile, teacher=TINY, teacher_epochs=s["tiny_epochs"], **extra)
    epochs = int(condition.removeprefix("epochs_")) if condition.startswith("epochs_") else None
    if epochs not in s["epochs"]:
        raise ValueError(f"unknown condition={condition!r}; choose one of {conditions(profile)}")
    return sweeps.variant(profile, teacher_epochs=epochs, **extra)


def run(profile: Profile, condition: str, directory: Path) -> list[dict]:
    return sweeps.run(variant(profile, condition), Path(directory))


def is_done(profile: Profile, condition: str, directory: Path) -> bool:
    return sweeps.is_done(variant(profile, condition), Path(directory))


def summary(records: list[dict]) -> pd.DataFrame:
    return sweeps.summary(records)


def label(profile: Profile, condition: str) -> str:
    """'1 epoch', '3 epochs (base)', '10 epochs (longest)', 'tiny, 10 epochs'."""
    s = settings(profile)
    v = variant(profile, condition)
    e = v.teacher_epochs
    text = f"{e} epoch{'s' * (e != 1)}"
    if condition == "tiny":
        return f"tiny, {text}"
    roles = (("base", e == s["base"]), ("longest", e == s["trained"]))
    notes = [n for n, hit in roles if hit]
    return text + (f" ({', '.join(notes)})" if notes else "")


# --- the chapter: everything from records -----------------------------------------------------


def load(profile: Profile) -> dict[str, dict]:
    """{condition: {"records", "teachers", "table", "label"}}; raises if one is missing."""
    study = load_study(profile, "teachers")
    missing = [c for c in conditions(profile) if c not in study]
    if missing:
        raise RuntimeError(
            f"No results for {missing} in profile {profile.name!r}: run "
            f"`python -m kdutils.sweep --profile {profile.name} --study teachers` first."
        )
    return {
        c: {
            "records": study[c],
            "teachers": ss.teacher_records(variant(profile, c)),
            "table": ss.final_table(study[c]),
            "label": label(profile, c),
        }
        for c in conditions(profile)
    }


def condition_numbers(entry: dict) -> dict:
    """Teacher accuracy, best alpha and paired gains of one teacher's sweep."""
    table, records = entry["table"], entry["records"]
    best = ss.best_alpha(records)
    test = {a: ss.by_seed(table, a, "test_accuracy") for a in (0.0, best, 1.0)}
    return {
        "best_alpha": best,
        "parameters": entry["teachers"][0]["parameters"],
        "epochs": entry["teachers"][0]["config"]["epochs"],
        "teacher_val": mean_ci([t["val_accuracy"] for t in entry["teachers"]]),
        "teacher_test": mean_ci([t["test_accuracy"] for t in entry["teachers"]]),
        "test": {a: mean_ci(v) for a, v in test.items()},
        "gain": ss.paired(test[best], test[1.0]),
        "zero_vs_one": ss.paired(test[0.0], test[1.0]),
        "student_minus_teacher": ss.paired(
            test[best],
            pd.Series({t["config"]["seed"]: t["test_accuracy"] for t in entry["teachers"]}),
        ),
    }


def teacher_table(study: dict[str, dict]) -> pd.DataFrame:
    """One row per teacher: size, accuracy, best alpha and what distillation buys, 95% CIs."""
    rows = []
    for entry in study.values():
        n = condition_numbers(entry)
        best = n["best_alpha"]
        rows.append(
            {
                "teacher": entry["label"],
                "parameters": f"{n['parameters']:,}",
                "teacher test accuracy": format_ci(n["teacher_test"]),
                "best α (validation)": f"{best:g}",
                "student test accuracy, best α": format_ci(n["test"][best]),
                "best α − α = 1": ss.gain_text(n["gain"], best),
                "α = 0 − α = 1": ss.diff_text(n["zero_vs_one"]),
            }
        )
    return pd.DataFrame(rows).set_index("teacher")


def _curves(entry: dict, key: str = "val_accuracy") -> np.ndarray:
    """(seeds, epochs) array of one per-epoch teacher metric."""
    return np.array([[h[key] for h in t["history"]] for t in entry["teachers"]])


def _role(profile: Profile) -> dict[str, str]:
    s = settings(profile)
    return {
        "short": f"epochs_{min(s['epochs'])}",
        "base": f"epochs_{s['base']}",
        "trained": f"epochs_{s['trained']}",
        "tiny": "tiny",
    }


def helps(gain: dict, best: float) -> str:
    """Does distilling at the best alpha (validation) beat alpha = 1? In words."""
    if best == 1.0:
        return "no: validation data choose α = 1, no distillation at all"
    if not ss.significant(gain):
        return "not that these seeds can tell: the interval includes 0"
    return "yes: it beats α = 1" if gain["mean"] > 0 else "no: it falls behind α = 1"


def numbers(profile: Profile, study: dict[str, dict]) -> dict[str, str]:
    """Every number the chapter's prose states, formatted (glue them with a `teachers_` prefix).

    Roles: `short` (fewest epochs), `base` (the studies' teacher), `trained` (most epochs) and
    `tiny`.
    """
    per = {c: condition_numbers(e) for c, e in study.items()}
    out: dict[str, str] = {}
    for role, c in _role(profile).items():
        n = per[c]
        best = n["best_alpha"]
        out |= {
            f"{role}_label": study[c]["label"],
            f"{role}_epochs": str(n["epochs"]),
            f"{role}_parameters": f"{n['parameters']:,}",
            f"{role}_teacher_test": format_ci(n["teacher_test"]),
            f"{role}_teacher_val": format_ci(n["teacher_val"]),
            f"{role}_best_alpha": f"{best:g}",
            f"{role}_test_best": format_ci(n["test"][best]),
            f"{role}_test_zero": format_ci(n["test"][0.0]),
            f"{role}_test_one": format_ci(n["test"][1.0]),
            f"{role}_helps": helps(n["gain"], best),
            f"{role}_gain": ss.gain_text(n["gain"], best),
            f"{role}_gain_dir": ss.direction(n["gain"]),
            f"{role}_zero_vs_one": ss.diff_text(n["zero_vs_one"]),
            f"{role}_zero_vs_one_dir": ss.direction(n["zero_vs_one"]),
            f"{role}_minus_teacher": ss.diff_text(n["student_minus_teacher"]),
            f"{role}_minus_teacher_dir": ss.direction(n["student_minus_teacher"]),
        }
    # The longest-trained teacher's validation curve: early gain against late gain.
    trained = _curves(study[_role(profile)["trained"]])
    epochs = trained.shape[1]
    window = max(1, epochs // 3)
    late = ss.paired(pd.Series(trained[:, -1]), pd.Series(trained[:, -1 - window]))
    early = ss.paired(pd.Series(trained[:, window]), pd.Series(trained[:, 0]))
    # A teacher stopped after e epochs is the first e epochs of the longer run (same seed,
    # same batches): its last validation accuracy against the long run's at epoch e.
    gaps = []
    for c, entry in study.items():
        if c == "tiny":
            continue
        short = _curves(entry)
        gaps.append(np.abs(short[:, -1] - trained[:, short.shape[1] - 1]).max())
    alpha_one = np.array(
        [ss.by_seed(e["table"], 1.0, "test_accuracy").to_numpy() for e in study.values()]
    )
    student = study[_role(profile)["base"]]["records"][0]
    order = sorted(per, key=lambda c: per[c]["teacher_test"]["mean"])
    out |= {
        "trained_epochs_total": str(epochs),
        "window": str(window),
        "val_first": format_ci(mean_ci(trained[:, 0])),
        "val_last": format_ci(mean_ci(trained[:, -1])),
        "val_window_start": str(epochs - window),
        "val_late_gain": ss.diff_text(late),
        "val_late_verdict": {
            "higher": "still rising",
            "lower": "falling: it fits its noisy labels ever more closely and generalises worse",
        }.get(ss.direction(late), "flat within seed noise"),
        "val_best_epoch": str(int(np.argmax(trained.mean(axis=0))) + 1),
        "val_best": format_ci(mean_ci(trained[:, int(np.argmax(trained.mean(axis=0)))])),
        "val_early_gain": ss.diff_text(early),
        "window_plus_one": str(window + 1),
        "prefix_gap": f"{100 * max(gaps):.2f}",
        "alpha_one_spread": f"{100 * float(np.ptp(alpha_one, axis=0).max()):.2f}",
        "student_parameters": f"{student['parameters']:,}",
        "tiny_ratio": f"{per['tiny']['parameters'] / student['parameters']:.2f}",
        "n_teachers": str(len(study)),
        "n_seeds": str(len(study["tiny"]["teachers"])),
        "n_alphas": str(len(study["tiny"]["table"]["alpha"].unique())),
        "n_runs": str(sum(len(e["records"]) for e in study.values())),
        "train_size": f"{student['config']['data']['train_size']:,}",
        "noise": f"{student['config']['data']['noise_rate']:.0%}",
        "epochs": str(student["config"]["epochs"]),
        "temperature": f"{student['config']['temperature']:g}",
        "best_by_teacher": "; ".join(
            f"{study[c]['label']}: {per[c]['best_alpha']:g}" for c in order
        ),
        "n_gain_up": str(sum(ss.direction(n["gain"]) == "higher" for n in per.values())),
        "n_gain_down": str(sum(ss.direction(n["gain"]) == "lower" for n in per.values())),
        "seconds": ss.seconds(study.values(), "records"),
        "teacher_seconds": ss.seconds(study.values(), "teachers"),
    }
    return out


# --- figures ----------------------------------------------------------------------------------


def curve_figure(study: dict[str, dict]) -> plt.Figure:
    """Teachers' validation accuracy per epoch (mean, 95% CI band): the longest report teacher
    and the tiny one, and each shorter teacher's final epoch as a point with its CI."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.6))
    longest = max((c for c in study if c != "tiny"), key=lambda c: _curves(study[c]).shape[1])
    for i, c in enumerate((longest, "tiny")):
        values = _curves(study[c])
        s = [mean_ci(values[:, j]) for j in range(values.shape[1])]
        epochs = np.arange(1, values.shape[1] + 1)
        ax.plot(epochs, [x["mean"] for x in s], "o-", ms=4, color=f"C{i}", label=study[c]["label"])
        ax.fill_between(
            epochs,
            [x["low"] for x in s],
            [x["high"] for x in s],
            color=f"C{i}",
            alpha=0.2,
            lw=0,
        )
    for j, c in enumerate(c for c in study if c not in ("tiny", longest)):
        values = _curves(study[c])[:, -1]
        s = mean_ci(values)
        ax.errorbar(
            _curves(study[c]).shape[1] + 0.12,
            s["mean"],
            yerr=0 if np.isnan(s["half_width"]) else s["half_width"],
            fmt="D",
            ms=5,
            capsize=3,
            color=f"C{2 + j}",
            label=f"{study[c]['label']}: final",
        )
    ax.set(xlabel="teacher epoch", ylabel="teacher validation accuracy")
    ss.clamp(ax)
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    return fig


def alpha_figure(study: dict[str, dict], value: str = "test_accuracy") -> plt.Figure:
    """Student `value` against alpha, one line per teacher, 95% CIs."""
    frames, labels = [], {}
    for i, entry in enumerate(study.values()):
        frames.append(entry["table"].assign(teacher=float(i)))
        n = mean_ci([t["test_accuracy"] for t in entry["teachers"]])
        labels[float(i)] = f"{entry['label']} — teacher {100 * n['mean']:.1f}%"
    fig, ax = plt.subplots(figsize=(WIDTH, 5.2))
    ss.curves(ax, pd.concat(frames, ignore_index=True), value, "teacher", labels)
    ax.set_ylabel("student " + value.replace("_", " ").replace("val ", "validation "))
    ss.clamp(ax)
    ax.legend(
        title="teacher (its mean test accuracy)",
        fontsize="small",
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncols=2,
        frameon=False,
    )
    fig.tight_layout()
    return fig


def best_alpha_figure(study: dict[str, dict]) -> plt.Figure:
    """Left: best alpha (validation) against the teacher's test accuracy. Right: the student's
    paired gain at that alpha over alpha = 1. Horizontal bars: the teachers' 95% CIs."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(WIDTH, 3.6))
    for i, entry in enumerate(study.values()):
        n = condition_numbers(entry)
        x, xerr = 100 * n["teacher_test"]["mean"], 100 * n["teacher_test"]["half_width"]
        xerr = 0 if np.isnan(xerr) else xerr
        gain = n["gain"]
        yerr = 0 if np.isnan(gain["half_width"]) else 100 * gain["half_width"]
        style = {"fmt": "o", "ms": 6, "capsize": 3, "color": f"C{i}", "label": entry["label"]}
        left.errorbar(x, n["best_alpha"], xerr=xerr, **style)
        right.errorbar(x, 100 * gain["mean"], xerr=xerr, yerr=yerr, **style)
    left.set(xlabel="teacher test accuracy (%)", ylabel="best α (validation)", ylim=(-0.05, 1.05))
    right.axhline(0, color="gray", lw=1)
    right.set(xlabel="teacher test accuracy (%)", ylabel="best α − α = 1 (test, points)")
    for ax in (left, right):
        ss.clamp(ax, "x", 0, 100)
    handles, labels = left.get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncols=3, fontsize="small", frameon=False)
    return fig
