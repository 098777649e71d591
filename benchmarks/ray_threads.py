"""Threads in a Ray task: TensorFlow's defaults against a task's own `num_cpus`.

    python benchmarks/ray_threads.py [--repeats 2]

Trains one seed's fused students (the smoke profile, seed 0, 2 alphas; the teacher trained
first, untimed) in a one-CPU Ray task on a local Ray, alternately with TensorFlow's default
threads (Ray sets only OMP_NUM_THREADS=1) and with the threads `kdutils.graph` sets (intra-
and inter-op threads = OMP_NUM_THREADS = the task's num_cpus). Each task gets a fresh worker
(`max_calls=1`), since TensorFlow fixes its threads when it starts. Prints the seconds.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import ray

from kdutils import graph, sweep
from kdutils.profiles import get_profile

PROFILE = get_profile("smoke").override(seeds=[0]).replace(alphas=(0.0, 0.5))


def timed(explicit: bool, directory: Path) -> float:
    """Seconds of one fused-seed training, its threads explicit or TensorFlow's defaults."""
    shutil.rmtree(directory / "runs", ignore_errors=True)
    start = time.perf_counter()
    args = (PROFILE, list(PROFILE.alphas), [0], directory)
    if explicit:
        graph.call(sweep.fused_seeds, args, graph.worker_env(), graph.CPUS, True, None, "")
    else:
        sweep.fused_seeds(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    repeats = parser.parse_args().repeats
    directory = Path(tempfile.mkdtemp()) / "smoke"
    graph.start_ray()
    task = ray.remote(num_cpus=graph.CPUS, max_calls=1)(timed)
    ray.get(ray.remote(sweep.train_teacher).remote(PROFILE, 0, directory))
    for _ in range(repeats):
        for explicit in (False, True):
            seconds = ray.get(task.remote(explicit, directory))
            print(f"{'explicit' if explicit else 'default '} threads: {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
