"""Evaluation metrics. ``evaluate_samples``/``evaluate_method`` assemble the 2D report."""

from .evaluate import evaluate_method, real_reference
from .modes import HQ_CEILING, mode_metrics

__all__ = ["HQ_CEILING", "evaluate_method", "mode_metrics", "real_reference"]
