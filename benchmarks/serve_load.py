"""Serving under load: dynamic batching against batch-1 serving, side by side, on loopback.

The digits CNN (trained here for a few epochs, or ``--run DIR``) is served by ``trimnet
serve`` in a subprocess on 127.0.0.1 (a free port), once with dynamic batching
(``--max-batch 64 --max-delay-ms 2``) and once without (``--max-batch 1``). For each, 1, 8,
32 and 64 concurrent clients send one-sample KServe v2 infer requests over keep-alive
connections for a fixed time each; we record throughput, p50/p99 latency, errors and the
mean batch size the server reports on /metrics. Every phase stops by itself.

The clients are asyncio streams speaking HTTP/1.1 directly (``--client httpx`` uses
httpx.AsyncClient instead): on a small machine the load generator shares the cores with
the server, and a lighter client leaves more of them to what is measured.

    python benchmarks/serve_load.py [--duration 5] [--backend torch] [--run runs/digits-cnn]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
SERVER = ("import logging, sys; logging.basicConfig(level=logging.INFO, format='%(message)s', stream=sys.stderr); "
          "import argparse; from trimnet.cli import serve; p = argparse.ArgumentParser(); "
          "serve.add_parser(p.add_subparsers(), 'serve'); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))")


def train_digits(out: Path, epochs: int) -> Path:
    import trimnet as tn

    data = tn.load_dataset("digits")
    model = tn.create_model("cnn", in_shape=data.in_shape, num_classes=data.num_classes)
    tn.train(model, data, tn.TrainConfig(epochs=epochs, progress=False, seed=0), out=out)
    return out


class Server:
    """``trimnet serve`` in a subprocess on a free loopback port; stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, run_dir: Path, *args: str, timeout: float = 120.0):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, "serve", str(run_dir), "--port", "0", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        self.log: list[str] = []
        deadline = time.monotonic() + timeout
        self.url = None
        while time.monotonic() < deadline and self.url is None:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                self.url = found.group(1)
        if self.url is None:
            self.stop()
            raise RuntimeError("the server did not start:\n" + "".join(self.log))
        self._wait_ready(deadline)

    def _wait_ready(self, deadline: float) -> None:
        import urllib.request

        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the server never became ready")

    def metrics(self) -> dict[str, float]:
        import urllib.request

        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            text = r.read().decode()
        out = {}
        for key in ("trimnet_batch_size_sum", "trimnet_batch_size_count"):
            out[key] = sum(float(m) for m in re.findall(rf"^{key}{{[^}}]*}} (\S+)$", text, re.M))
        return out

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def request_bodies(n: int = 256) -> list[bytes]:
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32)
    return [json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32",
                                    "data": img.ravel().tolist()}]}).encode() for img in images[:n]]


