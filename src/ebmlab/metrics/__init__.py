"""Evaluation metrics: functions with their metadata beside them (``metrics.registry``), one evaluator per data
kind (``metrics.evaluators``), the classifier features, the temperature search."""

from .evaluators import collapse_reference, evaluate_method, evaluator_for, noise_floor, real_reference, sample_metrics
from .modes import HQ_CEILING, mode_metrics

__all__ = ["HQ_CEILING", "collapse_reference", "evaluate_method", "evaluator_for", "mode_metrics", "noise_floor", "real_reference", "sample_metrics"]
