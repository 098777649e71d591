"""Seconds per student epoch: teacher run at every step vs cached teacher logits.

    python benchmarks/distiller_speed.py [--images 10000] [--epochs 2]

Each mode trains a new report student for one warm-up epoch (graph tracing, excluded), then
times `--epochs` more. Also timed: cached logits with several steps per compiled call (the
sweep's setting), and plain supervised training of the student, the floor that distillation
with cached logits can approach. Prints the machine, the backend and the speed-ups.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from kdutils import Distiller, build_model, with_teacher_logits
from kdutils.data import load_dataset
from kdutils.profiles import STEPS_PER_EXECUTION
from kdutils.repro import set_seed


def seconds_per_epoch(model: keras.Model, x, y, epochs: int, batch_size: int, **compile_args):
    """Mean seconds per epoch of `model.fit`, after one untimed warm-up epoch (tracing)."""
    model.compile(optimizer=keras.optimizers.Adam(), **compile_args)
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
    return (time.perf_counter() - start) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    data = load_dataset("mnist", train_size=args.images, validation_size=5000, seed=0)
    x, y = data.x_train, data.y_train
    set_seed(0)
    teacher = build_model("report_teacher")  # untrained: speed does not depend on weights
    start = time.perf_counter()
    logits = teacher.predict(x, batch_size=512, verbose=0)
    cache_seconds = time.perf_counter() - start

    per_step = seconds_per_epoch(
        Distiller(build_model("report_student"), teacher, alpha=0.5, temperature=10.0),
        x,
        y,
        args.epochs,
        args.batch_size,
    )
    cached = seconds_per_epoch(
        Distiller(build_model("report_student"), alpha=0.5, temperature=10.0),
        with_teacher_logits(x, logits),
        y,
        args.epochs,
        args.batch_size,
    )
    fewer_calls = seconds_per_epoch(
        Distiller(build_model("report_student"), alpha=0.5, temperature=10.0),
        with_teacher_logits(x, logits),
        y,
        args.epochs,
        args.batch_size,
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    plain = seconds_per_epoch(
        build_model("report_student"),
        x,
        y,
        args.epochs,
        args.batch_size,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or '?'}")
    print(f"backend: {keras.backend.backend()}, keras {keras.__version__}")
    print(f"data: {args.images} MNIST images, batch {args.batch_size}, {args.epochs} timed epochs")
    print(f"{'mode':<32}{'s/epoch':>10}{'images/s':>12}")
    rows = (
        ("teacher at every step", per_step),
        ("cached teacher logits", cached),
        (f"cached, {STEPS_PER_EXECUTION} steps per call", fewer_calls),
        ("student alone, no teacher", plain),
    )
    for name, sec in rows:
        print(f"{name:<32}{sec:>10.2f}{args.images / sec:>12.0f}")
    print(f"caching the logits once took {cache_seconds:.2f} s")
    print(f"speed-up of cached logits: {per_step / cached:.1f}x")
    ratio = per_step / fewer_calls
    print(f"speed-up of cached logits, {STEPS_PER_EXECUTION} steps per call: {ratio:.1f}x")


if __name__ == "__main__":
    main()
