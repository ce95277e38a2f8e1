"""Fuzzing what smugir starts and talks to: child interpreters, z3's library, Dask schedulers, signals.

A current directory full of code (pickle.py, numpy.py, ... and a fake libz3.so whose constructor
writes a marker) must never run, in any command or any child process; a child that writes a lot of
stderr must not block; an address that is not a Dask scheduler is one line, in bounded time;
SIGTERM is one line, exit 143, nothing half-written. Every run is a `smug` process.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import hostile
import pytest
from conftest import DATA
from hypothesis import given, settings
from hypothesis import strategies as st

from smugir.cli import main
from smugir.errors import InputError
from smugir.executor import connect, parse_scheduler

MNIST = str(DATA / "mnist" / "mnist-net_256x2.onnx")
SAMPLES = str(DATA / "mnist" / "mnist_test_samples.npz")
DIGIT = str(DATA.parent.parent / "examples" / "data" / "mnist_test_2.png")
FAST = ["--ig-steps", "16", "--top-k", "4", "--window", "7"]
SMUG = Path(sys.executable).with_name("smug")  # the console script: the way users start it


def smug(*args: str, cwd: Path, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    if not SMUG.exists():
        pytest.skip(f"no smug console script next to {sys.executable}")
    return subprocess.run([str(SMUG), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


# --------------------------------------------------------------------------------------------------
# A hostile current directory (issue 21, items 1 and 2)

HOSTILE_RUNS = {
    "inspect": ["inspect", MNIST],
    "explain-cpsat": ["explain", MNIST, DIGIT, *FAST, "--solver", "cpsat"],  # the CP-SAT child (python -m)
    "explain-z3": ["explain", MNIST, DIGIT, *FAST, "--solver", "z3"],  # loads libz3
    "export": ["export", MNIST, DIGIT, *FAST, "--bound", "opt", "--out", "x.smt2"],
    "batch-workers": ["batch", MNIST, SAMPLES, *FAST, "--limit", "2", "--workers", "2", "--out", "b"],  # spawn workers, resource tracker
    "eval-workers": ["eval", MNIST, SAMPLES, "--limit", "2", "--window", "7", "--methods", "ig,smug", "--workers", "2", "--out", "e"],
}


@pytest.fixture(scope="module", params=["short", pytest.param("long", marks=pytest.mark.fuzz)])
def hostile_cwd(request, tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """The short campaign plants the modules of HOSTILE_MODULES, the long one a module for every
    name in the standard library and in every installed distribution."""
    folder = tmp_path_factory.mktemp("hostile-cwd")
    marker = folder.parent / f"{folder.name}-marker"
    modules = hostile.HOSTILE_MODULES if request.param == "short" else hostile.every_module_name()
    return folder, marker, hostile.hostile_folder(folder, marker, modules)


@pytest.mark.parametrize("run", sorted(HOSTILE_RUNS))
def test_nothing_in_the_current_directory_runs(run, hostile_cwd):
    folder, marker, planted = hostile_cwd
    result = smug(*HOSTILE_RUNS[run], cwd=folder)
    assert result.returncode == 0, result.stderr
    assert not marker.exists(), f"ran from the current directory: {marker.read_text().split()} (planted {planted})"
    if "libz3.so" not in planted:
        pytest.skip("no gcc: the fake libz3.so was not built (the Python modules were checked)")


def test_inspect_imports_no_solver_library(tmp_path):
    code = ("import sys; from smugir.cli import main; main(['inspect', sys.argv[1]]); "
            "print(sorted(m for m in ('z3', 'pysmt', 'ortools', 'highspy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code, MNIST], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_z3_loads_its_own_library(tmp_path):
    """The libz3 mapped into the process is the one in z3's package (PATH and `.` are not searched first)."""
    code = ("import os, smugir, z3; print(os.path.dirname(z3.__file__)); "
            "print(*{line.split()[-1] for line in open('/proc/self/maps') if 'libz3' in line})")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PATH": f".:{os.environ.get('PATH', '')}"})
    package, library = result.stdout.split()
    assert Path(library).is_relative_to(package), result.stdout


# --------------------------------------------------------------------------------------------------
# Child pipes are drained (item 10)

def test_a_verbose_cpsat_child_does_not_block(tmp_path):
    """PYTHONVERBOSE=1 makes the CP-SAT child write ~1 MB of stderr while it starts: with no time limit
    the solve still returns."""
    result = smug("explain", MNIST, DIGIT, *FAST, "--solver", "cpsat", "--timeout", "none", "--json",
                  cwd=tmp_path, env={**os.environ, "PYTHONVERBOSE": "1"}, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"status": "optimal"' in result.stdout


# --------------------------------------------------------------------------------------------------
# --scheduler: parsed up front, and a server that is not a Dask scheduler is one line in bounded time (item 9)

def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in argv])
    return code, err.getvalue()


