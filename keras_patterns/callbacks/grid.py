"""Explanations drawn while a model trains: a Keras callback.

    callback = ExplanationGrid(
        x_val[:4],                                   # a few fixed images to watch
        methods=("gradient", "pattern.attribution"),
        fit_data=x_train[:1024],                     # the pattern methods refit on this
        out_dir="explanations",                      # explanations/epoch_001.png, ...
        log_dir="logs/explanations",                 # and TensorBoard images
    )
    model.fit(x_train, y_train, epochs=10, callbacks=[callback])

After every ``every``-th epoch the callback explains the same images with each method on the
model's current weights and draws them with :func:`keras_patterns.visualize.grid` (one row
per image: the image, then one picture per method; signal methods shown with ``project``,
the others as heat maps). It writes the grid as a PNG file and, with a ``log_dir``, as a
TensorBoard image summary.

Training is not disturbed: the analyzers only read the model's variables (they share them
with the model and never assign them), the forward passes of an analysis run in inference
mode (BatchNormalization statistics and dropout untouched), the optimizer is not touched,
and Python's and numpy's global random states are restored after every drawing, so a
seeded training gives the same weights and losses with and without the callback.
"""

import collections.abc
import os
from pathlib import Path

import keras
import numpy as np

from .. import visualize
from ..analyzers import create_analyzer
from ..inputs import positive_int
from .checks import Arguments, _image_batch
from .output import _random_state_kept, _save_png, tensorboard_installed, write_image_summary

# Methods drawn when none are chosen: a signal (shown with ``project``) and an attribution
# (shown as a heat map).
DEFAULT_METHODS = ("gradient", "pattern.attribution")
# ``grid`` arguments the callback sets itself.
_GRID_OWN = ("images", "explanations", "row_labels", "path")


