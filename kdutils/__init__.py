"""kdutils: a small, tested library for response-based knowledge distillation in Keras 3.

Three layers, each module in one of them (CONTRIBUTING.md draws how they fit):

- `kdutils.distill`: distillation itself (losses, Distiller, fused and batched students,
  feature distillation, models, data, augmentation, metrics);
- the runner, the modules at this level: profiles (`profiles`), the one teacher cache
  (`teacher_cache`), the results store (`results`), a run of one setting (`experiment`), the
  sweep and papermill driver (`sweep`), provenance and the build's checks;
- `kdutils.analysis`: statistics, the report's numbers and the figure types.

The studies beyond the report (`kdutils.studies`) are built on all three.
"""

import importlib

# Public name -> the module that defines it. They are imported on first use, so that
# `kdutils.distill.data` and the build's data check (`kdutils.preflight`) start in a second,
# without loading Keras and TensorFlow.
_EXPORTS = {
    "Distiller": "kdutils.distill.distiller",
    "with_teacher_logits": "kdutils.distill.distiller",
    "cross_entropy": "kdutils.distill.losses",
    "distillation_loss": "kdutils.distill.losses",
    "kd_loss": "kdutils.distill.losses",
    "soft_targets": "kdutils.distill.losses",
    "build_model": "kdutils.distill.models",
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
