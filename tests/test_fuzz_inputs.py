"""Fuzzing the front door: hostile models, arrays, archives, images and options through `smug`.

Every run ends with exit code 0, 2 or 3 (no meaningful explanation), on failure exactly one stderr line and no traceback;
nothing is written where it should not be, and (in a separate process, measured as its VmHWM)
the peak memory stays under the budget. The default run is a short campaign (a few examples per
class of input); `make test-fuzz` (`pytest -m fuzz`) runs the long one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import hostile
import numpy as np
import onnx
import pytest
from conftest import DATA
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from smugir.cli import main

MNIST = DATA / "mnist" / "mnist-net_256x2.onnx"
CAMPAIGNS = ["short", pytest.param("long", marks=pytest.mark.fuzz)]
EXAMPLES = {"short": 8, "long": 300}


def _settings(campaign: str):
    return settings(max_examples=EXAMPLES[campaign], deadline=None, database=None, derandomize=campaign == "short",
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def smug(*args: str) -> tuple[int, str, str]:
    """`smug ARGS` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            code = exc.code
    hidden = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)  # Python's default filters
    shown = "".join(f"{w.category.__name__}: {w.message}\n" for w in caught if not issubclass(w.category, hidden))  # on the terminal too
    return code, out.getvalue(), shown + err.getvalue()


def assert_clean(code: int, err: str, folder: Path | None = None, before: set | None = None) -> None:
    """Exit 0, 2 or 3 (an explanation that says nothing, named on stdout); on 2 exactly one line
    starting with `smug`, on 3 at most one; never a traceback; no new files."""
    assert code in (0, 2, 3), err
    assert "Traceback" not in err
    if code == 2 or (code == 3 and err):
        assert err.count("\n") == 1 and err.startswith("smug ") and err.endswith("\n"), err
        assert "\x1b" not in err and "\r" not in err
    if folder is not None:
        assert set(folder.rglob("*")) == before, "files were written"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty current directory: a run must not write into it."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return tmp_path


# --------------------------------------------------------------------------------------------------
# Hostile models

def _mutate(data: bytes, cuts: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, value in cuts:
        if position % 3 == 0:
            del out[position % max(len(out), 1):]
        elif out:
            out[position % len(out)] = value
    return bytes(out)


@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_garbage_and_truncated_models(campaign, workdir):
    valid = hostile.dense(workdir).read_bytes()
    before = set(workdir.rglob("*"))

    @_settings(campaign)
    @given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6) | st.binary(max_size=300))
    @example([(38, 29)])  # found by the long campaign: an unknown tensor data type the checker accepts
    @example([(3652, 128)])  # a name that is not UTF-8: the checker's message did not decode
    @example([(524, 0)])  # a scalar data input into Gemm: the reader indexed its missing axes
    @example([(7102, 29)])  # an unknown data type on the graph's input (onnx's dtype table raised KeyError)
    def run(change):
        path = workdir / "fuzzed.onnx"
        path.write_bytes(_mutate(valid, change) if isinstance(change, list) else change)
        code, _, err = smug("inspect", path)
        path.unlink()
        assert_clean(code, err, workdir, before)

    run()


LOCATIONS = st.sampled_from([
    "c.bin", "./c.bin", "sub/c.bin", ".ssh/id_rsa", "../c.bin", "sub/../../c.bin", "/etc/passwd", "/proc/self/environ",
    "\\\\server\\share\\c.bin", "C:\\c.bin", "c.bin\x00.txt", "", ".", "sub", "link.bin", "hard.bin", "fifo.bin", "~/c.bin",
]) | st.text(alphabet="./\\abc:~\x00 \n", max_size=12)


