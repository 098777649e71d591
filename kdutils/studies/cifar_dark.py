"""A course report on CIFAR-10 that followed PyTorch's knowledge-distillation tutorial.

A CIFAR ResNet-18 teacher is distilled into the tutorial's two small CNNs, LightNN and
SimpleNN, with Adam (learning rate 1e-3) for 10 epochs at T = 2 and loss weights
CE 0.75 / KD 0.25, which is alpha = 0.75 here (alpha weights the hard labels, and the soft
term carries T^2, as in the tutorial). The report also swept T (2, 1.5, 1.01; NaN loss at
1.01) and the weights (0.75/0.25, 0.5/0.5, 0.25/0.75) for LightNN.

Conditions: `teacher`; `light_nn` (seven runs: from scratch, distilled at T = 2 and
alpha = 0.75, the temperature sweep T = 1.5, 1.01 and 1.0, and the weight sweep alpha = 0.5
and 0.25) and `simple_nn` (from scratch and distilled). One record per (run, seed). The students
of a condition and seed train together in one fused model (`MultiDistiller`), on the same
batches.
Student seed *s* learns from the cached logits of teacher seed *s*; every student of seed *s*
starts from the same initial weights for its architecture. A profile may borrow another's
teachers (`Settings.teacher_profile`): the default profile, for 2 CPU cores, distils from the
full profile's ResNet-18 teachers, trained on a GPU, whose stored logits it cuts to its own
training images (the first of theirs, for the same seed). There is no augmentation, as in the
tutorial, so cached logits are exact. Inputs are normalised as in the tutorial. Nothing is
chosen on the test set.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from keras import ops

from kdutils.analysis.stats import paired_difference
from kdutils.distill import metrics
from kdutils.distill.data import Dataset, load_dataset
from kdutils.distill.distiller import with_teacher_logits
from kdutils.distill.fused import FusedDistiller, split_history
from kdutils.distill.losses import check_temperature, distillation_loss
from kdutils.distill.models import build_model, resnet_cifar
from kdutils.distill.repro import environment, set_seed
from kdutils.profiles import STEPS_PER_EXECUTION, Profile, config_key
from kdutils.results import epoch_records, scores, stored_record, write_json
from kdutils.teacher_cache import (
    Teacher,
    TeacherSpec,
    cached_teacher,
    fit_supervised,
    study_teacher_paths,
)

TITLE = "Learning dark knowledge on CIFAR-10"

# The report's test accuracies (%), one run each, quoted for comparison only. Its weight sweep
# is keyed by the CE weight, which is this book's alpha (the KD weight is 1 - alpha).
REPORT = {
    "teacher": 80.30,
    "light_scratch": 70.94,
    "light_kd": 71.01,
    "simple_scratch": 62.46,
    "simple_kd": 62.50,
    "temperature": {2.0: 71.01, 1.5: 70.65, 1.01: 70.44},
    "nan_temperature": 1.01,  # the run whose logged loss was NaN
    "weights": {0.75: 71.01, 0.5: 70.67, 0.25: 71.00},
    "epochs": 10,
    "learning_rate": 1e-3,
    "temperature_kd": 2.0,
    "ce_weight": 0.75,
    "kd_weight": 0.25,
    "train_images": 50_000,
    "test_images": 10_000,
}

# The tutorial's input normalisation (ImageNet's channel means and standard deviations).
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
TEST_PERMUTATION_SEED = 2023  # a fixed subset of the test set, where a profile cuts it
RESNET18 = {"widths": (64, 128, 256, 512), "blocks": (2, 2, 2, 2)}


@dataclasses.dataclass(frozen=True)
class Run:
    """One student: its name within the condition, architecture, alpha and temperature.
    A run with alpha = 1 trains on the labels alone; its soft loss is logged, not trained on."""

    name: str
    model: str
    alpha: float
    temperature: float


T_KD, ALPHA_KD = REPORT["temperature_kd"], REPORT["ce_weight"]
RUNS: dict[str, tuple[Run, ...]] = {
    # LightNN from scratch and distilled, the report's temperature sweep (and T = 1) at CE
    # weight 0.75, and its weight sweep at T = 2: seven students, fused per seed.
    "light_nn": (
        Run("scratch", "light_nn", 1.0, T_KD),
        Run("kd", "light_nn", ALPHA_KD, T_KD),
        Run("t_1p5", "light_nn", ALPHA_KD, 1.5),
        Run("t_1p01", "light_nn", ALPHA_KD, 1.01),
        Run("t_1", "light_nn", ALPHA_KD, 1.0),
        Run("alpha_0p5", "light_nn", 0.5, T_KD),
        Run("alpha_0p25", "light_nn", 0.25, T_KD),
    ),
    "simple_nn": (Run("scratch", "simple_nn", 1.0, T_KD), Run("kd", "simple_nn", ALPHA_KD, T_KD)),
}
CONDITIONS: tuple[str, ...] = ("teacher", *RUNS)
TEMPERATURES = (1.0, 1.01, 1.5, 2.0)  # the report's three and T = 1
WEIGHTS = (0.75, 0.5, 0.25)  # alpha = the CE weight


@dataclasses.dataclass(frozen=True)
class Settings:
    """One profile's data size, seeds, training length and teacher shape."""

    train_size: int | None
    validation_size: int
    test_size: int | None
    seeds: tuple[int, ...]
    epochs: int
    teacher_epochs: int
    teacher_widths: tuple[int, ...] = RESNET18["widths"]
    teacher_blocks: tuple[int, ...] = RESNET18["blocks"]
    batch_size: int = 128
    learning_rate: float = REPORT["learning_rate"]
    # Another profile whose teachers this one distils from (their logits, cut to this
    # profile's training images), instead of training its own. Its teacher fields above are
    # then unused.
    teacher_profile: str | None = None

    def data_config(self, seed: int) -> dict:
        """The arguments of `load_dataset` for one seed (clean labels)."""
        return {
            "name": "cifar10",
            "train_size": self.train_size,
            "validation_size": self.validation_size,
            "noise_rate": 0.0,
            "seed": int(seed),
        }


