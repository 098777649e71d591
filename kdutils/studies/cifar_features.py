"""Response- vs feature-based distillation on CIFAR-10, after a course report.

A 4-stage CIFAR ResNet teacher and a narrower, shallower 4-stage ResNet student
(`kdutils.distill.models.resnet_cifar`).
Response-based distillation (Hinton et al., 2015) at several
temperatures T and weights alpha; feature-based distillation that matches the outputs of the
four stages (`stage1`..`stage4`) with the squared MMD under Gaussian kernels, with two
per-stage weightings and several alphas, and MMD alone (alpha = 0); FitNets' squared-error hints
and the cosine loss at one setting each (`kdutils.distill.features.FeatureDistiller`).

Conditions, one run page each: `teacher`; `response` (the student from scratch, alpha = 1, and
every (T, alpha)); `feature` (MMD per stage weighting and alpha, MMD alone, FitNets, cosine).
One record per (run, seed). Student seed
*s* learns from teacher seed *s* and starts from the same initial weights in every run.
Response-based runs read the teacher's cached logits (valid without data augmentation);
feature-based runs need the teacher's features and run it at every step. Nothing is chosen on
the test set: "best" settings are chosen on the validation split.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kdutils.analysis.stats import paired_difference
from kdutils.distill import metrics
from kdutils.distill.data import Dataset, load_dataset
from kdutils.distill.distiller import Distiller, with_teacher_logits
from kdutils.distill.features import FeatureDistiller
from kdutils.distill.losses import MMD_BANDWIDTHS
from kdutils.distill.models import resnet_cifar
from kdutils.distill.repro import environment, set_seed
from kdutils.profiles import STEPS_PER_EXECUTION, Profile, alpha_slug, config_key
from kdutils.results import ROOT, epoch_records, read_json, scores, stored_record, write_json
from kdutils.teacher_cache import (
    Teacher,
    TeacherSpec,
    cached_teacher,
    compile_supervised,
    study_teacher_paths,
)

TITLE = "Response- vs feature-based distillation on CIFAR-10"

# The course report's table (test accuracy, %), quoted for comparison only. Its soft term was
# weighted by `soft_weight`; in this book's convention alpha weights the hard labels, so
# alpha = 1 - soft_weight.
REPORT = {
    "teacher": 88.30,
    "student": 87.78,
    "response": 89.29,  # response-based KD, T = 4, soft weight 0.4
    "response_temperature": 4.0,
    "response_soft_weight": 0.4,
    "temperatures": (3.0, 4.0, 5.0),  # the temperatures it swept
    "feature": 88.33,  # feature-based KD, MMD between the four stages' features
    "mmd_alone": "very poor",  # MMD without the labels (alpha = 0): no number given
}

CONDITIONS = ("teacher", "response", "feature")
PAIRS = {f"stage{i}": f"stage{i}" for i in range(1, 5)}  # student layer -> teacher layer
WEIGHTINGS = {"uniform": (0.25, 0.25, 0.25, 0.25), "ramp": (0.1, 0.2, 0.3, 0.4)}
SCHEDULE = "cosine decay to 0"
TEST_SUBSET_SEED = 2023  # fixes which test images a profile with a `test_size` scores
AUGMENT_PAD = 4  # random crops of the 4-pixel zero-padded image, and horizontal flips


def grid(temperatures, soft_weights) -> tuple[tuple[float, float], ...]:
    """Every (T, soft weight) pair."""
    return tuple((t, w) for t in temperatures for w in soft_weights)


# Per profile: data, models, training length and the settings swept.
SETTINGS = {
    # CI: every code path in seconds; tiny ResNets, a few hundred images, one epoch.
    "smoke": {
        "train_size": 200,
        "validation_size": 200,
        "test_size": 200,
        "seeds": (0, 1),
        "teacher_widths": (8, 16, 32, 64),
        "teacher_blocks": (1, 1, 1, 1),
        "student_widths": (4, 8, 16, 32),
        "student_blocks": (1, 1, 1, 1),
        "teacher_epochs": 1,
        "epochs": 1,
        "batch_size": 100,
        "augment": False,
        "response_grid": ((4.0, 0.4),),
        "weightings": ("uniform",),
        "mmd_alphas": (0.5,),
        "hint_alpha": 0.5,
        "run_eagerly": True,  # 2 steps per run: cheaper than tracing a graph
    },
    # The book, on 2 CPU cores (about 12 minutes in all): narrow ResNets, 1,800 training
    # images, a few epochs, no augmentation, and a smaller grid of settings.
    "default": {
        "train_size": 1_800,
        "validation_size": 1_000,
        "test_size": 2_000,
        "seeds": (0, 1, 2),
        "teacher_widths": (16, 32, 64, 128),
        "teacher_blocks": (1, 1, 1, 1),
        "student_widths": (8, 16, 32, 64),
        "student_blocks": (1, 1, 1, 1),
        "teacher_epochs": 6,
        "epochs": 3,
        "batch_size": 128,
        "augment": False,
        # T = 3, 4, 5 at the report's soft weight 0.4, and soft weight 0.8 at T = 4.
        "response_grid": ((3.0, 0.4), (4.0, 0.4), (5.0, 0.4), (4.0, 0.8)),
        "weightings": ("uniform", "ramp"),
        "mmd_alphas": (0.5,),
        "hint_alpha": 0.5,
        "run_eagerly": False,
    },
    # The report's scale, for a GPU: every training image but 5,000 for validation, the full
    # test set, ResNet-18 and a half-width ResNet-10, augmentation, long training.
    "full": {
        "train_size": None,
        "validation_size": 5_000,
        "test_size": None,
        "seeds": (0, 1, 2, 3, 4),
        "teacher_widths": (64, 128, 256, 512),
        "teacher_blocks": (2, 2, 2, 2),
        "student_widths": (32, 64, 128, 256),
        "student_blocks": (1, 1, 1, 1),
        "teacher_epochs": 60,
        "epochs": 60,
        "batch_size": 128,
        "augment": True,
        "response_grid": grid((3.0, 4.0, 5.0), (0.2, 0.4, 0.6, 0.8)),
        "weightings": ("uniform", "ramp"),
        "mmd_alphas": (0.2, 0.5, 0.8),
        "hint_alpha": 0.5,
        "run_eagerly": False,
    },
}
COMMON = {"dataset": "cifar10", "noise_rate": 0.0, "learning_rate": 1e-3}


def settings(profile: Profile | str) -> dict:
    """This study's settings for a profile (by name)."""
    name = profile if isinstance(profile, str) else profile.name
    return {"profile": name} | COMMON | SETTINGS[name]


