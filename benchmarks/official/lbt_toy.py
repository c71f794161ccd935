"""Run LBT's official toy trainer (``LBT_toy.py`` or ``LBT-GAN_toy.py`` of taufikxu/Learning-By-Teaching,
unmodified) and save its generator's samples over training, for ebmlab's metrics.

    PATH/tf-env/bin/python benchmarks/official/lbt_toy.py --repo PATH/Learning-By-Teaching --out OUT \
        --iters 2500 --snap-every 500 --seed 1 [--script LBT-GAN_toy.py] -- -dataset ring -mog_std 0.01 ...

This file runs under a Python that has TensorFlow, not ebmlab's: the official code is TensorFlow 1.12 for Python 2.7.
It was run here with ``pip install "tensorflow-cpu==2.15.1" "tensorflow-probability==0.23.0" tf-slim coloredlogs
"numpy<2" "matplotlib<3.10"`` (TF 2.15 is the last release whose ``tf.compat.v1`` still has ``tf.layers``), and
these stand-ins, set up before the script is imported; its text is not changed:

- ``tensorflow`` is ``tf.compat.v1`` with v2 behaviour disabled (graph mode, sessions, ``tf.layers``,
  ``tf.random_normal``); ``InteractiveSession`` is created with one intra- and one inter-op thread (the official
  default would take every core) and recorded, so its trained variables can be read.
- ``tensorflow.contrib.framework...`` gives ``arg_scope`` / ``add_arg_scope`` from tf-slim (the same functions, moved
  there when contrib was removed); ``tensorflow.contrib.distributions`` is tensorflow-probability's distributions
  (``Categorical``, ``MultivariateNormalDiag``, ``Mixture``: the data sampler of ``Config/toy_data.py``).
- Python 2 in Python 3: ``xrange`` is ``range``; ``tf.gradients`` takes ``list(xs)`` (the script passes
  ``params.values()``, a list in Python 2, a view in Python 3); ``seaborn`` is an empty module (imported, never used by the toy scripts).
- The plot's legend: the script sets the alpha of ``legend.legendHandles[i]._legmarker``, attributes matplotlib no
  longer has; ``plt.legend`` returns the real legend with stand-in handles for those two lines (cosmetic only).
- ``tf.train.Saver``: the script saves its variables every ``-model_every`` iterations, after that iteration's
  training step. The stand-in writes no TensorFlow checkpoint; it reads the generator's weights from the session and
  saves ``n`` samples of G(z), z ~ N(0, I_256) from a NumPy generator seeded 0, as ``OUT/samples_<steps>.npy``,
  where <steps> = iteration + 1 is the number of training steps done. ``--snap-every`` sets ``-model_every``.

The generator is the script's ``generator`` (dense 256 → 128 tanh → 128 tanh → 2, the kernel/bias variables of
``generator/dense``, ``dense_1``, ``dense_2``); the samples are computed from those variables in float64 NumPy.

The script trains ``-max_iter + 1`` iterations (0 … max_iter) and saves after iterations 0, s, 2s, …; this runner
passes ``-max_iter iters``, so the snapshots are after 1, s + 1, 2s + 1, …, iters + 1 steps (recorded as such: one
step more than ebmlab's evaluations after s, 2s, …, iters steps). The official data is sampled afresh from the mixture every step (ebmlab draws batches
from a fixed 100k-point training split). Writes OUT/official.json (command, seconds, steps/s, the snapshots) and the
snapshots; the script's own log and plots go to OUT/official_workdir/output.
"""

from __future__ import annotations

import argparse
import builtins
import json
import os
import runpy
import sys
import time
import types
from pathlib import Path


