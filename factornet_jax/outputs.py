"""Output files and folders: plain-or-gzip input handles, and folders that appear whole or not at all."""
import gzip
import os
import shutil
import uuid
from pathlib import Path

from factornet_jax.errors import FactorNetError, InputFileError

GZIP_MAGIC = b"\x1f\x8b"


def open_maybe_gzip(path, what="file"):
    """Binary handle of a plain or gzipped file (gzip detected by its magic bytes, not its name)."""
    path = Path(path)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise InputFileError(path, "file not found; check the path") from None
    except IsADirectoryError:
        raise InputFileError(path, f"is a directory, expected a {what}") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot read file ({exc.strerror})") from None
    if handle.read(2) == GZIP_MAGIC:
        handle.close()
        return gzip.open(path, "rb")
    handle.seek(0)
    return handle


def check_out_dir(out_dir, overwrite, what="output folder"):
    """Refuse an existing output folder unless overwrite (-oc)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FactorNetError(f"{out_dir}: exists and is not a folder; choose another -o")
    if out_dir.exists() and not overwrite:
        raise FactorNetError(f"{out_dir}: {what} already exists; use -oc to overwrite it "
                             "or choose another -o")


def write_dir_atomically(out_dir, overwrite, write_contents, what="output folder"):
    """Create `out_dir` whole: `write_contents(tmp)` fills a hidden folder beside it, which is
    renamed into place only after it returns; on failure nothing is left and OUT is untouched."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir, overwrite, what)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = out_dir.parent / f".{out_dir.name}.partial-{tag}"
    tmp.mkdir()  # not mkdtemp (mode 0700): the folder gets the usual umask
    try:
        write_contents(tmp)
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{tag}"
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
