#!/usr/bin/env bash
# The report's scale on one GPU, in one call (see benchmarks/gpu_full.py for the steps):
#   bash benchmarks/gpu_full.sh --out "$OUT"                     # a fresh GPU machine
#   bash benchmarks/gpu_full.sh --scale smoke --out /tmp/rehearse  # the CPU rehearsal
# On the GPU machine, wheels carried in .whl/ (keras, namex, optree: what its image lacks)
# are installed offline first, and MNIST/CIFAR-10 are read from .gpu-data/ when carried
# there (the GPU machine reaches no network). Everything else comes from the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
if ! "$PYTHON" -c "import keras" 2>/dev/null; then
  compgen -G ".whl/*.whl" >/dev/null || { echo "no keras, and no wheels in .whl/ (run benchmarks/gpu_prepare.sh)"; exit 2; }
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
if [ -z "${KDUTILS_DATA_DIR:-}" ] && [ -d .gpu-data ]; then export KDUTILS_DATA_DIR=$PWD/.gpu-data; fi
export KDUTILS_NO_DOWNLOAD=${KDUTILS_NO_DOWNLOAD:-1}
"$PYTHON" --version
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
exec "$PYTHON" benchmarks/gpu_full.py "$@"
