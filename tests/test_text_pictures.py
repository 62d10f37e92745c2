"""Token heat maps (PNG, HTML) and ViT patch maps, checked against the colour formula
written out in test_visualize (blue-white-red, t = v / max|v| per sample, uint8 by rounding
half up) and against np.kron for the patch grid."""

import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image
from test_visualize import bwr, to_uint8

from keras_patterns import visualize as vis


class Spans(HTMLParser):
    """Every <span>: its class, style and text (unescaped), and the <h2> titles."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.spans, self.titles, self._in = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "span":
            self.spans.append({**dict(attrs), "text": ""})
            self._in = "span"
        elif tag == "h2":
            self.titles.append("")
            self._in = "h2"
        elif tag == "script":
            raise AssertionError("the page must hold no script")

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "span":
            self.spans[-1]["text"] += data
        elif self._in == "h2":
            self.titles[-1] += data


def parse(page):
    parser = Spans()
    parser.feed(page)
    return parser


def background(span):
    match = re.search(r"background-color: #([0-9a-f]{6})", span["style"])
    return [int(match.group(1)[k:k + 2], 16) for k in (0, 2, 4)]


def expected_colors(values, mask):
    """The oracle: each kept token's bwr colour on its sample's max |v| over kept tokens."""
    values = np.where(mask, values, 0.0)
    m = np.abs(values).max(axis=1)
    m = np.where(m > 0, m, 1.0)
    return to_uint8(bwr(values / m[:, None]))


@pytest.fixture
def sample():
    rng = np.random.default_rng(0)
    tokens = [["the", "<b>&", "cat", "sat", "[PAD]", "[PAD]"],
              ["a", "b", "c", "d", "e", "f"]]
    relevance = rng.normal(size=(2, 6))
    relevance[0, 4:] = 50.0  # padding with a large value: it must not set the scale
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    return tokens, relevance, mask


def test_html_colours_are_the_colour_map_of_the_relevance(sample):
    tokens, relevance, mask = sample
    page = vis.token_html(tokens, relevance, mask, predictions=[("positive", 0.9), None])
    spans = parse(page).spans
    want = expected_colors(relevance, mask.astype(bool))
    kept = [(i, j) for i in range(2) for j in range(6) if mask[i, j]]
    assert len(spans) == len(kept) == 10  # the two padding tokens are skipped
    for span, (i, j) in zip(spans, kept):
        assert span["text"] == tokens[i][j]
        assert background(span) == list(want[i, j]), (i, j)
        assert float(span["title"].split("=")[1]) == pytest.approx(relevance[i, j], rel=1e-3)
    titles = parse(page).titles
    assert titles[0] == "sample 0: predicted positive (score 0.9)" and titles[1] == "sample 1"
    assert "<link" not in page and "http" not in page  # self-contained


def test_html_escapes_tokens_and_titles(sample):
    tokens, relevance, mask = sample
    page = vis.token_html(tokens, relevance, mask, titles=["<i>x</i>", "y"])
    assert "&lt;b&gt;&amp;" in page and "<b>&" not in page
    assert "&lt;i&gt;x&lt;/i&gt;" in page and "<i>" not in page
    assert parse(page).spans[1]["text"] == "<b>&"


def test_html_greys_padding_on_request(sample):
    tokens, relevance, mask = sample
    spans = parse(vis.token_html(tokens, relevance, mask, padding="grey")).spans
    assert len(spans) == 12
    assert [background(s) for s in spans[4:6]] == [list(vis.PAD_COLOR)] * 2
    assert all("pad" in s["class"] for s in spans[4:6])
    assert not any("pad" in s["class"] for s in spans[:4] + spans[6:])


def test_shared_scale_uses_the_largest_value_of_the_batch():
    relevance = np.array([[1.0, -2.0], [0.5, 0.25]])
    colors = vis.token_colors(relevance, scale="shared")
    np.testing.assert_array_equal(colors, to_uint8(bwr(relevance / 2.0)))


def test_png_boxes_count_and_colours(sample, tmp_path):
    tokens, relevance, mask = sample
    path = tmp_path / "tokens.png"
    vis.token_image(tokens, relevance, mask, path=path)
    pixels = np.asarray(Image.open(path).convert("RGB"))
    layout = vis.token_boxes(tokens, relevance, mask)
    assert pixels.shape[1::-1] == layout["size"]
    want = expected_colors(relevance, mask.astype(bool))
    boxes = layout["boxes"]
    assert [(i, j) for i, j, _ in boxes] == [(i, j) for i in range(2) for j in range(6)
                                           if mask[i, j]]
    for i, j, (x0, y0, x1, y1) in boxes:
        # inside the outline, above the text
        np.testing.assert_array_equal(pixels[y0 + 1, x0 + 1], want[i, j])
        np.testing.assert_array_equal(pixels[y0 + 1, x1 - 1], want[i, j])
        np.testing.assert_array_equal(pixels[y1 - 1, x0 + 1], want[i, j])
        np.testing.assert_array_equal(pixels[y0, x0], vis.text.BORDER_COLOR)
    # counted from the pixels alone: runs of non-white pixels along each box row's outline
    count = 0
    for y in sorted({y0 for *_, (_, y0, _, _) in boxes}):
        line = (pixels[y] != 255).any(axis=-1)
        count += int(np.count_nonzero(line[1:] & ~line[:-1]) + line[0])
    assert count == 10


def test_png_wraps_long_texts_within_the_width():
    tokens = [[f"word{k}" for k in range(40)]]
    relevance = np.linspace(-1, 1, 40)[None]
    layout = vis.token_boxes(tokens, relevance, width=200)
    rows = sorted({box[1] for *_, box in layout["boxes"]})
    assert len(rows) > 3 and layout["size"][0] == 200
    assert all(box[2] <= 200 - vis.text.MARGIN for *_, box in layout["boxes"])
    image = vis.token_image(tokens, relevance, width=200)
    assert image.size == layout["size"]


def test_bad_token_inputs_are_named():
    with pytest.raises(ValueError, match=r"tokens\[1\] must list 3 tokens"):
        vis.token_html([["a", "b", "c"], ["a"]], np.zeros((2, 3)))
    with pytest.raises(ValueError, match="mask must be shaped"):
        vis.token_image([["a"]], np.zeros((1, 1)), np.ones((1, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        vis.token_html([["a"]], np.array([[np.nan]]))
    with pytest.raises(ValueError, match="padding must be one of"):
        vis.token_html([["a"]], np.zeros((1, 1)), padding="hide")
    with pytest.raises(ValueError, match="tokens must be a list of 2"):
        vis.token_html([["a"]], np.zeros((2, 1)))


# --------------------------------------------------------------------------------------
# ViT patch maps


def test_patch_values_are_the_kronecker_upsampling_of_the_patch_grid():
    rng = np.random.default_rng(1)
    relevance = rng.normal(size=(2, 1 + 12))  # a class token, then a 3 x 4 grid
    values = vis.patch_values(relevance, (9, 16), class_tokens=1, grid=(3, 4))
    for n in range(2):
        want = np.kron(relevance[n, 1:].reshape(3, 4), np.ones((3, 4)))
        np.testing.assert_array_equal(values[n], want)
    square = vis.patch_values(relevance[:, 4:], (6, 6))  # 9 patches: a 3 x 3 grid
    np.testing.assert_array_equal(square[1], np.kron(relevance[1, 4:].reshape(3, 3),
                                                     np.ones((2, 2))))


def test_patch_heatmap_is_the_overlay_of_the_coloured_patches():
    rng = np.random.default_rng(2)
    images = rng.uniform(size=(1, 8, 8, 3))
    relevance = rng.normal(size=(1, 5))  # class token + 2 x 2
    got = vis.patch_heatmap(images, relevance, class_tokens=1, alpha=1.0)
    grid = relevance[0, 1:].reshape(2, 2)
    want = to_uint8(bwr(np.kron(grid, np.ones((4, 4))) / np.abs(grid).max()))
    np.testing.assert_array_equal(got[0], want)
    low, high = images.min(), images.max()
    pixels = to_uint8(255 * (images[0] - low) / (high - low))
    blend = vis.patch_heatmap(images, relevance, class_tokens=1, alpha=0.25)
    np.testing.assert_array_equal(blend[0], to_uint8(0.75 * pixels + 0.25 * want))


def test_patch_grid_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"not a square grid \(with class_tokens=1"):
        vis.patch_grid(np.zeros((1, 17)))
    with pytest.raises(ValueError, match=r"grid \(2, 3\) has 6 patches"):
        vis.patch_grid(np.zeros((1, 5)), grid=(2, 3))
    with pytest.raises(ValueError, match="relevance has 2 samples, images 1"):
        vis.patch_heatmap(np.zeros((1, 4, 4)), np.zeros((2, 4)))
