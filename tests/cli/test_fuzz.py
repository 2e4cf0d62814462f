"""A fuzz test over the CLI: hypothesis-generated configs, model.json edits and data files.

Whatever the input, ``trimnet`` exits 0 or 2, never prints a traceback, prints one line
when it fails, and leaves no half-written file and no partial run directory. Bounded
examples on tiny data keep it fast; ``derandomize`` makes CI runs repeatable (set
``TRIMNET_FUZZ_EXAMPLES`` to try more, ``TRIMNET_FUZZ_STATS=file.json`` to count outcomes).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trimnet.cli.main import main

SCALE = int(os.environ.get("TRIMNET_FUZZ_EXAMPLES", "1"))


def fuzz(examples: int):
    return settings(max_examples=examples * SCALE, deadline=None, derandomize=SCALE == 1, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


OUTCOMES: Counter = Counter()

# scalars as a user might type them: numbers of every size and sign, NaN, words, empty
scalars = st.one_of(
    st.integers(-5, 70), st.sampled_from([0, -1, 10**6, 10**12, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([".nan", "-.inf", "1e400", "0x10"]),
    st.booleans(), st.none(), st.text(max_size=12),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)
KEYS = ["data.val_split", "data.test_split", "data.seed", "data.label", "data.image_size",
        "train.batch_size", "train.eval_batch_size", "train.optimizer", "train.lr", "train.momentum",
        "train.weight_decay", "train.schedule", "train.step_size", "train.gamma", "train.warmup_epochs",
        "train.label_smoothing", "train.grad_clip", "train.early_stopping", "train.seed", "train.device",
        "train.checkpoint_every", "train.epochs", "model.options", "model.name", "version", "out.x", "train",
        "trian.epochs", "data.source"]


def _run(argv: list, root: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in argv])  # anything but a TrimnetError propagates and fails the test
    text = err.getvalue()
    lines = [line for line in text.splitlines() if line.strip()]
    assert code in (0, 2), (argv, text)
    assert "Traceback" not in text, (argv, text)
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, text)
    half = [p for p in root.rglob(".*") if p.is_file()]
    assert not half, (argv, half)
    OUTCOMES["clean error" if code == 2 else "ok"] += 1
    return code, text


def _check_no_partial_run(code: int, out: Path) -> None:
    if code == 2 and out.exists():  # a failed fresh run leaves nothing, or a checkpoint to resume
        assert (out / "checkpoints" / "last.pt").exists(), sorted(p.name for p in out.rglob("*"))


@fuzz(15)
@given(pairs=st.lists(st.tuples(st.sampled_from(KEYS), values), max_size=4),
       as_file=st.booleans(), small_options=st.dictionaries(st.just("hidden"), st.lists(st.integers(-3, 24),
                                                                                            max_size=2), max_size=1))
def test_fuzz_train_configs(pairs, as_file, small_options):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out = root / "run"
        base = ["train", "--data", "iris", "--model", "mlp", "--out", out, "--train.epochs", "1",
                "--model.options", json.dumps(small_options)]
        safe = [(k, v) for k, v in pairs
                # sizes that would really train for long or allocate gigabytes are checked in test_bad_input
                if not (k in ("train.epochs", "model.options") and not isinstance(v, (str, type(None))))]
        if as_file:
            nested: dict = {}
            for key, value in safe:
                node = nested
                *parents, last = key.split(".")
                for p in parents:
                    node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
                node[last] = value
            cfg = root / "c.yaml"
            cfg.write_text(yaml.safe_dump(nested))
            argv = base + ["-c", cfg]
        else:
            argv = base + [a for k, v in safe for a in (f"--{k}", v if isinstance(v, str) else json.dumps(v))]
        code, _ = _run(argv, root)
        _check_no_partial_run(code, out)


def _paths(meta, prefix=()):
    """Every (path, value) in a JSON tree, to pick one to damage."""
    yield prefix, meta
    if isinstance(meta, dict):
        for k, v in meta.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(meta, list):
        for i, v in enumerate(meta[:6]):
            yield from _paths(v, prefix + (i,))


def _child(node, key):
    """node[key] if an earlier edit left it there, else None."""
    if isinstance(node, dict) and isinstance(key, str):
        return node.get(key)
    if isinstance(node, list) and isinstance(key, int) and key < len(node):
        return node[key]
    return None


json_values = st.recursive(
    st.one_of(st.integers(-3, 10**7), st.sampled_from([10**12, -(10**9), 0, 1]), st.floats(allow_nan=False),
              st.text(max_size=10), st.booleans(), st.none(), st.sampled_from(["/etc/passwd", "../x", "model.json"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=2)),
    max_leaves=4)


@fuzz(25)
@given(data=st.data(), command=st.sampled_from(["eval", "predict", "profile", "export"]))
def test_fuzz_model_json(iris_run, data, command):
    meta = json.loads((iris_run / "model.json").read_text())
    paths = [p for p, _ in _paths(meta) if p]
    edits = data.draw(st.lists(st.tuples(st.sampled_from(paths), json_values), min_size=1, max_size=3))
    for path, value in edits:
        node = meta
        for k in path[:-1]:
            node = _child(node, k)
        if isinstance(node, dict) and isinstance(path[-1], str):
            node[path[-1]] = value
        elif isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node):
            node[path[-1]] = value
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = root / "run"
        shutil.copytree(iris_run, run)
        (run / "model.json").write_text(json.dumps(meta))
        np.save(root / "in.npy", np.zeros((2, 4), np.float32))
        extra = {"eval": [], "predict": ["--input", root / "in.npy"], "profile": [],
                 "export": ["--out", root / "out" / "model.onnx"]}[command]
        before = sorted(p.name for p in run.iterdir())
        code, _ = _run([command, run, *extra], root)
        assert sorted(p.name for p in run.iterdir()) == before  # the input run is never changed
        if code == 2:
            assert not (root / "out" / "model.onnx").exists()


cells = st.one_of(st.integers(-10, 10).map(str), st.floats(allow_nan=True).map(str), st.text(max_size=5),
                  st.just(""), st.sampled_from(["1e999", "nan", "inf", " 3 ", "1,5"]))


@fuzz(20)
@given(kind=st.sampled_from(["csv", "bytes", "npz"]), data=st.data())
def test_fuzz_data_files(iris_run, kind, data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if kind == "csv":
            width = data.draw(st.integers(1, 5))
            header = data.draw(st.lists(st.text(max_size=4), min_size=width, max_size=width))
            rows = data.draw(st.lists(st.lists(cells, min_size=1, max_size=6), max_size=12))
            file = root / "d.csv"
            file.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
        elif kind == "bytes":
            file = root / "d.csv"
            file.write_bytes(data.draw(st.binary(max_size=200)))
        else:
            shape = data.draw(st.lists(st.integers(0, 6), min_size=1, max_size=4))
            dtype = data.draw(st.sampled_from(["float32", "int64", "uint8", "bool", "U3", "complex64"]))
            x = np.zeros(shape, dtype=dtype)
            n = shape[0]
            y = data.draw(st.sampled_from([np.arange(n) % 2, np.zeros((n, 2)), np.array(["a"] * n), np.arange(n + 1)]))
            file = root / "d.npz"
            np.savez(file, x=x, y=y)
        out = root / "run"
        code, _ = _run(["train", "--data", f"{file.suffix[1:]}:{file}", "--model", "mlp", "--out", out,
                        "--train.epochs", "1", "--model.options", "{hidden: [4]}"], root)
        _check_no_partial_run(code, out)
        _run(["predict", iris_run, "--input", file], root)


def teardown_module(module):
    path = os.environ.get("TRIMNET_FUZZ_STATS")
    if path:
        Path(path).write_text(json.dumps(dict(OUTCOMES)))
