"""The KServe v2 gRPC API (``inference.GRPCInferenceService``) over the same ``Service`` as HTTP.

It runs on grpc.aio in the HTTP server's event loop, so both transports feed one batcher
per model. Inputs come as ``raw_input_contents`` (what tritonclient and perf_analyzer send)
or typed ``contents``; outputs always go back as ``raw_output_contents``. The REST status
of a refusal maps to a gRPC code (400 INVALID_ARGUMENT, 404 NOT_FOUND, 413
RESOURCE_EXHAUSTED, 503 UNAVAILABLE, 401 UNAUTHENTICATED).
"""

from __future__ import annotations

import hmac
import logging

import numpy as np

from trimnet.serve.protocol import (
    InferRequest, RequestError, check_input_header, decode_input, distinct_outputs, join_bytes, output_request,
    request_options,
)
from trimnet.serve.service import VERSION, Service

log = logging.getLogger(__name__)

CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
            "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
            "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def _param(p):
    """The value of an ``InferParameter``."""
    kind = p.WhichOneof("parameter_choice")
    return getattr(p, kind) if kind else None


def _class_count(parameters):
    """The classification extension's count: ``classification`` (Triton's clients) or ``class_count``."""
    for key in ("classification", "class_count"):
        if key in parameters:
            return _param(parameters[key])
    return None


def _code(status: int):
    import grpc

    return {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
            404: grpc.StatusCode.NOT_FOUND, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
            503: grpc.StatusCode.UNAVAILABLE}.get(status, grpc.StatusCode.INVALID_ARGUMENT)


def parse_request(request, service: Service):
    """(model, InferRequest) of a ``ModelInferRequest``."""
    model = service.model(request.model_name, request.model_version)
    spec = service.specs[model.name]
    params = {k: _param(v) for k, v in request.parameters.items()}
    normalize, top_k = request_options(params, spec.num_classes, normalize=service.config.normalize,
                                       top_k=service.config.top_k)
    if len(request.inputs) != 1:
        raise RequestError(f"the request has {len(request.inputs)} inputs but the model takes one, 'input'")
    tensor = request.inputs[0]
    shape, count = check_input_header(tensor.name, tensor.datatype, list(tensor.shape), spec)
    given = [f.name for f, _ in tensor.contents.ListFields()] if tensor.HasField("contents") else []
    if request.raw_input_contents:
        if given:
            raise RequestError(f"input '{tensor.name}': its values are in raw_input_contents and in contents."
                               f"{given[0]}; send them in one of the two")
        if len(request.raw_input_contents) != 1:
            raise RequestError(f"raw_input_contents has {len(request.raw_input_contents)} entries for one input")
        x = decode_input(tensor.datatype, shape, count, raw=request.raw_input_contents[0])
    else:
        x = _typed_contents(tensor, shape, count, given)
    outputs = distinct_outputs(tuple(output_request(i, o.name, False, _class_count(o.parameters), spec)
                                     for i, o in enumerate(request.outputs))) or spec.default_outputs
    req = InferRequest(x=None if isinstance(x, list) else x, texts=x if isinstance(x, list) else None,
                       id=request.id or None, outputs=outputs, top_k=top_k, normalize=normalize)
    return model, req


def _typed_contents(tensor, shape: list[int], count: int, given: list[str]):
    """An input's values from its typed ``contents`` (the field its datatype names)."""
    field = CONTENTS.get(tensor.datatype)
    if field is None:
        raise RequestError(f"input '{tensor.name}': {tensor.datatype} has no typed contents field in the KServe v2 "
                           "gRPC API; send its values in raw_input_contents")
    if not given:
        raise RequestError(f"input '{tensor.name}' has no values: send them in raw_input_contents or in "
                           f"contents.{field}")
    if given != [field]:
        raise RequestError(f"input '{tensor.name}' is {tensor.datatype}: its values go in contents.{field} "
                           f"(or raw_input_contents), not contents.{', contents.'.join(given)}")
    data = list(getattr(tensor.contents, field))
    if tensor.datatype == "BYTES":
        return decode_input("BYTES", shape, count, raw=join_bytes(data))
    return decode_input(tensor.datatype, shape, count, data=data, where=f"contents.{field}")


