"""Cold compile of one method's compiled step (float32, the method's preset on ring8, one thread): the seconds of its
first compiled step (steps 1–2 run eagerly), and torch's AOT-autograd counters (``total`` 2 where dynamo restarted its
analysis and traced the step twice). Run with TORCHINDUCTOR_FORCE_DISABLE_CACHES=1 for a cold compile each time.

    TORCHINDUCTOR_FORCE_DISABLE_CACHES=1 python benchmarks/compile/cold.py gan [inductor|aot_eager]
"""

import sys
import time

import torch
from torch._dynamo.utils import counters

from ebmlab.compiled import CompiledSteps
from ebmlab.config import resolve_config
from ebmlab.data import get_dataset
from ebmlab.trainer import build_method


def main() -> None:
    torch.set_num_threads(1)
    name = sys.argv[1]
    m = build_method(resolve_config(name, "ring8", overrides={"seed": 0}), torch.device("cpu"))
    ds = get_dataset("ring8")
    runner = CompiledSteps(m, m.train_step, lambda: None, None,
                           backend=sys.argv[2] if len(sys.argv) > 2 else "inductor")
    for i in range(1, 4):
        b = ds.train[torch.randint(0, len(ds.train), (256,))]
        m.prepare_step(i)
        t = time.perf_counter()
        runner.step(b, i)
        if i == 3:
            print(name, f"first compiled step {time.perf_counter() - t:.1f} s")
    print(dict(counters["aot_autograd"]))


if __name__ == "__main__":
    main()