SETTINGS: dict[str, Settings] = {
    # CI: every code path in seconds, with a tiny two-stage ResNet teacher.
    "smoke": Settings(
        train_size=512,
        validation_size=256,
        test_size=512,
        seeds=(0, 1),
        epochs=2,
        teacher_epochs=1,
        teacher_widths=(8, 16),
        teacher_blocks=(1, 1),
    ),
    # The book, on 2 CPU cores: the students on a fifth of the training images for the
    # report's 10 epochs. A ResNet-18 teacher takes hours per epoch on such a CPU, and every
    # cheaper one tried here was no better than LightNN, so the students distil from the full
    # profile's ResNet-18 teachers (trained on a GPU; their logits are stored with the book).
    # The training images here are the first 10,000 of those teachers' 45,000.
    "default": Settings(
        train_size=10_000,
        validation_size=5_000,
        test_size=None,
        seeds=(0, 1, 2),
        epochs=10,
        teacher_epochs=10,
        teacher_profile="full",
    ),
    # The report's scale, for a GPU: every training image but 5,000 kept for validation.
    "full": Settings(
        train_size=None,
        validation_size=5_000,
        test_size=None,
        seeds=(0, 1, 2, 3, 4),
        epochs=10,
        teacher_epochs=10,
    ),
}


def settings(profile: Profile | str) -> Settings:
    return SETTINGS[profile if isinstance(profile, str) else profile.name]


def conditions(profile: Profile) -> list[str]:
    return list(CONDITIONS)


def datasets(profile: Profile, condition: str) -> set[str]:
    return {settings(profile).data_config(0)["name"]}


def teacher_settings(s: Settings) -> Settings:
    """The settings the teachers of `s` are trained with (another profile's, if it borrows)."""
    return SETTINGS[s.teacher_profile] if s.teacher_profile else s