@pytest.mark.parametrize("address", ["tcp://", ":abc", "http://127.0.0.1:8786", "ucx://127.0.0.1:8786", "inproc://x", "garbage",
                                     "", "tcp://127.0.0.1:0", "tcp://127.0.0.1:99999", "tcp://user@127.0.0.1:8786", "tcp://h:1/path",
                                     "tcp://tcp://h:1", "\x1b[31m:1"])
@pytest.mark.parametrize("command", ["batch", "eval"])
def test_malformed_scheduler_addresses_are_one_line_before_any_work(command, address, tmp_path):
    out = tmp_path / "out"
    code, err = _run([command, MNIST, SAMPLES, "--limit", "1", "--out", out, "--scheduler", address])
    assert code == 2 and err.count("\n") == 1 and "--scheduler" in err and "\x1b" not in err, err
    assert not out.exists()


@pytest.mark.parametrize("text", ["tcp://127.0.0.1:8786", "127.0.0.1:8786", "TCP://host.example:1", "tcp://[::1]:65535"])
def test_well_formed_scheduler_addresses_are_kept(text):
    address = parse_scheduler(text)
    assert address.startswith("tcp://") and parse_scheduler(address) == address


@pytest.mark.parametrize("campaign", ["short", pytest.param("long", marks=pytest.mark.fuzz)])
def test_any_scheduler_text_is_an_address_or_one_refusal(campaign):
    @settings(max_examples=50 if campaign == "short" else 3000, deadline=None, database=None, derandomize=campaign == "short")
    @given(st.one_of(st.text(max_size=40), st.builds(lambda s, h, p: f"{s}{h}:{p}", st.sampled_from(["", "tcp://", "ucx://", "tls://"]),
                                                    st.text(max_size=12), st.text(max_size=6))))
    def run(text):
        try:
            address = parse_scheduler(text)
        except InputError as exc:
            assert "\n" not in str(exc)
            return
        assert address.startswith("tcp://") and parse_scheduler(address) == address

    run()


class _Server:
    """A local TCP server that accepts connections and then stays silent or sends `reply`."""

    def __init__(self, reply: bytes | None) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self.socket.getsockname()[1]}"
        self.reply, self.connections = reply, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections.append(connection)
            if self.reply is not None:
                connection.sendall(self.reply)

    def close(self) -> None:
        self.socket.close()
        for connection in self.connections:
            connection.close()


SERVERS = {"silent": None, "garbage": b"\xff" * 64 + b"HTTP/1.1 200 OK\r\n\r\n" * 10, "http": b"HTTP/1.1 400 Bad Request\r\n\r\n",
           "huge-frame": (2**62).to_bytes(8, "little") * 4, "zeros": bytes(4096)}


@pytest.mark.parametrize("command", ["batch", "eval"])
@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_a_server_that_is_not_a_scheduler_is_one_line_in_bounded_time(kind, command, tmp_path, monkeypatch):
    pytest.importorskip("dask.distributed")
    monkeypatch.setattr("smugir.executor.CONNECT_SECONDS", 2.0)
    server = _Server(SERVERS[kind])
    try:
        clock = time.monotonic()
        methods = ["--methods", "ig"] if command == "eval" else []
        code, err = _run([command, MNIST, SAMPLES, "--limit", "1", "--window", "7", *methods, "--out", tmp_path / "out",
                          "--scheduler", server.address, "--max-memory", "2G"])
        seconds = time.monotonic() - clock
    finally:
        server.close()
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "out of memory" not in err and server.address in err, err
    assert seconds < 30, seconds


@pytest.mark.parametrize("campaign", ["short", pytest.param("long", marks=pytest.mark.fuzz)])
def test_any_answer_from_a_server_is_a_client_or_one_line(campaign):
    """Random bytes in answer (random frame lengths: huge allocations, truncated frames): one
    InputError line within the bound, never a hang, a traceback or a MemoryError."""
    pytest.importorskip("dask.distributed")

    @settings(max_examples=4 if campaign == "short" else 200, deadline=None, database=None, derandomize=campaign == "short")
    @given(st.one_of(st.binary(max_size=200), st.builds(lambda n, tail: n.to_bytes(8, "little") + tail,
                                                        st.integers(0, 2**64 - 1), st.binary(max_size=64))))
    def run(reply):
        server = _Server(reply)
        clock = time.monotonic()
        try:
            with pytest.raises(InputError) as caught:
                connect(server.address, 1.0)
        finally:
            server.close()
        assert "\n" not in str(caught.value) and time.monotonic() - clock < 10

    run()
