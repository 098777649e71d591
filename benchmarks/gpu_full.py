"""The report's scale on one GPU: every `full` profile, in priority order, in one call.

    bash benchmarks/gpu_full.sh --out "$OUT"                      # on the GPU machine
    bash benchmarks/gpu_full.sh --scale smoke --out /tmp/rehearse   # the CPU rehearsal

Steps, in priority order (`--steps` picks some):

1. `main`: the main sweep's `full` profile (kdutils.profiles), teachers then every student;
2. `bench`: benchmarks/speed.py on the card (s/epoch, x FLOP floor, compute vs dispatch);
3. `hinton`: Hinton et al. (2015) at the paper's scale;
4. `cifar_dark`, `cifar_features`, `cifar_alexnet`: the CIFAR-10 course reports' `full`.

Each step trains into a results folder seeded with the committed `results/`, so what is
stored is not trained again (cifar_dark's seeds 0-2, say). After every finished unit (a seed
of the main sweep, a study condition) the step packs what it wrote into `<out>/<step>.tar.gz`
(paths relative to `results/`) and its provenance into `<out>/<step>.json` (card, driver,
versions, wall time, units done), so a timeout keeps everything finished before it. Pages
are not executed here (the GPU image has no papermill): unpack the archives into `results/`
and run `make book PROFILE=full`, which finds every run stored and only writes the pages.
`--scale smoke` runs the same steps with the `smoke` profile, on any machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdutils.results import write_json  # noqa: E402

STEPS = ("main", "bench", "hinton", "cifar_dark", "cifar_features", "cifar_alexnet")
PROFILE_OF_SCALE = {"full": "full", "smoke": "smoke"}


def card() -> dict:
    """The accelerator as nvidia-smi and the backend see it (empty lists on a CPU)."""
    import keras

    info: dict = {"backend": keras.backend.backend(), "devices": [], "nvidia_smi": []}
    if info["backend"] == "jax":
        import jax

        info["devices"] = [f"{d.platform}: {d.device_kind}" for d in jax.devices()]
    query = "name,driver_version,memory.total,clocks.max.sm"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        info["nvidia_smi"] = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def require_gpu(info: dict) -> None:
    """Stop at once, before any training, when the backend sees no GPU."""
    if not any(d.startswith(("gpu", "cuda")) for d in info["devices"]):
        raise SystemExit(
            f"no GPU visible to Keras's {info['backend']} backend ({info['devices']}); "
            "set KERAS_BACKEND=jax on a GPU machine, or rehearse with --scale smoke"
        )


def seed_results(results: Path) -> None:
    """Copy the committed results into the run's results folder, so stored runs resume."""
    if not results.exists():
        shutil.copytree(ROOT / "results", results, ignore=shutil.ignore_patterns("*.lock"))


def snapshot(results: Path) -> dict[Path, int]:
    """Every file under `results` now, with its modification time (ns)."""
    return {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}


# Left out of the archives: locks, partial writes, and model weights, which git ignores
# (the book reads records and logits; weights would pass the 16 MiB a returned file may have).
NOT_PACKED = (".lock", ".tmp", ".weights.h5", ".keras")


def new_files(results: Path, before: dict[Path, int]) -> list[Path]:
    """Files under `results` that are new or changed since `before`, less `NOT_PACKED`."""
    return sorted(
        p
        for p, mtime in snapshot(results).items()
        if not p.name.endswith(NOT_PACKED) and before.get(p) != mtime
    )


def pack(out: Path, step: str, results: Path, files: list[Path], provenance: dict) -> None:
    """Write `<out>/<step>.tar.gz` (paths relative to `results`) and `<out>/<step>.json`."""
    archive, partial = out / f"{step}.tar.gz", out / f".{step}.tar.gz.tmp"
    with tarfile.open(partial, "w:gz") as tar:
        for path in files:
            tar.add(path, arcname=str(path.relative_to(results)))
    os.replace(partial, archive)
    write_json(out / f"{step}.json", provenance)


def run_step(step: str, units: Iterator, results: Path, out: Path, info: dict) -> dict:
    """Run each (name, thunk) unit of `step`, packing results and provenance after each;
    `info` is the card as `card()` saw it."""
    from kdutils.distill.repro import environment

    provenance = {
        "step": step,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "card": info,
        "environment": environment(),
        "units": [],
    }
    before, start = snapshot(results), time.perf_counter()
    for name, thunk in units:
        unit_start = time.perf_counter()
        print(f"[{step}] {name} ...", flush=True)
        extra = thunk()
        seconds = time.perf_counter() - unit_start
        provenance["units"].append({"unit": name, "seconds": round(seconds, 2)} | (extra or {}))
        provenance["seconds"] = round(time.perf_counter() - start, 2)
        pack(out, step, results, new_files(results, before), provenance)
        print(f"[{step}] {name} done in {seconds:.0f} s", flush=True)
    provenance["finished"] = True
    pack(out, step, results, new_files(results, before), provenance)
    return provenance


