"""Results files: one JSON record per run, written atomically, read back as tables."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from kdutils.distill import metrics
from kdutils.profiles import same_config

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

    Only the session log takes it (`append_log`): two sweeps started by hand side by side both
    append to `sweep.json`, and neither entry may be lost. Work is never coordinated by locks:
    the sweep's task graph gives each teacher and student one task (`kdutils.graph`). A no-op
    without fcntl.
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


class CacheWarning(UserWarning):
    """A stored record, cache or log failed its check on load and is rebuilt or moved aside."""


def unusable(path: str | os.PathLike, problem: str) -> None:
    """Warn that the file at `path` cannot be used (`problem`) and is treated as missing."""
    warnings.warn(
        f"{path}: {problem}; treating it as missing, so it is rebuilt", CacheWarning, stacklevel=3
    )


def read_json(path: str | os.PathLike) -> dict | None:
    """The JSON object at `path`; None when the file is missing, or (with a `CacheWarning`
    naming the file) when it cannot be read, is not JSON or is not an object."""
    record, problem = _parse_json(path)
    if problem:
        unusable(path, problem)
    return record


def stored_record(path: str | os.PathLike, config: dict) -> dict | None:
    """The JSON record at `path` if it was made with `config` (`same_config`), else None."""
    record = read_json(path)
    return record if record and same_config(record.get("config"), config) else None


def _parse_json(path: str | os.PathLike) -> tuple[dict | None, str | None]:
    """(the JSON object at `path`, None), (None, None) if missing, or (None, what is wrong)."""
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as error:
        return None, f"unreadable ({error})"
    except ValueError as error:
        return None, f"not valid JSON ({error})"
    if not isinstance(record, dict):
        return None, f"holds a JSON {type(record).__name__}, not an object"
    return record, None


def read_npz(path: str | os.PathLike, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays `keys` of the `.npz` at `path`, each finite; None when the file is missing,
    or (with a `CacheWarning` naming the file) when it is unreadable, lacks a key or holds
    a non-finite value."""
    try:
        with np.load(path) as f:
            arrays = {key: f[key] for key in keys}
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        return unusable(path, f"unreadable or incomplete ({type(error).__name__}: {error})")
    for key, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            return unusable(path, f"array {key!r} holds non-finite values")
    return arrays


def append_log(path: str | os.PathLike, entry: dict, key: str = "sessions") -> Path:
    """Append `entry` to the list `key` of the JSON log at `path`, atomically and under a lock,
    so concurrent writers lose nothing. A log that cannot be read is moved aside (renamed,
    with a `CacheWarning`), never overwritten."""
    path = Path(path)
    with exclusive(path):
        log, problem = _parse_json(path)
        if problem or (log is not None and not isinstance(log.get(key), list)):
            aside = path.with_name(f"{path.name}.corrupt-{_stamp()}")
            os.replace(path, aside)
            warnings.warn(
                f"{path} is not a readable log; moved it aside to {aside.name} and began a new one",
                CacheWarning,
                stacklevel=2,
            )
            log = None
        log = log or {key: []}
        log[key].append(entry)
        return write_json(path, log)


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def portable(path: str | os.PathLike) -> str:
    """`path` as committed files store it: relative to the repository when inside it, else
    under `$KDUTILS_DATA_DIR` or `~` when there, else as given."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    bases = [(ROOT, None), (os.environ.get("KDUTILS_DATA_DIR"), "$KDUTILS_DATA_DIR")]
    for base, name in [*bases, (Path.home(), "~")]:
        if base and path.resolve().is_relative_to(Path(base).resolve()):
            rest = path.resolve().relative_to(Path(base).resolve()).as_posix()
            return rest if name is None else f"{name}/{rest}".removesuffix("/.")
    return path.as_posix()


def run_path(directory: Path, alpha: float, seed: int) -> Path:
    from kdutils.profiles import alpha_slug

    return Path(directory) / "runs" / f"{alpha_slug(alpha)}_seed{seed}.json"


def load_runs(directory: str | os.PathLike) -> list[dict]:
    """Every run record under `directory/runs`, sorted by alpha and seed."""
    records = [read_json(p) for p in sorted(Path(directory).glob("runs/*.json"))]
    records = [r for r in records if r is not None and isinstance(r.get("config"), dict)]
    return sorted(records, key=lambda r: (r["config"]["alpha"], r["config"]["seed"]))


def scores(data, history: list[dict], logits: dict[str, np.ndarray]) -> dict:
    """What a run's record says of its fit: the split sizes, the per-epoch curves and the
    validation and test accuracy of `logits` on `data` (a `kdutils.distill.data.Dataset`)."""
    return {
        "train_examples": len(data.y_train),
        "test_examples": len(data.y_test),
        "history": history,
        "val_accuracy": metrics.accuracy(logits["val"], data.y_val),
        "test_accuracy": metrics.accuracy(logits["test"], data.y_test),
    }


def by_seed(records: list[dict], key: str) -> np.ndarray:
    """`key` of every record, in seed order: the pairs that paired differences compare."""
    return np.array([r[key] for r in sorted(records, key=lambda r: r["config"]["seed"])])


def seed_table(records: list[dict], columns: Callable[[dict], dict]) -> pd.DataFrame:
    """One row per record, indexed by seed: its epochs, `columns(record)`, its test fidelity
    where it has one, and its training seconds (a study's run-page table)."""
    rows = []
    for r in records:
        row = {"seed": r["config"]["seed"], "epochs": r["config"]["epochs"], **columns(r)}
        if "test_fidelity" in r:
            row["test fidelity"] = r["test_fidelity"]
        rows.append(row | {"train seconds": round(r["train_seconds"], 1)})
    return pd.DataFrame(rows).set_index("seed")


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
