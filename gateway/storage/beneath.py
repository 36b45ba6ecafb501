"""Open a path beneath a directory fd without following a single symlink (docs/security.md §3).

The file store resolves every path one way, through open_beneath(): the clip a GET reads, the
camera directory a listing scans and the directory a DELETE unlinks in. A symlink anywhere on
the way, pointing out of the tree or into another customer's, is refused (ELOOP), never
followed; so is a path that would climb out of the directory it starts from (EXDEV).

Two mechanisms, one meaning:

- openat2(2) with RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, where the
  kernel has it (Linux 5.6+): the kernel walks the whole path under those rules in one call.
  Python has no binding, so it is called through ctypes by its syscall number.
- Elsewhere (an older kernel, a seccomp profile that refuses it), one openat(2) per component
  from the starting fd, each with O_NOFOLLOW (and O_DIRECTORY for the directories on the way):
  the directory each step opens is the one the previous step held, so nothing can be swapped
  in between a check and the use.

Callers pass validated ids only (no "/", no ".."), so both agree on every path they are given.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from collections.abc import Callable, Sequence

# include/uapi/linux/openat2.h
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_CACHED = 0x20  # Linux 5.12+: EAGAIN rather than a lookup that would need the disk
AT_FDCWD = -100
_RESOLVE = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS
# The syscall number is the same on both: openat2 came after the generic table unification.
_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "arm64": 437}.get(platform.machine())

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


def openat2(dir_fd: int, path: str, flags: int, resolve: int = _RESOLVE) -> int:
    """openat2(2) under _RESOLVE; OSError as os.open raises it (ENOSYS where it is missing)."""
    if _SYS_OPENAT2 is None or _LIBC is None:
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
    how = _OpenHow(flags=flags, mode=0, resolve=resolve)
    fd = _LIBC.syscall(
        ctypes.c_long(_SYS_OPENAT2),
        ctypes.c_int(dir_fd),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    return int(fd)


def open_per_component(dir_fd: int, path: str, flags: int) -> int:
    """One openat(2) per component with O_NOFOLLOW, each from the fd the previous one opened."""
    *directories, last = names = path.split("/")
    for name in names:
        _refuse_dots(name)
    current = dir_fd
    try:
        for name in directories:
            following = os.open(name, DIR_FLAGS, dir_fd=current)
            if current != dir_fd:
                os.close(current)
            current = following
        return os.open(last, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
    finally:
        if current != dir_fd:
            os.close(current)


def _refuse_dots(name: str) -> None:
    # What RESOLVE_BENEATH refuses: a component that climbs out (ids never are one).
    if name in ("", ".", ".."):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), name)


def _openat2_works() -> bool:
    """Whether this kernel (and its seccomp profile) answers openat2 with RESOLVE_* at all."""
    root = os.open("/", DIR_FLAGS)
    try:
        os.close(openat2(root, ".", DIR_FLAGS))
    except OSError:
        return False
    finally:
        os.close(root)
    return True


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no C library to call through
        return None


_LIBC = _load_libc()
HAS_OPENAT2 = _openat2_works()


def chooser() -> Callable[[int, str, int], int]:
    """The mechanism this host uses: openat2 where it works, else per-component openat."""
    return openat2 if HAS_OPENAT2 else open_per_component


def open_beneath(dir_fd: int, parts: Sequence[str], flags: int) -> int:
    """An fd on parts[0]/parts[1]/… beneath dir_fd, no symlink followed (OSError ELOOP/EXDEV)."""
    return _OPEN(dir_fd, "/".join(parts), flags)


_OPEN = chooser()


def openat2_cached(dir_fd: int, path: str, flags: int) -> int:
    """openat2 under _RESOLVE and RESOLVE_CACHED: BlockingIOError if the disk would be needed."""
    return openat2(dir_fd, path, flags, _RESOLVE | RESOLVE_CACHED)


def open_cached(root: str, parts: Sequence[str], flags: int) -> int | None:
    """open_beneath(an fd on `root`, parts, flags) when the kernel can answer from its caches
    alone, else None (the lookup would wait for the disk, or openat2 is missing): the caller
    then opens in a worker thread. The same rules as open_beneath, plus RESOLVE_CACHED, so a
    hot clip opens on the event loop without a thread hop and a cold one never stalls it."""
    if _OPEN_CACHED is None:
        return None
    try:
        # The root is a resolved real path (FileStorage), opened as open_beneath's callers do.
        top = openat2(AT_FDCWD, root, DIR_FLAGS, RESOLVE_CACHED)
    except BlockingIOError:
        return None
    try:
        return _OPEN_CACHED(top, "/".join(parts), flags)
    except BlockingIOError:
        return None
    finally:
        os.close(top)


_OPEN_CACHED: Callable[[int, str, int], int] | None = openat2_cached if HAS_OPENAT2 else None
