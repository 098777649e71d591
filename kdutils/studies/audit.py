"""Auditing the original study: its three bugs, put back on purpose, on the book's own data.

The report's code (Hao, 2023) had three bugs that `kdutils` refuses. Each condition puts one
back and trains the buggy runs next to corrected ones, on the same data, teachers, seeds and
epochs, so that the two α curves differ only by the bug:

- `categorical_accuracy`: students scored with `keras.metrics.CategoricalAccuracy` against
  integer labels, next to their true accuracy (and a perfect model's score).
- `trainable_teacher`: `ExampleDistiller`, a faithful minimal replica of the Keras 3 version of
  the Keras distillation example, which overrides `compute_loss` only, so Keras's default
  `train_step` also updates the teacher; against `kdutils.Distiller` with the teacher frozen.
- `reused_student`: one student carried through every α in turn, each run starting from the
  weights the last one ended with; against the book's main sweep, a new student per α.

Student seed *s* distils from the book's teacher of seed *s* (`results/<profile>/teachers`).
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from keras import ops

from kdutils.analysis.plots import WIDTH
from kdutils.analysis.stats import RATE, error_bar, format_ci, mean_ci, summarize
from kdutils.distill import metrics
from kdutils.distill.data import Dataset, load_dataset
from kdutils.distill.distiller import Distiller, with_teacher_logits
from kdutils.distill.losses import distillation_loss
from kdutils.distill.models import build_model
from kdutils.distill.reportmetric import (  # bug 1, also used outside the audit
    REPORT_BATCH_SIZE,
    categorical_scores,
    perfect_scores,
)
from kdutils.distill.repro import environment, set_seed
from kdutils.profiles import (
    ALPHAS,
    STEPS_PER_EXECUTION,
    Profile,
    alpha_slug,
    config_key,
    same_config,
)
from kdutils.results import budgets_table, epoch_records, read_json, write_json
from kdutils.studies import grid_stats as ss
from kdutils.teacher_cache import Teacher, get_teacher, load_teacher, load_weights, teacher_paths

TITLE = "Auditing the original study's bugs"

CONDITIONS = ("categorical_accuracy", "trainable_teacher", "reused_student", "compounded")

FIVE = (0.0, 0.2, 0.5, 0.8, 1.0)
# The drifted teacher is scored on the first this many validation images (its forward pass
# costs about 1 s per 1,000 images here); its accuracy before is read on the same images.
TEACHER_VAL_IMAGES = 2_000

# Per profile and condition: the alphas, the epochs per run and, for the trainable teacher,
# how many of the profile's training images (the first n) the buggy runs train on.
# `seeds`, where given, replaces the profile's seeds (smoke only, to stay fast).
# `epochs` of categorical_accuracy and reused_student must be one of the profile's budgets, so
# that the main sweep scores a new student after exactly that many epochs.
SETTINGS = {
    # CI: every code path in seconds.
    "smoke": {
        "categorical_accuracy": {"alphas": (1.0,), "epochs": 1},
        "trainable_teacher": {"alphas": (0.0, 1.0), "train_size": 128, "epochs": 1, "seeds": (0,)},
        "reused_student": {"alphas": (0.0, 1.0), "epochs": 1},
        "compounded": {"alphas": (0.0, 1.0), "train_size": 128, "epochs": 1, "seeds": (0,)},
    },
    # The book, on 2 CPU cores. The trainable teacher runs forward and backward at every
    # step (about 30 s per epoch of 10k images), so that bug gets 2k images and 2 epochs.
    "default": {
        "categorical_accuracy": {"alphas": FIVE, "epochs": 2, "seeds": (0, 1, 2)},
        "trainable_teacher": {"alphas": FIVE, "train_size": 2_000, "epochs": 2, "seeds": (0, 1, 2)},
        "reused_student": {"alphas": ALPHAS, "epochs": 2, "seeds": (0, 1, 2)},
        # The report's pipeline as it ran, every bug at once: 1 epoch per alpha on 2k images,
        # two chains (the trainable teacher's forward and backward passes cost most).
        "compounded": {"alphas": ALPHAS, "train_size": 2_000, "epochs": 1, "seeds": (0, 1)},
    },
    # The report's scale, for a GPU: every alpha, at the main sweep's first full budget (100
    # epochs; the trainable teacher on every training image).
    "full": {
        "categorical_accuracy": {"alphas": ALPHAS, "epochs": 100},
        "trainable_teacher": {"alphas": ALPHAS, "train_size": None, "epochs": 10},
        "reused_student": {"alphas": ALPHAS, "epochs": 100},
        # As the report's one real run: 20 epochs per alpha on every training image.
        "compounded": {"alphas": ALPHAS, "train_size": None, "epochs": 20},
    },
}

# The order in which the reused student visits the alphas: ascending, 0 to 1.
ORDER = "ascending"
VARIANTS = ("buggy", "corrected")


def settings(profile: Profile, condition: str) -> dict:
    """This condition's settings for `profile`'s name."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition={condition!r}; choose one of {list(CONDITIONS)}")
    s = dict(SETTINGS[profile.name][condition])
    if (
        condition in ("categorical_accuracy", "reused_student")
        and s["epochs"] not in profile.budgets
    ):
        raise ValueError(f"{condition}: epochs={s['epochs']} is not a budget {profile.budgets}")
    return s


def conditions(profile: Profile) -> list[str]:
    return list(CONDITIONS)


def teachers(profile: Profile, condition: str) -> list[tuple]:
    """The main sweep's teachers this condition distils (`main_dir`), which other pages share.
    (Where their weights are missing, `teacher_home` retrains into the condition's folder.)"""
    from kdutils.results import results_dir

    seeds = settings(profile, condition).get("seeds", profile.seeds)
    return [(profile, s, results_dir(profile.name)) for s in seeds]


def main_dir(directory: Path) -> Path:
    """`results/<profile>` from a condition's `results/<profile>/studies/audit/<condition>`."""
    return Path(directory).parents[2]


