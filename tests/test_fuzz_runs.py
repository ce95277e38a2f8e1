"""Hostile results folders (issue 21): no result of another run is shown as this run's.

A folder made from one dataset and rerun with another (same ids, other content) recomputes those
inputs; file names that clean to one id are refused naming both files; a file name too long for
the file system costs nothing (its id is shortened); a huge results file is read as a stream; a
damaged or hand-edited records file, settings file or run file is one line (exit 2) or the record
computed again, never a traceback; odd --out targets of eval are one line and leave nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA

from smugir.cli import main

MNIST = str(DATA / "mnist" / "mnist-net_256x2.onnx")
SAMPLES = DATA / "mnist" / "mnist_test_samples.npz"
EVAL = ["--methods", "ig", "--path-steps", "4"]
BATCH = ["--ig-steps", "16", "--top-k", "4", "--window", "7", "--workers", "1"]


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    return code, " ".join(out.getvalue().split()), err.getvalue()  # rich wraps at the terminal width


def _one_line(code: int, err: str, command: str) -> None:
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err and err.startswith(f"smug {command}: error: "), err


def _archive(path: Path, first: int, count: int = 2) -> Path:
    data = np.load(SAMPLES)
    np.savez(path, images=data["images"][first:first + count], labels=data["labels"][first:first + count])
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _digits(folder: Path, names: list[str], first: int = 0) -> Path:
    from PIL import Image

    folder.mkdir(exist_ok=True)
    images = np.load(SAMPLES)["images"]
    for number, name in enumerate(names):
        Image.fromarray((images[first + number] * 255).round().astype(np.uint8)).save(folder / name)
    return folder


# ---- identity: model, content, settings --------------------------------------------------------


def test_eval_into_a_folder_of_another_dataset_recomputes_its_inputs(tmp_path):
    a, b, out = _archive(tmp_path / "a.npz", 0), _archive(tmp_path / "b.npz", 5), tmp_path / "out"
    assert _run(["eval", MNIST, a, *EVAL, "--out", out])[0] == 0
    first = {line["id"]: line for line in _lines(out / "records.jsonl")}
    code, printed, _ = _run(["eval", MNIST, b, *EVAL, "--out", out])
    assert code == 0 and "2 inputs recorded in" in printed and "with other content" in printed, printed
    last = {line["id"]: line for line in _lines(out / "records.jsonl")}
    assert set(first) == set(last) and all(first[i]["input_sha256"] != last[i]["input_sha256"] for i in first)
    assert all(first[i]["lsc"] != last[i]["lsc"] for i in first)
    code, printed, _ = _run(["eval", MNIST, b, *EVAL, "--out", out])  # the same content again: reused
    assert code == 0 and "2 method runs recorded by an earlier run" in printed and "other content" not in printed


def test_eval_recomputes_an_edited_image_only(tmp_path):
    folder, out = _digits(tmp_path / "images", ["0001.png", "0002.png"]), tmp_path / "out"
    assert _run(["eval", MNIST, folder, *EVAL, "--out", out])[0] == 0
    _digits(folder, ["0002.png"], first=7)  # other pixels, same name
    code, printed, _ = _run(["eval", MNIST, folder, *EVAL, "--out", out])
    assert code == 0 and "1 inputs recorded in" in printed and "1 method runs recorded by an earlier run" in printed, printed


def test_batch_rerun_after_the_archive_changed_recomputes(tmp_path):
    data, out = tmp_path / "data.npz", tmp_path / "out"
    _archive(data, 0)
    assert _run(["batch", MNIST, data, *BATCH, "--out", out])[0] == 0
    before = {line["id"]: line["input_sha256"] for line in _lines(out / "results.jsonl")}
    _archive(data, 5)
    code, printed, _ = _run(["batch", MNIST, data, *BATCH, "--out", out])
    assert code == 0 and "of them 2 recorded with other content" in printed, printed
    after = {line["id"]: line["input_sha256"] for line in _lines(out / "results.jsonl")[2:]}
    assert set(after) == set(before) and all(after[i] != before[i] for i in before)


# ---- ids ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("names", [["a b.png", "a_b.png"], ["c.png", "c.jpg"], ["猫.png", "犬.png"]])
@pytest.mark.parametrize("command", ["eval", "batch"])
def test_file_names_that_clean_to_one_id_are_refused_naming_both(tmp_path, names, command):
    folder = _digits(tmp_path / "images", names)
    code, _, err = _run([command, MNIST, folder, *(EVAL if command == "eval" else BATCH), "--out", tmp_path / "out"])
    _one_line(code, err, command)
    assert all(repr(name) in err for name in names) and "rename one" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["eval", "batch"])
def test_a_file_name_too_long_for_an_id_costs_nothing(tmp_path, command):
    long_name = "x" * 245 + ".png"  # 249 bytes
    folder, out = _digits(tmp_path / "images", [long_name, "short.png"]), tmp_path / "out"
    argv = [command, MNIST, folder, *(EVAL if command == "eval" else BATCH), "--out", out]
    code, printed, err = _run(argv)
    assert code == 0, err
    results = out / ("records.jsonl" if command == "eval" else "results.jsonl")
    lines = _lines(results)
    assert len(lines) == 2 and all(line["status"] != "error" for line in lines) and max(len(line["id"]) for line in lines) < 120
    assert _run(argv)[0] == 0 and len(_lines(results)) == 2  # the rerun reuses both


# ---- streams and damaged files ------------------------------------------------------------------


def test_a_huge_results_file_is_read_as_a_stream(tmp_path):
    path = tmp_path / "results.jsonl"
    line = json.dumps({"id": "other", "status": "optimal", "padding": "p" * 2000}) + "\n"
    with open(path, "w") as stream:
        for _ in range(60_000):  # 120 MB of lines of an id the dataset does not have
            stream.write(line)
    probe = ("import resource, sys\nfrom smugir.exporters.results import ResultsFile\n"
             "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
             "results = ResultsFile(sys.argv[1], lambda r: r if r['id'] == 'mine' else None)\n"
             "print(len(results.records), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    kept, grown = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=True).stdout.split()
    assert kept == "0" and int(grown) < 30_000, grown  # KiB: a line at a time, not 120 MB


def test_a_line_over_the_limit_is_one_error(tmp_path, monkeypatch):
    import smugir.exporters.results as results
    from smugir.errors import OutputError

    monkeypatch.setattr(results, "MAX_LINE", 1000)
    (tmp_path / "results.jsonl").write_text(json.dumps({"id": "0", "pad": "p" * 2000}) + "\n")
    with pytest.raises(OutputError, match="line 1 is longer than"):
        results.ResultsFile(tmp_path / "results.jsonl")


DAMAGE = {
    "invalid utf-8": b'{"id": "00/ig", "sample": "00", "status": "done\xff"}\n',
    "deep nesting": b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "not json": b"{nope\n",
    "no id": b'{"status": "done"}\n',
}
TYPES = {  # lines smugir reads but did not write: computed again
    "unknown status": {"status": "finished"},
    "status a number": {"status": 7},
    "lsc a string": {"lsc": "low"},
    "box a number": {"box": 3},
    "settings a list": {"settings": [1]},
    "missing keys": None,
}


@pytest.fixture(scope="module")
def finished_eval(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "out"
    assert _run(["eval", MNIST, SAMPLES, "--limit", "2", *EVAL, "--out", out])[0] == 0
    return out


def _copy(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_records_file_is_one_line(finished_eval, tmp_path, damage):
    out = _copy(finished_eval, tmp_path / "out")
    with open(out / "records.jsonl", "ab") as stream:
        stream.write(DAMAGE[damage])
    code, _, err = _run(["eval", MNIST, SAMPLES, "--limit", "2", *EVAL, "--out", out])
    _one_line(code, err, "eval")


@pytest.mark.parametrize("kind", sorted(TYPES))
def test_a_hand_edited_record_is_computed_again(finished_eval, tmp_path, kind):
    out = _copy(finished_eval, tmp_path / "out")
    lines = _lines(out / "records.jsonl")
    edited = {"id": lines[0]["id"], "sample": lines[0]["sample"]} if TYPES[kind] is None else {**lines[0], **TYPES[kind]}
    with open(out / "records.jsonl", "a") as stream:
        stream.write(json.dumps(edited) + "\n")
    code, printed, err = _run(["eval", MNIST, SAMPLES, "--limit", "2", *EVAL, "--out", out])
    assert code == 0 and "1 method runs recorded by an earlier run" in printed and "1 inputs recorded in" in printed, (printed, err)
    assert _lines(out / "records.jsonl")[-1]["status"] == "done"


RUN_FILES = {
    "invalid utf-8": b'{"a": "\xff"}',
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "a list": b"[1, 2]",
    "wrong types": b'{"abc": [1], "options": 3}',
    "not json": b"{",
}


@pytest.mark.parametrize("damage", sorted(RUN_FILES))
def test_a_damaged_run_file_is_one_line(finished_eval, tmp_path, damage):
    out = _copy(finished_eval, tmp_path / "out")
    (out / "run.json").write_bytes(RUN_FILES[damage])
    code, _, err = _run(["eval", MNIST, SAMPLES, "--limit", "2", *EVAL, "--out", out])
    _one_line(code, err, "eval")
    assert (out / "run.json").read_bytes() == RUN_FILES[damage]


@pytest.fixture(scope="module")
def finished_batch(tmp_path_factory):
    out = tmp_path_factory.mktemp("batch") / "out"
    assert _run(["batch", MNIST, SAMPLES, "--limit", "2", *BATCH, "--out", out])[0] == 0
    return out


@pytest.mark.parametrize("damage", sorted(RUN_FILES))
def test_a_damaged_settings_file_is_one_line(finished_batch, tmp_path, damage):
    out = _copy(finished_batch, tmp_path / "out")
    (out / "settings.json").write_bytes(RUN_FILES[damage])
    code, _, err = _run(["batch", MNIST, SAMPLES, "--limit", "2", *BATCH, "--out", out])
    if damage == "wrong types":
        assert code == 2 and "other settings" in err, err
    _one_line(code, err, "batch")


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_results_file_is_one_line(finished_batch, tmp_path, damage):
    out = _copy(finished_batch, tmp_path / "out")
    with open(out / "results.jsonl", "ab") as stream:
        stream.write(DAMAGE[damage])
    _one_line(*_run(["batch", MNIST, SAMPLES, "--limit", "2", *BATCH, "--out", out])[::2], "batch")


@pytest.mark.parametrize("kind", ["unknown status", "status a number", "missing keys", "timings a list"])
def test_a_hand_edited_result_is_computed_again(finished_batch, tmp_path, kind):
    out = _copy(finished_batch, tmp_path / "out")
    line = _lines(out / "results.jsonl")[0]
    edited = {"unknown status": {**line, "status": "finished"}, "status a number": {**line, "status": 7},
              "missing keys": {"id": line["id"]}, "timings a list": {**line, "timings": [1]}}[kind]
    with open(out / "results.jsonl", "a") as stream:
        stream.write(json.dumps(edited) + "\n")
    code, printed, err = _run(["batch", MNIST, SAMPLES, "--limit", "2", *BATCH, "--out", out])
    assert code == 0 and "of them 1 recorded with other content" in printed, (printed, err)
    assert _lines(out / "results.jsonl")[-1]["status"] == "optimal"


# ---- where eval writes --------------------------------------------------------------------------


def _tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): (p.lstat().st_size if not p.is_dir() else -1) for p in folder.rglob("*")}


@pytest.mark.parametrize("kind", ["dangling symlink", "symlink loop", "maps a file", "records a folder", "run.json a fifo"])
def test_odd_eval_folders_are_one_line_and_leave_nothing(tmp_path, kind):
    out = tmp_path / "out"
    if kind == "dangling symlink":
        out.symlink_to(tmp_path / "nowhere")
    elif kind == "symlink loop":
        out.symlink_to(out)
    else:
        out.mkdir()
        name = {"maps a file": "maps", "records a folder": "records.jsonl", "run.json a fifo": "run.json"}[kind]
        (out / name).mkdir() if kind == "records a folder" else os.mkfifo(out / name) if "fifo" in kind else (out / name).write_text("x")
    before = _tree(tmp_path)
    code, _, err = _run(["eval", MNIST, SAMPLES, "--limit", "1", *EVAL, "--out", out])
    _one_line(code, err, "eval")
    assert _tree(tmp_path) == before


def test_a_failing_eval_leaves_nothing_and_a_refused_rerun_changes_nothing(tmp_path, monkeypatch, finished_eval):
    from smugir.errors import OutputError
    from smugir.exporters.results import ResultsFile

    def full(self, record):
        raise OutputError("cannot write: no space left on the device")

    with monkeypatch.context() as patch:
        patch.setattr(ResultsFile, "append", full)
        code, _, err = _run(["eval", MNIST, SAMPLES, "--limit", "1", *EVAL, "--out", tmp_path / "new"])
        _one_line(code, err, "eval")
        assert not (tmp_path / "new").exists()
        (tmp_path / "mine").mkdir()
        code, _, err = _run(["eval", MNIST, SAMPLES, "--limit", "1", *EVAL, "--out", tmp_path / "mine"])
        _one_line(code, err, "eval")
        assert _tree(tmp_path / "mine") == {}
    out = _copy(finished_eval, tmp_path / "out")
    before = {name: (out / name).read_bytes() for name in ("run.json", "records.jsonl")}
    code, _, err = _run(["eval", MNIST, SAMPLES, "--limit", "2", *EVAL, "--seed", "3", "--out", out])
    _one_line(code, err, "eval")
    assert "other settings" in err and before == {name: (out / name).read_bytes() for name in before}


@pytest.mark.parametrize("argv", [["sanity", MNIST, SAMPLES, "--seed", "-1"], ["eval", MNIST, SAMPLES, *EVAL, "--out", ""],
                                  ["explain", MNIST, str(DATA.parent.parent / "examples" / "data" / "mnist_test_2.png"), "--out", ""]])
def test_odd_option_values_are_one_line(argv):
    code, _, err = _run(argv)
    _one_line(code, err, argv[0])


def test_a_sentence_longer_than_the_model_reads_is_refused_not_cut():
    text = Path(__file__).parent.parent / "examples" / "text"
    code, _, err = _run(["explain", text / "polarity_cnn.onnx", " ".join(["fine"] * 20_000), "--vocab", text / "vocab.txt"])
    _one_line(code, err, "explain")
    assert "20000 words but the model reads at most" in err


def test_an_lsc_that_is_not_a_number_is_shown_as_such():
    from smugir.evaluation.comparison import Record, summarize
    from smugir.evaluation.report import summary_rows

    def record(sample: str, lsc: float) -> Record:
        return Record("m", sample, 0, "ig", lsc, 0.1, 0.0, None, 0.1, 1.0)

    rows = summarize([record("0", float("inf")), record("1", float("inf")), record("2", float("nan"))])
    cells = summary_rows(rows)[1][0]
    assert "nan" not in " ".join(cells) and ("inf" in cells[2] or "n/a" in cells[2]), cells


# ---- the campaign: random damage to a records file ----------------------------------------------
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CAMPAIGNS = ["short", pytest.param("long", marks=pytest.mark.fuzz)]
EXAMPLES = {"short": 6, "long": 200}
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
FIELDS = ["id", "sample", "method", "status", "settings", "input_sha256", "lsc", "area", "probability", "box", "sparsity",
          "seconds", "curve", "label", "model"]


def _damaged_line(draw_bytes: bytes, edits: dict, base: dict, kind: str) -> bytes:
    if kind == "bytes":
        return draw_bytes.replace(b"\n", b" ") + b"\n"
    return (json.dumps({**base, **edits}) + "\n").encode()


@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_random_damage_to_the_records_is_recomputed_or_one_line(finished_eval, tmp_path_factory, campaign):
    @settings(max_examples=EXAMPLES[campaign], deadline=None, database=None, derandomize=campaign == "short",
              phases=[Phase.explicit, Phase.generate], suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(kind=st.sampled_from(["bytes", "fields"]), raw=st.binary(max_size=64),
           edits=st.dictionaries(st.sampled_from(FIELDS), JSON, min_size=1, max_size=4), which=st.integers(0, 1))
    def check(kind, raw, edits, which):
        out = _copy(finished_eval, tmp_path_factory.mktemp("damaged") / "out")
        base = _lines(out / "records.jsonl")[which]
        with open(out / "records.jsonl", "ab") as stream:
            stream.write(_damaged_line(raw, edits, base, kind))
        code, _, err = _run(["eval", MNIST, SAMPLES, "--limit", "2", *EVAL, "--out", out])
        if code == 2:
            _one_line(code, err, "eval")
            return
        assert code == 0 and not err, err
        last = {line["id"]: line for line in _lines(out / "records.jsonl") if isinstance(line, dict) and "id" in line}
        assert all(last[f"{sample}/ig"]["status"] == "done" for sample in ("00", "01")), last

    check()


BATCH_FIELDS = ["id", "status", "input_sha256", "timings", "sparsity", "verified", "objective", "bound", "label", "seconds"]


@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_random_damage_to_the_results_is_recomputed_or_one_line(finished_batch, tmp_path_factory, campaign):
    @settings(max_examples=EXAMPLES[campaign], deadline=None, database=None, derandomize=campaign == "short",
              phases=[Phase.explicit, Phase.generate], suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(kind=st.sampled_from(["bytes", "fields"]), raw=st.binary(max_size=64),
           edits=st.dictionaries(st.sampled_from(BATCH_FIELDS), JSON, min_size=1, max_size=4), which=st.integers(0, 1))
    def check(kind, raw, edits, which):
        out = _copy(finished_batch, tmp_path_factory.mktemp("damaged") / "out")
        base = _lines(out / "results.jsonl")[which]
        with open(out / "results.jsonl", "ab") as stream:
            stream.write(_damaged_line(raw, edits, base, kind))
        code, _, err = _run(["batch", MNIST, SAMPLES, "--limit", "2", *BATCH, "--out", out])
        if code == 2:
            _one_line(code, err, "batch")
            return
        last = {line["id"]: line for line in _lines(out / "results.jsonl") if isinstance(line, dict) and "id" in line}
        assert code == (0 if all(last[i]["verified"] for i in ("00", "01")) else 1) and not err, err  # an edit may say "verified": false
        assert all(last[i]["status"] == "optimal" and "input_sha256" in last[i] for i in ("00", "01")), last

    check()