@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_external_data_never_read_outside_the_folder(campaign, workdir):
    """The data file sits in the current directory and outside the folder with a class-flipping
    value; inside the folder, only under the plain name `c.bin`. A model may load only when its
    location names a regular, singly linked file inside its folder."""
    flip = np.array([100, 0, 0], np.float32).tobytes()
    folder = workdir / "model"
    (folder / "sub").mkdir(parents=True)
    for outside in (workdir / "cwd" / ".ssh", workdir / "cwd" / "sub", workdir / "sub"):
        outside.mkdir(parents=True, exist_ok=True)
    for place in ("cwd/c.bin", "cwd/.ssh/id_rsa", "c.bin", "sub/c.bin", "cwd/sub/c.bin"):
        (workdir / place).write_bytes(flip)
    (folder / "c.bin").write_bytes(bytes(12))
    (folder / "link.bin").symlink_to(workdir / "c.bin")
    os.link(workdir / "c.bin", folder / "hard.bin")
    os.mkfifo(folder / "fifo.bin")

    @_settings(campaign)
    @given(st.sampled_from(hostile.EXTERNAL_KINDS), LOCATIONS)
    def run(kind, location):
        path = hostile.external_via(kind, folder, location)
        before = set(workdir.rglob("*"))
        code, out, err = smug("inspect", path)
        assert_clean(code, err, workdir, before)
        if code == 0:
            assert (folder / location).resolve() == (folder / "c.bin").resolve(), location
        from smugir.model import load_model

        if code == 0 and kind != "sparse-indices":  # and the data that was used is the folder's
            np.testing.assert_allclose(load_model(path).run(np.ones((1, 4), np.float32))[0], [[4, 4, 4]])

    run()


@pytest.mark.parametrize("kind", hostile.ODD_OUTPUTS)
def test_odd_outputs_are_one_line(kind, workdir):
    path = hostile.odd_output(workdir, kind)
    np.save(workdir / "x.npy", np.ones(4, np.float32))
    before = set(workdir.rglob("*"))
    for command in (["inspect", path], ["explain", path, workdir / "x.npy", "--out", workdir / "out"]):
        code, _, err = smug(*command)
        assert_clean(code, err, workdir, before)
    assert code == 2


# --------------------------------------------------------------------------------------------------
# Hostile arrays and archives (explained with the real MNIST network, 7x7 windows: fast solves)

DTYPES = st.sampled_from(["<f4", "<f8", "|u1", "<i8", "|b1", "<c8", "<U3", "|V8", ">f4", "<f2"])
SHAPES = st.lists(st.sampled_from([0, 1, 2, 28, 784, 10**5, 10**10]), max_size=3)


def _npy_bytes(shape, dtype, data_bytes) -> bytes:
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return stream.getvalue() + bytes(data_bytes)


@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_hostile_npy_and_npz(campaign, workdir):
    @_settings(campaign)
    @given(SHAPES, DTYPES, st.integers(0, 4000), st.booleans(), st.integers(0, 2000), st.integers(0, 255))
    @example([0, 10**10, 10**10], "<f4", 0, False, 0, 1)  # found by the long campaign: 0 bytes, but no numpy shape
    def run(shape, dtype, data_bytes, archive, cut, flip):
        blob = _npy_bytes(shape, dtype, data_bytes)
        if archive:
            with zipfile.ZipFile(workdir / "x.npz", "w", zipfile.ZIP_DEFLATED) as zipped:
                zipped.writestr("images.npy", blob)
            raw = bytearray((workdir / "x.npz").read_bytes())
            if cut and cut < len(raw):
                raw[cut] = flip  # corrupt one byte somewhere: header, data, CRC or directory
            (workdir / "x.npz").write_bytes(bytes(raw))
            spec = f"{workdir / 'x.npz'}:images[0]"
        else:
            (workdir / "x.npy").write_bytes(blob[: max(cut, 1)] if flip == 0 else blob)
            spec = workdir / "x.npy"
        before = set(workdir.rglob("*"))
        code, _, err = smug("explain", MNIST, spec, "--window", "7", "--max-memory", "256M")
        assert_clean(code, err, workdir, before)

    run()


def test_pickles_in_archives_and_datasets_are_refused(workdir):
    np.savez(workdir / "pickled.npz", images=np.array([[1, 2]], dtype=object), labels=np.array([1]))
    np.save(workdir / "pickled.npy", np.array([[1, 2]], dtype=object), allow_pickle=True)
    before = set(workdir.rglob("*"))
    for args in (["batch", MNIST, workdir / "pickled.npz", "--out", workdir / "o"], ["explain", MNIST, f"{workdir}/pickled.npz:images[0]"],
                 ["explain", MNIST, workdir / "pickled.npy"], ["explain", MNIST, workdir / "pickled.npy", "--segments", workdir / "pickled.npy"]):
        code, _, err = smug(*args)
        assert code == 2 and "Python objects" in err, err
        assert_clean(code, err, workdir, before)


