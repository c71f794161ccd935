"""The LOBPCG s_min of an older checkout against this one's, on a DCGAN-32 generator in float64, for 1–30 iterations
from the same random start (the s_min estimates must agree to float tolerance when only the linear algebra changed).

    python benchmarks/gpu/bib_smin_old_new.py OLD_CHECKOUT        (prints one JSON line)

The older ``bounds/entropy.py`` is loaded from OLD_CHECKOUT/src with its package-relative imports pointed at this
checkout's modules (``nets.jacobian`` and ``rng``, which the change did not touch).
"""

import json
import sys
import types
from pathlib import Path

import torch

from ebmlab.bounds import entropy as new
from ebmlab.data.base import DataSpec
from ebmlab.nets.build import generator

old_path = Path(sys.argv[1]) / "src" / "ebmlab" / "bounds" / "entropy.py"
old = types.ModuleType("old_entropy")
exec(compile(old_path.read_text().replace("from ..", "from ebmlab."), str(old_path), "exec"), old.__dict__)

torch.manual_seed(0)
G = generator(DataSpec("image", (3, 32, 32), (-1.0, 1.0), 256), 32, net="dcgan", width=16).double().eval()
z = torch.randn(32, 32, dtype=torch.float64)
diff = {}
for it in (1, 2, 5, 10, 30):
    with torch.no_grad():
        a = old.lobpcg_smin(G, z, n_iter=it, generator=torch.Generator().manual_seed(1)).s_min
        b = new.lobpcg_smin(G, z, n_iter=it, generator=torch.Generator().manual_seed(1), sync_free=True).s_min
    diff[it] = float(((b - a) / a).abs().max())
print(json.dumps({"generator": "dcgan 32x32, width 16, z 32, float64", "rows": 32,
                  "max_relative_difference_by_iterations": diff}))
