"""Outputs: what a command may write or replace, and how it replaces it (atomically).

This is the one home of atomic writes (files and folders that appear whole or not at all):
`write_file_atomically` / `write_text_atomically` (a file), `write_dir_atomically` (a folder,
with the -o / -oc checks), `replace_path` (commit a finished sibling), `hidden_sibling` (the
name of that sibling) and `fsync_dir`. Other modules use these, never their own rename dance.

The -o / -oc convention (FactorNet's), the same in every command:

    -o PATH    write a new output; an existing one is refused (an empty folder counts as new)
    -oc PATH   the same, and an earlier output of that command at PATH is replaced

Only our own output is ever replaced (`OutputKind.is_ours`): a model directory (config.json with
our format tag), a folder holding `MARKER` that names the command, a prediction file whose gzip
header carries `PREDICTION_COMMENT` (and the bigWig it records), a store with our attributes. An output of
ours that holds an entry we did not write (a user's file put inside it) is not replaced either
(`OutputKind.foreign_entries`: the entries MARKER lists, or a model directory's known files). Refused, whatever the flag, with one line naming the path
and nothing changed: the home folder, the current folder, the filesystem root, a path that is
or holds one of the command's inputs, a symbolic link, a file where a folder is expected (and
the reverse), and anything else that is not empty.

Replacing is atomic: the new output is written beside the old one under a hidden name
(`.NAME.partial-*`) and swapped in by one rename (Linux renameat2 RENAME_EXCHANGE). Where the
filesystem lacks that, two renames put the old output aside as `.NAME.old-*` and the new one
in place; a kill between them leaves both complete, and the next command that checks PATH moves
the old one back (`check_output`). So at every instant PATH holds the old output or the new one,
complete.
"""
import ctypes
import errno
import glob
import gzip
import hashlib
import json
import math
import os
import shutil
import struct
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from factornet_jax.bed import GZIP_MAGIC
from factornet_jax.errors import InputFileError, OutputError

MARKER = ".factornet-output.json"       # in every output folder we create, except model dirs
MARKER_FORMAT = "factornet-jax/output"
PREDICTION_COMMENT = "factornet-jax/predict v1"   # gzip FCOMMENT of a prediction bedGraph.gz
# what a model directory holds (modeldir.py writes them; training adds its resume files)
MODEL_DIR_ENTRIES = frozenset({"config.json", "best.npz", "final.npz", "history.json", "chip.txt",
                               "feature.txt", "bigwig.txt", "meta.txt", "calibration.json",
                               "signal_profile.json"})


def json_ready(value):
    """A value ready for json.dumps(allow_nan=False): NaN -> None (JSON null), numpy
    scalars -> Python numbers, recursively through dicts, lists and tuples."""
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


# ------------------------------------------------------------------ what is ours

@dataclass(frozen=True)
class OutputKind:
    """What a command writes at its -o / -oc path, and how an earlier one is recognised."""
    command: str                 # the command, as named in messages and in MARKER ("evaluate")
    what: str                    # the output, in words ("report folder")
    folder: bool = True          # a folder (False: a file)
    recognise: Callable | None = None   # path -> bool; None: MARKER names `command`
    entries: frozenset | None = None    # names this output may hold; None: those MARKER lists

    def foreign_entries(self, path) -> list:
        """Entries of the folder `path` (ours) that this command did not write there, e.g. a
        user's file put inside later: -oc refuses to replace the folder while they are there."""
        if not self.folder or not Path(path).is_dir():
            return []
        ours = self.entries if self.entries is not None else marker_entries(path)
        if ours is None:
            return []
        return sorted(name for name in os.listdir(path)
                      if name != MARKER and name not in ours and not _our_temporary(name))

    def is_ours(self, path) -> bool:
        """True when `path` is recognisably an output of this kind that we wrote."""
        if self.recognise is not None:
            return bool(self.recognise(Path(path)))
        return marker_command(path) == self.command


def write_marker(folder, command):
    """Mark `folder`, once filled, as an output of `command` (what lets a later -oc replace it),
    listing the entries it holds (what a later -oc may remove)."""
    entries = sorted(name for name in os.listdir(folder) if name != MARKER)
    text = json.dumps({"format": MARKER_FORMAT, "version": 1, "command": command,
                       "entries": entries}) + "\n"
    (Path(folder) / MARKER).write_text(text, encoding="utf-8")


def _read_marker(folder):
    try:
        data = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("format") == MARKER_FORMAT else {}


def marker_entries(folder):
    """The entries `folder`'s MARKER lists (a set), or None when it lists none."""
    entries = _read_marker(folder).get("entries")
    return set(entries) if isinstance(entries, list) else None


def _our_temporary(name):
    """A hidden sibling or temporary file of ours (`hidden_sibling` names)."""
    return name.startswith(".") and any(f".{tag}-" in name for tag in ("tmp", "partial", "old"))


def marker_command(folder):
    """The command named by `folder`'s MARKER, or None."""
    return _read_marker(folder).get("command")


def _is_model_dir(path):
    from factornet_jax.modeldir import is_model_dir
    return is_model_dir(path)


