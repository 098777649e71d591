"""The Ray engine on a cluster it joins by address, with a GPU: training tasks and pages that
train take the GPU one at a time, other pages take none, and `python -m kdutils.sweep
--address` completes there.

The "cluster" is a Ray started by another process that declares one GPU (the machine needs
none: Ray only schedules it), and drivers join it by its address, each in its own process.
Ray 2.60 protects a cluster with a token (`~/.ray/auth_token`, created by the first local
Ray): a driver joining by address sends it only with RAY_AUTH_MODE=token, so every process
here runs with RAY_AUTH_MODE=token, as the cluster recipe says (notebooks/cluster.md). The
head is started with address="local", as the sweep starts its own Ray, so that no other
test's sweep can join it (`ray start` would offer it to every `ray.init()` of the machine).
"""

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kdutils.results import ROOT, read_json

pytest.importorskip("ray")

ENV = os.environ | {"PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "token"}

HEAD = """
import sys, ray
ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False)
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()  # until the test closes it
"""

DRIVER = """
import json, os, sys, time
from pathlib import Path
import ray
from kdutils import graph

def stamp(path, name):
    start = time.time()
    time.sleep(1.0)
    seen = {"gpus": [str(g) for g in ray.get_gpu_ids()], "start": start}
    seen["visible"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    Path(path, name + ".json").write_text(json.dumps(seen | {"end": time.time()}))

path = sys.argv[2]
graph.start_ray(sys.argv[1])
assert ray.cluster_resources().get("GPU") == 1
tasks = [
    graph.Task("teacher", stamp, (path, "teacher"), trains=True, wide=True),
    graph.Task("students", stamp, (path, "students"), trains=True),
    graph.Task("page", stamp, (path, "page")),
    graph.Task("page that trains", stamp, (path, "trainingpage"), gpu=True),
    graph.Task("page 2", stamp, (path, "page2"), ("teacher",)),
]
assert graph.run_tasks(tasks) == []
"""


@pytest.fixture(scope="module")
def head():
    """The address of a running one-node Ray with 2 CPUs and 1 (declared) GPU."""
    process = subprocess.Popen(
        [sys.executable, "-c", HEAD], env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        yield process.stdout.readline().decode().strip()
    finally:
        process.stdin.close()  # the head's process ends and takes its Ray with it
        process.wait(120)


def joined(command: list[str], timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=timeout)


def test_joined_cluster_gives_training_tasks_the_gpu_one_at_a_time(head, tmp_path):
    done = joined([sys.executable, "-c", DRIVER, head, str(tmp_path)], timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = {p.stem: read_json(p) for p in Path(tmp_path).glob("*.json")}
    on_gpu = [seen[n] for n in ("teacher", "students", "trainingpage")]
    assert [s["gpus"] for s in on_gpu] == [["0"]] * 3
    assert seen["teacher"]["visible"] == "0"
    assert seen["page"]["gpus"] == []
    spans = sorted((s["start"], s["end"]) for s in on_gpu)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # one GPU: one at a time
    assert seen["page2"]["start"] >= seen["teacher"]["end"]


@pytest.mark.slow
def test_the_sweep_runs_on_a_cluster_given_its_address(head, tmp_path):
    args = ["--profile", "smoke", "--seeds", "0", "--train-size", "200", "--epochs", "1"]
    paths = ["--results-dir", str(tmp_path / "results"), "--pages-dir", str(tmp_path / "pages")]
    command = [sys.executable, "-m", "kdutils.sweep", *args, "--alphas", "0.0", *paths]
    done = joined([*command, "--address", head], timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    record = read_json(tmp_path / "results" / "smoke" / "runs" / "alpha_0p0_seed0.json")
    assert record["config"]["alpha"] == 0.0
    assert (tmp_path / "pages" / "smoke" / "alpha_0p0.ipynb").exists()
