"""What one BiB training step on 32×32 colour images launches: aten operations by name (each one or more kernels
on a GPU, so the count is a device-free proxy for launches; the count without views, which launch nothing, is
the closer one), host reads of tensor values (each a device → host wait on a GPU) and, on this machine, the
step's CPU time. Run it once per checkout to compare two versions:

    PYTHONPATH=OTHER_CHECKOUT/src python benchmarks/gpu/bib_step_ops.py [--steps 3] [--threads 2] [--set K=V ...]

Data: 512 random 3×32×32 uint8 images written to a temporary .npz (the shape is what matters); the BiB image
preset (its 32×32 DCGAN pair, LOBPCG with 2 iterations) at batch 64. Prints one JSON line.
"""

import argparse
import json
import tempfile
import time
from collections import Counter

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

PARTS: list[str] = ["step"]  # the innermost named part of LOBPCG running now (by_part)


class Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: Counter = Counter()
        self.compute = 0  # operations that are not views (a view launches no kernel)
        self.by_part: Counter = Counter()
        self.flops = 0  # of matrix products and convolutions, by torch's own FLOP formulas (flop_counter)
        self.flops_by_part: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        if not func.is_view:
            self.compute += 1
            self.by_part[PARTS[-1]] += 1
        out = func(*args, **(kwargs or {}))
        count = flop_registry.get(func.overloadpacket)
        if count is not None:
            f = count(*args, **(kwargs or {}), out_val=out)
            self.flops += f
            self.flops_by_part[PARTS[-1]] += f
        return out


def _named(f, name):
    def g(*args, **kwargs):
        PARTS.append(name)
        try:
            return f(*args, **kwargs)
        finally:
            PARTS.pop()
    return g


def _name_the_parts() -> None:
    """Count LOBPCG's pieces apart (those this checkout has): the Rayleigh–Ritz solve, Gram–Schmidt, the finiteness
    masks, the J·w and Jᵀ·y products, the linearisation and the rest of lobpcg_smin; "step" is everything else
    (the networks' forward and backward passes, the optimizers)."""
    from ebmlab.bounds import entropy as E

    for name in ("_smallest_ritz_vector", "_orthonormalise", "_finite_rows", "lobpcg_smin"):
        if hasattr(E, name):
            setattr(E, name, _named(getattr(E, name), name))
    lin = getattr(E, "_LinearisedG", None)
    if lin is not None:
        for name in ("__init__", "jvp", "vjp"):
            setattr(lin, name, _named(getattr(lin, name), "linearise" if name == "__init__" else name))
    for mod in ("ebmlab.bounds.score", "ebmlab.methods.bib.bounds"):  # modules that imported lobpcg_smin by name
        m = __import__(mod, fromlist=["_"])
        if hasattr(m, "lobpcg_smin"):
            m.lobpcg_smin = E.lobpcg_smin


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--method", default="bib")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an option of the method (repeatable), e.g. --set net=ebmbb32 --set share_jacobian=true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    _name_the_parts()
    import ebmlab
    from ebmlab.config import resolve_config
    from ebmlab.data import get_dataset
    from ebmlab.syncs import CountHostReads
    from ebmlab.trainer import build_method

    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/cifar_shaped.npz"
        rng = np.random.default_rng(0)
        np.savez(path, x=rng.integers(0, 256, size=(512, 3, 32, 32), dtype=np.uint8))
        cfg = resolve_config(a.method, path, overrides={"batch_size": 64, "seed": 0,
                                                           **dict(kv.split("=", 1) for kv in a.set)})
        m = build_method(cfg, torch.device("cpu"))
        ds = get_dataset(path)
        g = torch.Generator().manual_seed(0)
        batch = lambda: ds.train[torch.randint(0, len(ds.train), (64,), generator=g)]  # noqa: E731
        m.train_step(batch(), 1)  # warm-up (lazy set-up)
        ops, syncs = Ops(), CountHostReads()
        with syncs, ops:
            m.train_step(batch(), 2)
        times = []
        for s in range(a.steps):
            x = batch()
            t0 = time.perf_counter()
            m.train_step(x, 3 + s)
            times.append(time.perf_counter() - t0)
    top = {k: v for k, v in ops.ops.most_common(12)}
    print(json.dumps({"method": a.method, "options": a.set, "ebmlab": ebmlab.__file__, "aten_ops_per_step": sum(ops.ops.values()),
                      "non_view_ops_per_step": ops.compute, "non_view_ops_by_part": dict(ops.by_part.most_common()),
                      "host_reads_per_step": syncs.total, "gflop_per_step": ops.flops / 1e9,
                      "gflop_by_part": {k: round(v / 1e9, 3) for k, v in ops.flops_by_part.most_common()}, "linalg_ops": {k: v for k, v in ops.ops.items() if "linalg" in k
                                                                      or k in ("aten.svd", "aten._linalg_svd")},
                      "cpu_s_per_step_median": float(np.median(times)), "threads": a.threads,
                      "top_ops": top}))


if __name__ == "__main__":
    main()