class ExplanationGrid(Arguments, keras.callbacks.Callback):
    """Draws explanations of fixed images every few epochs while a model trains.

    At the end of epoch ``e`` (counted from 1, as Keras prints them) with ``e % every == 0``
    each method explains ``images`` with the model's weights at that moment; the methods
    that need fitting (``needs_fit``: ``pattern.net``, ``pattern.attribution``) are first
    refitted on ``fit_data`` (patterns describe the weights they were fitted for, so they
    are refitted every time). The explanations are drawn with :func:`keras_patterns.visualize.grid`
    (``row_labels`` from ``labels``, columns labelled ``"input"`` and the method names
    unless ``grid_kwargs`` says otherwise) and the picture is

    * written to ``out_dir / filename.format(epoch=e)`` (``epoch_001.png``, ...) as PNG,
      atomically (a temporary file renamed over the target), and
    * with ``log_dir``, logged as a TensorBoard image summary named ``tag`` at step
      ``e - 1``, the step at which ``keras.callbacks.TensorBoard`` logs that epoch's
      metrics (a ``tf.summary`` file writer in ``log_dir``; ``tf.summary.image`` where
      TensorBoard is installed, else the same record, PNG-encoded, written with
      ``tf.summary.write``).

    The analyzers are created once per model (``on_train_begin``, so that a model or
    method that cannot be explained fails before the first epoch; for a model built by its
    first batch, a Sequential model without ``keras.Input``, at the first drawing) and
    reused: they share the model's variables and follow its weights. Python's and numpy's
    global random states are restored after every drawing; the analyzers draw no other
    random numbers than the noise methods' and ``random``'s, which come from their own seeded
    generators.

    Args:
        images: the images to explain, a batch ``(R, H, W)`` or ``(R, H, W, C)`` the model
            takes (one input; channels last unless ``grid_kwargs={"channels_first": True}``;
            1 or 3 channels to be drawn).
        methods: analyzer names (``keras_patterns.list_analyzers()``); one name or a
            sequence of distinct names.
        every: draw after every ``every``-th epoch.
        out_dir: folder of the PNG files (created if needed), or None for none.
        log_dir: folder of the TensorBoard event file, or None for none. At least one of
            ``out_dir`` and ``log_dir`` must be given.
        fit_data: the data the methods that need fitting (the pattern methods: their
            patterns) are refitted on at every drawing: arrays, an ``(x, y)`` tuple, a
            finite ``tf.data.Dataset``, a ``keras.utils.PyDataset``, or a function without
            arguments returning such data or a fresh generator (a generator itself is
            refused: it would be exhausted after the first fit). Required when a method
            needs fitting.
        labels: ``R`` row labels (any objects, drawn with ``str``), or None for none.
        method_kwargs: ``{method name: dict of create_analyzer keyword arguments}``, e.g.
            ``{"smoothgrad": {"augment_by_n": 16}}``. SmoothGrad, SquareGrad, VarGrad and
            ``random`` get ``seed=0`` unless a seed is given here, so that every picture
            uses the same noise.
        neuron_selection: None explains each image's largest output (``max_activation``);
            an int, or one int per image, explains those output units (``index`` mode),
            e.g. the true classes.
        fit_kwargs: keyword arguments of the pattern analyzers' ``fit`` (``batch_size``,
            ``steps``, ``verbose``, ...; default ``verbose=0``).
        grid_kwargs: keyword arguments of :func:`keras_patterns.visualize.grid` (``cell``,
            ``kinds``, ``col_labels``, ``scale``, ``cmap``, ``pad``, ``channels_first``,
            ...), except ``images``, ``explanations``, ``row_labels`` and ``path``.
        display_images: optional ``R`` images drawn in the first column instead of
            ``images`` (e.g. the unpreprocessed originals), of the same height and width.
        filename: the PNG file name, formatted with ``epoch`` (an int).
        tag: the name of the TensorBoard image summary.

    Attributes:
        written: the paths of the PNG files written so far, in order.
        last_grid: the last picture drawn (a ``PIL.Image.Image``), or None.

    Raises:
        ValueError: bad arguments (at construction), naming them (an unknown method name
            with the closest names; arguments ``visualize.grid`` refuses, found by drawing
            zero explanations once); images that do not fit the model (at the start of
            training).
        keras_patterns.NotAnalyzableModelError: at the start of training, for a model a
            method cannot explain.
    """

    def __init__(
        self,
        images,
        methods=DEFAULT_METHODS,
        every=1,
        out_dir="explanations",
        log_dir=None,
        fit_data=None,
        labels=None,
        method_kwargs=None,
        *,
        neuron_selection=None,
        fit_kwargs=None,
        grid_kwargs=None,
        display_images=None,
        filename="epoch_{epoch:03d}.png",
        tag="explanations",
    ):
        super().__init__()
        self.images = _image_batch(images, "images")
        rows = len(self.images)
        self.methods = self._check_methods(methods)
        self.every = positive_int(every, "every")
        if out_dir is None and log_dir is None:
            raise ValueError("give out_dir (PNG files), log_dir (TensorBoard) or both")
        self.out_dir = None if out_dir is None else Path(os.fspath(out_dir))
        self.log_dir = None if log_dir is None else Path(os.fspath(log_dir))
        self.method_kwargs = self._check_method_kwargs(method_kwargs)
        self.fit_data = self._check_fit_data(fit_data)
        if labels is not None:
            if isinstance(labels, (str, bytes)) or not isinstance(
                labels, (collections.abc.Sequence, np.ndarray)
            ):
                raise ValueError(f"labels must be a sequence of {rows} row labels, got {labels!r}")
            if len(labels) != rows:
                raise ValueError(f"labels has {len(labels)} entries for {rows} images")
            labels = [str(label) for label in labels]
        self.labels = labels
        self.neuron_selection = self._check_selection(neuron_selection, rows)
        self.fit_kwargs = self._check_kwargs(fit_kwargs, "fit_kwargs", ("data",))
        self.fit_kwargs.setdefault("verbose", 0)
        self.grid_kwargs = self._check_kwargs(grid_kwargs, "grid_kwargs", _GRID_OWN)
        if display_images is not None:
            display_images = _image_batch(display_images, "display_images")
            channels_first = bool(self.grid_kwargs.get("channels_first", False))
            spatial = slice(2, 4) if channels_first and display_images.ndim == 4 else slice(1, 3)
            own = slice(2, 4) if channels_first and self.images.ndim == 4 else slice(1, 3)
            if (
                len(display_images) != rows
                or display_images.shape[spatial] != self.images.shape[own]
            ):
                raise ValueError(
                    f"display_images (shape {display_images.shape}) must hold {rows} images "
                    f"of the size of images (shape {self.images.shape})"
                )
        self.display_images = display_images
        self._check_drawable()
        if not isinstance(filename, str):
            raise ValueError(f"filename must be a format string, got {filename!r}")
        try:
            probe = filename.format(epoch=1)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"filename {filename!r} must be a format string with only {{epoch}} "
                f"fields (e.g. 'epoch_{{epoch:03d}}.png'): {e!r}"
            ) from None
        if not probe or os.sep in probe or (os.altsep and os.altsep in probe):
            raise ValueError(f"filename must be a plain file name, got {filename!r}")
        self.filename = filename
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"tag must be a non-empty string, got {tag!r}")
        self.tag = tag
        self.written = []
        self.last_grid = None
        self._analyzers = None
        self._analyzers_model = None
        self._writer = None

    # -- Keras hooks ----------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        """Creates the analyzers (once per model), the output folder and the file writer."""
        if self.model.built:  # else (built by its first batch) at the first drawing
            self._ensure_analyzers()
        self._open_outputs()

    def _open_outputs(self):
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.log_dir is not None and self._writer is None:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(str(self.log_dir))

    def on_epoch_end(self, epoch, logs=None):
        """Draws the grid after every ``every``-th epoch (``epoch`` counted from 0)."""
        number = int(epoch) + 1
        if number % self.every == 0:
            self.draw(number)

    def on_train_end(self, logs=None):
        """Closes the TensorBoard file writer."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- drawing --------------------------------------------------------------------------

    def _ensure_analyzers(self):
        if self._analyzers is not None and self._analyzers_model is self.model:
            return
        self._check_model_input()
        mode = "max_activation" if self.neuron_selection is None else "index"
        self._analyzers = {
            name: create_analyzer(
                name, self.model, neuron_selection_mode=mode, **self.method_kwargs[name]
            )
            for name in self.methods
        }
        self._analyzers_model = self.model

    def _check_model_input(self):
        try:
            inputs = self.model.inputs
        except (AttributeError, ValueError):
            inputs = None
        if inputs is None:
            return  # subclassed: the analyzers check the images at analysis time
        if len(inputs) != 1:
            raise ValueError(
                f"ExplanationGrid explains models with one input; {self.model.name} has "
                f"{len(inputs)}"
            )
        expected = tuple(inputs[0].shape[1:])
        given = self.images.shape[1:]
        if len(expected) != len(given) or any(
            e is not None and e != g for e, g in zip(expected, given)
        ):
            raise ValueError(
                f"images have shape {self.images.shape}; the model {self.model.name} takes "
                f"batches shaped {(None, *expected)}"
            )

    def _fit_data(self):
        data = self.fit_data
        if callable(data) and not isinstance(data, keras.utils.PyDataset):
            data = data()
        return data

    def explain(self):
        """Explains ``images`` with every method on the model's current weights.

        Returns:
            dict {method name: explanation shaped like ``images``}, in the order of
            ``methods``.
        """
        if self.model is None:
            raise RuntimeError("ExplanationGrid.explain() needs a model: it runs during "
                               "model.fit (or after callback.set_model(model))")
        self._ensure_analyzers()
        maps = {}
        with _random_state_kept():
            for name, analyzer in self._analyzers.items():
                if analyzer.needs_fit:
                    analyzer.fit(self._fit_data(), **self.fit_kwargs)
                selection = {}
                if self.neuron_selection is not None:
                    selection = {"neuron_selection": self.neuron_selection}
                maps[name] = analyzer.analyze(self.images, **selection)
        return maps

    def draw(self, epoch):
        """Explains, draws the grid and writes it (PNG file, TensorBoard) for ``epoch``.

        Args:
            epoch: the epoch number (from 1) used in the file name; the summary step is
                ``epoch - 1`` (Keras's epoch index).

        Returns:
            PIL.Image.Image: the grid.
        """
        maps = self.explain()
        self._open_outputs()
        shown = self.images if self.display_images is None else self.display_images
        picture = visualize.grid(shown, maps, row_labels=self.labels, **self.grid_kwargs)
        self.last_grid = picture
        if self.out_dir is not None:
            path = self.out_dir / self.filename.format(epoch=epoch)
            _save_png(picture, path)
            self.written.append(path)
        if self._writer is not None:
            self._log(picture, epoch - 1)
        return picture

    def _log(self, picture, step):
        import tensorflow as tf

        pixels = np.asarray(picture.convert("RGB"), dtype=np.uint8)
        with self._writer.as_default():
            if tensorboard_installed():
                data = tf.constant(pixels[None].astype(np.float32) / 255.0)  # [1, H, W, 3]
                tf.summary.image(self.tag, data, step=step, max_outputs=1)
            else:
                write_image_summary(self.tag, pixels, step)
        self._writer.flush()
