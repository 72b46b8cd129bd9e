"""Scaling of multi-process training and of `preprocess build --jobs` (issue 10).

    python benchmarks/scaling.py [--work DIR] [--genome-mb 8] [--steps 30]

Training: the same run (onePeak, -k 32 -r 16 -d 64, L 1000, global batch 64, a fixed number
of steps) as 1 process x 1 device, 1 process x 2 and x 4 fake CPU devices, and 2 and 4
processes x 1 device joined through jax.distributed (gloo on 127.0.0.1). samples/s is taken
from the epoch record (history.json). Build: three cell stores with --jobs 1 and --jobs 2.
On a 2-core machine nothing can scale past 2x: the point is that more processes cost little
and give the same result.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_cmd(stores, out, steps):
    return [sys.executable, "-m", "train", "run", "-i", str(stores / "CellA.zarr"),
            str(stores / "CellB.zarr"), "-f", "CTCF", "-e", "1", "--max-steps", str(steps),
            "-k", "32", "-r", "16", "-d", "64", "--batch-size", "64", "-oc", str(out)]


def run_training(stores, work, processes, devices, steps):
    out = work / f"scale_p{processes}_d{devices}"
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu")
    cmd = train_cmd(stores, out, steps)
    t0 = time.perf_counter()
    if processes == 1:
        subprocess.run(cmd, env=env, check=True, capture_output=True)
    else:
        port = free_port()
        procs = [subprocess.Popen(cmd + ["--coordinator", f"127.0.0.1:{port}", "--num-processes",
                                         str(processes), "--process-id", str(i)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for i in range(processes)]
        if any(p.wait() for p in procs):
            raise SystemExit(f"{processes}-process training failed")
    wall = time.perf_counter() - t0
    record = json.loads((out / "history.json").read_text())[0]
    return record["samples_per_second"], record["train_loss"], wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="bench_data/scaling")
    parser.add_argument("--genome-mb", type=float, default=8.0)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    from factornet_jax.build import BuildRequest, build_stores
    from factornet_jax.simulate import SimulationConfig, simulate

    work = Path(args.work)
    sim_dir = work / "sim"
    if not (sim_dir / "simulation.json").is_file():
        simulate(sim_dir, SimulationConfig(seed=3, genome_mb=args.genome_mb), overwrite=True)
    cells = [str(p) for p in sorted((sim_dir / "cells").iterdir())]

    print("preprocess build (3 cell stores, genome store prebuilt)")
    build_rows = []
    for jobs in (1, 2):
        stores = work / f"stores_jobs{jobs}"
        shutil.rmtree(stores, ignore_errors=True)
        build_stores(BuildRequest(cell_dirs=(), genome=str(sim_dir / "genome.fa"), stores_dir=str(stores)))
        t0 = time.perf_counter()
        build_stores(BuildRequest(cell_dirs=tuple(cells), genome=str(sim_dir / "genome.fa"),
                                  stores_dir=str(stores), jobs=jobs))
        build_rows.append((jobs, time.perf_counter() - t0))
    base = build_rows[0][1]
    for jobs, seconds in build_rows:
        print(f"  --jobs {jobs}: {seconds:6.2f} s  speed-up {base / seconds:4.2f}x")

    stores = work / "stores_jobs1"
    print(f"training ({args.steps} steps of 64, onePeak -k 32 -r 16 -d 64, L 1000)")
    rows = []
    for processes, devices in ((1, 1), (1, 2), (1, 4), (2, 1), (4, 1)):
        rate, loss, wall = run_training(stores, work, processes, devices, args.steps)
        rows.append((processes, devices, rate, loss, wall))
    base = rows[0][2]
    print("  processes x devices   samples/s   vs 1x1   train loss   wall s")
    for processes, devices, rate, loss, wall in rows:
        print(f"  {processes} x {devices}                {rate:9.1f}   {rate / base:5.2f}x   {loss:.6f}   {wall:6.1f}")


if __name__ == "__main__":
    main()
