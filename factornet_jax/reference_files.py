"""The reference files FactorNet shipped in its resources/ folder (HOCOMOCO v9 motifs,
blacklists, GENCODE V19 annotations, CpG islands, hg19 chrom sizes, the DREAM ladder): the
project's top-level `resources/` folder, installed with the package as `factornet_jax.resources`
(setup.cfg), and the defaults they provide.

Found the same way installed (wheel or editable) and in a checkout: through importlib.resources,
else (a checkout that was not installed) the `resources/` folder beside the package. Nothing
outside the project is ever read.
"""
from importlib import resources
from pathlib import Path

from factornet_jax.errors import FactorNetError

PACKAGE = "factornet_jax.resources"
MOTIF_DB = "HOCOMOCOv9.meme"     # canonical motifs: -mo, visualize matches, the simulator
# `preprocess build --blacklist NAME` / `--annotations NAME`: packaged files for a genome name
GENOMES = {"hg19": {"blacklist": "blacklist.bed.gz", "annotations": "."}}


def resource_dir() -> Path:
    """The folder of the packaged reference files."""
    try:
        return Path(str(resources.files(PACKAGE)))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[1] / "resources"


def resource_path(name) -> Path:
    """A packaged reference file (or, for ".", the folder)."""
    path = resource_dir() / name
    if not path.exists():
        raise FactorNetError(f"{path}: packaged reference file missing; reinstall factornet-jax")
    return path


def default_motif_db() -> Path:
    """HOCOMOCO v9 (FactorNet's resources/HOCOMOCOv9.meme)."""
    return resource_path(MOTIF_DB)


def genome_shortcut(value, role):
    """`value` itself when it names an existing path, else the packaged file for a genome name
    (`role` "blacklist" or "annotations"), else `value` unchanged (reported later as missing)."""
    if value is None or Path(value).exists() or value not in GENOMES:
        return value
    return str(resource_path(GENOMES[value][role]))
