"""Files that survive a kill: atomic writes (a temporary beside the target, fsync, rename), JSON read and written
that way, one writer per output directory, the checks of an output directory before anything is written, and the
fault points the kill-and-resume tests stop a process at. Every module that writes a file a user keeps uses these."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from .errors import EbmlabError


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_UMASK: int | None = None


def fault_point(phase: str) -> None:
    """Fault injection for the kill-and-resume tests: when the environment variable EBMLAB_KILL_AT names this
    phase, the process kills itself (SIGKILL, as a power cut or the OOM killer would) at this point."""
    if os.environ.get("EBMLAB_KILL_AT") == phase:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _file_mode() -> int:
    """0o666 less the process umask: what ``open`` would give, so colleagues in the group can read run files."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def atomic_write_bytes(path: Path, write_fn: Callable[[BinaryIO], object]) -> None:
    """Write via ``write_fn(fileobj)`` into a temp file beside ``path``, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            try:
                write_fn(fh)
            except RuntimeError as exc:
                # torch.save reports a failed write as a RuntimeError whose wording varies with the torch version
                # and the point of failure ("file write failed", "unexpected pos ..."): the cause is read from the
                # file system (its free space), not from the message; any other RuntimeError is raised as it was
                full = _write_error(path, exc)
                if full is None:
                    raise
                raise full from None
            fh.flush()
            os.fsync(fh.fileno())
        fault_point(f"write:{path.name}")
        os.chmod(tmp, _file_mode())  # mkstemp creates 0600
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_error(path: Path, exc: Exception) -> OSError | None:
    """The OSError a failed write was, read from its cause: ENOSPC when the file system is (nearly) full (under
    64 MiB free), else None (not a full disk: the original error stands)."""
    import errno

    try:
        st = os.statvfs(path.parent)
        full = st.f_bavail * st.f_frsize < 64 * 2**20
    except OSError:
        full = False
    return OSError(errno.ENOSPC, "No space left on device", str(path)) if full else None


def json_safe(obj: Any) -> Any:
    """Replace NaN/inf (not valid JSON) by None, recursively."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any) -> None:
    data = json.dumps(json_safe(obj), indent=2, sort_keys=False).encode()
    atomic_write_bytes(path, lambda fh: fh.write(data))


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise EbmlabError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EbmlabError(f"{path} is not valid JSON ({exc}); the run directory is damaged — restore the file, or "
                          f"start a new run with another --out") from None


@contextlib.contextmanager
def advisory_lock(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive advisory lock (``fcntl.flock``) on ``path`` for the body: a directory is locked itself, a
    file is created empty if missing and left in place. The system releases the lock when the process ends, a kill
    included, so no stale lock outlives its holder. ``wait=False`` raises ``BlockingIOError`` at once when another
    process holds it. An ``OSError`` opening ``path`` propagates (the caller decides whether an unwritable place
    locks nothing or is an error). Yields whether the lock is held: ``False`` only without ``fcntl`` (Windows),
    where nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield False
        return
    path = Path(path)
    fd = os.open(path, os.O_RDONLY) if path.is_dir() else os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield True
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def sole_writer(directory: Path, name: str, outputs: str | None = None) -> Iterator[None]:
    """Hold the writing of the output ``name`` in ``directory`` (a sample file or folder, a data set's classifier)
    for this process, and on entry remove the temporaries a killed writer of it left behind. Its outputs are the
    files or folders whose names match the regular expression ``outputs`` (default: ``name`` itself); their
    temporaries are ``.OUTPUT.<8 random characters>.tmp`` (``atomic_write_bytes`` files, ``tempfile.mkdtemp``
    folders). An advisory lock on ``directory`` itself (:func:`advisory_lock`; no lock file is left beside the
    outputs) makes a second writer into that directory wait for the moment it writes, so no temporary of a live
    writer is removed. Without ``fcntl`` (Windows) nothing is locked or removed."""
    import re
    import shutil

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with advisory_lock(directory) as locked:
        stale = re.compile(rf"^\.(?:{outputs or re.escape(name)})\.[a-z0-9_]{{8}}\.tmp$")
        for p in directory.iterdir() if locked else ():
            if stale.match(p.name):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
        yield


def require_utf8(path: str | Path, flag: str = "--out") -> None:
    """Refuse a path whose bytes are not UTF-8: it could not be printed, logged or recorded in run.json."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise EbmlabError(f"{flag} {shown}: the path is not valid UTF-8 (its bytes cannot be shown, logged or "
                          f"recorded); choose a name in UTF-8") from None


def check_output_dir(out: Path) -> None:
    """Refuse an output directory that cannot be created or written, before any work is done."""
    require_utf8(out)
    for part in out.parts:
        if len(part.encode()) > 255:
            raise EbmlabError(f"--out {out}: the name {part[:40]}... is {len(part.encode())} bytes, longer than the "
                              f"file system allows (255); choose a shorter name")
    if out.exists() and not out.is_dir():
        raise EbmlabError(f"--out {out} is an existing file, not a directory; choose another --out")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise EbmlabError(f"--out {out} goes through {probe}, which is a file; choose another --out")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise EbmlabError(f"--out {out}: {probe} is not writable (read-only file system or no permission); "
                          f"choose a directory you can write to")


__all__ = ["advisory_lock", "atomic_write_bytes", "check_output_dir", "fault_point", "json_safe", "read_json",
           "require_utf8", "sole_writer", "write_json"]
