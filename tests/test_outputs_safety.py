"""Never destroy what we did not write; one -o / -oc convention for every command.

`-o PATH` writes a new output and refuses an existing one; `-oc PATH` may replace only an
earlier output of the same command (factornet_jax.outputs). Every refusal is one line, exit 2,
and leaves the path byte for byte as it was. The cases with a message are rows of
docs/ERRORS.md (the catalogue of tests/test_errors.py).
"""
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from test_errors import cli, expect_error, tiny_model_dir
from factornet_jax import outputs
from factornet_jax.cli import COMMANDS, build_parser, chosen_command

REPO = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["-v", "chr11", "-t", "chr2", "-e", "1", "-L", "200", "-w", "10", "-k", "4", "-r", "2",
              "-d", "8", "--batch-size", "20", "--max-steps", "2"]


@pytest.fixture
def places(tmp_path, tiny_stores):
    return {tmp_path: "DIR", tiny_stores["root"]: "INPUTS", tiny_stores["dir"]: "STORES"}


def tree(path):
    """Everything under `path` (or the file itself): relative name -> bytes."""
    path = Path(path)
    if path.is_file():
        return {".": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def user_folder(path):
    """A folder of the user's, with a file in it."""
    path.mkdir(parents=True)
    (path / "thesis.txt").write_text("years of work\n")
    return path


@pytest.fixture
def scored(tmp_path):
    """A prediction bedGraph and its peaks, for `evaluate`."""
    pred, peaks = tmp_path / "pred.bedGraph", tmp_path / "peaks.bed"
    pred.write_text("".join(f"chr1\t{s}\t{s + 200}\t{(s // 50) % 7 / 7:.3f}\n"
                            for s in range(0, 20_000, 50)))
    peaks.write_text("chr1\t1000\t1400\nchr1\t9000\t9300\n")
    return ["evaluate", "-p", pred, "--peaks", peaks, "--no-plots"]


# ------------------------------------------------------------------ one convention, every command

MINIMAL_ARGS = {
    ("train", "run"): ["-i", "S"], ("predict",): ["-i", "S", "-m", "M", "-b", "B"],
    ("evaluate",): ["-p", "P", "--peaks", "K"], ("visualize",): ["-i", "S", "-m", "M", "-b", "B"],
    ("import-keras",): ["KERAS"], ("simulate",): [], ("demo",): [],
    ("explain",): ["-i", "S", "-m", "M", "-b", "B"], ("variants",): ["-i", "S", "-m", "M", "-v", "V"],
    ("call",): ["-p", "P"],
}


def test_every_command_takes_o_or_oc_and_nothing_else(capsys):
    """Every command's main output is `-o X` or `-oc X` (FactorNet's); `-o X -oc`, `-o X -oc Y`,
    `--force`, `--overwrite`, `--out` are refused by the parser. (`preprocess build` writes
    content-addressed stores under --stores: a re-run is a no-op, --force rebuilds ours.)"""
    words_with_output = {tuple(w) for w, _, _ in COMMANDS} - {("preprocess", "build")}
    assert words_with_output == set(MINIMAL_ARGS)
    for words, base in MINIMAL_ARGS.items():
        parser = build_parser(only=words)
        argv = [*words, *base]
        args = parser.parse_args(argv + ["-o", "X"])
        assert (args.output, args.output_replace) == ("X", None), words
        args = parser.parse_args(argv + ["-oc", "X"])
        assert args.output_replace == "X", words
        for bad in (["-o", "X", "-oc"], ["-o", "X", "-oc", "Y"], ["-oc"], ["-o", "X", "--force"],
                    ["-o", "X", "--overwrite"], ["--out", "X"]):
            with pytest.raises(SystemExit):
                parser.parse_args(argv + bad)
            assert "error:" in capsys.readouterr().err
    # every command reads them through the one definition in commands/_common.py
    for module in {m for w, m, _ in COMMANDS if tuple(w) in MINIMAL_ARGS}:
        text = (REPO / "factornet_jax" / "commands" / f"{module}.py").read_text()
        assert "add_output_arguments(" in text and "output_from_args(args)" in text, module
        assert '"-o"' not in text and '"-oc"' not in text, module


# ------------------------------------------------------------------ refusals leave everything as it was

def test_oc_on_a_user_folder_leaves_it_and_says_so(tmp_path, scored, capsys, places):
    target = user_folder(tmp_path / "data")
    before = tree(target)
    expect_error("output_oc_foreign_folder", scored + ["-oc", target], capsys, places,
                 names=["-oc", target, "not a report folder"])
    assert tree(target) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_o_on_our_own_output_points_to_oc(tmp_path, scored, capsys, places):
    target = tmp_path / "report"
    assert cli(scored + ["-o", target], capsys)[0] == 0
    before = tree(target)
    expect_error("output_o_ours_exists", scored + ["-o", target], capsys, places,
                 names=["-o", target, f"-oc {target}"])
    assert tree(target) == before
    # a file of the user's put inside our output: -oc refuses to replace the folder with it
    (target / "notes.txt").write_text("the user's, not ours\n")
    before = tree(target)
    expect_error("output_oc_foreign_entry", scored + ["-oc", target], capsys, places,
                 names=["-oc", target / "notes.txt"])
    assert tree(target) == before
    (target / "notes.txt").unlink()
    assert cli(scored + ["-oc", target], capsys)[0] == 0
    assert (target / "metrics.json").is_file()


def test_a_file_where_a_folder_is_expected(tmp_path, scored, capsys, places):
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    expect_error("output_file_for_folder", scored + ["-o", target], capsys, places,
                 names=["-o", target, "is a file"])
    assert target.read_text() == "mine\n"
    assert cli(scored + ["-oc", target], capsys)[0] == 2 and target.read_text() == "mine\n"


def test_oc_on_the_current_folder(tmp_path, scored, capsys, places, monkeypatch):
    work = user_folder(tmp_path / "work")
    outputs.write_marker(work, "evaluate")       # even one that looks like ours
    monkeypatch.chdir(work)
    before = tree(work)
    expect_error("output_oc_current_folder", scored + ["-oc", "."], capsys, places,
                 names=["-oc .", "current folder"])
    assert cli(scored + ["-oc", ".."], capsys)[0] == 2          # holds the current folder
    assert tree(work) == before


def test_oc_on_the_home_folder(tmp_path, scored, capsys, places, monkeypatch):
    home = user_folder(tmp_path / "home")
    monkeypatch.setenv("HOME", str(home))
    before = tree(home)
    expect_error("output_oc_home", scored + ["-oc", home], capsys, places,
                 names=["-oc", home, "home folder"])
    assert cli(scored + ["-oc", "~"], capsys)[0] == 2
    assert tree(home) == before


def test_oc_on_a_folder_holding_an_input(tmp_path, capsys, places):
    """The inputs' parent, even when it looks like an earlier report of ours."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    outputs.write_marker(folder, "evaluate")
    (folder / "pred.bedGraph").write_text("chr1\t0\t200\t0.5\n")
    (folder / "peaks.bed").write_text("chr1\t0\t200\n")
    before = tree(folder)
    argv = ["evaluate", "-p", folder / "pred.bedGraph", "--peaks", folder / "peaks.bed", "-oc", folder]
    expect_error("output_oc_holds_input", argv, capsys, places, names=["-oc", folder, "holds the input"])
    assert tree(folder) == before


def test_train_oc_on_its_input_store(tmp_path, tiny_stores, capsys, places):
    store = Path(shutil.copytree(tiny_stores["cell_stores"][0], tmp_path / "CellA.zarr"))
    shutil.copytree(tiny_stores["genome"], tmp_path / "genome.zarr")
    before = tree(store)
    expect_error("output_oc_input_store", ["train", "run", "-i", store, *TINY_TRAIN, "-oc", store],
                 capsys, places, names=["-oc", store, "is the input"])
    assert tree(store) == before


def test_store_path_that_is_not_a_store(tmp_path, tiny_inputs, capsys, places):
    target = user_folder(tmp_path / "data")
    argv = ["preprocess", "build", "--genome", tiny_inputs["fasta"], "--stores", tmp_path / "stores",
            "--genome-store", target, "--force"]
    expect_error("output_store_path_foreign", argv, capsys, places,
                 names=["--genome-store", target, "not a store"])
    assert [p.name for p in target.iterdir()] == ["thesis.txt"]


# ------------------------------------------------------------------ predict: files of ours only

def test_predict_replaces_only_its_own_files(tmp_path, tiny_stores, capsys, places):
    model = tiny_model_dir(tmp_path / "model")
    bed = tmp_path / "bins.bed"
    bed.write_text("".join(f"chr1\t{s}\t{s + 200}\n" for s in range(1_000, 3_000, 50)))
    base = ["predict", "-i", tiny_stores["cell_stores"][0], "-m", model, "-f", "TFA", "-b", bed,
            "--batch", 8]
    mine = tmp_path / "mine.bedGraph.gz"
    mine.write_bytes(gzip.compress(b"chr1\t0\t200\t0.9\n"))
    before = mine.read_bytes()
    expect_error("output_predict_foreign_file", base + ["-oc", mine], capsys, places,
                 names=["-oc", mine, "not a prediction file"])
    assert mine.read_bytes() == before

    pred, bw = tmp_path / "p.bedGraph.gz", tmp_path / "p.bw"
    code, out, err = cli(base + ["-o", pred, "--bigwig", bw], capsys)
    assert code == 0, err
    assert outputs.gzip_comment(pred).startswith(outputs.PREDICTION_COMMENT)
    with gzip.open(pred, "rt") as handle:                       # readers see only the DREAM lines
        lines = handle.read().splitlines()
    assert len(lines) == 40 and lines[0].startswith("chr1\t1000\t1200\t")
    first = (pred.read_bytes(), bw.read_bytes())
    assert cli(base + ["-oc", pred, "--bigwig", bw], capsys)[0] == 0   # ours: replaced
    assert (pred.read_bytes(), bw.read_bytes()) == first              # same bytes again

    # a bigWig that is not the one recorded by our prediction file (a user's DNase track)
    import conftest
    user_bw = tmp_path / "DNase.bw"
    conftest.write_bigwig(user_bw, {"chr1": 50_000}, np.random.default_rng(0))
    before = (user_bw.read_bytes(), pred.read_bytes())
    expect_error("output_predict_foreign_bigwig", base + ["-oc", pred, "--bigwig", user_bw], capsys,
                 places, names=["--bigwig", user_bw])
    assert (user_bw.read_bytes(), pred.read_bytes()) == before


# ------------------------------------------------------------------ replacing is atomic

KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path
from factornet_jax import outputs
target, point = Path(sys.argv[1]), sys.argv[2]

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

def contents(folder):
    (folder / "result.txt").write_text("new")
    if point == "writing":
        die()

if point == "after-swap":
    outputs.shutil.rmtree = die                 # killed before the old output is deleted
if point == "between-renames":                  # a filesystem without RENAME_EXCHANGE
    outputs._exchange = lambda a, b: False
    real, calls = os.rename, []
    def rename(a, b):
        calls.append(a)
        if len(calls) == 2:
            die()
        real(a, b)
    outputs.os.rename = rename
outputs.write_dir_atomically(target, True, contents, outputs.REPORT)
"""


@pytest.mark.parametrize("point", ["writing", "after-swap", "between-renames"])
def test_a_kill_during_replace_leaves_old_or_new_complete(tmp_path, point):
    target = tmp_path / "report"
    target.mkdir()
    (target / "result.txt").write_text("old")
    outputs.write_marker(target, "evaluate")
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(target), point], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    outputs.check_output(target, True, outputs.REPORT)    # the next command: puts back a set-aside
    expected = {"writing": "old", "after-swap": "new", "between-renames": "old"}[point]
    assert (target / "result.txt").read_text() == expected
    assert outputs.marker_command(target) == "evaluate"
    # and the next replace works
    outputs.write_dir_atomically(target, True, lambda d: (d / "result.txt").write_text("newer"),
                                 outputs.REPORT)
    assert (target / "result.txt").read_text() == "newer"


