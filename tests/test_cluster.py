"""The cluster appendix: its Ray cluster config, its commands, and the schedule it estimates."""

import copy
import json
import shlex
from pathlib import Path

import pytest
import yaml

from kdutils import costs, sweep
from kdutils.costs import Job
from kdutils.profiles import get_profile

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "cluster" / "ray-gpu.yaml"
PAGE = ROOT / "notebooks" / "cluster.md"


# --- the cluster config and the page's commands ---------------------------------------------


def test_cluster_config_passes_rays_own_schema():
    """`ray up` checks the config with this schema after filling in the provider's defaults;
    the file alone must pass the schema too."""
    jsonschema = pytest.importorskip("jsonschema")
    pytest.importorskip("ray")
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(CONFIG.read_text())
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    validate_config(prepare_config(copy.deepcopy(config)))


def test_cluster_config_has_a_cpu_head_and_gpu_workers():
    config = yaml.safe_load(CONFIG.read_text())
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    assert workers and all(t["resources"]["GPU"] >= 1 for t in workers)
    assert any(t.get("min_workers", 0) >= 1 for t in workers), "the graph sees no GPU at start"
    assert any("requirements.txt" in c for c in config["setup_commands"])
    assert any("KDUTILS_RESULTS_DIR" in c for c in config["setup_commands"])


def page_commands() -> list[list[str]]:
    """Every `python -m kdutils.sweep ...` line of the page, as arguments after the module."""
    lines = [line.strip() for line in PAGE.read_text().splitlines()]
    commands = [line for line in lines if line.startswith("python -m kdutils.sweep")]
    return [shlex.split(line)[3:] for line in commands]


def test_page_documents_commands():
    assert len(page_commands()) >= 2


@pytest.mark.parametrize("argv", page_commands(), ids=" ".join)
def test_page_commands_parse(argv):
    args = sweep.parser().parse_args(argv)
    assert args.profile == "full"
    assert args.address.startswith("ray://")


# --- the schedule ----------------------------------------------------------------------------


def test_four_equal_jobs_on_two_gpus_take_two_units():
    jobs = [Job(f"j{i}", 1.0) for i in range(4)]
    assert costs.makespan(jobs, 2) == 2.0
    assert costs.lower_bound(jobs, 2) == 2.0
    assert costs.makespan(jobs, 8) == 1.0


def test_a_chain_is_no_faster_on_more_gpus():
    jobs = [Job("a", 1.0), Job("b", 2.0, ("a",)), Job("c", 3.0, ("b",))]
    assert costs.critical_path(jobs) == 6.0
    for gpus in (1, 2, 16):
        assert costs.makespan(jobs, gpus) == 6.0
        assert costs.lower_bound(jobs, gpus) == 6.0


def test_longest_path_first_beats_list_order():
    """A short job listed first must not delay the head of a long chain."""
    jobs = [Job("short", 1.0), Job("head", 1.0), Job("tail", 3.0, ("head",))]
    times = costs.schedule(jobs, 1)
    assert times["head"][0] == 0.0
    assert costs.makespan(jobs, 1) == 5.0
    assert costs.makespan(jobs, 2) == 4.0


def test_cpu_jobs_hold_no_gpu():
    jobs = [Job("t", 2.0), Job("s", 1.0, ("t",)), Job("page", 0.5, ("s",), gpu=False)]
    jobs += [Job("other", 3.0)]
    assert costs.gpu_seconds(jobs) == 6.0
    assert costs.makespan(jobs, 1) == 6.5  # the page after the last GPU job it needs
    assert costs.makespan(jobs, 2) == 3.5


def test_schedule_respects_every_dependency_and_the_bound():
    jobs = [Job(f"t{i}", 5.0 + i) for i in range(3)]
    jobs += [Job(f"s{i}{k}", 2.0 + k, (f"t{i}",)) for i in range(3) for k in range(4)]
    jobs += [Job("p", 1.0, tuple(j.key for j in jobs if j.key.startswith("s")), gpu=False)]
    for gpus in (1, 2, 3, 5, 100):
        times = costs.schedule(jobs, gpus)
        for j in jobs:
            assert all(times[n][1] <= times[j.key][0] for n in j.needs)
        running = sorted(times[j.key] for j in jobs if j.gpu)
        for start, _ in running:
            assert sum(s <= start < e for s, e in running) <= gpus
        assert costs.makespan(jobs, gpus) >= costs.lower_bound(jobs, gpus) - 1e-9


