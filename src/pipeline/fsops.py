"""Filesystem primitives with the guarantees the pipeline is built on (no overwrite, atomic).

Every function names the path it failed on (StorageError) and never follows a symlink where a
file is expected.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile

from pipeline import failpoints
from pipeline.errors import ClaimLost, StorageError


def write_atomic(path: str, data: bytes, *, replace: bool = True, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` via a temp name, fsync, then rename (or link when not ``replace``).

    A reader sees the old file or the whole new one, never half. With ``replace=False`` an
    existing ``path`` raises FileExistsError and is left untouched.
    """
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)   # fails with EEXIST instead of overwriting
    finally:
        _unlink_quietly(tmp)


def move_noreplace(src: str, dst: str) -> None:
    """Move ``src`` to ``dst``; never overwrite. FileExistsError if ``dst`` exists.

    A hard link then unlink makes "does not exist yet" and "put it there" one atomic step.
    Where links are impossible (another filesystem, no hard links) the file is copied to a
    temp name beside ``dst`` first, so ``dst`` is never seen half-written.
    """
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileNotFoundError:
        if not os.path.lexists(src):
            raise ClaimLost("the file vanished", src) from None
        raise
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        _copy_then_link(src, dst)
    failpoints.reached("after_link")
    os.unlink(src)


def _copy_then_link(src: str, dst: str) -> None:
    folder = os.path.dirname(dst) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        shutil.copystat(src, tmp)
        try:
            os.link(tmp, dst)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                raise FileExistsError(dst) from None
            if os.path.lexists(dst):
                raise FileExistsError(dst) from None
            os.rename(tmp, dst)   # no hard links at all here: check-then-rename is the best we have
    finally:
        _unlink_quietly(tmp)


def fsync_dir(path: str) -> None:
    """Make a rename or link in ``path`` durable (best effort on filesystems that refuse it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_regular(path: str):
    """Open ``path`` for reading only if it is a regular file (no symlink, FIFO, device, dir).

    O_NOFOLLOW refuses a symlink; O_NONBLOCK keeps a FIFO from blocking the open; fstat on
    the descriptor checks what was actually opened. Raises ClaimLost if it vanished.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ClaimLost("the file vanished", path) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegular("a symbolic link") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise NotRegular(_describe_mode(info.st_mode))
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


class NotRegular(StorageError):
    """What was claimed is not a regular file (symlink, FIFO, directory, device)."""


def _describe_mode(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def ensure_dir(path: str, mode: int = 0o700) -> None:
    """Create ``path`` (and parents) if missing; StorageError if it cannot be."""
    try:
        os.makedirs(path, mode=mode, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create folder ({exc.strerror})", path) from None
