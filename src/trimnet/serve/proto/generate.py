"""Regenerate the checked-in ``*_pb2.py`` / ``*_pb2_grpc.py`` from the .proto files beside this file.

    python -m trimnet.serve.proto.generate      # needs grpcio-tools

protoc writes top-level imports and registers the files in protobuf's default pool; both are
rewritten so the modules import as ``trimnet.serve.proto.*`` and use ``POOL`` (see __init__).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).parent
PROTOS = ("model_config.proto", "grpc_service.proto")


def main() -> int:
    from grpc_tools import protoc

    code = protoc.main(["protoc", f"-I{HERE}", f"--python_out={HERE}", f"--grpc_python_out={HERE}",
                        *(str(HERE / p) for p in PROTOS)])
    if code != 0:
        return code
    (HERE / "model_config_pb2_grpc.py").unlink(missing_ok=True)  # the file defines no service
    for path in HERE.glob("*_pb2*.py"):
        text = path.read_text()
        text = re.sub(r"^import (\w+_pb2) as ", r"from trimnet.serve.proto import \1 as ", text, flags=re.M)
        text = text.replace("_descriptor_pool.Default()", "_POOL")
        if "_POOL" in text:
            text = text.replace("from google.protobuf.internal import builder as _builder\n",
                                "from google.protobuf.internal import builder as _builder\n"
                                "from trimnet.serve.proto import POOL as _POOL\n", 1)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