def _is_store(path):
    from factornet_jax.store_schema import read_store_attrs
    return read_store_attrs(path) is not None


def gzip_comment(path):
    """The FCOMMENT field of a gzip file's header (str), or None (not gzip, or no comment)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    if len(head) < 10 or head[:3] != GZIP_MAGIC + b"\x08":
        return None
    flags, at = head[3], 10
    if flags & 4:                                   # FEXTRA
        if len(head) < at + 2:
            return None
        at += 2 + struct.unpack("<H", head[at:at + 2])[0]
    for field in (8, 16):                           # FNAME, then FCOMMENT
        if flags & field:
            end = head.find(b"\0", at)
            if end < 0:
                return None
            if field == 16:
                return head[at:end].decode("latin-1")
            at = end + 1
    return None


def _is_prediction(path):
    comment = gzip_comment(path)
    return comment is not None and comment.startswith(PREDICTION_COMMENT)


KERAS_IMPORT = OutputKind("import-keras", "model directory", recognise=_is_model_dir,
                          entries=MODEL_DIR_ENTRIES)
REPORT = OutputKind("evaluate", "report folder")
VISUALIZATION = OutputKind("visualize", "visualize folder")
SIMULATION = OutputKind("simulate", "simulated dataset")
DEMO = OutputKind("demo", "demo folder")
PREDICTION = OutputKind("predict", "prediction file", folder=False, recognise=_is_prediction)
# a store (or its partial) is rebuilt in place by `preprocess build`; only ours ever is
STORE = OutputKind("preprocess build", "store", recognise=_is_store)


# ------------------------------------------------------------------ may we write here?

def _real(path):
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def protected_reason(path, inputs=()):
    """Why `path` may never be an output (None when it may): it is, or holds, the home folder,
    the current folder or one of `inputs`, or it is the filesystem root."""
    target = _real(path)
    if target == Path(target.anchor):
        return "is the filesystem root"
    places = [(Path.cwd(), "the current folder")]
    try:
        places.insert(0, (Path.home(), "your home folder"))
    except RuntimeError:           # no HOME
        pass
    places += [(item, f"the input {item}") for item in inputs if item is not None]
    for place, name in places:
        place = _real(place)
        if target == place:
            return f"is {name}"
        if target in place.parents:
            return f"holds {name}"
    return None


def check_output(path, overwrite, kind: OutputKind, inputs=(), flag=None):
    """Refuse `path` as the output of `kind` unless it is new (or an empty folder), or
    `overwrite` (-oc) and it is an earlier output of ours; raises OutputError, changes nothing
    (except moving back an old output that a kill left aside mid-replace). Returns Path(path)."""
    path = Path(path)
    flag = flag or ("-oc" if overwrite else "-o")
    _restore_interrupted(path)
    reason = protected_reason(path, inputs)
    if reason:
        raise OutputError(f"{flag} {path}: {reason}; give a new path for the {kind.what} "
                          "(nothing was changed)")
    if not os.path.lexists(path):
        return path
    if path.is_symlink():
        raise OutputError(f"{flag} {path}: is a symbolic link; give the real path or a new one "
                          "(nothing was changed)")
    if kind.folder and not path.is_dir():
        raise OutputError(f"{flag} {path}: is a file, not a folder; give a new path for the "
                          f"{kind.what} (nothing was changed)")
    if not kind.folder and path.is_dir():
        raise OutputError(f"{flag} {path}: is a folder; give a file name for the {kind.what}")
    if kind.folder and not any(path.iterdir()):
        return path                         # an empty folder holds nothing to lose
    if not kind.is_ours(path):
        raise OutputError(f"{flag} {path}: exists and is not a {kind.what} written by factornet "
                          f"{kind.command}; give a new path, or move it away yourself "
                          "(nothing was changed)")
    if not overwrite:
        raise OutputError(f"{flag} {path}: {kind.what} exists; use -oc {path} to replace it, or "
                          "give a new path")
    foreign = kind.foreign_entries(path)
    if foreign:
        raise OutputError(f"{flag} {path}: holds {path / foreign[0]}, which factornet "
                          f"{kind.command} did not write; move it out first, or give a new path "
                          "(nothing was changed)")
    return path


# ------------------------------------------------------------------ replacing atomically

def hidden_sibling(path, tag):
    """An unused hidden name beside `path`: `.NAME.<tag>-<pid>-<random>`."""
    path = Path(path)
    return path.parent / f".{path.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _exchange(a, b):
    """Swap two existing paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the
    system or filesystem cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


