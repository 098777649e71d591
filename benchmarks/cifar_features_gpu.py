"""Time the full profile of the cifar_features study on a GPU: a few epochs of each kind of run.

    KERAS_BACKEND=jax python benchmarks/cifar_features_gpu.py 2

One seed, `epochs` epochs of the teacher and of four students (scratch, response-based,
MMD, FitNets) at the full profile's scale. Writes gpu_full.json to $OUT (else /tmp) with the
seconds of each epoch (the first includes compilation). results/benchmarks/
cifar_features_gpu.json holds one such run on an H100, from which the chapter estimates the
full profile's GPU time.
"""

import json
import os
import pathlib
import sys
import tempfile
import time

import keras

from kdutils.studies import cifar_features as cf

RUNS = ("scratch", "kd_t4_alpha_0p6", "mmd_uniform_alpha_0p5", "fitnets_alpha_0p5")


def main(epochs: int) -> dict:
    full = cf.SETTINGS["full"] | {"epochs": epochs, "teacher_epochs": epochs, "seeds": (0,)}
    cf.SETTINGS["full"] = full
    s = cf.settings("full")
    marks: list[float] = []  # augment() runs once at the start of every epoch
    augment = cf.augment

    def timed_augment(x, rng, pad=cf.AUGMENT_PAD):
        marks.append(time.perf_counter())
        return augment(x, rng, pad)

    cf.augment = timed_augment

    def timing(record: dict) -> dict:
        ends = [*marks[1:], marks[0] + record["train_seconds"]]
        seconds = [round(b - a, 2) for a, b in zip(marks, ends, strict=True)]
        return {"epoch_seconds": seconds, "test_accuracy": record["test_accuracy"]}

    out = {"backend": keras.backend.backend(), "epochs": epochs}
    start = time.perf_counter()
    data = cf.load_data(s, 0)
    out["load_seconds"] = round(time.perf_counter() - start, 2)
    directory = pathlib.Path(tempfile.mkdtemp())
    marks.clear()
    record = cf.get_teacher(s, 0, directory / "teacher", data, need_model=False).record
    out["teacher"] = timing(record)
    specs = {x["run"]: x for c in ("response", "feature") for x in cf.run_specs(s, c)}
    for name in RUNS:
        marks.clear()
        record = cf.train_student(s, specs[name], 0, directory / "runs", data)
        out[name] = timing(record)
        print(name, out[name], flush=True)
    return out


if __name__ == "__main__":
    result = main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    path = pathlib.Path(os.environ.get("OUT", "/tmp")) / "gpu_full.json"
    path.write_text(json.dumps(result, indent=1))
