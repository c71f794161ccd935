"""One evaluator per kind of data, chosen by the data set (:func:`evaluator_for`): the sample metrics of that
kind, the real-data reference beside them, the density metrics where the kind has them, and the protocol that says
how the numbers were computed.

- ``toy2d``: mode metrics (mixtures), MMD² and W1 against the test split; exact density metrics of a normalisable
  energy by grid quadrature; the temperature search of a tempered energy family.
- ``image`` and ``binary``: classifier-feature metrics and stacked mode counts (``metrics.images``).
- ``vectors``: MMD², sliced and exact W1.

Evaluation flows one way: a method's ``evaluate_extra`` returns *quantities* — numbers it alone can compute
(bounds, importance-sampling estimates), and under two reserved keys what the evaluator should score for it:
``"samples"`` ({name: samples}: scored with this kind's sample metrics, keys prefixed ``name_``; KALE's base
generator, LBT's estimator) and ``"tempered_energy"`` (a function D whose family exp(−D/τ) the 2D evaluator
searches over τ; EBGAN). No method imports this package.

Evaluation draws its own noise from a generator seeded by ``seed`` and never touches the training RNGs, so
evaluating during training does not change the training trajectory.

A draw given a ``cache`` directory (a run's final evaluation) keeps each drawn chunk there with the generator's state
after it, so that an evaluation stopped at any moment resumes with exactly the samples an uninterrupted one draws:
a GEBM's 26,000 latent Langevin chains for stacked modes take hours on a CPU (:func:`cached_draw`).

The references of a data set with a domain classifier (real data, noise, one image repeated: 74 CPU-seconds a run on
stacked Fashion-MNIST at 1000 samples, one thread) are the same for every run scored at the same count, so they are
kept on disk (:func:`stored_reference`, under ``EBMLAB_REFERENCES`` or ``~/.cache/ebmlab/references``) under a key of
everything they depend on: the data set and its classifier's weights (sha256), the count, torch's version and the
source of ``ebmlab.metrics`` and ``ebmlab.data`` (any change to the code that computes them computes them afresh).
"""

from __future__ import annotations

import abc
import functools
import hashlib
import json
import shutil
import sys
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from ..atomic import atomic_write_bytes, fault_point
from .density import density_metrics
from .distances import median_bandwidth, mmd2_unbiased, wasserstein1
from .modes import mode_metrics
from ..data.base import Dataset
from ..data.toy import ToyDataset
from .registry import plugin_values

if TYPE_CHECKING:
    from ..methods.base import Method

REFERENCE_SEED = 777
FLOOR_SEED, FLOOR_DRAWS = 1777, 5  # the noise floor (Toy2D.floor): its draws' seeds and how many are averaged
CHUNK = 4096  # samples drawn per call when a data kind draws many (images: memory)


