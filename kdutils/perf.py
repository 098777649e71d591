"""Performance accounting: FLOPs of a model, the machine's matmul rate, peak memory."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from keras import layers, ops


def _size(shape) -> int:
    return int(np.prod([d for d in shape if d is not None]))


def forward_flops(model: keras.Model) -> int:
    """Multiply-adds x 2 of one image's forward pass through the Conv2D and Dense layers.

    Activations, pooling and the loss are left out: they are a few percent of the total for
    the book's models and run at memory speed, not matmul speed.
    """
    total = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, layers.Conv2D):
            kh, kw = layer.kernel_size
            fan_in = kh * kw * int(layer.input.shape[-1]) // layer.groups
            total += 2 * _size(layer.output.shape[1:]) * fan_in
        elif isinstance(layer, layers.Dense):
            total += 2 * _size(layer.output.shape[1:]) * int(layer.input.shape[-1])
    return total


def training_flops(model: keras.Model) -> int:
    """FLOPs of one image's training step: forward + backward (about twice the forward)."""
    return 3 * forward_flops(model)


def matmul_rate(size: int = 1024, repeats: int = 10) -> float:
    """Measured float32 matmul FLOP/s of this machine and backend (best of `repeats`)."""
    rng = np.random.default_rng(0)
    a = ops.convert_to_tensor(rng.random((size, size), dtype=np.float32))
    b = ops.convert_to_tensor(rng.random((size, size), dtype=np.float32))
    ops.convert_to_numpy(ops.matmul(a, b))  # warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        ops.convert_to_numpy(ops.matmul(a, b))
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


MODE_NAMES = {
    "per_step": "teacher at every step",
    "cached": "cached teacher logits",
    "cached_spe": "cached, 32 steps per call",
    "fused": "fused alphas",
    "fused_spe": "fused alphas, 32 steps per call",
    "null": "null model (pipeline floor)",
}


