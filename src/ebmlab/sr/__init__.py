"""Super-resolution with deep convolutional sufficient statistics (Bruna, Sprechmann & LeCun, ICLR 2016) and its
baselines: ``bicubic``, ``tv`` (regularised inverse problem), ``mse`` (pixel regression), ``stats`` (conditional
Gibbs model on scattering statistics, with constrained inference and Langevin sampling). See :mod:`.api`."""

from .api import MODELS, evaluate_sr, load_sr_run, train_sr, upscale, upscale_array
from .data import get_sr_data

__all__ = ["MODELS", "evaluate_sr", "get_sr_data", "load_sr_run", "train_sr", "upscale", "upscale_array"]
