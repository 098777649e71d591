"""Results files: one JSON record per run, written atomically, read back as tables."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

_REPO = Path(__file__).resolve().parent.parent
# The repository when kdutils runs from a checkout; elsewhere (pip install, Colab) the cwd.
ROOT = _REPO if (_REPO / "_toc.yml").exists() else Path.cwd()


def results_dir(profile: str, root: str | os.PathLike | None = None) -> Path:
    """`$KDUTILS_RESULTS_DIR/<profile>`, else `results/<profile>` in this repository."""
    base = root or os.environ.get("KDUTILS_RESULTS_DIR") or ROOT / "results"
    return Path(base) / profile


def _atomic(path: Path, write) -> Path:
    """Write through a temporary file in the same folder, then rename: never a half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def exclusive(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on `<path>.lock` (waiting for it) while the block runs.

    Sweeps run side by side (`python -m kdutils.sweep --jobs 2`) share cached teachers; the
    lock makes the second one wait and load what the first trained. A no-op without fcntl.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no concurrent sweeps there
        yield
        return
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def epoch_records(history: dict[str, list[float]]) -> list[dict[str, float]]:
    """Keras's `History.history` (metric -> values) as one dict per epoch."""
    names = list(history)
    return [dict(zip(names, values, strict=True)) for values in zip(*history.values(), strict=True)]


def write_json(path: str | os.PathLike, record: dict) -> Path:
    """Atomically write `record` as indented JSON."""
    blob = (json.dumps(record, indent=1, sort_keys=True) + "\n").encode()
    return _atomic(Path(path), lambda f: f.write(blob))


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """Atomically write compressed NumPy arrays."""
    return _atomic(Path(path), lambda f: np.savez_compressed(f, **arrays))


def read_json(path: str | os.PathLike) -> dict | None:
    """The record at `path`, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def run_path(directory: Path, alpha: float, seed: int) -> Path:
    from kdutils.profiles import alpha_slug

    return Path(directory) / "runs" / f"{alpha_slug(alpha)}_seed{seed}.json"


def load_runs(directory: str | os.PathLike) -> list[dict]:
    """Every run record under `directory/runs`, sorted by alpha and seed."""
    records = [read_json(p) for p in sorted(Path(directory).glob("runs/*.json"))]
    records = [r for r in records if r is not None]
    return sorted(records, key=lambda r: (r["config"]["alpha"], r["config"]["seed"]))


def budgets_table(records: list[dict]) -> pd.DataFrame:
    """One row per (alpha, seed, epoch budget): validation/test accuracy and fidelity."""
    rows = []
    for r in records:
        for b in r["budgets"]:
            rows.append(
                {
                    "alpha": r["config"]["alpha"],
                    "seed": r["config"]["seed"],
                    "epochs": b["epochs"],
                    "val_accuracy": b["val_accuracy"],
                    "test_accuracy": b["test_accuracy"],
                    "test_fidelity": b["test_fidelity"],
                }
            )
    return pd.DataFrame(rows)


def history_table(records: list[dict]) -> pd.DataFrame:
    """One row per (alpha, seed, epoch) with every metric Keras logged."""
    rows = []
    for r in records:
        for epoch, metrics in enumerate(r["history"], start=1):
            rows.append(
                {"alpha": r["config"]["alpha"], "seed": r["config"]["seed"], "epoch": epoch}
                | metrics
            )
    return pd.DataFrame(rows)
