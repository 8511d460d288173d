"""Filesystem primitives with the guarantees the pipeline is built on (no overwrite, atomic).

Every function names the path it failed on (StorageError) and never follows a symlink where a
file is expected.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import secrets
import shutil
import stat
import sys

from pipeline import failpoints
from pipeline.errors import ClaimLost, NotRegular, StorageError, Unreadable


def write_atomic(path: str, data: bytes, *, replace: bool = True, mode: int = 0o666,
                 fsync: bool = True) -> None:
    """Write ``data`` to ``path`` via a temp name, fsync (unless not ``fsync``: what need not
    survive a power cut), then rename (or link when not ``replace``).

    A reader sees the old file or the whole new one, never half; on any failure (ENOSPC, EIO)
    the temp file is removed and nothing is left behind. With ``replace=False`` an existing
    ``path`` raises FileExistsError and is left untouched. ``mode`` is filtered by the process
    umask (config ``umask``, applied by the command line: 077 gives 0600).
    """
    folder = os.path.dirname(path) or "."
    fd, tmp = _create_temp(folder, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)   # fails with EEXIST instead of overwriting
    finally:
        unlink_quietly(tmp)


def _create_temp(folder: str, mode: int) -> tuple[int, str]:
    """A new hidden file in ``folder`` created with ``mode`` & ~umask (mkstemp forces 0600,
    which would make the configured umask meaningless for sidecars)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".tmp-{secrets.token_hex(8)}")
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", folder)  # pragma: no cover


def move_noreplace(src: str, dst: str) -> None:
    """Move ``src`` to ``dst``; never overwrite. FileExistsError if ``dst`` exists.

    Linux's rename with RENAME_NOREPLACE does it in one atomic step and needs no access to the
    file itself (a file another user owns, even an unreadable one, can be moved). Elsewhere a
    hard link then unlink makes "does not exist yet" and "put it there" one atomic step. Where
    links are impossible too (another filesystem, protected_hardlinks) a regular file is copied
    to a temp name beside ``dst`` first, so ``dst`` is never seen half-written; anything else
    (a FIFO, a symlink) is never opened or followed for that. A directory cannot be linked: it
    is renamed after a check (a window, and only for a directory someone put where a file was
    claimed, on a system without RENAME_NOREPLACE).
    """
    try:
        if _rename_noreplace(src, dst):
            return
    except FileNotFoundError:
        if not os.path.lexists(src):
            raise ClaimLost("the file vanished", src) from None
        raise
    if os.path.isdir(src) and not os.path.islink(src):
        if os.path.lexists(dst):
            raise FileExistsError(dst)
        os.rename(src, dst)
        return
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


_AT_FDCWD, _RENAME_NOREPLACE = -100, 1


@functools.lru_cache(maxsize=1)
def _renameat2():
    """libc's renameat2, or None where there is none (not Linux, old glibc, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


def _rename_noreplace(src: str, dst: str) -> bool:
    """rename(2) that fails with FileExistsError instead of replacing ``dst``. False when the
    system or the filesystem does not offer it, or ``dst`` is on another filesystem."""
    func = _renameat2()
    if func is None:
        return False
    if func(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.ENOTSUP, errno.EPERM):
        return False      # EPERM: some filesystems refuse the flag itself; the fallbacks decide
    raise OSError(err, os.strerror(err), src, None, dst)   # EEXIST becomes FileExistsError


def _copy_then_link(src: str, dst: str) -> None:
    folder = os.path.dirname(dst) or "."
    fd, tmp = _create_temp(folder, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, open_regular(src) as inp:
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
        unlink_quietly(tmp)


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
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise Unreadable(f"cannot read the file ({exc.strerror})", path) from None
        raise StorageError(f"cannot open ({exc.strerror})", path) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise NotRegular(describe_mode(info.st_mode))
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def describe_mode(mode: int) -> str:
    """What a non-regular file is, for reasons and logs ("a FIFO", "a directory", ...)."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def ensure_dir(path: str, mode: int = 0o777) -> None:
    """Create ``path`` (and parents) if missing; StorageError if it cannot be.

    ``mode`` is filtered by the process umask (config ``umask``: 077 gives 0700)."""
    try:
        os.makedirs(path, mode=mode, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create folder ({exc.strerror})", path) from None
