"""Fuzzing what commands write and how batches share a folder.

Every run must end with exit 0, 2 or 3, at most one stderr line and no traceback, and a failed run
must leave the file system exactly as it was (no partial files, no staging folders). Odd `--out`
targets: a missing parent, an existing file, a folder or a FIFO where a file goes, a read-only
folder, a full disk (a real tmpfs when we are root, else a write that raises ENOSPC). Batches:
reruns with changed settings, two runs on one folder, killed coordinators and workers (the long
ones behind the `slow` marker).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smugir.batch import BatchOptions, run_batch
from smugir.cli import main
from smugir.errors import OutputError

MNIST = str(DATA / "mnist" / "mnist-net_256x2.onnx")
SAMPLES = str(DATA / "mnist" / "mnist_test_samples.npz")
DIGIT = str(DATA.parent.parent / "examples" / "data" / "mnist_test_2.png")
TEXT = DATA.parent.parent / "examples" / "text"
FAST = ["--ig-steps", "16", "--top-k", "4", "--window", "7"]
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
SMUG = [sys.executable, "-m", "smugir"]


def _tree(folder: Path) -> dict[str, int]:
    """Every path under `folder` (hidden ones too) with its size: what a failed run must not change."""
    return {str(p.relative_to(folder)): (p.lstat().st_size if not p.is_dir() else -1) for p in folder.rglob("*")}


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def _commands(out: str) -> dict[str, list[str]]:
    """Each writing command with `out` as its --out (a folder for some, a file for others)."""
    return {
        "explain": ["explain", MNIST, DIGIT, *FAST, "--out", out],
        "explain-text": ["explain", str(TEXT / "polarity_cnn.onnx"), "a fine movie", "--vocab", str(TEXT / "vocab.txt"),
                         "--top-k", "4", "--ig-steps", "16", "--out", out],
        "export": ["export", MNIST, DIGIT, *FAST, "--bound", "opt", "--out", f"{out}.smt2"],
        "export-mps": ["export", MNIST, DIGIT, *FAST, "--format", "mps", "--out", f"{out}.mps"],
        "export-benchmarks": ["export-benchmarks", MNIST, SAMPLES, *FAST, "--limit", "1", "--out", out],
        "batch": ["batch", MNIST, SAMPLES, *FAST, "--limit", "1", "--workers", "1", "--out", out],
        "eval": ["eval", MNIST, SAMPLES, "--limit", "1", "--methods", "ig", "--path-steps", "4", "--out", out],
    }


def _target(out: Path, command: str) -> Path:
    return out.with_name(out.name + (".smt2" if command == "export" else ".mps" if command == "export-mps" else ""))


def _odd(kind: str, out: Path, command: str) -> None:
    """Put something odd where `command` writes."""
    target = _target(out, command)
    inner = {"explain": "report.json", "explain-text": "report.json", "export-benchmarks": "instances.csv", "eval": "records.jsonl"}.get(
        command, "results.jsonl")
    if kind == "existing file":
        target.write_text("mine\n")
    elif kind == "folder in the way":
        if command.startswith("export") and command != "export-benchmarks":
            target.mkdir()
        else:
            (target / inner).mkdir(parents=True)
    elif kind == "fifo in the way":
        if command.startswith("export") and command != "export-benchmarks":
            os.mkfifo(target)
        else:
            target.mkdir()
            os.mkfifo(target / inner)


KINDS = ["missing parent", "existing file", "folder in the way", "fifo in the way"]


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command=st.sampled_from(sorted(_commands("x"))), kind=st.sampled_from(KINDS), force=st.booleans())
def test_odd_out_targets_are_one_line_and_leave_nothing(command, kind, force):
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        out = root / ("missing" if kind == "missing parent" else "") / "out"
        _odd(kind, out, command)
        before = _tree(root)
        argv = _commands(str(out))[command] + (["--force"] if force and command not in ("batch", "eval") else [])
        code, err = _run(argv)
        if kind == "existing file" and force and command in ("export", "export-mps"):
            assert code == 0, err  # --force replaces a file by a file
            return
        assert code == 2, (argv, err)
        assert err.count("\n") == 1 and "Traceback" not in err and err.startswith(f"smug {argv[0]}: error: ")
        assert _tree(root) == before


@pytest.fixture(scope="module")
def full_disk():
    """A folder on a file system with no space left: a filled tmpfs (root), else None."""
    if not ROOT:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="smug-full-"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True).returncode:
        shutil.rmtree(folder)
        yield None
        return
    try:
        with open(folder / "filler", "wb", buffering=0) as filler, contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 512)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def read_only():
    """A read-only folder: a read-only bind mount (root ignores chmod), else chmod 555."""
    source = Path(tempfile.mkdtemp(prefix="smug-ro-"))
    if ROOT:
        target = Path(tempfile.mkdtemp(prefix="smug-ro-view-"))
        mounted = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True).returncode == 0
        if mounted and subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], capture_output=True).returncode == 0:
            yield target
            subprocess.run(["umount", str(target)], check=False)
            shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(source, ignore_errors=True)
            return
        if mounted:
            subprocess.run(["umount", str(target)], check=False)
        shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(source, ignore_errors=True)
        pytest.skip("cannot make a read-only bind mount here")
    source.chmod(0o555)
    yield source
    source.chmod(0o755)
    shutil.rmtree(source, ignore_errors=True)


@pytest.mark.parametrize("command", sorted(_commands("x")))
def test_a_full_disk_is_one_line_and_leaves_nothing(command, full_disk, monkeypatch):
    if full_disk is None:  # not root: every write fails as it would on a full disk
        import smugir.exporters.files as files

        def no_space(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(files.tempfile, "mkstemp", no_space)
        folder = Path(tempfile.mkdtemp())
    else:
        folder = full_disk
    before = _tree(folder)
    code, err = _run(_commands(str(folder / "out"))[command])
    assert code == 2 and err.count("\n") == 1 and ("no space left" in err or "could not write" in err), err
    assert _tree(folder) == before


@pytest.mark.parametrize("command", sorted(_commands("x")))
def test_a_read_only_folder_is_one_line_and_leaves_nothing(command, read_only):
    before = _tree(read_only)
    code, err = _run(_commands(str(read_only / "out"))[command])
    assert code == 2 and err.count("\n") == 1 and ("read-only" in err or "permission denied" in err), err
    assert _tree(read_only) == before


def test_files_get_the_mode_of_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        assert _run(_commands(str(tmp_path / "out"))["explain"])[0] == 0
        assert _run(_commands(str(tmp_path / "out"))["export"])[0] == 0
    finally:
        os.umask(previous)
    assert {oct(p.stat().st_mode & 0o777) for p in (tmp_path / "out").iterdir()} == {"0o640"}
    assert oct((tmp_path / "out").stat().st_mode & 0o777) == "0o750"
    assert oct((tmp_path / "out.smt2").stat().st_mode & 0o777) == "0o640"


def test_a_sentence_that_is_not_utf8_is_written_whole(tmp_path):
    sentence = os.fsdecode(b"a \xff\xfe movie")  # what argv holds for undecodable bytes
    out = tmp_path / "out"
    code, err = _run(["explain", str(TEXT / "polarity_cnn.onnx"), sentence, "--vocab", str(TEXT / "vocab.txt"),
                      "--top-k", "4", "--ig-steps", "16", "--out", str(out)])
    assert code in (0, 1, 3) and err == ""
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["settings"]["sentence"] == "a \ufffd\ufffd movie"
    assert "\ufffd" in (out / "explanation.html").read_text(encoding="utf-8")


# ---- batches on one folder ----------------------------------------------------------------------

_BASE = BatchOptions(top_k=4, window=7, ig_steps=16)


@pytest.fixture(scope="module")
def finished_batch(tmp_path_factory) -> Path:
    from test_batch import _items

    out = tmp_path_factory.mktemp("batch") / "run"
    run_batch(MNIST, _items()[:2], out, _BASE, workers=1)
    return out


CHANGES = st.sampled_from([
    {"gamma": 0.9}, {"top_k": 8}, {"window": 4}, {"baseline": "mean"}, {"method": "network"}, {"rank": "activation"},
    {"solver": "z3"}, {"timeout": 5.0}, {"ig_steps": 32}, {"segments": "slic:10"}, {"margin": 0.5},
])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(change=CHANGES, also=st.one_of(st.none(), CHANGES))
def test_a_rerun_with_changed_settings_is_refused_naming_them(finished_batch, change, also):
    from dataclasses import replace

    from test_batch import _items

    changes = {**change, **(also or {})}
    before = _tree(finished_batch)
    with pytest.raises(OutputError) as refused:
        run_batch(MNIST, _items()[:2], finished_batch, replace(_BASE, **changes), workers=1)
    message = str(refused.value)
    assert all(f"{key} " in message for key in changes) and "--restart" in message and "\n" not in message
    assert _tree(finished_batch) == before
    assert run_batch(MNIST, _items()[:2], finished_batch, _BASE, workers=1).processed == 0  # the same settings resume


def _batch_process(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*SMUG, "batch", MNIST, SAMPLES, "--ig-steps", "128", "--top-k", "16", "--out", str(out), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _lines(out: Path) -> list[dict]:
    path = out / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_two_batches_on_one_folder_never_duplicate_a_result(tmp_path):
    out = tmp_path / "run"
    runs = [_batch_process(out, "--workers", "1", "--limit", "4") for _ in range(2)]
    codes = [run.wait(timeout=300) for run in runs]
    errors = [run.stderr.read() for run in runs]
    assert sorted(codes) in ([0, 0], [0, 2]), errors
    for code, err in zip(codes, errors):
        assert "Traceback" not in err
        if code == 2:
            assert err.count("\n") == 1 and "another smug batch" in err
    ids = [r["id"] for r in _lines(out)]
    assert sorted(ids) == ["00", "01", "02", "03"]


def _descendants(pid: int) -> list[int]:
    import psutil

    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def _alive(pids: list[int]) -> list[int]:
    import psutil

    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def _wait_for_lines(out: Path, count: int, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while len(_lines(out)) < count:
        assert process.poll() is None and time.monotonic() < deadline, "the batch ended or stalled"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_killed_coordinator_takes_its_workers_with_it_and_the_rerun_resumes(tmp_path):
    out = tmp_path / "run"
    run = _batch_process(out, "--workers", "2")
    _wait_for_lines(out, 2, run)
    helpers = _descendants(run.pid)
    assert len(helpers) >= 2  # the workers and the resource tracker
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 15
    while _alive(helpers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive(helpers) == []
    rerun = _batch_process(out, "--workers", "2")  # the dead run's lock is taken over
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read()
    ids = [r["id"] for r in _lines(out)]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 15


@pytest.mark.slow
def test_a_killed_worker_costs_one_input(tmp_path):
    import psutil

    out = tmp_path / "run"
    run = _batch_process(out, "--workers", "2")
    _wait_for_lines(out, 1, run)
    workers = [p for p in psutil.Process(run.pid).children() if "spawn_main" in " ".join(p.cmdline())]
    workers[0].kill()
    code = run.wait(timeout=300)
    statuses = {r["id"]: r["status"] for r in _lines(out)}
    # The inputs in flight were retried one at a time: a kill that does not repeat costs nothing.
    assert len(statuses) == 15 == len(_lines(out)) and list(statuses.values()).count("error") <= 1
    assert code == (1 if "error" in statuses.values() else 0)


@pytest.mark.skipif(not ROOT, reason="needs a small tmpfs (root)")
def test_a_disk_that_fills_up_during_a_batch_keeps_only_complete_results(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        out = small / "run"
        code, err = _run(["batch", MNIST, SAMPLES, *FAST, "--workers", "1", "--out", str(out)])
        assert code == 2 and err.count("\n") == 1 and "no space left on the device" in err
        records = _lines(out)
        assert records, "the disk was expected to hold at least one result"
        files = sorted(p.name for p in (out / "masks").iterdir())
        assert files == sorted(f"{r['id']}_{kind}.npy" for r in records for kind in ("mask", "saliency"))
    finally:
        subprocess.run(["umount", str(small)], check=False)


@pytest.mark.skipif(not ROOT, reason="needs a small tmpfs (root)")
@pytest.mark.parametrize("size", ["16k", "40k", "80k"])
def test_a_disk_that_fills_up_during_an_eval_says_no_space_left(tmp_path, size):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        code, err = _run(["eval", MNIST, SAMPLES, "--limit", "3", "--methods", "ig", "--path-steps", "4", "--out", str(small / "run")])
        assert code == 2 and err.count("\n") == 1 and "no space left on the device" in err and "requested" not in err, err
    finally:
        subprocess.run(["umount", str(small)], check=False)


def _publish_many(out: str, run: str, files: int, rounds: int) -> None:
    """Publish `rounds` folders of `files` files that all carry `run`."""
    from smugir.exporters.files import staged_folder

    names = [f"f{i:03d}.txt" for i in range(200)]
    for _ in range(rounds):
        with staged_folder(out, names, force=True) as staging:
            for name in names[:files]:
                (staging / name).write_text(run)


def _one_run(out: Path) -> None:
    contents = {p.name: p.read_text() for p in out.iterdir()}
    assert contents.pop("mine.txt") == "the user's own file"
    assert len(set(contents.values())) == 1 and len(contents) == {"A": 200, "B": 100}[next(iter(contents.values()))], contents


def test_two_publishers_onto_one_folder_never_leave_a_mix(tmp_path):
    import multiprocessing

    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("the user's own file")
    context = multiprocessing.get_context("fork")
    for _ in range(3):
        workers = [context.Process(target=_publish_many, args=(str(out), run, files, 10)) for run, files in (("A", 200), ("B", 100))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert all(worker.exitcode == 0 for worker in workers)
        _one_run(out)
    _publish_many(str(out), "B", 100, 1)  # fewer files than the folder holds: none of A's is left
    _one_run(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or old folder left


def test_two_explain_force_runs_onto_one_out_leave_one_runs_files(tmp_path):
    from PIL import Image

    other = tmp_path / "seven.png"
    data = np.load(SAMPLES)
    Image.fromarray((data["images"][0] * 255).round().astype(np.uint8)).save(other)
    inputs = {"two": DIGIT, "other": str(other)}
    reference, images = {}, {}
    for name, image in inputs.items():
        assert _run(["explain", MNIST, image, *FAST, "--out", str(tmp_path / name)])[0] == 0
        label = json.loads((tmp_path / name / "report.json").read_text())["label"]
        reference[label] = {f: (tmp_path / name / f).read_bytes() for f in ("mask.npy", "saliency.npy", "overlay.png")}
        images[label] = image
    assert len(reference) == 2
    out = tmp_path / "out"
    for _ in range(3):
        runs = [subprocess.Popen([*SMUG, "explain", MNIST, image, *FAST, "--force", "--out", str(out)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE) for image in inputs.values()]
        assert all(run.wait(timeout=300) == 0 for run in runs), [run.stderr.read() for run in runs]
        label = json.loads((out / "report.json").read_text())["label"]
        assert {f: (out / f).read_bytes() for f in reference[label]} == reference[label]
        assert images[label] in (out / "report.html").read_text()  # the page names the command that made it
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*inputs, "out", "seven.png"])


# --------------------------------------------------------------------------------------------------
# SIGTERM (issue 21, item 12): one line, exit 143, nothing half-written, no process left

def _catches_sigterm(pid: int, seconds: float = 120) -> None:
    """Wait until the process has its SIGTERM handler (SigCgt in /proc): `smug` is past its imports."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            if int(status.split("SigCgt:")[1].split()[0], 16) & (1 << (signal.SIGTERM - 1)):
                return
        time.sleep(0.05)
    raise AssertionError("smug never installed its SIGTERM handler")


