"""Serving under load: dynamic batching against batch-1 serving, side by side, on loopback.

The digits CNN (trained here for a few epochs, or ``--run DIR``) is served by ``trimnet
serve`` in a subprocess on 127.0.0.1 (a free port), once with dynamic batching
(``--max-batch 64 --max-delay-ms 2``) and once without (``--max-batch 1``), both running at
once. For 1, 8, 32 and 64 concurrent clients, one-sample KServe v2 infer requests go over
keep-alive connections for a fixed time, in phases that alternate between the two servers
(A B B A), so that load from elsewhere on the machine hits both alike. We record throughput,
p50/p99 latency, errors, the mean batch size the server reports on /metrics, and the
server's CPU time per request (all its threads; on a shared machine this is the steadier
figure, since wall-clock throughput also measures whatever else runs). Every phase stops
by itself; the servers are stopped (SIGTERM) at the end.

The clients are asyncio streams speaking HTTP/1.1 directly (``--client httpx`` uses
httpx.AsyncClient instead): on a small machine the load generator shares the cores with
the server, and a lighter client leaves more of them to what is measured.

    python benchmarks/serve_load.py [--duration 5] [--backends torch,onnxruntime] [--run runs/digits-cnn]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


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
        self.log: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "trimnet", "serve", str(run_dir), "--port", "0", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
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
        # keep reading its log, or a chatty server would block on a full pipe
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()
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

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process, all threads (Linux; None elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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


async def load(url: str, model: str, clients: int, duration: float, bodies: list[bytes], kind: str,
               first: int = 0) -> tuple[list[float], list[str], float]:
    """``clients`` concurrent clients for ``duration`` s: latencies (s) of good answers, errors, elapsed s."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    path = f"/v2/models/{model}/infer"
    latencies: list[float] = []
    errors: list[str] = []
    stop_at = asyncio.get_running_loop().time() + duration
    start = time.perf_counter()
    if kind == "raw":
        tasks = [raw_client(host, int(port), path, bodies, stop_at, first + 7 * c, latencies, errors)
                 for c in range(clients)]
    else:
        tasks = [httpx_client(url, path, bodies, stop_at, first + 7 * c, latencies, errors) for c in range(clients)]
    await asyncio.wait_for(asyncio.gather(*tasks), duration + 60)
    return latencies, errors, time.perf_counter() - start


def summarize(clients: int, latencies: list[float], errors: list[str], seconds: float) -> dict:
    lat = np.asarray(latencies) * 1000
    return {"clients": clients, "requests": len(latencies), "seconds": round(seconds, 3),
            "throughput_rps": round(len(latencies) / seconds, 1) if seconds else 0.0,
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
            "errors": len(errors), "error_samples": sorted(set(errors))[:3]}


