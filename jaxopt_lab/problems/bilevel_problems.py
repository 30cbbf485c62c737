"""Bilevel test problems: closed-form quadratics, a constrained toy, ML tasks."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.bilevel.problem import BilevelProblem


class BilevelInstance(NamedTuple):
    """A bilevel problem with its data and starting point.

    Attributes:
      problem: the :class:`jaxopt_lab.bilevel.BilevelProblem`.
      data: the data passed to its objectives.
      x0, y0: starting outer and inner variables.
      x_star, y_star: the solution where known (else ``None``).
      extra: problem-specific arrays (closed forms, test sets, masks).
    """

    problem: BilevelProblem
    data: Any
    x0: Any
    y0: Any
    x_star: Any = None
    y_star: Any = None
    extra: Any = None


def _dtype():
    return jnp.zeros(()).dtype


# --------------------------------------------------------------------- quadratic


def _quad_outer(x, y, data):
    r = y - data["b"]
    return 0.5 * jnp.vdot(r, r) + 0.5 * data["mu"] * jnp.vdot(x, x) + jnp.vdot(data["e"], x)


def _quad_inner(x, y, data):
    return 0.5 * y @ (data["A"] @ y) - y @ (data["B"] @ x)


QUADRATIC_PROBLEM = BilevelProblem(_quad_outer, _quad_inner)


def quadratic_hypergradient(x, data):
    """Closed-form ``grad phi(x) = mu x + e + (A^{-1} B)^T (A^{-1} B x - b)``.

    ``phi(x) = F(x, y*(x))`` is the hyper-objective of :func:`quadratic_bilevel`.

    Args:
      x: outer variable, shape ``(dim_x,)``.
      data: the instance's data dict with keys ``"A"``, ``"B"``, ``"b"``, ``"e"``, ``"mu"``.

    Returns:
      The hypergradient at ``x``, shape ``(dim_x,)``.
    """
    J = jnp.linalg.solve(data["A"], data["B"])
    return data["mu"] * x + data["e"] + J.T @ (J @ x - data["b"])


def quadratic_bilevel(dim_x: int = 5, dim_y: int = 8, cond: float = 10.0, mu: float = 0.1,
                      seed: int = 0) -> BilevelInstance:
    """``F = ||y - b||^2/2 + mu ||x||^2/2 + <e, x>``, ``G = y'Ay/2 - y'Bx``.

    ``y*(x) = A^{-1} B x`` and the hypergradient is :func:`quadratic_hypergradient`;
    the outer minimizer solves ``(mu I + J'J) x = J'b - e`` with ``J = A^{-1} B``.

    Args:
      dim_x, dim_y: sizes of ``x`` and ``y``.
      cond: condition number of ``A`` (eigenvalues in ``[1, cond]``).
      mu: outer ridge.
      seed: random seed.

    Returns:
      A :class:`BilevelInstance` (``extra``: the hypergradient function).
    """
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim_y, dim_y)))
    A = q @ np.diag(np.linspace(1.0, cond, dim_y)) @ q.T
    B = rng.standard_normal((dim_y, dim_x)) / np.sqrt(dim_x)
    dt = _dtype()
    data = {k: jnp.asarray(v, dt) for k, v in dict(
        A=A, B=B, b=rng.standard_normal(dim_y), e=0.1 * rng.standard_normal(dim_x), mu=mu).items()}
    J = np.linalg.solve(A, B)
    rhs = J.T @ np.asarray(data["b"]) - np.asarray(data["e"])
    x_star = np.linalg.solve(mu * np.eye(dim_x) + J.T @ J, rhs)
    return BilevelInstance(QUADRATIC_PROBLEM, data, jnp.zeros(dim_x, dt), jnp.zeros(dim_y, dt),
                           jnp.asarray(x_star, dt), jnp.asarray(J @ x_star, dt), quadratic_hypergradient)


# ---------------------------------------------------------------- multi-block


def _mb_outer(x, y, batch):
    r = y - batch["t"] - batch["xi_f"]  # (B, d)
    return 0.5 * jnp.mean(jnp.sum(r * r, -1)) + 0.5 * batch["mu"][0] * jnp.vdot(x, x)


def _mb_inner(x, y, batch):
    quad = jnp.einsum("i,bij,j->b", y, batch["A"], y)
    lin = y @ (batch["B"] @ x).T + batch["xi_g"] @ y  # (B,)
    return jnp.mean(0.5 * quad - lin)


MULTIBLOCK_PROBLEM = BilevelProblem(_mb_outer, _mb_inner)


def multiblock_quadratic(num_blocks: int = 8, num_samples: int = 32, dim_x: int = 3, dim_y: int = 4,
                         noise: float = 0.5, mu: float = 0.5, seed: int = 0) -> BilevelInstance:
    """``min_x 1/m sum_i f_i(x, y_i*(x))``, ``y_i* = argmin g_i(x, y_i)``, with noisy samples.

    Each block ``i`` holds ``n`` samples ``xi``: ``g_i(x, y; xi) = y'A_i(xi)y/2 -
    y'(B_i x + xi_g)``, ``f_i(x, y; xi) = ||y - t_i - xi_f||^2/2 + mu ||x||^2/2``.
    The sample noise (in ``A_i``, ``xi_g``, ``xi_f``) has zero mean over each block, so
    the full-data problem has the closed form ``y_i* = Abar_i^{-1} B_i x`` and
    ``x* = (mu I + 1/m sum J_i'J_i)^{-1} 1/m sum J_i' t_i``.

    The problem's functions act on one block: ``f(x, y_i, batch_i)`` with batch leaves
    of shape ``(B, ...)``; ``data`` leaves have shape ``(m, n, ...)`` (see
    :class:`jaxopt_lab.bilevel.BSVRB`).

    Args:
      num_blocks: ``m``.
      num_samples: ``n`` per block.
      dim_x, dim_y: sizes.
      noise: sample noise scale.
      mu: outer ridge.
      seed: random seed.

    Returns:
      A :class:`BilevelInstance` with ``y0`` of shape ``(m, dim_y)``.
    """
    rng = np.random.default_rng(seed)
    m, n, d, p = num_blocks, num_samples, dim_y, dim_x

    def centered(*shape):
        z = rng.standard_normal((m, n) + shape)
        return noise * (z - z.mean(1, keepdims=True))

    G = rng.standard_normal((m, d, d))
    Abar = np.eye(d) + 0.5 * G @ np.swapaxes(G, -1, -2) / d
    dA = centered(d, d)
    dA = 0.25 * (dA + np.swapaxes(dA, -1, -2)) / np.sqrt(d)
    A = Abar[:, None] + dA
    B = rng.standard_normal((m, d, p)) / np.sqrt(p)
    t = rng.standard_normal((m, d))
    dt = _dtype()
    data = dict(A=A, B=np.broadcast_to(B[:, None], (m, n, d, p)), t=np.broadcast_to(t[:, None], (m, n, d)),
                xi_g=centered(d), xi_f=centered(d), mu=np.full((m, n), mu))
    data = {k: jnp.asarray(np.ascontiguousarray(v), dt) for k, v in data.items()}
    J = np.linalg.solve(Abar, B)  # (m, d, p)
    lhs = mu * np.eye(p) + np.einsum("mdp,mdq->pq", J, J) / m
    x_star = np.linalg.solve(lhs, np.einsum("mdp,md->p", J, t) / m)
    y_star = np.einsum("mdp,p->md", J, x_star)
    return BilevelInstance(MULTIBLOCK_PROBLEM, data, jnp.zeros(p, dt), jnp.zeros((m, d), dt),
                           jnp.asarray(x_star, dt), jnp.asarray(y_star, dt), None)


# ------------------------------------------------------------ constrained toy


def _toy_outer(x, y, data):
    return 0.5 * jnp.sum((y - data["b"]) ** 2) + 0.5 * jnp.sum((x - data["x_ref"]) ** 2)


def _toy_inner(x, y, data):
    return 0.5 * jnp.sum((y - data["a"]) ** 2)


def _toy_constraints(x, y, data):
    return jnp.atleast_1d(jnp.sum(y) - x[0])


def toy_projection(x, y, data):
    """Euclidean projection of ``(x, y)`` onto ``{sum(y) - x_0 <= 0}`` (a half-space).

    Args:
      x: outer variable, a 1-D array (only ``x[0]`` enters the constraint).
      y: inner variable, a 1-D array.
      data: the problem data (unused; accepted for a uniform signature).

    Returns:
      The projected pair ``(x, y)``; unchanged when the constraint already holds.
    """
    viol = jnp.maximum(jnp.sum(y) - x[0], 0.0)
    # Normal of the half-space: (-1 on x_0, +1 on each y_j); squared norm 1 + dim_y.
    step = viol / (1.0 + y.shape[0])
    return x.at[0].add(step), y - step


CONSTRAINED_TOY_PROBLEM = BilevelProblem(_toy_outer, _toy_inner, _toy_constraints)


def constrained_toy() -> BilevelInstance:
    """``min_x ||y - 1||^2/2 + (x - 1)^2/2``, ``y in argmin_{sum(y) <= x} ||y - a||^2/2``.

    With ``a = (2, 2)`` the inner constraint is active for ``x < 4``, where
    ``y*(x) = (x/2, x/2)``; the hyper-objective ``(x/2 - 1)^2 + (x - 1)^2/2`` is minimal
    at ``x* = 4/3``, ``y* = (2/3, 2/3)`` (constraint active). ``extra`` holds the
    projection onto ``{(x, y): sum(y) <= x}`` used by LV-HBA.

    Returns:
      A :class:`BilevelInstance`.
    """
    dt = _dtype()
    data = dict(a=jnp.asarray([2.0, 2.0], dt), b=jnp.asarray([1.0, 1.0], dt), x_ref=jnp.asarray([1.0], dt))
    x_star, y_star = jnp.asarray([4.0 / 3.0], dt), jnp.asarray([2.0 / 3.0, 2.0 / 3.0], dt)
    return BilevelInstance(CONSTRAINED_TOY_PROBLEM, data, jnp.asarray([3.0], dt), jnp.asarray([0.0, 0.0], dt),
                           x_star, y_star, toy_projection)


# ------------------------------------------------ logistic-regression hyperparameters


def _logistic(w, X, y):
    z = X @ w
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z)


def _l2_outer(x, w, data):
    return _logistic(w, data["X_val"], data["y_val"])


def _l2_inner(x, w, data):
    return _logistic(w, data["X_train"], data["y_train"]) + 0.5 * jnp.sum(jnp.exp(x) * w * w)


LOGREG_L2_PROBLEM = BilevelProblem(_l2_outer, _l2_inner)


def logreg_l2_hyperparams(seed: int = 0, n_train: int = 200) -> BilevelInstance:
    """Per-feature L2 penalties ``exp(x_j)`` of a logistic regression (breast cancer set).

    Outer: validation logistic loss; inner: training logistic loss plus
    ``sum_j exp(x_j) w_j^2 / 2``.

    Args:
      seed: shuffling seed.
      n_train: training points (the rest is split in validation and test).

    Returns:
      A :class:`BilevelInstance` (``extra``: ``(X_test, y_test)``).

    References:
      Pedregosa, "Hyperparameter optimization with approximate gradient", 2016
      (arXiv:1602.02355).
    """
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    perm = np.random.default_rng(seed).permutation(len(y))
    X, y = X[perm], y[perm].astype(float)
    X = (X - X[:n_train].mean(0)) / (X[:n_train].std(0) + 1e-8)
    n_val = (len(y) - n_train) // 2
    dt = _dtype()
    c = lambda a: jnp.asarray(a, dt)
    data = dict(X_train=c(X[:n_train]), y_train=c(y[:n_train]), X_val=c(X[n_train:n_train + n_val]),
                y_val=c(y[n_train:n_train + n_val]))
    d = X.shape[1]
    return BilevelInstance(LOGREG_L2_PROBLEM, data, jnp.zeros(d, dt), jnp.zeros(d, dt), None, None,
                           (c(X[n_train + n_val:]), c(y[n_train + n_val:])))


# ------------------------------------------------------------- data hyper-cleaning


def _ce(params, X, y):
    logits = X @ params["W"] + params["b"]
    return jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]


def _clean_outer(x, params, data):
    return jnp.mean(_ce(params, data["X_val"], data["y_val"]))


def _clean_inner(x, params, data):
    weights = jax.nn.sigmoid(x)
    reg = 0.5 * data["reg"] * (jnp.sum(params["W"] ** 2) + jnp.sum(params["b"] ** 2))
    return jnp.sum(weights * _ce(params, data["X_train"], data["y_train"])) / x.shape[0] + reg


HYPER_CLEANING_PROBLEM = BilevelProblem(_clean_outer, _clean_inner)


class CleaningExtra(NamedTuple):
    """Extra arrays of the hyper-cleaning problem.

    Attributes:
      X_test, y_test: clean test set.
      corrupted: boolean mask of the corrupted training labels.
      y_train_clean: the true training labels (for the oracle).
    """

    X_test: jax.Array
    y_test: jax.Array
    corrupted: jax.Array
    y_train_clean: jax.Array


def hyper_cleaning_digits(corruption: float = 0.5, reg: float = 1e-3, seed: int = 0,
                          num_val: int | None = None) -> BilevelInstance:
    """Data hyper-cleaning on scikit-learn's digits: learn one weight per training point.

    A fraction ``corruption`` of the training labels is replaced by a different random
    class. Inner: ``1/n sum_i sigmoid(x_i) CE_i(W, b) + reg (||W||^2 + ||b||^2) / 2``; outer: the
    cross-entropy on a clean validation set. The weights ``sigmoid(x)`` of corrupted
    points should go to zero.

    Args:
      corruption: fraction of corrupted training labels (in ``[0, 1)``).
      reg: inner L2 regularization (> 0 keeps the inner problem strongly convex).
      seed: data split and corruption seed.
      num_val: validation points to keep (default: all of the validation split).

    Returns:
      A :class:`BilevelInstance` with ``x0 = 0`` (all weights 1/2) and
      ``extra`` a :class:`CleaningExtra`.

    References:
      Franceschi et al., "Forward and Reverse Gradient-Based Hyperparameter
      Optimization", 2017 (arXiv:1703.01785).
    """
    if not 0.0 <= corruption < 1.0:
        raise ValueError(f"`corruption` must be in [0, 1), got {corruption}.")
    if reg <= 0:
        raise ValueError(f"`reg` must be > 0, got {reg}.")
    from jaxopt_lab.problems.digits import load_digits

    ds = load_digits(seed=seed)
    rng = np.random.default_rng(seed + 1)
    y_clean = np.asarray(ds.y_train)
    n = len(y_clean)
    corrupted = rng.random(n) < corruption
    shift = rng.integers(1, ds.num_classes, n)
    y_noisy = np.where(corrupted, (y_clean + shift) % ds.num_classes, y_clean)
    dt = ds.X_train.dtype
    # Pixels constant on the training split are standardized by ~1e-8 in load_digits, which
    # blows up their validation/test values: drop them (set to zero).
    keep = (jnp.std(ds.X_train, axis=0) > 1e-6).astype(dt)
    ds = ds._replace(X_train=ds.X_train * keep, X_val=ds.X_val * keep, X_test=ds.X_test * keep)
    X_val, y_val = ds.X_val, ds.y_val
    if num_val is not None:
        X_val, y_val = X_val[:num_val], y_val[:num_val]
    data = dict(X_train=ds.X_train, y_train=jnp.asarray(y_noisy, jnp.int32), X_val=X_val, y_val=y_val,
                reg=jnp.asarray(reg, dt))
    d, k = ds.X_train.shape[1], ds.num_classes
    y0 = {"W": jnp.zeros((d, k), dt), "b": jnp.zeros((k,), dt)}
    extra = CleaningExtra(ds.X_test, ds.y_test, jnp.asarray(corrupted), jnp.asarray(y_clean, jnp.int32))
    return BilevelInstance(HYPER_CLEANING_PROBLEM, data, jnp.zeros(n, dt), y0, None, None, extra)
