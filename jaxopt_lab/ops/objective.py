"""Objective functions with jaxopt's names and signatures (``fun(params, [l2reg,] data)``).

``data`` is ``(X, y)``; losses are averaged over the samples.

References:
  Hastie, Tibshirani and Friedman, "The Elements of Statistical Learning", 2009;
  Crammer and Singer, "On the algorithmic implementation of multiclass kernel-based
  vector machines", 2001.
"""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp

from jaxopt_lab.ops import loss as _loss


def least_squares(W, data) -> jax.Array:
    """``0.5 mean((X W - y)^2)`` (summed over outputs when ``W`` is a matrix).

    Args:
      W: weights, ``(d,)`` or ``(d, k)``.
      data: ``(X, y)``.

    Returns:
      The objective value.
    """
    X, y = data
    r = X @ W - y
    return 0.5 * jnp.sum(r**2) / X.shape[0]


def ridge_regression(params, l2reg, data) -> jax.Array:
    """:func:`least_squares` plus ``0.5 l2reg ||params||^2``.

    Args:
      params: weights.
      l2reg: regularization strength.
      data: ``(X, y)``.

    Returns:
      The objective value.
    """
    return least_squares(params, data) + 0.5 * l2reg * jnp.sum(params**2)


def binary_logreg(w, data) -> jax.Array:
    """Mean binary logistic loss, labels in {0, 1}.

    Args:
      w: weights ``(d,)``.
      data: ``(X, y)``.

    Returns:
      The objective value.
    """
    X, y = data
    return jnp.mean(_loss.binary_logistic_loss(y, X @ w))


def multiclass_logreg(W, data) -> jax.Array:
    """Mean multiclass logistic loss, integer labels.

    Args:
      W: weights ``(d, k)``.
      data: ``(X, y)``.

    Returns:
      The objective value.
    """
    X, y = data
    return jnp.mean(jax.vmap(_loss.multiclass_logistic_loss)(y, X @ W))


def multiclass_logreg_with_intercept(params, data) -> jax.Array:
    """:func:`multiclass_logreg` with scores ``X W + b``.

    Args:
      params: ``(W, b)``.
      data: ``(X, y)``.

    Returns:
      The objective value.
    """
    W, b = params
    X, y = data
    return jnp.mean(jax.vmap(_loss.multiclass_logistic_loss)(y, X @ W + b))


def l2_multiclass_logreg(W, l2reg, data) -> jax.Array:
    """:func:`multiclass_logreg` plus ``0.5 l2reg ||W||^2``.

    Args:
      W: weights ``(d, k)``.
      l2reg: regularization strength.
      data: ``(X, y)``.

    Returns:
      The objective value.
    """
    return multiclass_logreg(W, data) + 0.5 * l2reg * jnp.sum(W**2)


def l2_multiclass_logreg_with_intercept(params, l2reg, data) -> jax.Array:
    """:func:`multiclass_logreg_with_intercept` plus ``0.5 l2reg ||W||^2`` (not ``b``).

    Args:
      params: ``(W, b)``.
      l2reg: regularization strength.
      data: ``(X, y)``.

    Returns:
      The objective value.
    """
    return multiclass_logreg_with_intercept(params, data) + 0.5 * l2reg * jnp.sum(params[0] ** 2)


def multiclass_linear_svm_dual(beta, l2reg, data) -> jax.Array:
    """Dual of the Crammer-Singer multiclass SVM (rows of ``beta`` on the simplex).

    ``(0.5 / l2reg) ||X^T (Y - beta)||^2 - <beta, 1 - Y>``, to be minimized over
    ``beta``; the primal weights are ``W = X^T (Y - beta) / l2reg``.

    Args:
      beta: dual variables ``(n, k)``.
      l2reg: regularization strength.
      data: ``(X, Y)`` with one-hot labels ``Y`` (integer labels are one-hot encoded).

    Returns:
      The dual objective value.
    """
    X, Y = data
    if jnp.ndim(Y) == 1:
        Y = jax.nn.one_hot(Y, beta.shape[1], dtype=beta.dtype)
    V = X.T @ (Y - beta)
    return 0.5 / l2reg * jnp.vdot(V, V) - jnp.vdot(beta, 1.0 - Y)


class CompositeLinearFunction(abc.ABC):
    """Base class of objectives ``fun(params, *args) = subfun(A params, *args) + <params, b(*args)>``.

    A subclass defines ``subfun(predictions, *args, **kwargs)`` and
    ``make_linop(*args, **kwargs)`` (returning an object with ``matvec`` and
    ``rmatvec``, e.g. :class:`jaxopt_lab.base.LinearOperator`), and optionally ``b``.
    Coordinate-descent and proximal solvers use this structure to update predictions
    cheaply.

    Attributes:
      subfun_lipschitz: Lipschitz constant of ``grad subfun`` (1 for ``0.5 ||r - y||^2``),
        used by :meth:`lipschitz_const`.

    References:
      Nesterov, "Efficiency of coordinate descent methods on huge-scale optimization
      problems", 2012; Blondel et al., "Efficient and Modular Implicit Differentiation",
      2021 (arXiv:2105.15183).
    """

    subfun_lipschitz: float = 1.0

    @abc.abstractmethod
    def subfun(self, predictions, *args, **kwargs):
        """The function of the predictions ``A params``."""

    @abc.abstractmethod
    def make_linop(self, *args, **kwargs):
        """The linear operator ``A`` (an object with ``matvec`` and ``rmatvec``)."""

    def b(self, *args, **kwargs):
        """The linear term (None for none)."""
        del args, kwargs

    def __call__(self, params, *args, **kwargs) -> jax.Array:
        """``subfun(A params) + <params, b>``.

        Args:
          params: the parameters.
          *args, **kwargs: passed to ``make_linop``, ``subfun`` and ``b``.

        Returns:
          The objective value.
        """
        linop = self.make_linop(*args, **kwargs)
        value = self.subfun(linop.matvec(params), *args, **kwargs)
        lin = self.b(*args, **kwargs)
        return value if lin is None else value + jnp.vdot(params, lin)

    def lipschitz_const(self, hyperparams) -> jax.Array:
        """``subfun_lipschitz * ||A||_2^2``, a Lipschitz constant of ``grad fun``.

        Args:
          hyperparams: the arguments of ``make_linop`` (a tuple, or a single one).

        Returns:
          The constant (``A`` is materialized, so keep this for moderate sizes).
        """
        args = hyperparams if isinstance(hyperparams, tuple) else (hyperparams,)
        linop = self.make_linop(*args)
        A = linop.A if hasattr(linop, "A") else jax.jacfwd(linop.matvec)(jnp.zeros(_input_dim(linop)))
        return self.subfun_lipschitz * jnp.linalg.norm(A, ord=2) ** 2


def _input_dim(linop) -> int:
    shape = linop.shape() if callable(getattr(linop, "shape", None)) else linop.shape
    return int(shape[1])