def _terminated(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=60)
    return code, process.stderr.read()


def _assert_terminated(code: int, err: str, command: str) -> None:
    assert code == 143 and err.endswith(f"smug {command}: terminated (SIGTERM)\n") and "Traceback" not in err, (code, err)


def _no_staging(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if p.name.endswith((".part", ".tmp"))], sorted(folder.rglob("*"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
@pytest.mark.parametrize("delay", [0.0, 1.0, 3.0])
def test_sigterm_during_explain_leaves_all_or_nothing(delay, tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen([*SMUG, "explain", MNIST, DIGIT, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _catches_sigterm(process.pid)
    time.sleep(delay)
    code, err = _terminated(process)
    _no_staging(tmp_path)
    if delay > 0 and (out / "report.json").exists():  # finished first; the signal found it done (0) or exiting (-15)
        assert code in (0, -signal.SIGTERM), (code, err)
    else:
        _assert_terminated(code, err, "explain")
        assert not out.exists()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
@pytest.mark.parametrize("command", ["batch", "eval"])
def test_sigterm_during_a_run_with_workers_keeps_complete_records_and_no_process(command, tmp_path):
    out = tmp_path / "run"
    if command == "batch":
        process = _batch_process(out, "--workers", "2")
        records = out / "results.jsonl"
    else:
        process = subprocess.Popen([*SMUG, "eval", MNIST, SAMPLES, "--limit", "6", "--window", "7", "--methods", "ig,smug", "--workers", "2",
                                    "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        records = out / "records.jsonl"
    _catches_sigterm(process.pid)
    deadline = time.monotonic() + 180
    while not (records.exists() and records.read_text().count("\n")):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.1)
    helpers = _descendants(process.pid)
    clock = time.monotonic()
    code, err = _terminated(process)
    assert time.monotonic() - clock < 30
    _assert_terminated(code, err, command)
    for line in records.read_text().splitlines():
        json.loads(line)
    _no_staging(out)
    deadline = time.monotonic() + 15
    while _alive(helpers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive(helpers) == []
