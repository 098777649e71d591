"""The one place where run profiles are defined: `smoke` (CI), `default` (the book), `full` (GPU).

A profile fixes everything a run depends on. A results file stores the profile's fields, so
a rerun can tell whether a stored result still matches its configuration.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

ALPHAS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))

# Training steps per compiled call, for every run. Fewer dispatches make the small student
# about 1.5x faster on CPU; the updates are bitwise the same (tests/test_distiller.py), so
# it is not part of a run's config.
STEPS_PER_EXECUTION = 32


@dataclasses.dataclass(frozen=True)
class Profile:
    """Data, models and training budget of one sweep. Every field is JSON-serialisable."""

    name: str
    dataset: str = "mnist"
    train_size: int | None = 10_000
    validation_size: int = 5_000
    test_size: int | None = None  # None: the whole official test set
    noise_rate: float = 0.05
    alphas: tuple[float, ...] = ALPHAS
    seeds: tuple[int, ...] = (0, 1, 2)
    temperature: float = 10.0
    epochs: int = 20
    budgets: tuple[int, ...] = (2, 5, 10, 20)
    batch_size: int = 64
    learning_rate: float = 1e-3
    teacher: str = "report_teacher"
    student: str = "report_student"
    teacher_epochs: int = 5
    # The teacher's training images: "student", the students' own; None, the whole training
    # split; or a number >= train_size, the first that many of the split. Unless "student", the
    # students' images are the teacher's first `train_size`, with the same flipped labels: a
    # teacher that learned from more data than its students has something to pass on.
    teacher_train_size: int | str | None = "student"
    # None: seed s draws its own split, flipped labels and teacher. A number: every seed uses
    # the split, flips and teacher of this data seed, and seeds vary only the student's
    # initial weights and the order of its batches.
    data_seed: int | None = None
    # The teacher's learning rate: "constant", or "cosine", decayed to 0 over its epochs.
    teacher_schedule: str = "constant"

    def __post_init__(self):
        from kdutils.distill.losses import check_alpha, check_temperature

        for alpha in self.alphas:
            check_alpha(alpha)
        check_temperature(self.temperature)
        if not self.seeds or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds
        ):
            raise ValueError(f"seeds must be whole numbers >= 0, got seeds={self.seeds!r}")
        if not self.budgets or max(self.budgets) != self.epochs:
            raise ValueError(f"budgets {self.budgets} must end at epochs={self.epochs}")
        if sorted(set(self.budgets)) != list(self.budgets) or min(self.budgets) < 1:
            raise ValueError(f"budgets must be increasing epoch counts >= 1, got {self.budgets}")
        self._check_teacher_train_size()
        if self.teacher_schedule not in ("constant", "cosine"):
            raise ValueError(
                f"teacher_schedule must be 'constant' or 'cosine', got {self.teacher_schedule!r}"
            )
        if self.data_seed is not None and (
            isinstance(self.data_seed, bool)
            or not isinstance(self.data_seed, int)
            or self.data_seed < 0
        ):
            raise ValueError(
                f"data_seed must be None or a whole number >= 0, got {self.data_seed!r}"
            )

    def _check_teacher_train_size(self) -> None:
        size = self.teacher_train_size
        if size in ("student", None):
            return
        if (
            isinstance(size, bool)
            or not isinstance(size, int)
            or self.train_size is None
            or size < self.train_size
        ):
            raise ValueError(
                f"teacher_train_size must be 'student', None (the whole split) or a number >= "
                f"train_size={self.train_size}, got {size!r}"
            )

    @property
    def nested(self) -> bool:
        """Whether the students' images are the first of a larger set the teacher learns from."""
        return self.teacher_train_size != "student"

    def replace(self, **changes) -> Profile:
        """A copy with some fields changed (lists become tuples)."""
        changes = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
        return dataclasses.replace(self, **changes)

    def override(self, **changes) -> Profile:
        """Like `replace`, but ignores None values and cuts `budgets` to a changed `epochs`."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if "epochs" in changes and "budgets" not in changes:
            kept = [b for b in self.budgets if b < changes["epochs"]]
            changes["budgets"] = (*kept, changes["epochs"])
        return self.replace(**changes)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def teacher_seed(self, seed: int) -> int:
        """The seed of the data split and teacher that the students of `seed` learn from."""
        return seed if self.data_seed is None else self.data_seed

    def data_config(self, seed: int) -> dict:
        """The arguments of `kdutils.distill.data.load_dataset` for the students of one seed."""
        return (
            {
                "name": self.dataset,
                "train_size": self.train_size,
                "validation_size": self.validation_size,
                "noise_rate": self.noise_rate,
                "seed": self.teacher_seed(seed),
            }
            | ({"test_size": self.test_size} if self.test_size is not None else {})
            | ({"nested": True} if self.nested else {})
        )

    def teacher_config(self, seed: int) -> dict:
        """Everything the teacher of the students of `seed` depends on."""
        data = self.data_config(seed)
        if self.nested:
            data = data | {"train_size": self.teacher_train_size}
        return {
            "data": data,
            "model": self.teacher,
            "epochs": self.teacher_epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "seed": self.teacher_seed(seed),
        } | ({"schedule": self.teacher_schedule} if self.teacher_schedule != "constant" else {})

    def teacher_seeds(self) -> list[int]:
        """The distinct teacher seeds of the profile's seeds, in order."""
        return list(dict.fromkeys(self.teacher_seed(s) for s in self.seeds))

    def run_config(self, alpha: float, seed: int) -> dict:
        """Everything one student run depends on; stored in, and matched against, its results."""
        return {
            "profile": self.name,
            "alpha": float(alpha),
            "seed": int(seed),
            "temperature": self.temperature,
            "epochs": self.epochs,
            "budgets": list(self.budgets),
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "student": self.student,
            "data": self.data_config(seed),
            "teacher": config_key(self.teacher_config(seed)),
        }


