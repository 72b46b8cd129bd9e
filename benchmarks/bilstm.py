"""BiLSTM forward + backward time at FactorNet's shapes: lax.scan vs cuDNN (when a GPU is there).

    python benchmarks/bilstm.py [--batch 200 2000] [--repeats 50]

FactorNet's BiLSTM sees the pooled conv output: T = (L - w + 1) // (w // 2) = 75 steps of
F = 32 features (default -L 1000 -w 26 -k 32), H = 32 units each way, and twice the batch
(both strands). Each row times one jitted value_and_grad of sum(BiLSTM(x)) over the weights,
the work a training step does in that layer. The cuDNN rows appear only on an NVIDIA GPU.
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from factornet_jax.model import bilstm_cudnn, bilstm_scan


def timed(fn, args, repeats):
    out = fn(*args)
    jax.block_until_ready(out)                      # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[200, 2000],
                        help="rows into the BiLSTM (2x the training batch: both strands)")
    parser.add_argument("--steps", type=int, default=75)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    backends = [("scan", lambda x, w, u, b: bilstm_scan(x, w, u, b, "standard"))]
    if jax.default_backend() == "gpu":
        backends.append(("cudnn", bilstm_cudnn))
    rng = np.random.default_rng(0)
    f, h = args.features, args.units
    w = jnp.asarray(rng.normal(size=(2, f, 4 * h)) * 0.1, jnp.float32)
    u = jnp.asarray(rng.normal(size=(2, h, 4 * h)) * 0.1, jnp.float32)
    b = jnp.zeros((2, 4 * h), jnp.float32)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}; "
          f"T {args.steps}, F {f}, H {h}, median of {args.repeats}\n")
    print("| rows | backend | fwd + bwd ms | rows/s | max abs diff vs scan |\n|---:|---|---:|---:|---:|")
    for batch in args.batch:
        x = jnp.asarray(rng.normal(size=(batch, args.steps, f)), jnp.float32)
        reference = None
        for name, layer in backends:
            step = jax.jit(jax.value_and_grad(lambda w, u, x: layer(x, w, u, b).sum(), argnums=(0, 1)))
            seconds = timed(step, (w, u, x), args.repeats)
            y = np.asarray(jax.jit(layer)(x, w, u, b))
            diff = 0.0 if reference is None else float(np.abs(y - reference).max())
            reference = y if reference is None else reference
            print(f"| {batch} | {name} | {seconds * 1e3:.2f} | {batch / seconds:,.0f} | {diff:.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