def conditions(profile: Profile) -> list[str]:
    return list(CONDITIONS)


def datasets(profile: Profile, condition: str) -> set[str]:
    return {settings(profile)["dataset"]}


# --- runs and configs ------------------------------------------------------------------------


def _alpha(soft_weight: float) -> float:
    """The report's weight on the soft term -> this book's alpha on the hard labels."""
    return round(1.0 - soft_weight, 6)


def run_specs(s: dict, condition: str) -> list[dict]:
    """The runs of `condition`: {run, method, alpha, and temperature or weighting}."""
    if condition == "teacher":
        return []
    if condition == "response":
        runs = [{"run": "scratch", "method": "scratch", "alpha": 1.0}]
        for t, w in s["response_grid"]:
            alpha = _alpha(w)
            slug = f"kd_t{t:g}_{alpha_slug(alpha)}"
            runs.append({"run": slug, "method": "response", "alpha": alpha, "temperature": t})
        return runs
    if condition == "feature":
        runs = [
            {"run": f"mmd_{w}_{alpha_slug(a)}", "method": "mmd", "alpha": a, "weighting": w}
            for w in s["weightings"]
            for a in s["mmd_alphas"]
        ]
        runs.append({"run": "mmd_alone", "method": "mmd", "alpha": 0.0, "weighting": "uniform"})
        a = s["hint_alpha"]
        return runs + [
            {"run": f"{m}_{alpha_slug(a)}", "method": m, "alpha": a, "weighting": "uniform"}
            for m in ("fitnets", "cosine")
        ]
    raise ValueError(f"unknown condition={condition!r}; choose one of {list(CONDITIONS)}")


def data_config(s: dict, seed: int) -> dict:
    return {
        "name": s["dataset"],
        "train_size": s["train_size"],
        "validation_size": s["validation_size"],
        "noise_rate": s["noise_rate"],
        "seed": seed,
    }


