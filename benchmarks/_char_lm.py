"""A small character-level transformer language model on Python standard-library
source, and a training loop vmapped over (learning rate, seed) members.

Shared by ``benchmarks/bench_char_lm.py`` and ``tests/test_char_lm.py``. The text is
read at run time with ``inspect.getsource`` (nothing is vendored). The model is a
pre-LayerNorm GPT (Radford et al., 2019) in plain JAX, float32.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib

import jaxopt_lab as jl

MODULES = ("argparse", "typing", "inspect", "textwrap", "difflib", "functools", "collections",
           "dataclasses", "enum", "string", "heapq", "statistics", "fractions", "calendar",
           "json.decoder", "json.encoder", "ast", "tokenize", "configparser", "pprint",
           "contextlib", "gettext")
VOCAB = 97  # 0: newline, 1..95: chr(32..126), 96: anything else


def load_tokens(modules: tuple[str, ...] = MODULES, val_fraction: float = 0.1):
    """Concatenated module sources as int32 tokens, split into (train, val)."""
    text = "\n".join(inspect.getsource(importlib.import_module(m)) for m in modules)
    codes = np.frombuffer(text.encode("utf-32-le"), np.uint32).astype(np.int64)
    tokens = np.where(codes == 10, 0, np.where((codes >= 32) & (codes <= 126), codes - 31, 96))
    n_val = int(len(tokens) * val_fraction)
    return tokens[:-n_val].astype(np.int32), tokens[-n_val:].astype(np.int32)


@dataclasses.dataclass(frozen=True)
class Config:
    """Model and data sizes (static)."""

    n_layer: int = 2
    d_model: int = 64
    n_head: int = 4
    context: int = 64
    batch: int = 64
    n_val: int = 64  # validation windows (fixed, evenly spaced)


def init_params(key: jax.Array, cfg: Config) -> dict:
    """GPT-2-style initialization (normal 0.02, residual projections scaled by 1/sqrt(2L))."""
    d, s = cfg.d_model, 0.02
    keys = jax.random.split(key, 3 + 4 * cfg.n_layer)
    normal = lambda k, shape, scale=s: scale * jax.random.normal(k, shape, jnp.float32)
    ln = lambda: {"g": jnp.ones(d, jnp.float32), "b": jnp.zeros(d, jnp.float32)}
    proj = float(s / np.sqrt(2 * cfg.n_layer))  # GPT-2 scaling of residual projections
    layers = [{"ln1": ln(), "qkv": normal(keys[3 + 4 * i], (d, 3 * d)),
               "out": normal(keys[4 + 4 * i], (d, d), proj), "ln2": ln(),
               "fc": normal(keys[5 + 4 * i], (d, 4 * d)), "fc_b": jnp.zeros(4 * d, jnp.float32),
               "fc2": normal(keys[6 + 4 * i], (4 * d, d), proj), "fc2_b": jnp.zeros(d, jnp.float32)}
              for i in range(cfg.n_layer)]
    return {"tok": normal(keys[0], (VOCAB, d)), "pos": normal(keys[1], (cfg.context, d)),
            "layers": layers, "ln_f": ln(), "head": normal(keys[2], (d, VOCAB))}


def _layer_norm(x, p):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + 1e-5) * p["g"] + p["b"]


def forward(params: dict, x: jax.Array, cfg: Config) -> jax.Array:
    """Logits ``(B, T, VOCAB)`` for tokens ``x`` of shape ``(B, T)``."""
    B, T = x.shape
    H, dh = cfg.n_head, cfg.d_model // cfg.n_head
    h = params["tok"][x] + params["pos"][:T]
    mask = jnp.tril(jnp.ones((T, T), bool))
    for lp in params["layers"]:
        q, k, v = jnp.split(_layer_norm(h, lp["ln1"]) @ lp["qkv"], 3, axis=-1)
        q, k, v = (a.reshape(B, T, H, dh) for a in (q, k, v))
        att = jnp.einsum("bqhd,bkhd->bhqk", q, k) / float(np.sqrt(dh))
        att = jax.nn.softmax(jnp.where(mask, att, -1e9), axis=-1)
        h = h + jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(B, T, -1) @ lp["out"]
        z = jax.nn.gelu(_layer_norm(h, lp["ln2"]) @ lp["fc"] + lp["fc_b"])
        h = h + z @ lp["fc2"] + lp["fc2_b"]
    return _layer_norm(h, params["ln_f"]) @ params["head"]


def cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Mean next-token cross-entropy (nats)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def sample_batch(key: jax.Array, train: jax.Array, cfg: Config):
    """``cfg.batch`` random training windows: inputs and next-character targets."""
    starts = jax.random.randint(key, (cfg.batch,), 0, train.shape[0] - cfg.context - 1)
    win = jax.vmap(lambda s: jax.lax.dynamic_slice(train, (s,), (cfg.context + 1,)))(starts)
    return win[:, :-1], win[:, 1:]


def val_batch(val: np.ndarray, cfg: Config):
    """``cfg.n_val`` evenly spaced validation windows (the same for every run)."""
    starts = np.linspace(0, len(val) - cfg.context - 1, cfg.n_val).astype(int)
    win = np.stack([val[s:s + cfg.context + 1] for s in starts])
    return jnp.asarray(win[:, :-1]), jnp.asarray(win[:, 1:])


# name -> (factory(schedule, key) -> optimizer, extra-args kind). Settings follow Liu et al.
# (arXiv:2305.14342): AdamW b=(0.9, 0.95), wd 0.1; Sophia b2=0.99, k=10, clip 1, wd 0.2, except
# b1 = 0.9 for both Sophias (the paper's 0.965 was worse in the pilot tuning of 240-step runs,
# see benchmarks/tune_char_lm.py).
OPTIMIZERS = {
    "optax.adamw": (lambda sched, key: optax.adamw(sched, b1=0.9, b2=0.95, weight_decay=0.1), None),
    "jaxopt_lab.sophia (G, k=10)": (lambda sched, key: jl.sophia(
        sched, b1=0.9, b2=0.99, gamma=0.04, weight_decay=0.2, update_interval=10,
        estimator="gnb"), "gnb"),
    "optax.contrib.sophia (H, k=10)": (lambda sched, key: optax.contrib.sophia(
        sched, b1=0.9, b2=0.99, gamma=0.01, weight_decay=0.2, update_interval=10,
        hessian_diagonal_fn=optax.contrib.hutchinson_estimator_diag_hessian(key)), "obj_fn"),
}


def make_train(name, train: np.ndarray, val: np.ndarray, cfg: Config, steps: int,
               eval_every: int, warmup: int):
    """A jitted ``fun(lrs, seeds, *hparams) -> (val_curve, train_curve)`` over members.

    ``name`` is a key of ``OPTIMIZERS`` or a pair ``(factory, kind)`` like its values,
    where ``factory(schedule, key, *hparams)`` may take further per-member numbers
    (traced, so a grid over them compiles once), passed after ``seeds``.

    Every member trains from its seed's initialization and data order with peak
    learning rate ``lr`` (linear warm-up over ``warmup`` steps, cosine decay to
    ``0.1 * lr`` at ``steps``, global-norm clipping at 1 for all optimizers);
    ``val_curve[:, j]`` is the validation loss after ``(j + 1) * eval_every`` steps
    and ``train_curve[:, j]`` the mean training loss over those steps.
    """
    if steps % eval_every:
        raise ValueError(f"`steps` ({steps}) must be a multiple of `eval_every` ({eval_every}).")
    factory, kind = OPTIMIZERS[name] if isinstance(name, str) else name
    train_arr = jnp.asarray(train)
    xv, yv = val_batch(val, cfg)
    sched = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, steps, end_value=0.1)

    def one(lr, seed, *hparams):
        key_init, key_data, key_opt = jax.random.split(jax.random.PRNGKey(seed), 3)
        params = init_params(key_init, cfg)
        opt = optax.chain(optax.clip_by_global_norm(1.0), factory(sched, key_opt, *hparams))
        # init inside vmap: the step counts stay unbatched, so Sophia's every-k-steps
        # lax.cond stays a real branch (a batched predicate would turn it into a select).
        state = opt.init(params)

        def step(carry, key):
            params, state = carry
            kb, kh = jax.random.split(key)
            x, y = sample_batch(kb, train_arr, cfg)
            loss_fn = lambda p: cross_entropy(forward(p, x, cfg), y)
            loss, grads = jax.value_and_grad(loss_fn)(params)
            extra = {"gnb": dict(key=kh, logits_fn=lambda p: forward(p, x, cfg)),
                     "obj_fn": dict(obj_fn=loss_fn), None: {}}[kind]
            updates, state = opt.update(grads, state, params, **extra)
            params = jax.tree_util.tree_map(lambda p, u: p + lr * u, params, updates)
            return (params, state), loss

        def chunk(carry, keys):
            carry, losses = jax.lax.scan(step, carry, keys)
            val_loss = cross_entropy(forward(carry[0], xv, cfg), yv)
            return carry, (val_loss, losses.mean())

        keys = jax.random.split(key_data, steps).reshape(steps // eval_every, eval_every, -1)
        _, (val_curve, train_curve) = jax.lax.scan(chunk, (params, state), keys)
        return val_curve, train_curve

    return jax.jit(jax.vmap(one))


def steps_to_target(val_curve: np.ndarray, target: float, eval_every: int) -> np.ndarray:
    """First evaluated step with validation loss ``<= target`` per member (``inf`` if never)."""
    hit = np.asarray(val_curve) <= target
    first = np.argmax(hit, axis=-1)
    return np.where(hit.any(-1), (first + 1) * eval_every, np.inf)
