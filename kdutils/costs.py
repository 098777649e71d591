"""What the full grid costs on N GPUs: its tasks, their measured costs, a schedule.

The sweep's Ray graph (`kdutils.graph`) has three kinds of task: a teacher, the students that
need it, and a page that needs the students (or, for a study condition, its teachers and the
study's previous condition). Here each task is a `Job` with a duration in seconds taken from
committed, measured records, and `schedule` plays the graph on `gpus` GPUs by greedy list
scheduling: whenever a GPU is free it starts, among the jobs whose dependencies are done, the
one with the longest path to the end of the graph. No schedule beats `lower_bound`: the
total GPU time over N, or the longest chain of dependent jobs, whichever is larger.

This module never trains and never imports a study: the caller enumerates the grid's
profiles and conditions and passes them in.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterable, Sequence

from kdutils.distill.data import SPLIT_SIZES
from kdutils.profiles import Profile, config_key


@dataclasses.dataclass(frozen=True)
class Job:
    """One task of the graph: `seconds` long, after every job in `needs`. A job with `gpu`
    False (a page that only reads records) runs at once on a CPU and holds no GPU."""

    key: str
    seconds: float
    needs: tuple[str, ...] = ()
    gpu: bool = True
    kind: str = "students"
    source: str = ""


def train_images(data: dict) -> int:
    """The training images of a record's or profile's data config (`train_size` None: the
    whole split less the validation images)."""
    if data.get("train_size") is not None:
        return int(data["train_size"])
    return SPLIT_SIZES[data["name"]][0] - int(data.get("validation_size", 0))


def image_epoch_seconds(records: Iterable[dict]) -> float:
    """Mean seconds per training image and epoch over run or teacher records: a run's
    `train_seconds` (its share of a fused group) over its epochs, or a teacher's
    `seconds_per_epoch`, divided by its training images."""
    rates = []
    for r in records:
        config = r["config"]
        per_epoch = r.get("seconds_per_epoch") or r["train_seconds"] / config["epochs"]
        rates.append(per_epoch / train_images(config["data"]))
    if not rates:
        raise ValueError("no records to measure a cost from")
    return sum(rates) / len(rates)


def teacher_images(profile: Profile) -> int:
    """The images one teacher of `profile` trains on."""
    data = profile.teacher_config(profile.seeds[0])["data"]
    return train_images(data)


def teacher_seconds(profile: Profile, rates: dict[str, float]) -> float:
    """One teacher of `profile`: its images x its epochs x its model's seconds per image-epoch."""
    return rates[profile.teacher] * teacher_images(profile) * profile.teacher_epochs


def student_seconds(profile: Profile, rates: dict[str, float], seeds: int = 1) -> float:
    """Every alpha's student of `seeds` seeds of `profile`, each for its epochs."""
    images = train_images(profile.data_config(profile.seeds[0]))
    return rates[profile.student] * images * profile.epochs * len(profile.alphas) * seeds


def teacher_jobs(profile: Profile, rates: dict[str, float], source: str) -> dict[int, Job]:
    """{seed: the job training the teacher its students learn from}, keyed by the teacher's
    config so that profiles sharing a teacher share the job."""
    jobs = {}
    for seed in profile.seeds:
        key = f"teacher {config_key(profile.teacher_config(seed))}"
        jobs[seed] = Job(key, teacher_seconds(profile, rates), kind="teacher", source=source)
    return jobs


def sweep_jobs(profile: Profile, rates: dict[str, float], source: str = "") -> list[Job]:
    """The alpha sweep: its teachers, each seed's fused students after its teacher, and one
    page per alpha (reads records only: no GPU, no time) after every seed's students."""
    teachers = teacher_jobs(profile, rates, source)
    students = [
        Job(
            f"students seed {s}", student_seconds(profile, rates), (teachers[s].key,), source=source
        )
        for s in profile.seeds
    ]
    needs = tuple(j.key for j in students)
    pages = [Job(f"page alpha={a:g}", 0.0, needs, gpu=False, kind="page") for a in profile.alphas]
    return unique([*teachers.values(), *students, *pages])


def study_jobs(
    study: str,
    conditions: Sequence[tuple],
    rates: dict[str, float],
    gpu: bool = True,
    chained: bool = True,
) -> list[Job]:
    """A study's conditions, one page each; with `chained`, each after the study's previous
    one (as the graph runs a `kdutils.sweep.chained` study).

    `conditions` holds `(condition, variant, source)` for an alpha-grid condition (a Profile:
    its teachers are jobs of their own, its students train in its page) or
    `(condition, seconds, source)` for a condition measured as a whole, whose page holds a
    GPU unless `gpu` is False (a study that trains no network)."""
    jobs, previous = [], ()
    for condition, work, source in conditions:
        needs = previous
        if isinstance(work, Profile):
            teachers = teacher_jobs(work, rates, source)
            jobs += teachers.values()
            needs += tuple(dict.fromkeys(t.key for t in teachers.values()))
            work = student_seconds(work, rates, seeds=len(work.seeds))
        key = f"page {study}/{condition}"
        jobs.append(Job(key, float(work), needs, gpu=gpu, kind="page", source=source))
        previous = (key,) if chained else ()
    return unique(jobs)


