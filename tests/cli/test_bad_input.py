"""Bad input, everywhere: exit 2 with one line that names the fix, no traceback, nothing
half-written. Each case is one a user (or an attacker) actually tried."""

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest


# ----------------------------------------------------------------------------- flags and configs


@pytest.mark.parametrize("argv, needle", [
    (["--train.lr", ".nan"], "train.lr must be a finite number"),
    (["--train.lr", "-1"], "train.lr must be > 0"),
    (["--train.device", "tpu"], "train.device 'tpu' is unknown"),
    (["--data.image_size", "100000"], "data.image_size must be between 1 and 4096"),
    (["--train.epochs", "[1, 2]"], "train.epochs must be an integer"),
    (["--train.epoch", "3"], "did you mean train.epochs?"),
    (["--epochs", "3"], "did you mean --train.epochs?"),
    (["--outt", "x"], "did you mean --out?"),
    (["--train.epochs"], "--train.epochs needs a value"),
    (["--train.lr", "1e300", "--train.schedule", "onecycle"], "train.lr is 1e+300, past any usable value"),
    (["--train.momentum", "1e300"], "train.momentum is 1e+300"),
    (["--data.seed", "99999999999999999999"], "data.seed must be in [0, 2^32)"),
    (["--train.seed", "-1"], "train.seed must be in [0, 2^63)"),
])
def test_train_flags_fail_before_any_work(cli, clean_error, argv, needle, tmp_path):
    code, _, err = cli("train", "--data", "iris", "--out", tmp_path / "r", *argv)
    clean_error(code, err, needle)
    assert not (tmp_path / "r").exists()


def test_model_options_that_cannot_build(cli, clean_error, tmp_path):
    code, _, err = cli("train", "--data", "iris", "--model", "mlp", "--out", tmp_path / "r",
                       "--model.options", "{hidden: [-3]}")
    clean_error(code, err, "check --model.options")
    code, _, err = cli("train", "--data", "iris", "--model", "mlp", "--out", tmp_path / "r",
                       "--model.options", "{hidden: [1000000, 1000000]}")
    clean_error(code, err, "parameters (at most")
    assert not (tmp_path / "r").exists()  # the fresh run dir is gone again