def install_stand_ins(snapshots: list[dict], out: Path, n_samples: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MPLBACKEND", "Agg")
    import numpy as np
    import tensorflow as real_tf
    import tensorflow_probability as tfp
    import tf_slim

    v1 = real_tf.compat.v1
    v1.disable_v2_behavior()
    state: dict = {}

    class Session(v1.InteractiveSession):
        def __init__(self, *a, **kw):
            kw.setdefault("config", v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1))
            super().__init__(*a, **kw)
            state["sess"] = self

    class Saver:
        def __init__(self, *a, **kw):
            pass

        def restore(self, *a, **kw):
            raise SystemExit("error: -model_path is not supported by this runner")

        def save(self, sess, path, *a, **kw):
            it = int(Path(path).name.rsplit("_", 1)[1])
            names = ["generator/dense/", "generator/dense_1/", "generator/dense_2/"]
            vars_ = {v.name: v for v in v1.global_variables()}
            w = [sess.run([vars_[n + "kernel:0"], vars_[n + "bias:0"]]) for n in names]
            z = np.random.default_rng(0).standard_normal((n_samples, w[0][0].shape[0]))
            h = np.tanh(z @ w[0][0].astype(np.float64) + w[0][1])
            h = np.tanh(h @ w[1][0].astype(np.float64) + w[1][1])
            x = (h @ w[2][0].astype(np.float64) + w[2][1]).astype(np.float32)
            steps = it + 1
            np.save(out / f"samples_{steps}.npy", x)
            snapshots.append({"steps": steps, "file": f"samples_{steps}.npy",
                              "seconds": round(time.time() - state["t0"], 2), "finite": bool(np.isfinite(x).all())})
            print(f"[runner] after {steps} steps: {x.shape[0]} samples saved", flush=True)

    tf = types.ModuleType("tensorflow")
    tf.__dict__.update({k: getattr(v1, k) for k in dir(v1) if not k.startswith("__")})
    tf.InteractiveSession = Session
    tf.gradients = lambda ys, xs, *a, **kw: v1.gradients(ys, list(xs), *a, **kw)  # Python 2's dict.values() is a list
    train = types.ModuleType("tensorflow.train")
    train.__dict__.update({k: getattr(v1.train, k) for k in dir(v1.train) if not k.startswith("__")})
    train.Saver = Saver
    tf.train = train
    ops = types.ModuleType("tensorflow.contrib.framework.python.ops")
    ops.arg_scope, ops.add_arg_scope = tf_slim.arg_scope, tf_slim.add_arg_scope
    mods = {"tensorflow": tf, "tensorflow.contrib": types.ModuleType("tensorflow.contrib"),
            "tensorflow.contrib.framework": types.ModuleType("tensorflow.contrib.framework"),
            "tensorflow.contrib.framework.python": types.ModuleType("tensorflow.contrib.framework.python"),
            "tensorflow.contrib.framework.python.ops": ops,
            "tensorflow.contrib.distributions": tfp.distributions, "seaborn": types.ModuleType("seaborn")}
    mods["tensorflow.contrib"].framework = mods["tensorflow.contrib.framework"]
    mods["tensorflow.contrib"].distributions = tfp.distributions
    mods["tensorflow.contrib.framework"].python = mods["tensorflow.contrib.framework.python"]
    mods["tensorflow.contrib.framework.python"].ops = ops
    sys.modules.update(mods)
    builtins.xrange = range  # type: ignore[attr-defined]

    import matplotlib.pyplot as plt

    real_legend = plt.legend

    def legend(*a, **kw):
        leg = real_legend(*a, **kw)
        marker = types.SimpleNamespace(set_alpha=lambda alpha: None)
        try:
            leg.legendHandles = [types.SimpleNamespace(_legmarker=marker) for _ in a[0]] if a else []
        except AttributeError:  # a read-only property in some matplotlib versions: shadow it on a subclass
            leg.__class__ = type("Legend", (leg.__class__,), {"legendHandles": [
                types.SimpleNamespace(_legmarker=marker)] * (len(a[0]) if a else 0)})
        return leg

    plt.legend = legend
    state["t0"] = time.time()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True, help="checkout of taufikxu/Learning-By-Teaching")
    ap.add_argument("--script", default="LBT_toy.py", choices=["LBT_toy.py", "LBT-GAN_toy.py"])
    ap.add_argument("--iters", type=int, required=True, help="training steps")
    ap.add_argument("--snap-every", type=int, required=True, help="save samples after every this many steps")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--samples", type=int, default=2500)
    ap.add_argument("--out", required=True)
    ap.add_argument("rest", nargs="*", help="further arguments of the official script (after --)")
    a = ap.parse_args()
    repo, out = Path(a.repo).resolve(), Path(a.out).resolve()
    script = repo / a.script
    if not script.is_file():
        sys.exit(f"error: {script} not found: --repo must be a checkout of taufikxu/Learning-By-Teaching")
    if a.iters % a.snap_every:
        sys.exit("error: --iters must be a multiple of --snap-every")
    out.mkdir(parents=True, exist_ok=True)
    work = out / "official_workdir"
    work.mkdir(exist_ok=True)
    snapshots: list[dict] = []
    install_stand_ins(snapshots, out, a.samples)
    sys.path.insert(0, str(repo))
    # -viz_every: the script plots (and samples 3 × n_viz points) at every multiple; at the start and the end is enough
    argv = [a.script, "-seed", str(a.seed), "-max_iter", str(a.iters), "-model_every", str(a.snap_every),
            "-viz_every", str(a.iters), *a.rest]
    sys.argv = argv
    # run as the README does, `python LBT_toy.py` from the directory holding it: the script copies itself into its
    # output directory by its relative path, so it runs from a byte-identical copy in the working directory
    (work / a.script).write_bytes(script.read_bytes())
    cwd = os.getcwd()
    os.chdir(work)
    t0 = time.time()
    try:
        runpy.run_path(a.script, run_name="__main__")
    finally:
        os.chdir(cwd)
    secs = time.time() - t0
    rec = {"code": f"taufikxu/Learning-By-Teaching {a.script} (unmodified; stand-ins in this file's docstring)",
           "argv": argv, "seed": a.seed, "steps": a.iters + 1, "seconds": round(secs, 1),
           "steps_per_s": round((a.iters + 1) / secs, 3), "snapshots": snapshots}
    (out / "official.json").write_text(json.dumps(rec, indent=1) + "\n")
    print(json.dumps({k: rec[k] for k in ("steps", "seconds", "steps_per_s")}))


if __name__ == "__main__":
    main()