class Evaluator(abc.ABC):
    """The evaluation of one data kind. Subclasses are final. Each subclass's ``sample_metrics`` is completed with
    the metrics of plugins (``registry.plugin_values``), wherever it is called from."""

    kinds: ClassVar[tuple[str, ...]]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        own = cls.__dict__.get("sample_metrics")
        if own is not None:
            @functools.wraps(own)
            def with_plugins(self: Evaluator, samples: Tensor, dataset: Dataset, **k: Any) -> dict[str, Any]:
                out = own(self, samples, dataset, **k)
                out.update(plugin_values(samples, dataset))
                return out
            setattr(cls, "sample_metrics", with_plugins)

    @abc.abstractmethod
    def sample_metrics(self, samples: Tensor, dataset: Dataset, *, n_features: int | None = None) -> dict[str, Any]:
        """Metrics of model samples [n, *shape] against the test split."""

    @abc.abstractmethod
    def reference(self, dataset: Dataset, n: int) -> dict[str, Any]:
        """The same metrics for real data at the same sample count (the ceiling)."""

    @abc.abstractmethod
    def protocol(self, dataset: Dataset, n: int) -> dict[str, Any]:
        """How the numbers are computed (beside the sample count and test split every kind states)."""

    def floor(self, dataset: Dataset, n: int) -> dict[str, Any] | None:
        """The same metrics for samples that know nothing of the data but where it lies (the floor a model must
        beat), where this kind has one; None otherwise."""
        return None

    def collapsed(self, dataset: Dataset, n: int) -> dict[str, Any] | None:
        """The same metrics for one data point repeated n times (a collapsed generator), where this kind has such
        a reference; None otherwise."""
        return None

    def n_draw(self, dataset: Dataset, n: int) -> int:
        """Model samples drawn for an evaluation with ``n`` evaluation samples."""
        return n

    def n_compared(self, dataset: Dataset, n: int) -> int:
        """Samples compared with as many test points (the distances' sample count): n, or the test split's size
        when it is smaller."""
        return min(n, dataset.n_test)

    def draw(self, method: Method, n: int, generator: torch.Generator, cache: Path | None = None,
             progress: bool = False) -> Tensor:
        """``n`` samples in chunks of :data:`CHUNK`; with ``cache``, resumable (:func:`cached_draw`)."""
        with torch.no_grad():
            if cache is not None:
                return cached_draw(lambda k: method.sample(k, generator=generator), n, generator, cache,
                                   device=method.device, model=weights_digest(method), progress=progress)
            return torch.cat([method.sample(min(CHUNK, n - i), generator=generator) for i in range(0, n, CHUNK)])

    def density(self, method: Method, dataset: Dataset) -> dict[str, Any]:
        """Density metrics of the method's energy, where this kind has exact ones."""
        return {}

    def tempered(self, fn: Any, dataset: Dataset, device: Any) -> dict[str, Any]:
        """The temperature report of an energy family exp(−D/τ), where this kind has one."""
        return {}

    # --- the flow shared by every kind -----------------------------------------------------------------------
    def evaluate(self, method: Method, dataset: Dataset, *, n_samples: int = 2500, seed: int = 0,
                 density: bool = True, cache: Path | None = None, progress: bool = False,
                 mode_count: bool = True) -> dict[str, Any]:
        """Evaluate a trained method: a flat dict of metrics. ``cache``: a directory that makes the draw of the
        samples resumable (:func:`cached_draw`); the caller removes it once the metrics are kept. ``progress``:
        the draw of a resumable evaluation shows its progress and the time left. ``mode_count=False``: no metric
        of the stacked sets' mode counting is asked for, so ``n_samples`` are drawn, not :meth:`n_draw`'s 26,000
        (the mode metrics then computed on them are not reported by the caller)."""
        for m in method.networks.values():
            m.eval()
        try:
            gen = torch.Generator(device=method.device).manual_seed(seed)
            n = self.n_draw(dataset, n_samples)
            samples = self.draw(method, n if mode_count else min(n, n_samples), gen, cache, progress)
            out = self.sample_metrics(samples, dataset, n_features=n_samples)
            if method.has_energy and method.energy_defines_density and density:
                out.update(self.density(method, dataset))
            extra = dict(_evaluate_extra(method, dataset, len(samples)))
            scored = extra.pop("samples", {})
            tempered = extra.pop("tempered_energy", None)
            out.update(extra)
            for name, x in scored.items():
                out.update(self._scored_beside(name, x, len(samples), dataset, n_samples))
            if tempered is not None:
                out.update(self.tempered(tempered, dataset, method.device))
        finally:
            for m in method.networks.values():
                m.train()
        return out


    def _scored_beside(self, name: str, x: Tensor, n_main: int, dataset: Dataset, n_samples: int) -> dict[str, Any]:
        """An extra sample set's metrics (``name_*``), scored at the main set's count: a larger set is truncated;
        a smaller one is scored as it is, with a note (its counts, e.g. modes, are not comparable)."""
        x = x[:n_main]
        m = self.sample_metrics(x, dataset, n_features=n_samples)
        out = {f"{name}_{k}": v for k, v in m.items() if _scored(k, v)}
        if len(x) < n_main:
            out[f"{name}_note"] = (f"{name} samples scored at {len(x)}, the main set at {n_main}: counts such as modes "
                                   f"are not comparable between them")
        return out


def _evaluate_extra(method: Method, dataset: Dataset, count: int) -> dict[str, Any]:
    """``method.evaluate_extra(dataset, count)``; a plugin's override written without ``count`` (ebmlab ≤ 0.3, when the
    count was set on the method as ``eval_count``) is called as it was written."""
    import inspect

    if len(inspect.signature(method.evaluate_extra).parameters) >= 2:
        return method.evaluate_extra(dataset, count)
    method.eval_count = count  # type: ignore[attr-defined]
    return method.evaluate_extra(dataset)  # type: ignore[call-arg]


