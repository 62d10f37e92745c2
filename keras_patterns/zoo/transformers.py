"""Two small transformers trained here, offline: a ViT on the digits and a text model whose
true evidence is known.

**Digits ViT.** ``build_vit`` cuts the 8x8 digits of :mod:`keras_patterns.zoo.digits` into
16 patches of 2x2 pixels (a Conv2D with a 2x2 kernel and stride), adds a learned position
embedding (:class:`PositionEmbedding`), runs two pre-norm blocks (LayerNormalization,
``keras.layers.MultiHeadAttention``, a GELU MLP, residual additions) and a final
LayerNormalization, averages the 16 tokens (no class token) and ends in 10 logits.
``train_vit`` trains it from a fixed seed; ``pretrained_vit`` trains once and caches it,
as ``digits.pretrained`` does.

**Planted-evidence text model.** ``planted_tokens`` draws sequences of random distractor
token ids in which the class is decided only by which evidence token id appears (one id per
class, planted once or twice at random positions), so the positions that decide the label
are known: the evidence mask is the ground truth an explanation should find.
``train_text`` trains an Embedding + position embedding + one attention block + mean
pooling model on them; ``text_task`` returns ``(model, ids, labels, evidence)`` for test
sequences the model did not see.

    from keras_patterns.zoo import transformers
    model, accuracy = transformers.train_vit()                 # 0.969 on the test digits
    model, ids, labels, evidence = transformers.text_task()
    r = keras_patterns.create_analyzer("attnlrp", model).analyze(ids)   # (n, tokens)

scikit-learn (the demo extra) is needed for the digits, not for the text task.
"""

from pathlib import Path

import keras
import numpy as np

from ..inputs import positive_int
from . import digits

# The digits ViT: 2x2 patches of the 8x8 images (a 4x4 grid of 16 tokens), width 32.
PATCH = 2
VIT_WIDTH = 32
VIT_HEADS = 2
VIT_BLOCKS = 2
VIT_EPOCHS = 40
VIT_FILE = "digits_vit.keras"

# The planted-evidence text task: ids 0..NUM_CLASSES-1 are the evidence tokens (id c
# decides class c), ids NUM_CLASSES..VOCAB-1 the distractors; no padding.
VOCAB = 40
NUM_CLASSES = 4
TOKENS = 16
TEXT_WIDTH = 32
TEXT_EPOCHS = 8
TEXT_FILE = "planted_text.keras"


@keras.saving.register_keras_serializable(package="keras_patterns")
class PositionEmbedding(keras.layers.Layer):
    """A learned position embedding added to the tokens: ``x + self.embedding``.

    The weight has the shape of one sample, ``(tokens, width)``, and broadcasts over the
    batch, so the layer never reads a batch size. It is registered with Keras as
    ``keras_patterns>PositionEmbedding``: a saved model that holds it loads once this module
    is imported.
    """

    def build(self, input_shape):
        self.embedding = self.add_weight(
            shape=tuple(input_shape[1:]), initializer=keras.initializers.RandomNormal(0.0, 0.02),
            name="embedding")

    def call(self, x):
        return x + self.embedding