async def raw_client(host: str, port: int, path: str, bodies: list[bytes], stop_at: float, start: int,
                     latencies: list[float], errors: list[str]) -> None:
    """One keep-alive HTTP/1.1 connection sending requests back to back until ``stop_at``."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(host, port)
    heads = [f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
             f"Content-Length: {len(b)}\r\n\r\n".encode() + b for b in bodies]
    i = start
    try:
        while loop.time() < stop_at:
            t0 = time.perf_counter()
            writer.write(heads[i % len(heads)])
            i += 1
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            status = int(status_line.split()[1]) if status_line else 0
            if status == 200 and body.startswith(b'{"model_name"'):
                latencies.append(time.perf_counter() - t0)
            else:
                errors.append(f"{status}: {body[:200]!r}")
                if not status_line:
                    break
    except (OSError, asyncio.IncompleteReadError) as exc:
        errors.append(f"connection: {exc!r}")
    finally:
        writer.close()


async def httpx_client(url: str, path: str, bodies: list[bytes], stop_at: float, start: int,
                       latencies: list[float], errors: list[str]) -> None:
    import httpx

    loop = asyncio.get_running_loop()
    i = start
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while loop.time() < stop_at:
            t0 = time.perf_counter()
            try:
                r = await client.post(path, content=bodies[i % len(bodies)],
                                      headers={"Content-Type": "application/json"})
            except httpx.HTTPError as exc:
                errors.append(f"connection: {exc!r}")
                continue
            i += 1
            if r.status_code == 200:
                latencies.append(time.perf_counter() - t0)
            else:
                errors.append(f"{r.status_code}: {r.text[:200]}")


async def load(url: str, model: str, clients: int, duration: float, bodies: list[bytes], kind: str) -> dict:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    path = f"/v2/models/{model}/infer"
    latencies: list[float] = []
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + duration
    start = time.perf_counter()
    if kind == "raw":
        tasks = [raw_client(host, int(port), path, bodies, stop_at, 7 * c, latencies, errors) for c in range(clients)]
    else:
        tasks = [httpx_client(url, path, bodies, stop_at, 7 * c, latencies, errors) for c in range(clients)]
    await asyncio.wait_for(asyncio.gather(*tasks), duration + 60)
    elapsed = time.perf_counter() - start
    lat = np.asarray(latencies) * 1000
    return {"clients": clients, "requests": len(latencies), "seconds": round(elapsed, 3),
            "throughput_rps": round(len(latencies) / elapsed, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
            "errors": len(errors), "error_samples": sorted(set(errors))[:3]}


def run_mode(run_dir: Path, label: str, server_args: list[str], clients: list[int], duration: float,
             bodies: list[bytes], kind: str) -> list[dict]:
    rows = []
    with Server(run_dir, *server_args) as server:
        model = run_dir.name
        asyncio.run(load(server.url, model, 4, 1.0, bodies, kind))  # warm-up: first calls, allocator, caches
        for n in clients:
            before = server.metrics()
            row = asyncio.run(load(server.url, model, n, duration, bodies, kind))
            after = server.metrics()
            batches = after["trimnet_batch_size_count"] - before["trimnet_batch_size_count"]
            samples = after["trimnet_batch_size_sum"] - before["trimnet_batch_size_sum"]
            row["mean_batch"] = round(samples / batches, 2) if batches else None
            row["mode"] = label
            rows.append(row)
            print(f"  {label:>8}  {n:>3} clients: {row['throughput_rps']:8.1f} req/s  p50 {row['p50_ms']} ms  "
                  f"p99 {row['p99_ms']} ms  errors {row['errors']}  mean batch {row['mean_batch']}", flush=True)
        code = server.stop()
        print(f"  server exited with {code}", flush=True)
    return rows


def table(rows: list[dict], clients: list[int]) -> str:
    by = {(r["mode"], r["clients"]): r for r in rows}
    lines = ["| clients | batched req/s | p50 ms | p99 ms | mean batch | errors | batch-1 req/s | p50 ms | p99 ms "
             "| errors | speedup |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in clients:
        b, s = by[("batched", n)], by[("batch-1", n)]
        speed = b["throughput_rps"] / s["throughput_rps"] if s["throughput_rps"] else float("nan")
        lines.append(f"| {n} | {b['throughput_rps']:.0f} | {b['p50_ms']} | {b['p99_ms']} | {b['mean_batch']} | "
                     f"{b['errors']} | {s['throughput_rps']:.0f} | {s['p50_ms']} | {s['p99_ms']} | {s['errors']} | "
                     f"{speed:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", help="run directory to serve (default: train the digits CNN here)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs when training the digits CNN here")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--threads", type=int, default=1, help="model threads in the server")
    ap.add_argument("--clients", default="1,8,32,64")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per client count")
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--max-delay-ms", type=float, default=2.0)
    ap.add_argument("--client", choices=["raw", "httpx"], default="raw")
    ap.add_argument("--out", default=str(HERE / "results" / "serve_load.json"))
    args = ap.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="trimnet-serve-load-") as tmp:
        run_dir = Path(args.run) if args.run else train_digits(Path(tmp) / "digits-cnn", args.epochs)
        bodies = request_bodies()
        common = ["--backend", args.backend, "--threads", str(args.threads), "--max-queue", "4096"]
        print(f"serving {run_dir} on {args.backend}, {args.duration:g} s per client count", flush=True)
        rows = run_mode(run_dir, "batched", [*common, "--max-batch", str(args.max_batch), "--max-delay-ms",
                                             str(args.max_delay_ms)], clients, args.duration, bodies, args.client)
        rows += run_mode(run_dir, "batch-1", [*common, "--max-batch", "1", "--max-delay-ms", "0"], clients,
                         args.duration, bodies, args.client)
    md = table(rows, clients)
    at32 = {r["mode"]: r for r in rows if r["clients"] == 32}
    target = None
    if len(at32) == 2:
        speedup = at32["batched"]["throughput_rps"] / max(at32["batch-1"]["throughput_rps"], 1e-9)
        target = {"speedup_at_32": round(speedup, 2), "p99_ms_at_32": at32["batched"]["p99_ms"],
                  "errors_at_32": at32["batched"]["errors"],
                  "met": speedup >= 4 and (at32["batched"]["p99_ms"] or 1e9) <= 50 and at32["batched"]["errors"] == 0}
    result = {"benchmark": "serve_load", "model": "digits cnn", "backend": args.backend, "threads": args.threads,
              "duration_s": args.duration, "max_batch": args.max_batch, "max_delay_ms": args.max_delay_ms,
              "client": args.client, "request": "one 1x1x8x8 sample per request (JSON)",
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "target_at_32_clients": target, "rows": rows, "total_s": round(time.perf_counter() - started, 1)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(md)
    if target:
        print(f"\nat 32 clients: batching {target['speedup_at_32']}x batch-1, p99 {target['p99_ms_at_32']} ms, "
              f"errors {target['errors_at_32']} (target >= 4x, <= 50 ms, 0: {'met' if target['met'] else 'NOT met'})")
    print(f"wrote {out} ({result['total_s']} s)")


if __name__ == "__main__":
    main()