def run_backend(run_dir: Path, backend: str, modes: dict[str, list[str]], clients: list[int], duration: float,
                repeats: int, bodies: list[bytes], kind: str) -> list[dict]:
    """Every mode's server up at once; per client count, phases alternate between modes (A B B A ...)
    so that load from elsewhere on the machine hits them alike."""
    rows = []
    model = run_dir.name
    servers: dict[str, Server] = {}
    try:
        for mode, args in modes.items():
            servers[mode] = Server(run_dir, "--backend", backend, *args)
        for server in servers.values():  # warm-up: first calls, allocator, caches
            asyncio.run(load(server.url, model, 4, 1.0, bodies, kind))
        for n in clients:
            acc = {mode: ([], [], 0.0) for mode in modes}
            cpu = {mode: 0.0 for mode in modes}
            before = {mode: server.metrics() for mode, server in servers.items()}
            order = list(modes)
            for rep in range(repeats):
                for mode in order if rep % 2 == 0 else order[::-1]:
                    cpu0 = servers[mode].cpu_seconds()
                    lat, err, sec = asyncio.run(load(servers[mode].url, model, n, duration / repeats, bodies, kind,
                                                     first=rep * 1000))
                    cpu1 = servers[mode].cpu_seconds()
                    cpu[mode] = cpu[mode] + (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
                    acc[mode] = (acc[mode][0] + lat, acc[mode][1] + err, acc[mode][2] + sec)
            for mode, server in servers.items():
                after = server.metrics()
                batches = after["trimnet_batch_size_count"] - before[mode]["trimnet_batch_size_count"]
                samples = after["trimnet_batch_size_sum"] - before[mode]["trimnet_batch_size_sum"]
                row = {"backend": backend, "mode": mode, **summarize(n, *acc[mode]),
                       "mean_batch": round(samples / batches, 2) if batches else None,
                       "server_cpu_us_per_request": round(cpu[mode] / len(acc[mode][0]) * 1e6)
                       if cpu[mode] is not None and acc[mode][0] else None,
                       "load_average": round(os.getloadavg()[0], 2)}
                rows.append(row)
                print(f"  {backend:>11} {mode:>8} {n:>3} clients: {row['throughput_rps']:8.1f} req/s  "
                      f"p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  errors {row['errors']}  "
                      f"mean batch {row['mean_batch']}  server CPU {row['server_cpu_us_per_request']} us/request",
                      flush=True)
    finally:
        for mode, server in servers.items():
            code = server.stop()
            print(f"  {backend} {mode} server exited with {code}", flush=True)
    return rows


def table(rows: list[dict], clients: list[int], backend: str) -> str:
    by = {(r["mode"], r["clients"]): r for r in rows if r["backend"] == backend}
    lines = [f"{backend}:", "",
             "| clients | batched req/s | p50 ms | p99 ms | mean batch | CPU us/req | errors "
             "| batch-1 req/s | p50 ms | p99 ms | CPU us/req | errors | speedup | CPU ratio |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in clients:
        b, s = by[("batched", n)], by[("batch-1", n)]
        speed = b["throughput_rps"] / s["throughput_rps"] if s["throughput_rps"] else float("nan")
        cb, cs = b["server_cpu_us_per_request"], s["server_cpu_us_per_request"]
        ratio = f"{cs / cb:.2f}x" if cb and cs else "-"
        lines.append(f"| {n} | {b['throughput_rps']:.0f} | {b['p50_ms']} | {b['p99_ms']} | {b['mean_batch']} | {cb} | "
                     f"{b['errors']} | {s['throughput_rps']:.0f} | {s['p50_ms']} | {s['p99_ms']} | {cs} | "
                     f"{s['errors']} | {speed:.2f}x | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", help="run directory to serve (default: train the digits CNN here)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs when training the digits CNN here")
    ap.add_argument("--backends", default="torch,onnxruntime", help="comma-separated; each served in turn")
    ap.add_argument("--threads", type=int, default=1, help="model threads in the server")
    ap.add_argument("--clients", default="1,8,32,64")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per client count and mode")
    ap.add_argument("--repeats", type=int, default=2, help="phases per mode and client count, interleaved")
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--max-delay-ms", type=float, default=2.0)
    ap.add_argument("--client", choices=["raw", "httpx"], default="raw")
    ap.add_argument("--out", default=str(HERE / "results" / "serve_load.json"))
    args = ap.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    backends = args.backends.split(",")
    started = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="trimnet-serve-load-") as tmp:
        run_dir = Path(args.run) if args.run else train_digits(Path(tmp) / "digits-cnn", args.epochs)
        bodies = request_bodies()
        print(f"serving {run_dir}, {args.duration:g} s per client count", flush=True)
        for backend in backends:
            common = ["--threads", str(args.threads), "--max-queue", "4096"]
            modes = {"batched": [*common, "--max-batch", str(args.max_batch), "--max-delay-ms", str(args.max_delay_ms)],
                     "batch-1": [*common, "--max-batch", "1", "--max-delay-ms", "0"]}
            rows += run_backend(run_dir, backend, modes, clients, args.duration, args.repeats, bodies, args.client)
    targets = {}
    for backend in backends:
        at32 = {r["mode"]: r for r in rows if r["clients"] == 32 and r["backend"] == backend}
        if len(at32) == 2:
            b, s = at32["batched"], at32["batch-1"]
            speedup = b["throughput_rps"] / max(s["throughput_rps"], 1e-9)
            targets[backend] = {"speedup": round(speedup, 2), "p99_ms": b["p99_ms"], "errors": b["errors"],
                                "met": speedup >= 4 and (b["p99_ms"] or 1e9) <= 50 and b["errors"] == 0}
    result = {"benchmark": "serve_load", "model": "digits cnn", "backends": backends, "threads": args.threads,
              "duration_s": args.duration, "max_batch": args.max_batch, "max_delay_ms": args.max_delay_ms,
              "client": args.client, "request": "one 1x1x8x8 sample per request (JSON)",
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                          "load_average_at_end": list(os.getloadavg())},
              "target": "at 32 clients: batched >= 4x batch-1 throughput, p99 <= 50 ms, 0 errors",
              "at_32_clients": targets, "rows": rows, "total_s": round(time.perf_counter() - started, 1)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    for backend in backends:
        print(table(rows, clients, backend) + "\n")
    for backend, t in targets.items():
        print(f"{backend} at 32 clients: batching {t['speedup']}x batch-1, p99 {t['p99_ms']} ms, errors {t['errors']} "
              f"(target >= 4x, <= 50 ms, 0: {'met' if t['met'] else 'NOT met'})")
    print(f"wrote {out} ({result['total_s']} s)")


if __name__ == "__main__":
    main()
