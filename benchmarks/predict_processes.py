"""Multi-process prediction: wall time of `factornet predict` with 1 and N processes (issue 19).

    python benchmarks/predict_processes.py --work DIR [--processes 2] [--bins 100000]

Reuses benchmarks/predict_sharing.py's data in --work (run it first: simulated genome, cell
store, default-size model). Runs the CLI on the first --bins bins of the simulated ladder once
with one process and once with N processes on 127.0.0.1 (jax.distributed, each process with
the host's devices split evenly: --xla_force_host_platform_device_count on CPU), checks that the
two output files hold the same lines, and prints one markdown table. On one host the processes
share its cores, so this shows the overhead of the split (part files, the merge by process 0);
on N hosts each process brings its own devices.
"""
from __future__ import annotations

import argparse
import gzip
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(n, store, model, bed, out):
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    base = [sys.executable, "-m", "factornet_jax", "predict", "-i", str(store), "-m", str(model),
            "-b", str(bed), "-oc", str(out), "--block-lines", "10000"]
    port = free_port()
    t0 = time.perf_counter()
    if n == 1:
        procs = [subprocess.Popen(base, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    else:
        procs = [subprocess.Popen(base + ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n),
                                          "--process-id", str(i)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for i in range(n)]
    outputs = [p.communicate()[0] for p in procs]
    seconds = time.perf_counter() - t0
    if any(p.returncode for p in procs):
        raise RuntimeError("\n".join(outputs))
    return seconds, outputs[0].strip().splitlines()[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--bins", type=int, default=100_000)
    parser.add_argument("--genome-mb", type=float, default=20)
    args = parser.parse_args(argv)
    work = args.work.resolve()
    store = work / f"stores{args.genome_mb:g}" / "CellA.zarr"
    model = work / "model_default_sizes"
    bed = work / f"ladder_{args.bins}.bed.gz"
    with gzip.open(work / f"sim{args.genome_mb:g}" / "ladder.bed.gz", "rt") as src, gzip.open(bed, "wt") as dst:
        for i, line in enumerate(src):
            if i == args.bins:
                break
            dst.write(line)
    rows = []
    for n in (1, args.processes):
        seconds, line = run(n, store, model, bed, work / f"pred_p{n}.bedGraph.gz")
        rows.append((n, seconds, line))
        print(f"{n} process(es): {seconds:.1f} s", file=sys.stderr)
    same = gzip.open(work / "pred_p1.bedGraph.gz").read() == gzip.open(work / f"pred_p{args.processes}.bedGraph.gz").read()
    print(f"benchmarks/predict_processes.py {' '.join(sys.argv[1:])}: {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; outputs identical: {same}\n")
    print("| processes | wall s (whole command, incl. start-up) | bins/s |\n|---:|---:|---:|")
    for n, seconds, _ in rows:
        print(f"| {n} | {seconds:.1f} | {args.bins / seconds:,.0f} |")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
