"""The stage drivers of a checkout: `python -m train NAME` / `python -m preprocess NAME` expand
FactorNet's published settings (train/presets, preprocess/recipes) into the CLI's flags."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from factornet_jax.cli import build_parser, named_config_argv
from factornet_jax.errors import FactorNetError

REPO = Path(__file__).resolve().parents[1]
PRESETS = REPO / "train" / "presets"


def parse(argv):
    return build_parser(only=tuple(argv[:2])).parse_args(argv)


@pytest.mark.parametrize("name, want", [
    ("onePeak", dict(kernels=128, recurrent=64, dense=128, negatives=3, epochs=5)),
    ("multiTask", dict(kernels=128, recurrent=128, dense=256)),
    ("GENCODE", dict(kernels=64, dense=128, gencode=True)),
    ("metaGENCODE", dict(kernels=128, recurrent=64, dense=128, meta=True, gencode=True)),
    ("meta", dict(negatives=5, meta=True)),
])
def test_presets_give_factornets_published_flags(name, want):
    argv = named_config_argv(["train", "run"], PRESETS, [name, "-f", "MAX", "-i", "s.zarr", "-o", "m"])
    args = vars(parse(argv))
    assert {k: args[k] for k in want} == want
    assert json.loads((PRESETS / f"{name}.json").read_text())["model_type"] == name


def test_user_flags_win_and_needs_are_checked():
    argv = named_config_argv(["train", "run"], PRESETS, ["onePeak", "-f", "MAX", "-i", "s", "-o", "m", "-k", "8"])
    assert parse(argv).kernels == 8
    with pytest.raises(FactorNetError, match="onePeak .* needs -f"):
        named_config_argv(["train", "run"], PRESETS, ["onePeak", "-i", "s", "-o", "m"])


def test_dream_recipe_parses_as_a_build():
    argv = named_config_argv(["preprocess", "build"], REPO / "preprocess" / "recipes",
                             ["dream-hg19", "-i", "data/HepG2", "--genome", "hg19.fa"])
    args = parse(argv)
    assert (args.blacklist, args.annotations, args.genome) == ("hg19", "hg19", "hg19.fa")


def test_drivers_list_and_refuse_in_one_line():
    run = lambda *a: subprocess.run([sys.executable, "-m", *a], cwd=REPO, capture_output=True, text=True)
    listing = run("train", "list")
    assert listing.returncode == 0
    assert all(name in listing.stdout for name in ("multiTask", "onePeak", "meta", "GENCODE", "metaGENCODE"))
    bad = run("train", "onePeak", "-i", "s", "-o", "m")
    assert bad.returncode == 2 and bad.stderr.strip().endswith("needs -f") and "Traceback" not in bad.stderr
    assert "dream-hg19" in run("preprocess", "list").stdout
