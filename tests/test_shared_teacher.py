"""The main study's strong shared teacher: a teacher that learns from more images than its
students (`Profile.teacher_train_size`), shared by every seed (`Profile.data_seed`)."""

from __future__ import annotations

import numpy as np
import pytest

from kdutils.distill.data import load_dataset
from kdutils.experiment import run_batched
from kdutils.profiles import PER_SEED_TEACHERS, get_profile
from kdutils.results import load_runs
from kdutils.teacher_cache import get_teacher, load_teacher, teacher_paths

SHARED = (
    get_profile("smoke")
    .override(seeds=[0, 1], train_size=120, epochs=1, alphas=[0.0, 1.0], teacher="tiny_teacher")
    .replace(teacher_train_size=300, data_seed=3, validation_size=200, test_size=200)
)


def test_a_nested_split_is_the_head_of_the_larger_one_flipped_labels_included():
    common = {"name": "mnist", "validation_size": 500, "noise_rate": 0.05, "seed": 4}
    whole = load_dataset(train_size=None, **common)
    part = load_dataset(train_size=1_000, nested=True, **common)
    for field in ("x_train", "y_train", "y_train_clean", "noise_mask"):
        np.testing.assert_array_equal(getattr(part, field), getattr(whole, field)[:1_000])
    np.testing.assert_array_equal(part.x_val, whole.x_val)
    assert part.noise_mask.sum() > 0  # some of the teacher's flips fall among the students'
    # Without `nested`, the 1,000 get flips of their own: exactly 5%, not the head's.
    plain = load_dataset(train_size=1_000, **common)
    np.testing.assert_array_equal(plain.x_train, part.x_train)
    assert plain.noise_mask.sum() == 50 and not np.array_equal(plain.noise_mask, part.noise_mask)


def test_every_seed_shares_the_data_seed_split_and_one_teacher():
    assert SHARED.teacher_seeds() == [3]
    assert SHARED.data_config(0) == SHARED.data_config(1)
    assert SHARED.data_config(0)["seed"] == 3 and SHARED.data_config(0)["nested"] is True
    assert SHARED.teacher_config(0) == SHARED.teacher_config(1)
    assert SHARED.teacher_config(0)["data"]["train_size"] == 300
    assert SHARED.run_config(0.5, 0)["seed"] == 0 and SHARED.run_config(0.5, 1)["seed"] == 1
    # The profiles of the studies keep their per-seed teachers and data: configs unchanged.
    plain = get_profile("smoke").replace(**PER_SEED_TEACHERS)
    assert "nested" not in plain.data_config(1) and plain.teacher_config(1)["seed"] == 1


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"teacher_train_size": 50}, "teacher_train_size"),
        ({"teacher_train_size": "all"}, "teacher_train_size"),
        ({"train_size": None, "teacher_train_size": 60_000}, "teacher_train_size"),
        ({"data_seed": -1}, "data_seed"),
        ({"data_seed": 1.5}, "data_seed"),
    ],
)
def test_bad_teacher_settings_are_refused_by_name(changes, message):
    with pytest.raises(ValueError, match=message):
        SHARED.replace(**changes)


def test_one_teacher_learns_from_its_images_and_students_see_their_own_logits(tmp_path):
    teacher = get_teacher(SHARED, 0, tmp_path)
    assert teacher.logits["train"].shape == (120, 10)  # the students' images only
    record = teacher.record
    assert record["config"]["data"]["train_size"] == 300 and record["config"]["seed"] == 3
    assert teacher_paths(tmp_path, 3)[0].exists() and not teacher_paths(tmp_path, 0)[0].exists()
    again = load_teacher(SHARED, 1, tmp_path)  # seed 1 finds the same teacher
    np.testing.assert_array_equal(again.logits["train"], teacher.logits["train"])
    # The students' logits are the head of the teacher's own, on the same images: students
    # of all 300 images find the same teacher, with all its training logits.
    whole = load_teacher(SHARED.replace(train_size=300), 0, tmp_path)
    assert whole.logits["train"].shape == (300, 10)
    np.testing.assert_array_equal(whole.logits["train"][:120], teacher.logits["train"])


def test_batched_students_of_every_seed_distil_the_one_teacher(tmp_path):
    assert run_batched(SHARED, SHARED.alphas, tmp_path, log=lambda *_: None) == 4
    records = load_runs(tmp_path)
    assert len(records) == 4
    assert len({r["config"]["teacher"] for r in records}) == 1
    assert len(list((tmp_path / "teachers").glob("*.json"))) == 1
