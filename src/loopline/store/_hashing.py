"""BLAKE3 hashing of bytes, streams and files, and the checks around reading a source file.

Speed: BLAKE3 runs at about 2.3 GB/s per core here, so the obvious loop (read a chunk,
hash it, write it) made write-then-read of 200 MB about 2x a copy plus a hash. On Linux,
files of 4 MiB or more are copied by `os.sendfile` in a worker thread while this thread
hashes the same descriptor with `pread`, which brings it to about 1.5x on an idle 2-core
machine (benchmarks/bench_artifacts.py). mmap hashing measured slower and can kill the
process with SIGBUS if the file is truncated meanwhile, so it is not used.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import blake3

from loopline.errors import Conflict, CorruptedData, InvalidInput, NotFound

CHUNK = 1 << 20  # measured: 1 MiB beats 4-16 MiB for the hash-while-copying loops
_PARALLEL_MIN = 4 << 20  # below this, a copy thread costs more than it saves


def hash_bytes(data: bytes | memoryview) -> str:
    """The BLAKE3 hash of `data` as 64 hex characters (several threads for large inputs)."""
    digest: str = blake3.blake3(data, max_threads=blake3.blake3.AUTO).hexdigest()
    return digest


def verify(digest: str, actual: str, location: str) -> None:
    """Raise CorruptedData unless the bytes read from `location` hashed to `digest`."""
    if actual != digest:
        raise CorruptedData(
            f"blob {digest} at {location} is corrupted: its content hashes to {actual}",
            hint="restore it from a backup, or delete it and store the original again",
        )


@contextlib.contextmanager
def open_source(path: Path) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """Open a file to store; stat first, so that a FIFO is refused rather than blocking."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise InvalidInput(f"cannot store {path}: it is a directory", hint="store its files")
        if not stat.S_ISREG(mode):
            raise InvalidInput(f"cannot store {path}: not a regular file")
        file = open(path, "rb")  # noqa: SIM115 (closed below)
    except FileNotFoundError as exc:
        raise NotFound(f"cannot store {path}: no such file") from exc
    except PermissionError as exc:
        raise InvalidInput(f"cannot store {path}: permission denied") from exc
    with file:
        yield file, os.fstat(file.fileno())


# O_NONBLOCK makes opening a FIFO return at once, so that it is refused instead of
# blocking; it changes nothing for regular files.
OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def open_source_fd(path: str) -> tuple[int, os.stat_result]:
    """Open a regular file to store as a raw descriptor (the caller closes it), and stat it.

    Raises:
        NotFound: no such file.
        InvalidInput: a directory, not a regular file, or not readable.
    """
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError as exc:
        raise source_error(path, exc) from exc
    try:
        before = os.fstat(fd)
        check_regular(path, before.st_mode)
    except BaseException:
        os.close(fd)
        raise
    return fd, before


def source_error(path: str | Path, exc: OSError) -> Exception:
    """The error to raise when a source file cannot be opened."""
    if isinstance(exc, FileNotFoundError):
        return NotFound(f"cannot store {path}: no such file")
    if isinstance(exc, PermissionError):
        return InvalidInput(f"cannot store {path}: permission denied")
    if isinstance(exc, IsADirectoryError):  # Windows; POSIX opens a directory, fstat tells
        return InvalidInput(f"cannot store {path}: it is a directory", hint="store its files")
    return exc


def check_regular(path: str | Path, mode: int) -> None:
    """Raise InvalidInput unless `mode` is a regular file's."""
    if stat.S_ISDIR(mode):
        raise InvalidInput(f"cannot store {path}: it is a directory", hint="store its files")
    if not stat.S_ISREG(mode):
        raise InvalidInput(f"cannot store {path}: not a regular file")


def ensure_unchanged(path: str | Path, fd: int, before: os.stat_result) -> None:
    """Raise Conflict if the open file's size or modification time moved since `before`."""
    after = os.fstat(fd)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise changed(path)


def changed(path: str | Path) -> Conflict:
    """The error for a source file that was written to while it was being stored."""
    return Conflict(
        f"{path} changed while it was being stored",
        hint="store it once whatever writes it has finished",
    )


def hash_stream(file: BinaryIO, out: BinaryIO | None = None) -> str:
    """Hash `file` from its current position to its end, copying it to `out` if given."""
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    while chunk := file.read(CHUNK):
        hasher.update(chunk)
        if out is not None:
            out.write(chunk)
    digest: str = hasher.hexdigest()
    return digest


def copy_hashing(source: BinaryIO, out: BinaryIO) -> str:
    """Copy `source` to `out` and return the BLAKE3 hash of the bytes copied."""
    size = _file_size(source)
    if sys.platform == "linux" and size is not None and size >= _PARALLEL_MIN:
        out.flush()
        return _copy_hashing_in_parallel(source.fileno(), out.fileno(), size)
    return hash_stream(source, out)


def _file_size(file: BinaryIO) -> int | None:
    """The size of a file backed by a local file descriptor, None for remote files."""
    try:
        return os.fstat(file.fileno()).st_size
    except (OSError, ValueError):  # io.UnsupportedOperation: no descriptor behind it
        return None


def _copy_hashing_in_parallel(source_fd: int, out_fd: int, size: int) -> str:
    """sendfile in a worker thread while this thread hashes the same bytes with pread.

    Both read the first `size` bytes of one open file description, so they see the same
    bytes unless the file is modified in place meanwhile, which callers detect (an fstat
    check for sources, the hash check for blobs).
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="loopline-copy") as pool:
        copying = pool.submit(_sendfile, source_fd, out_fd, size)
        hasher = blake3.blake3()  # one thread: the other core is busy copying
        buffer = memoryview(bytearray(CHUNK))
        offset = 0
        while offset < size and (read := os.preadv(source_fd, [buffer], offset)):
            hasher.update(buffer[: min(read, size - offset)])
            offset += read
        copying.result()
    digest: str = hasher.hexdigest()
    return digest


def _sendfile(source_fd: int, out_fd: int, size: int) -> None:
    offset = 0
    while offset < size and (sent := os.sendfile(out_fd, source_fd, offset, size - offset)):
        offset += sent
