"""Lower bounds on the entropy of a generator from the singular values of its Jacobian (BiB bound (i)).

For an injective generator G: R^d → R^D (d ≤ D) and z ~ N(0, std² I_d), the density of p_g on the generated
manifold gives (area formula; Geng et al., "Bounds all around", NeurIPS 2021)

    H(p_g) = H(z) + E_z[½ log det(J_zᵀ J_z)]  ≥  H(z) + d · E_z[log s_min(J_z)],

with J_z = ∂G/∂z ∈ R^{D×d} and s_min its smallest singular value (½ log det JᵀJ = Σ_k log s_k ≥ d log s_min).
All results are in nats.

Three estimators of the Jacobian term (the ``log_volume`` of each example):
- ``logdet_entropy``: the exact ½ slogdet(JᵀJ) from the full Jacobian (small d·D; EBM-BB's ``acc`` mode);
- ``smin_entropy_exact``: d · log s_min, exact (EBM-BB's ``mins`` mode, the toy default): in closed form for d ≤ 2
  (``smallest_singular_value``; capturable in a CUDA graph), else from ``torch.linalg.svdvals`` (NaN, not an
  error, for a non-finite J: ``svdvals_or_nan``);
- ``lobpcg_entropy``: d · log s_min with s_min from matrix-free block-1 LOBPCG on JᵀJ that only uses
  Jacobian–vector products (J w and Jᵀy), for images where J cannot be formed.

Row-wise generators. Every function here evaluates G on the whole batch and reads per-example Jacobians off
batched JVPs/VJPs, or — for MLP generators, the fast route — carries the d tangent columns through G's layers in
the forward pass (``propagate_jacobian``, the construction of stochman's ``nnj`` layers that EBM-BB uses): a
tangent v[b, d] pushed through G(z[b, d]) gives row i as J_{z_i} v_i only when G acts on each row
independently. That holds for MLPs and conv nets, and for BatchNorm in eval mode; a BatchNorm in training mode
couples the rows and would update its running statistics at each of the many forward passes
here (torch.func refuses it with "attempted to call in-place operation"). Put G in eval mode — and use the
same mode for every term of a loss that mixes ∇E(G(z)) with these Jacobian terms (EBM-BB mixes train-mode
samples with eval-mode Jacobians; we do not).

Differences from EBM-BB (``train/train_image.py``, ``compute_entropy_s``/``RaRitz``):
- J·w and Jᵀ·y products come, as in EBM-BB, from one forward of G and double backward through
  ``autograd.grad`` (``_LinearisedG``; on the CPU about twice as fast as ``torch.func.jvp`` for conv
  generators); J v and J p are carried between iterations, so an iteration needs one J·w product, not three;
- the first LOBPCG iteration works in span{v, r} (no random p), later ones in span{v, r, p}; the basis is
  orthonormalised by Gram–Schmidt and the Ritz vector comes from a triangular factor of J·Q and its adjugate
  in float64 (``_smallest_ritz_vector``), rather than by SVDs of the stacked columns and of J·Q (same span and
  Ritz vector; on a GPU the batched SVDs are thousands of tiny kernels, and LAPACK's status checks synchronise
  with the host);
- rows whose update is not finite keep their previous v (the original copies only the finite rows as well,
  but then prints and returns ``None`` for the whole batch if any final μ is NaN); such rows are reported in
  ``valid`` and left out of the batch mean rather than poisoning it;
- an optional warm start ``v0`` (e.g. the previous step's v) replaces the random start.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor
from torch.func import jvp as _jvp
from torch.func import vjp as _vjp
from torch.func import vmap

from ..nets.jacobian import propagate_jacobian, propagates
from ..rng import Noise, randn
from ..types import GeneratorFn

# torch's stubs type these by their has_aux form (three values); here they return (output, tangent or pullback)
jvp: Any = _jvp
vjp: Any = _vjp

LOG_2PI_E = math.log(2 * math.pi * math.e)


class EntropyBound(NamedTuple):
    """A generator-entropy estimate.

    entropy: scalar, nats — H(z) + mean over valid examples of ``log_volume``.
    log_volume: [b], nats — per-example Jacobian term (½ log det JᵀJ or d · log s_min).
    valid: [b] bool — examples that entered the mean (all True for the exact estimators).
    v: [b, d] or None — LOBPCG's final right singular vector estimate (detached), for warm starts.
    x: [b, ...] or None — G(z) with its graph, when the estimator computed it (the exact ones do), so a loss
    needs no second forward.
    """

    entropy: Tensor
    log_volume: Tensor
    valid: Tensor
    v: Tensor | None = None
    x: Tensor | None = None


class SminEstimate(NamedTuple):
    """s_min: [b], the Rayleigh quotient ‖J v‖/‖v‖ with its graph (to G's parameters and to z);
    v: [b, d] unit vectors, detached; valid: [b] bool, False where s_min is not finite and positive (those rows
    hold NaN and carry no graph)."""

    s_min: Tensor
    v: Tensor
    valid: Tensor


def gaussian_entropy(d: int, std: float = 1.0) -> float:
    """Differential entropy of N(0, std² I_d) in nats: (d/2) log(2πe) + d log std."""
    if d < 1 or std <= 0:
        raise ValueError(f"gaussian_entropy needs d ≥ 1 and std > 0, got d={d}, std={std}.")
    return 0.5 * d * LOG_2PI_E + d * math.log(std)


def _check_latent(z: Tensor) -> None:
    if z.dim() != 2:
        raise ValueError(f"Expected latents z of shape [b, d], got shape {tuple(z.shape)}; flatten the latent "
                         "code to one vector per example.")


JacMode = Literal["auto", "prop", "fwd", "rev"]


def resolve_jac_mode(mode: JacMode, d: int, n_out: int, G: GeneratorFn | None = None) -> Literal["prop", "fwd", "rev"]:
    """``auto`` → ``prop`` when G is a chain of layers :func:`propagate_jacobian` knows (the MLP generators), else
    ``rev`` when the generator has no more outputs per example than latent dimensions (D ≤ d: reverse mode is the
    fast one of torch.func's on CPU), else ``fwd`` (images: d JVPs instead of D vmapped VJPs, whose memory grows
    with D — 784 pulled-back rows of a conv generator exhaust 24 GB)."""
    if mode not in ("auto", "prop", "fwd", "rev"):
        raise ValueError(f"jac_mode must be 'auto', 'prop', 'fwd' or 'rev', got {mode!r}.")
    if mode != "auto":
        return mode
    if G is not None and propagates(G):
        return "prop"
    return "rev" if n_out <= d else "fwd"


def jacobian_and_output(G: GeneratorFn, z: Tensor, *, mode: JacMode = "auto") -> tuple[Tensor, Tensor]:
    """(G(z), per-example Jacobians [b, D, d]) of a row-wise generator, both differentiable in G's parameters and
    in z. ``mode="prop"`` carries the tangents through the layers (:func:`propagate_jacobian`; MLP chains);
    ``"fwd"`` pushes the d basis tangents e_k through G with d JVPs — cheap when d ≤ D; ``"rev"`` pulls the D
    basis cotangents back with vmapped VJPs (in chunks of at most 4096 rows, so memory stays bounded) — cheap when
    D < d, and on CPU also for d = D (torch's forward-mode rules for small MLPs run 5–20× slower than reverse mode
    there); ``"auto"`` picks by :func:`resolve_jac_mode`."""
    _check_latent(z)
    b, d = z.shape
    if mode == "auto" and propagates(G):
        mode = "prop"
    if mode == "prop":
        return propagate_jacobian(G, z)
    out: Any = None
    pullback: Any = None
    if mode != "fwd":
        out, pullback = vjp(G, z)
    if mode == "auto":
        mode = resolve_jac_mode(mode, d, out[0].numel())
    if mode == "fwd":
        eye, out, cols = torch.eye(d, dtype=z.dtype, device=z.device), None, []
        for k in range(d):  # forward AD refuses primals/tangents that share memory (e.g. from ``expand``)
            o, t = jvp(G, (z.contiguous(),), (eye[k].expand(b, d).contiguous(),))
            out = o if out is None else out
            cols.append(t.reshape(b, -1))
        return out, torch.stack(cols, dim=-1)
    if mode == "rev":
        n_out = out[0].numel()
        eye = torch.eye(n_out, dtype=out.dtype, device=out.device)
        cot = eye.reshape(n_out, 1, *out.shape[1:]).expand(n_out, *out.shape)
        rows = vmap(lambda u: pullback(u)[0], chunk_size=max(1, 4096 // b))(cot)  # [D, b, d]
        return out, rows.permute(1, 0, 2)
    raise ValueError(f"mode must be 'auto', 'prop', 'fwd' or 'rev', got {mode!r}.")


def batch_jacobian(G: GeneratorFn, z: Tensor, *, mode: JacMode = "auto") -> Tensor:
    """Per-example Jacobians [b, D, d] of a row-wise generator G: z[b, d] → x[b, ...], differentiable in G's
    parameters and in z (``jacobian_and_output`` without the output)."""
    return jacobian_and_output(G, z, mode=mode)[1]


def _finalise(z: Tensor, log_volume: Tensor, valid: Tensor, z_std: float, v: Tensor | None = None,
              x: Tensor | None = None) -> EntropyBound:
    h_z = gaussian_entropy(z.shape[1], z_std)
    # the mean over the valid samples (NaN when none is), written without reading `valid` on the host
    mean_term = torch.where(valid, log_volume, 0.0).sum() / valid.sum()
    return EntropyBound(entropy=h_z + mean_term, log_volume=log_volume, valid=valid, v=v, x=x)


def logdet_entropy(G: GeneratorFn, z: Tensor, *, z_std: float = 1.0,
                   jac_mode: JacMode = "auto") -> EntropyBound:
    """Exact manifold entropy estimate H(z) + mean ½ slogdet(J_zᵀ J_z), nats.

    G: row-wise generator z[b, d] → x[b, ...]; z: [b, d] samples of N(0, z_std² I). Needs d ≤ D.
    Forms the b Jacobians (``jacobian_and_output``: tangent propagation, d JVPs or D VJPs), so it is meant
    for small d·D (2D toys). ``log_volume`` is −inf where JᵀJ is singular.
    """
    _check_latent(z)
    x, J = jacobian_and_output(G, z, mode=jac_mode)
    if J.shape[1] < J.shape[2]:
        raise ValueError(f"The Jacobian bound needs d ≤ D (an injective generator); got d={J.shape[2]} latent "
                         f"dimensions and D={J.shape[1]} outputs.")
    sign, logabsdet = torch.linalg.slogdet(J.transpose(1, 2) @ J)
    log_volume = torch.where(sign > 0, 0.5 * logabsdet, torch.full_like(logabsdet, -math.inf))
    return _finalise(z, log_volume, torch.ones_like(sign, dtype=torch.bool), z_std, x=x)


CLOSED_FORM_MAX_D = 64  # the closed form's 2×2 minors take b·D² memory: the 2D toys and small data, not images


def smin_entropy_exact(G: GeneratorFn, z: Tensor, *, z_std: float = 1.0,
                       jac_mode: JacMode = "auto") -> EntropyBound:
    """Lower bound H(z) + d · mean log s_min(J_z), nats, with s_min exact (``smallest_singular_value``).

    G: row-wise generator; z: [b, d]; ``jac_mode`` as in ``jacobian_and_output``. Differentiable in G's parameters
    wherever s_min > 0 (at repeated singular values, where s_min has no derivative, the gradient is a finite choice).
    """
    _check_latent(z)
    x, J = jacobian_and_output(G, z, mode=jac_mode)
    d = z.shape[1]
    if J.shape[1] < d:
        raise ValueError(f"The Jacobian bound needs d ≤ D; got d={d}, D={J.shape[1]}.")
    s_min = smallest_singular_value(J)
    log_volume = d * torch.log(s_min)
    return _finalise(z, log_volume, torch.ones_like(s_min, dtype=torch.bool), z_std, x=x)


def svdvals_or_nan(J: Tensor) -> Tensor:
    """Singular values of each J[i] ([b, D, d]), descending, NaN for a J[i] with a non-finite entry.

    LAPACK refuses non-finite input (on the CPU ``svdvals`` raises ``LinAlgError`` for the whole batch): a
    generator that diverged mid-way between two logged steps must reach the trainer as non-finite metrics, its
    divergence check and message, not as a traceback. Sync-free (``torch.where``, no host-side test), so a compiled
    or captured step keeps it; the rows' gradient to a non-finite J[i] is zero."""
    ok = torch.isfinite(J).flatten(1).all(1)
    s = torch.linalg.svdvals(torch.where(ok[:, None, None], J, torch.zeros((), dtype=J.dtype, device=J.device)))
    return torch.where(ok[:, None], s, torch.full((), math.nan, dtype=s.dtype, device=s.device))


def smallest_singular_value(J: Tensor) -> Tensor:
    """s_min of each J[i] ([b, D, d], d ≤ D): in closed form for d ≤ 2 on at most ``CLOSED_FORM_MAX_D`` outputs, else
    ``torch.linalg.svdvals``.

    The closed form has no host synchronisation, so a CUDA graph can capture it (cuSOLVER's SVD checks its status on
    the host, which a capture refuses: seen on an H100). d = 1: the column's norm. d = 2: with JᵀJ = [[a, c], [c, e]],
    λ_max = (a+e)/2 + √(((a−e)/2)² + c²) and λ_min = det(JᵀJ)/λ_max, det(JᵀJ) by Cauchy–Binet as the sum of the
    squared 2×2 minors (no cancellation of a·e − c² for a nearly singular J). At equal singular values the square
    root's gradient (0/0) is taken as 0, the derivative of λ_max along the diagonal, where svdvals gives its own
    finite choice.
    """
    d, D = J.shape[2], J.shape[1]
    if d > 2 or D > CLOSED_FORM_MAX_D:
        s: Tensor = svdvals_or_nan(J)[:, -1]
        return s
    if d == 1:
        norm: Tensor = J[:, :, 0].norm(dim=1)
        return norm
    u, w = J[:, :, 0], J[:, :, 1]
    a, e, c = (u * u).sum(1), (w * w).sum(1), (u * w).sum(1)
    minors = u[:, :, None] * w[:, None, :] - w[:, :, None] * u[:, None, :]  # [b, D, D], each minor twice
    det = 0.5 * minors.square().sum((1, 2))
    r2 = (0.5 * (a - e)).square() + c.square()
    pos = r2 > 0
    r = torch.where(pos, torch.where(pos, r2, torch.ones_like(r2)).sqrt(), torch.zeros_like(r2))
    lam_max = 0.5 * (a + e) + r
    ok = lam_max > 0
    lam_min = torch.where(ok, det / torch.where(ok, lam_max, torch.ones_like(lam_max)), torch.zeros_like(det))
    return lam_min.clamp_min(0).sqrt()


def _finite_rows(*ts: Tensor) -> Tensor:
    ok = torch.ones(ts[0].shape[0], dtype=torch.bool, device=ts[0].device)
    for t in ts:
        ok &= torch.isfinite(t.reshape(t.shape[0], -1)).all(dim=1)
    return ok


class _LinearisedG:
    """J_z w and J_zᵀ y for every row of z from one forward pass of G, by double backward (no forward-mode AD).

    With x = G(z) and a zero cotangent u that requires grad, g(u) = J_zᵀ u is built once with ``create_graph``;
    it is linear in u, so the reverse-mode derivative of ⟨g(u), w⟩ in u is J_z w. Each product then costs a
    pass over the backward graph — on the CPU about half the cost of a ``torch.func.jvp`` of a conv generator,
    which re-runs G with dual tensors (``benchmarks/results/bib_speed.md``). Products are detached; ``x`` and
    ``z`` keep the forward graph for the final, graph-carrying Rayleigh quotient.
    """

    def __init__(self, G: GeneratorFn, z: Tensor):
        self.b = z.shape[0]
        with torch.enable_grad():
            self.z = z if z.requires_grad else z.detach().requires_grad_(True)
            self.x = G(self.z).reshape(self.b, -1)
            self.u = torch.zeros_like(self.x, requires_grad=True)
            self.g = torch.autograd.grad(self.x, self.z, self.u, create_graph=True)[0]

    def jvp(self, w: Tensor) -> Tensor:
        with torch.enable_grad():
            return torch.autograd.grad(self.g, self.u, w, retain_graph=True)[0].detach()

    def vjp(self, y: Tensor) -> Tensor:
        with torch.enable_grad():
            return torch.autograd.grad(self.x, self.z, y, retain_graph=True)[0].detach()

    def vjp_graph(self, u: Tensor) -> Tensor:
        """Jᵀ u with its graph (to G's parameters and to z)."""
        with torch.enable_grad():
            return torch.autograd.grad(self.x, self.z, u, create_graph=True)[0]


def _linearise(G: GeneratorFn, z: Tensor, sync_free: bool) -> Any:
    """The products' form: double backward eagerly (:class:`_LinearisedG`), ``torch.func`` while a compiled training
    step is traced (:class:`_FuncLinearisedG`; sync-free only: a compiled step makes no host reads)."""
    if not torch.compiler.is_compiling():
        return _LinearisedG(G, z)
    if not sync_free:
        raise RuntimeError("a compiled step runs LOBPCG sync-free (no host reads): pass sync_free=True")
    return _FuncLinearisedG(G, z)


class _FuncLinearisedG:
    """:class:`_LinearisedG`'s products by ``torch.func``, the form a compiled training step traces (``torch.func``
    refuses ``autograd.grad`` inside its transforms): Jᵀ y by one ``vjp`` of G, J w by the ``vjp`` of that linear
    map (reverse over reverse, as the eager form; forward mode through an eval-mode BatchNorm fails under dynamo in
    torch 2.13); :meth:`vjp_graph` is the graph-carrying Jᵀ u of the final Rayleigh quotient."""

    def __init__(self, G: GeneratorFn, z: Tensor):
        self.b = z.shape[0]
        self.z = z.detach()
        first = torch.func.vjp(lambda zz: G(zz).reshape(self.b, -1), self.z)
        self.x: Tensor = first[0]
        self._vjp: Any = first[1]
        self._jvp: Any = torch.func.vjp(lambda u: self._vjp(u)[0], torch.zeros_like(self.x))[1]

    def jvp(self, w: Tensor) -> Tensor:
        out: Tensor = self._jvp(w)[0]
        return out.detach()

    def vjp(self, y: Tensor) -> Tensor:
        out: Tensor = self._vjp(y)[0]
        return out.detach()

    def vjp_graph(self, u: Tensor) -> Tensor:
        out: Tensor = self._vjp(u)[0]
        return out


def _orthonormalise(S: Tensor, JS: Tensor, tol: float) -> tuple[Tensor, Tensor, Tensor]:
    """Q, J Q and the kept-column mask of the trial columns S [b, d, k] (k ≤ 3) with their images JS [b, D, k].

    Classical Gram–Schmidt, twice (CGS2, orthogonal to working precision), on the columns in order; every step
    is applied to JS too, so J Q follows from J S by the same linear combinations (J is linear) without a
    triangular solve. A column whose remainder is below ``tol`` times its own norm depends on the earlier ones
    (always the third column when d = 2; r when v is already a singular vector) and is dropped: its Q and J Q
    columns are zero. Only elementwise operations and reductions: no factorisation, no host synchronisation."""
    qs: list[Tensor] = []
    jqs: list[Tensor] = []
    keep: list[Tensor] = []
    for j in range(S.shape[-1]):
        s, js = S[..., j], JS[..., j]
        n0 = s.norm(dim=1)
        for _ in range(2):
            for q, jq in zip(qs, jqs):
                h = (q * s).sum(dim=1, keepdim=True)
                s, js = s - h * q, js - h * jq
        n = s.norm(dim=1)
        ok = n > tol * n0
        inv = torch.where(ok, 1 / n.clamp_min(torch.finfo(n.dtype).tiny), torch.zeros_like(n))[:, None]
        qs.append(s * inv)
        jqs.append(js * inv)
        keep.append(ok)
    return torch.stack(qs, dim=-1), torch.stack(jqs, dim=-1), torch.stack(keep, dim=-1)


def _triangular_factor(A: Tensor) -> Tensor:
    """R [b, k, k] (upper triangular, non-negative diagonal) of A = Q_A R for A [b, D, k], by classical
    Gram–Schmidt twice on the columns as batched products. Column scaling passes through it exactly (a scaled
    column scales R's column), which is what keeps the relative accuracy of a graded A. A zero column gives a zero
    column of R and a zero q, so later columns get no component along it."""
    b, _, k = A.shape
    tiny = torch.finfo(A.dtype).tiny
    qs: list[Tensor] = []
    cols: list[Tensor] = []
    for j in range(k):
        a = A[..., j]
        h = A.new_zeros(b, j)
        if j:
            Qp = torch.stack(qs, dim=-1)  # [b, D, j]
            for _ in range(2):
                hh = (a[:, None, :] @ Qp).squeeze(1)
                a = a - (Qp @ hh[..., None]).squeeze(-1)
                h = h + hh
        n = a.norm(dim=1, keepdim=True)
        qs.append(a / n.clamp_min(tiny))
        cols.append(torch.cat([h, n, A.new_zeros(b, k - j - 1)], dim=1))
    return torch.stack(cols, dim=2)


def _upper_adjugate(R: Tensor) -> Tensor:
    """adj(R) = det(R) R⁻¹ of upper-triangular R [b, k, k], k ≤ 3, in closed form (products of R's entries: no
    division, finite when R is singular)."""
    k = R.shape[-1]
    if k == 1:
        return torch.ones_like(R)
    zero = torch.zeros_like(R[:, 0, 0])
    if k == 2:
        a, b, d = R[:, 0, 0], R[:, 0, 1], R[:, 1, 1]
        return torch.stack([torch.stack([d, -b], 1), torch.stack([zero, a], 1)], 1)
    a, b, c, d, e, f = R[:, 0, 0], R[:, 0, 1], R[:, 0, 2], R[:, 1, 1], R[:, 1, 2], R[:, 2, 2]
    return torch.stack([torch.stack([d * f, -b * f, b * e - c * d], 1),
                        torch.stack([zero, a * f, -a * e], 1),
                        torch.stack([zero, zero, a * d], 1)], 1)


# squarings of adj(R) adj(R)ᵀ in _smallest_ritz_vector (k = 3): whatever the gap, the Ritz value ‖J Q c‖ exceeds
# σ_min by a relative 1.5 / (e · 2^(s+2)) at most (1.3e-7 at 20: float32's precision), and by nothing at float64
# precision once σ_min / σ_mid < 0.999 (tests/bounds/test_entropy.py)
RITZ_SQUARINGS = 20


def _smallest_ritz_vector(JQ: Tensor, keep: Tensor, squarings: int = RITZ_SQUARINGS) -> Tensor:
    """Coefficients c [b, k] (unit) of the Ritz vector Q c with the smallest ‖J Q c‖, over the kept columns.

    The right singular vector of J Q [b, D, k] (k ≤ 3) for its smallest singular value, in float64: J Q = Q' R
    (``_triangular_factor``), and with R = U Σ Vᵀ, adj(R) = det(R) V Σ⁻¹ Uᵀ, so the wanted vector is the *dominant*
    eigenvector of adj(R) adj(R)ᵀ (eigenvalues ∝ 1/σᵢ²), found by repeated squaring (``squarings`` batched 3×3
    products; the column of the largest diagonal entry then lies along it), or in closed form for k = 2 (a LOBPCG's
    first iteration). Turning the smallest singular value into the largest is what keeps the accuracy: the dominant
    eigenvector of a matrix is determined to its precision relative to the largest eigenvalue, so nothing is lost to
    cond(J Q)² as in an eigen-solve of (J Q)ᵀ(J Q); the factor and the adjugate's products carry column scaling
    exactly, so graded columns keep their relative accuracy too (the tests compare with LAPACK's SVD to 10⁻¹² at
    column scales 10⁻⁸…10³). Convergence goes as (σ_min/σ_mid)^(2^(s+1)); near-equal values leave c mixed inside
    their near-degenerate pair, where ‖J Q c‖ hardly depends on the mix (``RITZ_SQUARINGS``; k = 3 only). A dropped
    column (zero in J Q and R) gets a diagonal entry larger than R's norm, which decouples it exactly (R stays block
    diagonal) and gives it weight 0. An exactly rank-deficient J Q (R of rank ≤ k − 2 has a zero adjugate) is lifted
    by a diagonal shift at rounding level, so c still finds its null space; c is e₁ (keep v) only where J Q is zero
    or nothing was kept. Only batched small products and elementwise operations: no LAPACK call, no status read on
    the host; about 170 operations for k = 3 and 70 for k = 2 (each one kernel on a GPU; the one-sided Jacobi
    rotations this replaced took 570 and 200, a batched SVD thousands of kernels)."""
    A = JQ.double()
    b, _, k = A.shape
    tiny = torch.finfo(A.dtype).tiny
    R = _triangular_factor(A)
    cn = R.norm(dim=1)  # column norms [b, k]
    fro = cn.norm(dim=1, keepdim=True)
    eps = torch.finfo(A.dtype).eps
    # kept columns: a shift of the diagonal by eps of the column's norm, the size of the factor's own rounding
    # (a column-relative change, so graded columns keep their accuracy), and by eps² ‖R‖ more, so that an exact
    # rank deficiency (parallel or zero columns of J Q, where J has a null space) leaves a non-zero adjugate
    # whose dominant vector lies in R's null space; dropped columns: larger than ‖R‖ (docstring)
    R = R + torch.diag_embed(torch.where(keep, eps * cn + eps * eps * fro, 2 * fro + 1))
    adj = _upper_adjugate(R)
    adj = adj / adj.abs().amax(dim=(1, 2), keepdim=True).clamp_min(tiny)
    M = adj @ adj.transpose(1, 2)
    if k == 2:
        # the dominant eigenvector of a symmetric 2×2 [[p, q], [q, r]] in closed form: (λ₁ − r, q) or (q, λ₁ − p),
        # whichever has no cancellation (λ₁ − r = (p − r)/2 + h ≥ 0 when p ≥ r); exact at any gap
        p_, q_, r_ = M[:, 0, 0], M[:, 0, 1], M[:, 1, 1]
        half = (p_ - r_) / 2
        h = torch.hypot(half, q_)
        first = half >= 0
        c = torch.stack([torch.where(first, half + h, q_), torch.where(first, q_, h - half)], dim=1)
    else:
        for _ in range(squarings):
            # M is symmetric positive semi-definite, so its largest entry is a diagonal one ≥ 0; a zero M (J Q = 0)
            # turns into NaN here and into the e₁ fallback below
            M = M @ M
            M = M / M.amax(dim=(1, 2), keepdim=True)
        i = torch.diagonal(M, dim1=1, dim2=2).argmax(dim=1)
        c = torch.gather(M, 2, i[:, None, None].expand(-1, k, 1)).squeeze(2)
    c = torch.where(keep, c, torch.zeros_like(c))
    n = c.norm(dim=1, keepdim=True)
    e1 = torch.zeros_like(c)
    e1[:, 0] = 1
    c = torch.where(n > 0, c / n.clamp_min(tiny), e1)
    return c.to(JQ.dtype)


# from this LOBPCG iteration on (0-based), J p is recomputed rather than carried (see lobpcg_smin)
EXACT_JP_FROM = 2


def lobpcg_smin(  # noqa: PLR0915 - Knyazev's iteration in one piece, as in the paper, beside its cited steps
        G: GeneratorFn, z: Tensor, *, n_iter: int = 2, generator: Noise | None = None,
        v0: Tensor | None = None, sync_free: bool = False) -> SminEstimate:
    """Smallest singular value of each J_z by matrix-free block-1 LOBPCG on JᵀJ (Knyazev 2001).

    G: row-wise generator z[b, d] → x[b, ...] (see the module docstring on BatchNorm; G needs double-backward
    support, as every standard layer has); z: [b, d].
    n_iter: LOBPCG iterations (2 per training step in EBM-BB). generator: draws the random start when v0 is None.
    v0: [b, d] optional warm start (e.g. the previous call's ``v``).

    Iteration (all rows at once, detached): with unit v and μ = ‖J v‖, the residual of the eigenproblem
    JᵀJ v = μ² v is r = Jᵀ(J v) − μ² v; the trial space S = [v, r, p] (p the previous search direction) is
    orthonormalised by Gram–Schmidt (``_orthonormalise``; a column within √eps of the span of the earlier ones
    is dropped — always one when d ≤ 2), and Rayleigh–Ritz on J·Q (``_smallest_ritz_vector``: a triangular
    factor and its adjugate in float64) gives the coefficients c of its smallest singular value;
    v ← Q c, p ← Q[:, 1:] c[1:]. J v and J p are carried between iterations and, J being linear, J Q follows
    from J S by the same combinations as Q from S, so an iteration needs one J·w product (J r) and one Jᵀ·y
    product. Rows whose update is not finite keep their previous v and restart p. Carrying J p is exact in exact
    arithmetic, but once v has converged p is small, Gram–Schmidt divides by its small remainder, and the
    rounding of the carried J p grows tenfold an iteration until Rayleigh–Ritz is steered off the singular vector
    (measured: errors of 10⁻¹ after 30 iterations); so from the third iteration on J p is recomputed (one more
    J·w product an iteration) — a training step's 2 iterations carry it as before. The iteration makes no host
    synchronisation (no data-dependent branch, no LAPACK status to read).

    All products come from one forward pass of G and double backward (``_LinearisedG``). Returns
    s_min = ‖J v‖/‖v‖ for the final (detached) v with the graph to G's parameters and to z (as ⟨v, Jᵀu⟩/‖u‖
    with u = J v held fixed: the same value and gradient), so that
    d · log s_min is differentiable: at an exact singular vector the Rayleigh quotient is stationary in v,
    so its gradient is that of the true s_min (Hellmann–Feynman). Always s_min ≥ the true one (a Rayleigh
    quotient), so with few iterations d · log s_min over-estimates d · log s_min(J). Rows that are not
    finite are left out of the graph: if any, G is re-run on the valid rows for the graph-carrying term
    (a NaN row inside the graph would turn every parameter gradient into NaN: 0 · NaN = NaN). With
    ``sync_free`` the invalid rows are instead masked (u = 0, v = 0) inside the one graph, which makes the
    whole call free of host synchronisation (a training step, a CUDA graph): then a row whose G(z) itself is
    not finite would poison the parameter gradient — but such a G(z) already makes a training loss non-finite.
    Cost: one forward and two backwards of G with graph, n_iter + 1 (+ n_iter − 2 beyond two iterations) J·w
    and n_iter Jᵀ·y products.
    """
    _check_latent(z)
    b, d = z.shape
    if n_iter < 0:
        raise ValueError(f"n_iter must be ≥ 0, got {n_iter}.")
    if v0 is None:
        if generator is None:
            raise ValueError("lobpcg_smin needs its random start from an explicit generator: pass "
                             "generator=torch.Generator().manual_seed(...) or a warm start v0.")
        v = randn(b, d, generator=generator, dtype=z.dtype, device=z.device)
    else:
        if v0.shape != z.shape:
            raise ValueError(f"v0 must have the shape of z {tuple(z.shape)}, got {tuple(v0.shape)}.")
        v = v0.detach().to(dtype=z.dtype, device=z.device).clone()
    v = v / v.norm(dim=1, keepdim=True)
    want_graph = torch.is_grad_enabled()
    lin = _linearise(G, z, sync_free)

    with torch.no_grad():
        Jv = lin.jvp(v)
        p: Tensor | None = None
        Jp: Tensor | None = None
        tol = math.sqrt(torch.finfo(z.dtype).eps)
        for it in range(n_iter):
            if it >= EXACT_JP_FROM and p is not None:
                Jp = lin.jvp(p)  # carried J p drifts from p once v has converged (docstring)
            mu2 = (Jv * Jv).sum(dim=1, keepdim=True)
            r = lin.vjp(Jv) - mu2 * v
            Jr = lin.jvp(r)  # the one new J·w product of the iteration
            cols, jcols = ([v, r], [Jv, Jr]) if p is None or Jp is None else ([v, r, p], [Jv, Jr, Jp])
            S, JS = torch.stack(cols, dim=-1), torch.stack(jcols, dim=-1)  # [b, d, k], [b, D, k]
            ok = _finite_rows(S) & _finite_rows(JS)
            # LAPACK may refuse non-finite input: zero those rows and leave them out of the update.
            S = torch.where(ok[:, None, None], S, torch.zeros_like(S))
            JS = torch.where(ok[:, None, None], JS, torch.zeros_like(JS))
            Q, JQ, keep = _orthonormalise(S, JS, tol)
            keep &= ok[:, None]
            c = _smallest_ritz_vector(JQ, keep)  # [b, k]
            v_new = (Q @ c.unsqueeze(-1)).squeeze(-1)
            p_new = (Q[..., 1:] @ c[:, 1:].unsqueeze(-1)).squeeze(-1)
            Jv_new = (JQ @ c.unsqueeze(-1)).squeeze(-1)
            Jp_new = (JQ[..., 1:] @ c[:, 1:].unsqueeze(-1)).squeeze(-1)
            norm = v_new.norm(dim=1, keepdim=True)
            ok &= _finite_rows(v_new, p_new, Jv_new, Jp_new) & (norm.squeeze(1) > 0)
            okc = ok[:, None]
            inv = 1 / norm.clamp_min(torch.finfo(z.dtype).tiny)
            v = torch.where(okc, v_new * inv, v)
            Jv = torch.where(okc, Jv_new * inv, Jv)
            p = torch.where(okc, p_new, torch.zeros_like(p_new))
            Jp = torch.where(okc, Jp_new, torch.zeros_like(Jp_new))
        valid = _finite_rows(Jv) & (Jv.norm(dim=1) > 0)
    v = v.detach()
    if sync_free:
        tiny = torch.finfo(z.dtype).tiny
        u = torch.where(valid[:, None], Jv, torch.zeros_like(Jv))
        vv = torch.where(valid[:, None], v, torch.zeros_like(v))
        if not want_graph:
            s_all = u.norm(dim=1) / vv.norm(dim=1).clamp_min(tiny)
        else:
            with torch.enable_grad():
                Jt_u = lin.vjp_graph(u)
                s_all = (vv * Jt_u).sum(dim=1) / (u.norm(dim=1) * vv.norm(dim=1)).clamp_min(tiny)
        s_min = torch.where(valid, s_all, torch.full_like(s_all, math.nan))
        valid = valid & torch.isfinite(s_min.detach()) & (s_min.detach() > 0)
        return SminEstimate(s_min=s_min, v=v, valid=valid)
    s_min = torch.full((b,), math.nan, dtype=z.dtype, device=z.device)
    if valid.any():
        # ‖J_θ v‖ with its graph, from u = J v (detached, carried above): ∂‖J_θ v‖ = uᵀ ∂(J_θ v)/‖u‖ and
        # uᵀ J_θ v = ⟨v, J_θᵀ u⟩, so one backward of G with create_graph at cotangent u gives the exact value
        # and gradient (to G's parameters and to z) — no graph-carrying J·v product, no third-order graph.
        # A non-finite row inside the graph would turn every parameter gradient into NaN (0 · NaN = NaN),
        # so with any such row G is re-run on the valid rows only.
        idx = valid.nonzero().squeeze(1)
        u, vv = Jv[idx], v[idx]
        if not want_graph:
            s_valid = u.norm(dim=1) / vv.norm(dim=1)
        else:
            with torch.enable_grad():
                if valid.all():
                    zg, xg = lin.z, lin.x
                else:
                    zg = z[idx] if z.requires_grad else z[idx].detach().requires_grad_(True)
                    xg = G(zg).reshape(len(idx), -1)
                Jt_u = torch.autograd.grad(xg, zg, u, create_graph=True)[0]
                s_valid = (vv * Jt_u).sum(dim=1) / (u.norm(dim=1) * vv.norm(dim=1))
        s_min = s_valid if valid.all() else s_min.index_put((idx,), s_valid)
        valid = valid & torch.isfinite(s_min.detach()) & (s_min.detach() > 0)
    return SminEstimate(s_min=s_min, v=v, valid=valid)


def lobpcg_entropy(G: GeneratorFn, z: Tensor, *, n_iter: int = 2, generator: Noise | None = None,
                   v0: Tensor | None = None, z_std: float = 1.0, sync_free: bool = False) -> EntropyBound:
    """Lower-bound estimate H(z) + d · mean log s_min with s_min from ``lobpcg_smin`` (images), nats.

    G: row-wise generator; z: [b, d]. Examples whose s_min is not finite and positive are left out of the
    mean and flagged in ``valid``; ``v`` is returned for a warm start at the next call. ``sync_free``: see
    ``lobpcg_smin`` (a training step's setting).
    """
    est = lobpcg_smin(G, z, n_iter=n_iter, generator=generator, v0=v0, sync_free=sync_free)
    # log of 1 on invalid rows keeps NaN/−inf out of the backward pass; those rows are excluded anyway.
    safe = torch.where(est.valid, est.s_min, torch.ones_like(est.s_min))
    log_volume = torch.where(est.valid, z.shape[1] * torch.log(safe), torch.full_like(safe, math.nan))
    return _finalise(z, log_volume, est.valid, z_std, v=est.v)