# The main study's teacher: it learns from the whole training split (55k images with the same
# 5% flipped labels), of which the students' images are the first `train_size`, and is shared
# by every seed (`data_seed`); its learning rate decays along a cosine. Trained once, cached.
STRONG_TEACHER = {"teacher_train_size": None, "data_seed": 0, "teacher_schedule": "cosine"}

# The opposite, for the studies: each seed its own split and a teacher trained on the
# students' images, at a constant learning rate (the fields' defaults).
PER_SEED_TEACHERS = {
    "teacher_train_size": "student",
    "data_seed": None,
    "teacher_schedule": "constant",
}

PROFILES: dict[str, Profile] = {
    # CI: every chapter and figure, in minutes on 2 cores. The teacher learns from 3,000
    # images, the students' 1,000 among them.
    "smoke": Profile(
        name="smoke",
        train_size=1_000,
        validation_size=1_000,
        test_size=2_000,  # a fixed fifth of the test set: scoring dominates a smoke run
        seeds=(0, 1),
        epochs=2,
        budgets=(1, 2),
        teacher_epochs=1,
        teacher_train_size=3_000,
        data_seed=0,
        teacher_schedule="cosine",
    ),
    # The book's published numbers, on a 2-core laptop CPU in under 30 minutes from scratch
    # (README): 11 alphas x 10 seeds x 5 epochs, each seed a new student of the one strong
    # teacher (2 epochs on 55k images: about half the time), seeds dealt to two processes.
    # alpha = 1, labels alone, learns slowest and varies most: after 3 epochs its SD over 14
    # seeds was 0.65 points (95% CI +-0.38), after 5 epochs about 0.3 (+-0.2 with 10 seeds).
    "default": Profile(
        name="default",
        seeds=tuple(range(10)),
        epochs=5,
        budgets=(1, 2, 5),
        teacher_epochs=2,
        **STRONG_TEACHER,
    ),
    # The report's stated setting: 10k training images with 5% flipped labels, its budgets of
    # 100/300/500/1000 epochs, 5 seeds, the strong teacher trained 10 epochs. For a GPU
    # (benchmarks/gpu_full.sh).
    "full": Profile(
        name="full",
        seeds=(0, 1, 2, 3, 4),
        epochs=1000,
        budgets=(100, 300, 500, 1000),
        teacher_epochs=10,
        **STRONG_TEACHER,
    ),
}


def get_profile(name: str) -> Profile:
    """The profile called `name`."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile={name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name]


def current_profile() -> Profile:
    """The profile the book is built with: `$KDUTILS_PROFILE`, else `default`."""
    return get_profile(os.environ.get("KDUTILS_PROFILE", "default"))


# Significant digits a config's floats keep when configs are hashed and compared: values
# computed on another CPU (np.logspace, 0.1 * i) may differ in the last of their 17 digits.
CONFIG_DIGITS = 12


def canonical(value):
    """`value` with every float rounded to `CONFIG_DIGITS` significant digits (in dicts and
    lists too; tuples become lists, as in JSON): the form in which configs are compared."""
    if isinstance(value, float):
        return float(f"{value:.{CONFIG_DIGITS}g}")
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def same_config(stored, expected) -> bool:
    """Whether a stored config is `expected`, up to last-bit float differences (`canonical`).

    Every check of a stored record against the config it should have goes through here, so a
    build on another CPU reuses the committed results instead of training them again.
    """
    return stored is not None and canonical(stored) == canonical(expected)


def config_key(config: dict) -> str:
    """A short, stable hash of a JSON-serialisable config, the same for last-bit differences.

    For configs whose floats are short decimals (0.05, 1e-3) it is the hash of the config's
    JSON itself, so keys stored before floats were rounded stay valid.
    """
    blob = json.dumps(canonical(config), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def alpha_slug(alpha: float) -> str:
    """A docname-safe label: 0.5 -> 'alpha_0p5', 0.25 -> 'alpha_0p25', 1 -> 'alpha_1p0'."""
    text = f"{float(alpha):.4f}".rstrip("0")
    return "alpha_" + (text + "0" if text.endswith(".") else text).replace(".", "p")
