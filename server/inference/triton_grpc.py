"""The frontend's gRPC transport to Triton: one long-lived bidirectional stream per client.

Every window goes over Triton's ``ModelStreamInfer`` RPC, opened once and kept (reopened after a
failure), instead of one unary ``ModelInfer`` call per window; requests are
``ModelInferRequest`` protobufs built directly, the window's samples as
``raw_input_contents``, and the logits are read as a numpy view of ``raw_output_contents``.
Profiled on the fixture model (issue 20), tritonclient's unary path spent most of the hop's
Python time in grpc aio's per-call machinery and in tritonclient's request and result objects;
a message on an open stream costs a write and a read.

Answers are matched to requests by their ``id``. A failure of the stream itself (Triton gone,
connection reset) fails every request in flight with its gRPC status (``UNAVAILABLE`` in the
cases that matter: the backend retries those) and the next request opens a new stream. An
error Triton reports for one request (``error_message``) fails that request only.

Health probes are the unary ``ServerReady`` / ``ModelReady`` calls on the same channel.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import grpc  # type: ignore[import-untyped]
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from streamasr.server.arrays import Logits
from streamasr.server.inference.triton_contract import WIRE_DATA_TYPE

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 2**31 - 1
"""gRPC message limit both ways (tritonclient's own default): an offline window can be long."""
CHANNEL_ARGS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
"""gRPC reconnects within a second once the pool is back (its default backoff grows to 120 s)."""


def status_error(message: str, code: grpc.StatusCode | None) -> InferenceServerException:
    """tritonclient's exception with the status as tritonclient words it (``StatusCode.X``)."""
    return InferenceServerException(message, status=str(code) if code is not None else None)


class GrpcTriton:
    """Triton's gRPC service on ``address`` (``HOST:PORT``), made on the loop that uses it."""

    def __init__(self, address: str, input_name: str, output_name: str) -> None:
        self._channel = grpc.aio.insecure_channel(address, options=CHANNEL_ARGS)
        self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        self._input = input_name
        self._output = output_name
        self._ids = itertools.count()
        self._pending: dict[str, asyncio.Future[Logits]] = {}
        self._call: Any = None
        """The open ``ModelStreamInfer`` call, or None."""
        self._reader: asyncio.Task[None] | None = None
        self._write = asyncio.Lock()

    async def infer(self, model_name: str, batch: Logits, *, timeout: float) -> Logits:
        """The logits of ``batch`` (``[windows, ...]``, FP32), ``[windows, frames, V]``.
        ``timeout`` bounds the wait (the stream itself has none)."""
        request = service_pb2.ModelInferRequest(
            model_name=model_name,
            id=str(next(self._ids)),
            inputs=[
                service_pb2.ModelInferRequest.InferInputTensor(
                    name=self._input, datatype=WIRE_DATA_TYPE, shape=batch.shape
                )
            ],
            outputs=[service_pb2.ModelInferRequest.InferRequestedOutputTensor(name=self._output)],
            raw_input_contents=[np.ascontiguousarray(batch, dtype=np.float32).tobytes()],
        )
        answer: asyncio.Future[Logits] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = answer
        try:
            await self._send(request)
            return await asyncio.wait_for(answer, timeout)
        finally:
            self._pending.pop(request.id, None)

    async def _send(self, request: service_pb2.ModelInferRequest) -> None:
        async with self._write:
            call = self._call
            if call is None:
                call = self._call = self._stub.ModelStreamInfer()
                self._reader = asyncio.create_task(self._read(call))
            try:
                await call.write(request)
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
                code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
                if self._call is call:
                    self._call = None
                raise status_error(f"stream write failed: {exc}", code) from None

    async def _read(self, call: Any) -> None:
        """Route every answer of ``call`` to its request; when the stream ends, fail the rest."""
        error: InferenceServerException
        try:
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    error = status_error("Triton closed the stream", grpc.StatusCode.UNAVAILABLE)
                    break
                self._answer(response)
        except grpc.aio.AioRpcError as exc:
            error = status_error(exc.details() or str(exc.code()), exc.code())
        except asyncio.CancelledError:
            error = status_error("the client closed", grpc.StatusCode.CANCELLED)
        if self._call is call:
            self._call = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)

    def _answer(self, response: service_pb2.ModelStreamInferResponse) -> None:
        answer = response.infer_response
        future = self._pending.get(answer.id)
        if future is None or future.done():
            return  # its request timed out already
        if response.error_message:
            future.set_exception(InferenceServerException(response.error_message))
            return
        try:
            future.set_result(self._logits(answer))
        except InferenceServerException as exc:
            future.set_exception(exc)

    def _logits(self, answer: service_pb2.ModelInferResponse) -> Logits:
        for index, output in enumerate(answer.outputs):
            if output.name == self._output and index < len(answer.raw_output_contents):
                data = np.frombuffer(answer.raw_output_contents[index], dtype=np.float32)
                try:
                    return data.reshape(tuple(output.shape))
                except ValueError:
                    break
        shapes = {o.name: list(o.shape) for o in answer.outputs}
        raise InferenceServerException(f"no FP32 {self._output} in the answer ({shapes})")

    async def is_server_ready(self, *, client_timeout: float) -> bool:
        try:
            reply = await self._stub.ServerReady(
                service_pb2.ServerReadyRequest(), timeout=client_timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise status_error(exc.details() or str(exc.code()), exc.code()) from None
        return bool(reply.ready)

    async def is_model_ready(self, model_name: str, *, client_timeout: float) -> bool:
        try:
            reply = await self._stub.ModelReady(
                service_pb2.ModelReadyRequest(name=model_name), timeout=client_timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise status_error(exc.details() or str(exc.code()), exc.code()) from None
        return bool(reply.ready)

    async def close(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._channel.close()
