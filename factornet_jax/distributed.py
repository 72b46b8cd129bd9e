"""Multi-host runs through JAX's own runtime (`jax.distributed`); nothing of our own."""
import os

from factornet_jax.errors import ConfigError


def maybe_initialize(coordinator=None, num_processes=None, process_id=None):
    """Join a multi-process run when flags (or a cluster environment JAX knows) ask for one.

    With --coordinator, --num-processes and --process-id all given, processes meet at the
    coordinator; with none given, JAX's auto-detection (Slurm, Open MPI, ...) is tried only when
    FACTORNET_DISTRIBUTED=auto is set, so plain runs stay single-process.
    """
    given = [x is not None for x in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise ConfigError("--coordinator, --num-processes and --process-id go together")
    import jax
    # CPU processes exchange gradients through gloo (GPUs use NCCL regardless of this).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if all(given):
        if not 0 <= process_id < num_processes:
            raise ConfigError(f"--process-id {process_id} must be in [0, {num_processes})")
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
        return True
    if os.environ.get("FACTORNET_DISTRIBUTED") == "auto":
        jax.distributed.initialize()
        return True
    return False
