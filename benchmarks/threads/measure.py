"""Training steps/s of a method on a data set at threads=1 and threads=2, measured in one process, alternating.

    python benchmarks/threads/measure.py gan ring8 300
"""
import sys
import tempfile
import time

import ebmlab
import ebmlab.runs

method, data, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
rates = {1: [], 2: []}
for rep in range(2):
    for t in (1, 2):
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            ebmlab.train(method, data, out=d + "/r", progress=False,
                         overrides={"steps": steps, "threads": t, "eval_samples": 100, "eval_density": False,
                                    "plots": False, "loggers": "", "ckpt_every": steps, "log_every": steps})
            rec = ebmlab.runs.RunDir(d + "/r").sessions()[-1]
            rates[t].append(rec["steps_per_s"])
print(method, data, {t: [round(r, 1) for r in v] for t, v in rates.items()})
