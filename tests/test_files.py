"""Files: pattern files keep what was fitted exactly, get a normal mode, never leave
temporaries behind (errors, SIGTERM, dead processes), name the path the user gave; and an
interrupted fit resumes from its checkpoint to the same patterns."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import h5py
import keras
import numpy as np
import pytest
from keras import layers

import keras_patterns as kp
from keras_patterns import files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6, 6, 2)), layers.Conv2D(3, 3, activation="relu"),
                             layers.Flatten(), layers.Dense(5, activation="elu"),
                             layers.Dense(3)])


def _data(n=60):
    return np.random.default_rng(0).normal(size=(n, 6, 6, 2)).astype("float32")


def _temporaries(folder):
    return [f for f in os.listdir(folder) if f.startswith(files.PREFIX)]


@pytest.fixture(scope="module")
def fitted():
    model = _model()
    return model, kp.compute_patterns(model, _data(), batch_size=10)


def _assert_same_patterns(a, b):
    assert set(a) == set(b)
    for key in a:
        assert set(a[key]) == set(b[key])
        for name in a[key]:
            np.testing.assert_array_equal(a[key][name], b[key][name])


# -- pattern files -------------------------------------------------------------------------


def test_round_trip_is_exact(fitted, tmp_path):
    model, patterns = fitted
    path = kp.save_patterns(patterns, tmp_path / "m.patterns.h5")
    loaded = kp.load_patterns(path, model)
    _assert_same_patterns(loaded, patterns)
    assert all(a.dtype == np.float64 for p in loaded.values() for a in p.values())
    small = kp.load_patterns(kp.save_patterns(patterns, tmp_path / "s.h5", dtype="float32"),
                             model)
    for key in patterns:
        for name, a in patterns[key].items():
            assert small[key][name].dtype == np.float32
            np.testing.assert_array_equal(small[key][name], a.astype(np.float32))


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_mode_follows_the_umask(fitted, tmp_path, umask):
    _, patterns = fitted
    old = os.umask(umask)
    try:
        path = kp.save_patterns(patterns, tmp_path / "m.patterns.h5")
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_a_missing_folder_is_named_as_given(fitted, tmp_path):
    _, patterns = fitted
    target = tmp_path / "no" / "such" / "m.patterns.h5"
    with pytest.raises(kp.PatternFileError) as info:
        kp.save_patterns(patterns, target)
    message = str(info.value)
    assert str(target) in message and "does not exist" in message
    assert files.PREFIX not in message


def test_non_finite_patterns_are_neither_saved_nor_loaded(fitted, tmp_path):
    model, patterns = fitted
    path = kp.save_patterns(patterns, tmp_path / "m.patterns.h5")
    key = next(iter(patterns))
    broken = kp.Patterns(patterns.pattern_type,
                         {k: {n: (a.copy() * np.nan if k == key else a) for n, a in p.items()}
                          for k, p in patterns.items()},
                         patterns.n_samples, patterns.counts, patterns.dead,
                         patterns.layer_names, patterns.stable_keys, patterns.fingerprint)
    with pytest.raises(kp.PatternFileError, match=f"layer '{key}' holds NaN or inf"):
        kp.save_patterns(broken, tmp_path / "broken.h5")
    assert not (tmp_path / "broken.h5").exists() and not _temporaries(tmp_path)
    with h5py.File(path, "a") as f:
        group = next(iter(f["layers"].values()))
        data = group["a_plus"][()]
        data.flat[0] = np.inf
        group["a_plus"][...] = data
    with pytest.raises(kp.PatternFileError, match="holds NaN or inf"):
        kp.load_patterns(path, model)


def test_stale_temporaries_of_dead_processes_are_removed(fitted, tmp_path):
    _, patterns = fitted
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = files._HOST
    stale = tmp_path / f"{files.PREFIX}{host}-{dead.pid}-0123abcd.h5.tmp"
    alive = tmp_path / f"{files.PREFIX}{host}-{os.getpid()}-89abcdef.h5.tmp"
    other_host = tmp_path / f"{files.PREFIX}elsewhere-{dead.pid}-0123abcd.h5.tmp"
    old_style = tmp_path / f"{files.PREFIX}k3j4h5.h5.tmp"
    for path in (stale, alive, other_host, old_style):
        path.write_bytes(b"x" * 100)
    day_ago = time.time() - 86400
    os.utime(old_style, (day_ago, day_ago))
    kp.save_patterns(patterns, tmp_path / "m.patterns.h5")
    assert sorted(_temporaries(tmp_path)) == sorted([alive.name, other_host.name])
    assert socket.gethostname()  # the host part is this machine's name


def test_sigterm_while_saving_leaves_no_temporary(tmp_path):
    """A save slowed down to seconds; SIGTERM arrives in the middle: the process ends by
    the signal (as it would without the handler) and the temporary is gone."""
    code = textwrap.dedent(f"""
        import time, h5py, numpy as np, keras
        import keras_patterns as kp
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        patterns = kp.compute_patterns(model, np.ones((8, 4), "float32") *
                                       np.arange(4, dtype="float32"), pattern_type="filter")
        original = h5py.Group.create_dataset
        def slow(self, *args, **kwargs):
            print("WRITING", flush=True)
            time.sleep(30)
            return original(self, *args, **kwargs)
        h5py.Group.create_dataset = slow
        kp.save_patterns(patterns, {str(tmp_path / "m.patterns.h5")!r})
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout.readline().strip() == "WRITING"
    assert len(_temporaries(tmp_path)) == 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM
    assert _temporaries(tmp_path) == [] and not (tmp_path / "m.patterns.h5").exists()


