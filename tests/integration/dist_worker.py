"""Run by the distributed tests under ``torchrun`` (or alone, as the one-process reference): trains with the
Python API and saves this process's final parameters and buffers to OUT/rank<r>.pt.

usage: dist_worker.py METHOD DATA RUN_DIR OUT key=value ...
"""

import json
import os
import sys
from pathlib import Path

import torch

import ebmlab
from ebmlab import trainer
from ebmlab.config import parse_override_strings, resolve_config


def main() -> None:
    method, data, run_dir, out = sys.argv[1:5]
    if os.environ.get("EBMLAB_TEST_FLOAT64") == "1":  # so that the comparison with one process is to rounding
        torch.set_default_dtype(torch.float64)
        make = trainer.make_batches

        def float64_batches(*args, **kw):
            batches = make(*args, **kw)
            stream = batches.stream
            batches.stream = lambda *a, **k: (b.double() for b in stream(*a, **k))
            return batches

        trainer.make_batches = float64_batches
    over = parse_override_strings(sys.argv[5:])
    stop = over.pop("stop_after", None)
    if "RANK" not in os.environ:  # the one-process reference also saves its initial parameters
        net_state(trainer.build_method(resolve_config(method, data, overrides=over)), Path(out) / "init.pt")
    res = ebmlab.train(method, data, out=run_dir, overrides=over, progress=False,
                       stop_after=int(stop) if stop is not None else None)
    rank = int(os.environ.get("RANK", "0"))
    net_state(res.method, Path(out) / f"rank{rank}.pt")
    # the threads still running once training has returned (and destroyed the process group it created): Linux
    # names them in /proc; gloo's workers must not be among them (ebmlab.distributed.init says why)
    tasks = Path("/proc/self/task")
    names = sorted(n for n in map(_thread_name, tasks.iterdir()) if n is not None) if tasks.is_dir() else None
    (Path(out) / f"threads{rank}.json").write_text(json.dumps(names))


def _thread_name(task: Path) -> str | None:
    try:
        return (task / "comm").read_text().strip()
    except OSError:  # the thread ended after the directory was listed
        return None


def net_state(method, path: Path) -> None:
    nets = {**method.networks, **method.frozen}
    torch.save({f"{n}.{k}": v.detach().cpu().clone() for n, m in nets.items() for k, v in m.state_dict().items()},
               path)


if __name__ == "__main__":
    main()
