"""The compute a run used, and budgets that end it: network evaluations and training wall time.

Methods differ in what one "step" costs — five critic updates, an unrolled look-ahead, MCMC chains through the
generator — so comparing them at equal steps compares budgets as much as methods. Every run therefore counts, per
network, the samples passed forward through it during training (``net_evals``: a batch of b through a network is b
evaluations; a backward pass is not counted separately — it follows every forward pass of a trained network and
costs about twice one), and the wall time of its training loop, both summed over sessions and saved with the
checkpoint so that a resumed run counts from where it stopped. The evaluations go to the checkpoint and
``summary.json`` (``budget``); the seconds, which no two runs share, only to ``run.json`` (each session's
``train_seconds``, summed on resume; a session killed before it could record them counts for its seconds up to its
last checkpoint, which its record notes at each checkpoint — ``checkpointed`` —, as the run resumes from there: a
budget in seconds is not granted again to a killed run) and the Python API's ``TrainResult.train_seconds`` —
checkpoints and summaries stay identical between identical runs.

Run options ``max_seconds``, ``max_cpu_seconds`` and ``max_evals`` end training at the first step at which the budget is used up
(``steps`` is then an upper bound); the run is then finished at that step — final evaluation, plots, summary — and
running the same command again reports it instead of training on. A budget in evaluations is deterministic; one in
seconds depends on the machine and its load, which the run record states. One in CPU seconds (the process's CPU time
in the training loop, all threads; each session's ``train_cpu_seconds``) is close to what a run would take alone: on
a CPU shared with other jobs its wall time stretches, its CPU time much less (a GAN step under load 4: wall 2.4×, CPU
1.2×), though a step still costs 0–30 % more CPU time beside another run than alone, depending on the method and its
neighbour (``benchmarks/images/README.md``), so a grid of one-thread runs side by side is equal in compute to about
that. It is no measure of GPU work, and is refused for CUDA runs. Evaluation is never counted.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from torch import nn



def counted_layers(net: nn.Module) -> list[nn.Module]:
    """The layers a network's rows are counted through: its leaf layers with parameters of their own — a layer whose
    weight is parametrised (spectral norm: ``torch.nn.utils.parametrizations``) counts too, though its weight then
    lives in a ``parametrizations`` child and the layer is no leaf; the parametrisation's own modules are not layers
    (no rows pass through them)."""
    from torch.nn.utils import parametrize

    out = []
    for m in net.modules():
        if isinstance(m, parametrize.ParametrizationList):
            continue
        kids = [c for name, c in m.named_children() if name != "parametrizations"]
        if not kids and (parametrize.is_parametrized(m) or any(True for _ in m.parameters(recurse=False))):
            out.append(m)
    return out

class Budget:
    """Counts forward evaluations of each of a method's networks while installed (``with budget.counting():``)."""

    def __init__(self, networks: dict[str, nn.Module], *, max_seconds: float = 0.0, max_evals: int = 0,
                 processes: int = 1, max_cpu_seconds: float = 0.0):
        self.networks = networks
        self.max_seconds, self.max_evals, self.processes = max_seconds, max_evals, processes
        self.max_cpu_seconds = max_cpu_seconds
        self._rows: dict[str, int] = {k: 0 for k in networks}  # rows through the network's layers, summed
        # a network is counted through its layers with parameters, not its forward(): methods call parts of a
        # network (a VAE's encode and decode) without its forward. Rows through all its layers / their number is
        # the samples passed through the whole network (a pass of b rows adds b to each layer).
        self._layers = {k: counted_layers(net) for k, net in networks.items()}
        self.seconds = 0.0  # training-loop wall time of the sessions before this one
        self.cpu_seconds = 0.0  # and its CPU time (all threads)
        self._handles: list[Any] = []

    @property
    def evals(self) -> dict[str, int]:
        """Samples passed forward through each network in training."""
        return {k: round(self._rows[k] / max(1, len(self._layers[k]))) for k in self._rows}

    def _hook(self, name: str):
        def count(module: nn.Module, args: tuple[Any, ...]) -> None:
            if args and hasattr(args[0], "shape") and len(args[0].shape) > 0:
                self._rows[name] += int(args[0].shape[0]) * self.processes
        return count

    def start(self) -> None:
        """Count from now on (training), until :meth:`stop` (evaluation is not counted)."""
        if not self._handles:
            self._handles = [layer.register_forward_pre_hook(self._hook(k))
                             for k, layers in self._layers.items() for layer in layers]

    def stop(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Within the block the hooks are removed (a compiled step: dynamo would bake the counts' values into its
        guards and recompile at every step; its rows are added with :meth:`add_rows`)."""
        counting = bool(self._handles)
        self.stop()
        try:
            yield
        finally:
            if counting:
                self.start()

    @property
    def rows(self) -> dict[str, int]:
        """Rows passed through each network's layers so far (what :meth:`add_rows` adds to)."""
        return dict(self._rows)

    def add_rows(self, rows: dict[str, int]) -> None:
        """Count rows that passed without the Python hooks seeing them: a step replayed from a captured graph
        (``ebmlab.graphs``) adds what its capture counted."""
        for k, v in rows.items():
            self._rows[k] += v

    @property
    def total_evals(self) -> int:
        return sum(self.evals.values())

    def used_up(self, session_seconds: float, session_cpu_seconds: float = 0.0) -> str | None:
        """Which budget is used up ('max_seconds', 'max_cpu_seconds' or 'max_evals'), or None."""
        if self.max_evals and self.total_evals >= self.max_evals:
            return "max_evals"
        if self.max_seconds and self.seconds + session_seconds >= self.max_seconds:
            return "max_seconds"
        if self.max_cpu_seconds and self.cpu_seconds + session_cpu_seconds >= self.max_cpu_seconds:
            return "max_cpu_seconds"
        return None

    def state_dict(self) -> dict[str, Any]:
        """The counts, for the checkpoint (which holds nothing a rerun would not reproduce: no wall times)."""
        return {"layer_rows": dict(self._rows)}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        for k, v in ((state or {}).get("layer_rows") or {}).items():
            if k in self._rows:
                self._rows[k] = int(v)

    def report(self, step: int, stopped_by: str | None) -> dict[str, Any]:
        """What summary.json records beside the metrics: only what a resumed run reproduces exactly (the seconds go
        to run.json's session records and to the TrainResult)."""
        return {"steps": step, "net_evals": dict(self.evals), "net_evals_total": self.total_evals,
                "stopped_by": stopped_by}


__all__ = ["Budget", "counted_layers"]
