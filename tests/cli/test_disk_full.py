"""A full or read-only disk: every command exits 2 with one line, and leaves no partial run
directory and no half-written file. Real file systems, not mocks: each case mounts a tiny
tmpfs in a private mount namespace (needs root and unshare; skipped elsewhere)."""

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent("""
    import contextlib, io, json, os, sys
    from trimnet.cli.main import main
    cases, root, report = json.loads(sys.argv[1]), sys.argv[2], {}
    for name, argv in cases.items():
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except BaseException as exc:  # a traceback: reported, not hidden
                code, _ = 1, err.write(f"Traceback {type(exc).__name__}: {exc}")
        files = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
        dirs = sorted(os.path.relpath(os.path.join(d, s), root) for d, ss, _ in os.walk(root) for s in ss)
        report[name] = {"code": code, "err": err.getvalue(), "files": files, "dirs": dirs}
        for d in dirs:  # the next case starts on an empty disk
            os.system(f"rm -rf {os.path.join(root, d)!r}")
        for f in files:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(root, f))
    print(json.dumps(report))
""")


def _in_namespace(tmp_path, size: str, read_only: bool, cases: dict) -> dict:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    ro = f" && mount -o remount,ro {mnt}" if read_only else ""
    shell = f"mount -t tmpfs -o size={size} tmpfs {mnt}{ro} && exec {sys.executable} -c \"$0\" \"$1\" {mnt}"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs tmpfs {mnt}"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    cases = {k: [str(a).replace("MNT", str(mnt)) for a in v] for k, v in cases.items()}
    proc = subprocess.run(["unshare", "-m", "sh", "-c", shell, SCRIPT, json.dumps(cases)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cases(run, inputs):
    return {
        "train": ["train", "--data", "digits", "--model", "mlp", "--train.epochs", "1", "--out", "MNT/r",
                  "--model.options", "{hidden: [256]}"],
        "export": ["export", run, "--out", "MNT/deploy/model.onnx"],
        "predict": ["predict", run, "--input", inputs, "--out", "MNT/predictions.csv"],
        "prune": ["prune", run, "--out", "MNT/pruned", "--finetune.epochs", "0"],
        "fuse": ["fuse", run, "--out", "MNT/fused", "--no-eval"],
        "run": ["run", "--data", "iris", "--model", "mlp", "--out", "MNT/run"],
        "bench": ["bench", run, "--backends", "torch", "--bench.min_time_s", "0.01", "--bench.max_time_s", "0.05",
                  "--out", "MNT/bench.json"],
    }


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    """A run whose files (about 1 MiB of weights) do not fit the 64 KiB disk."""
    from trimnet.cli.main import main

    out = tmp_path_factory.mktemp("big") / "iris-wide"
    assert main(["train", "--data", "iris", "--model", "mlp", "--train.epochs", "1", "--out", str(out),
                 "--model.options", "{hidden: [512, 512]}"]) == 0
    return out


@pytest.fixture
def inputs(tmp_path):
    path = tmp_path / "many.npy"
    np.save(path, np.random.default_rng(0).normal(size=(2000, 4)).astype(np.float32))  # predictions > 64 KiB
    return path


def _check_full(report: dict) -> None:
    for name, r in report.items():
        lines = [line for line in r["err"].splitlines() if line.strip() and not line.startswith("epoch ")]
        assert r["code"] == 2 and len(lines) == 1 and "Traceback" not in r["err"], (name, r)
        assert "the disk is full" in lines[0], (name, lines)
        assert r["files"] == [] and r["dirs"] in ([], ["deploy"]), (name, r)  # no partial run dir or file


@pytest.mark.slow  # one of the slowest outside the slow set; CI runs it
def test_full_disk_train_and_predict(big_run, inputs, tmp_path):
    cases = _cases(big_run, inputs)
    _check_full(_in_namespace(tmp_path, "64k", False, {k: cases[k] for k in ("train", "predict")}))


@pytest.mark.slow
def test_full_disk_export_prune_fuse(big_run, inputs, tmp_path):
    cases = _cases(big_run, inputs)
    _check_full(_in_namespace(tmp_path, "64k", False, {k: cases[k] for k in ("export", "prune", "fuse")}))


def test_read_only_disk(big_run, inputs, tmp_path):
    report = _in_namespace(tmp_path, "1m", True, _cases(big_run, inputs))
    for name, r in report.items():
        lines = [line for line in r["err"].splitlines() if line.strip()]
        assert r["code"] == 2 and len(lines) == 1 and "Traceback" not in r["err"], (name, r)
        assert "read-only" in lines[0] and "--out" in lines[0], (name, lines)
        assert r["files"] == [] and r["dirs"] == [], (name, r)
