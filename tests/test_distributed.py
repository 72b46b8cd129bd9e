"""Multi-host training: 2 processes x 2 CPU devices (gloo on 127.0.0.1) == 1 process x 4 devices."""
import json
import os
import socket
import subprocess
import sys

import numpy as np

TRAIN_FLAGS = ["-t", "chr1", "-e", "2", "-L", "300", "-w", "10", "-k", "4", "-r", "4", "-d", "8",
               "--batch-size", "16", "--max-steps", "6", "-s", "3"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_train(store, out, devices, extra=(), process_id=None):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu")
    argv = [sys.executable, "-m", "train", "run", "-i", str(store), "-oc", str(out), *TRAIN_FLAGS, *extra]
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # train/ is not installed
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=checkout)


def history(model_dir):
    records = json.loads((model_dir / "history.json").read_text())
    return [(r["train_loss"], r["valid_loss"]) for r in records]



def test_two_processes_equal_one_process_same_devices(tiny_stores, tmp_path):
    store = tiny_stores["cell_stores"][0]
    single = run_train(store, tmp_path / "single", 4)
    out_single, _ = single.communicate(timeout=240)
    assert single.returncode == 0, out_single
    port = free_port()
    procs = [run_train(store, tmp_path / "multi", 2,
                       ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                        "--process-id", str(i)]) for i in range(2)]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    np.testing.assert_allclose(history(tmp_path / "multi"), history(tmp_path / "single"), rtol=1e-5)
    from factornet_jax.modeldir import load_params
    a = load_params(tmp_path / "multi" / "final.npz")
    b = load_params(tmp_path / "single" / "final.npz")
    import jax
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


def test_partial_distributed_flags_are_an_error(tiny_stores, tmp_path):
    proc = run_train(tiny_stores["cell_stores"][0], tmp_path / "m", 1, ["--coordinator", "127.0.0.1:1"])
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "--coordinator, --num-processes and --process-id go together" in out
    assert "Traceback" not in out


def test_file_url_store_paths(tiny_stores):
    from factornet_jax import open_cell_store
    cs = open_cell_store("file://" + str(tiny_stores["cell_stores"][0]))
    local = open_cell_store(tiny_stores["cell_stores"][0])
    a = cs.fetch("chr2", 100, 400)
    b = local.fetch("chr2", 100, 400)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def run_predict(store, model, bed, out, devices, extra=()):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu")
    argv = [sys.executable, "-m", "factornet_jax", "predict", "-i", str(store), "-m", str(model),
            "-b", str(bed), "-o", str(out), "--batch", "16", *extra]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_process_predict_writes_the_single_process_file(tiny_stores, tmp_path):
    """Each process scores its share of the BED's blocks; process 0 writes one file in input
    order, byte for byte the content of a one-process run (ladder and scattered rows)."""
    import gzip

    from test_predict import write_bed, write_model
    store = tiny_stores["cell_stores"][0]
    model, _ = write_model(tmp_path / "model", 1, ["TFA"])
    rows = [("chr1", s, s + 200) for s in range(0, 30_000, 50)]
    rows += [("chr2", s, s + 200) for s in range(100, 33_000, 700)] + [("chr1", 7, 300)]
    bed = write_bed(tmp_path / "bins.bed", rows)
    single = run_predict(store, model, bed, tmp_path / "one.bedGraph.gz", 2)
    out_single, _ = single.communicate(timeout=240)
    assert single.returncode == 0, out_single
    port = free_port()
    procs = [run_predict(store, model, bed, tmp_path / "two.bedGraph.gz", 1,
                         ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                          "--process-id", str(i), "--block-lines", "150"]) for i in range(2)]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert "process 1 of 2" in outputs[1]
    import re
    scored = [int(re.search(r"\(([\d,]+) windows scored", out).group(1).replace(",", "")) for out in outputs]
    assert min(scored) > 100                           # both processes did a share
    one = gzip.open(tmp_path / "one.bedGraph.gz", "rt").read()
    two = gzip.open(tmp_path / "two.bedGraph.gz", "rt").read()
    assert len(one.splitlines()) == len(rows) and two == one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bins.bed", "model", "one.bedGraph.gz",
                                                          "two.bedGraph.gz"]