def weights_digest(method: Method) -> str:
    """A hash of every network's parameters and buffers: which model a cached draw came from."""
    h = hashlib.sha256()
    for name, net in sorted(method.networks.items()):
        for key, v in net.state_dict().items():
            h.update(f"{name}.{key}:{v.dtype}:{tuple(v.shape)}".encode())
            h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def cached_draw(sample: Callable[[int], Tensor], n: int, generator: torch.Generator, cache: Path, *,
                device: Any = "cpu", model: str = "", progress: bool = False) -> Tensor:
    """``n`` samples as ``sample(k)`` calls of :data:`CHUNK` samples (each drawing from ``generator``), each chunk
    written to ``cache/chunk-NNNN.pt`` with the generator's state after it. Called again after a kill, it reads the
    chunks that are there and draws the rest from the saved state: the samples equal an uninterrupted draw's.

    ``cache/draw.json`` says what the chunks are: n, the chunk size, a hash of the generator's state at the start
    (the seed) and ``model`` (:func:`weights_digest`); a directory written for another draw is emptied first. A chunk
    file that does not load (cut short, edited) is drawn again from the one before it.
    The cache only saves time: when it cannot be written (a full disk) the draw goes on without it, with a warning.
    """
    key = {"format": "ebmlab-draw-cache-1", "n": int(n), "chunk": CHUNK, "model": model,
           "rng": hashlib.sha256(generator.get_state().numpy().tobytes()).hexdigest()[:16]}
    meta = cache / "draw.json"
    try:
        usable = json.loads(meta.read_text()) == key
    except (OSError, ValueError):
        usable = False
    writable = True
    if not usable:
        shutil.rmtree(cache, ignore_errors=True)
        try:
            atomic_write_bytes(meta, lambda fh: fh.write(json.dumps(key).encode()))
        except OSError as exc:
            writable = _cache_warning(cache, exc)
    parts: list[Tensor] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=n, disable=not progress, desc="final evaluation: drawing samples", unit="sample",
               dynamic_ncols=True, mininterval=1.0)
    for i, start in enumerate(range(0, n, CHUNK)):
        bar.update(len(parts[-1]) if parts else 0)
        k = min(CHUNK, n - start)
        f = cache / f"chunk-{i:04d}.pt"
        if usable:
            try:
                saved = torch.load(f, weights_only=True, map_location="cpu")
                x, state = saved["x"], saved["rng"]
                usable = isinstance(x, Tensor) and len(x) == k and isinstance(state, Tensor)
            except Exception:  # absent, cut short or not ours: draw it (and every later one) again
                usable = False
            if usable:
                generator.set_state(state)
                parts.append(x.to(device))
                continue
        x = sample(k)
        if writable:
            try:
                atomic_write_bytes(f, lambda fh: torch.save({"x": x.detach().cpu(), "rng": generator.get_state()},
                                                            fh))
            except OSError as exc:
                writable = _cache_warning(cache, exc)
            fault_point("draw:chunk")
        parts.append(x)
    bar.update(len(parts[-1]) if parts else 0)
    bar.close()
    return torch.cat(parts)


def _cache_warning(cache: Path, exc: OSError) -> bool:
    print(f"warning: the evaluation's samples cannot be kept in {cache} ({exc.strerror or exc}); drawing on without "
          f"them, so a stopped evaluation will start its draw again", file=sys.stderr, flush=True)
    return False


def _scored(key: str, value: Any) -> bool:
    """The sample metrics kept for a method's own samples: numbers, not counts."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not key.startswith("n_")


def _toy(dataset: Dataset) -> ToyDataset:
    """The data set of the toy2d evaluator as what it is: a 2D set with an exact sampler, entropy and box."""
    assert isinstance(dataset, ToyDataset), f"the toy2d evaluator got {type(dataset).__name__}"
    return dataset


def _modes(dataset: Dataset) -> tuple[Tensor, float]:
    """The means and standard deviation of an equal-weight mixture's modes (``has_modes`` data)."""
    modes, std = _toy(dataset).modes, _toy(dataset).mode_std
    assert modes is not None and std is not None, f"{dataset.name} has no modes"
    return modes, std


