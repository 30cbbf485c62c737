"""Differentiable perturbed optimizers: Monte-Carlo smoothing of argmax, max and any function.

For noise ``Z`` with density ``mu(z) ~ exp(-nu(z))`` and scale ``sigma``:

- perturbed max ``F(theta) = E[max_y <y, theta + sigma Z>]`` has gradient
  ``y_sigma(theta) = E[argmax(theta + sigma Z)]`` (Berthet et al., Prop. 2.2);
- the perturbed argmax ``y_sigma`` has Jacobian ``E[argmax(theta + sigma Z) grad nu(Z)^T] / sigma``
  (Prop. 3.1), applied to a tangent as a Monte-Carlo average;
- a perturbed function ``f_sigma(theta) = E[f(theta + sigma Z)]`` has gradient
  ``E[f(theta + sigma Z) grad nu(Z)] / sigma``.

An optional control variate subtracts the unperturbed output (``E[grad nu(Z)] = 0``,
so the estimate stays unbiased). The returned functions take
``(inputs, rng, *args)``; ``rng`` is a PRNG key, ``args`` go to ``argmax_fun``.

References:
  Berthet, Blondel, Teboul, Cuturi, Vert and Bach, "Learning with Differentiable
  Perturbed Optimizers", 2020 (arXiv:2002.08676).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


class Gumbel:
    """Standard Gumbel noise, ``nu(z) = z + exp(-z)``.

    Attributes:
      sample(seed, sample_shape): draws of shape ``sample_shape``.
      log_prob(inputs): ``-nu(inputs)`` summed (up to a constant, which is zero here).
    """

    def sample(self, seed, sample_shape) -> jax.Array:
        """Draw Gumbel samples.

        Args:
          seed: a PRNG key.
          sample_shape: output shape.

        Returns:
          An array of standard Gumbel draws.
        """
        return jax.random.gumbel(seed, sample_shape)

    def log_prob(self, inputs) -> jax.Array:
        """Log density ``-(z + exp(-z))`` summed over entries."""
        return -jnp.sum(inputs + jnp.exp(-inputs))


class Normal:
    """Standard normal noise, ``nu(z) = ||z||^2 / 2``.

    Attributes:
      sample(seed, sample_shape): draws of shape ``sample_shape``.
      log_prob(inputs): ``-||z||^2 / 2`` (up to a constant).
    """

    def sample(self, seed, sample_shape) -> jax.Array:
        """Draw standard normal samples.

        Args:
          seed: a PRNG key.
          sample_shape: output shape.

        Returns:
          An array of standard normal draws.
        """
        return jax.random.normal(seed, sample_shape)

    def log_prob(self, inputs) -> jax.Array:
        """Log density ``-||z||^2 / 2`` (without the normalizing constant)."""
        return -0.5 * jnp.sum(inputs ** 2)


def _draw(noise, rng, num_samples, inputs):
    z = noise.sample(rng, (num_samples, *jnp.shape(inputs)))
    z = z.astype(jnp.result_type(inputs))
    # grad nu(z) = -grad log mu(z), per sample.
    grad_nu = jax.vmap(jax.grad(lambda s: -noise.log_prob(s)))(z)
    return z, grad_nu


def _check(num_samples, sigma):
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive int, got {num_samples!r}.")
    if not isinstance(sigma, jax.core.Tracer) and float(sigma) <= 0:
        raise ValueError(f"`sigma` must be > 0, got {sigma!r}.")


def _weighted_mean(outputs, grad_nu, tangent, sigma):
    """``mean_s outputs_s <grad_nu_s, tangent> / sigma``."""
    w = jnp.tensordot(grad_nu, tangent, axes=tangent.ndim) / sigma
    return jnp.tensordot(w, outputs, axes=1) / w.shape[0]


def make_perturbed_argmax(argmax_fun: Callable, num_samples: int = 1000, sigma: float = 0.1,
                          noise=Gumbel(), control_variate: bool = False) -> Callable:
    """The perturbed argmax ``theta -> E[argmax_fun(theta + sigma Z)]``, differentiable.

    Args:
      argmax_fun: ``argmax_fun(inputs, *args)``, e.g. a one-hot argmax or a ranking.
      num_samples: Monte-Carlo samples (static).
      sigma: noise scale (> 0).
      noise: an object with ``sample(seed, shape)`` and ``log_prob(z)`` (:class:`Gumbel`,
        :class:`Normal`).
      control_variate: subtract ``argmax_fun(theta)`` in the Jacobian estimate.

    Returns:
      ``forward(inputs, rng, *args)``; its Jacobian-vector products follow Prop. 3.1.

    References:
      Berthet et al., "Learning with Differentiable Perturbed Optimizers", 2020
      (arXiv:2002.08676).
    """
    _check(num_samples, sigma)

    @jax.custom_jvp
    def forward(inputs, rng, *args):
        z, _ = _draw(noise, rng, num_samples, inputs)
        return jnp.mean(jax.vmap(lambda zi: argmax_fun(inputs + sigma * zi, *args))(z), axis=0)

    @forward.defjvp
    def forward_jvp(primals, tangents):
        inputs, rng, *args = primals
        z, grad_nu = _draw(noise, rng, num_samples, inputs)
        outs = jax.vmap(lambda zi: argmax_fun(inputs + sigma * zi, *args))(z)
        value = jnp.mean(outs, axis=0)
        if control_variate:
            outs = outs - argmax_fun(inputs, *args)
        return value, _weighted_mean(outs, grad_nu, tangents[0], sigma)

    return forward


def make_perturbed_max(argmax_fun: Callable, num_samples: int = 1000, sigma: float = 0.1,
                       noise=Gumbel()) -> Callable:
    """The perturbed max ``theta -> E[<argmax_fun(theta + sigma Z), theta + sigma Z>]``.

    Its gradient is the perturbed argmax (Prop. 2.2), used as the derivative rule.

    Args:
      argmax_fun: ``argmax_fun(inputs, *args)`` returning an array shaped like ``inputs``.
      num_samples: Monte-Carlo samples (static).
      sigma: noise scale (> 0).
      noise: :class:`Gumbel`, :class:`Normal` or an object with ``sample``/``log_prob``.

    Returns:
      ``forward(inputs, rng, *args) -> scalar``.

    References:
      Berthet et al., "Learning with Differentiable Perturbed Optimizers", 2020
      (arXiv:2002.08676).
    """
    _check(num_samples, sigma)

    def parts(inputs, rng, args):
        z, _ = _draw(noise, rng, num_samples, inputs)
        perturbed = inputs + sigma * z
        argmaxes = jax.vmap(lambda p: argmax_fun(p, *args))(perturbed)
        axes = tuple(range(1, perturbed.ndim))
        return jnp.mean(jnp.sum(argmaxes * perturbed, axis=axes)), jnp.mean(argmaxes, axis=0)

    @jax.custom_jvp
    def forward(inputs, rng, *args):
        return parts(inputs, rng, args)[0]

    @forward.defjvp
    def forward_jvp(primals, tangents):
        inputs, rng, *args = primals
        value, grad = parts(inputs, rng, args)
        return value, jnp.sum(grad * tangents[0])

    return forward


def make_perturbed_fun(fun: Callable, num_samples: int = 1000, sigma: float = 0.1, noise=Gumbel(),
                       control_variate: bool = False) -> Callable:
    """The smoothed function ``theta -> E[fun(theta + sigma Z)]``, differentiable even if ``fun`` is not.

    Args:
      fun: ``fun(inputs, *args) -> scalar`` (may be piecewise constant).
      num_samples: Monte-Carlo samples (static).
      sigma: noise scale (> 0).
      noise: :class:`Gumbel`, :class:`Normal` or an object with ``sample``/``log_prob``.
      control_variate: subtract ``fun(theta)`` in the gradient estimate.

    Returns:
      ``forward(inputs, rng, *args) -> scalar`` with gradient ``E[f(theta + sigma Z) grad nu(Z)] / sigma``.

    References:
      Berthet et al., "Learning with Differentiable Perturbed Optimizers", 2020
      (arXiv:2002.08676); Abernethy et al., "Online linear optimization via smoothing", 2014.
    """
    _check(num_samples, sigma)

    @jax.custom_jvp
    def forward(inputs, rng, *args):
        z, _ = _draw(noise, rng, num_samples, inputs)
        return jnp.mean(jax.vmap(lambda zi: fun(inputs + sigma * zi, *args))(z))

    @forward.defjvp
    def forward_jvp(primals, tangents):
        inputs, rng, *args = primals
        z, grad_nu = _draw(noise, rng, num_samples, inputs)
        vals = jax.vmap(lambda zi: fun(inputs + sigma * zi, *args))(z)
        value = jnp.mean(vals)
        if control_variate:
            vals = vals - fun(inputs, *args)
        return value, _weighted_mean(vals, grad_nu, tangents[0], sigma)

    return forward
