"""Kill `preprocess build` and `train run` with SIGKILL at random moments, re-run the same
command, and check the result equals an uninterrupted run.

    python benchmarks/kill_trials.py --build-trials 20 --train-budget 300

Build trial: `python -m preprocess build` on a small generated dataset (a few Mb genome, two
cell folders) is killed after a random delay between 0.05 s and the uninterrupted build's wall
time (at least 1.5 s; one draw per stratum, so the whole build is covered). Before the re-run,
every final store path must refuse to open (StoreError) or hold exactly the uninterrupted
build; after it, every store must equal the uninterrupted build (decoded arrays and
attributes, except `built_at`).

Train trial: `python -m train run` (a tiny model, 8 short epochs) is killed 0-0.4 s after a
random point of progress (its config.json written, i.e. compiling or in epoch 1; or epoch k's
checkpoint committed), so kills land in every epoch and checkpoint commit whatever the load
of the machine, and re-run; final.npz and history.json
(minus timing fields) must equal an uninterrupted run with the same seed.

Prints "survived X/N" for each.

`tests/test_crash_safety.py` imports the helpers here and runs a few build trials in CI.
"""
import argparse
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TIMING_FIELDS = ("seconds", "samples_per_second")
TRAIN_EPOCHS = 8


# ------------------------------------------------------------------ a dataset