def _training(s: dict, epochs: int) -> dict:
    return {
        "epochs": epochs,
        "batch_size": s["batch_size"],
        "learning_rate": s["learning_rate"],
        "schedule": SCHEDULE,
        "augment": s["augment"],
        "test_size": s["test_size"],
        "test_subset_seed": TEST_SUBSET_SEED if s["test_size"] else None,
        "inputs": "standardised per channel with the training split's mean and SD",
    }


def teacher_config(s: dict, seed: int) -> dict:
    """Everything the teacher of `seed` depends on."""
    model = {"widths": list(s["teacher_widths"]), "blocks": list(s["teacher_blocks"])}
    return {"seed": seed, "data": data_config(s, seed), "model": model} | _training(
        s, s["teacher_epochs"]
    )


def teacher_record_config(s: dict, seed: int) -> dict:
    """The config stored in the teacher's record: `teacher_config` and its run name."""
    return teacher_config(s, seed) | {"run": "teacher", "method": "teacher"}


def run_config(s: dict, spec: dict, seed: int) -> dict:
    """Everything one student run depends on; stored in, and matched against, its record."""
    model = {"widths": list(s["student_widths"]), "blocks": list(s["student_blocks"])}
    config = {
        "run": spec["run"],
        "method": spec["method"],
        "seed": seed,
        "alpha": spec["alpha"],
        "report_soft_weight": round(1.0 - spec["alpha"], 6),
        "data": data_config(s, seed),
        "model": model,
    } | _training(s, s["epochs"])
    if spec["method"] != "scratch":
        config["teacher"] = config_key(teacher_config(s, seed))
    if spec["method"] == "response":
        config["temperature"] = spec["temperature"]
    if spec["method"] in ("mmd", "fitnets", "cosine"):
        config |= {
            "pairs": PAIRS,
            "weighting": spec["weighting"],
            "weights": list(WEIGHTINGS[spec["weighting"]]),
        }
    if spec["method"] == "mmd":
        config["bandwidths"] = list(MMD_BANDWIDTHS)
    return config


def record_path(directory: Path, run: str, seed: int) -> Path:
    return Path(directory) / "runs" / f"{run}_seed{seed}.json"


def load_record(config: dict, directory: Path) -> dict | None:
    """The stored record of this run if its config matches, else None."""
    return stored_record(record_path(directory, config["run"], config["seed"]), config)


def _configs(s: dict, condition: str, seed: int) -> list[dict]:
    if condition == "teacher":
        return [teacher_record_config(s, seed)]
    return [run_config(s, spec, seed) for spec in run_specs(s, condition)]


def is_done(profile: Profile, condition: str, directory: Path) -> bool:
    s = settings(profile)
    return all(
        load_record(c, directory) for seed in s["seeds"] for c in _configs(s, condition, seed)
    )


# --- data and training -----------------------------------------------------------------------


def test_subset(n_test: int, size: int | None) -> np.ndarray:
    """Indices of the test images scored: all, or the same random `size` of them for every
    run (the offline copy stores the test set sorted by class, so not its first `size`)."""
    order = np.random.default_rng(TEST_SUBSET_SEED).permutation(n_test)
    return np.sort(order[:size]) if size else np.arange(n_test)


def load_data(s: dict, seed: int) -> Dataset:
    """The seed's split, test set cut to `test_size`, inputs standardised per channel."""
    data = load_dataset(**data_config(s, seed))
    keep = test_subset(len(data.y_test), s["test_size"])
    mean = data.x_train.mean(axis=(0, 1, 2))
    sd = data.x_train.std(axis=(0, 1, 2))

    def standardise(x):
        return ((x - mean) / sd).astype("float32")

    return Dataset(
        name=data.name,
        x_train=standardise(data.x_train),
        y_train=data.y_train,
        x_val=standardise(data.x_val),
        y_val=data.y_val,
        x_test=standardise(data.x_test[keep]),
        y_test=data.y_test[keep],
        y_train_clean=data.y_train_clean,
        noise_mask=data.noise_mask,
        class_names=data.class_names,
        source=data.source,
    )


