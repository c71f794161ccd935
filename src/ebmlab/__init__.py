"""ebmlab: train, sample and evaluate energy-based models trained with a generator.

Python API (the CLI calls exactly these)::

    import ebmlab
    result = ebmlab.train("vgan", "ring8", out="runs/vgan-ring8", overrides={"steps": 2000})
    metrics = ebmlab.evaluate_run("runs/vgan-ring8")
    x = ebmlab.sample_run("runs/vgan-ring8", 1000, seed=0)
"""

__version__ = "0.1.0"

from .data import DATASETS, get_dataset  # noqa: E402
from .errors import DivergenceError, EbmlabError, NonNormalisableError  # noqa: E402
from .methods import METHODS, get_method  # noqa: E402
from .train import RunConfig, evaluate_run, load_run, resolve_config, sample_run, train  # noqa: E402

__all__ = ["DATASETS", "METHODS", "DivergenceError", "EbmlabError", "NonNormalisableError", "RunConfig",
           "evaluate_run", "get_dataset", "get_method", "load_run", "resolve_config", "sample_run", "train"]