# --- configs and records ---------------------------------------------------------------------


def run_config(profile: Profile, condition: str, seed: int, alpha=None, variant=None) -> dict:
    """Everything one run depends on; stored in, and matched against, its record."""
    s = settings(profile, condition)
    config = {
        "study": "audit",
        "condition": condition,
        "profile": profile.name,
        "seed": int(seed),
        "data": profile.data_config(seed),
        "teacher": config_key(profile.teacher_config(seed)),
        "student": profile.student,
        "temperature": profile.temperature,
        "batch_size": profile.batch_size,
        "learning_rate": profile.learning_rate,
        "epochs": s["epochs"],
    }
    if condition in ("reused_student", "compounded"):
        order = sorted(s["alphas"], reverse=ORDER == "descending")
        config |= {"alphas": [float(a) for a in order], "order": ORDER}
        if condition == "compounded":
            config |= {"train_size": s["train_size"], "model": profile.teacher}
            config |= {"batch_size": REPORT_BATCH_SIZE, "metric": "CategoricalAccuracy"}
        return config
    config["alpha"] = float(alpha)
    if condition == "trainable_teacher":
        config |= {"variant": variant, "train_size": s["train_size"], "model": profile.teacher}
        config["teacher_val_images"] = TEACHER_VAL_IMAGES
    return config


def planned(profile: Profile, condition: str) -> list[dict]:
    """The configs of every run of `condition`."""
    s = settings(profile, condition)
    if condition in ("reused_student", "compounded"):
        return [run_config(profile, condition, seed) for seed in s.get("seeds", profile.seeds)]
    variants = VARIANTS if condition == "trainable_teacher" else (None,)
    return [
        run_config(profile, condition, seed, alpha, variant)
        for variant in variants
        for alpha in s["alphas"]
        for seed in s.get("seeds", profile.seeds)
    ]


def record_path(directory: Path, config: dict) -> Path:
    """`runs/[variant_]alpha_*_seed*.json`, or `runs/seed*.json` for a reused-student chain."""
    parts = [config.get("variant"), "alpha" in config and alpha_slug(config["alpha"])]
    name = "_".join([p for p in parts if p] + [f"seed{config['seed']}"])
    return Path(directory) / "runs" / f"{name}.json"


def stored(directory: Path, config: dict) -> dict | None:
    """The stored record of the run `config` if its config matches, else None."""
    record = read_json(record_path(directory, config))
    return record if record and same_config(record.get("config"), config) else None


def is_done(profile: Profile, condition: str, directory: Path) -> bool:
    return all(stored(directory, c) for c in planned(profile, condition))


# --- bug 1: CategoricalAccuracy on integer labels -------------------------------------------


# --- bug 2: the teacher left trainable --------------------------------------------------------


class ExampleDistiller(keras.Model):
    """The `Distiller` of the Keras distillation example (Borup, 2020; Keras 3 version), kept
    with its bug. Only the trailing `**kwargs` of `compile` (for `steps_per_execution`, which
    does not change the updates) are added.

    It overrides `compute_loss` only, so Keras's default `train_step` differentiates the loss
    with respect to `self.trainable_weights`: the student's *and the teacher's*. The teacher is
    called with `training=False` (which only affects layers such as dropout and batch
    normalisation) and without `stop_gradient`, so the distillation term moves it too.
    Setting `teacher.trainable = False` before compiling is the one-line fix.
    """

    def __init__(self, student, teacher):
        super().__init__()
        self.teacher = teacher
        self.student = student

    def compile(
        self,
        optimizer,
        metrics,
        student_loss_fn,
        distillation_loss_fn,
        alpha=0.1,
        temperature=3,
        **kwargs,
    ):
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self.student_loss_fn = student_loss_fn
        self.distillation_loss_fn = distillation_loss_fn
        self.alpha = alpha
        self.temperature = temperature

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, allow_empty=False):
        teacher_pred = self.teacher(x, training=False)
        student_loss = self.student_loss_fn(y, y_pred)
        distillation_loss = self.distillation_loss_fn(
            ops.softmax(teacher_pred / self.temperature, axis=1),
            ops.softmax(y_pred / self.temperature, axis=1),
        ) * (self.temperature**2)
        loss = self.alpha * student_loss + (1 - self.alpha) * distillation_loss
        return loss

    def call(self, x):
        return self.student(x)