def build_servicer(service: Service):
    import grpc
    from google.protobuf import json_format

    from trimnet import __version__
    from trimnet.serve.routes_health import EXTENSIONS
    from trimnet.serve.proto import grpc_service_pb2 as pb
    from trimnet.serve.proto import grpc_service_pb2_grpc as pb_grpc
    from trimnet.serve.proto import model_config_pb2 as mc

    token = service.config.token.encode() if service.config.token else None

    async def guard(context) -> None:
        if token is None:
            return
        for key, value in context.invocation_metadata():
            if key == "authorization":
                scheme, _, credentials = value.partition(" ")
                if scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token):
                    return
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token "
                                                             "(metadata authorization: Bearer TOKEN)")

    def refused(exc: RequestError):
        return _code(exc.status), str(exc)

    class Servicer(pb_grpc.GRPCInferenceServiceServicer):
        async def ServerLive(self, request, context):
            return pb.ServerLiveResponse(live=True)

        async def ServerReady(self, request, context):
            return pb.ServerReadyResponse(ready=service.ready)

        async def ModelReady(self, request, context):
            await guard(context)
            try:
                service.model(request.name, request.version)
            except RequestError:  # an unknown model or version is not ready (as over HTTP, where it is a 404)
                return pb.ModelReadyResponse(ready=False)
            return pb.ModelReadyResponse(ready=service.ready)

        async def ServerMetadata(self, request, context):
            await guard(context)
            return pb.ServerMetadataResponse(name="trimnet", version=__version__, extensions=list(EXTENSIONS))

        async def ModelMetadata(self, request, context):
            await guard(context)
            try:
                meta = service.metadata(service.model(request.name, request.version))
            except RequestError as exc:
                await context.abort(*refused(exc))
            return pb.ModelMetadataResponse(
                name=meta["name"], versions=meta["versions"], platform=meta["platform"],
                inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
                outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["outputs"]])

        async def ModelConfig(self, request, context):
            await guard(context)
            try:
                config = service.model_config(service.model(request.name, request.version))
            except RequestError as exc:
                await context.abort(*refused(exc))
            return pb.ModelConfigResponse(config=json_format.ParseDict(config, mc.ModelConfig()))

        async def ModelStatistics(self, request, context):
            await guard(context)
            try:
                stats = service.statistics(request.name or None, request.version or None)
            except RequestError as exc:
                await context.abort(*refused(exc))
            return json_format.ParseDict(stats, pb.ModelStatisticsResponse())

        async def RepositoryIndex(self, request, context):
            await guard(context)
            return pb.RepositoryIndexResponse(models=[pb.RepositoryIndexResponse.ModelIndex(**m)
                                                      for m in service.index()])

        async def ModelInfer(self, request, context):
            await guard(context)
            try:
                return await self._infer(request)
            except RequestError as exc:
                await context.abort(*refused(exc))

        async def ModelStreamInfer(self, request_iterator, context):
            await guard(context)
            async for request in request_iterator:
                try:
                    response = await self._infer(request)
                    yield pb.ModelStreamInferResponse(infer_response=response)
                except RequestError as exc:
                    yield pb.ModelStreamInferResponse(error_message=str(exc))

        async def _infer(self, request):
            try:
                service.admit(request.model_name)
            except RequestError as exc:
                await service.hold_refusal(exc)
                raise
            model, req = parse_request(request, service)
            tensors = await service.infer(model, req)
            response = pb.ModelInferResponse(model_name=model.name, model_version=VERSION, id=request.id)
            for t in tensors:
                response.outputs.add(name=t.name, datatype=t.datatype, shape=t.shape)
                response.raw_output_contents.append(
                    join_bytes(t.data) if t.datatype == "BYTES" else np.ascontiguousarray(t.data).tobytes())
            return response

    def unimplemented(name: str):
        async def refuse(self, request, context):
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"trimnet serve does not implement {name} "
                                                               "(see 'Not implemented' in docs/serving.md)")
        return refuse

    # every RPC of the service not served above (shared memory, trace, log settings, load/unload): a clear
    # status instead of the generated base class's NotImplementedError and a logged traceback
    base = pb_grpc.GRPCInferenceServiceServicer
    for name in [n for n in vars(base) if not n.startswith("_") and n not in vars(Servicer)]:
        setattr(Servicer, name, unimplemented(name))
    return Servicer(), pb_grpc


async def start_grpc(service: Service, address: str):
    """A started grpc.aio server on ``address`` (``host:port``); returns it and the port it listens on."""
    from trimnet.errors import ConfigError, require

    grpc = require("grpc", "grpc")
    servicer, pb_grpc = build_servicer(service)
    limit = service.config.max_body_bytes
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit),
                                      ("grpc.max_send_message_length", max(limit, 64 * 1024 * 1024)),
                                      ("grpc.so_reuseport", 0)])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen for gRPC on {address}: {exc}; pick another --grpc-port") from None
    if port == 0:
        raise ConfigError(f"cannot listen for gRPC on {address}; pick another --grpc-port")
    await server.start()
    return server, port

