"""Reading inputs (images, .npy, .npz entries), baselines, and all-or-nothing output files."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA, cifar_samples, mnist_samples
from PIL import Image

from smugir.baseline import make_baseline
from smugir.errors import InputError, OutputError
from smugir.exporters.files import check_folder, write_atomically, write_text
from smugir.inputs import load_input, load_segments
from smugir.units import input_layout

MNIST_SHAPE = (1, 784, 1)
MNIST_LAYOUT = input_layout(MNIST_SHAPE)


def test_npz_entry_and_npy(tmp_path):
    images, _ = mnist_samples()
    x = load_input(f"{DATA}/mnist/mnist_test_samples.npz:images[3]", MNIST_SHAPE, MNIST_LAYOUT)
    np.testing.assert_array_equal(x.reshape(28, 28), images[3])
    np.save(tmp_path / "x.npy", images[5])
    np.testing.assert_array_equal(load_input(str(tmp_path / "x.npy"), MNIST_SHAPE, MNIST_LAYOUT).reshape(28, 28), images[5])


def test_png_round_trip_with_normalisation(tmp_path):
    images, _ = cifar_samples()
    pixels = np.round(images[0] * 255).astype(np.uint8)
    Image.fromarray(pixels, "RGB").save(tmp_path / "cat.png")
    mean, std = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
    layout = input_layout((1, 3, 32, 32))
    x = load_input(str(tmp_path / "cat.png"), (1, 3, 32, 32), layout, mean=mean, std=std)
    expected = ((pixels / 255.0 - mean) / std).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(x, expected, rtol=1e-5)
    nhwc = load_input(str(tmp_path / "cat.png"), (1, 32, 32, 3), input_layout((1, 32, 32, 3)))
    np.testing.assert_allclose(nhwc[0], pixels / 255.0, rtol=1e-6)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("missing.npy", "does not exist"),
        ("{data}/mnist/mnist_test_samples.npz:nope[0]", "no array 'nope'"),
        ("{data}/mnist/mnist_test_samples.npz:images[99]", "out of range"),
        ("{data}/cifar/cifar10_test_samples.npz:images_nhwc[0]", "model input is"),
        ("{data}/README.md", "unknown type"),
    ],
)
def test_bad_inputs(spec, message):
    with pytest.raises(InputError, match=message):
        load_input(spec.format(data=DATA), MNIST_SHAPE, MNIST_LAYOUT)


def test_nan_input(tmp_path):
    x = np.zeros((28, 28), np.float32)
    x[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(InputError, match="NaN"):
        load_input(str(tmp_path / "nan.npy"), MNIST_SHAPE, MNIST_LAYOUT)


def test_wrong_image_size(tmp_path):
    Image.new("L", (20, 20)).save(tmp_path / "small.png")
    with pytest.raises(InputError, match="20x20"):
        load_input(str(tmp_path / "small.png"), MNIST_SHAPE, MNIST_LAYOUT)


def test_baselines():
    images, _ = cifar_samples()
    layout = input_layout((1, 32, 32, 3))
    x = images[:1]
    assert not make_baseline("zero", x, layout).any()
    assert np.all(make_baseline("0.5", x, layout) == 0.5)
    mean = make_baseline("mean", x, layout)
    np.testing.assert_allclose(mean[0, 0, 0], x[0].reshape(-1, 3).mean(axis=0), rtol=1e-5)
    blurred = make_baseline("blur:2", x, layout)
    assert blurred.shape == x.shape and blurred.std() < x.std()
    with pytest.raises(InputError, match="unknown baseline"):
        make_baseline("noise", x, layout)
    with pytest.raises(InputError, match="sigma"):
        make_baseline("blur:0", x, layout)


def test_segments(tmp_path):
    images, _ = cifar_samples()
    layout = input_layout((1, 32, 32, 3))
    labels = load_segments("slic:20", images[:1], layout)
    assert labels.shape == (32, 32) and 5 <= len(np.unique(labels)) <= 40
    with pytest.raises(InputError, match="slic:N"):
        load_segments("slic:many", images[:1], layout)
    with pytest.raises(InputError, match=".npy label map"):
        load_segments(str(tmp_path / "none.npy"), images[:1], layout)


def test_atomic_writes(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "one")
    with pytest.raises(OutputError, match="already exists"):
        write_text(target, "two")
    write_text(target, "two", force=True)
    assert target.read_text() == "two"

    def fail(stream):
        stream.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomically(tmp_path / "b.txt", fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    with pytest.raises(OutputError, match="does not exist"):
        write_text(tmp_path / "missing" / "c.txt", "x")
    with pytest.raises(OutputError, match="does not exist"):
        check_folder(tmp_path / "missing" / "deeper", ["report.json"])


# --------------------------------------------------------------------------------------------------
# Hostile arrays, archives, images and text files: one named error each, nothing read beyond the budget

import io  # noqa: E402
import os  # noqa: E402
import zipfile  # noqa: E402

import hostile  # noqa: E402

from smugir import budget  # noqa: E402
from smugir.datasets import read_dataset  # noqa: E402
from smugir.errors import BudgetError  # noqa: E402
from smugir.text import Vocabulary  # noqa: E402


def _npy_header(shape, dtype="<f4") -> bytes:
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return stream.getvalue()


def test_npy_header_declaring_1e10_elements_is_refused_before_reading(tmp_path):
    (tmp_path / "big.npy").write_bytes(_npy_header((100000, 100000)) + bytes(100))
    with pytest.raises(InputError, match=r"declares \[100000, 100000\] float32 \(40000000000 bytes\) but holds only 100"):
        load_input(str(tmp_path / "big.npy"), MNIST_SHAPE, MNIST_LAYOUT)
    with open(tmp_path / "sparse.npy", "wb") as stream:  # the data is there (a sparse file): the budget refuses it
        stream.write(_npy_header((100000, 100000)))
        stream.truncate(40_000_000_200)
    with budget.limited(1 << 30), pytest.raises(BudgetError, match=r"needs 37.3 GiB, over the memory limit of 1.0 GiB"):
        load_input(str(tmp_path / "sparse.npy"), MNIST_SHAPE, MNIST_LAYOUT)


@pytest.mark.parametrize("content, message", [
    (b"", "not a valid .npy array"),
    (b"\x93NUMPY\x01\x00", "not a valid .npy array"),
    (b"garbage" * 10, "not a valid .npy array"),
])
def test_empty_and_garbage_npy(tmp_path, content, message):
    (tmp_path / "x.npy").write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_input(str(tmp_path / "x.npy"), MNIST_SHAPE, MNIST_LAYOUT)


def test_object_arrays_are_never_unpickled(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "obj.npz", images=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="Python objects"):
        load_input(str(tmp_path / "obj.npy"), MNIST_SHAPE, MNIST_LAYOUT)
    with pytest.raises(InputError, match="Python objects"):
        load_input(f"{tmp_path}/obj.npz:images[0]", MNIST_SHAPE, MNIST_LAYOUT)


def _zip_bomb(path, rows=4000):
    """An .npz whose one member inflates ~100x: (rows, 784) float32 zeros."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("images.npy", "w", force_zip64=True) as member:
            member.write(_npy_header((rows, 784)))
            for _ in range(rows):
                member.write(bytes(784 * 4))
    return path


