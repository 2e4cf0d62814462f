"""What a SIGKILL leaves behind never blocks the next start: temporary files of a checkpoint
being written are cleaned, and a run killed before its first checkpoint resumes (from the
beginning) or restarts without --overwrite."""

import torch

from trimnet.artifact import load_artifact

TRAIN = ["--data", "iris", "--model", "mlp", "--train.epochs", "2", "--model.options", "{hidden: [16]}"]


def _killed_during_first_checkpoint(cli, out):
    """The state a kill during the first checkpoint write leaves: config.yaml, a checkpoints
    folder holding only the temporary file, a temporary config."""
    code, _, _ = cli("train", *TRAIN, "--out", out)
    assert code == 0
    for p in out.iterdir():
        if p.name != "config.yaml":
            p.unlink() if p.is_file() else [q.unlink() for q in p.iterdir()]
    (out / "checkpoints" / ".last.pt.k1ll3d").write_bytes(b"PK\x03\x04half a zip")
    (out / ".metrics.jsonl.x7y8z9").write_text('{"epoch": 1')
    assert not (out / "checkpoints" / "last.pt").exists()


def test_killed_before_first_checkpoint_restarts_without_overwrite(cli, tmp_path, temp_files):
    out = tmp_path / "r"
    _killed_during_first_checkpoint(cli, out)
    code, _, err = cli("train", *TRAIN, "--out", out)
    assert code == 0, err
    assert load_artifact(out).meta["arch"] == "mlp"
    assert temp_files(out) == []


def test_killed_before_first_checkpoint_can_be_resumed(cli, tmp_path, temp_files):
    out = tmp_path / "r"
    _killed_during_first_checkpoint(cli, out)
    code, _, err = cli("train", "--resume", out)
    assert code == 0, err
    assert (out / "model.json").exists() and temp_files(out) == []


def test_stale_checkpoint_temp_files_are_cleaned_on_the_next_start(cli, tmp_path, temp_files):
    out = tmp_path / "r"
    code, _, _ = cli("train", *TRAIN, "--out", out)
    assert code == 0
    before = torch.load(out / "checkpoints" / "last.pt", weights_only=True)["loop"]["epoch"]
    for i in range(3):  # three kills during checkpoint writes
        (out / "checkpoints" / f".last.pt.dead{i}").write_bytes(b"\0" * 1000)
    code, _, err = cli("train", *TRAIN[:-2], "--train.epochs", "3", "--model.options", "{hidden: [16]}",
                       "--resume", out)
    assert code == 0, err
    assert temp_files(out) == []
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["loop"]["epoch"] > before


def test_a_finished_run_is_not_overwritten_by_accident(cli, clean_error, tmp_path):
    out = tmp_path / "r"
    assert cli("train", *TRAIN, "--out", out)[0] == 0
    code, _, err = cli("train", *TRAIN, "--out", out)
    clean_error(code, err, "already holds a run", "--resume")
    assert cli("train", *TRAIN, "--out", out, "--overwrite")[0] == 0


def test_python_api_cleans_checkpoint_temp_files(tmp_path, temp_files):
    """tn.train, not only the CLI: the next checkpoint write removes what a killed one left."""
    from trimnet.train.checkpoint import save_checkpoint

    (tmp_path / ".last.pt.abc123").write_bytes(b"half")
    (tmp_path / ".other-file").write_text("not ours")
    save_checkpoint(tmp_path, {"step": 1})
    assert temp_files(tmp_path) == [tmp_path / ".other-file"]
    assert torch.load(tmp_path / "last.pt", weights_only=True) == {"step": 1}
