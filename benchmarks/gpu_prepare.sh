#!/usr/bin/env bash
# Prepare what benchmarks/gpu_full.sh carries to a GPU machine that reaches no network:
#   .whl/       wheels its image lacks (Keras and the two packages Keras needs beside it),
#               for CPython 3.12 on x86-64 Linux, at this repository's pins;
#   .gpu-data/  MNIST and CIFAR-10 as found by kdutils.distill.data (KDUTILS_DATA_DIR or ../shared/data).
# Both folders are git-ignored. Then, with the device tool:
#   run(command="bash benchmarks/gpu_full.sh --out $OUT --stop-after 540",
#       carry=[".whl", ".gpu-data"], timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
pin() { grep -i "^$1==" requirements.txt | cut -d= -f3; }
rm -rf .whl && mkdir -p .whl
for pkg in keras namex optree; do
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .whl "$pkg==$(pin "$pkg")"
done
data=${KDUTILS_DATA_DIR:-../shared/data}
rm -rf .gpu-data && mkdir -p .gpu-data
cp -r "$data/mnist" .gpu-data/mnist
cp "$data"/cifar10-jpeg.* .gpu-data/ 2>/dev/null || echo "no CIFAR-10 copy in $data: CIFAR steps will fail"
chmod -R u+w .gpu-data
du -sh .whl .gpu-data
