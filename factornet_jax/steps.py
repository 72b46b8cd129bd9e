"""The jit-compiled train and eval steps, and the helpers that shard a batch over the mesh.

Data parallelism: one jit-compiled step over a 1-D ("data",) mesh of every device (all
processes' devices on multi-host runs). Parameters and optimizer state are replicated, the
batch is split along its first axis, and XLA averages the gradients (the loss is a global
mean). This is what `pmap` did; current JAX builds pmap on the same jit + sharding machinery
and keeps pmap in maintenance mode, so the step is written once, for 1 or N devices.

Used by the training loop (`training.train_and_evaluate`) and by prediction (`predict`: the
eval step, or the ladder step of shared-computation scoring, factornet_jax.ladder); JAX is
imported when a step is made, not with this module.
"""
from typing import NamedTuple

import numpy as np


COMPUTE_DTYPES = ("float32", "bfloat16")


def check_compute_settings(threads, loader_processes, compute_dtype):
    """ConfigError (one line naming the flag) for --threads, --loader-processes or --dtype
    values no run can use (predict, variants)."""
    from factornet_jax.errors import ConfigError
    if threads < 1:
        raise ConfigError(f"--threads {threads}: must be at least 1")
    if loader_processes < 0:
        raise ConfigError(f"--loader-processes {loader_processes}: must be 0 or more")
    if compute_dtype not in COMPUTE_DTYPES:
        raise ConfigError(f"--dtype {compute_dtype}: must be float32 or bfloat16")


class TrainState(NamedTuple):
    params: dict
    opt_state: tuple
    step: object  # int32 scalar array


def make_steps(model, tx, mesh, compute_dtype):
    """jit-compiled train and eval steps over `mesh` (batch split on "data").

    `tx` may be None when only the eval step is used (prediction): the train step is traced
    lazily, on its first call.
    """
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec as P

    from factornet_jax.model import loss_from_strand_logits, probabilities
    replicated = NamedSharding(mesh, P())
    data = NamedSharding(mesh, P("data"))
    dtype = jnp.bfloat16 if compute_dtype == "bfloat16" else jnp.float32

    def forward(params, batch, train, key):
        params, onehot, signal = _cast_inputs(params, batch, dtype)
        logits = model.apply({"params": params}, onehot, signal, batch.get("meta"),
                             batch.get("gencode"), train=train,
                             rngs={"dropout": key} if train else None)
        return logits.astype(jnp.float32)

    def train_step(state, batch, base_key):
        key = jax.random.fold_in(base_key, state.step)

        def loss_fn(params):
            logits = forward(params, batch, True, key)
            return loss_from_strand_logits(logits, batch["labels"], batch["weights"][:, None])

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        import optax
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, opt_state, state.step + 1), loss

    def eval_step(params, batch):
        logits = forward(params, batch, False, None)
        return probabilities(logits)

    train = jax.jit(train_step, donate_argnums=0,
                    in_shardings=(replicated, data, replicated), out_shardings=(replicated, replicated))
    evaluate = jax.jit(eval_step, in_shardings=(replicated, data), out_shardings=data)
    return train, evaluate, data, replicated


def _cast_inputs(params, batch, dtype):
    """(params, onehot, signal) in the compute dtype; codes (..., P) uint8 -> one-hot, code 4
    (N) -> all zeros."""
    import jax
    import jax.numpy as jnp
    onehot = jax.nn.one_hot(batch["codes"], 4, dtype=dtype)
    if dtype != jnp.float32:
        params = jax.tree_util.tree_map(lambda p: p.astype(dtype), params)
    return params, onehot, batch["signal"].astype(dtype)


def make_ladder_step(model, mesh, compute_dtype, step):
    """jit-compiled shared-computation scoring over `mesh` (stretches split on "data").

    batch: codes (G, P) uint8, signal (G, P, S), meta (G, n, M)?, gencode (G, n, 6)? with
    P = seq_len + (n - 1) * step (factornet_jax.ladder) -> probabilities (G, n, T).
    """
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec as P

    from factornet_jax.model import probabilities
    dtype = jnp.bfloat16 if compute_dtype == "bfloat16" else jnp.float32

    def ladder_step(params, batch):
        params, onehot, signal = _cast_inputs(params, batch, dtype)
        logits = model.apply({"params": params}, onehot, signal, batch.get("meta"),
                             batch.get("gencode"), step=step, method="ladder")
        g, n = logits.shape[:2]
        probs = probabilities(logits.astype(jnp.float32).reshape((g * n,) + logits.shape[2:]))
        return probs.reshape(g, n, -1)

    data = NamedSharding(mesh, P("data"))
    return jax.jit(ladder_step, in_shardings=(NamedSharding(mesh, P()), data), out_shardings=data)


def gather_rows(array):
    """A batch-sharded jax.Array -> the whole (global) numpy array on every process."""
    import jax
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        return np.asarray(multihost_utils.process_allgather(array, tiled=True))
    return np.asarray(jax.device_get(array))


def global_batch(batch, sharding):
    """This process's rows of a batch -> one global jax.Array split over the mesh."""
    import jax
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