def teacher_name(s: Settings) -> str:
    """'ResNet-18', or how this profile's teacher differs from it."""
    s = teacher_settings(s)
    if (s.teacher_widths, s.teacher_blocks) == (RESNET18["widths"], RESNET18["blocks"]):
        return "ResNet-18"
    if s.teacher_blocks == RESNET18["blocks"]:
        return f"ResNet-18 at {s.teacher_widths[0] / 64:g} of its width"
    return (
        f"ResNet with {sum(s.teacher_blocks)} blocks, widths {'/'.join(map(str, s.teacher_widths))}"
    )


# --- configs ---------------------------------------------------------------------------------


def teacher_config(s: Settings, seed: int) -> dict:
    """Everything the teacher of `seed` depends on (the lending profile's, if `s` borrows)."""
    s = teacher_settings(s)
    return {
        "condition": "teacher",
        "seed": int(seed),
        "data": s.data_config(seed),
        "test_size": s.test_size,
        "model": "resnet_cifar",
        "widths": list(s.teacher_widths),
        "blocks": list(s.teacher_blocks),
        "epochs": s.teacher_epochs,
        "batch_size": s.batch_size,
        "optimizer": "adam",
        "learning_rate": s.learning_rate,
        "normalisation": "imagenet mean/std",
    }


def run_config(s: Settings, condition: str, run: Run, seed: int) -> dict:
    """Everything one student run depends on; stored in, and matched against, its record."""
    return {
        "condition": condition,
        "run": run.name,
        "seed": int(seed),
        "data": s.data_config(seed),
        "test_size": s.test_size,
        "model": run.model,
        "alpha": run.alpha,
        "temperature": run.temperature,
        "epochs": s.epochs,
        "batch_size": s.batch_size,
        "optimizer": "adam",
        "learning_rate": s.learning_rate,
        "normalisation": "imagenet mean/std",
        "teacher": config_key(teacher_config(s, seed)),
        "fused_with": [r.name for r in RUNS[condition]],
    }


def record_path(directory: Path, seed: int, run: Run | None = None) -> Path:
    name = f"seed{seed}.json" if run is None else f"{run.name}_seed{seed}.json"
    return Path(directory) / "runs" / name


def load_record(s: Settings, condition: str, seed: int, directory: Path, run: Run | None = None):
    """The stored record of this run if its config matches, else None."""
    expected = teacher_config(s, seed) if run is None else run_config(s, condition, run, seed)
    return stored_record(record_path(directory, seed, run), expected)


def _runs(condition: str) -> tuple[Run | None, ...]:
    if condition == "teacher":
        return (None,)
    if condition not in RUNS:
        raise ValueError(f"unknown condition={condition!r}; choose one of {list(CONDITIONS)}")
    return RUNS[condition]


def is_done(profile: Profile, condition: str, directory: Path) -> bool:
    s = settings(profile)
    return all(
        load_record(s, condition, seed, directory, run)
        for seed in s.seeds
        for run in _runs(condition)
    )


# --- data, losses and the fused students -----------------------------------------------------


def normalise(images: np.ndarray) -> np.ndarray:
    """Images in [0, 1] to the tutorial's normalised inputs, (x - mean) / std per channel."""
    return ((images - MEAN) / STD).astype(np.float32)


def load_data(s: Settings, seed: int) -> Dataset:
    """The seed's split, normalised, with the test set cut to a fixed subset if `test_size`."""
    data = load_dataset(**s.data_config(seed))
    x_test, y_test = data.x_test, data.y_test
    if s.test_size is not None:
        keep = np.random.default_rng(TEST_PERMUTATION_SEED).permutation(len(y_test))
        x_test, y_test = x_test[keep[: s.test_size]], y_test[keep[: s.test_size]]
    return dataclasses.replace(
        data,
        x_train=normalise(data.x_train),
        x_val=normalise(data.x_val),
        x_test=normalise(x_test),
        y_test=y_test,
    )