# ------------------------------------------------------------------ train run

def train_cli(argv, capsys):
    return cli(["train", "run", *argv], capsys)


def fail_at_step(monkeypatch, after_steps):
    """Make train step number `after_steps` + 1 raise KeyboardInterrupt (a Ctrl-C mid-epoch)."""
    from factornet_jax import training
    real_make_steps = training.make_steps

    def make_steps(*args, **kwargs):
        train, evaluate, data, replicated = real_make_steps(*args, **kwargs)
        calls = []

        def interrupted(state, batch, key):
            calls.append(1)
            if len(calls) > after_steps:
                raise KeyboardInterrupt
            return train(state, batch, key)
        return interrupted, evaluate, data, replicated
    monkeypatch.setattr(training, "make_steps", make_steps)


@pytest.fixture(scope="module")
def finished_run(tiny_stores, tmp_path_factory):
    """One tiny finished `train run -o` (stdout/stderr kept), after two failed attempts: a
    setting that fails before training (no validation examples at -L 10000) and a run
    interrupted in its first epoch. Neither leaves anything that blocks the corrected command."""
    root = tmp_path_factory.mktemp("finished_run")
    out = root / "model"
    store = tiny_stores["cell_stores"][0]
    import contextlib
    import io

    from factornet_jax.cli import run_command

    def run(argv, patch_steps=None):
        stdout, stderr = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as monkeypatch, contextlib.redirect_stdout(stdout), \
                contextlib.redirect_stderr(stderr):
            if patch_steps is not None:
                fail_at_step(monkeypatch, patch_steps)
            argv = ["train", "run", *map(str, argv)]
            code = run_command(build_parser(only=chosen_command(argv)), argv)
        return code, stdout.getvalue(), stderr.getvalue()

    argv = ["-i", store, *TINY_TRAIN, "-o", out]
    attempts = [run(argv + ["-L", "10000", "-w", "10"]), run(argv, patch_steps=0)]
    after_attempts = out.exists()
    result = run(argv + ["-mo"])
    return {"out": out, "store": store, "argv": argv, "attempts": attempts,
            "after_attempts": after_attempts, "result": result, "run": run}


