"""``trimnet serve``: KServe v2 inference over HTTP with dynamic batching, for one or several run directories."""

from __future__ import annotations

import argparse
import json
import os

from trimnet.cli.common import add_config_args, section_config
from trimnet.errors import ConfigError


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(
        name, help="serve models over HTTP and gRPC (KServe v2 protocol) with dynamic batching",
        description="Serve run directories over the KServe v2 / Open Inference Protocol, HTTP/REST and gRPC "
                    "(POST /v2/models/NAME/infer, /v2/models/NAME/config, /v2/health/ready, /metrics, "
                    "/openapi.json; see docs/serving.md). Inputs are raw, as in the "
                    "training files; the server applies the run's normalization (see --no-normalize). "
                    "Binds to 127.0.0.1 unless --host says otherwise. Batching, limits and the token can also "
                    "come from a -c file's serve section (or --serve.KEY VALUE); flags override the file.")
    p.add_argument("run_dirs", nargs="*", metavar="RUN", help="run directories (from trimnet train)")
    add_config_args(p, _default_config, "serve.")
    p.add_argument("--name", action="append", default=None,
                   help="model name for each RUN, in order (default: the run directory's name)")
    p.add_argument("--backend", default="torch", help="runtime: torch, torch-compile, onnxruntime, openvino, ...")
    p.add_argument("--threads", type=int, help="threads the backend may use (default: the backend's choice)")
    p.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="another backend option, e.g. --backend-option spin=false (values read as JSON)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (0: any free port, printed at start)")
    p.add_argument("--grpc-port", type=int, default=8001,
                   help="gRPC port (KServe v2 gRPC API; 0: any free port, printed at start; needs trimnet[grpc])")
    p.add_argument("--no-grpc", action="store_true", help="serve HTTP only")
    # these are short for --serve.KEY: None (not given) leaves the -c file's value, else the default
    p.add_argument("--max-batch", type=int, help="samples per model call (default 64; 1 turns batching off)")
    p.add_argument("--max-delay-ms", type=float,
                   help="how long a request waits for others to join its batch (default 0: a batch is what "
                        "queued while the model ran the last one)")
    p.add_argument("--max-queue", type=int, help="samples waiting at most; past it, 503 (default 1024)")
    p.add_argument("--max-inflight", type=int, help="requests handled at once at most; past it, 503 (default 256)")
    p.add_argument("--refusal-delay-ms", type=float,
                   help="pause before a 503 for capacity, so that clients retrying at once cannot swamp the "
                        "server with refusals (default 100; 0: answer at once)")
    p.add_argument("--max-body-mb", type=float, help="request body limit in MiB; past it, 413 (default 8)")
    p.add_argument("--top-k", type=int, help="classes returned per sample (default 1; requests may ask otherwise)")
    p.add_argument("--no-normalize", action="store_true",
                   help="inputs arrive normalized already; do not apply the run's normalization")
    p.add_argument("--token", default=None,
                   help="require 'Authorization: Bearer TOKEN' (default: serve.token of -c, else "
                        "$TRIMNET_SERVE_TOKEN; none: no check)")
    p.add_argument("--shutdown-timeout", type=float, default=30.0,
                   help="seconds to finish queued requests on shutdown (readiness answers 503 meanwhile); "
                        "what is still queued after it gets 503")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.set_defaults(func=run)


def _default_config():
    from trimnet.serve.config import ServeConfig

    return ServeConfig()


def run(args: argparse.Namespace) -> int:
    from trimnet.serve.server import serve

    config = serve_config(args)
    if args.print_config:
        print_serve_config(config)
        return 0
    if not args.run_dirs:
        raise ConfigError("pass the run directories to serve, e.g. trimnet serve runs/digits-cnn")
    options = parse_options(args.backend_option)
    if args.threads is not None:
        options["threads"] = args.threads
    serve(args.run_dirs, names=args.name, backend=args.backend, backend_options=options, host=args.host,
          port=args.port, config=config, access_log=args.access_log, shutdown_timeout=args.shutdown_timeout,
          grpc_port=None if args.no_grpc else args.grpc_port)
    return 0


def serve_config(args: argparse.Namespace):
    """The ``ServeConfig`` of defaults, then the ``-c`` file, then the flags, then ``--serve.KEY``;
    the token, where none of them sets it, from ``$TRIMNET_SERVE_TOKEN``."""
    import dataclasses

    from trimnet.serve.config import TOKEN_ENV, ServeConfig

    if args.max_body_mb is not None and not args.max_body_mb > 0:
        raise ConfigError(f"--max-body-mb must be positive, got {args.max_body_mb}")
    flags = {"max_batch": args.max_batch, "max_delay_ms": args.max_delay_ms, "max_queue": args.max_queue,
             "max_inflight": args.max_inflight, "refusal_delay_ms": args.refusal_delay_ms, "top_k": args.top_k, "token": args.token,
             "max_body_bytes": None if args.max_body_mb is None else int(args.max_body_mb * 1024 * 1024),
             "normalize": False if args.no_normalize else None}
    config = section_config(ServeConfig, "serve", args.config, flags, getattr(args, "overrides", None) or [], "serve")
    if config.token is None and os.environ.get(TOKEN_ENV):
        config = dataclasses.replace(config, token=os.environ[TOKEN_ENV])
    return config


def print_serve_config(config) -> None:
    """The config as YAML that ``-c`` reads back, without the token: a secret is never printed."""
    import dataclasses

    import yaml

    data = dataclasses.asdict(config)
    if data["token"] is not None:
        del data["token"]
    print(yaml.safe_dump({"serve": data}, sort_keys=False), end="")
    if config.token is not None:
        print("# serve.token is set but not shown; give it again with --token or $TRIMNET_SERVE_TOKEN")


def parse_options(items: list[str]) -> dict:
    """``["spin=false", "hint=latency"]`` -> ``{"spin": False, "hint": "latency"}``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--backend-option {item!r} is not KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out
