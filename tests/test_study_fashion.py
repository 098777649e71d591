"""The Fashion-MNIST study: conditions, data provenance, and a tiny run that resumes and feeds
the chapter's comparisons."""

import dataclasses

import pytest

from kdutils import experiment
from kdutils.distill.data import CLASS_NAMES, DataNotFoundError, load_raw
from kdutils.profiles import config_key, get_profile
from kdutils.studies import fashion, get_study, grid, study_dir
from kdutils.studies import grid_stats as ss


@pytest.fixture(scope="module")
def fashion_source():
    try:
        *_, source = load_raw("fashion_mnist")
    except DataNotFoundError:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    return source


@pytest.mark.parametrize("name", ["smoke", "default", "full"])
def test_conditions_differ_from_the_base_sweep_in_the_dataset_only(name):
    assert get_study("fashion") is fashion
    profile = get_profile(name)
    assert fashion.conditions(profile) == ["mnist", "fashion_mnist"]
    base = grid.base_profile(profile)
    mnist, fmnist = (fashion.variant(profile, c) for c in fashion.conditions(profile))
    alphas = fashion.SETTINGS[name].get("alphas", base.alphas)
    assert mnist == base.replace(alphas=alphas)  # the studies' base: its teachers are shared
    assert fmnist == base.replace(alphas=alphas, dataset="fashion_mnist")
    assert config_key(fmnist.teacher_config(0)) != config_key(mnist.teacher_config(0))
    assert fmnist.teacher_config(0)["data"]["name"] == "fashion_mnist"
    if name == "default":
        assert len(base.seeds) >= 3 and len(mnist.alphas) == 11
    with pytest.raises(ValueError, match="unknown condition"):
        fashion.variant(profile, "cifar10")


def test_source_text_names_the_debian_package():
    record = {"summary": {"source": "/usr/share/datasets/fashion-mnist"}}
    assert "Debian's dataset-fashion-mnist package" in fashion.source_text(record)
    record = {"summary": {"source": "/data/mnist"}}
    assert fashion.source_text(record) == "/data/mnist"


@pytest.fixture
def tiny(tmp_path, monkeypatch, fashion_source):
    """A tiny smoke profile: 256 images, one seed, two alphas, one epoch, a small teacher,
    500 test images."""
    monkeypatch.setenv("KDUTILS_RESULTS_DIR", str(tmp_path))
    monkeypatch.setitem(fashion.SETTINGS, "smoke", {"datasets": fashion.DATASETS})  # all alphas
    real = experiment.load_dataset

    def small_test_set(**config):  # 500 test images: the plumbing, not the numbers
        data = real(**config)
        return dataclasses.replace(data, x_test=data.x_test[:500], y_test=data.y_test[:500])

    monkeypatch.setattr(experiment, "load_dataset", small_test_set)
    return get_profile("smoke").replace(
        train_size=256,
        validation_size=256,
        seeds=(0,),
        alphas=(0.0, 1.0),
        epochs=1,
        budgets=(1,),
        teacher="report_student",
    )


def test_tiny_study_runs_resumes_and_reports(tiny, tmp_path, monkeypatch, fashion_source):
    study = {}
    for c in fashion.conditions(tiny):
        directory = study_dir(tiny, "fashion", c)
        assert not fashion.is_done(tiny, c, directory)
        study[c] = fashion.run(tiny, c, directory)
        assert fashion.is_done(tiny, c, directory) and len(study[c]) == 2
        assert {r["config"]["data"]["name"] for r in study[c]} == {c}
    assert ss.missing(study, fashion.variants(tiny)) == []
    sources = {
        c: fashion.stored_dataset(fashion.variant(tiny, c), study_dir(tiny, "fashion", c))
        for c in study
    }
    assert sources["fashion_mnist"]["summary"]["source"] == fashion_source
    assert sources["fashion_mnist"]["summary"]["num_flipped"] == round(0.05 * 256)
    assert set(sources["fashion_mnist"]["sha256"]) == {
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    }
    teachers = list((tmp_path / "smoke" / "studies" / "teachers").glob("*/teachers/seed*.json"))
    assert len(teachers) == 2  # one per dataset

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(experiment, "_train", refuse)
    monkeypatch.setattr(fashion, "load_dataset", refuse)
    for c, records in study.items():
        assert fashion.run(tiny, c, study_dir(tiny, "fashion", c)) == records
    assert ss.current(study, fashion.variants(tiny)) == study
    assert ss.current(study, fashion.variants(tiny.replace(noise_rate=0.1))) == {}

    frame = fashion.table(study)
    assert len(frame) == 2 * 2 and set(frame["dataset"]) == {"mnist", "fashion_mnist"}
    d = fashion.differences(frame)
    assert (d[d["alpha"] == 1.0]["mean"] == 0).all()
    best = fashion.best_alpha(frame, "fashion_mnist")
    part = frame[frame["dataset"] == "fashion_mnist"]
    assert part.groupby("alpha")["val_accuracy"].mean()[best["alpha"]] == best["val_mean"]
    by_seed = ss.by_seed(frame, 1.0, "test_accuracy", dataset="fashion_mnist").to_numpy()
    assert by_seed.tolist() == part[part["alpha"] == 1.0]["test_accuracy"].tolist()
    assert fashion.source_text(sources["fashion_mnist"]).startswith(fashion_source)
    assert not fashion.summary(study["fashion_mnist"]).empty
    assert len(CLASS_NAMES["fashion_mnist"]) == 10