def test_out_naming_a_file_fails_before_the_data_loads(cli, clean_error, tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    # a dataset that would take long to read fails only after --out is checked
    code, _, err = cli("train", "--data", "npz:/nonexistent.npz", "--out", f)
    clean_error(code, err, "is a file")
    code, _, err = cli("train", "--data", "npz:/nonexistent.npz", "--out", f / "sub")
    clean_error(code, err, "lies under", "which is a file")
    code, _, err = cli("run", "--data", "npz:/nonexistent.npz", "--out", f / "sub")
    clean_error(code, err, "which is a file")


def test_resume_of_a_missing_run_names_resume_not_c(cli, clean_error):
    code, _, err = cli("train", "--resume", "/nonexistent")
    line = clean_error(code, err, "--resume /nonexistent")
    assert "-c" not in line


def test_yaml_errors_are_one_line(cli, clean_error, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: [1\n")
    code, _, err = cli("train", "-c", bad)
    clean_error(code, err, "bad.yaml is not valid YAML", "line 3")
    bad.write_text("- just\n- a list\n")
    code, _, err = cli("train", "-c", bad)
    clean_error(code, err, "must hold a mapping")
    bad.write_bytes(b"\xff\xfe\x00bad")
    code, _, err = cli("train", "-c", bad)
    clean_error(code, err, "not a text (UTF-8) YAML file")


def test_yaml_alias_bomb_is_refused_before_it_expands(cli, clean_error, tmp_path):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")  # 10^9 values once expanded
    code, _, err = cli("train", "-c", bomb)
    clean_error(code, err, "through YAML aliases")
    code, _, err = cli("train", "--model.options", "&a [1,1,1,1,1,1,1,1,1,1]")
    assert code == 2  # a small alias in a flag is fine YAML, but a list is not model options


@pytest.mark.parametrize("argv, needle", [
    (["trian"], "did you mean train?"),
    (["eval"], "required: run_dir"),
    (["export", "x", "--format", "onnxx"], "did you mean onnx?"),
    (["profile", "--model", "mlp", "--input-shape", "100000x1x10000x10000"], "values per batch"),
    (["profile", "--model", "mlp", "--input-shape", "0x4"], "positive integers"),
    (["profile", "--model", "mlp", "--input-shape", "1x4", "--num-classes", str(10**9)], "parameters (at most"),
    (["bench", "--model", "mlp", "--input-shape", "1x4", "--num-classes", str(10**9)], "parameters (at most"),
    (["profile", "--model", "mlp", "--input-shape", "1x4", "--model.options", "{hidden: [-3]}"], "no config overrides"),
])
def test_argparse_and_shape_errors_are_one_line(cli, clean_error, argv, needle):
    code, _, err = cli(*argv)
    clean_error(code, err, needle)


# ----------------------------------------------------------------------------- data files


def test_npz_with_no_features_is_refused(cli, clean_error, tmp_path):
    np.savez(tmp_path / "z.npz", x=np.zeros((20, 0), np.float32), y=np.arange(20) % 2)
    code, _, err = cli("train", "--data", f"npz:{tmp_path / 'z.npz'}", "--out", tmp_path / "r")
    clean_error(code, err, "shape (20, 0)")
    assert not (tmp_path / "r").exists()


def test_wide_csv_header_is_checked_in_linear_time(tmp_path):
    """10^6 columns: the duplicate check used to be quadratic (still running after 300 s)."""
    import time

    from trimnet.data.csv import _check_header
    from trimnet.errors import DataError

    header = [f"c{i}" for i in range(1_000_000)] + ["c7"]
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="'c7' appears more than once"):
        _check_header(header, "wide.csv")
    assert time.perf_counter() - t0 < 30  # quadratic needs hours; linear well under a second


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims a huge size: what a decompression bomb looks like before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def image_run(tmp_path_factory):
    """A tiny run on 8x8 one-channel images (digits), to predict images with."""
    from trimnet.cli.main import main

    out = tmp_path_factory.mktemp("img") / "digits-mlp"
    assert main(["train", "--data", "digits", "--model", "mlp", "--train.epochs", "1", "--out", str(out),
                 "--model.options", "{hidden: [8]}"]) == 0
    return out


def test_predict_reads_inputs_with_the_training_checks(cli, clean_error, iris_run, image_run, tmp_path):
    obj = tmp_path / "obj.npz"
    np.savez(obj, x=np.array([[1, "a"], [2, None]], dtype=object))
    code, _, err = cli("predict", iris_run, "--input", obj)
    clean_error(code, err, "dtype=object")

    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,c,d\n1,2,3,4\n1,2\n")
    code, _, err = cli("predict", iris_run, "--input", ragged)
    clean_error(code, err, "row 3 has 2 cells")

    latin = tmp_path / "latin.csv"
    latin.write_bytes("a,b,c,d\n1,2,3,\xe9\n".encode("latin-1"))
    code, _, err = cli("predict", iris_run, "--input", latin)
    clean_error(code, err, "not UTF-8")

    words = tmp_path / "words.csv"
    words.write_text("a,b,c,d\n1,2,3,four\n")
    code, _, err = cli("predict", iris_run, "--input", words)
    clean_error(code, err, "'four' is not a number")

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(100_000, 100_000))
    code, _, err = cli("predict", image_run, "--input", bomb)
    clean_error(code, err, "decompression bomb")
    # train --data folder: reads the same header check
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "b").mkdir(parents=True)
    (tmp_path / "imgs" / "a" / "x.png").write_bytes(_png_header(100_000, 100_000))
    (tmp_path / "imgs" / "b" / "y.png").write_bytes(_png_header(100_000, 100_000))
    code, _, err = cli("train", "--data", f"folder:{tmp_path / 'imgs'}", "--out", tmp_path / "r")
    clean_error(code, err, "decompression bomb")


# ----------------------------------------------------------------------------- model.json


def _edit(run: Path, change) -> None:
    meta = json.loads((run / "model.json").read_text())
    change(meta)
    (run / "model.json").write_text(json.dumps(meta))


