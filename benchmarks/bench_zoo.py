"""Architecture coverage at full size: each export read, explained at the defaults and verified,
with its seconds and peak memory per photo (issue 20 item 4).

    .venv/bin/python benchmarks/bench_zoo.py --exports DIR [--torch-python /path/to/torch/venv/bin/python]
        [--only resnet vgg ...] [--exporters ts13 ts17dyn dynamo] [--photo FILE] [--timeout 900] [--json FILE]

Exporting needs torch, torchvision and timm (tests/data/zoo/make_zoo.py --full): they are taken
from --torch-python (a venv of their own; smugir's constraints pin another onnx stack) or, if
omitted, from this interpreter; exports already in DIR are reused, missing ones are made one
architecture at a time. Each export is then read (`smug inspect`) and explained (`smug explain`
at its defaults: top-k 32, gamma 0.5, pixel units, HiGHS) on an ImageNet photo of
examples/imagenet/, resized to the model's input and normalised with ImageNet's mean and std, in
a fresh process of its own, one at a time (the machine may be shared): the seconds are that
process's wall time (imports included), CPU seconds its user + system time (all threads; the
figure to compare on a loaded machine), the memory its peak resident set (getrusage); `smug
inspect` runs first in a process of its own, so none of it counts in the explanation's figures. The table
is printed as Markdown, for the README's "Supported architectures".
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
MAKE_ZOO = ROOT / "tests" / "data" / "zoo" / "make_zoo.py"
PHOTO = ROOT / "examples" / "imagenet" / "0008_n01514859_hen.jpg"
MEAN, STD = "0.485,0.456,0.406", "0.229,0.224,0.225"
EXPORTERS = ("ts13", "ts17dyn", "dynamo")


def architectures(torch_python: str) -> list[str]:
    """The architecture names of make_zoo.py, CNNs last in its list: returned CNNs first."""
    code = f"import sys; sys.path.insert(0, {str(MAKE_ZOO.parent)!r}); import make_zoo; print(' '.join(a.name for a in make_zoo.ARCHS))"
    names = subprocess.run([torch_python, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return names[::-1]


def export(torch_python: str, folder: Path, arch: str) -> None:
    """Write the three full-size exports of `arch` into `folder` (its manifest.json gains their rows)."""
    done = subprocess.run(["nice", torch_python, str(MAKE_ZOO), "--full", str(folder), "--only", arch], capture_output=True, text=True)
    for line in (done.stdout + done.stderr).splitlines():
        if ".onnx:" in line:
            print(f"  export {line.strip()[:160]}", flush=True)


def photo_input(photo: Path, size: int, folder: Path) -> Path:
    """The photo resized (bilinear) to size x size, as the PNG `smug explain` reads."""
    from PIL import Image

    path = folder / f"photo_{size}.png"
    if not path.exists():
        with Image.open(photo) as image:
            image.convert("RGB").resize((size, size), Image.BILINEAR).save(path)
    return path


def child(command: str, model: str, photo: str, out: str) -> None:
    """`smug inspect` or `smug explain` in this process; its exit code, CPU seconds and peak memory as JSON."""
    from smugir.cli import main

    args = ["inspect", model] if command == "inspect" else ["explain", model, photo, "--mean", MEAN, "--std", STD, "--out", out, "--no-html", "--force"]
    code = main(args)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"code": code, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024}))


def _run_child(command: str, path: Path, photo: Path, out: Path, timeout: float) -> tuple[dict | None, float, str]:
    """(the child's JSON line or None, its wall seconds, its last `smug` error line)."""
    clock = time.perf_counter()
    try:
        done = subprocess.run(["nice", sys.executable, __file__, "--child", command, str(path), str(photo), str(out)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - clock, f"over {timeout:.0f} s"
    wall = time.perf_counter() - clock
    errors = [line for line in done.stderr.splitlines() if line.startswith("smug")]
    try:
        return json.loads(done.stdout.strip().splitlines()[-1]), wall, (errors or [""])[-1][:140]
    except (IndexError, json.JSONDecodeError):
        return None, wall, f"crashed: {done.stderr.strip().splitlines()[-1:]}"


def explain_export(path: Path, photo: Path, timeout: float) -> dict:
    """Read (`smug inspect`), then explain and verify one export, each in a fresh process: the
    seconds, CPU seconds and peak memory are the explanation's, as a user running `smug explain` sees them."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out"
        inspected, wall, error = _run_child("inspect", path, photo, out, timeout)
        if inspected is None or inspected["code"] != 0:
            return {"read": "no", "explained": "no", "status": error or "refused", "seconds": wall}
        row, wall, error = _run_child("explain", path, photo, out, timeout)
        if row is None:
            return {"read": "yes", "explained": "no", "status": error, "seconds": wall}
        result = {"read": "yes", "seconds": wall, "cpu": row["cpu"], "peak_mb": row["peak_mb"]}
        report = out / "report.json"
        if row["code"] != 0 or not report.exists():
            return {**result, "explained": "no", "status": error or "refused"}
        data = json.loads(report.read_text())
        attribution = data["attribution"]
        return {
            **result, "explained": "yes" if data["verified"] else "no",
            "status": f"{data['status']}, {data['kept_units']} of {data['units']['count']} pixels"
                      f"{', verified' if data['verified'] else ', NOT verified'}"
                      f"{'' if data.get('ig_converged', True) else ', IG not converged'}",
            "ig_steps": attribution["steps"], "provider": attribution["provider"],
            "timings": data["timings_seconds"],
        }


def table(rows: list[dict]) -> str:
    lines = ["| architecture | exporter | read | explained | status | seconds | CPU s | IG s | peak MB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ig = r.get("timings", {}).get("ig")
        lines.append(
            f"| {re.sub(r'; small: [^)]*', '', r['family'])} | {r['exporter']} | {r['read']} | {r['explained']} | {r['status']} | {r['seconds']:.0f} | {r.get('cpu', 0):.0f} | "
            f"{'-' if ig is None else f'{ig:.0f}'} | {r.get('peak_mb', 0):.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exports", type=Path, required=True, help="folder of the full-size exports (made here if missing)")
    parser.add_argument("--torch-python", default=sys.executable, help="the interpreter that has torch, torchvision and timm")
    parser.add_argument("--only", nargs="+", help="architecture names (make_zoo.py's), default all, CNNs first")
    parser.add_argument("--exporters", nargs="+", default=list(EXPORTERS), choices=EXPORTERS)
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per explanation before it counts as failed")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    args.exports.mkdir(parents=True, exist_ok=True)
    names = args.only or architectures(args.torch_python)
    rows = []
    for arch in names:
        manifest = args.exports / "manifest.json"
        known = {r["file"]: r for r in json.loads(manifest.read_text())} if manifest.exists() else {}
        if not all(f"{arch}_{e}.onnx" in known for e in args.exporters):
            export(args.torch_python, args.exports, arch)
            known = {r["file"]: r for r in json.loads(manifest.read_text())} if manifest.exists() else {}
        for exporter in args.exporters:
            entry = known.get(f"{arch}_{exporter}.onnx")
            if entry is None:
                rows.append({"family": arch, "exporter": exporter, "read": "-", "explained": "-", "status": "not exported", "seconds": 0.0})
            else:
                size = int(entry["input_shape"][-1])
                row = explain_export(args.exports / entry["file"], photo_input(args.photo, size, args.exports), args.timeout)
                rows.append({"family": entry["family"], "exporter": exporter, **row})
            r = rows[-1]
            print(f"{arch:<18} {exporter:<8} read {r['read']:<3} explained {r['explained']:<3} {r['seconds']:6.0f} s "
                  f"{r.get('peak_mb', 0):6.0f} MB  {r['status']}  {json.dumps(r.get('timings', {}))}", flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print()
    print(table(rows))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    else:
        main()