def test_pictures_are_written_atomically_like_pattern_files(tmp_path):
    """The pictures of ExplanationGrid go through the same writer: the mode follows the
    umask, a failed save leaves the previous picture and no temporary, and the next write
    removes a dead process's temporary picture."""
    from PIL import Image

    from keras_patterns.callbacks.output import _save_png

    pixels = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    target = tmp_path / "picture.png"
    old = os.umask(0o027)
    try:
        _save_png(Image.fromarray(pixels), target)
    finally:
        os.umask(old)
    assert os.stat(target).st_mode & 0o777 == 0o640
    np.testing.assert_array_equal(np.asarray(Image.open(target)), pixels)

    class Failing:
        def save(self, path, format):
            with open(path, "wb") as f:
                f.write(b"\x89PNG half")
            raise OSError("disk full")

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{files.PREFIX}{files._HOST}-{dead.pid}-0123abcd.png.tmp"
    stale.write_bytes(b"x")
    with pytest.raises(OSError, match="disk full"):
        _save_png(Failing(), target)
    np.testing.assert_array_equal(np.asarray(Image.open(target)), pixels)
    assert _temporaries(tmp_path) == []
    with pytest.raises(OSError, match="does not exist"):
        _save_png(Image.fromarray(pixels), tmp_path / "no" / "picture.png")


# -- checkpoints ---------------------------------------------------------------------------


def _batches(x, crash_at=None, size=10):
    for i in range(0, len(x), size):
        if crash_at is not None and i // size == crash_at:
            raise RuntimeError("the machine went down")
        yield x[i:i + size]


def test_an_interrupted_fit_resumes_to_the_same_patterns(fitted, tmp_path):
    model, reference = fitted
    x = _data()
    checkpoint = tmp_path / "fit.ckpt.h5"
    with pytest.raises(RuntimeError, match="went down"):
        kp.compute_patterns(model, _batches(x, crash_at=5), checkpoint=checkpoint,
                            checkpoint_every=2, batch_size=10)
    with h5py.File(checkpoint, "r") as f:
        assert f.attrs["n_batches"] == 4 and f.attrs["n_samples"] == 40
    resumed = kp.compute_patterns(model, _batches(x), checkpoint=checkpoint,
                                  checkpoint_every=2, batch_size=10)
    _assert_same_patterns(resumed, reference)
    assert resumed.n_samples == 60
    assert not checkpoint.exists()  # removed once the fit completed


