"""Made-up evaluations for the HTML tests: as many inputs as wanted, hostile names where asked.

The records have the shapes a real run writes (a box, a 24-point LSC curve, a label out of ten);
every input shares one thumbnail of a real MNIST digit and its map, written under each input's
own digest name (hard links), so a 1,000-input gallery is written in a second or two.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from smugir.evaluation.comparison import Record
from smugir.evaluation.gallery import input_thumbnail, map_thumbnail, picture_name, write_index
from smugir.evaluation.sanity import SanityRecord
from smugir.cli import main
from tests.conftest import DATA, mnist_samples

MNIST = DATA / "mnist" / "mnist-net_256x2.onnx"
MNIST_SAMPLES = DATA / "mnist" / "mnist_test_samples.npz"
TEXT = DATA.parent.parent / "examples" / "text"
CIFAR = DATA / "cifar" / "cifar10_small.onnx"

METHODS = ("smug", "ig", "xrai", "optbox")
HOSTILE = ('<script>alert("id")</script>', "\"'><img src=x onerror=alert('img')>", "</textarea><script>alert(3)</script>",
           "ünïcødé 🦆 \u202egnp.exe", "'; alert(4); '", "&lt;entity&gt; &amp;")


def image_eval(out: Path, limit: int = 3, methods: str = "smug,ig,optbox") -> Path:
    """A real `smug eval --out` of MNIST digits; returns index.html."""
    assert main(["eval", str(MNIST), str(MNIST_SAMPLES), "--limit", str(limit), "--window", "2", "--methods", methods, "--out", str(out)]) == 0
    return out / "index.html"


def text_eval(out: Path, model: Path = TEXT / "polarity_cnn.onnx", sentences: Path = TEXT / "test_sentences.tsv", limit: int = 3) -> Path:
    """A real `smug eval --out` of the bundled sentence classifier; returns index.html."""
    assert main(["eval", str(model), str(sentences), "--vocab", str(TEXT / "vocab.txt"), "--limit", str(limit),
                 "--methods", "smug,occlusion", "--out", str(out)]) == 0
    return out / "index.html"


def sanity(out: Path) -> Path:
    """A real `smug sanity --out` (one CIFAR photo, cascading randomisation); returns index.html."""
    assert main(["sanity", str(CIFAR), f"{DATA / 'cifar' / 'cifar10_test_samples.npz'}:images_nhwc", "--limit", "1",
                 "--methods", "gradient,edges", "--modes", "cascading", "--out", str(out)]) == 0
    return out / "index.html"


def records(count: int, ids: Sequence[str] | None = None, methods: Sequence[str] = METHODS, model: str = "net.onnx",
            seed: int = 0) -> list[Record]:
    """`count` inputs (ids '0000'... unless given), labels i % 10, each method with a random LSC."""
    ids = list(ids) if ids is not None else [f"{i:04d}" for i in range(count)]
    scores = np.round(np.random.default_rng(seed).normal(size=(count, len(methods))), 3).tolist()
    areas = np.round(np.linspace(0.02, 1.0, 24), 4)
    shape = np.round(np.log(areas) / 4, 3).tolist()
    made = []
    for number, sample in enumerate(ids[:count]):
        for method, lsc in zip(methods, scores[number]):
            curve = tuple(zip(areas.tolist(), [round(lsc + s, 3) for s in shape]))
            made.append(Record(model, sample, number % 10, method, lsc, 0.1, 0.5, (4, 4, 12, 12),
                               None if method == "optbox" else 0.1, 0.01, curve=curve))
    return made


def write(out: Path, chosen: Sequence[Record], title: str = "made-up evaluation") -> Path:
    """The gallery's thumbnails (one digit, shared) and `out/index.html`."""
    image = mnist_samples()[0][0].reshape(1, 28, 28)
    picture = input_thumbnail(image)
    heat = map_thumbnail(image[0], image, (4, 4, 12, 12))
    (out / "gallery").mkdir(parents=True, exist_ok=True)
    (out / "input.jpg").write_bytes(picture)
    (out / "map.jpg").write_bytes(heat)
    for sample in dict.fromkeys(r.sample for r in chosen):
        os.link(out / "input.jpg", out / picture_name(sample))
    for record in chosen:
        os.link(out / "map.jpg", out / picture_name(record.sample, record.method))
    return write_index(out, chosen, title)


def sanity_records(layers: Sequence[str], methods: Sequence[str] = ("gradient", "edges"), mode: str = "cascading") -> list[SanityRecord]:
    """One input, the original model and one step per layer; similarity falling with the step (edges: 1)."""
    made = []
    for step, layer in enumerate(["", *layers]):
        for method in methods:
            value = 1.0 if method == "edges" else 1.0 / (1 + step)
            made.append(SanityRecord(mode, step, layer, method, "00", value, value, value, value))
    return made