class Toy2D(Evaluator):
    kinds = ("toy2d",)

    def draw(self, method: Method, n: int, generator: torch.Generator, cache: Path | None = None,
             progress: bool = False) -> Tensor:
        """One call: 2D draws take seconds, so ``cache`` (and a progress bar) is not used."""
        with torch.no_grad():
            return method.sample(n, generator=generator)

    def sample_metrics(self, samples: Tensor, dataset: Dataset, *, n_features: int | None = None,
                       bandwidth: float | None = None) -> dict[str, Any]:
        """Mode metrics (mixtures only), unbiased MMD² and W1 of samples [n, 2] against the test split."""
        samples = samples.detach().to("cpu", torch.float32)
        finite = torch.isfinite(samples).all(dim=1)
        out: dict[str, Any] = {"frac_finite": float(finite.float().mean())}
        if dataset.has_modes:
            out.update(mode_metrics(samples, *_modes(dataset)))
        s = samples[finite]
        n = len(samples)
        test = dataset.test[:n]
        bw = bandwidth if bandwidth is not None else median_bandwidth(dataset.train[:2000])
        out["mmd2"] = mmd2_unbiased(s, test, bw) if len(s) > 1 else float("nan")
        out["w1"] = wasserstein1(s, test) if len(s) > 0 else float("nan")
        return out

    def reference(self, dataset: Dataset, n: int) -> dict[str, Any]:
        """Fresh exact samples, plus the true entropy (the NLL floor)."""
        toy = _toy(dataset)
        x = toy.sample(n, generator=torch.Generator().manual_seed(REFERENCE_SEED)).float()
        out = self.sample_metrics(x, dataset)
        out["nll"] = toy.entropy
        out["kl"] = 0.0
        return out

    def floor(self, dataset: Dataset, n: int) -> dict[str, Any]:
        """Uniform noise on the data set's box, at n samples. Under the VEEGAN/PacGAN protocol one high-quality
        sample captures a mode, so noise captures many where the 3σ discs cover much of the box: on 2500 samples
        67–74 of grid100's 100 modes, all 8 of ring8_lbt's (σ = 0.1), 16–17 of grid25's 25, 2–5 of ring8's 8. A
        model's mode count means something only beside this row.

        The mode metrics are the mean over :data:`FLOOR_DRAWS` draws (fixed seeds; one draw's count varies by a few
        modes), the distances (MMD², exact W1) those of the first draw: they vary by ~1 % between draws, and the
        exact W1 is what costs (seconds at 2500 points)."""
        lo, hi = _toy(dataset).box

        def draw(i: int) -> Tensor:
            g = torch.Generator().manual_seed(FLOOR_SEED + i)
            return lo + (hi - lo) * torch.rand(n, 2, generator=g, dtype=torch.float64)

        first = draw(0)
        out = self.sample_metrics(first, dataset)
        if dataset.has_modes:
            per = [mode_metrics(u, *_modes(dataset)) for u in (first, *(draw(i) for i in range(1, FLOOR_DRAWS)))]
            for k in ("modes", "hq", "mode_kl"):
                vals = [float(v) for m in per if (v := m[k]) is not None]
                out[k] = sum(vals) / len(vals) if vals else None
        return out

    def protocol(self, dataset: Dataset, n: int) -> dict[str, Any]:
        return {"hq_threshold": "3 sigma", "density": "grid quadrature (exact up to grid error)",
                "noise_floor": f"uniform noise on the box {list(_toy(dataset).box)}² at the same sample count (mode "
                               f"metrics: mean of {FLOOR_DRAWS} draws)"}

    def density(self, method: Method, dataset: Dataset) -> dict[str, Any]:
        return density_metrics(method.density_energy, _toy(dataset), device=method.device)

    def tempered(self, fn: Any, dataset: Dataset, device: Any) -> dict[str, Any]:
        from .temperature import tau_report

        return tau_report(fn, _toy(dataset), device=device)


