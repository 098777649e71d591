"""The sweep's engine: its work as one Ray task graph (`python -m kdutils.sweep`).

Each teacher, each seed's fused students (or all students batched in one task) and each
executed page (an alpha's, a study condition's) is one Ray task; a task takes the results of
the tasks it needs as arguments (ObjectRefs), so Ray runs it once they are done and runs
everything else side by side:

- one teacher task per distinct teacher (keyed by its record's path, which names its
  config), so studies that share a teacher train it once: no file lock is needed, since no
  two tasks train the same teacher (`sweep.condition_teachers` names the teachers a study
  page shares; a study whose teachers are its own trains them in its pages, in turn);
- the students of each seed need their teacher; an alpha's page needs every seed's students;
  a study condition's page needs its teachers; where a study trains its own teachers in its
  pages (`sweep.chained`), each condition runs after the previous one (a later one reads
  the teacher an earlier one trained), whether that one succeeded or not (`--keep-going`).

What is done is not submitted (`sweep.pending_alphas`, `sweep.pending_conditions`, the
teacher cache decide), and the writers are atomic, so a killed graph resumes. Training tasks
ask for 1 CPU and, where the cluster has GPUs, 1 GPU, as do the pages that train in their
notebooks (every study's but theory's; an alpha's with `--trainer separate`); an alpha's
page that reports stored runs asks for 1 CPU. A teacher on a cluster without GPUs takes a
node's CPUs: in the alpha sweep every other task waits for it, and on one CPU the smoke
sweep's teacher took 67 s against 26 s on two. Measured against the
process pool this engine replaced (`--jobs 2`), the smoke alpha sweep from empty results, one
after the other on an idle 2-core machine: 113 and 135 s on Ray against 125 and 132 s.
A worker that dies (killed, out of memory) is retried up to `RETRIES` times; an exception (a
notebook's error) is not: the page fails, its partial notebook is kept in `<results>/failed/`
(`sweep.execute_page`). Without `--keep-going` the first failure cancels the tasks in flight.
`--trainer auto` (the default) trains the students fused per seed or batched in one task,
whichever is faster on this backend (`kdutils.distill.batched.preferred_trainer`).

Threads: Ray sets OMP_NUM_THREADS=1 in its workers, while TensorFlow sizes its own pools to
the machine's cores, so N tasks on N cores each ran N threads. Each task now sets
OMP_NUM_THREADS and TensorFlow's intra- and inter-op threads to its `num_cpus`
(`sweep.set_threads`). Measured with `benchmarks/ray_threads.py` (one seed's fused students
of the smoke profile, alphas 0 and 0.5, 2 epochs, alone in a one-CPU task with a fresh
worker) on a 2-core machine shared with another job (load average 4-5): TensorFlow's
defaults 6.6 s and 8.9 s, explicit threads 7.0 s and 7.3 s. Alone, the two do not differ
beyond the noise; the explicit setting is for tasks side by side, where the defaults
oversubscribe the cores (not measured here).

`--address` (or $RAY_ADDRESS) joins a running cluster; otherwise a local Ray is started for
the run (no dashboard). Ray is imported only here, and this module only when there is work.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path

from kdutils import sweep
from kdutils.profiles import Profile
from kdutils.results import results_dir

CPUS = 1  # per task
RETRIES = 3  # per task, for worker deaths only
# The environment a task needs: where results go, this checkout, the backend, quiet TF.
FORWARDED = ("KDUTILS_", "KERAS_", "TF_CPP_", "PYTHONPATH")


@dataclasses.dataclass(frozen=True)
class Task:
    """One node of the graph: `function(*args)`, after the tasks `needs` (their results are
    its extra arguments) and, if any, after the task `after` has finished, however it ended.
    `trains`: it trains in its own process (TensorFlow's threads set there) and asks for a
    GPU where there is one. `gpu`: it asks for a GPU too (a page whose notebook trains).
    `wide`: with no GPU, it takes every CPU of a node (a teacher, which the tasks after it
    wait for). `label` names it among the failures."""

    key: str
    function: Callable
    args: tuple
    needs: tuple[str, ...] = ()
    after: str | None = None
    trains: bool = False
    gpu: bool = False
    wide: bool = False
    label: object = None


def call(
    function: Callable,
    args: tuple,
    env: dict,
    threads: int,
    trains: bool,
    started,
    key: str,
    *needed,
):
    """Run `function(*args)` in a Ray worker, with the driver's `env` and `threads` threads,
    first telling `started` (a `Started` actor, or None) that task `key` runs; `needed` (the
    results of the tasks it needs) only orders it."""
    if started is not None:
        started.add.remote(key)
    os.environ.update(env | {"OMP_NUM_THREADS": str(threads)})
    if trains:  # pages run their notebooks in kernels, which inherit OMP_NUM_THREADS
        sweep.set_threads(threads)
    return function(*args)


class Started:
    """A Ray actor holding the keys of the tasks that have started: Ray tells a driver when a
    task ends, not when it starts (its state API needs the dashboard)."""

    def __init__(self):
        self.keys: set[str] = set()

    def add(self, key: str) -> None:
        self.keys.add(key)

    def started(self) -> set[str]:
        return self.keys


def worker_env() -> dict[str, str]:
    """The driver's variables that workers and their notebook kernels need (`FORWARDED`)."""
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED)}


