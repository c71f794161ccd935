"""Count host synchronisations per training step: calls that read a tensor's value into Python (item, float, int,
bool, tolist, numpy, as an index) or need a data-dependent shape (nonzero), seen by a TorchFunctionMode around the
training loop (torch.optim's reads of its CPU step counters are listed apart and not counted: they are no device wait) of a short run (no evaluation, one checkpoint at the end). On a GPU each is a device → host wait.

usage: python count_syncs.py METHOD DATA STEPS [key=value ...]   (prints one JSON line)
Run it with PYTHONPATH pointing at another checkout's src/ to count an older version.
"""

import json
import sys
import tempfile
from collections import Counter

from torch.overrides import TorchFunctionMode

SYNCS = {"item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "nonzero"}


class CountSyncs(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.counts: Counter = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in SYNCS:
            frame = sys._getframe(1)
            # torch.optim's per-parameter step counters stay on the CPU even for GPU parameters (capturable=False),
            # so reading them (torch.optim itself, LBT's adam_state_from_torch) is no device wait: counted apart
            counter = "torch/optim" in frame.f_code.co_filename or frame.f_code.co_name == "adam_state_from_torch"
            self.counts["optimizer_step_counter" if counter else name] += 1
        return func(*args, **(kwargs or {}))


def main() -> None:
    import ebmlab
    from ebmlab import trainer

    method, data, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    over = dict(a.split("=", 1) for a in sys.argv[4:])
    over.update(steps=str(steps + 1), eval_density="false", plots="false", loggers="",
                ckpt_every=str(steps), log_every=str(over.get("log_every", 50)))
    counter = CountSyncs()
    real_loop = trainer._train_loop

    def counted(*a, **k):
        with counter:
            return real_loop(*a, **k)

    trainer._train_loop = counted
    with tempfile.TemporaryDirectory() as d:
        ebmlab.train(method, data, out=f"{d}/run", overrides=over, progress=False, stop_after=steps)
    total = sum(v for k, v in counter.counts.items() if k != "optimizer_step_counter")
    print(json.dumps({"method": method, "data": data, "steps": steps, "log_every": int(over["log_every"]),
                      "syncs": total, "per_step": total / steps, "by_kind": dict(counter.counts),
                      "ebmlab": ebmlab.__file__}))


if __name__ == "__main__":
    main()