def example_distiller(
    student, teacher, alpha: float, temperature: float, learning_rate: float, metric=None
):
    """An `ExampleDistiller` compiled as the example compiles it (with this book's Adam);
    `metric` replaces its SparseCategoricalAccuracy (the report used CategoricalAccuracy)."""
    distiller = ExampleDistiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        metrics=[metric or keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        distillation_loss_fn=keras.losses.KLDivergence(),
        alpha=alpha,
        temperature=temperature,
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return distiller


def relative_change(before: list[np.ndarray], after: list[np.ndarray]) -> float:
    """‖after − before‖ / ‖before‖ over all weights, as one vector."""
    diff = sum(float(np.sum((a - b) ** 2)) for a, b in zip(after, before, strict=True))
    norm = sum(float(np.sum(b**2)) for b in before)
    return float(np.sqrt(diff / norm))


def teacher_home(profile: Profile, seed: int, directory: Path) -> Path:
    """Where the teacher of `seed` is cached: the book's `results/<profile>/teachers`, unless
    its record is there without its weights file (weights are not committed); then the same
    config is trained into this condition's own folder."""
    home = main_dir(directory)
    weights = teacher_paths(home, profile.teacher_seed(seed))[2]
    if load_teacher(profile, seed, home) is None or weights.exists():
        return home
    return Path(directory)


def teacher_model(profile: Profile, seed: int, directory: Path, data: Dataset):
    """(the trained teacher of `seed` as a model, its cached `Teacher`)."""
    home = teacher_home(profile, seed, directory)
    cached = get_teacher(profile, seed, home, data)
    model = build_model(profile.teacher, data.x_train.shape[1:], data.num_classes)
    weights = teacher_paths(home, profile.teacher_seed(seed))[2]
    if not load_weights(model, weights):
        raise RuntimeError(
            f"{weights}: the teacher's weights cannot be loaded; delete the file, and the "
            f"teacher of seed {seed} is trained again for this study"
        )
    check = model.predict(data.x_val[:256], batch_size=512, verbose=0)
    if not np.allclose(check, cached.logits["val"][:256], atol=1e-3):
        raise RuntimeError(f"teacher seed {seed}: weights do not reproduce its cached logits")
    return model, cached


def _student_scores(student, data: Dataset, teacher: Teacher) -> dict:
    val = student.predict(data.x_val, batch_size=1024, verbose=0)
    test = student.predict(data.x_test, batch_size=1024, verbose=0)
    return {
        "val_accuracy": metrics.accuracy(val, data.y_val),
        "test_accuracy": metrics.accuracy(test, data.y_test),
        "test_fidelity": metrics.agreement(test, teacher.logits["test"]),
    }


def _fit_corrected(config: dict, x, y, logits, epochs: int, seed: int, weights=None):
    """A new student, started from `weights` if given, trained with `kdutils.Distiller` on
    cached teacher logits. Seeded as the main sweep seeds its runs."""
    set_seed(seed)
    student = build_model(config["student"], x.shape[1:], logits.shape[-1])
    if weights is not None:
        student.set_weights(weights)
    distiller = Distiller(student, alpha=config["alpha"], temperature=config["temperature"])
    distiller.compile(
        optimizer=keras.optimizers.Adam(config["learning_rate"]),
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    history = distiller.fit(
        with_teacher_logits(x, logits),
        y,
        batch_size=config["batch_size"],
        epochs=epochs,
        verbose=0,
    ).history
    return student, epoch_records(history)


def run_trainable_teacher(profile: Profile, config: dict, directory: Path, data: Dataset):
    """One run of the trainable-teacher condition: `buggy` (ExampleDistiller, teacher left
    trainable) or `corrected` (kdutils.Distiller, the same teacher frozen, cached logits)."""
    seed, n = config["seed"], config["train_size"] or len(data.y_train)
    x, y = data.x_train[:n], data.y_train[:n]
    record = {"config": config}
    if config["variant"] == "corrected":
        cached = get_teacher(profile, seed, teacher_home(profile, seed, directory), data)
        start = time.perf_counter()
        student, history = _fit_corrected(
            config, x, y, cached.logits["train"][:n], config["epochs"], seed
        )
        seconds = time.perf_counter() - start
        record["teacher_drift"] = 0.0
    else:
        teacher, cached = teacher_model(profile, seed, directory, data)
        before = [np.array(w) for w in teacher.get_weights()]
        set_seed(seed)
        student = build_model(config["student"], x.shape[1:], data.num_classes)
        distiller = example_distiller(
            student, teacher, config["alpha"], config["temperature"], config["learning_rate"]
        )
        start = time.perf_counter()
        fit = distiller.fit(
            x, y, batch_size=config["batch_size"], epochs=config["epochs"], verbose=0
        )
        seconds, history = time.perf_counter() - start, epoch_records(fit.history)
        after = [np.array(w) for w in teacher.get_weights()]
        drift = relative_change(before, after)
        record["teacher_drift"] = drift
        record["teacher_layer_drift"] = {
            w.path: relative_change([b], [a])
            for w, b, a in zip(teacher.weights, before, after, strict=True)
        }
        record["trainable_weights"] = {
            "tensors": len(distiller.trainable_weights),
            "parameters": int(sum(np.prod(w.shape) for w in distiller.trainable_weights)),
        }
        # The drifted teacher on validation images; unchanged weights need no second look.
        m = config["teacher_val_images"]
        x_val, y_val, original = data.x_val[:m], data.y_val[:m], cached.logits["val"][:m]
        val = teacher.predict(x_val, batch_size=512, verbose=0) if drift else original
        record["teacher_val_accuracy_after"] = metrics.accuracy(val, y_val)
        record["teacher_val_agreement"] = metrics.agreement(val, original)
    train_logits = student.predict(x, batch_size=1024, verbose=0)
    soft = distillation_loss(cached.logits["train"][:n], train_logits, config["temperature"])
    record |= _student_scores(student, data, cached) | {
        "history": history,
        "final_loss": history[-1]["loss"],
        "soft_loss_original_teacher": float(ops.convert_to_numpy(soft)),
        "teacher_val_accuracy_before": metrics.accuracy(
            cached.logits["val"][: config["teacher_val_images"]],
            data.y_val[: config["teacher_val_images"]],
        ),
        "teacher_test_accuracy": cached.record["test_accuracy"],
        "train_seconds": seconds,
        "environment": environment(),
    }
    record.setdefault("teacher_val_accuracy_after", record["teacher_val_accuracy_before"])
    return record


# --- bug 1 and bug 3: students on cached logits ----------------------------------------------


def run_categorical(profile: Profile, config: dict, directory: Path, data: Dataset) -> dict:
    """A new student (as in the main sweep), then scored with both accuracy metrics."""
    cached = get_teacher(profile, config["seed"], main_dir(directory), data)
    start = time.perf_counter()
    student, history = _fit_corrected(
        config, data.x_train, data.y_train, cached.logits["train"], config["epochs"], config["seed"]
    )
    seconds = time.perf_counter() - start
    test = student.predict(data.x_test, batch_size=1024, verbose=0)
    batch = config["batch_size"]
    return (
        {"config": config}
        | _student_scores(student, data, cached)
        | {
            "history": history,
            "categorical": categorical_scores(test, data.y_test, batch),
            "perfect": perfect_scores(data.y_test, batch),
            "train_seconds": seconds,
            "environment": environment(),
        }
    )


def train_chain(config: dict, x, y, logits, epochs: int, seed: int):
    """Yield (alpha, student, history) for one student carried through `config["alphas"]` in order.

    Each link gets a new Distiller and a new Adam optimizer, as a loop around the example's
    code would; only the student's weights carry over. Each link is seeded like the main
    sweep's run of that alpha, so it sees the same batches: the first link *is* that run.
    """
    weights = None
    for alpha in config["alphas"]:
        student, history = _fit_corrected(
            config | {"alpha": alpha}, x, y, logits, epochs, seed, weights=weights
        )
        weights = student.get_weights()
        yield alpha, student, history


def run_reused(profile: Profile, config: dict, directory: Path, data: Dataset) -> dict:
    """One student reused across every alpha, in the order `config["alphas"]`."""
    seed, epochs = config["seed"], config["epochs"]
    cached = get_teacher(profile, seed, main_dir(directory), data)
    links, start = [], time.perf_counter()
    chain = train_chain(config, data.x_train, data.y_train, cached.logits["train"], epochs, seed)
    for position, (alpha, student, history) in enumerate(chain):
        links.append(
            {"alpha": alpha, "position": position, "epochs_before": position * epochs}
            | _student_scores(student, data, cached)
            | {"history": history}
        )
    return {
        "config": config,
        "links": links,
        "train_seconds": time.perf_counter() - start,
        "environment": environment(),
    }


# --- every bug at once: the report's pipeline as it ran --------------------------------------


def run_compounded(profile: Profile, config: dict, directory: Path, data: Dataset) -> dict:
    """The report's loop: ONE student and ONE trainable teacher carried from alpha to alpha
    (ascending), each link an `ExampleDistiller` compiled with `CategoricalAccuracy` and fed
    integer labels in batches of 32, scored as the report printed it (1 - that metric) and by
    its true test accuracy."""
    seed, epochs = config["seed"], config["epochs"]
    n = config["train_size"] or len(data.y_train)
    teacher, cached = teacher_model(profile, seed, directory, data)
    original = [np.array(w) for w in teacher.get_weights()]
    set_seed(seed)
    student = build_model(config["student"], data.x_train.shape[1:], data.num_classes)
    links, start = [], time.perf_counter()
    for position, alpha in enumerate(config["alphas"]):
        distiller = example_distiller(
            student, teacher, alpha, config["temperature"], config["learning_rate"],
            metric=keras.metrics.CategoricalAccuracy(name="categorical_accuracy"),
        )  # fmt: skip
        history = distiller.fit(
            data.x_train[:n], data.y_train[:n], batch_size=config["batch_size"], epochs=epochs,
            verbose=0,
        ).history  # fmt: skip
        scored = distiller.evaluate(
            data.x_test, data.y_test, batch_size=config["batch_size"], verbose=0, return_dict=True
        )
        test = student.predict(data.x_test, batch_size=1024, verbose=0)
        links.append({
            "alpha": alpha, "position": position, "epochs_before": position * epochs,
            "categorical_accuracy": float(scored["categorical_accuracy"]),
            "reported": 1.0 - float(scored["categorical_accuracy"]),
            "test_accuracy": metrics.accuracy(test, data.y_test),
            "teacher_drift": relative_change(original, teacher.get_weights()),
            "history": epoch_records(history),
        })  # fmt: skip
    perfect = perfect_scores(data.y_test, config["batch_size"])
    return {
        "config": config,
        "links": links,
        "perfect_reported": 1.0 - perfect["flat"],
        "teacher_test_accuracy": cached.record["test_accuracy"],
        "train_seconds": time.perf_counter() - start,
        "environment": environment(),
    }


RUNNERS = {
    "categorical_accuracy": run_categorical,
    "trainable_teacher": run_trainable_teacher,
    "reused_student": run_reused,
    "compounded": run_compounded,
}


def run(profile: Profile, condition: str, directory: Path) -> list[dict]:
    """Run (or resume) every run of `condition`; one record per run."""
    records, data, seed = [], None, None
    for config in sorted(planned(profile, condition), key=lambda c: c["seed"]):
        if (done := stored(directory, config)) is not None:
            records.append(done)
            continue
        if config["seed"] != seed:
            seed, data = config["seed"], load_dataset(**config["data"])
        record = RUNNERS[condition](profile, config, directory, data)
        write_json(record_path(directory, config), record)
        records.append(record)
    return records


# --- tables ----------------------------------------------------------------------------------


def _condition(records: list[dict]) -> str:
    return records[0]["config"]["condition"]


def categorical_table(records: list[dict]) -> pd.DataFrame:
    """One row per (alpha, seed, metric): what each metric reports on the test set."""
    names = {
        "sparse": "SparseCategoricalAccuracy (true accuracy)",
        "flat": "CategoricalAccuracy, labels (N,)",
        "column": "CategoricalAccuracy, labels (N, 1)",
    }
    return pd.DataFrame(
        {
            "alpha": r["config"]["alpha"],
            "seed": r["config"]["seed"],
            "metric": label,
            "test_accuracy": r["categorical"][key],
        }
        for r in records
        for key, label in names.items()
    )


def teacher_table(records: list[dict]) -> pd.DataFrame:
    """One row per trainable-teacher run."""
    return pd.DataFrame(
        {
            "variant": r["config"]["variant"],
            "alpha": r["config"]["alpha"],
            "seed": r["config"]["seed"],
            "test_accuracy": r["test_accuracy"],
            "val_accuracy": r["val_accuracy"],
            "test_fidelity": r["test_fidelity"],
            "teacher_drift": r["teacher_drift"],
            "teacher_val_before": r["teacher_val_accuracy_before"],
            "teacher_val_after": r["teacher_val_accuracy_after"],
            "teacher_val_change": r["teacher_val_accuracy_after"]
            - r["teacher_val_accuracy_before"],
            "final_loss": r["final_loss"],
            "soft_loss_original_teacher": r["soft_loss_original_teacher"],
        }
        for r in records
    )


def reused_table(records: list[dict]) -> pd.DataFrame:
    """One row per (seed, link) of the reused-student chains."""
    return pd.DataFrame(
        {"seed": r["config"]["seed"]} | {k: v for k, v in link.items() if k != "history"}
        for r in records
        for link in r["links"]
    )


def main_table(main_records: list[dict], epochs: int) -> pd.DataFrame:
    """The main sweep's new-student runs scored after `epochs` epochs."""
    table = budgets_table(main_records)
    return table[table["epochs"] == epochs].reset_index(drop=True)


def summary(records: list[dict]) -> pd.DataFrame:
    """Means over seeds, for a condition's run page."""
    condition = _condition(records)
    if condition == "categorical_accuracy":
        table = categorical_table(records)
        return table.pivot_table(index="alpha", columns="metric", values="test_accuracy")
    if condition == "trainable_teacher":
        table = teacher_table(records).drop(columns="seed")
        return table.groupby(["variant", "alpha"]).mean()
    table = reused_table(records).drop(columns="seed")
    return table.groupby(["position", "alpha"]).mean()


# --- numbers for the chapter -----------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _points(s: dict) -> str:
    """'−1.23 points [−2.00, −0.46]' for a mean difference of accuracies with its 95% CI."""
    if np.isnan(s["half_width"]):
        return f"{100 * s['mean']:+.2f} points (no interval)"
    return f"{100 * s['mean']:+.2f} points [{100 * s['low']:+.2f}, {100 * s['high']:+.2f}]"


def _count(n: int | None) -> str:
    """'2,000', or 'all' for a size of None (every training image)."""
    return "all" if n is None else f"{n:,}"


def _points_plain(x: float) -> str:
    return f"{100 * x:.2f} points"


def numbers(
    study: dict[str, list[dict]], main_records: list[dict], profile: Profile
) -> dict[str, str]:
    """Every number the chapter states, preformatted (glue names without the prefix)."""
    out: dict[str, str] = {"profile": profile.name, "n_seeds": str(len(profile.seeds))}
    out["train_size"] = _count(profile.train_size)
    teachers = {r["config"]["seed"]: r["teacher_test_accuracy"] for r in study["trainable_teacher"]}
    out["teacher"] = format_ci(mean_ci(list(teachers.values()), bounds=RATE))
    out |= _categorical_numbers(study["categorical_accuracy"], main_records)
    out |= _teacher_numbers(study["trainable_teacher"])
    out |= _reused_numbers(study["reused_student"], main_records)
    return out


def _categorical_numbers(records: list[dict], main_records: list[dict]) -> dict[str, str]:
    first = records[0]
    perfect = first["perfect"]
    zero = perfect.get("zero_batch", {})
    cat = pd.DataFrame([r["categorical"] | {"alpha": r["config"]["alpha"]} for r in records])
    epochs = first["config"]["epochs"]
    ours = pd.DataFrame(
        {"alpha": r["config"]["alpha"], "seed": r["config"]["seed"], "ours": r["test_accuracy"]}
        for r in records
    )
    both = (
        ours.merge(main_table(main_records, epochs), on=["alpha", "seed"]) if main_records else []
    )
    gap = float((both["ours"] - both["test_accuracy"]).abs().max()) if len(both) else None
    explain_gap = max(
        max(abs(c["flat"] - c["explained_flat"]), abs(c["column"] - c["explained_column"]))
        for c in [r["categorical"] for r in records] + [perfect]
    )
    return {
        "cat_epochs": str(epochs),
        "cat_n_alphas": str(cat["alpha"].nunique()),
        "cat_batch": str(perfect["batch_size"]),
        "perfect_sparse": _pct(perfect["sparse"]),
        "perfect_flat": _pct(perfect["flat"]),
        "perfect_column": _pct(perfect["column"]),
        "perfect_flat_whole": _pct(perfect["flat_whole"]),
        "perfect_explained_flat_whole": _pct(perfect["explained_flat_whole"]),
        "perfect_zero_batches": str(perfect["zero_batches"]),
        "perfect_batches": str(perfect["batches"]),
        "zero_batch_index": str(zero.get("index", "")),
        "zero_batch_argmax": str(zero.get("argmax", "")),
        "zero_batch_score": f"{zero.get('score', float('nan')):.2f}",
        "zero_batch_sparse": f"{zero.get('sparse', float('nan')):.2f}",
        "zero_batch_labels": " ".join(map(str, zero.get("labels", []))),
        "cat_flat_range": f"{_pct(cat['flat'].min())} to {_pct(cat['flat'].max())}",
        "cat_column_range": f"{_pct(cat['column'].min())} to {_pct(cat['column'].max())}",
        "cat_sparse_range": f"{_pct(cat['sparse'].min())} to {_pct(cat['sparse'].max())}",
        "cat_flat_mean": format_ci(mean_ci(cat["flat"], bounds=RATE)),
        "cat_sparse_mean": format_ci(mean_ci(cat["sparse"], bounds=RATE)),
        "cat_explain_gap": f"{explain_gap:.1e}",
        "cat_main_gap": "n/a" if gap is None else f"{100 * gap:.2f} points",
        "cat_main_runs": str(len(both)),
    }


def teacher_differences(records: list[dict]) -> dict[float, dict]:
    """Per alpha: test accuracy with the trainable-teacher bug minus without it, paired by
    seed (`paired_difference`). The chapter's verdicts on this bug are checked against it."""
    table = teacher_table(records)
    return {
        alpha: ss.paired(
            ss.by_seed(table, alpha, "test_accuracy", variant="buggy"),
            ss.by_seed(table, alpha, "test_accuracy", variant="corrected"),
        )
        for alpha in sorted(table["alpha"].unique())
    }


def _teacher_numbers(records: list[dict]) -> dict[str, str]:
    bug_records = [r for r in records if r["config"]["variant"] == "buggy"]
    first = bug_records[0]
    return (
        {
            "tt_train_size": _count(first["config"]["train_size"]),
            "tt_epochs": str(first["config"]["epochs"]),
            "tt_val_images": f"{first['config']['teacher_val_images']:,}",
            "tt_tensors": str(first["trainable_weights"]["tensors"]),
            "tt_parameters": f"{first['trainable_weights']['parameters']:,}",
            "tt_seconds": f"{np.mean([r['train_seconds'] for r in bug_records]):.0f}",
        }
        | _teacher_alpha_numbers(records)
        | _teacher_mid_numbers(records)
    )


def _teacher_alpha_numbers(records: list[dict]) -> dict[str, str]:
    """The trainable teacher's drift, its accuracy and the student's, per alpha."""
    table = teacher_table(records)
    buggy = table[table["variant"] == "buggy"]
    alphas = sorted(table["alpha"].unique())
    zero, drift = alphas[0], buggy.groupby("alpha")["teacher_drift"].mean()
    out = {
        "tt_alphas": ", ".join(f"{a:g}" for a in alphas),
        "tt_drift_range": f"{drift.loc[drift > 0].min():.3f} to {drift.max():.3f}",
    }
    for alpha in (zero, alphas[-1]):
        tag = _tag(alpha)
        drift = mean_ci(ss.by_seed(buggy, alpha, "teacher_drift"))
        out[f"tt_drift_{tag}"] = format_ci(drift, percent=False, digits=3)
        out[f"tt_drift_max_{tag}"] = f"{ss.by_seed(buggy, alpha, 'teacher_drift').max():.3g}"
    for alpha, diff in teacher_differences(records).items():
        out[f"tt_diff_{_tag(alpha)}"] = _points(diff)
        change = mean_ci(ss.by_seed(buggy, alpha, "teacher_val_change"))
        out[f"tt_teacher_change_{_tag(alpha)}"] = _points(change)
    for variant in VARIANTS:
        part = table[table["variant"] == variant]
        test = mean_ci(ss.by_seed(part, zero, "test_accuracy"), bounds=RATE)
        out[f"tt_{variant}_a0_test"] = format_ci(test)
        out[f"tt_{variant}_a0_loss"] = f"{ss.by_seed(part, zero, 'final_loss').mean():.3g}"
        soft = ss.by_seed(part, zero, "soft_loss_original_teacher").mean()
        out[f"tt_{variant}_a0_soft_original"] = f"{soft:.3g}"
    for key, value in (("before", "teacher_val_before"), ("after_a0", "teacher_val_after")):
        accuracy = mean_ci(ss.by_seed(buggy, zero, value), bounds=RATE)
        out[f"tt_teacher_{key}"] = format_ci(accuracy)
    return out


def _teacher_mid_numbers(records: list[dict]) -> dict[str, str]:
    """The trainable-teacher bug at the alphas strictly between 0 and 1."""
    table = teacher_table(records)
    buggy = table[table["variant"] == "buggy"]
    mid = {a: d for a, d in teacher_differences(records).items() if 0 < a < 1}
    if not mid:
        keys = ("tt_teacher_change_mid", "tt_diff_mid", "tt_mid_decided")
        return {"tt_mid_alphas": "none"} | {k: "n/a" for k in keys}
    change = buggy[buggy["alpha"].isin(mid)].groupby("alpha")["teacher_val_change"].mean()
    means = [100 * d["mean"] for d in mid.values()]
    decided = sum(verdict(d) != "not distinguishable from" for d in mid.values())
    return {
        "tt_mid_alphas": ", ".join(f"{a:g}" for a in mid),
        "tt_teacher_change_mid": f"{100 * change.min():+.2f} to {100 * change.max():+.2f} points",
        "tt_diff_mid": f"{min(means):+.2f} to {max(means):+.2f} points",
        "tt_mid_decided": f"{decided} of {len(mid)}",
    }


def _tag(alpha: float) -> str:
    """'a0', 'a0p5', 'a1': an alpha in a glue name."""
    return f"a{alpha:g}".replace(".", "p")


def reused_differences(records: list[dict], main_records: list[dict]) -> dict[str, dict]:
    """The reused-student bug, paired by seed: per alpha (its `f"{alpha:g}"`) the chained
    student minus a new one, and `rise_chain` / `rise_fresh`, each curve's second alpha minus
    its first. The chapter's verdicts on this bug are checked against it."""
    chain = reused_table(records)
    main = main_table(main_records, records[0]["config"]["epochs"])
    alphas = records[0]["config"]["alphas"]
    out = {
        f"{a:g}": ss.paired(
            ss.by_seed(chain, a, "test_accuracy"), ss.by_seed(main, a, "test_accuracy")
        )
        for a in alphas
    }
    for name, table in (("chain", chain), ("fresh", main)):
        first, second = (ss.by_seed(table, a, "test_accuracy") for a in alphas[:2])
        out[f"rise_{name}"] = ss.paired(second, first)
    return out


def _reused_numbers(records: list[dict], main_records: list[dict]) -> dict[str, str]:
    chain = reused_table(records)
    epochs = records[0]["config"]["epochs"]
    main = main_table(main_records, epochs)
    alphas = records[0]["config"]["alphas"]
    diffs = reused_differences(records, main_records)
    out = {
        "ru_epochs": str(epochs),
        "ru_links": str(len(alphas)),
        "ru_total_epochs": str(epochs * len(alphas)),
        "ru_first": f"{alphas[0]:g}",
        "ru_second": f"{alphas[1]:g}",
        "ru_last": f"{alphas[-1]:g}",
        "ru_last_epochs_before": str(epochs * (len(alphas) - 1)),
        "ru_rise_chain": _points(diffs["rise_chain"]),
        "ru_rise_fresh": _points(diffs["rise_fresh"]),
    }
    for alpha in (alphas[0], alphas[-1]):
        out[f"ru_diff_{_tag(alpha)}"] = _points(diffs[f"{alpha:g}"])
        for name, table in (("chain", chain), ("fresh", main)):
            accuracy = mean_ci(ss.by_seed(table, alpha, "test_accuracy"), bounds=RATE)
            out[f"ru_{name}_{_tag(alpha)}"] = format_ci(accuracy)
    gaps = ss.by_seed(chain, alphas[0], "test_accuracy") - ss.by_seed(
        main, alphas[0], "test_accuracy"
    )
    out["ru_first_gap"] = f"{100 * gaps.abs().max():.2f}"
    chain_means = chain.groupby("alpha")["test_accuracy"].mean()
    fresh_means = main.groupby("alpha")["test_accuracy"].mean().reindex(chain_means.index)
    out["ru_chain_range"] = _points_plain(chain_means.max() - chain_means.min())
    out["ru_fresh_range"] = _points_plain(fresh_means.max() - fresh_means.min())
    later = [diffs[f"{a:g}"] for a in alphas[1:]]
    means = [100 * d["mean"] for d in later]
    out["ru_diff_later"] = f"{min(means):+.2f} to {max(means):+.2f} points"
    decided = sum(verdict(d) == "higher than" for d in later)
    out["ru_later_higher"] = f"{decided} of {len(later)}"
    return out


def verdict(s: dict) -> str:
    """How a buggy mean compares with the corrected one: only a 95% CI that excludes 0 decides."""
    if np.isnan(s["half_width"]) or s["low"] <= 0 <= s["high"]:
        return "not distinguishable from"
    return "higher than" if s["mean"] > 0 else "lower than"


def comparison_table(study: dict[str, list[dict]], main_records: list[dict]) -> pd.DataFrame:
    """Per bug and alpha: buggy and corrected test accuracy (95% CIs over seeds) and their
    paired difference, in points."""
    pairs = {}
    cat = categorical_table(study["categorical_accuracy"])
    flat = cat[cat["metric"].str.endswith("(N,)")]
    true = cat[cat["metric"].str.startswith("Sparse")]
    pairs["1. CategoricalAccuracy, labels (N,)"] = (flat, true)
    tt = teacher_table(study["trainable_teacher"])
    pairs["2. teacher left trainable"] = (
        tt[tt["variant"] == "buggy"],
        tt[tt["variant"] == "corrected"],
    )
    ru = reused_table(study["reused_student"])
    epochs = study["reused_student"][0]["config"]["epochs"]
    pairs["3. one student for every α"] = (ru, main_table(main_records, epochs))
    rows = []
    for bug, (buggy, corrected) in pairs.items():
        for alpha in sorted(buggy["alpha"].unique()):
            a = ss.by_seed(buggy, alpha, "test_accuracy")
            b = ss.by_seed(corrected, alpha, "test_accuracy")
            d = ss.paired(a, b)
            rows.append(
                {
                    "bug": bug,
                    "α": alpha,
                    "with the bug": format_ci(mean_ci(a, bounds=RATE)),
                    "corrected": format_ci(mean_ci(b, bounds=RATE)),
                    "difference (95% CI)": _points(d),
                    "verdict": verdict(d),
                }
            )
    return pd.DataFrame(rows).set_index(["bug", "α"])


def settings_table(profile: Profile) -> pd.DataFrame:
    """What each condition ran in `profile`, next to the `full` (report-scale) profile."""
    from kdutils.profiles import get_profile

    rows = []
    for name in dict.fromkeys([profile.name, "full"]):
        p = get_profile(name)
        for condition in CONDITIONS:
            s = settings(p, condition)
            images = _count(s.get("train_size", p.train_size))
            rows.append(
                {
                    "profile": name,
                    "condition": condition,
                    "α values": len(s["alphas"]),
                    "training images": images,
                    "epochs per run": s["epochs"],
                    "seeds": len(s.get("seeds", p.seeds)),
                }
            )
    return pd.DataFrame(rows).set_index(["profile", "condition"])


# --- the kdutils guards ---------------------------------------------------------------------


def refusals(profile: Profile) -> dict[str, str]:
    """What `kdutils.Distiller` says to bugs 1 and 3, and how many weights it trains (bug 2).

    Nothing is trained: each guard raises before the first step.
    """
    x = np.zeros((4, 28, 28, 1), dtype="float32")
    logits, labels = np.zeros((4, 10), dtype="float32"), np.arange(4, dtype="int32")
    wrong = Distiller(build_model(profile.student), alpha=0.5, temperature=profile.temperature)
    wrong.compile(optimizer="adam", metrics=[keras.metrics.CategoricalAccuracy()])
    out = {}
    try:
        wrong.evaluate(with_teacher_logits(x, logits), labels, verbose=0)
    except ValueError as error:
        out["categorical_accuracy"] = str(error)
    try:
        Distiller(wrong.student, alpha=0.2, temperature=profile.temperature)
    except ValueError as error:
        out["reused_student"] = str(error)
    teacher = build_model(profile.teacher)
    frozen = Distiller(build_model(profile.student), teacher=teacher, alpha=0.0)
    buggy = ExampleDistiller(build_model(profile.student), build_model(profile.teacher))
    for name, model in (("kdutils", frozen), ("example", buggy)):
        out[f"{name}_tensors"] = str(len(model.trainable_weights))
        params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        out[f"{name}_parameters"] = f"{params:,}"
    return out


# --- figures ---------------------------------------------------------------------------------


def curves(
    table: pd.DataFrame,
    value: str,
    hue: str,
    ax: plt.Axes,
    ylabel: str = "test accuracy",
    styles: dict | None = None,
    clamp: bool = True,
) -> plt.Axes:
    """Mean over seeds of `value` against alpha, one line per `hue` level, 95% CI bars
    (`clamp`: a share, so the bars are cut to [0, 1])."""
    s = summarize(table, [hue, "alpha"], value, bounds=RATE if clamp else None)
    for i, level in enumerate(dict.fromkeys(table[hue])):
        part = s[s[hue] == level]
        style = {"marker": "o", "ms": 4, "capsize": 3, "color": f"C{i}"} | (styles or {}).get(
            level, {}
        )
        ax.errorbar(
            part["alpha"],
            part["mean"],
            yerr=error_bar(part.to_dict("records")),
            label=str(level),
            **style,
        )
    ax.set(xlabel="α (weight on the hard labels)", ylabel=ylabel)
    if clamp:  # an interval from few seeds may leave [0, 1]; accuracies may not
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, 0.0), min(high, 1.02))
    return ax