def write_dataset(root, chrom_sizes, seed=0, cells=("CellA", "CellB"), tracks=("Unique35", "DGF"),
                  tfs=("TFA", "TFB")):
    """FASTA + FactorNet cell folders under `root` -> {"fasta", "cells"} (vectorised, fast)."""
    import pyBigWig
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGTacgtN", np.uint8)
    with open(root / "genome.fa", "wb") as handle:
        for chrom, size in chrom_sizes.items():
            seq = letters[rng.integers(0, 9, size)]
            pad = (-size) % 60
            lines = np.concatenate([seq, np.zeros(pad, np.uint8)]).reshape(-1, 60)
            body = b"\n".join(row.tobytes() for row in lines)
            body = body[: len(body) - pad] + b"\n"
            handle.write(f">{chrom}\n".encode() + body)
    folders = []
    for cell in cells:
        folder = root / cell
        folder.mkdir(exist_ok=True)
        with open(folder / "bigwig.txt", "w") as listing:
            for track in tracks:
                bw = pyBigWig.open(str(folder / f"{track}.bw"), "w")
                bw.addHeader(list(chrom_sizes.items()))
                for chrom, size in chrom_sizes.items():
                    edges = np.unique(np.concatenate([[0, size], rng.integers(0, size, size // 50)]))
                    values = rng.gamma(1.0, 2.0, len(edges) - 1)
                    bw.addEntries([chrom] * (len(edges) - 1), edges[:-1].tolist(),
                                  ends=edges[1:].tolist(), values=values.tolist())
                bw.close()
                listing.write(f"{track}.bw\t{track}\n")
        with open(folder / "chip.txt", "w") as listing:
            for tf in tfs:
                rows = []
                for chrom, size in chrom_sizes.items():
                    for start in np.sort(rng.integers(0, size - 1000, max(20, size // 20_000))):
                        width = int(rng.integers(150, 600))
                        rows.append(f"{chrom}\t{start}\t{start + width}\t.\t0\t.\t5\t-1\t-1\t{width // 2}\n")
                with gzip.open(folder / f"{tf}.narrowPeak.gz", "wt") as out:
                    out.writelines(rows)
                listing.write(f"{tf}.narrowPeak.gz\t{tf}\n")
        (folder / "meta.txt").write_text("0.5\tGEPC1\n-1.25\tGEPC2\n")
        folders.append(folder)
    return {"fasta": root / "genome.fa", "cells": folders, "chrom_sizes": dict(chrom_sizes)}


def genome_sizes(megabases):
    """Chromosome sizes summing to about `megabases` Mb, shaped like a tiny genome."""
    total = int(megabases * 1_000_000)
    return {"chr1": total // 2, "chr2": total // 4, "chr11": total // 8, "chr21": total - total // 2
            - total // 4 - total // 8}


# ------------------------------------------------------------------ comparing stores

def snapshot(store_path):
    """Decoded arrays and attributes of a store (zarr), without build timestamps and paths of
    the store itself -> {"attrs": ..., "arrays": {name: (array, attrs)}}."""
    import zarr
    group = zarr.open_group(str(store_path), mode="r")
    attrs = json.loads(json.dumps(dict(group.attrs)))
    attrs.get("factornet", {}).pop("built_at", None)
    attrs.get("factornet", {}).get("genome", {}).pop("abspath", None)
    arrays = {}
    for name, array in _walk(group):
        arrays[name] = (np.asarray(array[...]), json.loads(json.dumps(dict(array.attrs))))
    return {"attrs": attrs, "arrays": arrays}


def _walk(group, prefix=""):
    for name, member in group.members():
        path = f"{prefix}{name}"
        if hasattr(member, "shape"):
            yield path, member
        else:
            yield from _walk(member, path + "/")


def differences(a, b):
    """Human-readable list of how snapshot `a` differs from `b` (empty when equal)."""
    out = []
    if a["attrs"] != b["attrs"]:
        out.append("group attributes differ")
    for name in sorted(set(a["arrays"]) | set(b["arrays"])):
        if name not in a["arrays"] or name not in b["arrays"]:
            out.append(f"array {name} only in one store")
            continue
        (va, aa), (vb, ab) = a["arrays"][name], b["arrays"][name]
        if va.shape != vb.shape or va.dtype != vb.dtype or not np.array_equal(va, vb):
            out.append(f"array {name} differs")
        if aa != ab:
            out.append(f"attributes of {name} differ")
    return out


def store_names(data):
    return ["genome.zarr"] + [f"{Path(c).name}.zarr" for c in data["cells"]]


def open_store(path):
    """Open a store the way users do (genome or cell); raises StoreError when incomplete."""
    from factornet_jax.reader import open_cell_store, open_genome_store
    from factornet_jax.stores import CELL_FORMAT, read_store_attrs
    attrs = read_store_attrs(path) or {}
    if attrs.get("format") == CELL_FORMAT:
        return open_cell_store(path)
    return open_genome_store(path)


# ------------------------------------------------------------------ killing

def build_command(data, stores_dir, chunk_bases=8192):
    return [sys.executable, "-m", "preprocess", "build", "--genome", str(data["fasta"]),
            "--stores", str(stores_dir), "--chunk-bases", str(chunk_bases),
            "-i", *[str(c) for c in data["cells"]]]


def child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.pop("XLA_FLAGS", None)      # one CPU device, as a user's run
    return env


def run_killed(command, delay, cwd):
    """Start `command`, SIGKILL it after `delay` s -> True if it was killed before it finished."""
    proc = subprocess.Popen(command, cwd=cwd, env=child_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        return run_killed_after(proc, delay)
    except BaseException:           # interrupted ourselves: leave no orphan behind
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def run_to_end(command, cwd, timeout=600):
    proc = subprocess.run(command, cwd=cwd, env=child_env(), capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


def reference_build(data, stores_dir):
    """Uninterrupted build -> {store name: snapshot}, and its wall time in seconds."""
    t0 = time.perf_counter()
    run_to_end(build_command(data, stores_dir), cwd=stores_dir.parent)
    seconds = time.perf_counter() - t0
    return {name: snapshot(stores_dir / name) for name in store_names(data)}, seconds


def build_trial(data, stores_dir, reference, delay):
    """Kill a build after `delay` s, check nothing half-built opens, re-run, compare.

    Returns a dict: killed (bool), delay, problems (list of str; empty = survived).
    """
    from factornet_jax.errors import StoreError
    shutil.rmtree(stores_dir, ignore_errors=True)
    stores_dir.mkdir(parents=True)
    killed = run_killed(build_command(data, stores_dir), delay, cwd=stores_dir.parent)
    partials = sorted(p.name for p in stores_dir.glob("*.partial"))
    problems = []
    complete_after_kill = 0
    for name in store_names(data):
        path = stores_dir / name
        try:
            open_store(path)
        except StoreError:
            continue
        except Exception as err:  # anything but a clean refusal is a failure
            problems.append(f"after kill, opening {name} raised {type(err).__name__}: {err}")
            continue
        complete_after_kill += 1
        problems += [f"after kill, {name}: {d}" for d in differences(snapshot(path), reference[name])]
    run_to_end(build_command(data, stores_dir), cwd=stores_dir.parent)
    for name in store_names(data):
        problems += [f"after re-run, {name}: {d}"
                     for d in differences(snapshot(stores_dir / name), reference[name])]
    return {"killed": killed, "delay": delay, "complete_after_kill": complete_after_kill,
            "partials": partials, "problems": problems}


def kill_delays(rng, n, longest):
    """n kill moments spread over (0.05, longest) s: one uniform draw in each of n strata."""
    edges = np.linspace(0.05, max(longest, 0.1), n + 1)
    return [float(rng.uniform(lo, hi)) for lo, hi in zip(edges[:-1], edges[1:])]


# ------------------------------------------------------------------ train trials

def train_command(store, out, epochs=TRAIN_EPOCHS):
    return [sys.executable, "-m", "train", "run", "-i", str(store), "-v", "chr11", "-t", "chr21",
            "-e", str(epochs), "-ep", "10", "-L", "200", "-w", "10", "-k", "4", "-r", "2", "-d", "8",
            "--batch-size", "20", "--max-steps", "10", "-s", "7", "-o", str(out)]


def model_result(model_dir):
    """final.npz arrays and history.json without timing fields."""
    with np.load(Path(model_dir) / "final.npz", allow_pickle=False) as npz:
        params = {k: npz[k] for k in npz.files}
    history = json.loads((Path(model_dir) / "history.json").read_text())
    for entry in history:
        for key in TIMING_FIELDS:
            entry.pop(key, None)
    return params, history


def train_differences(a, b):
    out = []
    if sorted(a[0]) != sorted(b[0]):
        out.append("final.npz keys differ")
    else:
        out += [f"final.npz {k} differs" for k in sorted(a[0]) if not np.array_equal(a[0][k], b[0][k])]
    if a[1] != b[1]:
        out.append("history.json differs")
    return out


def reference_train(store, out, cwd):
    """Uninterrupted run -> (wall seconds, seconds until its first checkpoint was committed)."""
    proc = subprocess.Popen(train_command(store, out), cwd=cwd, env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.perf_counter()
    first = None
    while proc.poll() is None:
        if first is None and (Path(out) / "checkpoint" / "state.json").is_file():
            first = time.perf_counter() - t0
        time.sleep(0.02)
    if proc.returncode != 0:
        raise RuntimeError(f"train run failed: {proc.stderr.read()[-2000:]}")
    seconds = time.perf_counter() - t0
    return seconds, first if first is not None else seconds


def run_killed_when(command, ready, extra, cwd, timeout=600):
    """Start `command`; once `ready()` holds, wait `extra` s more and SIGKILL it.
    -> True if it was killed before it finished."""
    proc = subprocess.Popen(command, cwd=cwd, env=child_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        t0 = time.perf_counter()
        while proc.poll() is None and time.perf_counter() - t0 < timeout:
            if ready():
                return run_killed_after(proc, extra)
            time.sleep(0.005)
        return False
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def run_killed_after(proc, delay):
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def committed_epochs(out):
    state = Path(out) / "checkpoint" / "state.json"
    try:
        return json.loads(state.read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


def train_trial(store, out, reference, target_epoch, extra, cwd):
    """Kill `train run` `extra` s after epoch `target_epoch` was checkpointed (0: after its
    config.json was written, i.e. during compilation / epoch 1), re-run it, compare."""
    shutil.rmtree(out, ignore_errors=True)
    if target_epoch == 0:
        ready = lambda: (Path(out) / "config.json").is_file()  # noqa: E731
    else:
        ready = lambda: committed_epochs(out) >= target_epoch  # noqa: E731
    killed = run_killed_when(train_command(store, out), ready, extra, cwd)
    committed = committed_epochs(out)
    run_state = Path(out) / "train_state.json"
    finished = run_state.is_file() and json.loads(run_state.read_text()).get("finished")
    if not finished:        # a finished run is refused by -o, as it should be: nothing to redo
        run_to_end(train_command(store, out), cwd)
    return {"killed": killed, "target_epoch": target_epoch, "delay": extra,
            "epochs_committed": committed,
            "problems": train_differences(model_result(out), reference)}


# ------------------------------------------------------------------ main

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-trials", type=int, default=20)
    parser.add_argument("--train-trials", type=int, default=20, help="at most this many")
    parser.add_argument("--train-budget", type=float, default=300, help="seconds for train trials")
    parser.add_argument("--genome-mb", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    # SIGTERM -> SystemExit, so the running child is killed on the way out (see run_killed)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rng = np.random.default_rng(args.seed)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="kill_trials_"))
    data = write_dataset(work / "inputs", genome_sizes(args.genome_mb), seed=args.seed)
    reference, build_seconds = reference_build(data, work / "reference")
    print(f"uninterrupted build: {build_seconds:.2f} s ({args.genome_mb} Mb genome, "
          f"{len(data['cells'])} cell folders)")
    survived = killed = mid_write = 0
    delays = kill_delays(rng, args.build_trials, max(1.5, build_seconds))
    for trial, delay in enumerate(rng.permutation(delays)):
        result = build_trial(data, work / "stores", reference, float(delay))
        survived += not result["problems"]
        killed += result["killed"]
        mid_write += bool(result["partials"])
        print(f"build trial {trial + 1}: kill at {result['delay']:.2f} s "
              f"({'killed' if result['killed'] else 'had finished'}; partial: "
              f"{', '.join(result['partials']) or '-'}; {result['complete_after_kill']} stores "
              f"complete after kill) {'ok' if not result['problems'] else result['problems']}",
              flush=True)
    print(f"build: survived {survived}/{args.build_trials} ({killed} killed before the end, "
          f"{mid_write} of them while a store was being written)")

    if args.train_trials > 0 and args.train_budget > 0:
        store = work / "reference" / "CellA.zarr"
        train_seconds, first_checkpoint = reference_train(store, work / "model_ref", work)
        ref_model = model_result(work / "model_ref")
        print(f"uninterrupted train run: {train_seconds:.1f} s, first checkpoint after "
              f"{first_checkpoint:.1f} s (start-up and compilation before it)")
        survived = killed = done = resumed = 0
        deadline = time.perf_counter() + args.train_budget
        while done < args.train_trials and time.perf_counter() + 2 * train_seconds < deadline:
            # kill moments tied to progress, not wall time (robust to a loaded machine):
            # a little after epoch k was checkpointed, k = 0 (compiling / epoch 1) .. epochs - 1
            target = int(rng.integers(0, TRAIN_EPOCHS))
            result = train_trial(store, work / "model", ref_model, target,
                                 float(rng.uniform(0.0, 0.4)), cwd=work)
            done += 1
            survived += not result["problems"]
            killed += result["killed"]
            resumed += result["killed"] and result["epochs_committed"] > 0
            print(f"train trial {done}: kill {result['delay']:.2f} s after checkpoint of epoch "
                  f"{target} ({'killed' if result['killed'] else 'had finished'}, "
                  f"{result['epochs_committed']} epochs checkpointed) "
                  f"{'ok' if not result['problems'] else result['problems']}", flush=True)
        print(f"train: survived {survived}/{done} ({killed} killed mid-run, {resumed} of them "
              "resumed from a checkpoint)")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