# --------------------------------------------------------------------------------------------------
# Hostile images

@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_hostile_pngs(campaign, workdir):

    @_settings(campaign)
    @given(st.sampled_from([0, 1, 28, 29, 10_000, 100_000, 2**31 - 1]), st.sampled_from([28, 1, 70_000]),
           st.sampled_from([1, 2, 4, 8, 16]), st.sampled_from([0, 2, 3, 4, 6]), st.binary(max_size=64), st.booleans())
    def run(width, height, depth, color, rows, truncate):
        blob = hostile.png(width, height, depth, color, rows=rows or None) if width * height < 10**6 or rows else \
            hostile.png(width, height, depth, color, rows=b"\0" * 100)
        (workdir / "x.png").write_bytes(blob[: len(blob) // 2] if truncate else blob)
        before = set(workdir.rglob("*"))
        code, _, err = smug("explain", MNIST, workdir / "x.png", "--window", "7", "--max-memory", "256M")
        assert_clean(code, err, workdir, before)

    run()


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n%%EndComments\nnewpath 0 0 moveto 28 28 lineto stroke\nshowpage\n%%EOF\n"


@pytest.mark.parametrize("name", ["x.png", "x.jpg", "x.tif"])
def test_an_eps_named_like_an_image_never_runs_ghostscript(name, tmp_path):
    """Pillow hands EPS to `gs` from PATH: only the formats smugir reads are tried (a fresh process,
    so no earlier test decided where gs is)."""
    (tmp_path / "bin").mkdir()
    gs = tmp_path / "bin" / "gs"
    gs.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'ran'}\nexit 1\n")
    gs.chmod(0o755)
    (tmp_path / name).write_bytes(EPS)
    code = "import sys; from smugir.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", code, "explain", str(MNIST), str(tmp_path / name), "--window", "7"], cwd=tmp_path / "bin",
                            capture_output=True, text=True, timeout=120, env={**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"})
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "not a PNG, JPEG" in result.stderr, result.stderr
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("mode", ["1", "L", "P", "LA", "RGB", "RGBA", "I;16", "I", "F", "CMYK"])
def test_image_modes(mode, workdir):
    pixels = np.asarray(np.load(DATA / "mnist" / "mnist_test_samples.npz")["images"][2] * 255, np.uint8)  # a real digit
    image = Image.fromarray(pixels).convert(mode) if mode != "I;16" else Image.fromarray(pixels.astype(np.uint16) * 257)
    suffix = ".tif" if mode in ("I", "F", "CMYK") else ".png"
    image.save(workdir / f"x{suffix}")
    code, out, err = smug("explain", MNIST, workdir / f"x{suffix}", "--window", "7")
    assert_clean(code, err)
    assert code == (2 if mode in ("I", "F") else 0), err


# --------------------------------------------------------------------------------------------------
# Hostile options

FLOATS = st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e308", "1e-300", "0.5", "2", "x"])
OPTIONS = st.one_of(
    st.tuples(st.sampled_from(["--timeout", "--gamma", "--margin", "--scale"]), FLOATS),
    st.tuples(st.sampled_from(["--solutions", "--ig-steps", "--top-k", "--window", "--label"]),
              st.sampled_from(["-1", "0", "1", "1000000", "10000000", "1e8", "99999999999999999999"])),
    st.tuples(st.just("--baseline"), st.sampled_from(["blur:1e9", "blur:nan", "blur:-1", "blur:0", "blur:28", "blur:29", "mean", "nan", "inf", "x", "1e300", "3e38", "blur:1e300"])),
    st.tuples(st.just("--max-memory"), st.sampled_from(["0", "1", "1k", "64M", "8G", "-5", "5Q", "1e3"])),
    st.tuples(st.just("--segments"), st.sampled_from(["slic:0", "slic:-3", "slic:x", "nothing.npy", "slic:1000000000", "slic:4"])),
    st.tuples(st.just("--image-shape"), st.sampled_from(["28x28", "1x784", "0x0", "100000x100000", "=-28x-28", "axb"])),
)


@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_hostile_options(campaign, workdir):
    image = workdir / "x.png"
    Image.fromarray(np.asarray(np.load(DATA / "mnist" / "mnist_test_samples.npz")["images"][0] * 255, np.uint8)).save(image)
    before = set(workdir.rglob("*"))

    @_settings(campaign)
    @given(st.lists(OPTIONS, min_size=1, max_size=2))
    @example([("--window", "99999999999999999999")])  # found by the long campaign: OverflowError in numpy
    @example([("--scale", "nan")])  # RuntimeWarnings on the terminal before the one error line
    def run(options):
        args = [a for option in options for a in option]
        if "--window" not in args and "--segments" not in args:
            args += ["--window", "7"]
        if "--max-memory" not in args:
            args += ["--max-memory", "1G"]
        code, _, err = smug("explain", MNIST, image, *args, *([] if "--timeout" in args else ["--timeout", "5"]))
        assert code in (0, 1, 2, 3), err  # 1: a mask that did not verify, 3: no meaningful explanation (odd but valid options)
        if code != 1:
            assert_clean(code, err, workdir, before)

    run()


@pytest.mark.parametrize("args, message", [
    (["--timeout", "nan"], "--timeout: expected seconds in (0, 1e+07], 0 or none, got 'nan'"),
    (["--timeout", "-1"], "--timeout: expected seconds in (0, 1e+07], 0 or none, got '-1'"),
    (["--timeout", "1e308"], "--timeout: expected seconds in (0, 1e+07], 0 or none, got '1e308'"),
    (["--solutions", "1000000"], "--solutions must be in 1..1000"),
    (["--ig-steps", "100000000", "--max-memory", "1G"], "--ig-steps must be in 1..4096"),
    (["--ig-steps", "1000000"], "--ig-steps must be in 1..4096"),
    (["--baseline", "blur:1e9"], "blur baseline's kernel (sigma 1e+09) needs"),
    (["--baseline", "blur:100"], "wider than the image (28x28)"),
])
def test_options_refused_up_front(args, message, workdir):
    code, out, err = smug("explain", MNIST, DATA.parent.parent / "examples" / "data" / "mnist_test_2.png", *args)
    assert code == 2 and out == "" and message in err, err
    assert_clean(code, err)


@pytest.mark.parametrize("size", ["8G", "1T", "500M", "1.5GiB"])
def test_large_memory_limits_are_accepted(size):
    code, out, err = smug("inspect", MNIST, "--max-memory", size)
    assert code == 0 and err == "", err


def test_batch_input_timeout_refused_up_front(workdir):
    code, _, err = smug("batch", MNIST, DATA / "mnist" / "mnist_test_samples.npz", "--out", workdir / "o", "--input-timeout", "-1")
    assert code == 2 and "--input-timeout must be a finite number" in err and not (workdir / "o").exists()


# --------------------------------------------------------------------------------------------------
# Memory: the bombs of issue 15 in a separate process, its peak resident memory measured

_MEMORY_RUNNER = textwrap.dedent("""
    import contextlib, io, json, sys
    from smugir.cli import main
    for args in json.loads(sys.argv[1]):
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exc:
                code = exc.code
        # VmHWM is this process's own high-water mark; getrusage's ru_maxrss would also count the
        # parent's peak at the time it spawned us (Linux keeps it across vfork + exec)
        status = open("/proc/self/status").read()
        peak = int(status.split("VmHWM:")[1].split()[0]) * 1024
        print(json.dumps({"args": args, "code": code, "err": err.getvalue(), "peak": peak}), flush=True)
""")


def measure(cases: list[list[str]], cwd: Path) -> list[dict]:
    """Run the cases one after the other in a fresh Python process; the peak memory after each."""
    result = subprocess.run([sys.executable, "-c", _MEMORY_RUNNER, json.dumps([[str(a) for a in c] for c in cases])],
                            capture_output=True, text=True, cwd=cwd, timeout=600)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def bombs(folder: Path) -> list[list[str]]:
    """The memory bombs of issue 15, each small on disk."""
    conv = hostile.conv_model(folder / "conv.onnx", 100_000)
    mid = hostile.conv_model(folder / "mid.onnx", 8000)
    with open(folder / "c.bin", "wb") as stream:
        stream.truncate(8 << 30)  # a sparse file: no disk used
    sparse = hostile.external_via("initializer", folder, "c.bin", length=8 << 30)
    proto = onnx.load(sparse, load_external_data=False)
    proto.graph.initializer[1].dims[:] = [2 << 30]
    onnx.save(proto, sparse)
    with zipfile.ZipFile(folder / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("images.npy", "w", force_zip64=True) as member:
            member.write(_npy_header_for((100_000, 784)))  # 314 MB of zeros in 300 KB
            zeros = bytes(784 * 4 * 1000)
            for _ in range(100):
                member.write(zeros)
    with open(folder / "big.npy", "wb") as stream:
        stream.write(_npy_header_for((100_000, 100_000)))
        stream.truncate(40_000_000_200)
    (folder / "bomb.png").write_bytes(hostile.png(100_000, 100_000, rows=b"\0" * 1000))
    image = str(DATA.parent.parent / "examples" / "data" / "mnist_test_2.png")
    return [  # (arguments, exit code): an entry of the zip bomb is streamed out of it, within the budget
        (["inspect", conv], 2),
        (["inspect", mid, "--max-memory", "1G"], 2),
        (["inspect", sparse], 2),
        (["explain", MNIST, f"{folder / 'bomb.npz'}:images[0]", "--window", "7"], 3),  # a black image: nothing moved
        (["explain", MNIST, f"{folder / 'bomb.npz'}:images[99999]", "--window", "7"], 3),
        (["batch", MNIST, folder / "bomb.npz", "--out", folder / "out", "--workers", "1", "--max-memory", "256M"], 2),
        (["explain", MNIST, folder / "big.npy"], 2),
        (["explain", MNIST, folder / "bomb.png"], 2),
        (["explain", MNIST, image, "--ig-steps", "10000000"], 2),
        (["explain", MNIST, image, "--baseline", "blur:1e9"], 2),
    ]


def _npy_header_for(shape) -> bytes:
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, {"descr": "<f4", "fortran_order": False, "shape": tuple(shape)})
    return stream.getvalue()


def test_memory_bombs_stay_under_the_budget(tmp_path):
    """Every bomb refused by name with exit 2 (or streamed), the whole process never above 1 GiB."""
    cases = bombs(tmp_path)
    runs = measure([[*args, "--max-memory", "1G"] if "--max-memory" not in args else args for args, _ in cases], tmp_path)
    assert len(runs) == len(cases)
    for run, (_, code) in zip(runs, cases):
        assert run["code"] == code and run["err"].count("\n") == (1 if code == 2 else 0), run
        assert run["peak"] < 1 << 30, run
    assert not (tmp_path / "out").exists()
    print("peak memory after each bomb (MiB):", [round(r["peak"] / 2**20) for r in runs])


def test_memory_bombs_under_the_default_budget(tmp_path):
    """Without --max-memory (half of the available memory) the declared-size bombs are refused too."""
    cases = [args for args, code in bombs(tmp_path) if code == 2 and "--max-memory" not in args]
    runs = measure(cases, tmp_path)
    for run in runs:
        assert run["code"] == 2 and run["err"].count("\n") == 1, run
        assert run["peak"] < 1 << 30, run
    print("peak memory after each bomb, default budget (MiB):", [round(r["peak"] / 2**20) for r in runs])


def test_non_utf8_file_names_are_escaped(workdir):
    """A model file name that is not UTF-8 (bytes 0xff, an ANSI escape): export writes the file
    (the SMT-LIB source names it with the odd bytes replaced), and errors stay one escaped line."""
    model = workdir / os.fsdecode(b"m\xff\x1b[31m.onnx")
    model.write_bytes(MNIST.read_bytes())
    image = DATA.parent.parent / "examples" / "data" / "mnist_test_2.png"
    code, out, err = smug("export", model, image, "--window", "7", "--bound", "opt", "--out", workdir / "x.smt2")
    assert code == 0, err
    source = (workdir / "x.smt2").read_text(encoding="utf-8")
    assert "\x1b" not in source and "m__[31m.onnx" in source
    code, _, err = smug("explain", model, workdir / os.fsdecode(b"missing\xfe.png"))
    assert_clean(code, err)
    assert code == 2 and "\\udcfe" in err