def test_npz_zip_bomb_is_refused_from_its_headers(tmp_path):
    bomb = _zip_bomb(tmp_path / "bomb.npz")
    assert bomb.stat().st_size < 200_000
    with budget.limited(4 << 20), pytest.raises(BudgetError, match=r"the 4000 inputs of .* needs 23.9 MiB"):
        read_dataset(bomb, MNIST_SHAPE, MNIST_LAYOUT)
    with budget.limited(4 << 20):  # one entry is streamed out of the archive: 3 KB, not 12 MB
        x = load_input(f"{bomb}:images[3999]", MNIST_SHAPE, MNIST_LAYOUT)
    assert x.shape == MNIST_SHAPE and not x.any()


@pytest.mark.parametrize("content", [b"PK\x03\x04 not really a zip", b"", None])
def test_corrupt_npz(tmp_path, content):
    path = tmp_path / "bad.npz"
    if content is None:  # a real archive cut in half
        np.savez_compressed(path, images=np.random.default_rng(0).normal(size=(20, 784)))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(InputError, match="cannot read archive"):
        load_input(f"{path}:images[0]", MNIST_SHAPE, MNIST_LAYOUT)
    with pytest.raises(InputError, match="cannot read archive"):
        read_dataset(path, MNIST_SHAPE, MNIST_LAYOUT)


def test_sixteen_bit_png_keeps_its_values(tmp_path):
    values = (np.arange(784).reshape(28, 28) * 83).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    x = load_input(str(tmp_path / "deep.png"), MNIST_SHAPE, MNIST_LAYOUT)
    np.testing.assert_allclose(x.reshape(28, 28), values / 65535, rtol=1e-6)  # not binarised
    rgb = load_input(str(tmp_path / "deep.png"), (1, 3, 28, 28), input_layout((1, 3, 28, 28)))
    np.testing.assert_allclose(rgb[0, 2], values / 65535, rtol=1e-6)


@pytest.mark.parametrize("mode", ["P", "LA", "RGBA", "1"])
def test_eight_bit_modes_are_converted(tmp_path, mode):
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (28, 28, 3), dtype=np.uint8), "RGB").convert(mode)
    image.save(tmp_path / "x.png")
    expected = np.asarray(image.convert("L"), dtype=np.float64) / 255
    np.testing.assert_allclose(load_input(str(tmp_path / "x.png"), MNIST_SHAPE, MNIST_LAYOUT).reshape(28, 28), expected, rtol=1e-6)


def test_decompression_bomb_png_is_refused_before_decoding(tmp_path):
    (tmp_path / "bomb.png").write_bytes(hostile.png(100_000, 100_000, rows=b"\0" * 1000))
    (tmp_path / "wide.png").write_bytes(hostile.png(20_000, 10_000))  # within Pillow's limit, not the model's size
    for name in ("bomb.png", "wide.png"):
        with pytest.raises(InputError, match="decompression bomb|20000x10000") as info:
            load_input(str(tmp_path / name), MNIST_SHAPE, MNIST_LAYOUT)
        assert "\n" not in str(info.value)


def test_truncated_and_fifo_images(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "ok.png").read_bytes()[:400])
    with pytest.raises(InputError, match="cannot read image"):
        load_input(str(tmp_path / "cut.png"), MNIST_SHAPE, MNIST_LAYOUT)
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(InputError, match="is a FIFO"):
        load_input(str(tmp_path / "pipe.png"), MNIST_SHAPE, MNIST_LAYOUT)
    items = read_dataset(tmp_path, MNIST_SHAPE, MNIST_LAYOUT)  # a folder: one error per bad file, no hang
    assert [(i.id, i.error is None) for i in items] == [("cut", False), ("ok", True), ("pipe", False)]


def test_non_utf8_vocabulary_is_one_named_error(tmp_path):
    (tmp_path / "vocab.txt").write_bytes(b"<pad>\n<unk>\ncaf\xe9\n")
    with pytest.raises(InputError, match=r"not UTF-8 text \(byte 0xe9 on line 3\)"):
        Vocabulary.load(tmp_path / "vocab.txt")
