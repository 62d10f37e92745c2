"""Checkpoints of a running fit: the sufficient statistics so far, written atomically.

`compute_patterns(..., checkpoint="fit.ckpt.h5", checkpoint_every=k)` writes, every k
batches, every accumulator of the statistics pass (sums, counts and the fixed shifts they
are taken around), the number of batches and samples consumed, the fingerprints of the
model and the fit's settings. Started again with the same data and the same checkpoint,
the fit restores the accumulators, skips the batches already counted and goes on: the
float64 additions happen in the same order, so the patterns equal those of an
uninterrupted fit. A checkpoint of another model, other weights or other settings is
refused, naming the difference. The checkpoint is removed when the fit completes.

Ctrl-C (SIGINT), SIGTERM and SIGHUP during the fit first write the checkpoint of every
batch counted so far (`Interruptions`), then take effect: a resumed fit loses nothing.
"""

import contextlib
import json
import os
import signal
import threading

import numpy as np

from ..errors import PatternFileError
from ..files import act_as_before, atomic_h5, checked_h5
from ..inputs import positive_int

KIND = "keras-patterns fit checkpoint"
FORMAT_VERSION = 1


class Checkpoint:
    """One checkpoint file of one fit.

    settings: a JSON-able dict of what the statistics depend on (pattern type, regimes,
    precision, batch size, ...); fingerprint: (architecture, weights) of the model.
    """

    def __init__(self, path, every, settings, fingerprint):
        self.path = os.fspath(path)
        self.every = positive_int(every, "checkpoint_every")
        self.settings = settings
        self.fingerprint = fingerprint
        self.written = 0  # the batches the file holds

    def due(self, n_batches):
        return n_batches % self.every == 0

    def write(self, accumulators, n_batches, n_samples):
        """accumulators: stable key -> {name: tf.Variable}."""
        with atomic_h5(self.path, PatternFileError) as f:
            f.attrs["kind"] = KIND
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["architecture"], f.attrs["weights"] = self.fingerprint
            f.attrs["settings"] = json.dumps(self.settings, sort_keys=True)
            f.attrs["n_batches"] = int(n_batches)
            f.attrs["n_samples"] = int(n_samples)
            group = f.create_group("statistics")
            for stable, variables in accumulators.items():
                g = group.create_group(stable)
                for name, v in variables.items():
                    g.create_dataset(name, data=v.numpy())
            f.attrs["complete"] = True
        self.written = int(n_batches)

    def keep(self, statistics_pass):
        """Write the state of `statistics_pass` (a `StatisticsPass`) unless the file holds
        it already."""
        if statistics_pass.n_batches > self.written:
            self.write(statistics_pass.accumulators(), statistics_pass.n_batches,
                       statistics_pass.n_samples)

    def restore(self, accumulators):
        """Load the accumulators if the checkpoint exists; returns (batches, samples)
        consumed, (0, 0) without a checkpoint."""
        path = self.path
        if not os.path.exists(path):
            return 0, 0
        with checked_h5(path, "Checkpoint", FORMAT_VERSION, self.fingerprint,
                        PatternFileError, kind=KIND,
                        stale="delete it to fit from the start") as f:
            attrs = dict(f.attrs)
            stored = json.loads(attrs["settings"])
            diff = sorted(k for k in set(stored) | set(self.settings)
                          if stored.get(k) != self.settings.get(k))
            if diff:
                what = ", ".join(f"{k}={stored.get(k)!r} there, {self.settings.get(k)!r} here"
                                 for k in diff)
                raise PatternFileError(
                    f"Checkpoint '{path}' was written by a fit with other settings ({what}); "
                    "resume with the same settings or delete it.")
            try:
                for stable, variables in accumulators.items():
                    g = f["statistics"][stable]
                    for name, v in variables.items():
                        value = g[name][()]
                        if value.shape != tuple(v.shape):
                            raise KeyError(f"{stable}/{name} has shape {value.shape}")
                        v.assign(np.asarray(value, v.dtype.as_numpy_dtype))
            except KeyError as e:
                raise PatternFileError(f"Checkpoint '{path}' is damaged ({e}).") from None
            self.written = int(attrs["n_batches"])
            return self.written, int(attrs["n_samples"])

    def remove(self):
        if os.path.exists(self.path):
            os.remove(self.path)


class _Terminated(BaseException):
    """SIGTERM or SIGHUP, raised to leave the fit before the process ends by it."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class Interruptions:
    """`with Interruptions(save):` Ctrl-C, SIGTERM and SIGHUP call `save` before they take
    effect.

    The signals whose disposition is the default (Python's KeyboardInterrupt for SIGINT,
    termination for the others) are taken over while the block runs, from the main thread;
    a handler set by the program, an ignored signal and other threads are left alone. A
    signal leaves the block by an exception (KeyboardInterrupt, or an internal one for the
    termination signals), then `save()` runs with the handlers restored, then the
    KeyboardInterrupt goes on, or the process ends by the termination signal. Inside
    `with interruptions.held():` (a batch being counted: the accumulators and the counts
    change together) a signal waits until the block ends; a KeyboardInterrupt raised there
    by other means skips `save`, so that only a consistent state is written.
    """

    def __init__(self, save):
        self.save = save
        self._previous = {}
        self._held = False
        self._consistent = True
        self._pending = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            defaults = {signal.SIGINT: signal.default_int_handler,
                        signal.SIGTERM: signal.SIG_DFL, signal.SIGHUP: signal.SIG_DFL}
            for signum, default in defaults.items():
                if signal.getsignal(signum) is default:
                    self._previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, kind, value, traceback):
        for signum, before in self._previous.items():
            signal.signal(signum, before)
        self._previous = {}
        if kind is None or not issubclass(kind, (KeyboardInterrupt, _Terminated)):
            return False
        try:
            if self._consistent:
                self.save()
        finally:
            if kind is _Terminated:
                act_as_before(value.signum, None, signal.SIG_DFL)
        return False

    def _handler(self, signum, frame):
        if self._held:
            self._pending = signum
            return
        self._raise(signum)

    @staticmethod
    def _raise(signum):
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise _Terminated(signum)

    @contextlib.contextmanager
    def held(self):
        """The block runs to its end before a signal takes effect. A block that ends by an
        exception leaves a state that is not saved."""
        self._held, self._consistent = True, False
        try:
            yield
        except BaseException:
            self._release()
            raise
        self._consistent = True
        self._release()

    def _release(self):
        self._held = False
        pending, self._pending = self._pending, None
        if pending is not None:
            self._raise(pending)
