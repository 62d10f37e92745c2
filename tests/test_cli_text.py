"""`keras-patterns explain` on texts, called in-process: a tiny Embedding model with a
vocabulary file, its token heat maps written, and the .npy relevance equal to the analyzer
run directly on the same token ids (the ids built here from the vocabulary by hand); each
bad input a one-line error with exit status 2."""

import sys

import keras
import numpy as np
import pytest
from keras import layers
from PIL import Image
from test_text_pictures import parse

import keras_patterns as kp
from keras_patterns import cli

VOCAB = ["[PAD]", "[UNK]", "the", "cat", "sat", "on", "mat", "<b>&"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A model with token ids and a padding mask (sequence 6), a vocabulary and texts."""
    folder = tmp_path_factory.mktemp("text")
    keras.utils.set_random_seed(0)
    ids = keras.Input((6,), dtype="int32", name="token_ids")
    mask = keras.Input((6,), dtype="int32", name="padding_mask")
    e = layers.Embedding(len(VOCAB), 4)(ids)
    weights = layers.Reshape((6, 1))(keras.ops.cast(mask, "float32"))
    h = layers.Flatten()(layers.Multiply()([e, weights]))
    model = keras.Model([ids, mask], layers.Dense(3)(h))
    model.save(folder / "text.keras")
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (folder / "texts.txt").write_text("the cat sat\n\nthe <b>& dog sat on mat mat\n")
    return folder


def _explain(folder, *extra, texts="texts.txt"):
    return cli.main(["explain", str(folder / "text.keras"), str(folder / texts),
                     "--method", "input_t_gradient", "--out", str(folder / "out"), *extra])


def _one_line_error(capsys, *fragments):
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("keras-patterns explain: error: "), err
    for fragment in fragments:
        assert fragment in err[0], err[0]


def test_explain_texts_writes_pictures_and_the_analyzers_relevance(files, capsys):
    status = _explain(files, "--vocab", str(files / "vocab.txt"), "--npy")
    assert status == 0
    err = capsys.readouterr().err
    # line 3 has 7 words for a sequence of 6: truncated, with a one-line warning
    assert "texts.txt line 3 has 7 tokens; the model takes 6: the last 1 are dropped" in err
    # the ids by hand: 'dog' is unknown ([UNK] = 1), padding [PAD] = 0, mask 1 at words
    ids = np.array([[2, 3, 4, 0, 0, 0], [2, 7, 1, 4, 5, 6]])
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    model = keras.models.load_model(files / "text.keras")
    oracle = kp.create_analyzer("input_t_gradient", model).analyze([ids, mask])[0]
    got = [np.load(files / "out" / f"texts.{n}.input_t_gradient.npy") for n in (1, 3)]
    np.testing.assert_allclose(got[0], oracle[0, :3], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got[1], oracle[1], rtol=1e-5, atol=1e-7)
    assert np.ptp(got[1]) > 0  # the oracle tells the tokens apart
    for n, words in ((1, ["the", "cat", "sat"]),
                     (3, ["the", "<b>&", "dog", "sat", "on", "mat"])):
        stem = files / "out" / f"texts.{n}.input_t_gradient"
        assert Image.open(f"{stem}.png").size[0] > 0
        page = parse(open(f"{stem}.html", encoding="utf-8").read())
        assert [s["text"] for s in page.spans] == words
        predicted = int(np.argmax(model([ids, mask])[n // 2]))
        assert f"predicted class {predicted}" in page.titles[0]


def test_an_unknown_word_without_unk_is_named(files, capsys, tmp_path):
    vocab = tmp_path / "v.txt"
    vocab.write_text("the\ncat\nsat\n")
    assert _explain(files, "--vocab", str(vocab)) == 2
    _one_line_error(capsys, "texts.txt line 3", "'<b>&'", "no [UNK] token")


@pytest.mark.parametrize("content, fragment", [(None, "does not exist"),
                                               ("\n\n", "is empty")])
def test_a_missing_or_empty_vocabulary_is_one_line(files, capsys, tmp_path, content,
                                                   fragment):
    vocab = tmp_path / "vocab.txt"
    if content is not None:
        vocab.write_text(content)
    assert _explain(files, "--vocab", str(vocab)) == 2
    _one_line_error(capsys, str(vocab), fragment)


def test_a_model_without_integer_input_is_refused(files, capsys, tmp_path):
    inp = keras.Input((6,), name="pixels")  # named: Keras numbers unnamed inputs per process
    keras.Model(inp, layers.Dense(2)(inp)).save(tmp_path / "dense.keras")
    status = cli.main(["explain", str(tmp_path / "dense.keras"), str(files / "texts.txt"),
                       "--method", "gradient", "--vocab", str(files / "vocab.txt")])
    assert status == 2
    _one_line_error(capsys, "no integer input", "'pixels' float32 (None, 6)")


def test_a_text_model_given_no_tokenizer_asks_for_one(files, capsys):
    assert _explain(files) == 2
    _one_line_error(capsys, "takes token ids", "--vocab FILE or --tokenizer PATH")


def test_no_text_and_both_tokenizers_are_refused(files, capsys, tmp_path):
    (tmp_path / "blank.txt").write_text("\n   \n")
    blank = ["explain", str(files / "text.keras"), str(tmp_path / "blank.txt"),
             "--method", "gradient", "--vocab", str(files / "vocab.txt")]
    assert cli.main(blank) == 2
    _one_line_error(capsys, "no text in")
    assert _explain(files, "--vocab", "v.txt", "--tokenizer", "t") == 2
    _one_line_error(capsys, "not both")


def test_without_keras_hub_the_tokenizer_option_is_one_line(files, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # import keras_hub fails
    assert _explain(files, "--tokenizer", str(files / "vocab.txt")) == 2
    _one_line_error(capsys, "needs keras-hub", "pip install keras-hub")


def test_a_keras_hub_preset_folder_tokenizes_as_keras_hub_does(files, tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "##s", "sat",
             "mat"]
    keras_hub.models.BertTokenizer(vocabulary=words).save_to_preset(str(tmp_path / "preset"))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,), dtype="int32"), layers.Embedding(10, 3),
                              layers.Flatten(), layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    (tmp_path / "t.txt").write_text("the cats sat\n")
    for tokenizer in (tmp_path / "preset", tmp_path / "preset" / "tokenizer.json"):
        status = cli.main(["explain", str(tmp_path / "m.keras"), str(tmp_path / "t.txt"),
                           "--method", "gradient", "--tokenizer", str(tokenizer),
                           "--out", str(tmp_path / "out"), "--npy"])
        assert status == 0
        page = parse((tmp_path / "out" / "t.1.gradient.html").read_text(encoding="utf-8"))
        assert [s["text"] for s in page.spans] == ["the", "cat", "##s", "sat"]
        ids = np.array([[5, 6, 7, 8, 0, 0]])
        oracle = kp.create_analyzer("gradient", model).analyze(ids)
        np.testing.assert_allclose(np.load(tmp_path / "out" / "t.1.gradient.npy"),
                                   oracle[0, :4], rtol=1e-5, atol=1e-7)


def test_a_model_without_fixed_length_sees_each_text_unpadded(files, tmp_path):
    keras.utils.set_random_seed(1)
    ids = keras.Input((None,), dtype="int32")
    pooled = layers.GlobalAveragePooling1D()(layers.Embedding(len(VOCAB), 4)(ids))
    model = keras.Model(ids, layers.Dense(2)(pooled))  # padding would change the average
    model.save(tmp_path / "var.keras")
    (tmp_path / "t.txt").write_text("the cat\nthe cat sat on mat\nsat on\n")
    status = cli.main(["explain", str(tmp_path / "var.keras"), str(tmp_path / "t.txt"),
                       "--method", "input_t_gradient", "--vocab", str(files / "vocab.txt"),
                       "--out", str(tmp_path / "out"), "--npy"])
    assert status == 0
    analyzer = kp.create_analyzer("input_t_gradient", model)
    for line, row in ((1, [2, 3]), (2, [2, 3, 4, 5, 6]), (3, [4, 5])):
        oracle = analyzer.analyze(np.array([row]))[0]
        got = np.load(tmp_path / "out" / f"t.{line}.input_t_gradient.npy")
        np.testing.assert_allclose(got, oracle, rtol=1e-5, atol=1e-7)
