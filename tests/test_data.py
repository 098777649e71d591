"""Tests for kdutils.distill.data: loading, splits, label noise, corrupt files and downloads.

The data comes from `$KDUTILS_DATA_DIR` (CI: ../shared/data); Fashion-MNIST from Debian's
`/usr/share/datasets/fashion-mnist`. Tests whose data is absent are skipped.
"""

import gzip
import hashlib
import io
import json
import os
import pathlib
import pickle
import re
import shutil
import tarfile
import warnings

import numpy as np
import pytest

from kdutils.distill import data

DATA_DIR = os.environ.get("KDUTILS_DATA_DIR")
MNIST_DIR = pathlib.Path(DATA_DIR or "/nonexistent") / "mnist"
CIFAR_JPEG = pathlib.Path(DATA_DIR or "/nonexistent") / "cifar10-jpeg.tar.gz"
FASHION_DIR = data.DEBIAN_DATASETS_DIR / "fashion-mnist"

needs_mnist = pytest.mark.skipif(
    not MNIST_DIR.is_dir(), reason=f"no MNIST copy at KDUTILS_DATA_DIR={DATA_DIR!r}"
)
needs_cifar = pytest.mark.skipif(
    not CIFAR_JPEG.is_file(), reason=f"no cifar10-jpeg.tar.gz at KDUTILS_DATA_DIR={DATA_DIR!r}"
)
needs_fashion = pytest.mark.skipif(
    not FASHION_DIR.is_dir(),
    reason=f"{FASHION_DIR} missing (apt-get install dataset-fashion-mnist)",
)

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets an empty user cache and no downloads unless it asks for them."""
    monkeypatch.setenv("KDUTILS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KDUTILS_NO_DOWNLOAD", "1")
    return tmp_path / "cache"


def copy_mnist(dest: pathlib.Path) -> pathlib.Path:
    """A writable copy of the MNIST folder (the shared copy is read-only)."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in MNIST_DIR.glob("*-ubyte.gz"):
        shutil.copyfile(path, dest / path.name)
    return dest


def image_keys(x: np.ndarray) -> set[bytes]:
    return {image.tobytes() for image in x}


# --- MNIST ---------------------------------------------------------------------------------


@needs_mnist
def test_mnist_raw_matches_official_release():
    x_train, y_train, x_test, y_test, source = data.load_raw("mnist")
    assert x_train.shape == (60000, 28, 28)
    assert x_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28)
    assert x_test.dtype == np.uint8
    assert np.bincount(y_train).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(y_test).tolist() == MNIST_TEST_COUNTS
    assert pathlib.Path(source) == MNIST_DIR.resolve()
    with pytest.raises(ValueError, match="read-only"):  # the in-process cache
        x_train[0, 0, 0] = 1


@needs_mnist
def test_mnist_dataset_splits():
    ds = data.load_dataset("mnist", train_size=20000, validation_size=3000, seed=3)
    x_all, y_all, x_test, y_test, _ = data.load_raw("mnist")

    assert ds.x_train.shape == (20000, 28, 28, 1)
    assert ds.x_val.shape == (3000, 28, 28, 1)
    assert ds.x_test.shape == (10000, 28, 28, 1)
    for x in (ds.x_train, ds.x_val, ds.x_test):
        assert x.dtype == np.float32
        assert x.min() == 0.0
        assert x.max() == 1.0
    for y in (ds.y_train, ds.y_val, ds.y_test, ds.y_train_clean):
        assert y.dtype == np.int32
    assert ds.num_classes == 10
    assert ds.class_names[3] == "3"

    # Validation and training are disjoint draws from the official training set ...
    order = np.random.default_rng(3).permutation(60000)
    np.testing.assert_array_equal(ds.x_val[..., 0], x_all[order[:3000]] / np.float32(255))
    np.testing.assert_array_equal(ds.y_train, y_all[order[3000:23000]])
    train_keys, val_keys = image_keys(ds.x_train), image_keys(ds.x_val)
    assert (train_keys | val_keys) <= image_keys(x_all.astype(np.float32)[..., None] / 255)
    assert not train_keys & val_keys  # (MNIST's training images are all distinct)
    # ... and the test set is the official one, whole and in order.
    np.testing.assert_array_equal(ds.x_test[..., 0] * 255, x_test)
    np.testing.assert_array_equal(ds.y_test, y_test)

    summary = json.loads(json.dumps(ds.summary()))
    assert summary["train_size"] == 20000
    assert summary["validation_size"] == 3000
    assert summary["test_size"] == 10000
    assert summary["num_flipped"] == 0


