"""Open Inference Protocol (KServe V2) request and response tensors, parsed with clear errors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

DATATYPES = {
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
}  # fmt: skip


class ProtocolError(ValueError):
    """A malformed request: answered with HTTP 400 and ``{"error": message}``."""


@dataclass
class Tensor:
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]  # flat, row-major
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "shape": self.shape,
            "datatype": self.datatype,
            "data": self.data,
        }
        if self.parameters:
            out["parameters"] = self.parameters
        return out

    def rows(self) -> list[Any]:
        """The data as rows along the first dimension."""
        if len(self.shape) <= 1:
            return list(self.data)
        width = math.prod(self.shape[1:])
        return [self.data[i * width : (i + 1) * width] for i in range(self.shape[0])]


@dataclass
class InferenceRequest:
    inputs: list[Tensor]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    # what a runtime parsed while checking the request, reused when it answers (never sent)
    parsed: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def input(self, name: str) -> Tensor:
        for t in self.inputs:
            if t.name == name:
                return t
        names = ", ".join(t.name for t in self.inputs) or "none"
        raise ProtocolError(f"missing input tensor {name!r} (got {names})")


@dataclass
class InferenceResponse:
    model_name: str
    model_version: str
    outputs: list[Tensor]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    # per text, what the runtime tells a decision log beyond the outputs (never sent)
    log: list[dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "outputs": [t.to_json() for t in self.outputs],
        }
        if self.id is not None:
            out["id"] = self.id
        if self.parameters:
            out["parameters"] = self.parameters
        return out


def _flatten(data: Any) -> list[Any]:
    if isinstance(data, list):
        out: list[Any] = []
        for d in data:
            out.extend(_flatten(d)) if isinstance(d, list) else out.append(d)
        return out
    return [data]


def _check_value(v: Any, datatype: str, where: str) -> Any:
    if datatype == "BYTES":
        if not isinstance(v, str):
            raise ProtocolError(f"{where}: BYTES elements must be strings")
        return v
    if datatype == "BOOL":
        if not isinstance(v, bool):
            raise ProtocolError(f"{where}: BOOL elements must be true or false")
        return v
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ProtocolError(f"{where}: {datatype} elements must be numbers")
    if datatype.startswith(("INT", "UINT")) and float(v) != int(v):
        raise ProtocolError(f"{where}: {datatype} elements must be integers")
    if datatype.startswith("UINT") and v < 0:
        raise ProtocolError(f"{where}: {datatype} elements must not be negative")
    return v


def parse_tensor(obj: Any, where: str) -> Tensor:
    if not isinstance(obj, dict):
        raise ProtocolError(f"{where}: a tensor is an object with name, shape, datatype, data")
    for key in ("name", "shape", "datatype", "data"):
        if key not in obj:
            raise ProtocolError(f"{where}: missing {key!r}")
    name, shape, datatype = obj["name"], obj["shape"], obj["datatype"]
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"{where}.name: a non-empty string")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ProtocolError(f"{where}.shape: a list of non-negative integers")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise ProtocolError(f"{where}.datatype: {datatype!r} is not one of {sorted(DATATYPES)}")
    data = _flatten(obj["data"])
    if len(data) != math.prod(shape):
        raise ProtocolError(
            f"{where}: shape {shape} holds {math.prod(shape)} elements, data has {len(data)}"
        )
    data = [_check_value(v, datatype, f"{where}.data[{i}]") for i, v in enumerate(data)]
    params = obj.get("parameters") or {}
    if not isinstance(params, dict):
        raise ProtocolError(f"{where}.parameters: an object")
    return Tensor(name, shape, datatype, data, params)


def parse_request(body: Any) -> InferenceRequest:
    """A V2 inference request from its JSON body; ProtocolError names what is wrong."""
    if not isinstance(body, dict):
        raise ProtocolError("the request body must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("'inputs' must be a non-empty list of tensors")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise ProtocolError("'parameters' must be an object")
    rid = body.get("id")
    return InferenceRequest(
        inputs=[parse_tensor(t, f"inputs[{i}]") for i, t in enumerate(inputs)],
        id=str(rid) if rid is not None else None,
        parameters=params,
    )


def split_rows(
    request: InferenceRequest, bounds: list[tuple[int, int]], per_row: tuple[str, ...] = ()
) -> list[InferenceRequest]:
    """``request`` cut into parts, rows ``[start, stop)`` of every input each.

    ``per_row`` names the parameters that hold one item per row (``contexts``):
    they are cut alike; every other parameter goes to each part unchanged. What
    was parsed per row (``parsed`` lists as long as the rows) is cut too.
    """
    n = request.inputs[0].shape[0] if request.inputs and request.inputs[0].shape else 0
    parts = []
    for start, stop in bounds:
        inputs = []
        for t in request.inputs:
            rows = t.rows()[start:stop]
            flat = [v for r in rows for v in r] if len(t.shape) > 1 else rows
            inputs.append(Tensor(t.name, [stop - start, *t.shape[1:]], t.datatype, flat,
                                 t.parameters))  # fmt: skip
        params = {
            k: (v[start:stop] if k in per_row and isinstance(v, list) else v)
            for k, v in request.parameters.items()
        }
        parsed = {
            k: (v[start:stop] if isinstance(v, list) and len(v) == n else v)
            for k, v in request.parsed.items()
        }
        parts.append(InferenceRequest(inputs, request.id, params, parsed))
    return parts


def join_rows(
    request: InferenceRequest, parts: list[InferenceResponse], per_row: tuple[str, ...] = ()
) -> InferenceResponse:
    """The answer to ``request`` from its parts' answers (:func:`split_rows`), in order.

    An output present in every part is stacked along its first dimension; one
    missing from any part is left out (as one request would have left it out).
    ``per_row`` parameters and the log are concatenated; others come from the first part.
    """
    first = parts[0]
    names = [t.name for t in first.outputs]
    outputs = []
    for name in names:
        tensors = [next((t for t in p.outputs if t.name == name), None) for p in parts]
        if any(t is None for t in tensors):
            continue
        ts = [t for t in tensors if t is not None]
        rows = sum(t.shape[0] if t.shape else 1 for t in ts)
        data = [v for t in ts for v in t.data]
        outputs.append(Tensor(name, [rows, *ts[0].shape[1:]], ts[0].datatype, data,
                              ts[0].parameters))  # fmt: skip
    params = dict(first.parameters)
    for key in per_row:
        if all(isinstance(p.parameters.get(key), list) for p in parts):
            params[key] = [v for p in parts for v in p.parameters[key]]
    log = [r for p in parts for r in p.log] if all(p.log is not None for p in parts) else None
    return InferenceResponse(
        first.model_name, first.model_version, outputs, id=request.id, parameters=params, log=log
    )
