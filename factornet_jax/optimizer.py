"""FactorNet's optimizer: Keras 1.1's Adam, as an optax GradientTransformation.

Keras 1 folds both bias corrections into the step size and adds epsilon to sqrt(v) before
correction::

    t = step + 1
    lr_t = lr * sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
    m = beta_1 * m + (1 - beta_1) * g;  v = beta_2 * v + (1 - beta_2) * g ** 2
    p = p - lr_t * m / (sqrt(v) + epsilon)

`optax.adam` adds epsilon to sqrt(v / (1 - beta_2 ** t)) instead, which differs while v is
small (the first steps, and parameters with tiny gradients).
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

KERAS1_ADAM = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}  # Keras 1 Adam defaults


class Keras1AdamState(NamedTuple):
    count: jnp.ndarray   # () int32, steps taken
    mu: optax.Params     # first moments, shaped like the params
    nu: optax.Params     # second moments


def keras1_adam(learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """Keras 1 Adam (FactorNet's `Adam(lr=learningrate)`): see the module docstring."""
    def init(params):
        zeros = lambda: jax.tree_util.tree_map(jnp.zeros_like, params)  # noqa: E731
        return Keras1AdamState(jnp.zeros((), jnp.int32), zeros(), zeros())

    def update(grads, state, params=None):
        del params
        count = state.count + 1
        t = count.astype(jnp.float32)
        lr_t = learning_rate * jnp.sqrt(1.0 - beta_2 ** t) / (1.0 - beta_1 ** t)
        mu = jax.tree_util.tree_map(lambda m, g: beta_1 * m + (1.0 - beta_1) * g, state.mu, grads)
        nu = jax.tree_util.tree_map(lambda v, g: beta_2 * v + (1.0 - beta_2) * g * g, state.nu, grads)
        updates = jax.tree_util.tree_map(lambda m, v: -lr_t * m / (jnp.sqrt(v) + epsilon), mu, nu)
        return updates, Keras1AdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)