@needs_mnist
def test_default_split_uses_all_training_examples():
    ds = data.load_dataset("mnist")
    assert len(ds.y_train) == 55000
    assert len(ds.y_val) == 5000


@needs_mnist
def test_uncompressed_idx_files_are_accepted(tmp_path):
    for path in MNIST_DIR.glob("*-ubyte.gz"):
        (tmp_path / "mnist" / path.name[:-3]).parent.mkdir(exist_ok=True)
        (tmp_path / "mnist" / path.name[:-3]).write_bytes(gzip.decompress(path.read_bytes()))
    _, y_train, _, y_test, source = data.load_raw("mnist", data_dir=tmp_path)
    assert source == str((tmp_path / "mnist").resolve())
    np.testing.assert_array_equal(y_train, data.load_raw("mnist")[1])
    assert np.bincount(y_test).tolist() == MNIST_TEST_COUNTS


# --- Label noise ---------------------------------------------------------------------------


def test_flip_labels_exact_count_and_always_a_different_class():
    labels = np.arange(1000, dtype=np.int32) % 10
    before = labels.copy()
    noisy, mask = data.flip_labels(labels, 0.25, 10, np.random.default_rng(0))
    np.testing.assert_array_equal(labels, before)  # input untouched
    assert mask.dtype == bool
    assert mask.sum() == 250
    np.testing.assert_array_equal(noisy != labels, mask)
    assert noisy.min() >= 0
    assert noisy.max() <= 9
    # New classes cover all the other classes, roughly uniformly.
    many, many_mask = data.flip_labels(np.zeros(20000, int), 0.5, 10, np.random.default_rng(1))
    counts = np.bincount(many[many_mask], minlength=10)
    assert counts[0] == 0
    assert counts[1:].min() > 0.8 * 10000 / 9


def test_flip_labels_rounding_and_edge_cases():
    rng = np.random.default_rng(0)
    assert data.flip_labels(np.zeros(10, int), 0.15, 10, rng)[1].sum() == round(1.5)
    assert data.flip_labels(np.zeros(10, int), 0.0, 10, rng)[1].sum() == 0
    two, mask = data.flip_labels(np.zeros(100, int), 0.3, 2, rng)
    assert (two[mask] == 1).all()
    assert (two[~mask] == 0).all()
    with pytest.raises(ValueError, match="rate"):
        data.flip_labels(np.zeros(10, int), 1.0, 10, rng)
    with pytest.raises(ValueError, match="num_classes"):
        data.flip_labels(np.full(10, 10), 0.1, 10, rng)


@needs_mnist
def test_noise_only_touches_the_training_labels():
    clean = data.load_dataset("mnist", train_size=10000, seed=5)
    noisy = data.load_dataset("mnist", train_size=10000, seed=5, noise_rate=0.3)

    assert noisy.noise_mask.sum() == 3000
    assert (noisy.y_train[noisy.noise_mask] != noisy.y_train_clean[noisy.noise_mask]).all()
    np.testing.assert_array_equal(noisy.y_train != noisy.y_train_clean, noisy.noise_mask)
    # Same seed, same split: the noise is the only difference.
    np.testing.assert_array_equal(noisy.y_train_clean, clean.y_train)
    np.testing.assert_array_equal(noisy.x_train, clean.x_train)
    np.testing.assert_array_equal(noisy.y_val, clean.y_val)
    np.testing.assert_array_equal(noisy.y_test, clean.y_test)
    assert noisy.summary()["noise_rate"] == 0.3
    assert noisy.summary()["num_flipped"] == 3000
    assert not clean.noise_mask.any()
    np.testing.assert_array_equal(clean.y_train, clean.y_train_clean)


@needs_mnist
def test_seeds_make_datasets_reproducible():
    kwargs = {"train_size": 5000, "validation_size": 1000, "noise_rate": 0.2}
    a = data.load_dataset("mnist", seed=1, **kwargs)
    b = data.load_dataset("mnist", seed=1, **kwargs)
    c = data.load_dataset("mnist", seed=2, **kwargs)
    for field in ("x_train", "y_train", "x_val", "y_val", "noise_mask"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.y_val, c.y_val)
    assert not np.array_equal(a.noise_mask, c.noise_mask)


