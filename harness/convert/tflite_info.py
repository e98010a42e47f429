"""Read a .tflite flatbuffer without running it: tensors, quantisation, op list.

Parsing the file (rather than building an interpreter) works for models the host
runtime could not run — custom ops, newer op versions — which is exactly when the
manifest has to say so.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

from harness.errors import HarnessError

_IDENTIFIER = b"TFL3"


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: shape with -1 for a dynamic dimension."""

    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    def to_dict(self) -> dict:
        return asdict(self) | {
            "shape": list(self.shape),
            "shape_signature": list(self.shape_signature),
        }

    @classmethod
    def from_dict(cls, d: dict) -> TensorSpec:
        return cls(
            **d | {"shape": tuple(d["shape"]), "shape_signature": tuple(d["shape_signature"])}
        )


@dataclass(frozen=True)
class OpSpec:
    """An operator code used by the model: builtin name + version, or a custom op."""

    name: str
    version: int
    custom: bool
    count: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TfliteInfo:
    """What the manifest records about one .tflite file."""

    sha256: str
    size_bytes: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    ops: tuple[OpSpec, ...] = field(default_factory=tuple)

    @property
    def custom_ops(self) -> list[str]:
        return [op.name for op in self.ops if op.custom]

    def to_dict(self) -> dict:
        return {
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "ops": [op.to_dict() for op in self.ops],
            "custom_ops": self.custom_ops,
        }

    @classmethod
    def from_dict(cls, d: dict) -> TfliteInfo:
        return cls(
            sha256=d["sha256"],
            size_bytes=d["size_bytes"],
            inputs=tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in d["outputs"]),
            ops=tuple(OpSpec(**op) for op in d["ops"]),
        )


def inspect_tflite(data: bytes, label: str = "model") -> TfliteInfo:
    """Parse a .tflite buffer; raise HarnessError naming `label` if it is not a model."""
    if len(data) < 8 or data[4:8] != _IDENTIFIER:
        raise HarnessError(f"{label}: not a TFLite model (missing the TFL3 file identifier)")
    try:
        return _parse(data)
    except HarnessError:
        raise
    except Exception as exc:  # a corrupt flatbuffer raises anything from struct to index errors
        raise HarnessError(f"{label}: corrupt TFLite model ({type(exc).__name__})") from exc


def _parse(data: bytes) -> TfliteInfo:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    if model.SubgraphsLength() == 0:
        raise HarnessError("model has no subgraph")
    graph = model.Subgraphs(0)
    builtin_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if k.isupper()}
    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if k.isupper()}

    counts = [0] * model.OperatorCodesLength()
    for i in range(model.SubgraphsLength()):
        sub = model.Subgraphs(i)
        for j in range(sub.OperatorsLength()):
            counts[sub.Operators(j).OpcodeIndex()] += 1

    ops = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        custom = builtin == schema.BuiltinOperator.CUSTOM
        name = (code.CustomCode() or b"").decode() if custom else builtin_names.get(builtin)
        ops.append(OpSpec(name or f"BUILTIN_{builtin}", code.Version(), custom, counts[i]))

    def tensor(index: int) -> TensorSpec:
        t = graph.Tensors(index)
        shape = tuple(int(x) for x in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        sig = (
            tuple(int(x) for x in t.ShapeSignatureAsNumpy()) if t.ShapeSignatureLength() else shape
        )
        q = t.Quantization()
        scale = zero = None
        if q is not None and q.ScaleLength() == 1:
            scale, zero = float(q.Scale(0)), int(q.ZeroPoint(0))
        return TensorSpec((t.Name() or b"").decode(), shape, sig, type_names[t.Type()], scale, zero)

    return TfliteInfo(
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        inputs=tuple(tensor(int(i)) for i in graph.InputsAsNumpy()),
        outputs=tuple(tensor(int(i)) for i in graph.OutputsAsNumpy()),
        ops=tuple(ops),
    )
