"""``trimnet serve -c config.yaml`` and ``--print-config``, as the other subcommands have them."""

import pytest
import yaml

from trimnet.cli.main import main

TOKEN = "secret-token-456"


def test_print_config_prints_yaml_that_c_reads_back(cli, tmp_path):
    code, out, err = cli("serve", "--print-config")
    assert code == 0, err
    assert yaml.safe_load(out)["serve"]["max_batch"] == 64
    code, out, err = cli("serve", "--print-config", "--max-batch", "8", "--serve.top_k", "3", "--no-normalize",
                         "--max-body-mb", "1")
    assert code == 0, err
    printed = tmp_path / "serve.yaml"
    printed.write_text(out)
    code, again, err = cli("serve", "-c", printed, "--print-config")
    assert code == 0 and again == out, err
    cfg = yaml.safe_load(again)["serve"]
    assert (cfg["max_batch"], cfg["top_k"], cfg["normalize"], cfg["max_body_bytes"]) == (8, 3, False, 1024 * 1024)


def test_flags_override_the_file_and_a_file_may_hold_the_section_alone(cli, tmp_path):
    (tmp_path / "flat.yaml").write_text("max_batch: 5\nmax_delay_ms: 7\n")
    code, out, err = cli("serve", "-c", tmp_path / "flat.yaml", "--max-batch", "4", "--print-config")
    assert code == 0, err
    cfg = yaml.safe_load(out)["serve"]
    assert cfg["max_batch"] == 4 and cfg["max_delay_ms"] == 7


@pytest.mark.parametrize("text, argv, message", [
    ("serve:\n  max_btach: 3\n", [], "unknown config key serve.max_btach; did you mean serve.max_batch?"),
    ("serve:\n  max_batch: 0\n", [], "max_batch must be a positive integer"),
    ("serve:\n  normalize: maybe\n", [], "serve.normalize must be true or false"),
    ("", ["--train.epochs", "3"], "trimnet serve takes serve.* keys only (got --train.epochs)"),
])
def test_a_bad_config_is_a_one_line_error_and_exit_2(cli, tmp_path, text, argv, message):
    (tmp_path / "bad.yaml").write_text(text)
    code, out, err = cli("serve", "-c", tmp_path / "bad.yaml", "runs/none", *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_the_token_is_never_printed(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("TRIMNET_SERVE_TOKEN", raising=False)
    (tmp_path / "c.yaml").write_text(f"serve:\n  token: {TOKEN}\n  max_batch: 9\n")
    code, out, err = cli("serve", "-c", tmp_path / "c.yaml", "--print-config")
    assert code == 0 and TOKEN not in out + err and "serve.token is set but not shown" in out
    assert yaml.safe_load(out)["serve"]["max_batch"] == 9 and "token" not in yaml.safe_load(out)["serve"]


def test_serve_without_a_run_directory_says_what_to_pass(cli):
    code, _, err = cli("serve")
    assert code == 2 and "pass the run directories to serve" in err


def test_help_lists_the_serve_keys(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    keys = capsys.readouterr().out.split("config keys (--KEY VALUE, or in the -c file; default shown):")[1]
    rows = dict(line.split(None, 1) for line in keys.splitlines() if line.strip())
    assert rows["--serve.max_batch"].strip() == "64" and rows["--serve.max_delay_ms"].strip() == "0.0"


def test_the_server_runs_with_the_file_s_settings(server_process, run_dir, tmp_path, h):
    """The -c file reaches the running server: its metadata and Triton config report the file's batching."""
    (tmp_path / "serve.yaml").write_text(f"serve:\n  max_batch: 12\n  normalize: false\n  token: {TOKEN}\n")
    srv = server_process(str(run_dir), "-c", str(tmp_path / "serve.yaml"))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert h.get(srv.url + "/v2/models/digits-cnn")[0] == 401  # the file's token is required
    status, meta, _ = h.get(srv.url + "/v2/models/digits-cnn", headers=auth)
    assert status == 200 and meta["parameters"]["max_batch"] == 12 and meta["parameters"]["normalize"] is False
    status, config, _ = h.get(srv.url + "/v2/models/digits-cnn/config", headers=auth)
    assert status == 200 and config["max_batch_size"] == 12
