import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """Run directory ``digits-cnn``: a small, seeded (untrained) digits CNN with the digits normalization.

    Serving does not care how well the model was trained; saving one skips seconds of training.
    """
    import torch

    import trimnet as tn
    from trimnet.data.dataset import Normalization

    torch.manual_seed(0)
    model = tn.create_model("cnn", in_shape=(1, 8, 8), num_classes=10, widths=(8, 8, 16), hidden=32)
    out = tmp_path_factory.mktemp("serve") / "digits-cnn"
    tn.save_artifact(model, out, in_shape=(1, 8, 8), class_names=[str(i) for i in range(10)],
                     normalization=Normalization(mean=[4.88], std=[6.02]))
    return out


@pytest.fixture(scope="session")
def regression_run_dir(tmp_path_factory):
    """Run directory ``house-mlp``: a seeded (untrained) regression MLP, 8 features in, 2 predicted values out,
    with a per-feature normalization, recorded as ``trimnet train --data.task regression`` records it."""
    import torch

    import trimnet as tn
    from trimnet.data.dataset import Normalization

    torch.manual_seed(0)
    model = tn.create_model("mlp", in_shape=(8,), num_classes=2, hidden=[16])
    out = tmp_path_factory.mktemp("serve") / "house-mlp"
    tn.save_artifact(model, out, in_shape=(8,), normalization=Normalization(mean=[1.5] * 8, std=[2.0] * 8),
                     extra={"task": {"name": "regression", "metric": "neg_mae", "outputs": 2}})
    return out


@pytest.fixture(scope="session")
def raw_digits():
    """Raw (unnormalized) digits images, as in the training files: (N, 1, 8, 8) float32 in 0..16."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images[:, None].astype(np.float32), d.target


@pytest.fixture(scope="session")
def served(run_dir):
    from trimnet.serve import load_model

    return load_model(run_dir, backend="torch")


def infer_body(x, **extra) -> dict:
    x = np.asarray(x, dtype=np.float32)
    return {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}],
            **extra}


def outputs(response) -> dict:
    return {o["name"]: o for o in response.json()["outputs"]}


class ServerProcess:
    """The server in a subprocess on a free loopback port; always stopped at the end."""

    def __init__(self, *args: str, env: dict | None = None, timeout: float = 90.0):
        # `trimnet serve`, one model thread (the suite's machines have two cores), any free port
        self.proc = subprocess.Popen([sys.executable, "-m", "trimnet", "serve", *args, "--port", "0", "--grpc-port", "0",
                                      "--threads", "1"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.log: list[str] = []
        self.url = self.grpc = None
        deadline = time.monotonic() + timeout
        while (self.url is None or self.grpc is None) and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            found = re.search(r"listening on (http://\S+)", line)
            self.url = found.group(1) if found else self.url
            found = re.search(r"gRPC listening on (\S+)", line)
            self.grpc = found.group(1) if found else self.grpc  # host:port, as tritonclient.grpc takes it
        if self.url is None or self.grpc is None:
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.log))
        self._reader = threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True)
        self._reader.start()
        while time.monotonic() < deadline:
            if get(self.url + "/v2/health/ready")[0] == 200:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("server never became ready:\n" + "".join(self.log))

    def stop(self, timeout: float = 30.0):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def get(url: str, body: dict | None = None, headers: dict | None = None, timeout: float = 30.0):
    """(status, parsed JSON or text, headers) of one request; a connection error gives status 0."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, _decode(r.read(), r.headers), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, _decode(exc.read(), exc.headers), dict(exc.headers)
    except OSError as exc:
        return 0, str(exc), {}


def _decode(data: bytes, headers):
    return json.loads(data) if "json" in headers.get("content-type", "") else data.decode()


@pytest.fixture
def server_process():
    started: list[ServerProcess] = []

    def start(*args: str, env: dict | None = None) -> ServerProcess:
        started.append(ServerProcess(*args, env=env))
        return started[-1]

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def h():
    """Helpers for the tests of this folder (test modules cannot import conftest under importlib mode)."""
    import types

    return types.SimpleNamespace(infer_body=infer_body, outputs=outputs, get=get)


@pytest.fixture(scope="module")
def live_server(run_dir):
    """``trimnet serve`` on the digits CNN (HTTP and gRPC on free loopback ports), shared by a test module."""
    srv = ServerProcess(str(run_dir), "--max-batch", "16", "--max-delay-ms", "1")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def live_regression_server(regression_run_dir):
    """``trimnet serve`` on the regression MLP (HTTP and gRPC on free loopback ports), shared by a test module."""
    srv = ServerProcess(str(regression_run_dir), "--max-batch", "16", "--max-delay-ms", "1")
    yield srv
    srv.stop()
