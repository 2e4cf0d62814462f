"""The real thing: ``trimnet serve`` in a subprocess on 127.0.0.1, reached over HTTP."""

import argparse
import json
import re
import signal
import socket
import threading
import time

import numpy as np
import pytest

from trimnet.cli import serve as serve_cli
from trimnet.cli.main import main
from trimnet.errors import ConfigError

TOKEN = "test-token-123"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, raw_digits):
    path = tmp_path_factory.mktemp("inputs") / "x.npz"
    np.savez(path, x=raw_digits[0][:25])
    return path


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_through_the_server_equals_local_predict(server_process, run_dir, inputs, capsys, h):
    srv = server_process(str(run_dir), "--max-batch", "8", env={"TRIMNET_SERVE_TOKEN": TOKEN})
    assert re.match(r"http://127\.0\.0\.1:\d+$", srv.url)  # loopback unless told otherwise

    code, local, _ = cli(capsys, "predict", run_dir, "--input", inputs, "--json")
    assert code == 0
    code, remote, _ = cli(capsys, "predict", run_dir, "--input", inputs, "--json", "--url", srv.url, "--token", TOKEN)
    assert code == 0
    assert json.loads(remote) == json.loads(local)  # 25 inputs in 4 batches of at most 8: same classes, same scores

    # the token: required everywhere but the health probes, read from the environment
    assert h.get(srv.url + "/v2/models/digits-cnn")[0] == 401
    assert h.get(srv.url + "/v2/health/live")[0] == 200
    code, _, err = cli(capsys, "predict", "digits-cnn", "--input", inputs, "--url", srv.url)
    assert code == 2 and "needs a token" in err and "TRIMNET_SERVE_TOKEN" in err
    code, _, err = cli(capsys, "predict", "other-model", "--input", inputs, "--url", srv.url, "--token", TOKEN)
    assert code == 2 and "no model named 'other-model'" in err

    status, metrics, _ = h.get(srv.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and 'trimnet_batch_size_count{model="digits-cnn"}' in metrics


def test_graceful_shutdown_answers_requests_in_flight(server_process, run_dir, raw_digits, h):
    # a long batching delay keeps requests in the queue while the server is told to stop
    srv = server_process(str(run_dir), "--max-batch", "64", "--max-delay-ms", "1500")
    body = h.infer_body(raw_digits[0][:1])
    results = []
    threads = [threading.Thread(target=lambda: results.append(h.get(srv.url + "/v2/models/digits-cnn/infer", body)))
               for _ in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and queued(srv.url, h) < 6:
        time.sleep(0.02)
    assert queued(srv.url, h) == 6, "the requests never reached the queue"
    srv.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(timeout=30)
    assert [r[0] for r in results] == [200] * 6
    assert all(len(r[1]["outputs"]) == 4 for r in results)
    assert srv.proc.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "stopped serving digits-cnn" in "".join(srv.log)
    assert h.get(srv.url + "/v2/health/live", timeout=2)[0] == 0  # nobody listens any more


def queued(url: str, h) -> float:
    text = h.get(url + "/metrics")[1]
    found = re.search(r'^trimnet_queue_samples\{model="digits-cnn"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve_cli.add_parser(parser.add_subparsers(), "serve")
    return parser.parse_args(["serve", *argv])


@pytest.mark.parametrize("argv, message", [
    (["--max-batch", "0"], "max_batch must be a positive integer"),
    (["--max-batch", "64", "--max-queue", "10"], "must hold at least one batch"),
    (["--max-delay-ms", "-1"], "max_delay_ms must be between 0 and 10000"),
    (["--max-body-mb", "0"], "--max-body-mb must be positive"),
    (["--backend-option", "novalue"], "is not KEY=VALUE"),
    (["--name", "a", "--name", "b"], "2 --name for 1 run directories"),
    (["--name", "bad name/x"], "cannot go in a URL"),
    (["--backend", "tensorflow"], "unknown backend 'tensorflow'"),
    (["--grpc-port", "70000"], "--grpc-port 70000 is out of range"),
])
def test_bad_options_are_user_errors(run_dir, argv, message):
    args = parse(str(run_dir), *argv)
    with pytest.raises(ConfigError, match=re.escape(message)):
        args.func(args)


def test_a_port_in_use_is_a_user_error(run_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        args = parse(str(run_dir), "--port", str(taken.getsockname()[1]))
        with pytest.raises(ConfigError, match="cannot listen on 127.0.0.1"):
            args.func(args)


def test_importing_serve_modules_does_not_import_fastapi():
    import subprocess
    import sys

    code = ("import sys, trimnet, trimnet.serve, trimnet.cli.serve, trimnet.serve.client; "
            "print([m for m in ('fastapi', 'uvicorn', 'prometheus_client', 'starlette', 'grpc', 'google.protobuf') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
