"""Tokenizers for `keras-patterns explain` on text: a plain vocabulary file, or a keras-hub
tokenizer (keras-hub is optional and imported only here, when asked for)."""

import importlib
import json
import os

import numpy as np

from ..errors import InvalidInputError, MissingExtraError

UNK = "[UNK]"
PAD = "[PAD]"


class Vocabulary:
    """Whitespace tokenisation over a vocabulary file, one token per line (its line number,
    from 0, is its id). A word not in the vocabulary gets the id of ``[UNK]``; padding the
    id of ``[PAD]``, or 0 where the vocabulary has none. Words are matched as written (no
    lowercasing, no splitting of punctuation).

    Args:
        path: the vocabulary file (UTF-8).

    Raises:
        InvalidInputError: the file is missing, not UTF-8 text, or holds no token.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise InvalidInputError(f"vocabulary file '{self.path}' does not exist.")
        try:
            with open(self.path, encoding="utf-8") as f:
                tokens = [line.rstrip("\r\n") for line in f]
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidInputError(
                f"vocabulary file '{self.path}' cannot be read as UTF-8 text ({e}).") from None
        while tokens and not tokens[-1].strip():
            tokens.pop()
        if not tokens:
            raise InvalidInputError(
                f"vocabulary file '{self.path}' is empty: one token per line expected.")
        self.tokens = tokens
        self.ids = {}
        for i, token in enumerate(tokens):
            self.ids.setdefault(token, i)
        self.unk_id = self.ids.get(UNK)
        self.pad_id = self.ids.get(PAD, 0)
        self.size = len(tokens)

    def tokenize(self, text, where):
        """(the words of `text`, their ids); `where` names the text in messages."""
        words = text.split()
        ids = []
        for word in words:
            if word in self.ids:
                ids.append(self.ids[word])
            elif self.unk_id is not None:
                ids.append(self.unk_id)
            else:
                raise InvalidInputError(
                    f"{where}: the word {word!r} is not in the vocabulary '{self.path}', "
                    f"which has no {UNK} token for unknown words.")
        return words, ids


def _keras_hub():
    try:
        return importlib.import_module("keras_hub")
    except ImportError:
        raise MissingExtraError(
            "--tokenizer needs keras-hub, which is not installed: pip install keras-hub "
            "(or give a plain vocabulary file with --vocab).") from None


class HubTokenizer:
    """A keras-hub tokenizer read from disk, offline: a saved preset folder (or its
    ``tokenizer.json``, with the assets beside it, as ``save_to_preset`` writes them), or a
    WordPiece vocabulary ``.txt`` file. Special tokens ([CLS], [SEP]) are not added: the
    ids are the tokenizer's ids of the text. Padding is the tokenizer's ``pad_token_id``,
    else 0.

    Args:
        path: the folder, ``tokenizer.json`` or vocabulary file.

    Raises:
        MissingExtraError: keras-hub is not installed.
        InvalidInputError: the path is missing or not a tokenizer keras-hub can read.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise InvalidInputError(f"tokenizer '{self.path}' does not exist.")
        keras_hub = _keras_hub()
        try:
            if self.path.endswith(".txt"):
                self.tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=self.path)
            else:
                self.tokenizer = self._from_preset(self.path)
        except (ValueError, TypeError, OSError, KeyError, AttributeError) as e:
            message = " ".join(str(e).split())
            raise InvalidInputError(
                f"tokenizer '{self.path}' cannot be loaded by keras-hub: {message}") from None
        self.size = int(self.tokenizer.vocabulary_size())
        pad = getattr(self.tokenizer, "pad_token_id", None)
        self.pad_id = 0 if pad is None else int(pad)

    @staticmethod
    def _from_preset(path):
        import keras

        folder = path if os.path.isdir(path) else os.path.dirname(path)
        config = path if not os.path.isdir(path) else os.path.join(path, "tokenizer.json")
        if not os.path.isfile(config):
            raise ValueError(f"no tokenizer.json in '{folder}' (a preset folder saved by "
                             "keras-hub's save_to_preset has one)")
        with open(config, encoding="utf-8") as f:
            tokenizer = keras.saving.deserialize_keras_object(json.load(f))
        if hasattr(tokenizer, "load_preset_assets"):
            tokenizer.load_preset_assets(folder)
        return tokenizer

    def tokenize(self, text, where):
        """(the tokens of `text` as strings, their ids)."""
        ids = [int(i) for i in np.asarray(self.tokenizer(text)).reshape(-1)]
        return [str(self.tokenizer.id_to_token(i)) for i in ids], ids


def load_tokenizer(vocab=None, tokenizer=None):
    """The tokenizer the options name: `--vocab FILE` or `--tokenizer PATH` (not both).

    Args:
        vocab: a plain vocabulary file, or None.
        tokenizer: a keras-hub tokenizer path, or None.

    Returns:
        A `Vocabulary` or a `HubTokenizer`.
    """
    if vocab is not None and tokenizer is not None:
        raise InvalidInputError("give --vocab FILE or --tokenizer PATH, not both.")
    return Vocabulary(vocab) if vocab is not None else HubTokenizer(tokenizer)