def _fitting_process(model, tmp_path, stop, checkpoint_every):
    """The command line and environment of a process that fits `model` (its weights) on
    `_data()` in batches of 10 with the checkpoint tmp_path/fit.ckpt.h5 and saves the
    patterns to tmp_path/out.h5; given the argument "stop", it runs the statement `stop`
    when asked for the fourth batch."""
    weights = tmp_path / "m.weights.h5"
    model.save_weights(weights)
    np.save(tmp_path / "x.npy", _data())
    code = textwrap.dedent(f"""
        import os, signal, sys, numpy as np
        import keras_patterns as kp
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_files import _model
        model = _model()
        model.load_weights({str(weights)!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        def batches():
            for i in range(0, 60, 10):
                if i == 30 and sys.argv[1] == "stop":
                    {stop}
                yield x[i:i + 10]
        p = kp.compute_patterns(model, batches(), checkpoint={str(tmp_path / "fit.ckpt.h5")!r},
                                checkpoint_every={checkpoint_every}, batch_size=10)
        kp.save_patterns(p, {str(tmp_path / "out.h5")!r})
    """)
    return [sys.executable, "-c", code], dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
                                               PYTHONPATH=ROOT)


def test_a_killed_fit_resumes_in_a_new_process(fitted, tmp_path):
    """SIGKILL-like death (os._exit) in the middle of the fourth batch."""
    model, reference = fitted
    checkpoint = tmp_path / "fit.ckpt.h5"
    run, env = _fitting_process(model, tmp_path, "os._exit(9)", checkpoint_every=1)
    assert subprocess.run(run + ["stop"], env=env, capture_output=True).returncode == 9
    assert checkpoint.exists() and not _temporaries(tmp_path)
    done = subprocess.run(run + ["live"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_same_patterns(kp.load_patterns(tmp_path / "out.h5", model), reference)


def test_a_checkpoint_of_another_model_or_settings_is_refused(fitted, tmp_path):
    model, _ = fitted
    x = _data()
    checkpoint = tmp_path / "fit.ckpt.h5"
    with pytest.raises(RuntimeError):
        kp.compute_patterns(model, _batches(x, crash_at=3), checkpoint=checkpoint,
                            checkpoint_every=1, batch_size=10)
    with pytest.raises(kp.PatternFileError, match="other weights"):
        kp.compute_patterns(_model(seed=1), x, checkpoint=checkpoint, batch_size=10)
    with pytest.raises(kp.PatternFileError, match="another architecture"):
        other = keras.Sequential([keras.Input((6, 6, 2)), layers.Conv2D(4, 3), layers.Flatten(),
                                  layers.Dense(3)])
        kp.compute_patterns(other, x, checkpoint=checkpoint, batch_size=10)
    with pytest.raises(kp.PatternFileError, match="pattern_type='relu' there, 'linear' here"):
        kp.compute_patterns(model, x, pattern_type="linear", checkpoint=checkpoint,
                            batch_size=10)
    with pytest.raises(kp.PatternFileError, match="batch_size=10 there, 20 here"):
        kp.compute_patterns(model, x, checkpoint=checkpoint, batch_size=20)
    with pytest.raises(kp.InvalidInputError, match="counted 3 batches.*has only 2"):
        kp.compute_patterns(model, x[:20], checkpoint=checkpoint, batch_size=10)
    with pytest.raises(ValueError, match="checkpoint_every"):
        kp.compute_patterns(model, x, checkpoint=checkpoint, checkpoint_every=0)
    assert checkpoint.exists()  # refusals leave it for the right fit


# -- Ctrl-C and SIGTERM during a checkpointed fit --------------------------------------------


def _interrupted_batches(x, at, size=10):
    for i in range(0, len(x), size):
        if i // size == at:
            raise KeyboardInterrupt
        yield x[i:i + size]


def _counted(checkpoint):
    with h5py.File(checkpoint, "r") as f:
        return int(f.attrs["n_batches"]), int(f.attrs["n_samples"])


@pytest.fixture
def default_sigint():
    """Ctrl-C raising KeyboardInterrupt, as in an interactive session (a job started in the
    background of a shell, a CI runner's for instance, may inherit SIGINT ignored)."""
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_writes_every_batch_counted_and_the_fit_resumes_from_it(fitted, tmp_path,
                                                                      default_sigint):
    """Ctrl-C after 3 batches, long before the first periodic write (every 100): the
    checkpoint holds the 3 batches, the resumed fit the patterns of an uninterrupted one."""
    model, reference = fitted
    x = _data()
    checkpoint = tmp_path / "fit.ckpt.h5"
    with pytest.raises(KeyboardInterrupt):
        kp.compute_patterns(model, _interrupted_batches(x, at=3), checkpoint=checkpoint,
                            batch_size=10)
    assert _counted(checkpoint) == (3, 30) and not _temporaries(tmp_path)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    resumed = kp.compute_patterns(model, _batches(x), checkpoint=checkpoint, batch_size=10)
    _assert_same_patterns(resumed, reference)
    assert resumed.n_samples == 60 and not checkpoint.exists()


def test_ctrl_c_in_the_middle_of_a_batch_waits_until_it_is_counted(fitted, tmp_path,
                                                                   monkeypatch, default_sigint):
    """SIGINT arrives while the third batch's sums are added: the batch is counted to its
    end (sums and counts together), then the fit stops with a checkpoint of 3 batches whose
    resumption gives the uninterrupted patterns bit for bit."""
    from keras_patterns.patterns import streaming

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    model, reference = fitted
    real = streaming.compiled

    def signalling(fn):
        step, calls = real(fn), []

        def run(xs):
            out = step(xs)
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGINT)
            return out

        return run

    monkeypatch.setattr(streaming, "compiled", signalling)
    checkpoint = tmp_path / "fit.ckpt.h5"
    with pytest.raises(KeyboardInterrupt):
        kp.compute_patterns(model, _data(), checkpoint=checkpoint, batch_size=10)
    assert _counted(checkpoint) == (3, 30)
    monkeypatch.undo()
    resumed = kp.compute_patterns(model, _data(), checkpoint=checkpoint, batch_size=10)
    _assert_same_patterns(resumed, reference)


def test_ctrl_c_while_estimating_keeps_every_batch(fitted, tmp_path, monkeypatch):
    from keras_patterns.patterns import fit

    model, reference = fitted
    real = fit.estimate_all

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fit, "estimate_all", interrupted)
    checkpoint = tmp_path / "fit.ckpt.h5"
    with pytest.raises(KeyboardInterrupt):
        kp.compute_patterns(model, _data(), checkpoint=checkpoint, batch_size=10,
                            checkpoint_every=4)
    assert _counted(checkpoint) == (6, 60)
    monkeypatch.setattr(fit, "estimate_all", real)
    resumed = kp.compute_patterns(model, _data(), checkpoint=checkpoint, batch_size=10)
    _assert_same_patterns(resumed, reference)