class Images(Evaluator):
    kinds = ("image", "binary")

    def n_draw(self, dataset: Dataset, n: int) -> int:
        from .images import n_eval_samples

        return n_eval_samples(dataset, n)

    def sample_metrics(self, samples: Tensor, dataset: Dataset, *, n_features: int | None = None) -> dict[str, Any]:
        from .images import image_metrics

        return image_metrics(samples, dataset, n_features=n_features)

    def reference(self, dataset: Dataset, n: int) -> dict[str, Any]:
        from .images import real_reference_arrays

        return real_reference_arrays(dataset, n)

    def floor(self, dataset: Dataset, n: int) -> dict[str, Any]:
        """Uniform noise on the value range (coin flips for binary data) (:func:`images.reference_set`), drawn and
        scored as a model's samples are: n compared in features, :meth:`n_draw` (26,000 on stacked sets) counted in
        modes."""
        from .images import image_metrics, reference_set

        return image_metrics(reference_set(dataset, self.n_draw(dataset, n), "noise"), dataset, n_features=n)

    def collapsed(self, dataset: Dataset, n: int) -> dict[str, Any]:
        """The first training image repeated: a collapsed generator (:func:`images.reference_set`), at the counts of
        :meth:`floor`."""
        from .images import image_metrics, reference_set

        return image_metrics(reference_set(dataset, self.n_draw(dataset, n), "collapsed"), dataset, n_features=n)

    def protocol(self, dataset: Dataset, n: int) -> dict[str, Any]:
        if dataset.train_labels is None and not dataset.stacked:
            return Vectors().protocol(dataset, n)
        from .classifier import classifier_name

        out = {"features": f"penultimate layer of the {classifier_name(dataset)} domain classifier (clf_*; not "
                           f"Inception, not FID); real_vs_real compares {min(n, dataset.n_test)} train images with as "
                           f"many test images"}
        if dataset.stacked:
            out["modes"] = "26,000 samples, each channel labelled by the base classifier; KL(q || uniform over 1000)"
        return out


class Vectors(Evaluator):
    kinds = ("vectors",)

    def n_draw(self, dataset: Dataset, n: int) -> int:
        """Every vector metric compares the samples with as many test points, so no more are drawn than the test
        split holds (a 297-point test split is compared with 297 samples, not 2500 of which 2203 go unused)."""
        return self.n_compared(dataset, n)

    def sample_metrics(self, samples: Tensor, dataset: Dataset, *, n_features: int | None = None) -> dict[str, Any]:
        from .images import vector_metrics

        return vector_metrics(samples, dataset)

    def reference(self, dataset: Dataset, n: int) -> dict[str, Any]:
        from .images import real_reference_arrays

        return real_reference_arrays(dataset, n)

    def protocol(self, dataset: Dataset, n: int) -> dict[str, Any]:
        out = {"distances": "MMD^2 (RBF, median bandwidth), sliced W1 (200 directions), exact W1 up to 3000 points"}
        std = dataset.standardisation
        if std is not None:
            out["units"] = (f"the data were standardised, (x − mean) / std per coordinate with the train split's "
                            f"mean and std: samples, distances and NLLs are in those units; an NLL in the original "
                            f"units is the reported one + Σ log std = {std['log_det']:+.4f} nats")
        return out


EVALUATORS: dict[str, Evaluator] = {kind: ev for ev in (Toy2D(), Images(), Vectors()) for kind in ev.kinds}


def evaluator_for(dataset: Dataset) -> Evaluator:
    """The evaluator of the data set's kind."""
    return EVALUATORS[dataset.kind]


# --- the entry points the rest of ebmlab calls --------------------------------------------------------------------
def sample_metrics(samples: Tensor, dataset: Dataset, *, n_features: int | None = None) -> dict[str, Any]:
    """The sample metrics of the data's kind."""
    return evaluator_for(dataset).sample_metrics(samples, dataset, n_features=n_features)


def real_reference(dataset: Dataset | str, n: int) -> dict[str, Any]:
    """The real-data reference of the data's kind at n samples. ``dataset``: a data set or a built-in name."""
    if isinstance(dataset, str):
        from ..data import get_dataset

        dataset = get_dataset(dataset)
    return _real_reference(dataset, n)


@lru_cache(maxsize=32)
def _real_reference(ds: Dataset, n: int) -> dict[str, Any]:
    out = stored_reference(ds, n, "real", lambda: evaluator_for(ds).reference(ds, n))
    assert out is not None  # every kind has a real-data reference
    return out


def noise_floor(dataset: Dataset | str, n: int) -> dict[str, Any]:
    """{"noise_floor": the metrics of noise at n samples} where the data's kind has a floor, else {} (a summary's
    entry beside ``real_vs_real``). ``dataset``: a data set or a built-in name."""
    return _reference_entry(dataset, n, "floor", "noise_floor")


def collapse_reference(dataset: Dataset | str, n: int) -> dict[str, Any]:
    """{"collapse_floor": the metrics of one data point repeated n times} where the data's kind has that reference
    (images), else {} (a summary's entry beside ``real_vs_real`` and ``noise_floor``)."""
    return _reference_entry(dataset, n, "collapsed", "collapse_floor")