# --- Errors --------------------------------------------------------------------------------


def truncate(path: pathlib.Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def flip_a_pixel(path: pathlib.Path) -> None:
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[-1] ^= 0xFF
    path.write_bytes(gzip.compress(bytes(raw), compresslevel=1))


def bad_magic(path: pathlib.Path) -> None:
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[3] = 0x07
    path.write_bytes(gzip.compress(bytes(raw), compresslevel=1))


def short_by_one_image(path: pathlib.Path) -> None:
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[: -28 * 28], compresslevel=1))


@needs_mnist
@pytest.mark.parametrize(
    ("damage", "file", "message"),
    [
        (truncate, "train-labels-idx1-ubyte.gz", "cannot be read"),
        (flip_a_pixel, "t10k-images-idx3-ubyte.gz", "SHA-256"),
        (bad_magic, "t10k-labels-idx1-ubyte.gz", "magic"),
        (short_by_one_image, "t10k-images-idx3-ubyte.gz", "bytes, expected"),
    ],
)
def test_corrupt_file_is_rejected_not_skipped(tmp_path, isolated_cache, damage, file, message):
    damage(copy_mnist(tmp_path / "data" / "mnist") / file)
    # A good copy in the cache must not be used instead of the bad one.
    isolated_cache.mkdir()
    (isolated_cache / "mnist").symlink_to(MNIST_DIR.resolve())
    with pytest.raises(data.DataError, match=message) as info:
        data.load_raw("mnist", data_dir=tmp_path / "data")
    assert file in str(info.value)
    assert "KDUTILS_DATA_DIR" in str(info.value)
    assert not isinstance(info.value, data.DataNotFoundError)


@needs_mnist
def test_partial_copy_is_an_error(tmp_path):
    folder = copy_mnist(tmp_path / "mnist")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte"):
        data.find_dataset("mnist", data_dir=tmp_path)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_nothing_anywhere_lists_the_places_looked(tmp_path, monkeypatch, isolated_cache, name):
    monkeypatch.setattr(data, "DEBIAN_DATASETS_DIR", tmp_path / "debian")
    with pytest.raises(data.DataNotFoundError) as info:
        data.load_dataset(name, data_dir=tmp_path / "empty")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for place in (tmp_path / "empty", isolated_cache, tmp_path / "debian", data.URLS[name]):
        assert str(place) in message
    assert "KDUTILS_DATA_DIR" in message
    assert "KDUTILS_NO_DOWNLOAD" in message
    assert ("apt-get install dataset-fashion-mnist" in message) == (name == "fashion_mnist")


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"name": "imagenet"}, "imagenet"),
        ({"validation_size": -1}, "validation_size=-1"),
        ({"train_size": -5}, "train_size=-5"),
        ({"noise_rate": 1.0}, "noise_rate=1.0"),
        ({"noise_rate": -0.1}, "noise_rate=-0.1"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, argument):
    kwargs = {"name": "mnist", **kwargs}
    with pytest.raises(ValueError, match=argument) as info:
        data.load_dataset(kwargs.pop("name"), **kwargs)
    if argument == "imagenet":
        assert all(name in str(info.value) for name in data.DATASETS)


@needs_mnist
def test_test_size_takes_the_same_test_subset_for_every_seed():
    whole = data.load_dataset("mnist", train_size=100, validation_size=100, seed=0)
    a = data.load_dataset("mnist", train_size=100, validation_size=100, seed=0, test_size=500)
    b = data.load_dataset("mnist", train_size=100, validation_size=100, seed=3, test_size=500)
    assert a.x_test.shape == (500, 28, 28, 1) and a.summary()["test_size"] == 500
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    # A subset of the official test set, in its original order, covering every class.
    rows = {whole.x_test[i].tobytes(): i for i in range(len(whole.y_test))}
    index = [rows[x.tobytes()] for x in a.x_test]
    assert index == sorted(index) and len(set(index)) == 500
    np.testing.assert_array_equal(whole.y_test[index], a.y_test)
    assert set(a.y_test) == set(range(10))
    for bad in (0, 10_001):
        with pytest.raises(ValueError, match="test_size"):
            data.load_dataset("mnist", train_size=100, validation_size=100, test_size=bad)


