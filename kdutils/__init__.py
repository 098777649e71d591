"""kdutils: a small, tested library for response-based knowledge distillation in Keras 3."""

from kdutils.distiller import Distiller, with_teacher_logits
from kdutils.losses import cross_entropy, distillation_loss, kd_loss, soft_targets
from kdutils.models import build_model

__all__ = [
    "Distiller",
    "build_model",
    "cross_entropy",
    "distillation_loss",
    "kd_loss",
    "soft_targets",
    "with_teacher_logits",
]
__version__ = "0.1.0"
