"""`preprocess build`: one genome store per FASTA, one cell store per input folder."""
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from factornet_jax.cell_folders import check_consistent, read_cell_inputs
from factornet_jax.outputs import STORE, check_output
from factornet_jax.progress import Progress
from factornet_jax.reference_files import genome_shortcut
from factornet_jax.store_schema import DEFAULT_CHUNK_BASES, read_store_attrs
from factornet_jax.stores import build_cell_store, build_genome_store, set_genome_intervals


@dataclass(frozen=True)
class BuildRequest:
    """Everything one `preprocess build` run needs."""
    cell_dirs: tuple            # FactorNet input folders (bigwig.txt, chip.txt, meta.txt)
    genome: str                 # FASTA path (.fai beside it, built if absent)
    stores_dir: str = "stores"  # where stores go: <fasta stem>.zarr, <folder name>.zarr
    chroms: tuple = ()          # restrict to these chromosomes (default: all in the FASTA)
    blacklist: str | None = None        # BED of regions never sampled or scored ("hg19": packaged)
    annotations: str | None = None      # folder of the six GENCODE-model BEDs ("hg19": packaged)
    chunk_bases: int = DEFAULT_CHUNK_BASES  # bases per stored chunk
    jobs: int = 1               # cell stores built in parallel processes
    force: bool = False         # rebuild stores that exist
    genome_store: str | None = None     # explicit genome store path (default from FASTA name)


@dataclass
class BuildReport:
    lines: list = field(default_factory=list)


def genome_store_path(request):
    if request.genome_store:
        return request.genome_store
    stem = os.path.basename(request.genome)
    for ext in (".gz", ".fa", ".fasta", ".fna"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
    return os.path.join(request.stores_dir, stem + ".zarr")


def _progress_for(label, total):
    bars = {}

    def step(chrom, n):
        bar = bars.get(chrom)
        if bar is None:
            for old in bars.values():
                old.close()
            bars.clear()
            bar = bars[chrom] = Progress(f"{label} {chrom}", total=total.get(chrom), unit="bp")
        bar.update(n)
    step.close = lambda: [b.close() for b in bars.values()]
    return step


def _build_one_cell(cell, genome_path, out_path, request):
    attrs = read_store_attrs(genome_path)
    sizes = dict(zip(attrs["chroms"], attrs["sizes"]))
    step = _progress_for(cell.name, sizes) if request.jobs == 1 else None
    summary = build_cell_store(cell, genome_path, out_path, chroms=list(request.chroms) or None,
                               chunk_bases=request.chunk_bases, force=request.force, progress=step)
    if step:
        step.close()
    return summary


def build_stores(request):
    """Build (or confirm up to date) the genome store and every cell store -> list of summaries."""
    t0 = time.perf_counter()
    cells = [read_cell_inputs(d) for d in request.cell_dirs]
    if cells:
        check_consistent(cells)
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        from factornet_jax.errors import FactorNetError
        raise FactorNetError(f"-i: two cell folders share a name ({names}); stores are named "
                             "after folders, so rename one")
    genome_path = genome_store_path(request)
    outs = [os.path.join(request.stores_dir, c.name + ".zarr") for c in cells]
    blacklist = genome_shortcut(request.blacklist, "blacklist")
    annotations = genome_shortcut(request.annotations, "annotations")
    inputs = [request.genome, *request.cell_dirs, blacklist, annotations]
    for path, flag in [(genome_path, "--genome-store" if request.genome_store else "--stores"),
                       *((out, "--stores") for out in outs)]:
        for candidate in (path, path + ".partial"):   # only stores of ours are (re)built
            check_output(candidate, True, STORE, inputs, flag=flag)
    os.makedirs(request.stores_dir, exist_ok=True)
    from factornet_jax.fasta import read_fai
    sizes = {r.name: r.length for r in read_fai(request.genome)}
    step = _progress_for("genome", sizes)
    summaries = [build_genome_store(request.genome, genome_path, chroms=list(request.chroms) or None,
                                    chunk_bases=request.chunk_bases, force=request.force,
                                    progress=step)]
    step.close()
    set_genome_intervals(genome_path, blacklist, annotations)
    if request.jobs > 1 and len(cells) > 1:
        # spawn, not fork: forking a process that has loaded JAX's threads can deadlock
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(request.jobs, len(cells)), mp_context=context) as pool:
            summaries += list(pool.map(_build_one_cell, cells, [genome_path] * len(cells), outs,
                                       [request] * len(cells)))
    else:
        summaries += [_build_one_cell(c, genome_path, o, request) for c, o in zip(cells, outs)]
    return summaries, time.perf_counter() - t0


def format_summary(summaries, seconds):
    parts = []
    for s in summaries:
        state = "built" if s.built else "up to date"
        parts.append(f"{os.path.basename(s.path)} {state} ({s.bytes_on_disk / 1e6:.1f} MB, "
                     f"{s.bytes_on_disk / max(s.bases, 1):.3f} B/base)")
    return f"preprocess build: {'; '.join(parts)}; {seconds:.1f} s"