def tutorial_kd_loss(teacher_logits, student_logits, temperature: float):
    """The tutorial's soft loss, as it computes it: the log of a softmax.

    sum(p_t * (log p_t - log_softmax(s / T))) / batch * T^2 with p_t = softmax(t / T).
    Where p_t underflows to 0, log p_t = -inf and 0 * -inf = NaN: the value is NaN, while its
    gradient with respect to the student, -p_t * T / batch, stays finite.
    """
    p_teacher = ops.softmax(ops.divide(teacher_logits, temperature), axis=-1)
    log_student = ops.log_softmax(ops.divide(student_logits, temperature), axis=-1)
    batch = ops.cast(ops.shape(student_logits)[0], student_logits.dtype)
    total = ops.sum(p_teacher * (ops.log(p_teacher) - log_student))
    return total / batch * temperature**2


def underflow_gap(temperature: float = 1.0) -> float:
    """The smallest logit gap (to 0.01) at which softmax(t / T) gives a class exactly 0 in
    float32: exp of a number below about -103.97 is 0, even counting subnormals."""
    gaps = np.arange(100.0, 106.0, 0.01, dtype=np.float32)
    first = gaps[np.exp(-gaps) == 0][0]
    return float(np.round(first * temperature, 2))


def float32_zeros(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Per example: does softmax(logits / T), computed in float32, have an exact 0?"""
    z = np.asarray(logits, dtype=np.float32) / np.float32(temperature)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e == 0).any(axis=-1)


def nan_batches(logits: np.ndarray, temperature: float, batch_size: int) -> int:
    """How many batches (in order) would log a NaN soft loss with `tutorial_kd_loss`."""
    zeros = float32_zeros(logits, temperature)
    return int(sum(zeros[i : i + batch_size].any() for i in range(0, len(zeros), batch_size)))


class MultiDistiller(FusedDistiller):
    """`FusedDistiller` with its own temperature for each student, too.

    Student i's loss is alpha_i * CE + (1 - alpha_i) * T_i^2 * KL at T_i; the fused loss is
    their sum, so each student trains exactly on its own loss.
    """

    def __init__(self, students, alphas, temperatures, **kwargs):
        if len(temperatures) != len(students):
            raise ValueError(f"need one temperature per student, got {len(temperatures)}")
        super().__init__(students, alphas, temperature=temperatures[0], **kwargs)
        self.temperatures = [check_temperature(t) for t in temperatures]

    def soft_losses(self, teacher, y_pred):
        """Student i's T_i^2 KL to the teacher at its own temperature T_i."""
        return [
            distillation_loss(teacher, y_pred[:, i, :], t) for i, t in enumerate(self.temperatures)
        ]

    def get_config(self) -> dict:
        return super().get_config() | {"temperatures": self.temperatures}


def _compile(model: keras.Model, s: Settings, **kwargs) -> None:
    """Adam at the report's constant learning rate, as in the tutorial."""
    model.compile(
        optimizer=keras.optimizers.Adam(s.learning_rate),
        steps_per_execution=STEPS_PER_EXECUTION,
        **kwargs,
    )


def _predict(model: keras.Model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: model.predict(x, batch_size=512, verbose=0) for k, x in inputs.items()}


def _check_finite(history: list[dict], what: str) -> None:
    bad = [
        (i, k) for i, epoch in enumerate(history) for k, v in epoch.items() if not np.isfinite(v)
    ]
    if bad:
        raise FloatingPointError(f"{what}: non-finite values logged at (epoch, metric) {bad}")


# --- the teacher -----------------------------------------------------------------------------


def teacher_spec(s: Settings, seed: int, directory: Path) -> TeacherSpec:
    """The cache of the teacher of `seed` in the teacher folder `directory`."""
    return TeacherSpec(teacher_config(s, seed), *study_teacher_paths(directory, seed))


def logit_scores(logits: np.ndarray, batch_size: int) -> dict:
    """The teacher's largest logit gaps on the training set, and where the tutorial's loss
    would log NaN: examples with a float32 zero in softmax(t / T), and batches holding one."""
    gaps = logits.max(axis=-1) - logits.min(axis=-1)
    return {
        "train_max_logit_gap": float(gaps.max()),
        "train_median_logit_gap": float(np.median(gaps)),
        "tutorial_zero_examples": {
            f"{t:g}": int(float32_zeros(logits, t).sum()) for t in TEMPERATURES
        },
        "tutorial_nan_batches": {
            f"{t:g}": nan_batches(logits, t, batch_size) for t in TEMPERATURES
        },
        "train_batches": -(-len(logits) // batch_size),
    }


def train_teacher(s: Settings, seed: int, data: Dataset) -> tuple[dict, dict, keras.Model]:
    """Train the ResNet teacher of `seed` on the labels; return its (record, logits, model)
    for the cache (`get_teacher`)."""
    config = teacher_config(s, seed)
    set_seed(seed)
    model = resnet_cifar(s.teacher_widths, s.teacher_blocks, data.x_train.shape[1:], name="teacher")
    optimizer = keras.optimizers.Adam(s.learning_rate)
    fit, seconds = fit_supervised(model, optimizer, data, s.batch_size, s.teacher_epochs)
    history = epoch_records(fit)
    _check_finite(history, "teacher")
    logits = _predict(model, {"train": data.x_train, "val": data.x_val, "test": data.x_test})
    record = {
        "config": config,
        "name": teacher_name(s),
        "parameters": model.count_params(),
        "trainable_parameters": sum(int(np.prod(w.shape)) for w in model.trainable_weights),
        **scores(data, history, logits),
        **logit_scores(logits["train"], s.batch_size),
        "train_seconds": seconds,
        "environment": environment(),
    }
    return record, logits, model


def get_teacher(s: Settings, seed: int, directory: Path, data: Dataset | None = None) -> Teacher:
    """The cached teacher of `seed`, trained first if there is none for this config (on
    `data`, else on `load_data(s, seed)`)."""
    train = lambda: train_teacher(s, seed, data or load_data(s, seed))  # noqa: E731
    return cached_teacher(teacher_spec(s, seed, directory), train)


def teacher_dir(s: Settings, directory: Path) -> Path:
    """Where the teachers of `s` are cached, from a condition's `directory`
    (`<results>/<profile>/studies/cifar_dark/<condition>`)."""
    directory = Path(directory)
    if not s.teacher_profile:
        return directory.parent / "teacher"
    return directory.parents[3] / s.teacher_profile / "studies" / directory.parent.name / "teacher"


def check_borrowable(s: Settings) -> Settings:
    """The lending profile's settings, if `s` may use its teachers' logits: the same seeds'
    splits, with this profile's training images the first of the lender's."""
    t = teacher_settings(s)
    ok = (
        s.validation_size == t.validation_size
        and s.test_size == t.test_size
        and (t.train_size is None or (s.train_size is not None and s.train_size <= t.train_size))
        and set(s.seeds) <= set(t.seeds)
    )
    if not ok:
        raise ValueError(f"profile cannot borrow the teachers of {s.teacher_profile!r}")
    return t


def teacher_for(s: Settings, seed: int, directory: Path, data: Dataset) -> Teacher:
    """The teacher that seed `seed` of `s` distils from, with its logits on `data`'s splits.
    A borrowed teacher is trained in its own profile's folder if missing (slow on a CPU)."""
    if not s.teacher_profile:
        return get_teacher(s, seed, teacher_dir(s, directory), data)
    t = check_borrowable(s)
    teacher = get_teacher(t, seed, teacher_dir(s, directory))
    train = teacher.logits["train"][: len(data.y_train)]
    return dataclasses.replace(teacher, logits=teacher.logits | {"train": train})


# --- the students ----------------------------------------------------------------------------


def build_student(run: Run, seed: int, data: Dataset) -> keras.Model:
    """A new student; the same seed and architecture give the same initial weights."""
    set_seed(seed)
    return build_model(run.model, data.x_train.shape[1:], data.num_classes)


def train_students(s: Settings, condition: str, seed: int, directory: Path, data: Dataset):
    """Train every run of `condition` for `seed` in one fused model; write one record each."""
    runs = RUNS[condition]
    cached = teacher_for(s, seed, directory, data)
    teacher_record, teacher = cached.record, cached.logits
    students = [build_student(run, seed, data) for run in runs]
    model = MultiDistiller(
        students, [r.alpha for r in runs], [r.temperature for r in runs], name=condition
    )
    _compile(model, s)
    set_seed(seed)
    start = time.perf_counter()
    fit = model.fit(
        with_teacher_logits(data.x_train, teacher["train"]),
        data.y_train,
        validation_data=(with_teacher_logits(data.x_val, teacher["val"]), data.y_val),
        batch_size=s.batch_size,
        epochs=s.epochs,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    fused_logits = _predict(model, {"val": data.x_val, "test": data.x_test})
    records = []
    histories = split_history(fit.history, len(runs))
    for i, (run, student, history) in enumerate(zip(runs, students, histories, strict=True)):
        history = epoch_records(history)
        _check_finite(history, f"{condition}/{run.name}")
        logits = {k: v[:, i] for k, v in fused_logits.items()}
        record = {
            "config": run_config(s, condition, run, seed),
            "parameters": student.count_params(),
            **scores(data, history, logits),
            "all_losses_finite": True,
            "test_fidelity": metrics.agreement(logits["test"], teacher["test"]),
            "teacher_test_accuracy": teacher_record["test_accuracy"],
            "fused_seconds": seconds,
            "environment": environment(),
        }
        write_json(record_path(directory, seed, run), record)
        records.append(record)
    return records


def run(profile: Profile, condition: str, directory: Path) -> list[dict]:
    """Every seed of `condition`; stored records whose config matches are reused."""
    s, directory = settings(profile), Path(directory)
    records = []
    for seed in s.seeds:
        found = [load_record(s, condition, seed, directory, r) for r in _runs(condition)]
        if any(r is None for r in found):
            data = load_data(s, seed)
            if condition == "teacher" and s.teacher_profile:
                record = teacher_for(s, seed, directory, data).record
                write_json(record_path(directory, seed), record)  # the lender's, as it is
                found = [record]
            elif condition == "teacher":
                found = [get_teacher(s, seed, directory, data).record]
            else:
                found = train_students(s, condition, seed, directory, data)
        records += found
    return records


# --- reading the records: the run pages and the chapter -----------------------------------


def summary(records: list[dict]) -> pd.DataFrame:
    """One row per (run, seed): accuracies, fidelity and the last epoch's training losses."""
    rows = []
    for r in records:
        c, last = r["config"], r["history"][-1]
        row = {"run": c.get("run", "teacher"), "seed": c["seed"], "epochs": c["epochs"]}
        if "alpha" in c:
            row |= {"alpha (CE weight)": c["alpha"], "T": c["temperature"]}
        row |= {
            "val accuracy": r["val_accuracy"],
            "test accuracy": r["test_accuracy"],
        }
        if "test_fidelity" in r:
            row |= {
                "test fidelity": r["test_fidelity"],
                "hard loss (last epoch)": last["hard_loss"],
                "soft loss (last epoch)": last["soft_loss"],
            }
        else:
            row["largest train logit gap"] = r["train_max_logit_gap"]
        seconds = r.get("train_seconds", r.get("fused_seconds"))
        row["seconds"] = round(seconds, 1)
        rows.append(row)
    return pd.DataFrame(rows).set_index(["run", "seed"])


def runs_of(study: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Records by run key ('teacher', 'light_nn/kd', ...), each sorted by seed."""
    out: dict[str, list[dict]] = {}
    for condition, records in study.items():
        for r in records:
            key = "teacher" if condition == "teacher" else f"{condition}/{r['config']['run']}"
            out.setdefault(key, []).append(r)
    return {k: sorted(v, key=lambda r: r["config"]["seed"]) for k, v in out.items()}


def _number_slug(x: float) -> str:
    return f"{x:g}".replace(".", "p")


def temperature_key(t: float) -> str:
    """The run key of LightNN at alpha 0.75 and temperature `t` ('light_nn/t_1p5')."""
    return "light_nn/kd" if t == T_KD else f"light_nn/t_{_number_slug(t)}"


def weight_key(alpha: float) -> str:
    """The run key of LightNN at T = 2 and CE weight `alpha` ('light_nn/alpha_0p5')."""
    return "light_nn/kd" if alpha == ALPHA_KD else f"light_nn/alpha_{_number_slug(alpha)}"


def accuracies(runs: dict[str, list[dict]], key: str) -> np.ndarray:
    """Test accuracies (%) of run `key`, by seed."""
    return np.array([100 * r["test_accuracy"] for r in runs[key]])


def comparisons() -> list[tuple[str, str, str, float]]:
    """(label, run key a, run key b, the report's a − b in points) for each claim the report's
    numbers make: distillation against scratch, and each sweep value against T = 2, CE 0.75."""
    out = [
        ("LightNN: KD − scratch", "light_nn/kd", "light_nn/scratch", "light_kd", "light_scratch"),
        (
            "SimpleNN: KD − scratch",
            "simple_nn/kd",
            "simple_nn/scratch",
            "simple_kd",
            "simple_scratch",
        ),
    ]
    rows = [(label, a, b, REPORT[ra] - REPORT[rb]) for label, a, b, ra, rb in out]
    for t in (1.5, 1.01, 1.0):
        report = REPORT["temperature"].get(t)
        diff = math.nan if report is None else report - REPORT["temperature"][T_KD]
        rows.append((f"T = {t:g} − T = 2", temperature_key(t), "light_nn/kd", diff))
    for a in (0.5, 0.25):
        diff = REPORT["weights"][a] - REPORT["weights"][ALPHA_KD]
        rows.append((f"CE {a:g} − CE 0.75", weight_key(a), "light_nn/kd", diff))
    return [(label, a, b, round(d, 2)) for label, a, b, d in rows]


def differences(study: dict[str, list[dict]]) -> pd.DataFrame:
    """Each comparison of `comparisons`, paired by seed: mean, 95% CI, p, and the report's."""
    runs = runs_of(study)
    rows = []
    for label, a, b, report in comparisons():
        if a not in runs or b not in runs:
            continue
        d = paired_difference(accuracies(runs, a), accuracies(runs, b))
        rows.append(
            {
                "comparison": label,
                "report (points)": report,
                "mean": d["mean"],
                "low": d["low"],
                "high": d["high"],
                "half_width": d["half_width"],
                "p": d["p_value"],
                "n": d["n"],
                "excludes 0": bool(d["low"] > 0 or d["high"] < 0),
                "report inside CI": None
                if math.isnan(report)
                else bool(d["low"] <= report <= d["high"]),
            }
        )
    return pd.DataFrame(rows).set_index("comparison")


def seed_sd(runs: dict[str, list[dict]], keys) -> float:
    """The pooled seed-to-seed standard deviation (points) of one run's test accuracy."""
    variances = [np.var(accuracies(runs, k), ddof=1) for k in keys]
    return float(np.sqrt(np.mean(variances)))


def noise_band(sd: float) -> float:
    """Half-width (points) of the range that holds 95% of the differences between two single
    independent runs with no real effect: 1.96 x sqrt(2) x the seed SD of one run."""
    return 1.96 * math.sqrt(2) * sd


def complete(study: dict[str, list[dict]]) -> bool:
    """Whether `study` has every condition, with at least two seeds of each run."""
    if set(study) != set(CONDITIONS):
        return False
    runs = runs_of(study)
    keys = ["teacher"] + [f"{c}/{r.name}" for c, rs in RUNS.items() for r in rs]
    return all(len(runs.get(k, [])) >= 2 for k in keys)
