"""The KServe v2 / Triton gRPC API, generated from the protocol's own .proto files.

``grpc_service.proto`` and ``model_config.proto`` are Triton's (triton-inference-server/common,
``protobuf/``, BSD-3-Clause, commit 83adf7c), which extend the Open Inference Protocol's gRPC
service with the model configuration, statistics and repository calls that Triton's clients
use. The ``*_pb2*.py`` modules are generated from them by ``python -m
trimnet.serve.proto.generate`` (grpcio-tools) and checked in, so an install needs only
``grpcio`` and ``protobuf`` (the ``grpc`` extra).

The messages live in a descriptor pool of their own (``POOL``), not protobuf's process-wide
default one, so that a process may also import ``tritonclient.grpc`` (whose generated modules
define the same ``inference.*`` names from other copies of these files).
"""

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
