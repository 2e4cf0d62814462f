"""Writing files so that a crash, a kill or a full disk never leaves one half-written.

Every file trimnet writes goes through ``atomic_write`` (or ``atomic_path`` for writers that
insist on a path of their own, such as ONNX export): the data lands in a temporary file
beside the target (``.NAME.XXXX``) and is renamed over it. ``clean_stale`` removes the
temporary files that a killed process left behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from trimnet.errors import DiskError

# errors of the disk, not of trimnet: the message says what to do
DISK_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
               errno.EDQUOT: "the disk quota is exceeded", errno.EACCES: "permission is denied",
               errno.EPERM: "permission is denied"}


def disk_error(exc: OSError, what: str | os.PathLike | None = None) -> DiskError | None:
    """The user-facing error for a failed write, or None if ``exc`` is not a disk problem."""
    why = DISK_ERRNOS.get(exc.errno)
    if why is None:
        return None
    where = what or exc.filename or "a file"
    return DiskError(f"cannot write {where}: {why}; free space or choose a writable place (--out)")


def usual_mode(bits: int = 0o666) -> int:
    """The mode a plainly created file (0o666) or folder (0o777) gets under this process's umask;
    mkstemp and mkdtemp make theirs private instead."""
    umask = os.umask(0)
    os.umask(umask)
    return bits & ~umask


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it: never half-written."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` if the block succeeds,
    removed if it fails. The file gets the usual permissions (umask), not mkstemp's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, usual_mode())
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write() names no file; the user needs to know which
        raise


def clean_stale(directory: str | os.PathLike, names: tuple[str, ...]) -> list[Path]:
    """Remove the temporary files (``.NAME.XXXX``) a killed writer left in ``directory``.

    Only temporary files of the targets in ``names`` are touched; call it when no other
    process writes there (at the start of a run). Returns what was removed."""
    directory = Path(directory)
    removed = []
    if not directory.is_dir():
        return removed
    for p in directory.iterdir():
        if not p.name.startswith(".") or not p.is_file():
            continue
        target = p.name[1:].rsplit(".", 1)[0]  # ".last.pt.ab12cd" -> "last.pt"
        if target in names:
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def save_openvino_ir(ov, model, path: str | os.PathLike, compress_to_fp16: bool = False) -> Path:
    """``ov.save_model`` through a temporary folder beside ``path``: the ``.bin`` then the ``.xml``
    are renamed into place, so a crash or a full disk never leaves a truncated IR under the name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        staged = tmp / path.name
        ov.save_model(model, str(staged), compress_to_fp16=compress_to_fp16)
        for suffix in (".bin", ".xml"):  # the .xml last: it is what readers open
            part = staged.with_suffix(suffix)
            if part.exists():
                os.chmod(part, usual_mode())
                os.replace(part, path.with_suffix(suffix))
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return path