def _long(table: pd.DataFrame, value: str, label: str) -> pd.DataFrame:
    return table[["alpha", "seed", value]].rename(columns={value: "value"}).assign(curve=label)


def distortion_figure(study: dict[str, list[dict]], main_records: list[dict]) -> plt.Figure:
    """Three panels, one per bug: the buggy curve beside the corrected one (95% CIs)."""
    fig, axes = plt.subplots(1, 3, figsize=(WIDTH * 1.35, 3.8), sharey=False)
    cat = categorical_table(study["categorical_accuracy"])
    cat = cat.rename(columns={"metric": "curve", "test_accuracy": "value"})
    short = {"SparseCategoricalAccuracy (true accuracy)": "true accuracy"}
    cat["curve"] = cat["curve"].replace(short)
    curves(cat, "value", "curve", axes[0])
    axes[0].set_title("1. CategoricalAccuracy on integer labels", fontsize=10)
    axes[0].set_ylim(0, 1.02)
    tt = teacher_table(study["trainable_teacher"])
    tt = pd.concat(
        [
            _long(tt[tt["variant"] == "buggy"], "test_accuracy", "teacher left trainable"),
            _long(tt[tt["variant"] == "corrected"], "test_accuracy", "teacher frozen"),
        ]
    )
    curves(tt, "value", "curve", axes[1])
    axes[1].set_title("2. Teacher left trainable", fontsize=10)
    ru = reused_table(study["reused_student"])
    epochs = study["reused_student"][0]["config"]["epochs"]
    main = main_table(main_records, epochs)
    main = main[main["alpha"].isin(ru["alpha"].unique())]
    both = pd.concat(
        [
            _long(ru, "test_accuracy", "one student reused"),
            _long(main, "test_accuracy", "new student per α (main sweep)"),
        ]
    )
    curves(both, "value", "curve", axes[2])
    axes[2].set_title("3. One student for every α", fontsize=10)
    for ax, loc in zip(axes, ("center right", "best", "best"), strict=True):
        ax.legend(fontsize="x-small", loc=loc)
        ax.set_xticks(np.linspace(0, 1, 6))
    fig.tight_layout()
    return fig