def _block(x, heads, width, name):
    """One pre-norm transformer block: x + MHA(LN(x)), then h + MLP(LN(h))."""
    layers = keras.layers
    h = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln1")(x)
    a = layers.MultiHeadAttention(heads, width // heads, name=f"{name}_attention")(h, h)
    x = layers.Add(name=f"{name}_add1")([x, a])
    h = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln2")(x)
    h = layers.Dense(2 * width, activation="gelu", name=f"{name}_mlp1")(h)
    h = layers.Dense(width, name=f"{name}_mlp2")(h)
    return layers.Add(name=f"{name}_add2")([x, h])


def _head(x, classes):
    layers = keras.layers
    x = layers.LayerNormalization(epsilon=1e-6, name="ln")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    return layers.Dense(classes, name="logits")(x)


def build_vit(width=VIT_WIDTH, heads=VIT_HEADS, blocks=VIT_BLOCKS, *,
              input_shape=None, classes=None, patch=PATCH, name="digits_vit"):
    """Builds the (untrained) digits ViT.

    Layers: ``patches`` Conv2D(width, 2x2, stride 2) -> ``tokens`` Reshape to (16, width)
    -> ``position`` :class:`PositionEmbedding` -> ``block_i`` pre-norm blocks -> ``ln``
    -> ``pool`` (mean over the tokens) -> ``logits`` Dense(10). Input ``digits`` (8, 8, 1).

    Args:
        width: token width (divisible by ``heads``).
        heads: attention heads per block.
        blocks: transformer blocks.
        input_shape: the images' shape (default: the digits', (8, 8, 1)); square.
        classes: the number of logits (default: the digits' 10).
        patch: the patch side in pixels.
        name: the model's name.

    Returns:
        keras.Model named ``name``, not compiled.
    """
    layers = keras.layers
    input_shape = tuple(input_shape or digits.INPUT_SHAPE)
    grid = input_shape[0] // patch
    inputs = keras.Input(input_shape, name="digits" if name == "digits_vit" else "images")
    x = layers.Conv2D(width, patch, strides=patch, name="patches")(inputs)
    x = layers.Reshape((grid * grid, width), name="tokens")(x)
    x = PositionEmbedding(name="position")(x)
    for i in range(blocks):
        x = _block(x, heads, width, f"block_{i}")
    return keras.Model(inputs, _head(x, classes or digits.NUM_CLASSES), name=name)


def _compile(model, learning_rate):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def train_vit(epochs=VIT_EPOCHS, seed=0, verbose=0, *, batch_size=32, data=None):
    """Trains the digits ViT from a fixed seed and measures its test accuracy.

    Adam with a cosine-decayed learning rate (3e-3 to 0 over the run), cross-entropy on
    the logits, on the split of ``digits.load_digits_data()``; seeded with
    ``keras.utils.set_random_seed(seed)``. The defaults reach a test accuracy of 0.969
    (measured with Keras 3 / TensorFlow 2.21 on a CPU; about 40 s on two cores).

    Args:
        epochs: passes over the 1347 training images.
        seed: random seed of the weights and the batch order.
        verbose: Keras ``fit`` verbosity (0 silent).
        batch_size: training batch size.
        data: ``(x_train, y_train, x_test, y_test)`` instead of ``load_digits_data()``.

    Returns:
        ``(model, test_accuracy)``.

    Raises:
        ValueError: ``epochs`` not a positive int.
    """
    epochs = positive_int(epochs, "epochs")
    x_train, y_train, x_test, y_test = data if data is not None else digits.load_digits_data()
    keras.utils.set_random_seed(seed)
    steps = epochs * -(-len(x_train) // batch_size)
    model = _compile(build_vit(), keras.optimizers.schedules.CosineDecay(3e-3, steps))
    model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, shuffle=True,
              verbose=verbose)
    return model, digits.accuracy(model, x_test, y_test)


def _cached(cache_dir, name, train):
    path = Path(cache_dir if cache_dir is not None else digits.default_cache_dir()) / name
    if path.is_file():
        return digits.load_model(path)
    model, _ = train()
    digits.save_model(model, path)
    return model


def pretrained_vit(cache_dir=None):
    """The trained digits ViT: loaded from ``cache_dir/digits_vit.keras``, else trained
    (``train_vit()``, about half a minute on two CPU cores) and saved there.

    Args:
        cache_dir: folder of the cached model; None for ``digits.default_cache_dir()``.

    Returns:
        keras.Model.
    """
    return _cached(cache_dir, VIT_FILE, train_vit)


def planted_tokens(n, seed=0, tokens=TOKENS):
    """Sequences of random distractor ids with the evidence of their class planted in them.

    Each sequence draws its class c uniformly, fills its ``tokens`` positions with distractor
    ids (``NUM_CLASSES`` .. ``VOCAB - 1``, uniformly) and puts the evidence id c at one or
    two distinct random positions. Nothing else depends on the class, so the evidence
    positions are exactly what decides the label.

    Args:
        n: number of sequences.
        seed: seed of the draw.
        tokens: sequence length (at least 2).

    Returns:
        ``(ids, labels, evidence)``: int32 ``(n, tokens)``, int64 ``(n,)``, and a bool
        ``(n, tokens)`` mask, True where an evidence token was planted.

    Raises:
        ValueError: ``n`` not a positive int, or ``tokens`` < 2.
    """
    n = positive_int(n, "n")
    tokens = positive_int(tokens, "tokens")
    if tokens < 2:
        raise ValueError(f"tokens must be at least 2 (a planted token and a distractor), got "
                         f"{tokens}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, size=n)
    ids = rng.integers(NUM_CLASSES, VOCAB, size=(n, tokens))
    copies = rng.integers(1, 3, size=n)
    evidence = np.zeros((n, tokens), bool)
    for i in range(n):
        positions = rng.choice(tokens, size=copies[i], replace=False)
        evidence[i, positions] = True
        ids[i, positions] = labels[i]
    return ids.astype(np.int32), labels.astype(np.int64), evidence


def token_strings(ids):
    """The tokens of id sequences as words: ``E0`` .. ``E3`` for the evidence ids (``Ec``
    decides class c), ``d04`` .. ``d39`` for the distractors.

    Args:
        ids: ``(n, tokens)`` integer ids in ``0 .. VOCAB - 1``.

    Returns:
        ``n`` lists of strings.
    """
    return [[f"E{i}" if i < NUM_CLASSES else f"d{i:02d}" for i in row] for row in
            np.asarray(ids).tolist()]


def build_text(tokens=TOKENS, width=TEXT_WIDTH, heads=2, blocks=1):
    """Builds the (untrained) text model.

    Layers: ``embedding`` Embedding(VOCAB, width) -> ``position`` :class:`PositionEmbedding`
    -> ``block_i`` pre-norm blocks -> ``ln`` -> ``pool`` (mean over the tokens) ->
    ``logits`` Dense(NUM_CLASSES). Input ``token_ids``: int32 ``(tokens,)``.

    Args:
        tokens: sequence length.
        width: embedding width (divisible by ``heads``).
        heads: attention heads per block.
        blocks: transformer blocks.

    Returns:
        keras.Model named ``planted_text``, not compiled.
    """
    inputs = keras.Input((tokens,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(VOCAB, width, name="embedding")(inputs)
    x = PositionEmbedding(name="position")(x)
    for i in range(blocks):
        x = _block(x, heads, width, f"block_{i}")
    return keras.Model(inputs, _head(x, NUM_CLASSES), name="planted_text")


def train_text(epochs=TEXT_EPOCHS, seed=0, verbose=0, *, train_size=4000, test_size=500):
    """Trains the text model on ``planted_tokens`` and measures its accuracy on new ones.

    Adam (learning rate 3e-3), cross-entropy on the logits; training sequences drawn with
    ``seed``, test sequences with ``seed + 1``.

    Args:
        epochs: passes over the training sequences.
        seed: random seed of the weights, the batch order and the data.
        verbose: Keras ``fit`` verbosity (0 silent).
        train_size: training sequences.
        test_size: test sequences.

    Returns:
        ``(model, test_accuracy)``.

    Raises:
        ValueError: ``epochs`` not a positive int.
    """
    epochs = positive_int(epochs, "epochs")
    ids, labels, _ = planted_tokens(train_size, seed=seed)
    test_ids, test_labels, _ = planted_tokens(test_size, seed=seed + 1)
    keras.utils.set_random_seed(seed)
    model = _compile(build_text(), 3e-3)
    model.fit(ids, labels, epochs=epochs, batch_size=32, shuffle=True, verbose=verbose)
    return model, digits.accuracy(model, test_ids, test_labels)


def pretrained_text(cache_dir=None):
    """The trained text model: loaded from ``cache_dir/planted_text.keras``, else trained
    (``train_text()``, a few seconds) and saved there.

    Args:
        cache_dir: folder of the cached model; None for ``digits.default_cache_dir()``.

    Returns:
        keras.Model.
    """
    return _cached(cache_dir, TEXT_FILE, train_text)


def text_task(n=200, seed=1, cache_dir=None):
    """The trained text model and test sequences with their labels and true evidence.

    Args:
        n: number of test sequences.
        seed: seed of their draw (``train_text`` trains on seed 0).
        cache_dir: folder of the cached model; None for ``digits.default_cache_dir()``.

    Returns:
        ``(model, ids, labels, evidence)``: the model of :func:`pretrained_text`, int32 ids
        ``(n, TOKENS)``, int64 labels ``(n,)`` and the bool evidence mask ``(n, TOKENS)``.
    """
    ids, labels, evidence = planted_tokens(n, seed=seed)
    return pretrained_text(cache_dir), ids, labels, evidence


def evidence_recovery(relevance, evidence):
    """How often the most relevant token of a sequence is a planted evidence token.

    Args:
        relevance: ``(n, tokens)`` relevance per token, or ``(n, tokens, dims)`` (summed
            over the dimensions); the largest value (signed) is the top-1 token.
        evidence: the bool ``(n, tokens)`` mask of :func:`planted_tokens`.

    Returns:
        ``(hits, chance)``: the fraction of sequences whose top-1 token is evidence, and the
        fraction a uniformly random token would reach (the mean share of evidence
        positions).

    Raises:
        ValueError: shapes that do not match (the message names both).
    """
    relevance = np.asarray(relevance, dtype=np.float64)
    evidence = np.asarray(evidence, dtype=bool)
    if relevance.ndim == 3:
        relevance = relevance.sum(axis=-1)
    if relevance.shape != evidence.shape:
        raise ValueError(f"relevance of shape {relevance.shape} does not match the evidence "
                         f"mask of shape {evidence.shape}")
    top = np.argmax(relevance, axis=-1)
    hits = float(np.mean(evidence[np.arange(len(top)), top]))
    return hits, float(np.mean(evidence.mean(axis=-1)))