def start_ray(address: str | None = None):
    """The `ray` module, joined to the cluster at `address` (or $RAY_ADDRESS), else to a
    local Ray started here; an already initialised Ray is used as it is."""
    try:
        import ray
    except ImportError:
        raise ImportError(
            "the sweep runs its work on Ray, which is not installed: "
            '`pip install -r requirements.txt` (or `pip install -e ".[ray]"`)'
        ) from None

    if not ray.is_initialized():
        options = {"runtime_env": {"env_vars": worker_env()}, "logging_level": logging.WARNING}
        if address or os.environ.get("RAY_ADDRESS"):
            ray.init(address=address, **options)
        else:
            # "local": a new Ray of this run's own, never one `ray start` left on this machine
            ray.init(address="local", include_dashboard=False, **options)
    return ray


def teacher_task(teachers: dict, profile: Profile, seed: int, directory: Path) -> tuple:
    """Add the task training the teacher of the students of `seed` to `teachers` (by key)
    unless it is there or cached; return the keys a task using that teacher needs."""
    from kdutils.teacher_cache import load_teacher, main_spec

    key = f"teacher {main_spec(profile, seed, directory).record_path}"
    if key not in teachers and load_teacher(profile, seed, directory) is None:
        teacher_seed = profile.teacher_seed(seed)
        teachers[key] = Task(
            key, sweep.train_teacher, (profile, teacher_seed, directory), trains=True, wide=True
        )
    return (key,) if key in teachers else ()


def sweep_tasks(profile: Profile, alphas, directory: Path, pages: Path, trainer: str) -> list:
    """The tasks of the alpha sweep: teachers, students (fused per seed, or batched in one
    task, or none with `trainer` "separate"), then one page per unfinished alpha."""
    from kdutils.experiment import run_batched

    teachers: dict[str, Task] = {}
    needs = {s: teacher_task(teachers, profile, s, directory) for s in profile.seeds}
    todo = sweep.pending_alphas(profile, alphas, directory, pages)
    trainer = chosen_trainer(trainer) if todo else trainer
    if not todo or trainer == "separate":
        students = []
    elif trainer == "batched":
        every = tuple(dict.fromkeys(k for keys in needs.values() for k in keys))
        args = (profile, sweep.valid_alphas(todo), directory)
        students = [Task("students", run_batched, args, every, trains=True)]
    else:
        students = [
            Task(
                f"students seed {s}",
                sweep.fused_seeds,
                (profile, todo, [s], directory),
                needs[s],
                trains=True,
            )
            for s in profile.seeds
        ]
    before = tuple(t.key for t in students) or tuple(teachers)
    page_tasks = [
        Task(
            f"page alpha={a:g}",
            sweep.execute_alpha,
            (profile, a, pages, directory / "failed"),
            before,
            gpu=trainer == "separate",
            label=a,
        )
        for a in todo
    ]
    return [*teachers.values(), *students, *page_tasks]


def chosen_trainer(trainer: str) -> str:
    """`trainer`, with "auto" resolved to the faster trainer on this backend (said once)."""
    from kdutils.distill.batched import preferred_trainer

    if trainer != "auto":
        return trainer
    trainer = preferred_trainer()
    print(f"students: {trainer} (the faster trainer here, batched.TRAINERS)", flush=True)
    return trainer


def study_tasks(profile: Profile, names: list[str], results_root, pages: Path) -> list:
    """The tasks of the studies `names`: each distinct teacher of their conditions once, then
    one page per unfinished condition (after the study's previous one where the study is
    `sweep.chained`; asking for a GPU where the study trains in its pages)."""
    from kdutils.studies import trains

    directory = results_dir(profile.name, results_root)
    teachers: dict[str, Task] = {}
    page_tasks = []
    for study in names:
        previous = None
        for condition in sweep.pending_conditions(profile, study, results_root, pages):
            needs = [
                k
                for args in sweep.condition_teachers(profile, study, condition)
                for k in teacher_task(teachers, *args)
            ]
            key = f"page {study}/{condition}"
            args = (profile, study, condition, pages, directory / "failed")
            page_tasks.append(
                Task(
                    key,
                    sweep.execute_condition,
                    args,
                    tuple(needs),
                    previous if sweep.chained(study) else None,
                    gpu=trains(study),
                    label=f"{study}/{condition}",
                )
            )
            previous = key
    return [*teachers.values(), *page_tasks]