def speed_benchmarks(directory: Path) -> dict[str, dict]:
    """The JSON files of `benchmarks/speed.py` in `directory`, by file stem.

    Other timings stored beside them (a study's own GPU timing, say) have no per-mode
    `rows` and are skipped.
    """
    found = {p.stem: json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json"))}
    return {name: b for name, b in found.items() if {"machine", "rows", "settings"} <= set(b)}


def benchmarks_overview(benchmarks: dict[str, dict]) -> pd.DataFrame:
    """One row per speed benchmark: its date, machine, backend and fused-student speed."""
    return pd.DataFrame(
        {
            name: {
                "date": b["date"][:10],
                "machine": b["machine"]["cpu"],
                "accelerators": ", ".join(b["machine"]["devices"]) or "none",
                "backend": b["machine"]["backend"],
                "images": b["settings"]["images"],
                "fused s/epoch": next(
                    r["seconds_per_epoch"] for r in b["rows"] if r["mode"] == "fused_spe"
                ),
            }
            for name, b in benchmarks.items()
        }
    ).T


def benchmark_table(result: dict) -> pd.DataFrame:
    """The benchmark's main table (one row per mode) from `benchmarks/speed.py`'s JSON."""
    rows = []
    base = next(r for r in result["rows"] if r["mode"] == "per_step")
    for r in result["rows"]:
        n = r["students"]
        rows.append(
            {
                "mode": MODE_NAMES.get(r["mode"], r["mode"]),
                "students": n,
                "s/epoch": r["seconds_per_epoch"],
                "s/epoch per α": r["seconds_per_epoch"] / n if n else None,
                "images/s": r["images_per_second"],
                "peak RSS (MiB)": r["peak_rss_mib"],
                "× FLOP floor": r["floor_ratio"],
                "speed-up per α vs per-step": (
                    base["seconds_per_epoch"] * n / r["seconds_per_epoch"] if n else None
                ),
            }
        )
    return pd.DataFrame(rows).set_index("mode")


def time_breakdown(result: dict, fused: bool = False) -> dict[str, float]:
    """Where one epoch's seconds go (cached logits, 32 steps per call, or fused), in parts.

    - arithmetic: the FLOP floor (training FLOPs / measured matmul rate);
    - data pipeline and framework: the null model's epoch (same batches, ~no arithmetic);
    - step dispatch: what 32 steps per call saved (1 step per call minus 32);
    - kernels below matmul speed: the rest (small convolutions run far below peak).
    """
    rows = {r["mode"]: r for r in result["rows"]}
    one, many = ("fused", "fused_spe") if fused else ("cached", "cached_spe")
    total = rows[one]["seconds_per_epoch"]
    arithmetic = rows[many]["flop_floor_seconds"]
    pipeline = rows["null"]["seconds_per_epoch"]
    dispatch = max(total - rows[many]["seconds_per_epoch"], 0.0)
    rest = max(total - arithmetic - pipeline - dispatch, 0.0)
    return {
        "arithmetic (FLOP floor)": arithmetic,
        "data pipeline and framework": pipeline,
        "step dispatch": dispatch,
        "kernels below matmul speed": rest,
    }


def sweep_comparison(profile, result: dict, directory) -> dict | None:
    """The profile's measured fused sweep against the per-step-teacher sweep it replaces.

    measured: teacher training (from the teacher records) + the last `--fused` sweep session
    (from `sweep.json`: fused training, evaluation and every papermill page).
    per-step estimate: the same teacher training + every (alpha, seed) run trained alone with
    the teacher at every step, at the benchmark's per-step seconds per epoch scaled to the
    profile's training-set size (evaluation and pages left out, so the estimate is low).
    None when the profile has no fused session or no teacher records yet.
    """
    from pathlib import Path

    from kdutils.results import read_json

    directory = Path(directory)
    sessions = (read_json(directory / "sweep.json") or {"sessions": []})["sessions"]
    fused = [s for s in sessions if "--fused" in s["command"] and not s["failed_alphas"]]
    teachers = [read_json(p) for p in sorted(directory.glob("teachers/seed*.json"))]
    teachers = [t for t in teachers if t and t["config"]["seed"] in profile.seeds]
    if not fused or len(teachers) != len(profile.seeds):
        return None
    per_step = next(r for r in result["rows"] if r["mode"] == "per_step")
    images = profile.train_size or 55_000
    runs = len(profile.alphas) * len(profile.seeds)
    students = runs * profile.epochs * per_step["seconds_per_epoch"] * images / per_step["images"]
    teacher_seconds = sum(t["train_seconds"] for t in teachers)
    measured = teacher_seconds + fused[-1]["seconds"]
    estimate = teacher_seconds + students
    return {
        "teacher_seconds": teacher_seconds,
        "fused_session_seconds": fused[-1]["seconds"],
        "measured_seconds": measured,
        "per_step_estimate_seconds": estimate,
        "speedup": estimate / measured,
        "runs": runs,
    }


def batched_table(result: dict) -> pd.DataFrame:
    """The benchmark's batched scan: separate, fused and batched students on each backend."""
    rows = []
    for r in result["batched_scan"]:
        n = r["students"]
        rows.append(
            {
                "backend": r["backend"],
                "mode": MODE_NAMES.get(r["mode"], r["mode"])
                + (f" ({r['batched_mode']})" if "batched_mode" in r else ""),
                "students": n,
                "s/epoch": r["seconds_per_epoch"],
                "s per student-epoch": r["seconds_per_epoch"] / n,
                "× FLOP floor": r["floor_ratio"],
                "peak RSS per student (MiB)": r["peak_rss_mib"] / n,
            }
        )
    return pd.DataFrame(rows)


def batched_scaling(result: dict, backend: str) -> dict[str, float]:
    """Least-squares fit of the batched epoch on `backend`: s/epoch = fixed + per_student * N.

    `fixed` is what every step costs however many students share it (dispatch, data, the
    optimizer's loop); `per_student` is each student's own kernels, compared with its FLOP
    floor in `per_student_floor_ratio`.
    """
    rows = [r for r in result["batched_scan"] if r["mode"] == "batched" and r["backend"] == backend]
    n = np.array([r["students"] for r in rows], dtype=float)
    seconds = np.array([r["seconds_per_epoch"] for r in rows])
    per_student, fixed = np.polyfit(n, seconds, 1)
    floor = rows[0]["flop_floor_seconds"] / rows[0]["students"]
    return {
        "fixed": float(fixed),
        "per_student": float(per_student),
        "per_student_floor_ratio": float(per_student / floor),
    }


# An H100/H200's float32 rate without tensor cores (NVIDIA's data sheet), and one training
# step's overhead measured on an H100 with JAX (a single student is dispatch-bound there:
# 1.02 s per epoch of 60k images in batches of 64, about 1.1 ms per step).
GPU_FLOPS_PER_SECOND = 67e12
GPU_SECONDS_PER_STEP = 1.1e-3


def gpu_estimate(
    flops_per_image: float,
    images: int,
    students: int,
    epochs: int,
    batch_size: int,
    flops_per_second: float = GPU_FLOPS_PER_SECOND,
    seconds_per_step: float = GPU_SECONDS_PER_STEP,
) -> dict[str, float]:
    """Expected cost of batched students on a GPU: every step is paid once for all students
    (vmap), the arithmetic once per student. A floor-plus-overhead estimate, not a measurement."""
    steps = -(-images // batch_size)
    arithmetic = flops_per_image * images * students / flops_per_second
    overhead = steps * seconds_per_step
    epoch = arithmetic + overhead
    return {
        "epoch_seconds": epoch,
        "arithmetic_seconds": arithmetic,
        "step_seconds": overhead,
        "per_student_epoch_seconds": epoch / students,
        "total_seconds": epoch * epochs,
    }