def unique(jobs: Iterable[Job]) -> list[Job]:
    """`jobs` with each key once (the first), e.g. a teacher that several conditions share."""
    first: dict[str, Job] = {}
    for job in jobs:
        first.setdefault(job.key, job)
    return list(first.values())


def bottom_levels(jobs: Sequence[Job]) -> dict[str, float]:
    """{key: the longest path of durations from the job's start to the end of the graph}."""
    order = topological(jobs)
    after: dict[str, list[str]] = {j.key: [] for j in jobs}
    for j in jobs:
        for need in j.needs:
            after[need].append(j.key)
    seconds = {j.key: j.seconds for j in jobs}
    level: dict[str, float] = {}
    for key in reversed(order):
        level[key] = seconds[key] + max((level[k] for k in after[key]), default=0.0)
    return level


def topological(jobs: Sequence[Job]) -> list[str]:
    """The jobs' keys, each after every job it needs; raises on a key used twice, a cycle or a
    missing need."""
    known = {j.key for j in jobs}
    if len(known) != len(jobs):
        raise ValueError("job keys must be unique (see `unique`)")
    missing = {n for j in jobs for n in j.needs} - known
    if missing:
        raise ValueError(f"jobs need unknown jobs: {sorted(missing)}")
    order, done, todo = [], set(), list(jobs)
    while todo:
        ready = [j for j in todo if set(j.needs) <= done]
        if not ready:
            raise ValueError(f"the jobs have a cycle among {[j.key for j in todo]}")
        order += [j.key for j in ready]
        done |= {j.key for j in ready}
        todo = [j for j in todo if j.key not in done]
    return order


def critical_path(jobs: Sequence[Job]) -> float:
    """The longest chain of dependent jobs: no number of GPUs finishes sooner."""
    return max(bottom_levels(jobs).values(), default=0.0)


def gpu_seconds(jobs: Iterable[Job]) -> float:
    """The GPU time of all jobs together."""
    return sum(j.seconds for j in jobs if j.gpu)


def lower_bound(jobs: Sequence[Job], gpus: int) -> float:
    """max(total GPU time / gpus, critical path): no schedule on `gpus` GPUs is shorter."""
    return max(gpu_seconds(jobs) / gpus, critical_path(jobs))


def schedule(jobs: Sequence[Job], gpus: int) -> dict[str, tuple[float, float]]:
    """{key: (start, end)} by greedy list scheduling on `gpus` GPUs: at each moment a GPU is
    free, start the ready job with the longest path to the end (ties: the first listed).
    Jobs without `gpu` start as soon as they are ready."""
    if gpus < 1:
        raise ValueError(f"gpus must be >= 1, got {gpus}")
    level, order = bottom_levels(jobs), {j.key: i for i, j in enumerate(jobs)}
    by_key = {j.key: j for j in jobs}
    waiting = {j.key: len(set(j.needs)) for j in jobs}
    after: dict[str, list[str]] = {j.key: [] for j in jobs}
    for j in jobs:
        for need in set(j.needs):
            after[need].append(j.key)
    ready = [(-level[k], order[k], k) for k, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []  # (end, key)
    times, now, free = {}, 0.0, gpus
    while ready or running:
        while ready and (free or any(not by_key[e[2]].gpu for e in ready)):
            key = _pop_startable(ready, by_key, free)
            times[key] = (now, now + by_key[key].seconds)
            heapq.heappush(running, (times[key][1], key))
            free -= by_key[key].gpu
        now, key = heapq.heappop(running)
        ended = [key]
        while running and running[0][0] == now:  # everything that ends now, before choosing
            ended.append(heapq.heappop(running)[1])
        for key in ended:
            free += by_key[key].gpu
            for nxt in after[key]:
                waiting[nxt] -= 1
                if waiting[nxt] == 0:
                    heapq.heappush(ready, (-level[nxt], order[nxt], nxt))
    return times


def _pop_startable(ready: list, by_key: dict[str, Job], free: int) -> str:
    """Pop the first ready job that can start now: any job while a GPU is free, else the
    first that needs no GPU."""
    if free:
        return heapq.heappop(ready)[2]
    entry = min(e for e in ready if not by_key[e[2]].gpu)
    ready.remove(entry)
    heapq.heapify(ready)
    return entry[2]


def makespan(jobs: Sequence[Job], gpus: int) -> float:
    """The wall time of `schedule(jobs, gpus)`: when its last job ends."""
    return max((end for _, end in schedule(jobs, gpus).values()), default=0.0)
