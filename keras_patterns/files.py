"""Files written atomically: a temporary file beside the target, renamed over it; and files
written so read back with their checks.

A crash, Ctrl-C or SIGTERM while writing never leaves a half-written file under the final
name, and never leaves the temporary file behind either: it is removed on errors and on
termination signals, and temporaries of processes that died without a chance to clean up
(SIGKILL, power loss) are removed by the next write into the same folder. The file gets the
mode any new file gets (0666 less the umask), like the model file beside it. Pattern files,
fit checkpoints and the pictures of `ExplanationGrid` are written this way.
"""

import contextlib
import os
import re
import secrets
import signal
import socket
import threading
import time

import h5py

from .errors import InvalidInputError

PREFIX = ".patterns-"
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
_OURS = re.compile(re.escape(PREFIX) + r"(?P<host>[A-Za-z0-9]*)-(?P<pid>\d+)-[0-9a-f]+"
                   r"(\.[A-Za-z0-9]+)?\.tmp$")
# temporaries of the first format (HDF5 only, no host and pid in the name) are stale after
# this long
_OLD_AFTER_S = 3600

_live = set()  # temporaries being written by this process
_lock = threading.Lock()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder):
    """Remove temporaries left in `folder` by dead processes of this host."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not (name.startswith(PREFIX) and name.endswith(".tmp")):
            continue
        path = os.path.join(folder, name)
        match = _OURS.match(name)
        if match:
            stale = match["host"] == _HOST and not _alive(int(match["pid"]))
        elif not name.endswith(".h5.tmp"):
            continue
        else:
            try:
                stale = time.time() - os.path.getmtime(path) > _OLD_AFTER_S
            except OSError:
                continue
        if stale:
            with contextlib.suppress(OSError):
                os.remove(path)


def act_as_before(signum, frame, before):
    """Do what the signal `signum` did before a handler of this package took it over:
    call `before` if it is a Python handler, terminate the process by the signal under
    SIG_DFL (None: a handler set outside Python, taken as the default), nothing under
    SIG_IGN."""
    if callable(before):
        before(signum, frame)
    elif before != signal.SIG_IGN:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _remove_live():
    with _lock:
        for path in list(_live):
            with contextlib.suppress(OSError):
                os.remove(path)
            _live.discard(path)


@contextlib.contextmanager
def _cleaned_on_termination():
    """While writing: on SIGTERM (or SIGHUP), remove the temporaries, then do what the
    signal did before (by default: terminate). Signal handlers can only be set from the
    main thread; other threads rely on the stale-temporary cleanup."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):
        _remove_live()
        act_as_before(signum, frame, previous.get(signum))

    for signum in (signal.SIGTERM, signal.SIGHUP):
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before if before is not None else signal.SIG_DFL)


@contextlib.contextmanager
def atomic_path(path, error=InvalidInputError, suffix=""):
    """A temporary path whose file appears at `path` when the block ends without an error.

    `with atomic_path(path) as tmp:` the file the block writes to `tmp` is renamed over
    `path` in one step.

    Args:
        path: the target file.
        error: the exception class of the refusals.
        suffix: the end of the temporary's name before ".tmp" (".h5", ".png"), for a
            person who lists the folder while it is written.

    Yields:
        str: the temporary's path, an empty file with the mode a new file gets.

    Raises:
        error: naming `path`, when its folder does not exist or cannot be written.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise error(f"Cannot write '{path}': the folder '{folder}' does not exist.")
    remove_stale_temporaries(folder)
    name = f"{PREFIX}{_HOST}-{os.getpid()}-{secrets.token_hex(4)}{suffix}.tmp"
    tmp = os.path.join(folder, name)
    with _cleaned_on_termination():
        try:
            # created by os.open so that the umask applies (mkstemp would give 0600)
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except OSError as e:
            raise error(f"Cannot write '{path}': {e.strerror}.") from None
        with _lock:
            _live.add(tmp)
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            with _lock:
                _live.discard(tmp)
            if os.path.exists(tmp):
                os.remove(tmp)


@contextlib.contextmanager
def atomic_h5(path, error=InvalidInputError):
    """An h5py.File written to `path` atomically (see `atomic_path`).

    `with atomic_h5(path) as f:` the file `f` appears at `path` when the block ends.

    Raises `error` naming `path` when its folder does not exist or cannot be written.
    """
    with atomic_path(path, error, ".h5") as tmp, h5py.File(tmp, "w") as f:
        yield f


@contextlib.contextmanager
def checked_h5(path, what, format_version, fingerprint, error=InvalidInputError, kind=None,
               stale="refit the patterns"):
    """An HDF5 file written by `atomic_h5`, opened for reading after checks.

    `with checked_h5(path, "Patterns file", 1, (arch, weights)) as f:` refuses (with
    `error`, naming the file) a damaged or incomplete file, another `kind`, a newer format,
    and one written for another architecture or other weights (the model's `fingerprint`;
    `stale` says what to do).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise error(f"{what} '{path}' does not exist.")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise error(f"{what} '{path}' is damaged or not an HDF5 file ({e}).") from None
    with f:
        attrs = f.attrs
        if kind is not None and attrs.get("kind") != kind:
            raise error(f"'{path}' is not a {kind}.")
        if not attrs.get("complete", False):
            raise error(f"{what} '{path}' is incomplete (truncated write).")
        version = int(attrs.get("format_version", -1))
        if version > format_version:
            raise error(f"{what} '{path}' has format version {version}; this keras-patterns "
                        f"reads up to {format_version}. Upgrade keras-patterns.")
        arch, weights = fingerprint
        if attrs.get("architecture") != arch:
            raise error(f"{what} '{path}' was written for another architecture (its kernel "
                        "layers, their order or shapes differ from this model's).")
        if attrs.get("weights") != weights:
            raise error(f"{what} '{path}' was written for other weights of this model (was "
                        f"it trained since?); {stale}.")
        yield f
