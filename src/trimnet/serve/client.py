"""A small KServe v2 client (standard library only): what ``trimnet predict --url`` uses.

Inputs go out as exact FP32 values and probabilities (or a regression model's values) come
back exactly, so predictions through a server equal ``trimnet.predict`` on the same inputs.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import numpy as np

from trimnet.errors import ConfigError, DataError, TrimnetError

MAX_WAIT_S = 5.0  # the longest Retry-After the client honours between attempts


def remote_metadata(url: str, model: str, *, token: str | None = None, timeout: float = 30.0) -> dict:
    """``GET /v2/models/{model}``: inputs, outputs, class names."""
    return _call(url, f"/v2/models/{urllib.parse.quote(model, safe='')}", None, token, timeout, retries=0)


def infer_remote(url: str, model: str, x: np.ndarray, *, token: str | None = None, normalize: bool | None = None,
                 top_k: int = 1, chunk: int = 512, timeout: float = 60.0, retries: int = 5):
    """Predictions for raw inputs ``x`` (batch first) from a running server, ``chunk`` samples per request
    (a regression model's come back as ``values``)."""
    from trimnet.train.evaluate import Predictions

    x = np.ascontiguousarray(x, dtype=np.float32)
    path = f"/v2/models/{urllib.parse.quote(model, safe='')}/infer"
    params: dict[str, Any] = {"top_k": top_k}
    if normalize is not None:
        params["normalize"] = normalize
    probs, labels, names, values = [], [], [], []
    for i in range(0, len(x), chunk):
        part = x[i:i + chunk]
        body = {"id": str(i), "parameters": params,
                "inputs": [{"name": "input", "shape": list(part.shape), "datatype": "FP32",
                            "data": part.ravel().tolist()}]}
        out = {o["name"]: o for o in _call(url, path, body, token, timeout, retries)["outputs"]}
        if "values" in out:  # a regression model: its predicted values, no classes
            values.append(np.asarray(out["values"]["data"], dtype=np.float32).reshape(out["values"]["shape"]))
            continue
        probs.append(np.asarray(out["probabilities"]["data"], dtype=np.float32).reshape(out["probabilities"]["shape"]))
        k = out["labels"]["shape"][1]
        labels += out["labels"]["data"][::k]
        names += out["classes"]["data"][::k]
    if values:
        v = np.concatenate(values)
        return Predictions(labels=[], names=[], probabilities=np.zeros((len(v), 0), np.float32),
                           values=v[:, 0] if v.shape[1] == 1 else v)  # as trimnet.predict shapes them
    classes = probs[0].shape[1] if probs else 0
    return Predictions(labels=labels, names=names,
                       probabilities=np.concatenate(probs) if probs else np.zeros((0, classes), np.float32))


def _call(url: str, path: str, body: dict | None, token: str | None, timeout: float, retries: int) -> dict:
    base = url.rstrip("/")
    if urllib.parse.urlparse(base).scheme not in ("http", "https"):
        raise ConfigError(f"server URL {url!r} must start with http:// or https://")
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    for attempt in range(retries + 1):
        req = urllib.request.Request(base + path, data=data, headers=headers, method="POST" if data else "GET")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            message = _message(exc)
            if exc.code == 503 and attempt < retries:
                time.sleep(min(MAX_WAIT_S, float(exc.headers.get("Retry-After") or 1)))
                continue
            if exc.code == 401:
                raise ConfigError(f"{base} needs a token: pass --token or set TRIMNET_SERVE_TOKEN "
                                  f"({message})") from None
            if exc.code == 404:
                raise ConfigError(f"{base}: {message}") from None
            if exc.code in (400, 413):
                raise DataError(f"{base} refused the inputs: {message}") from None
            raise TrimnetError(f"{base} answered {exc.code}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConfigError(f"cannot reach {base} ({reason}); is `trimnet serve` running there?") from None
    raise TrimnetError(f"{base} stayed busy (503) after {retries + 1} attempts; retry later")  # pragma: no cover


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"])
    except (ValueError, KeyError, TypeError, OSError):
        return exc.reason or f"HTTP {exc.code}"
