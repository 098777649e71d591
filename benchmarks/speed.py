"""What an alpha sweep costs: per-step teacher vs cached logits vs fused students.

    python benchmarks/speed.py [--images 10000] [--epochs 2] [--output results/benchmarks/cpu.json]

Every measurement runs in its own process (so peak memory is its own): it builds the models,
trains one untimed warm-up epoch (tracing), then times `--epochs` epochs of `fit`. Printed
side by side: seconds per epoch, images per second, peak RSS and the ratio to a FLOP floor
(the students' training FLOPs divided by a float32 matmul rate measured in the same run). Also
measured: the cost against the number of fused students and against the training-set size,
a null model (the data pipeline and the framework, almost no arithmetic), and the sweep
estimate of the default profile. `make benchmark` runs it; the book's performance appendix
reads the JSON it writes.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdutils.perf import MODE_NAMES as MODES  # noqa: E402


def measure(mode: str, images: int, epochs: int, students: int, batch_size: int) -> dict:
    """Train `mode` for a warm-up epoch and `epochs` timed epochs; return its costs."""
    import keras

    from kdutils import Distiller, build_model, with_teacher_logits
    from kdutils.distill.data import load_dataset
    from kdutils.distill.fused import FusedDistiller
    from kdutils.distill.repro import set_seed
    from kdutils.perf import peak_rss_mib, training_flops
    from kdutils.profiles import ALPHAS, STEPS_PER_EXECUTION

    data = load_dataset("mnist", train_size=images, validation_size=5000, seed=0)
    x, y = data.x_train, data.y_train
    set_seed(0)
    teacher = build_model("report_teacher")  # untrained: the speed does not depend on weights
    logits = teacher.predict(x, batch_size=512, verbose=0)
    alphas = list(ALPHAS[:: max(1, len(ALPHAS) // students)][:students])
    alphas += [0.5] * (students - len(alphas))
    spe = STEPS_PER_EXECUTION if mode.endswith("_spe") or mode == "null" else 1
    inputs = with_teacher_logits(x, logits)
    if mode == "per_step":
        model, inputs, n = Distiller(build_model("report_student"), teacher, 0.5, 10.0), x, 1
    elif mode.startswith("cached"):
        model, n = Distiller(build_model("report_student"), alpha=0.5, temperature=10.0), 1
    elif mode.startswith("fused"):
        n = students
        model = FusedDistiller([build_model("report_student") for _ in alphas], alphas, None, 10.0)
    elif mode == "null":
        model = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Flatten(),
                                  keras.layers.Dense(10)])  # fmt: skip
        inputs, n = x, 0
    else:
        raise ValueError(f"unknown mode {mode!r}; choose one of {list(MODES)}")
    compile_args = {"steps_per_execution": spe}
    if mode == "null":
        compile_args["loss"] = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(), **compile_args)
    model.fit(inputs, y, batch_size=batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(inputs, y, batch_size=batch_size, epochs=epochs, verbose=0)
    seconds = (time.perf_counter() - start) / epochs
    flops = training_flops(build_model("report_student")) * n * images
    if mode == "per_step":
        flops += training_flops(teacher) / 3 * images  # the teacher's forward pass
    return {
        "mode": mode,
        "images": images,
        "students": n,
        "steps_per_execution": spe,
        "seconds_per_epoch": seconds,
        "images_per_second": images / seconds,
        "flops_per_epoch": flops,
        "peak_rss_mib": peak_rss_mib(),
    }


def measure_batched(images: int, epochs: int, students: int, batch_size: int) -> dict:
    """`students` students (11 alphas per seed) in one `BatchedStudents`, on this backend."""
    import keras

    from kdutils import build_model
    from kdutils.distill.batched import BatchedStudents, Split, Student
    from kdutils.distill.data import load_dataset
    from kdutils.perf import peak_rss_mib, training_flops
    from kdutils.profiles import ALPHAS, STEPS_PER_EXECUTION

    data = load_dataset("mnist", train_size=images, validation_size=5000, seed=0)
    logits = np.random.default_rng(0).normal(0, 3, (images, 10)).astype("float32")
    split = Split.of(data.x_train, data.y_train, logits)  # speed does not depend on logits
    group = [Student(ALPHAS[i % len(ALPHAS)], i // len(ALPHAS), 10.0) for i in range(students)]
    model = BatchedStudents(lambda: build_model("report_student"), group, 1e-3, batch_size,
                            steps_per_call=STEPS_PER_EXECUTION)  # fmt: skip
    model.fit(split, None, 1)  # warm-up: tracing and compiling
    start = time.perf_counter()
    model.fit(split, None, epochs)
    seconds = (time.perf_counter() - start) / epochs
    return {
        "mode": "batched",
        "backend": keras.backend.backend(),
        "batched_mode": model.mode,
        "images": images,
        "students": students,
        "steps_per_execution": STEPS_PER_EXECUTION,
        "seconds_per_epoch": seconds,
        "images_per_second": images / seconds,
        "flops_per_epoch": training_flops(build_model("report_student")) * students * images,
        "peak_rss_mib": peak_rss_mib(),
    }


def run_child(
    mode: str, images: int, epochs: int, students: int, batch_size: int, backend: str = ""
) -> dict:
    """`measure` in a fresh Python process (on `backend`, default this one's); its last
    stdout line is the JSON result."""
    args = [sys.executable, __file__, "--child", mode, "--images", str(images)]
    args += ["--epochs", str(epochs), "--students", str(students), "--batch-size", str(batch_size)]
    env = os.environ | ({"KERAS_BACKEND": backend} if backend else {})
    out = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> dict:
    import keras

    from kdutils.perf import matmul_rate

    cpu = platform.processor() or "?"
    try:
        names = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    except OSError:
        pass
    devices = []
    if keras.backend.backend() == "jax":
        import jax

        devices = [str(d.device_kind) for d in jax.devices()]
    return {
        "cpu": cpu,
        "cpus": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "devices": devices,
        "platform": platform.platform(),
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "matmul_flops_per_second": matmul_rate(),
    }


def sweep_estimate(rows: dict[str, dict], default) -> dict:
    """The default profile's student training time, per-step teacher vs fused, from `rows`.

    Teacher training is the same in both and left out; so is evaluation at epoch budgets.
    """
    runs = len(default.alphas) * len(default.seeds)
    scale = (default.train_size or 55_000) / rows["per_step"]["images"]
    per_step = runs * default.epochs * rows["per_step"]["seconds_per_epoch"] * scale
    fused = len(default.seeds) * default.epochs * rows["fused_spe"]["seconds_per_epoch"] * scale
    return {
        "runs": runs,
        "per_step_seconds": per_step,
        "fused_seconds": fused,
        "speedup": per_step / fused,
    }


def batched_scan(run, args) -> list[dict]:
    """Separate (cached, 32 steps per call), fused and batched students on each backend,
    the batched at each N of `--batched-students`; printed as they come."""
    images = args.batched_images or args.images
    rows = []
    print(f"batched scan: {images} images; backend, mode, N, s/epoch, s/epoch per student, x floor")
    for backend in args.backends:
        scan = args.batched_students
        if backend == "jax" and args.jax_batched_students is not None:
            scan = args.jax_batched_students
        for mode, n in [("cached_spe", 1), ("fused_spe", 11)] + [("batched", n) for n in scan]:
            row = run(mode, images=images, students=n, backend=backend) | {"backend": backend}
            rows.append(row)
            print(f"  {backend:<11}{row.get('batched_mode', mode):<11}{n:>4}"
                  f"{row['seconds_per_epoch']:>9.2f}{row['seconds_per_epoch'] / n:>8.3f}"
                  f"{row['floor_ratio']:>7.1f}", flush=True)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--students", type=int, default=11, help="fused students (alphas)")
    parser.add_argument("--scan-students", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--scan-images", type=int, nargs="*", default=[2500, 5000, 20000])
    parser.add_argument(
        "--batched-students", type=int, nargs="*", default=[11, 33, 55], help="batched N scan"
    )
    parser.add_argument("--batched-images", type=int, help="images of the batched scan")
    parser.add_argument("--backends", nargs="*", default=["tensorflow", "jax"])
    parser.add_argument(
        "--jax-batched-students", type=int, nargs="*", help="JAX's batched N (default: the same)"
    )
    parser.add_argument("--output", help="write the results as JSON here")
    parser.add_argument("--child", choices=[*MODES, "batched"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child = (
            measure_batched if args.child == "batched" else functools.partial(measure, args.child)
        )
        result = child(args.images, args.epochs, args.students, args.batch_size)
        print(json.dumps(result))
        return

    from kdutils.distill.repro import environment
    from kdutils.profiles import get_profile

    start = time.perf_counter()
    info = machine()
    rate = info["matmul_flops_per_second"]
    print(f"machine: {info['cpu']}, {info['cpus']} CPUs {info['devices'] or ''}")
    print(f"backend: {info['backend']}, keras {info['keras']}; matmul {rate / 1e9:.1f} GFLOP/s")
    print(f"data: {args.images} MNIST images, batch {args.batch_size}, {args.epochs} timed epochs")

    def run(mode, images=args.images, students=args.students, backend=""):
        row = run_child(mode, images, args.epochs, students, args.batch_size, backend)
        row["flop_floor_seconds"] = row["flops_per_epoch"] / rate
        row["floor_ratio"] = (
            row["seconds_per_epoch"] / row["flop_floor_seconds"] if row["flops_per_epoch"] else None
        )
        return row

    rows = {mode: run(mode) for mode in MODES}
    head = f"{'mode':<34}{'students':>9}{'s/epoch':>9}{'s/epoch/α':>10}{'images/s':>10}"
    print(head + f"{'peak RSS':>10}{'x floor':>9}")
    for mode, row in rows.items():
        per_alpha = row["seconds_per_epoch"] / max(row["students"], 1)
        floor = f"{row['floor_ratio']:.1f}" if row["floor_ratio"] else "-"
        print(
            f"{MODES[mode]:<34}{row['students']:>9}{row['seconds_per_epoch']:>9.2f}"
            f"{per_alpha:>10.3f}{row['images_per_second']:>10.0f}"
            f"{row['peak_rss_mib']:>8.0f}MB{floor:>9}"
        )
    base = rows["per_step"]["seconds_per_epoch"]
    for mode in ("cached", "cached_spe"):
        print(f"{MODES[mode]}: {base / rows[mode]['seconds_per_epoch']:.1f}x the per-step teacher")
    for mode in ("fused", "fused_spe"):
        ratio = base * args.students / rows[mode]["seconds_per_epoch"]
        print(f"{MODES[mode]}: {ratio:.1f}x {args.students} per-step runs")

    students_scan = [run("fused_spe", students=n) for n in args.scan_students if n != args.students]
    images_scan = [
        run(mode, images=n) for n in args.scan_images for mode in ("cached_spe", "fused_spe")
    ]
    batched = batched_scan(run, args)
    estimate = sweep_estimate(rows, get_profile("default"))
    print(
        f"default sweep ({estimate['runs']} runs), student training: per-step teacher "
        f"{estimate['per_step_seconds']:.0f} s vs fused {estimate['fused_seconds']:.0f} s "
        f"({estimate['speedup']:.1f}x)"
    )
    seconds = time.perf_counter() - start
    print(f"benchmark took {seconds:.0f} s")
    if args.output:
        from kdutils.results import portable, write_json

        result = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(portable(a) if os.path.isabs(a) else a for a in sys.argv),
            "machine": info,
            "settings": vars(args) | {"child": None, "output": portable(args.output)},
            "rows": list(rows.values()),
            "students_scan": [rows["fused_spe"], *students_scan],
            "images_scan": [rows["cached_spe"], rows["fused_spe"], *images_scan],
            "batched_scan": batched,
            "default_sweep_estimate": estimate,
            "seconds": seconds,
            "environment": environment(),
        }
        write_json(args.output, result)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
