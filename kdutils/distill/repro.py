"""Seeding and provenance: one seed controls data order, initial weights and label noise."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import keras

PACKAGES = ("keras", "tensorflow-cpu", "tensorflow", "jax", "torch", "numpy", "kdutils")


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and the Keras backend; on TensorFlow also enable op determinism."""
    keras.utils.set_random_seed(int(seed))
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def git_commit(path: str | os.PathLike = ".") -> str | None:
    """The current git commit of the repository holding `path`, or None outside git."""
    try:
        out = subprocess.run(
            ["git", "-C", str(Path(path).resolve()), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def versions() -> dict[str, str]:
    """Installed versions of the packages that decide the numbers."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def environment() -> dict:
    """Provenance for a results file: backend, versions, Python, machine and git commit."""
    return {
        "backend": keras.backend.backend(),
        "versions": versions(),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "git_commit": git_commit(Path(__file__).parent),
    }