def main_units(
    profile_name: str, results: Path, seeds: list[int] | None
) -> Iterator[tuple[str, Callable]]:
    """The main sweep (`seeds` of it, default all): each seed's teacher is a unit, then every
    student of every seed trains in one batched model (kdutils.experiment.run_batched)."""
    from kdutils.experiment import load_run, run_batched
    from kdutils.profiles import get_profile
    from kdutils.results import results_dir
    from kdutils.teacher_cache import get_teacher

    profile = get_profile(profile_name).override(seeds=seeds)
    directory = results_dir(profile.name, results)
    for seed in profile.teacher_seeds():

        def teacher(seed=seed) -> dict:
            record = get_teacher(profile, seed, directory).record
            return {
                "test_accuracy": record["test_accuracy"],
                "train_seconds": record["train_seconds"],
            }

        yield f"teacher seed {seed}", teacher

    def students() -> dict:
        trained = run_batched(profile, list(profile.alphas), directory)
        pairs = [(a, s) for s in profile.seeds for a in profile.alphas]
        records = [load_run(profile, a, s, directory) for a, s in pairs]
        return {"trained": trained} | student_costs(profile, records)

    yield "students", students


def student_costs(profile, records: list[dict]) -> dict:
    """s per student-epoch and x FLOP floor (on this card's matmul rate) of the stored runs."""
    floor = floor_seconds_per_image_epoch(profile.student)
    seconds = sum(r["train_seconds"] for r in records)  # each holds its share of the batch
    student_epochs = len(records) * profile.epochs
    return {
        "students": len(records),
        "trainer": sorted({r.get("trainer", "?") for r in records}),
        "epochs": profile.epochs,
        "images": profile.train_size,
        "student_train_seconds": seconds,
        "seconds_per_student_epoch": seconds / student_epochs,
        "x_flop_floor": seconds / (floor["seconds"] * profile.train_size * student_epochs),
        "matmul_flops_per_second": floor["rate"],
    }


def floor_seconds_per_image_epoch(student: str) -> dict:
    """The FLOP floor of one image's training step: training FLOPs / this card's matmul rate."""
    from kdutils.distill.models import build_model
    from kdutils.perf import matmul_rate, training_flops

    rate = matmul_rate(size=4096)
    return {"seconds": training_flops(build_model(student)) / rate, "rate": rate}


def study_units(study: str, profile_name: str, results: Path) -> Iterator[tuple[str, Callable]]:
    """A study: each condition (all its seeds) is one unit."""
    from kdutils.profiles import get_profile
    from kdutils.studies import get_study, study_dir

    profile, module = get_profile(profile_name), get_study(study)
    for condition in module.conditions(profile):

        def unit(condition=condition) -> dict:
            records = module.run(profile, condition, study_dir(profile, study, condition, results))
            return {"records": len(records)}

        yield condition, unit


def bench_units(scale: str, out: Path) -> Iterator[tuple[str, Callable]]:
    """benchmarks/speed.py on this machine: one epoch of each mode, batched N = 11 and 55."""
    images = "10000" if scale == "full" else "1000"

    def unit() -> dict:
        args = [sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--images", images]
        args += ["--epochs", "1", "--scan-students", "--scan-images"]
        # the batched scan on this run's backend only (the GPU image has no TensorFlow)
        args += ["--batched-students", "11", "55", "--backends", keras_backend()]
        args += ["--output", str(out / "gpu_bench_speed.json")]
        subprocess.run(args, check=True)
        return {"output": "gpu_bench_speed.json"}

    yield "speed.py", unit


def keras_backend() -> str:
    import keras

    return keras.backend.backend()


def units_of(step: str, args: argparse.Namespace, results: Path, out: Path) -> Iterator:
    """The (name, thunk) units of `step` at the scale of `args`."""
    profile_name = PROFILE_OF_SCALE[args.scale]
    if step == "main":
        return main_units(profile_name, results, args.seeds)
    if step == "bench":
        return bench_units(args.scale, out)
    return study_units(step, profile_name, results)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="where archives and provenance go")
    parser.add_argument("--scale", choices=sorted(PROFILE_OF_SCALE), default="full")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--seeds", type=int, nargs="+", help="only these seeds of the main sweep")
    parser.add_argument("--work", help="results folder to train in (default: <out>-results)")
    parser.add_argument(
        "--stop-after", type=float, default=None, help="start no step after this many seconds"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results = Path(args.work or out.parent / f"{out.name}-results").resolve()
    info = card()
    print(f"card: {info['nvidia_smi'] or 'none'}; {info['backend']}: {info['devices']}")
    if args.scale == "full":
        require_gpu(info)
    seed_results(results)
    start, failed = time.perf_counter(), []
    for step in args.steps:
        if args.stop_after is not None and time.perf_counter() - start > args.stop_after:
            print(f"[{step}] not started: past --stop-after {args.stop_after:.0f} s", flush=True)
            continue
        try:
            run_step(step, units_of(step, args, results, out), results, out, info)
        except Exception:  # one step's failure must not cost the steps after it
            failed.append(step)
            (out / f"{step}.error.txt").write_text(traceback.format_exc())
            print(f"[{step}] FAILED:\n{traceback.format_exc()}", flush=True)
    print(f"all steps: {time.perf_counter() - start:.0f} s; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