EDITS = {
    "class_names is a number": (lambda m: m.update(class_names=7), "class_names must be a non-empty list"),
    "format_version is a string": (lambda m: m.update(format_version="1"), "format_version must be a whole number"),
    "negative width": (lambda m: m["spec"]["layers"][0].update(out_features=-5), "spec is invalid"),
    "a 10^6 x 10^6 Linear": (lambda m: m["spec"]["layers"][0].update(in_features=10**6, out_features=10**6),
                             "parameters (at most"),
    "huge in_shape": (lambda m: m.update(in_shape=[100000, 100000, 100000]), "values per sample"),
    "weights outside the run": (lambda m: m.update(weights="/etc/passwd"), "outside the run directory"),
    "weights up and out": (lambda m: m.update(weights="../../etc/passwd"), "outside the run directory"),
    "num_classes disagrees": (lambda m: m.update(num_classes=50), "num_classes is 50"),
    "normalization of the wrong size": (lambda m: m["normalization"].update(mean=[0.0] * 9, std=[1.0] * 9),
                                        "normalization must be"),
    "zero std": (lambda m: m["normalization"].update(std=[0.0] * 4), "normalization must be"),
}


@pytest.mark.parametrize("edit", list(EDITS))
@pytest.mark.parametrize("command", [["eval"], ["predict", "--input", "INPUT"], ["export"], ["bench"],
                                     ["prune"], ["profile"], ["stats"], ["fuse"]])
def test_bad_model_json_values(cli, clean_error, iris_copy, tmp_path, edit, command):
    change, needle = EDITS[edit]
    _edit(iris_copy, change)
    inputs = tmp_path / "in.npy"
    np.save(inputs, np.zeros((2, 4), np.float32))
    argv = [a if a != "INPUT" else inputs for a in command]
    code, _, err = cli(argv[0], iris_copy, *argv[1:])
    clean_error(code, err, needle)
    assert sorted(p.name for p in iris_copy.iterdir()) == sorted(
        ["config.yaml", "model.json", "model.safetensors", "metrics.json", "metrics.jsonl", "metrics.csv",
         "checkpoints"])  # nothing written beside it
    assert not any(p.name.startswith("run-") for p in tmp_path.iterdir())  # no RUN-pruned / -fused left


def test_bad_model_pt2_gives_one_line_not_torch_traceback(cli, clean_error, iris_copy):
    _edit(iris_copy, lambda m: m.update(spec=None, program="model.pt2"))
    for content in (b"", b"PK\x03\x04" + b"garbage" * 20, b"not a zip"):
        (iris_copy / "model.pt2").write_bytes(content)
        code, _, err = cli("eval", iris_copy)
        clean_error(code, err, "model.pt2 is truncated or corrupt")
    (iris_copy / "model.pt2").unlink()
    code, _, err = cli("eval", iris_copy)
    clean_error(code, err, "model.pt2 is missing")


@pytest.mark.parametrize("argv, needle", [
    (["eval", "RUN", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["eval", "RUN", "--data", "wine"], "pass data shaped like the training data"),
    (["train", "--data", "csv:"], "csv: needs a file path"),
    (["predict", "RUN", "--input", "EMPTY"], "holds no inputs"),
    ([], "no command given"),
])
def test_more_cases_found_by_trying(cli, clean_error, iris_run, tmp_path, argv, needle):
    np.save(tmp_path / "empty.npy", np.zeros((0, 4), np.float32))
    argv = [{"RUN": iris_run, "EMPTY": tmp_path / "empty.npy"}.get(a, a) for a in argv]
    code, _, err = cli(*argv)
    clean_error(code, err, needle)


@pytest.mark.parametrize("argv, needle", [
    (["export", "{run}", "--opset", "1000"], "--opset 1000"),
    (["export", "{run}", "--opset", "-1"], "--opset -1"),
    (["stats", "{run}", "--threshold", "nan"], "--threshold"),
    (["optimize", "{run}", "--optimize.bench_time_s", "-1"], "bench_time_s"),
])
def test_values_that_would_run_nonsense_are_refused(cli, clean_error, iris_copy, argv, needle):
    before = sorted(p.name for p in iris_copy.iterdir())
    code, _, err = cli(*[a.format(run=iris_copy) for a in argv])
    clean_error(code, err, needle)
    assert sorted(p.name for p in iris_copy.iterdir()) == before  # nothing written
