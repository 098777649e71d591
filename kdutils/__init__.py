"""kdutils: a small, tested library for response-based knowledge distillation in Keras 3."""

import importlib

# Public name -> the module that defines it. They are imported on first use, so that
# `kdutils.data` and the build's data check (`kdutils.preflight`) start in a second, without
# loading Keras and TensorFlow.
_EXPORTS = {
    "Distiller": "kdutils.distiller",
    "with_teacher_logits": "kdutils.distiller",
    "cross_entropy": "kdutils.losses",
    "distillation_loss": "kdutils.losses",
    "kd_loss": "kdutils.losses",
    "soft_targets": "kdutils.losses",
    "build_model": "kdutils.models",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str):
    """`from kdutils import Distiller`: imports the defining module the first time."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kdutils' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
