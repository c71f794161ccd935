"""The metric catalogue: a declared metric is shown as a result, never taken for bookkeeping by its name."""

from ebmlab.metrics.registry import catalogue, is_bookkeeping


def test_no_declared_metric_is_hidden_by_a_reserved_suffix():
    """Names ending in _se, _std, _err or _note are read as the error bar or note of another metric and left out of
    the result tables: a metric declared with such a name would be computed and never shown (found adding a
    'mean_err' metric as a new contributor would)."""
    hidden = [name for name in catalogue() if is_bookkeeping(name, 0.5)]
    assert not hidden, f"declared metrics that the tables would hide: {hidden}; rename them"


def test_the_check_sees_a_hidden_name():
    assert is_bookkeeping("mean_err", 0.5) and not is_bookkeeping("mean_dist", 0.5)