def test_other_errors_keep_the_last_periodic_checkpoint(fitted, tmp_path):
    """Only interruptions write out of turn: an error in the data is no reason to think
    the batches before it were right."""
    model, _ = fitted
    checkpoint = tmp_path / "fit.ckpt.h5"
    with pytest.raises(RuntimeError):
        kp.compute_patterns(model, _batches(_data(), crash_at=3), checkpoint=checkpoint,
                            checkpoint_every=2, batch_size=10)
    assert _counted(checkpoint) == (2, 20)


@pytest.mark.slow  # a process that imports TensorFlow and fits: over 10 s
def test_sigterm_writes_every_batch_counted_then_ends_the_process(fitted, tmp_path):
    """The fit's process sends itself SIGTERM while it reads the fourth batch: it writes the
    checkpoint of 3 batches and ends by the signal; the fit resumes from it."""
    model, reference = fitted
    checkpoint = tmp_path / "fit.ckpt.h5"
    run, env = _fitting_process(model, tmp_path, "os.kill(os.getpid(), signal.SIGTERM)",
                                checkpoint_every=100)
    done = subprocess.run(run + ["stop"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == -signal.SIGTERM, done.stderr[-2000:]
    assert not (tmp_path / "out.h5").exists()
    assert _counted(checkpoint) == (3, 30) and not _temporaries(tmp_path)
    resumed = kp.compute_patterns(model, _batches(_data()), checkpoint=checkpoint,
                                  batch_size=10)
    _assert_same_patterns(resumed, reference)