def augment(images: np.ndarray, rng: np.random.Generator, pad: int = AUGMENT_PAD) -> np.ndarray:
    """Random crops of the zero-padded images (shifts of up to `pad` pixels) and random
    horizontal flips, a fresh draw per call."""
    n, height, width = images.shape[:3]
    padded = np.pad(images, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    offsets = rng.integers(0, 2 * pad + 1, size=(n, 2))
    out = np.empty_like(images)
    for top in range(2 * pad + 1):
        for left in range(2 * pad + 1):
            idx = np.flatnonzero((offsets[:, 0] == top) & (offsets[:, 1] == left))
            out[idx] = padded[idx, top : top + height, left : left + width]
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    return out


def adam(s: dict, examples: int, epochs: int) -> keras.optimizers.Optimizer:
    """Adam whose learning rate decays to 0 along a cosine over the run."""
    steps = epochs * -(-examples // s["batch_size"])
    return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(s["learning_rate"], steps))


def _fit(model, x, y, s: dict, epochs: int, seed: int, teacher_logits=None) -> list[dict]:
    """Train for `epochs`; with augmentation, fresh crops and flips every epoch (then cached
    teacher logits would be wrong, so callers pass a teacher model instead)."""
    if not s["augment"]:
        inputs = x if teacher_logits is None else with_teacher_logits(x, teacher_logits)
        fit = model.fit(inputs, y, batch_size=s["batch_size"], epochs=epochs, verbose=0)
        return epoch_records(fit.history)
    if teacher_logits is not None:
        raise ValueError("cached teacher logits are wrong under data augmentation")
    rng = np.random.default_rng([seed, 7])
    history = []
    for epoch in range(epochs):
        fit = model.fit(
            augment(x, rng),
            y,
            batch_size=s["batch_size"],
            initial_epoch=epoch,
            epochs=epoch + 1,
            verbose=0,
        )
        history += epoch_records(fit.history)
    return history


def _compile_options(s: dict) -> dict:
    """How to execute, not what to compute: not part of any config. Eager execution skips
    tracing a graph (seconds per model on 2 cores), which is cheaper for runs of a few steps."""
    if s["run_eagerly"]:
        return {"run_eagerly": True}
    return {"steps_per_execution": STEPS_PER_EXECUTION}


def _predict(model: keras.Model, data: Dataset, s: dict, splits=("val", "test")) -> dict:
    """Logits per split; called directly in eager mode, which skips tracing a graph."""

    def logits(x):
        if not s["run_eagerly"]:
            return model.predict(x, batch_size=500, verbose=0)
        batches = [model(x[i : i + 500], training=False) for i in range(0, len(x), 500)]
        return np.concatenate([keras.ops.convert_to_numpy(b) for b in batches])

    return {k: logits(getattr(data, f"x_{k}")) for k in splits}


def _check_finite(history: list[dict], what: str) -> None:
    bad = [(i + 1, k) for i, h in enumerate(history) for k, v in h.items() if not np.isfinite(v)]
    if bad:
        raise FloatingPointError(f"{what}: non-finite training metrics at (epoch, name) {bad}")


def build_student(s: dict, data: Dataset) -> keras.Model:
    widths, blocks = s["student_widths"], s["student_blocks"]
    return resnet_cifar(widths, blocks, data.x_train.shape[1:], data.num_classes, name="student")


def build_teacher(s: dict, data: Dataset) -> keras.Model:
    widths, blocks = s["teacher_widths"], s["teacher_blocks"]
    return resnet_cifar(widths, blocks, data.x_train.shape[1:], data.num_classes, name="teacher")


def _record(config: dict, model, data: Dataset, history, logits: dict, seconds: float) -> dict:
    """What every run's record holds: its config, size, curves, accuracies and time."""
    return {
        "config": config,
        "parameters": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        **scores(data, history, logits),
        "train_seconds": seconds,
        "environment": environment(),
    }


# --- the teacher -----------------------------------------------------------------------------


def teacher_spec(s: dict, seed: int, directory: Path) -> TeacherSpec:
    """The cache of the teacher of `seed` in the teacher folder `directory`."""
    paths = study_teacher_paths(directory, seed, record="teacher_")
    return TeacherSpec(teacher_record_config(s, seed), *paths)


def train_teacher(s: dict, seed: int, data: Dataset) -> tuple[dict, dict, keras.Model]:
    """Train the teacher of `seed`; return its (record, logits, model) for the cache."""
    config = teacher_record_config(s, seed)
    set_seed(seed)
    model = build_teacher(s, data)
    compile_supervised(
        model, adam(s, len(data.y_train), s["teacher_epochs"]), **_compile_options(s)
    )
    start = time.perf_counter()
    history = _fit(model, data.x_train, data.y_train, s, s["teacher_epochs"], seed)
    seconds = time.perf_counter() - start
    _check_finite(history, "teacher")
    logits = _predict(model, data, s, ("train", "val", "test"))
    return _record(config, model, data, history, logits, seconds), logits, model


def get_teacher(s: dict, seed: int, directory: Path, data: Dataset, need_model: bool) -> Teacher:
    """The teacher of `seed`, with its model if `need_model`; trained if not cached."""
    build = (lambda: build_teacher(s, data)) if need_model else None
    spec = teacher_spec(s, seed, directory)
    return cached_teacher(spec, lambda: train_teacher(s, seed, data), build)


# --- the students ----------------------------------------------------------------------------


def train_student(s: dict, spec: dict, seed: int, directory: Path, data: Dataset) -> dict:
    """Train a new student for one run and write its record."""
    config = run_config(s, spec, seed)
    method = spec["method"]
    teacher_logits = teacher_model = None
    if method != "scratch":
        need_model = method != "response" or s["augment"]
        teacher = get_teacher(s, seed, Path(directory).parent / "teacher", data, need_model)
        teacher_logits, teacher_model = teacher.logits, teacher.model
    set_seed(seed)  # the same initial student for every run of this seed
    student = build_student(s, data)
    optimizer = adam(s, len(data.y_train), s["epochs"])
    cached = None
    if method == "scratch":
        model = student
        compile_supervised(model, optimizer, **_compile_options(s))
    elif method == "response":
        model = Distiller(student, teacher_model, spec["alpha"], spec["temperature"])
        model.compile(optimizer=optimizer, **_compile_options(s))
        cached = None if s["augment"] else teacher_logits["train"]
    else:
        weights = WEIGHTINGS[spec["weighting"]]
        model = FeatureDistiller(student, teacher_model, PAIRS, method, weights, spec["alpha"])
        model.compile(optimizer=optimizer, **_compile_options(s))
    start = time.perf_counter()
    with warnings.catch_warnings():
        # At alpha = 0 the output layer gets no gradient from the features, as intended.
        warnings.filterwarnings("ignore", "Gradients do not exist", UserWarning)
        history = _fit(model, data.x_train, data.y_train, s, s["epochs"], seed, cached)
    seconds = time.perf_counter() - start
    _check_finite(history, spec["run"])
    logits = _predict(student, data, s)
    record = _record(config, student, data, history, logits, seconds)
    if teacher_logits is not None:
        record["test_fidelity"] = metrics.agreement(logits["test"], teacher_logits["test"])
    if isinstance(model, FeatureDistiller):
        record["projection_parameters"] = int(
            sum(np.prod(p.kernel.shape) for p in model.projections if p is not None)
        )
    write_json(record_path(directory, spec["run"], seed), record)
    return record


def run(profile: Profile, condition: str, directory: Path) -> list[dict]:
    """Every run and seed of `condition`; stored records whose config matches are reused."""
    s = settings(profile)
    directory = Path(directory)
    records = []
    for seed in s["seeds"]:
        data = None
        for config, spec in zip(
            _configs(s, condition, seed), run_specs(s, condition) or [None], strict=True
        ):
            record = load_record(config, directory)
            if record is None:
                data = data or load_data(s, seed)
                if condition == "teacher":
                    record = get_teacher(s, seed, directory, data, False).record
                else:
                    record = train_student(s, spec, seed, directory, data)
            records.append(record)
    return records


# --- reading the records: the run pages and the chapter -----------------------------------


def summary(records: list[dict]) -> pd.DataFrame:
    """One row per (run, seed): the setting, validation and test accuracy, training time."""
    rows = []
    for r in records:
        c = r["config"]
        row = {
            "run": c["run"],
            "seed": c["seed"],
            "alpha": c.get("alpha", "—"),
            "T": c.get("temperature", "—"),
            "stage weights": c.get("weighting", "—"),
            "val accuracy (%)": round(100 * r["val_accuracy"], 2),
            "test accuracy (%)": round(100 * r["test_accuracy"], 2),
        }
        if "test_fidelity" in r:
            row["test fidelity (%)"] = round(100 * r["test_fidelity"], 2)
        row["train seconds"] = round(r["train_seconds"], 1)
        rows.append(row)
    return pd.DataFrame(rows).set_index(["run", "seed"])


def by_run(study: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """{run: records sorted by seed} over every condition of the study."""
    out: dict[str, list[dict]] = {}
    for records in study.values():
        for r in records:
            out.setdefault(r["config"]["run"], []).append(r)
    return {k: sorted(v, key=lambda r: r["config"]["seed"]) for k, v in out.items()}


def values(records: list[dict], key: str = "test_accuracy") -> np.ndarray:
    return np.array([r[key] for r in records], dtype=float)


def gain(records: list[dict], baseline: list[dict]) -> dict:
    """Paired over seeds: test accuracy of `records` minus `baseline`'s, in points."""
    seeds = [r["config"]["seed"] for r in records]
    if seeds != [r["config"]["seed"] for r in baseline]:
        raise ValueError("paired comparisons need the same seeds")
    return paired_difference(100 * values(records), 100 * values(baseline))


def best_on_validation(runs: dict[str, list[dict]], names: list[str]) -> str:
    """The run among `names` with the highest mean validation accuracy over seeds."""
    names = [n for n in names if n in runs]
    return max(names, key=lambda n: values(runs[n], "val_accuracy").mean())


def runs_of_method(runs: dict[str, list[dict]], method: str) -> list[str]:
    """The runs of `method`, ordered by temperature, stage weighting and alpha."""

    def key(n: str):
        c = runs[n][0]["config"]
        return c.get("temperature", 0), c.get("weighting", ""), -c["alpha"]

    return sorted((n for n, rs in runs.items() if rs[0]["config"]["method"] == method), key=key)


def report_run(runs: dict[str, list[dict]]) -> str | None:
    """The response run at the report's best setting (T = 4, soft weight 0.4), if swept."""
    alpha = _alpha(REPORT["response_soft_weight"])
    name = f"kd_t{REPORT['response_temperature']:g}_{alpha_slug(alpha)}"
    return name if name in runs else None


def best_mmd(runs: dict[str, list[dict]]) -> str:
    """The MMD run with labels (alpha > 0) with the best mean validation accuracy."""
    names = [n for n in runs_of_method(runs, "mmd") if n != "mmd_alone"]
    return best_on_validation(runs, names)


GPU_TIMING = ROOT / "results" / "benchmarks" / "cifar_features_gpu.json"
# Which measured kind of run stands for each method in `full_estimate`.
TIMED = {
    "scratch": "scratch",
    "response": "kd_t4_alpha_0p6",
    "mmd": "mmd_uniform_alpha_0p5",
    "fitnets": "fitnets_alpha_0p5",
    "cosine": "fitnets_alpha_0p5",
}


def full_estimate(path: Path = GPU_TIMING) -> dict[str, str] | None:
    """The full profile's GPU time, from the seconds per epoch measured after compilation
    (`benchmarks/cifar_features_gpu.py`): every epoch of every run and seed, compilation,
    data loading and scoring left out. None when no measurement is stored."""
    timing = read_json(path)
    if timing is None:
        return None
    s = settings("full")
    epoch = {name: timing[name]["epoch_seconds"][-1] for name in ("teacher", *TIMED.values())}
    runs = [spec["method"] for c in ("response", "feature") for spec in run_specs(s, c)]
    per_seed = s["teacher_epochs"] * epoch["teacher"] + s["epochs"] * sum(
        epoch[TIMED[m]] for m in runs
    )
    return {
        "device": timing["device"],
        "backend": timing["backend"],
        "teacher_epoch": f"{epoch['teacher']:.1f}",
        "student_epochs": f"{min(epoch[k] for k in TIMED.values()):.1f} to "
        f"{max(epoch[k] for k in TIMED.values()):.1f}",
        "n_runs": str(len(runs)),
        "hours": f"{len(s['seeds']) * per_seed / 3600:.1f}",
    }
