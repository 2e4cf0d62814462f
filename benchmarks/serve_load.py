"""Serving under load, measured with Triton's perf_analyzer: dynamic batching against batch-1, HTTP and gRPC.

The digits CNN (trained here for a few epochs, or ``--run DIR``) is served by ``trimnet
serve`` in subprocesses on 127.0.0.1 at once: with dynamic batching (``--max-batch 64``, one
server per ``--max-delay-ms``, by default 0 and 2) and without (``--max-batch 1``). Triton's
``perf_analyzer`` (its defaults: one sample per request, binary tensors, synchronous calls)
loads each over HTTP and gRPC at 1, 8, 32 and 64 concurrent requests; for each setting the
servers are measured in turn, in the order A B C then C B A, so that load from elsewhere on
the machine hits all alike. Throughput and p50/p99 latency come from perf_analyzer's CSV.
Each run also records where the time went (Linux): the server's CPU per request, its event-loop
thread's and busiest other threads' share of a core, perf_analyzer's, the machine's idle share,
and the model calls by batch size with their time in the model's thread (statistics extension).

Overload: perf_analyzer stops at the first failed request, so goodput under overload is
measured with this script's own asyncio HTTP/1.1 clients: 32 clients (near the peak) against
10x as many (320, each sending its next request as soon as it has an answer, a 503 included),
alternating against the batched server; goodput is answers with status 200 per second.

perf_analyzer ships inside tritonclient's manylinux wheel. Keep it out of the project's
environment, in a venv of its own (it also needs libb64 and a CUDA runtime library to start):

    python -m venv .bench-venv && .bench-venv/bin/pip install "tritonclient[http,grpc]==2.41.0" nvidia-cuda-runtime-cu12
    apt-get install libb64-0d                           # Debian/Ubuntu
    python benchmarks/serve_load.py [--window-ms 3000] [--backend onnxruntime] [--perf-analyzer PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
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
        self.proc = subprocess.Popen([sys.executable, "-m", "trimnet", "serve", str(run_dir), "--port", "0",
                                      "--grpc-port", "0", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + timeout
        self.url = self.grpc = None
        while time.monotonic() < deadline and (self.url is None or self.grpc is None):
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            found = re.search(r"^listening on (http://\S+)", line)
            self.url = found.group(1) if found else self.url
            found = re.search(r"gRPC listening on (\S+)", line)
            self.grpc = found.group(1) if found else self.grpc
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

    def inferences(self, model: str) -> int:
        """Samples the server has run (Triton's statistics extension)."""
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/v2/models/{model}/stats", timeout=10) as r:
            return int(json.loads(r.read())["model_stats"][0]["inference_count"])

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process, all threads (Linux; None elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def batch_stats(self, model: str) -> dict[int, tuple[int, int]]:
        """Model calls and their compute nanoseconds by batch size (Triton's statistics extension)."""
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/v2/models/{model}/stats", timeout=10) as r:
            stats = json.loads(r.read())["model_stats"][0]["batch_stats"]
        return {int(b["batch_size"]): (int(b["compute_infer"]["count"]), int(b["compute_infer"]["ns"])) for b in stats}

    def thread_cpu(self) -> dict[int, float] | None:
        """CPU seconds of each of the server's threads by thread id (the event loop's is the process id)."""
        out = {}
        try:
            for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                out[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            return None
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
                     latencies: list[float], errors: list[str], refused: list[int]) -> None:
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
            elif status == 503:
                refused[0] += 1
            else:
                errors.append(f"{status}: {body[:200]!r}")
                if not status_line:
                    break
    except (OSError, asyncio.IncompleteReadError) as exc:
        errors.append(f"connection: {exc!r}")
    finally:
        writer.close()


async def load(url: str, model: str, clients: int, duration: float, bodies: list[bytes],
               first: int = 0) -> tuple[list[float], list[str], int, float]:
    """``clients`` concurrent clients for ``duration`` s: latencies (s) of 200s, other errors, 503s, elapsed s."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    path = f"/v2/models/{model}/infer"
    latencies: list[float] = []
    errors: list[str] = []
    refused = [0]
    stop_at = asyncio.get_running_loop().time() + duration
    start = time.perf_counter()
    tasks = [raw_client(host, int(port), path, bodies, stop_at, first + 7 * c, latencies, errors, refused)
             for c in range(clients)]
    await asyncio.wait_for(asyncio.gather(*tasks), duration + 60)
    return latencies, errors, refused[0], time.perf_counter() - start


def summarize(clients: int, latencies: list[float], errors: list[str], refused: int, seconds: float) -> dict:
    lat = np.asarray(latencies) * 1000
    return {"clients": clients, "requests": len(latencies), "seconds": round(seconds, 3), "refused_503": refused,
            "offered_rps": round((len(latencies) + refused + len(errors)) / seconds, 1) if seconds else 0.0,
            "goodput_rps": round(len(latencies) / seconds, 1) if seconds else 0.0,
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
            "errors": len(errors), "error_samples": sorted(set(errors))[:3]}


def find_perf_analyzer(given: str | None) -> Path:
    for candidate in ([given] if given else []) + [str(HERE.parent / ".bench-venv" / "bin" / "perf_analyzer")]:
        if candidate and Path(candidate).exists():
            return Path(candidate)
    found = shutil.which("perf_analyzer")
    if found:
        return Path(found)
    raise SystemExit("perf_analyzer not found: create the benchmark venv (see this script's docstring) "
                     "or pass --perf-analyzer PATH")


def perf_env(binary: Path) -> dict:
    """perf_analyzer links libcudart even for CPU-only runs: point the loader at the wheel's copy."""
    env = dict(os.environ)
    libs = sorted(binary.parent.parent.glob("lib/python3*/site-packages/nvidia/cuda_runtime/lib"))
    if libs:
        env["LD_LIBRARY_PATH"] = ":".join([str(libs[0]), env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
    return env


def perf_analyzer(binary: Path, url: str, protocol: str, model: str, concurrency: int, window_ms: int,
                  stability: float = 100.0, nice: int = 0) -> dict:
    """One perf_analyzer measurement (its defaults otherwise): throughput, p50/p99 ms, or the error.

    ``stability``: perf_analyzer's default (10 %: three windows within 10 % of each other) is
    rarely reached on a shared 2-core machine; 100 % accepts any three windows in a row, whose
    average it reports. The pairs and their medians carry the comparison instead. ``nice`` > 0 runs
    perf_analyzer at that lower CPU priority (see ``--client-nice``).
    """
    with tempfile.NamedTemporaryFile(suffix=".csv") as csv:
        cmd = [*(["nice", "-n", str(nice)] if nice else []), str(binary), "-m", model, "-u", url, "-i", protocol, "--concurrency-range", str(concurrency),
               "--measurement-interval", str(window_ms), "--max-trials", "10", "--stability-percentage", str(stability),
               "-f", csv.name]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=perf_env(binary), timeout=600)
        text = Path(csv.name).read_text() if Path(csv.name).exists() else ""
    lines = [line.split(",") for line in text.strip().splitlines()]
    if proc.returncode != 0 or len(lines) < 2:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        return {"error": " | ".join(tail)[:300], "returncode": proc.returncode}
    row = dict(zip(lines[0], lines[1]))
    return {"throughput_rps": round(float(row["Inferences/Second"]), 1),
            "p50_ms": round(float(row["p50 latency"]) / 1000, 2), "p99_ms": round(float(row["p99 latency"]) / 1000, 2),
            "errors": 0}


def children_cpu() -> float:
    """User + system CPU seconds of the finished child processes (the perf_analyzer runs)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_idle() -> tuple[int, int] | None:
    """(idle, total) CPU ticks of the whole machine since boot (Linux; None elsewhere)."""
    try:
        ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    return ticks[3] + ticks[4], sum(ticks[:8])


def measured(srv: Server, binary: Path, url: str, protocol: str, model: str, concurrency: int, window_ms: int,
             nice: int) -> dict:
    """One perf_analyzer call against ``srv``, with where the time went while it ran."""
    pid = srv.proc.pid
    cpu, done, threads, sizes = srv.cpu_seconds(), srv.inferences(model), srv.thread_cpu(), srv.batch_stats(model)
    t0, client0, idle0 = time.perf_counter(), children_cpu(), machine_idle()
    result = perf_analyzer(binary, url, protocol, model, concurrency, window_ms, nice=nice)
    wall = time.perf_counter() - t0
    result["client_cores"] = round((children_cpu() - client0) / wall, 2)  # perf_analyzer's CPU
    idle1 = machine_idle()
    if idle0 and idle1:
        result["machine_idle"] = round((idle1[0] - idle0[0]) / max(idle1[1] - idle0[1], 1), 3)
    served = srv.inferences(model) - done
    if cpu is not None and served:
        # the whole perf_analyzer call (its warm-up and every window): one sample per request
        result["server_cpu_us_per_request"] = round((srv.cpu_seconds() - cpu) / served * 1e6, 1)
        after = srv.thread_cpu() or {}
        busy = sorted(((after[t] - threads.get(t, 0.0)) / wall for t in after if t != pid), reverse=True)
        # the event loop's thread (the main one) and the busiest others (the model's, or gRPC's poller)
        result["event_loop_cores"] = round((after[pid] - threads[pid]) / wall, 2)
        result["other_thread_cores"] = [round(b, 2) for b in busy if b >= 0.02][:4]
    # model calls by batch size, and each size's mean time in the model's thread (compute_infer)
    calls = {b: (n - sizes.get(b, (0, 0))[0], ns - sizes.get(b, (0, 0))[1])
             for b, (n, ns) in srv.batch_stats(model).items()}
    calls = {b: (n, ns) for b, (n, ns) in sorted(calls.items()) if n > 0}
    result["batches"] = {str(b): {"calls": n, "compute_us": round(ns / n / 1e3, 1)} for b, (n, ns) in calls.items()}
    if calls:
        result["mean_batch"] = round(sum(b * n for b, (n, _) in calls.items()) / sum(n for n, _ in calls.values()), 1)
    return result


def sweep(binary: Path, servers: dict, model: str, protocols: list[str], concurrency: list[int],
          window_ms: int, nice: int = 0) -> list[dict]:
    rows = []
    order = list(servers)
    for protocol in protocols:
        for c in concurrency:
            pairs: dict[str, list[dict]] = {mode: [] for mode in order}
            for rep, modes in enumerate((order, order[::-1])):
                for mode in modes:
                    srv = servers[mode]
                    url = srv.url.removeprefix("http://") if protocol == "http" else srv.grpc
                    pairs[mode].append(measured(srv, binary, url, protocol, model, c, window_ms, nice))
            for mode, runs in pairs.items():
                good = [r for r in runs if "error" not in r]
                row = {"protocol": protocol, "mode": mode, "concurrency": c, "runs": runs,
                       "load_average": round(os.getloadavg()[0], 2)}
                if good:
                    row.update({k: round(float(np.median([r[k] for r in good])), 2)
                                for k in ("throughput_rps", "p50_ms", "p99_ms", "server_cpu_us_per_request",
                                          "event_loop_cores", "mean_batch", "client_cores", "machine_idle")
                                if all(k in r for r in good)})
                rows.append(row)
                print(f"  {protocol:>4} {mode:>8} c={c:>2}: {row.get('throughput_rps')} infer/s  p50 {row.get('p50_ms')}"
                      f" ms  p99 {row.get('p99_ms')} ms  server CPU {row.get('server_cpu_us_per_request')} us/request  "
                      f"event loop {row.get('event_loop_cores')} cores  mean batch {row.get('mean_batch')}  failed runs {len(runs) - len(good)}  "
                      f"load {row['load_average']}", flush=True)
    return rows


def overload(server, model: str, bodies: list[bytes], base: int, factor: int, duration: float) -> dict:
    """Goodput at ``factor`` x ``base`` clients against ``base`` clients, alternating (A B B A)."""
    acc = {base: [], base * factor: []}
    for rep, order in enumerate(((base, base * factor), (base * factor, base))):
        for n in order:
            acc[n].append(summarize(n, *asyncio.run(load(server.url, model, n, duration, bodies, first=rep * 100))))
    out = {}
    for n, runs in acc.items():
        out[str(n)] = {"goodput_rps": round(float(np.median([r["goodput_rps"] for r in runs])), 1),
                       "offered_rps": round(float(np.median([r["offered_rps"] for r in runs])), 1),
                       "p99_ms": round(float(np.median([r["p99_ms"] or 0 for r in runs])), 2),
                       "refused_503": sum(r["refused_503"] for r in runs),
                       "other_errors": sum(r["errors"] for r in runs), "runs": runs}
    peak, over = out[str(base)], out[str(base * factor)]
    out["goodput_ratio"] = round(over["goodput_rps"] / max(peak["goodput_rps"], 1e-9), 3)
    return out


def markdown(rows: list[dict], protocols: list[str], concurrency: list[int], modes: list[str]) -> str:
    """One row per protocol and concurrency: each batched mode, then batch-1, then each batched mode's speedup."""
    by = {(r["protocol"], r["mode"], r["concurrency"]): r for r in rows}
    batched = [m for m in modes if m != "batch-1"]
    head = ["protocol", "concurrency"]
    for m in [*batched, "batch-1"]:
        head += [f"{m} infer/s", "p50 ms", "p99 ms", "CPU µs/req", "loop cores"] + (["batch"] if m != "batch-1" else [])
    head += [f"speedup {m}" for m in batched] + ["load"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for p in protocols:
        for c in concurrency:
            s = by[(p, "batch-1", c)]
            cells = [p, str(c)]
            for m in [*batched, "batch-1"]:
                r = by[(p, m, c)]
                cells += [str(r.get("throughput_rps", "failed")), str(r.get("p50_ms", "-")), str(r.get("p99_ms", "-")),
                          str(r.get("server_cpu_us_per_request", "-")), str(r.get("event_loop_cores", "-"))]
                cells += [str(r.get("mean_batch", "-"))] if m != "batch-1" else []
            for m in batched:
                b = by[(p, m, c)]
                cells.append(f"{b['throughput_rps'] / s['throughput_rps']:.2f}x"
                             if b.get("throughput_rps") and s.get("throughput_rps") else "-")
            cells.append(str(by[(p, batched[0], c)]["load_average"]))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", help="run directory to serve (default: train the digits CNN here)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs when training the digits CNN here")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--threads", type=int, default=1, help="model threads in each server")
    ap.add_argument("--concurrency", default="1,8,32,64")
    ap.add_argument("--protocols", default="http,grpc")
    ap.add_argument("--window-ms", type=int, default=3000, help="perf_analyzer's measurement window")
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--max-delay-ms", default="0,2",
                    help="batched servers' --max-delay-ms, comma-separated: one batched server each (the first is "
                         "the one the targets and the overload test use)")
    ap.add_argument("--overload-base", type=int, default=32, help="clients near the peak")
    ap.add_argument("--overload-factor", type=int, default=10)
    ap.add_argument("--overload-seconds", type=float, default=5.0)
    ap.add_argument("--client-nice", type=int, default=0,
                    help="run perf_analyzer at this nice level (0: as the servers; 10: the servers' threads run "
                         "first), to see how much the load generator sharing the servers' cores holds them back")
    ap.add_argument("--perf-analyzer", help="path of perf_analyzer (default: .bench-venv/bin, then PATH)")
    ap.add_argument("--out", default=str(HERE / "results" / "serve_load.json"))
    args = ap.parse_args()
    binary = find_perf_analyzer(args.perf_analyzer)
    concurrency = [int(c) for c in args.concurrency.split(",")]
    protocols = args.protocols.split(",")
    started = time.perf_counter()
    load_before = list(os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="trimnet-serve-load-") as tmp:
        run_dir = Path(args.run) if args.run else train_digits(Path(tmp) / "digits-cnn", args.epochs)
        model = run_dir.name
        common = ["--backend", args.backend, "--threads", str(args.threads), "--max-queue", "1024",
                  "--max-inflight", "256"]
        delays = [float(d) for d in args.max_delay_ms.split(",")]
        modes = {("batched" if i == 0 else f"batched-{d:g}ms"): [*common, "--max-batch", str(args.max_batch),
                                                                  "--max-delay-ms", f"{d:g}"]
                 for i, d in enumerate(delays)}
        modes["batch-1"] = [*common, "--max-batch", "1", "--max-delay-ms", "0"]
        servers = {}
        try:
            for mode, extra in modes.items():
                servers[mode] = Server(run_dir, *extra)
            print(f"serving {run_dir} ({args.backend}); perf_analyzer {binary}", flush=True)
            rows = sweep(binary, servers, model, protocols, concurrency, args.window_ms, args.client_nice)
            print("overload (HTTP, own clients, batched server):", flush=True)
            over = overload(servers["batched"], model, request_bodies(), args.overload_base, args.overload_factor,
                            args.overload_seconds)
            print(f"  {args.overload_base} clients: {over[str(args.overload_base)]['goodput_rps']} good/s; "
                  f"{args.overload_base * args.overload_factor} clients: "
                  f"{over[str(args.overload_base * args.overload_factor)]['goodput_rps']} good/s "
                  f"(ratio {over['goodput_ratio']})", flush=True)
            stats = {mode: srv.metrics() for mode, srv in servers.items()}
        finally:
            codes = {mode: srv.stop() for mode, srv in servers.items()}
    by = {(r["protocol"], r["mode"], r["concurrency"]): r for r in rows}
    targets = {}
    for p in protocols:
        b, s = by.get((p, "batched", 32), {}), by.get((p, "batch-1", 32), {})
        if b.get("throughput_rps") and s.get("throughput_rps"):
            speed = b["throughput_rps"] / s["throughput_rps"]
            targets[p] = {"speedup": round(speed, 2), "p99_ms": b["p99_ms"], "met": speed >= 3 and b["p99_ms"] <= 50}
    heavy = over[str(args.overload_base * args.overload_factor)]
    targets["overload"] = {"goodput_ratio": over["goodput_ratio"], "other_errors": heavy["other_errors"],
                           "met": over["goodput_ratio"] >= 0.8 and heavy["other_errors"] == 0}
    result = {"benchmark": "serve_load", "tool": "perf_analyzer (tritonclient 2.41.0 wheel)", "model": "digits cnn",
              "backend": args.backend, "threads": args.threads, "window_ms": args.window_ms,
              "client_nice": args.client_nice,
              "max_batch": args.max_batch, "max_delay_ms": delays, "modes": modes,
              "request": "one 1x1x8x8 FP32 sample per request; perf_analyzer's defaults (binary tensors)",
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                          "load_average_before": load_before, "load_average_at_end": list(os.getloadavg())},
              "targets": "at 32 concurrent: batched >= 3x batch-1 throughput with p99 <= 50 ms; goodput at 10x "
                         "overload >= 80 % of peak; no errors but 503",
              "results": targets, "rows": rows, "overload": over, "server_metrics": stats,
              "server_exit_codes": codes, "total_s": round(time.perf_counter() - started, 1)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(markdown(rows, protocols, concurrency, list(modes)))
    print(json.dumps(targets, indent=2))
    print(f"wrote {out} ({result['total_s']} s)")


if __name__ == "__main__":
    main()
