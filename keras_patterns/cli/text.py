"""`keras-patterns explain` on text: text files (one text per line) tokenized, padded to the
model's sequence length (a model without one gets each text unpadded, batched with texts of
its length), explained, and drawn as token heat maps (PNG and HTML).

A text longer than the model's sequence length is truncated to it, with a warning naming the
line and the tokens dropped (the explanation covers the tokens the model saw)."""

import os
import warnings
from pathlib import Path

import numpy as np

from .. import visualize
from ..errors import InvalidInputError


def _describe(tensor):
    return f"'{tensor.name}' {tensor.dtype} {tuple(tensor.shape)}"


def _is_integer(tensor):
    try:
        return np.dtype(str(tensor.dtype)).kind in "iu"
    except TypeError:
        return False


class TokenInputs:
    """Which model input takes the token ids and what the others get: an input named like
    a mask (``padding_mask``) gets 1 at tokens and 0 at padding, one named like segments
    (``segment_ids``) zeros. The token input is the integer input named like tokens
    (``token_ids``), else the only integer input.

    Args:
        model: the keras.Model.

    Raises:
        InvalidInputError: no integer input of shape (batch, length), or another input
            this cannot fill.
    """

    def __init__(self, model):
        inputs = list(model.inputs)
        shown = ", ".join(_describe(t) for t in inputs)
        integers = [i for i, t in enumerate(inputs) if _is_integer(t) and len(t.shape) == 2]
        if not integers:
            raise InvalidInputError(
                f"model '{model.name}' has no integer input of shape (batch, length) for "
                f"token ids (its inputs: {shown}); --vocab and --tokenizer are for text "
                "models.")
        named = [i for i in integers if "token" in inputs[i].name.lower()
                 and "mask" not in inputs[i].name.lower()]
        candidates = named or [i for i in integers if "mask" not in inputs[i].name.lower()
                               and "segment" not in inputs[i].name.lower()]
        if len(candidates) != 1:
            raise InvalidInputError(
                f"model '{model.name}': cannot tell which input takes the token ids (its "
                f"inputs: {shown}); name it token_ids.")
        self.index = candidates[0]
        self.roles = []
        for i, t in enumerate(inputs):
            name = t.name.lower()
            if i == self.index:
                self.roles.append("ids")
            elif "mask" in name and len(t.shape) == 2:
                self.roles.append("mask")
            elif "segment" in name and len(t.shape) == 2:
                self.roles.append("zeros")
            else:
                raise InvalidInputError(
                    f"model '{model.name}': its input {_describe(t)} is neither token ids, "
                    "a padding mask nor segment ids; text explanations fill only those.")
        self.dtypes = [str(t.dtype) for t in inputs]
        self.length = inputs[self.index].shape[1]

    def arrays(self, rows, pad_id):
        """(one array per model input, the mask (n, length)) for rows of token ids."""
        length = self.length or max(len(row) for row in rows)
        ids = np.full((len(rows), length), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), length), dtype=bool)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = row
            mask[i, :len(row)] = True
        filled = {"ids": ids, "mask": mask, "zeros": np.zeros_like(ids)}
        return ([filled[role].astype(dtype) for role, dtype in zip(self.roles, self.dtypes)],
                mask)


def read_texts(paths, tokenizer, length):
    """(where, tokens, ids) of each non-empty line of the text files, ids cut to `length`."""
    texts = []
    for path in paths:
        if not os.path.isfile(path):
            raise InvalidInputError(f"text file '{path}' does not exist.")
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except UnicodeDecodeError:
            raise InvalidInputError(f"'{path}' is not UTF-8 text (one text per line).") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            tokens, ids = tokenizer.tokenize(line, where)
            if not ids:
                continue
            if length is not None and len(ids) > length:
                warnings.warn(f"{where} has {len(ids)} tokens; the model takes {length}: the "
                              f"last {len(ids) - length} are dropped.", stacklevel=2)
                tokens, ids = tokens[:length], ids[:length]
            texts.append((Path(path).stem, number, where, tokens, ids))
    if not texts:
        raise InvalidInputError(f"no text in {', '.join(map(str, paths))} (one text per line).")
    return texts


def _predictions(model, x, output_index):
    """(predicted class, its output value) per sample of the explained output, or None per
    sample where the output is not (batch, classes)."""
    y = model(x if len(x) > 1 else x[0], training=False)
    if isinstance(y, (list, tuple)):
        y = y[output_index or 0]
    elif isinstance(y, dict):
        y = list(y.values())[output_index or 0]
    y = np.asarray(y)
    if y.ndim != 2:
        return [None] * len(y)
    classes = np.argmax(y, axis=1)
    return [(f"class {c}", y[i, c]) for i, c in enumerate(classes)]


def _chunks(texts, size, by_length):
    """Batches of at most `size` texts; texts of one length together where `by_length` (a
    model without a fixed sequence length then sees every text unpadded)."""
    groups = [texts]
    if by_length:
        lengths = sorted({len(text[-1]) for text in texts})
        groups = [[t for t in texts if len(t[-1]) == n] for n in lengths]
    for group in groups:
        for start in range(0, len(group), size):
            yield group[start:start + size]


def explain_texts(args, model, analyzer, tokenizer):
    """Writes OUT/<file stem>.<line>.<method>.png and .html (and .npy: the relevance of the
    text's tokens, padding left out) for every non-empty line; returns the count."""
    inputs = TokenInputs(model)
    texts = read_texts(args.images, tokenizer, inputs.length)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for chunk in _chunks(texts, args.batch_size, inputs.length is None):
        x, mask = inputs.arrays([ids for *_, ids in chunk], tokenizer.pad_id)
        e = analyzer.analyze(x, neuron_selection=args.neuron)
        relevance = np.asarray(e[inputs.index] if isinstance(e, list) else e)
        predictions = _predictions(model, x, args.output_index)
        for i, (stem, number, where, tokens, _) in enumerate(chunk):
            n = len(tokens)
            row, keep = relevance[i:i + 1, :n], mask[i:i + 1, :n]
            name = out / f"{stem}.{number}.{args.method}"
            title = where if args.neuron is None else f"{where}, explaining output {args.neuron}"
            shown = dict(titles=[title], predictions=[predictions[i]])
            visualize.token_image([tokens], row, keep, path=f"{name}.png", **shown)
            visualize.token_html([tokens], row, keep, path=f"{name}.html",
                                 title=f"{args.method}: {where}", **shown)
            if args.npy:
                np.save(f"{name}.npy", row[0])
            written += 1
    return written