def test_failed_runs_leave_nothing_and_the_corrected_command_succeeds(finished_run):
    (code1, _, err1), (code2, _, err2) = finished_run["attempts"]
    assert code1 == 2 and "no validation examples" in err1, err1
    assert code2 == 130, err2                       # interrupted before its first checkpoint
    assert finished_run["after_attempts"] is False  # no model dir, no state file
    code, out, err = finished_run["result"]
    assert code == 0, err
    assert json.loads((finished_run["out"] / "train_state.json").read_text())["finished"]


def test_train_progress_and_warnings_go_to_stderr(finished_run):
    code, out, err = finished_run["result"]
    assert out.startswith("train run: multiTask model in") and out.count("\n") == 1, out
    assert "epoch 1:" in err and "-mo" in err and "warning" in err      # TFA, TFB: no motif


def test_train_oc_keeps_the_old_model_until_the_new_one_is_complete(finished_run, tmp_path, capsys):
    from factornet_jax.modeldir import load_model
    target = Path(shutil.copytree(finished_run["out"], tmp_path / "model"))
    before = tree(target)
    argv = finished_run["argv"][:-2] + ["-e", "2", "-oc", target]
    code, _, err = finished_run["run"](argv, patch_steps=2)   # Ctrl-C in epoch 2, after a checkpoint
    assert code == 130, err
    assert tree(target) == before                               # the old model, whole and loadable
    load_model(target)
    partial = tmp_path / ".model.partial"
    assert (partial / "checkpoint" / "state.json").is_file()
    # the same -oc command again resumes the partial run and swaps it in when finished
    code, out, err = finished_run["run"](argv)
    assert code == 0, err
    assert f"resuming {partial} after epoch 1" in err
    assert not partial.exists()
    assert [h["epoch"] for h in json.loads((target / "history.json").read_text())] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_train_oc_refuses_a_model_dir_holding_a_file_it_did_not_write(finished_run, tmp_path, capsys):
    target = Path(shutil.copytree(finished_run["out"], tmp_path / "model"))
    (target / "notes.txt").write_text("the user's, not ours\n")
    before = tree(target)
    code, _, err = finished_run["run"](finished_run["argv"][:-2] + ["-oc", target])
    assert code == 2 and f"holds {target / 'notes.txt'}" in err, err
    assert tree(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_train_o_refuses_a_finished_run(finished_run, tmp_path, tiny_stores, capsys, places):
    target = tmp_path / "model"
    target.mkdir()
    (target / "train_state.json").write_text(json.dumps({"finished": True, "run": {}}))
    before = tree(target)
    expect_error("train_finished_run",
                 ["train", "run", "-i", tiny_stores["cell_stores"][0], *TINY_TRAIN, "-o", target],
                 capsys, places, names=["-o", target, "finished run", f"-oc {target}"])
    assert tree(target) == before


# ------------------------------------------------------------------ no silent substitution

def test_unknown_train_setting_is_an_error_naming_it(tmp_path, tiny_stores, capsys, places):
    from factornet_jax.train_config import TrainConfig
    from factornet_jax.errors import ConfigError
    config = TrainConfig(inputs=("a.zarr",))
    assert TrainConfig.from_dict({**config.to_dict(), "model_type": "multiTask"}) == config
    with pytest.raises(ConfigError, match="future_knob"):
        TrainConfig.from_dict({**config.to_dict(), "future_knob": 1})
    # a model dir of an unfinished run written by a newer version
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text(json.dumps(
        {"format": "factornet-jax/model", "version": 1, "train": {**config.to_dict(), "future_knob": 1}}))
    (target / "train_state.json").write_text(json.dumps({"finished": False, "run": {}}))
    before = tree(target)
    expect_error("train_newer_settings",
                 ["train", "run", "-i", tiny_stores["cell_stores"][0], *TINY_TRAIN, "-o", target],
                 capsys, places, names=[target / "config.json", "future_knob"])
    assert tree(target) == before


def test_unknown_model_setting_is_an_error_naming_it(tmp_path, tiny_stores, capsys, places):
    model = tiny_model_dir(tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    config["model"]["future_knob"] = 1
    (model / "config.json").write_text(json.dumps(config))
    bed = tmp_path / "regions.bed"
    bed.write_text("chr1\t1000\t1200\n")
    argv = ["predict", "-i", tiny_stores["cell_stores"][0], "-m", model, "-f", "TFA", "-b", bed,
            "-o", tmp_path / "out.bedGraph.gz"]
    expect_error("model_newer_settings", argv, capsys, places, names=["future_knob"])


def test_checkpoint_best_without_best_npz_says_so(tmp_path, capsys):
    from factornet_jax.modeldir import load_model
    model = tiny_model_dir(tmp_path / "model")
    (model / "best.npz").rename(model / "final.npz")
    loaded = load_model(model, which="best")
    assert loaded.params_path.name == "final.npz"
    err = capsys.readouterr().err
    assert "warning" in err and "no best.npz" in err and "final.npz" in err
    load_model(model, which="final")
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------ the same installed and in a checkout

def installed_tree(tmp_path):
    """The files a wheel installs: `pip wheel` where the `wheel` package is present, else
    setuptools' build_py (the step bdist_wheel runs to collect packages and package data),
    built from a copy of the sources so the checkout gets no build/ or egg-info."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("factornet_jax", "resources", "preprocess", "train"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    import importlib.util
    if importlib.util.find_spec("wheel") is not None:
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
               "-w", str(tmp_path / "dist"), str(source)]
    else:
        cmd = [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py",
               "--build-lib", str(target)]
    proc = subprocess.run(cmd, cwd=source, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        pytest.skip(f"cannot build the package here: {proc.stderr.strip()[-300:]}")
    for wheel in (tmp_path / "dist").glob("*.whl") if (tmp_path / "dist").is_dir() else []:
        zipfile.ZipFile(wheel).extractall(target)
    return target


INSTALLED_CHECK = """
import json, sys
import factornet_jax
from factornet_jax.meme import read_meme
from factornet_jax.reference_files import default_motif_db, genome_shortcut
from factornet_jax.stores import find_annotation_files
print(json.dumps({"package": factornet_jax.__file__, "motifs": str(default_motif_db()),
                  "n_motifs": len(read_meme(default_motif_db())),
                  "blacklist": genome_shortcut("hg19", "blacklist"),
                  "annotations": sorted(find_annotation_files(genome_shortcut("hg19", "annotations")))}))
"""


def test_installed_package_finds_its_reference_files(tmp_path):
    site = installed_tree(tmp_path)
    assert not (site / "factornet_jax" / "data").exists()          # one home: resources/
    assert not (site / "preprocess").exists() and not (site / "train").exists()  # checkout-only shims
    cwd = tmp_path / "elsewhere"               # no ../shared, no checkout on the path
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", INSTALLED_CHECK], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**env, "PYTHONPATH": str(site)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = json.loads(proc.stdout)
    assert found["package"].startswith(str(site))
    for key in ("motifs", "blacklist"):
        assert found[key].startswith(str(site / "factornet_jax" / "resources")), found
    assert found["n_motifs"] == 428
    assert found["annotations"] == ["cds", "cpg", "intron", "promoter", "utr3", "utr5"]


def test_nothing_reads_shared_at_run_time():
    import re
    # a path built on the shared folder: / "shared", "shared" /, "../shared", parents[..] ... shared
    pattern = re.compile(r'/\s*"shared"|"shared"\s*/|\.\./shared|shared/data')
    for path in (REPO / "factornet_jax").rglob("*.py"):
        assert not pattern.search(path.read_text()), path
    assert pattern.search('SHARED = Path(__file__).parents[2] / "shared"')
