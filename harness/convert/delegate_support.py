"""Static delegate compatibility of a model's ops, written into the manifest at convert time.

Data, not inference: the tables below transcribe the delegates' own op support.
  GPU    tensorflow/lite/delegates/gpu/common/model_builder.cc, NewOperationParser(): the
         builtin ops with a parser (everything else is "Operation is not supported").
         The delegate also requires float32/float16 activations (int8/uint8 only with its
         quantized-model support), and checks op parameters at run time, so "supported"
         here means "has a parser", not "will be delegated".
  NNAPI  tensorflow/lite/delegates/nnapi/nnapi_delegate.cc, NNAPIDelegateKernel::Validate():
         the minimum Android API level per op (NNAPI 1.0 = 27, 1.1 = 28, 1.2 = 29,
         1.3 = 30), with the type/parameter conditions that raise it noted.
TensorFlow's Analyzer(gpu_compatibility=True) was seen to accept ops the GPU delegate
rejects, so it is not used; the real verdict is the delegation status benchmark_model
reports per cell (see harness.runners.benchmark_model.parse).
"""

from __future__ import annotations

from harness.convert.tflite_info import TfliteInfo

GPU_SOURCE = "tensorflow/lite/delegates/gpu/common/model_builder.cc (NewOperationParser)"
NNAPI_SOURCE = "tensorflow/lite/delegates/nnapi/nnapi_delegate.cc (NNAPIDelegateKernel::Validate)"


def _ops(text: str) -> list[str]:
    """Op names from a whitespace-separated block (keeps the tables readable)."""
    return text.split()


GPU_SUPPORTED = frozenset(
    _ops(
        """
        ABS ADD AVERAGE_POOL_2D BATCH_MATMUL CONCATENATION CONV_2D COS
        DEPTHWISE_CONV_2D DIV ELU EXP FULLY_CONNECTED HARD_SWISH LOGISTIC LOG LSTM
        MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG PACK PAD POW REDUCE_MAX
        REDUCE_MIN REDUCE_PROD RELU RELU6 LEAKY_RELU PRELU RESHAPE RESIZE_BILINEAR
        RESIZE_NEAREST_NEIGHBOR RSQRT SIN SLICE SOFTMAX SPACE_TO_DEPTH SPLIT_V SQRT
        SQUARE SQUARED_DIFFERENCE STRIDED_SLICE SUB SUM TANH TRANSPOSE TRANSPOSE_CONV
    """
    )
)
GPU_QUANTIZED_ONLY = frozenset({"QUANTIZE", "DEQUANTIZE"})  # parsed only with quantized support

_NN10, _NN11, _NN12, _NN13 = 27, 28, 29, 30
NNAPI_MIN_API: dict[str, tuple[int, str]] = {
    **{
        op: (_NN10, "")
        for op in _ops(
            """
        AVERAGE_POOL_2D MAX_POOL_2D L2_POOL_2D DEPTHWISE_CONV_2D HARD_SWISH SOFTMAX
        RESHAPE RESIZE_BILINEAR L2_NORMALIZATION LOCAL_RESPONSE_NORMALIZATION
        LSH_PROJECTION CONCATENATION FLOOR RELU RELU_N1_TO_1 RELU6 LOGISTIC TANH RNN
        SPACE_TO_DEPTH DEPTH_TO_SPACE EMBEDDING_LOOKUP HASHTABLE_LOOKUP
    """
        )
    },
    "ADD": (_NN10, "int32 inputs need API 30"),
    "MUL": (_NN10, "int32 inputs need API 30"),
    "CONV_2D": (_NN10, "hybrid, per-channel quantized or dilated convolution needs API 29"),
    "FULLY_CONNECTED": (_NN10, "hybrid needs API 29; keep_num_dims needs API 30"),
    "DEQUANTIZE": (_NN10, "int8 input needs API 29"),
    **{
        op: (_NN11, "")
        for op in _ops(
            """
        SQUEEZE DIV SPACE_TO_BATCH_ND BATCH_TO_SPACE_ND STRIDED_SLICE TRANSPOSE SVDF
        LSTM MEAN SQUARED_DIFFERENCE
    """
        )
    },
    "SUB": (_NN11, "quantized inputs need API 29, int32 API 30"),
    "PAD": (_NN11, "non-float32 input or an explicit padding value needs API 29"),
    "PADV2": (_NN11, "an explicit padding value needs API 29"),
    **{
        op: (_NN12, "")
        for op in _ops(
            """
        ARG_MAX ARG_MIN RESIZE_NEAREST_NEIGHBOR UNIDIRECTIONAL_SEQUENCE_LSTM
        UNIDIRECTIONAL_SEQUENCE_RNN ABS EXP LOG RSQRT POW SLICE SIN TRANSPOSE_CONV
        SQRT MAXIMUM MINIMUM CAST LEAKY_RELU PRELU TILE LOGICAL_OR LOGICAL_AND
        LOGICAL_NOT LESS LESS_EQUAL GREATER GREATER_EQUAL EQUAL NOT_EQUAL NEG TOPK_V2
        SELECT GATHER BIDIRECTIONAL_SEQUENCE_LSTM EXPAND_DIMS SPLIT LOG_SOFTMAX
        QUANTIZE REDUCE_ANY REDUCE_MIN REDUCE_MAX REDUCE_PROD SUM
    """
        )
    },
    **{
        op: (_NN13, "")
        for op in _ops(
            """
        SPLIT_V ELU FILL PACK DENSIFY
    """
        )
    },
}


def compatibility_report(info: TfliteInfo) -> dict:
    """{"gpu": …, "nnapi": …} for the ops of one converted variant (manifest data)."""
    return {"gpu": gpu_report(info), "nnapi": nnapi_report(info)}


def gpu_report(info: TfliteInfo) -> dict:
    unsupported, notes = [], []
    quantized_io = [t.name for t in (*info.inputs, *info.outputs) if t.dtype in ("int8", "uint8")]
    for op in info.ops:
        if op.custom:
            unsupported.append(_row(op, "custom op: the GPU delegate parses only a few"))
        elif op.name in GPU_QUANTIZED_ONLY:
            notes.append(f"{op.name}: taken only with the delegate's quantized-model support")
        elif op.name not in GPU_SUPPORTED:
            unsupported.append(_row(op, "Operation is not supported."))
    if quantized_io:
        notes.append(
            "int8/uint8 model inputs/outputs: the GPU delegate takes them only with its "
            "quantized-model support"
        )
    return {
        "source": GPU_SOURCE,
        "unsupported_ops": unsupported,
        "all_ops_supported": not unsupported,
        "notes": notes,
    }


def nnapi_report(info: TfliteInfo) -> dict:
    ops, unsupported = [], []
    for op in info.ops:
        entry = None if op.custom else NNAPI_MIN_API.get(op.name)
        if entry is None:
            unsupported.append(_row(op, "not mapped by the NNAPI delegate"))
            continue
        api, note = entry
        ops.append({"op": op.name, "count": op.count, "min_api_level": api, "note": note or None})
    levels = [o["min_api_level"] for o in ops]
    return {
        "source": NNAPI_SOURCE,
        "ops": ops,
        "unsupported_ops": unsupported,
        "min_api_level": max(levels) if levels and not unsupported else None,
    }


def _row(op, reason: str) -> dict:
    return {"op": op.name, "count": op.count, "reason": reason}