def categorical_figure(records: list[dict]) -> plt.Figure:
    """What each accuracy metric reports for the same students, and for a perfect model."""
    table = categorical_table(records).rename(columns={"metric": "curve"})
    fig, ax = plt.subplots(figsize=(WIDTH, 3.8))
    curves(table, "test_accuracy", "curve", ax)
    perfect = records[0]["perfect"]
    ax.axhline(perfect["flat"], color="gray", ls=":", label="a perfect model, labels (N,)")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(sorted(table["alpha"].unique()))
    ax.legend(fontsize="small", loc="center right")
    fig.tight_layout()
    return fig


def teacher_figure(records: list[dict]) -> plt.Figure:
    """The buggy runs' teacher: relative change of its weights and its validation accuracy."""
    table = teacher_table(records)
    buggy = table[table["variant"] == "buggy"]
    fig, axes = plt.subplots(1, 3, figsize=(WIDTH * 1.35, 3.6))
    curves(
        buggy.assign(curve="teacher"), "teacher_drift", "curve", axes[0], "‖Δw‖ / ‖w‖", clamp=False
    )
    axes[0].set_title("relative change of the teacher's weights", fontsize=10)
    axes[0].set_ylim(bottom=0)
    acc = pd.concat(
        [
            _long(buggy, "teacher_val_before", "before distillation"),
            _long(buggy, "teacher_val_after", "after (teacher left trainable)"),
        ]
    )
    curves(acc, "value", "curve", axes[1], "teacher validation accuracy")
    axes[1].set_title("the teacher's accuracy", fontsize=10)
    loss = pd.concat(
        [
            _long(table[table["variant"] == v], "final_loss", name)
            for v, name in (("buggy", "teacher left trainable"), ("corrected", "teacher frozen"))
        ]
    )
    curves(loss, "value", "curve", axes[2], "training loss, last epoch", clamp=False)
    axes[2].set_yscale("log")
    axes[2].set_title("the loss being minimised", fontsize=10)
    for ax in axes:
        ax.legend(fontsize="x-small", loc="best")
        ax.set_xticks(sorted(table["alpha"].unique()))
    fig.tight_layout()
    return fig


def reused_figure(records: list[dict], main_records: list[dict]) -> plt.Figure:
    """Paired difference (reused − new student) per alpha, with the epochs behind each link."""
    chain = reused_table(records)
    epochs = records[0]["config"]["epochs"]
    main = main_table(main_records, epochs)
    rows = []
    for alpha, part in chain.groupby("alpha"):
        d = ss.paired(
            part.set_index("seed")["test_accuracy"], ss.by_seed(main, alpha, "test_accuracy")
        )
        rows.append({"alpha": alpha, "epochs_before": part["epochs_before"].iloc[0]} | d)
    s = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(WIDTH, 3.6))
    ax.axhline(0, color="gray", lw=1)
    ax.errorbar(
        s["alpha"],
        100 * s["mean"],
        yerr=100 * s["half_width"].fillna(0),
        marker="o",
        ms=4,
        capsize=3,
    )
    ax.set(
        xlabel="α (weight on the hard labels), in the order visited",
        ylabel="reused − new student (points)",
        xticks=s["alpha"],
    )
    top = ax.secondary_xaxis("top")
    top.set_xticks(s["alpha"], [str(e) for e in s["epochs_before"]])
    top.set_xlabel("epochs the reused student had already trained")
    fig.tight_layout()
    return fig