def test_profiles_without_test_size_keep_their_data_config():
    """`test_size` enters a config only when set, so stored default results stay current."""
    from kdutils.profiles import get_profile

    assert "test_size" not in get_profile("default").data_config(0)
    assert get_profile("smoke").data_config(0)["test_size"] == 2_000


@needs_mnist
def test_sizes_larger_than_the_training_set_raise_value_error():
    with pytest.raises(ValueError, match="train_size=56000"):
        data.load_dataset("mnist", train_size=56000)
    with pytest.raises(ValueError, match="validation_size=60001"):
        data.load_dataset("mnist", validation_size=60001)


# --- Downloads (served from file:// URLs) ------------------------------------------------------


@pytest.fixture
def offline_server(tmp_path, monkeypatch):
    """A folder served as the download site, with nothing found anywhere else."""
    server = tmp_path / "server"
    server.mkdir()
    monkeypatch.delenv("KDUTILS_NO_DOWNLOAD")
    monkeypatch.delenv("KDUTILS_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "DEBIAN_DATASETS_DIR", tmp_path / "debian")
    for name in data.DATASETS:
        monkeypatch.setitem(data.URLS, name, server.as_uri() + "/")
    return server


@needs_mnist
def test_download_into_the_cache(offline_server, isolated_cache):
    copy_mnist(offline_server)
    x_train, y_train, _, y_test, source = data.load_raw("mnist")
    assert pathlib.Path(source) == (isolated_cache / "mnist").resolve()
    assert sorted(p.name for p in (isolated_cache / "mnist").iterdir()) == sorted(
        f"{base}.gz" for base in data.IDX_FILES
    )
    assert np.bincount(y_train).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(y_test).tolist() == MNIST_TEST_COUNTS
    assert x_train.shape == (60000, 28, 28)


@needs_mnist
def test_download_with_a_bad_checksum_leaves_nothing_behind(offline_server, isolated_cache):
    flip_a_pixel(copy_mnist(offline_server) / "train-images-idx3-ubyte.gz")
    with pytest.raises(data.DataError, match="failed verification") as info:
        data.load_raw("mnist")
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert not (isolated_cache / "mnist" / "train-images-idx3-ubyte.gz").exists()
    assert not [p for p in (isolated_cache / "mnist").iterdir() if "download" in p.name]


def test_failed_download_reports_not_found(offline_server, isolated_cache):
    with pytest.raises(data.DataNotFoundError, match="download failed"):
        data.load_raw("fashion_mnist")
    assert not [path for path in isolated_cache.rglob("*") if path.is_file()]


def fake_cifar10_python(path: pathlib.Path) -> None:
    """A tarball laid out like the official `cifar-10-python.tar.gz` (all-zero images)."""

    def batch(n: int) -> bytes:
        x = np.zeros((n, 3072), np.uint8)
        x[0, :1024], x[0, 1024:2048], x[0, 2048:] = 10, 20, 30  # planar R, G, B
        x[0, 1] = 99  # red, row 0, column 1
        return pickle.dumps({b"data": x, b"labels": [i % 10 for i in range(n)]})

    members = {f"data_batch_{i}": batch(10000) for i in range(1, 6)} | {"test_batch": batch(10000)}
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_cifar10_python_tarball_download(offline_server, isolated_cache, monkeypatch):
    tarball = offline_server / "cifar-10-python.tar.gz"
    fake_cifar10_python(tarball)
    monkeypatch.setattr(
        data, "CIFAR10_PYTHON_SHA256", hashlib.sha256(tarball.read_bytes()).hexdigest()
    )
    monkeypatch.setitem(data.URLS, "cifar10", tarball.as_uri())

    x_train, y_train, x_test, y_test, source = data.load_raw("cifar10")
    assert pathlib.Path(source) == (isolated_cache / "cifar10" / "cifar-10-python.tar.gz").resolve()
    assert "jpeg" not in source.lower()
    assert x_train.shape == (50000, 32, 32, 3)
    assert x_test.shape == (10000, 32, 32, 3)
    assert x_train[0, 5, 7].tolist() == [10, 20, 30]
    assert x_train[0, 0, 1, 0] == 99
    assert np.bincount(y_train).tolist() == [5000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10


def test_cifar10_jpeg_tarball_with_wrong_checksum_is_rejected(tmp_path):
    with tarfile.open(tmp_path / "cifar10-jpeg.tar.gz", "w:gz"):
        pass
    with pytest.raises(data.DataError, match="SHA-256") as info:
        data.load_raw("cifar10", data_dir=tmp_path)
    assert "cifar10-jpeg.tar.gz" in str(info.value)


# --- CIFAR-10 (JPEG copy) and Fashion-MNIST --------------------------------------------------


@pytest.fixture(scope="module")
def cifar_jpeg(tmp_path_factory):
    """Decodes the CIFAR-10 JPEG copy once (the slow part) into a fresh cache folder."""
    cache = tmp_path_factory.mktemp("cifar-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KDUTILS_CACHE_DIR", str(cache))
        data.clear_memory_cache()
        yield cache, data.load_raw("cifar10")


@needs_cifar
def test_cifar10_from_jpeg_copy(cifar_jpeg):
    _, (x_train, y_train, x_test, y_test, source) = cifar_jpeg
    assert x_train.shape == (50000, 32, 32, 3)
    assert x_test.shape == (10000, 32, 32, 3)
    assert x_train.dtype == np.uint8
    assert 0 < x_train.mean() < 255
    assert np.bincount(y_train).tolist() == [5000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert "jpeg" in source.lower()


@needs_cifar
def test_cifar10_decoded_arrays_are_cached_on_disk(cifar_jpeg, monkeypatch):
    cache, raw = cifar_jpeg
    assert len(list((cache / "cifar10").glob("cifar10-jpeg-*.npz"))) == 1
    monkeypatch.setenv("KDUTILS_CACHE_DIR", str(cache))
    monkeypatch.setattr(data, "_decode_cifar10_jpeg", lambda path: pytest.fail("decoded again"))
    data.clear_memory_cache()
    again = data.load_raw("cifar10")
    for a, b in zip(raw[:4], again[:4], strict=True):
        np.testing.assert_array_equal(a, b)

    ds = data.load_dataset("cifar10", train_size=1000, validation_size=500, noise_rate=0.1)
    assert ds.x_train.shape == (1000, 32, 32, 3)
    assert ds.x_train.dtype == np.float32
    assert ds.class_names[0] == "airplane"
    assert ds.class_names[9] == "truck"
    assert ds.noise_mask.sum() == 100
    assert "jpeg" in ds.summary()["source"].lower()


@needs_cifar
def test_cifar10_cache_edited_in_place_is_rebuilt_with_a_warning(cifar_jpeg, monkeypatch):
    cache, raw = cifar_jpeg
    (npz,) = (cache / "cifar10").glob("cifar10-jpeg-*.npz")
    with np.load(npz) as f:
        arrays = dict(f)
    assert "sha256" in arrays  # the derived cache stores a checksum of its content
    arrays["y_train"][[0, 1]] = arrays["y_train"][[1, 0]]  # well-formed, label counts unchanged
    arrays["x_test"][0, 0, 0] ^= 1
    np.savez(npz, **arrays)
    monkeypatch.setenv("KDUTILS_CACHE_DIR", str(cache))
    monkeypatch.setattr(data, "_decode_cifar10_jpeg", lambda path: tuple(map(np.array, raw[:4])))
    data.clear_memory_cache()
    with pytest.warns(UserWarning, match=f"{re.escape(str(npz))}.*stored checksum"):
        again = data.load_raw("cifar10")
    for a, b in zip(raw[:4], again[:4], strict=True):
        np.testing.assert_array_equal(a, b)
    data.clear_memory_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt cache passes its check
        data.load_raw("cifar10")


@needs_fashion
def test_fashion_mnist_falls_through_to_debian_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KDUTILS_DATA_DIR", str(tmp_path))  # a data folder without it
    x_train, y_train, x_test, y_test, source = data.load_raw("fashion_mnist")
    assert pathlib.Path(source) == FASHION_DIR.resolve()
    assert x_train.shape == (60000, 28, 28)
    assert x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    ds = data.load_dataset("fashion_mnist", train_size=100)
    assert ds.class_names[0] == "T-shirt/top"
    assert ds.class_names[9] == "Ankle boot"