def fsync_dir(folder):
    """Make renames in `folder` durable (best effort: a filesystem that cannot is left be)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_path(new, target):
    """Move the finished output `new` to `target`, atomically replacing what is there (see the
    module docstring); the old output is deleted afterwards."""
    new, target = Path(new), Path(target)
    leftover = None
    if not new.is_dir() or not os.path.lexists(target):
        os.replace(new, target)                 # a file, or nothing to replace: one rename
    elif _exchange(new, target):
        leftover = new                          # `new` now holds the old output
    else:
        leftover = hidden_sibling(target, "old")
        os.rename(target, leftover)
        try:
            os.rename(new, target)
        except BaseException:
            os.rename(leftover, target)
            raise
    fsync_dir(target.parent)
    if leftover is not None:
        shutil.rmtree(leftover, ignore_errors=True)


def write_file_atomically(path, write):
    """Create or replace the file `path` whole: `write(handle)` fills a hidden sibling
    (`.NAME.tmp-*`, opened "xb": not mkstemp, whose files are 0600, so it gets the usual umask),
    which is flushed, fsynced and renamed onto `path` (`replace_path`); on failure the sibling is
    removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = hidden_sibling(path, "tmp")
    try:
        with open(tmp, "xb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        replace_path(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomically(path, text: str):
    """`write_file_atomically` for a UTF-8 text file."""
    write_file_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


def _restore_interrupted(path):
    """A kill between the two renames of `replace_path`'s fallback leaves `path` missing and the
    old output complete at `.NAME.old-*`: put it back."""
    if os.path.lexists(path):
        return
    pattern = os.path.join(glob.escape(str(path.parent)), glob.escape(f".{path.name}") + ".old-*")
    olds = sorted(glob.glob(pattern), key=os.path.getmtime)
    if olds:
        os.rename(olds[-1], path)
        from factornet_jax.progress import warn
        warn(f"{path}: restored the earlier output that an interrupted replace left at {olds[-1]}")


def write_dir_atomically(out_dir, overwrite, write_contents, kind: OutputKind, inputs=()):
    """Create the folder `out_dir` whole: `write_contents(tmp)` fills a hidden folder beside it,
    which gets our MARKER (for marker kinds) and then replaces `out_dir` (see `replace_path`);
    on failure the hidden folder is removed and `out_dir` is untouched."""
    out_dir = check_output(out_dir, overwrite, kind, inputs)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = hidden_sibling(out_dir, "partial")
    tmp.mkdir()  # not mkdtemp (mode 0700): the folder gets the usual umask
    try:
        write_contents(tmp)
        if kind.recognise is None:
            write_marker(tmp, kind.command)
        check_output(out_dir, overwrite, kind, inputs)     # still ours (or absent) after the work
        replace_path(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


# ------------------------------------------------------------------ prediction files

class MarkedGzipWriter:
    """A gzip file whose header carries a comment (FCOMMENT) of fixed length, rewritable once the
    body is written (`set_comment`); gzip readers see only the body.

    `raw` is a binary file opened for writing and seeking; `close()` finishes the gzip member
    (the caller closes `raw`). Same bytes for the same data and comment (mtime 0).
    """

    def __init__(self, raw, comment, level=6):
        self.raw = raw
        raw.write(GZIP_MAGIC + b"\x08\x10" + b"\0\0\0\0" + b"\0\xff")   # deflate, FCOMMENT, mtime 0
        self._comment_at, self._comment_len = raw.tell(), len(comment)
        raw.write(comment.encode("latin-1") + b"\0")
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._crc, self._size = 0, 0

    def write(self, data):
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self.raw.write(self._deflate.compress(data))

    def set_comment(self, comment):
        if len(comment) != self._comment_len:
            raise ValueError("the comment must keep its length")
        end = self.raw.tell()
        self.raw.seek(self._comment_at)
        self.raw.write(comment.encode("latin-1"))
        self.raw.seek(end)

    def close(self):
        self.raw.write(self._deflate.flush())
        self.raw.write(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))


def file_fingerprint(path, edge=1 << 20):
    """sha256 of a file's size, first and last MiB: what a prediction bedGraph records of the
    bigWig written with it, so that a later -oc can recognise that bigWig as ours."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest.update(str(size).encode())
        digest.update(handle.read(edge))
        handle.seek(max(size - edge, 0))
        digest.update(handle.read(edge))
    return digest.hexdigest()


def prediction_comment(bigwig_fingerprint=None, std_fingerprint=None):
    """The gzip comment of a prediction file: PREDICTION_COMMENT and the fingerprints of the
    bigWigs written with it (64 hex digits, or '-' x 64 without one: a fixed length, filled in
    when the bigWigs are done): the scores' (--bigwig) and the ensemble spread's (--std-bigwig)."""
    return (f"{PREDICTION_COMMENT} bigwig={bigwig_fingerprint or '-' * 64} "
            f"std={std_fingerprint or '-' * 64}")


def bigwig_kind(prediction_path, which="bigwig"):
    """A bigWig output of predict (`which`: "bigwig" for --bigwig, "std" for --std-bigwig):
    ours when it is the bigWig recorded by our prediction file at `prediction_path` (same
    fingerprint)."""
    def recognise(path):
        comment = gzip_comment(prediction_path) or ""
        fields = dict(item.partition("=")[::2] for item in comment.split()[1:]
                      if "=" in item) if comment.startswith(PREDICTION_COMMENT) else {}
        recorded = fields.get(which, "")
        return (len(recorded) == 64 and set(recorded) != {"-"} and path.is_file()
                and file_fingerprint(path) == recorded)
    return OutputKind("predict", "bigWig", folder=False, recognise=recognise)
