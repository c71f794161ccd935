"""The density metrics of a 2D energy: exact test NLL, KL and total variation through the grid quadrature of
``ebmlab.quadrature`` (EVALUATION.md, "Exact density on 2D").
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import NonNormalisableError
from ..types import EnergyFn
from ..quadrature import evaluate_on_grid, grid, log_partition, log_partition_on_box

from ..metadata import Metric
from ..data.toy import ToyDataset

METRICS = {
    "nll": Metric("density", "nats", "↓", "exact test NLL of exp(−E) by quadrature", True),
    "kl": Metric("density", "nats", "↓", "KL(data ‖ model) by quadrature", True),
    "tv": Metric("density", "", "↓", "total variation to the data density", True),
    "nll_box": Metric("density", "nats", "↓", "test NLL of exp(−E) normalised on the data box", True),
    "kl_box": Metric("density", "nats", "↓", "KL(data ‖ model) normalised on the data box", True),
    "log_z": Metric("density", "nats", "", "log normalising constant of exp(−E)"),
    "log_z_box": Metric("density", "nats", "", "log normalising constant of exp(−E) on the data box"),
    "tv_box": Metric("density", "", "↓", "total variation to the data density, model normalised on the data box"),
}
# entropy_true: the data's entropy, already the real-data value of nll
BOOKKEEPING = {"quad_n", "quad_box", "density_status", "entropy_true"}
SAME_AS = {"nll_box": "nll", "kl_box": "kl"}  # the real-data value of a metric on another normalisation


def density_metrics(energy_fn: EnergyFn, dataset: ToyDataset, *, test: Tensor | None = None, device=None) -> dict[str, float | str]:
    """Exact test NLL, KL(p_data ‖ p_model) and total variation of the model p ∝ exp(−E), in nats.

    NLL = mean_test E(x) + log Z; KL = NLL − H(p_data) (H is the data's true entropy, the NLL floor);
    TV = ½ ∫ |p_data − p_model| on the final quadrature grid; ``*_err`` is the quadrature's error bound (nats).
    If the energy is not normalisable on R² (``density_status`` ``"non_normalisable"``) or its tails could not be
    bounded (``"unconverged"``), the ``*_box`` values describe the model truncated to the data set's box (a proper
    density there), labelled as such; if not even the box's grid converged, no density number is reported.
    ``density_note`` says why.
    """
    test = dataset.test if test is None else test
    param = next(iter(getattr(energy_fn, "parameters", lambda: iter([]))()), None)
    dev = device if device is not None else (param.device if param is not None else None)
    with torch.no_grad():
        e_test = float(evaluate_on_grid(energy_fn, test.to(dev)).mean())
    out: dict[str, float | str] = {"entropy_true": dataset.entropy}
    try:
        q = log_partition(energy_fn, dataset.box, device=dev)
        if q.converged:
            suffix, out["density_status"], log_z = "", "ok", q.log_z
            out["log_z_err"] = out["nll_err"] = out["kl_err"] = q.error
        else:  # never printed as a value on R²
            suffix, out["density_status"], log_z = "_box", "unconverged", q.box_log_z
            out["density_note"] = q.note
    except NonNormalisableError as exc:
        q = getattr(exc, "box_quadrature", None) or log_partition_on_box(energy_fn, dataset.box, device=dev)
        suffix, out["density_status"], log_z = "_box", "non_normalisable", q.box_log_z
        out["density_note"] = str(exc)
    out["quad_n"] = q.n
    out["quad_box"] = f"[{q.box[0]:.3g},{q.box[1]:.3g}]^2"
    if not q.box_converged:  # not even the box-restricted model's numbers are reliable
        before = f"{out['density_note']}; " if out.get("density_note") else ""
        out["density_note"] = before + f"the grid on the data box did not converge by n = {q.n}: no density numbers " \
                                       f"are reported"
        out["density_status"] = "unconverged"
        return out
    nll = e_test + log_z
    out["log_z" + suffix] = log_z
    out["nll" + suffix] = nll
    out["kl" + suffix] = nll - dataset.entropy
    pts, area = grid(q.box, q.n, dtype=torch.float64)
    lp_data = evaluate_on_grid(dataset.log_prob, pts)
    assert q.neg_energy is not None  # a converged box grid keeps its values
    lp_model = q.neg_energy - log_z  # on the fine box; the tail mass counts as model mass off the grid
    out["tv" + suffix] = float(0.5 * (lp_data.exp() - lp_model.exp()).abs().sum() * area)
    return out