def run_graph(profile: Profile, names: list[str] | None, args: argparse.Namespace) -> list:
    """The sweep (`names` None) or the studies `names` as one Ray graph; returns the failed
    tasks' labels (alphas, "study/condition", or the task's key)."""
    sweep.kernel_environment(profile, args.results_dir)
    pages = Path(args.pages_dir)
    if names is None:
        directory = results_dir(profile.name, args.results_dir)
        alphas = list(profile.alphas if args.alphas is None else args.alphas)
        trainer = "fused" if args.fused else args.trainer
        tasks = sweep_tasks(profile, alphas, directory, pages, trainer)
    else:
        tasks = study_tasks(profile, names, args.results_dir, pages)
    return run_tasks(tasks, args.keep_going, args.address)


def run_tasks(tasks: list[Task], keep_going: bool = False, address: str | None = None) -> list:
    """Run `tasks` on Ray (`start_ray`), with one progress bar over them; return the failed
    tasks' labels. Without `keep_going`, the first failure cancels the tasks in flight."""
    from tqdm.auto import tqdm

    ray = start_ray(address)
    started = ray.remote(Started).options(num_cpus=0).remote()
    submit = submitter(ray, started)
    waiting, flying, finished, failures = list(tasks), {}, set(), []
    refs: dict = {}
    with tqdm(total=len(tasks), desc="graph", unit="task") as bar:
        while waiting or flying:
            for task in ready(waiting, refs, finished, keep_going or not failures):
                refs[task.key] = submit(task, [refs[k] for k in task.needs])
                flying[refs[task.key]] = task
            done, _ = ray.wait(list(flying), num_returns=1, timeout=1.0)
            for ref in done:
                task = flying.pop(ref)
                finished.add(task.key)
                bar.update()
                if error := outcome(ray, ref):
                    failures.append(task.key if task.label is None else task.label)
                    bar.write(f"{task.key} FAILED: {error}")
                    if not keep_going:
                        cancel(ray, flying)
            bar.set_postfix(
                running=running(ray, started, flying), failed=len(failures), refresh=False
            )
    return failures


def ready(waiting: list[Task], refs: dict, finished: set, submitting: bool) -> list[Task]:
    """Take from `waiting` the tasks that can be submitted now (none if not `submitting`):
    the tasks they need are submitted and the one they come after has finished."""
    if not submitting:
        waiting.clear()
        return []
    now = [
        t
        for t in waiting
        if all(k in refs for k in t.needs) and (t.after is None or t.after in finished)
    ]
    waiting[:] = [t for t in waiting if t not in now]
    return now


def capacity(ray) -> tuple[int, int]:
    """(GPUs a training task takes: 1 where the cluster has any, else 0; a node's CPUs, the
    smallest node's: what a wide task takes where there is no GPU)."""
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    alive = [n["Resources"].get("CPU", CPUS) for n in ray.nodes() if n["Alive"]]
    node = min(alive, default=CPUS)
    return gpus, int(node)


def submitter(ray, started=None) -> Callable:
    """A function submitting a `Task` with the refs of the tasks it needs: `CPUS` CPUs (a
    wide task: a node's CPUs where there is no GPU), a GPU for a training task (or a page
    that trains) where the cluster has one when the task is submitted, retried on worker
    death only. Each task tells `started` (a `Started` actor) when it starts."""
    remote = ray.remote(call)
    env = worker_env()

    def submit(task: Task, needed: list):
        gpus, node = capacity(ray)
        cpus = node if task.wide and not gpus else CPUS
        options = remote.options(
            num_cpus=cpus,
            num_gpus=gpus if task.trains or task.gpu else 0,
            max_retries=RETRIES,
            retry_exceptions=False,
            name=task.key,
        )
        args = (task.function, task.args, env, cpus, task.trains, started, task.key)
        return options.remote(*args, *needed)

    return submit


def outcome(ray, ref) -> str | None:
    """None if the task of `ref` succeeded, else its error in one line."""
    try:
        ray.get(ref)
    except Exception as error:
        cause = getattr(error, "cause", None) or error
        lines = str(cause).strip().splitlines() or [""]
        return f"{type(cause).__name__}: {lines[-1]}"
    return None


def cancel(ray, flying: dict) -> None:
    """Cancel the tasks in flight (a running page is interrupted; its page is not written)."""
    for ref in flying:
        ray.cancel(ref)


def running(ray, started, flying: dict) -> int:
    """How many of the tasks in flight have started (and not yet ended)."""
    return len(ray.get(started.started.remote()) & {t.key for t in flying.values()})