def _reference_entry(dataset: Dataset | str, n: int, kind: str, key: str) -> dict[str, Any]:
    if isinstance(dataset, str):
        from ..data import get_dataset

        dataset = get_dataset(dataset)
    ref = _reference_metrics(dataset, n, kind)
    return {key: dict(ref)} if ref is not None else {}


@lru_cache(maxsize=64)
def _reference_metrics(ds: Dataset, n: int, kind: str) -> dict[str, Any] | None:
    """The evaluator's ``floor`` or ``collapsed`` reference of ``ds`` at n (cached: deterministic)."""
    return stored_reference(ds, n, kind, lambda: getattr(evaluator_for(ds), kind)(ds, n))


# --- references kept on disk (module docstring) --------------------------------------------------------------------
REFERENCES_FORMAT = "ebmlab-references-1"


def reference_dir() -> Path:
    """Where references are kept: ``EBMLAB_REFERENCES``, else ``~/.cache/ebmlab/references``."""
    import os

    d = os.environ.get("EBMLAB_REFERENCES")
    return Path(d) if d else Path.home() / ".cache" / "ebmlab" / "references"


@lru_cache(maxsize=1)
def code_sha256() -> str:
    """sha256 of the source of ``ebmlab.metrics`` and ``ebmlab.data``: the code a reference is computed by."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted([*(root / "metrics").glob("*.py"), *(root / "data").glob("*.py")]):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def reference_key(ds: Dataset, n: int, kind: str) -> str | None:
    """The key of a kept reference: the data set (its classifier's name, which for a user's files holds their
    content's sha256), the classifier's weights (its record's sha256), the count, the code and torch's version (its
    kernels' rounding); None where the reference is not kept (no domain classifier: cheap vector metrics, or a
    classifier not yet trained)."""
    if not isinstance(evaluator_for(ds), Images) or (ds.train_labels is None and not ds.stacked):
        return None
    from .classifier import classifier_dir, classifier_name

    name = classifier_name(ds)
    try:
        weights = json.loads((classifier_dir() / f"{name}.json").read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # computing the reference says what is wrong with the classifier
    parts = {"format": REFERENCES_FORMAT, "kind": kind, "n": n, "data": ds.name, "classifier": name,
             "weights": weights, "shape": list(ds.shape), "code": code_sha256(), "torch": torch.__version__}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def stored_reference(ds: Dataset, n: int, kind: str, compute: Callable[[], dict[str, Any] | None]
                     ) -> dict[str, Any] | None:
    """``compute()``'s reference, read from :func:`reference_dir` when kept under :func:`reference_key` (the same
    numbers: JSON keeps a float exactly), else computed and kept. A kept file that does not read, or holds another
    key, is computed again and replaced; a directory that cannot be written (read-only, full) keeps nothing and
    loses nothing: the reference is computed each time."""
    key = reference_key(ds, n, kind)
    if key is None:
        return compute()
    path = reference_dir() / f"{key[:32]}.json"
    try:
        kept = json.loads(path.read_text())
        if isinstance(kept, dict) and kept.get("key") == key and isinstance(kept.get("metrics"), dict):
            return kept["metrics"]
    except (OSError, ValueError):
        pass
    out = compute()
    if out is not None:
        doc = {"format": REFERENCES_FORMAT, "key": key, "kind": kind, "n": n, "data": ds.name, "metrics": out}
        data = json.dumps(doc, indent=1).encode()  # not atomic.write_json: its NaN → null would not read back as NaN
        try:
            atomic_write_bytes(path, lambda fh: fh.write(data))  # makes the directory
        except OSError:
            pass
    return out


def evaluate_method(method: Method, dataset: Dataset, *, n_samples: int = 2500, seed: int = 0,
                    density: bool = True, cache: Path | None = None, progress: bool = False,
                    mode_count: bool = True) -> dict[str, Any]:
    """Evaluate a trained method on a data set with the evaluator of its kind; a flat dict of metrics
    (``cache``, ``progress``, ``mode_count``: :meth:`Evaluator.evaluate`)."""
    return evaluator_for(dataset).evaluate(method, dataset, n_samples=n_samples, seed=seed, density=density,
                                           cache=cache, progress=progress, mode_count=mode_count)


__all__ = ["cached_draw", "code_sha256", "collapse_reference", "evaluate_method", "Evaluator", "evaluator_for",
           "EVALUATORS", "Images", "noise_floor", "real_reference", "reference_dir", "reference_key",
           "REFERENCES_FORMAT", "sample_metrics", "stored_reference", "Toy2D", "Vectors", "weights_digest"]