def test_cycles_and_unknown_needs_are_refused():
    with pytest.raises(ValueError, match="cycle"):
        costs.critical_path([Job("a", 1.0, ("b",)), Job("b", 1.0, ("a",))])
    with pytest.raises(ValueError, match="unknown"):
        costs.critical_path([Job("a", 1.0, ("z",))])
    with pytest.raises(ValueError, match="unique"):
        costs.critical_path([Job("a", 1.0), Job("a", 2.0)])
    with pytest.raises(ValueError):
        costs.schedule([Job("a", 1.0)], 0)


# --- the jobs of a profile -------------------------------------------------------------------


def test_image_epoch_seconds_reads_runs_and_teachers():
    run = {"config": {"epochs": 4, "data": {"name": "mnist", "train_size": 100}}}
    teacher = {"config": {"data": {"name": "mnist", "train_size": None, "validation_size": 5000}}}
    rate = costs.image_epoch_seconds([run | {"train_seconds": 8.0}])
    assert rate == pytest.approx(0.02)
    assert costs.image_epoch_seconds([teacher | {"seconds_per_epoch": 11.0}]) == 2e-4


def test_sweep_jobs_follow_the_graph():
    """One teacher shared by every seed (the full profile's strong teacher), one students job
    per seed after it, one page per alpha after every seed's students."""
    full = get_profile("full")
    rates = {full.teacher: 1e-3, full.student: 1e-4}
    jobs = costs.sweep_jobs(full, rates)
    kinds = [j.kind for j in jobs]
    assert kinds.count("teacher") == 1
    assert kinds.count("students") == len(full.seeds)
    assert kinds.count("page") == len(full.alphas)
    teacher = jobs[0]
    assert teacher.seconds == pytest.approx(1e-3 * 55_000 * full.teacher_epochs)
    students = [j for j in jobs if j.kind == "students"]
    per_seed = 1e-4 * 10_000 * full.epochs * len(full.alphas)
    assert all(j.needs == (teacher.key,) and j.seconds == pytest.approx(per_seed) for j in students)
    assert costs.critical_path(jobs) == pytest.approx(teacher.seconds + per_seed)


def test_study_jobs_chain_conditions_and_share_teachers():
    base = get_profile("smoke").replace(data_seed=None, teacher_train_size="student")
    rates = {base.teacher: 1.0, base.student: 1.0}
    conditions = [
        ("t_2", base.replace(temperature=2.0), "CPU"),
        ("t_4", base.replace(temperature=4.0), "CPU"),
        ("measured", 7.0, "GPU"),
    ]
    jobs = costs.study_jobs("temperature", conditions, rates)
    teachers = [j for j in jobs if j.kind == "teacher"]
    assert len(teachers) == len(base.seeds)  # the temperature does not change the teacher
    pages = {j.key: j for j in jobs if j.kind == "page"}
    assert pages["page temperature/t_4"].needs[0] == "page temperature/t_2"
    assert pages["page temperature/measured"].needs == ("page temperature/t_4",)
    assert pages["page temperature/measured"].seconds == 7.0
    # unchained (as the graph runs a study whose teachers it trains first): teachers only
    free = {j.key: j for j in costs.study_jobs("temperature", conditions, rates, chained=False)}
    assert free["page temperature/t_4"].needs == tuple(t.key for t in teachers)
    assert free["page temperature/measured"].needs == ()


def test_unique_keeps_the_first_of_each_key_in_order():
    jobs = [Job("a", 1.0), Job("b", 2.0), Job("a", 3.0)]
    assert costs.unique(jobs) == [Job("a", 1.0), Job("b", 2.0)]


def test_a_study_without_training_holds_no_gpu():
    jobs = costs.study_jobs("theory", [("a", 5.0, "CPU"), ("b", 7.0, "CPU")], {}, gpu=False)
    assert costs.gpu_seconds(jobs) == 0.0
    assert costs.critical_path(jobs) == 12.0
    assert costs.makespan([*jobs, Job("train", 20.0)], 1) == 20.0
