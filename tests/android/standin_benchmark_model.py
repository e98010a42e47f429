"""STAND-IN for TFLite's benchmark_model: the only fake in the Android tests.

The real binary is an Android/ARM (or x86-64) executable that cannot be obtained or run
here. This script is registered with `harness tools add` in its place and run by
`harness serve-device` exactly where the binary would be. For timing it replays a
recorded REAL benchmark_model output (tests/fixtures/benchmark_model/) chosen by the
flags it receives; for --output_filepath it runs the model for real with the host's
TFLite runtime (ai-edge-litert) on the --input_layer_value_files data, so accuracy is
computed from genuine outputs. Every invocation's argv and CPU affinity is appended to
$ADBD_ROOT/standin-calls.jsonl for the tests to inspect.

The test writes a copy with a shebang naming its interpreter and FIXTURES set.
"""

import json
import os
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent  # replaced in the copy the test writes

RECORDINGS = {
    "cpu": "01_tf42507_cpu_op_profiling_peak_memory.txt",
    "xnnpack": "02_xnnpack999_rpi_xnnpack_memory_delta.txt",
    "gpu": "06_tf43541_gpu_fully_delegated.txt",
    "nnapi": "10_tf56301_nnapi_partial_logcat.txt",
}


def main(argv: list[str]) -> int:
    flags = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    _log(argv)
    if "--help" in argv:
        print("usage: benchmark_model --graph=model.tflite [--num_threads=N] ... (stand-in)")
        return 0
    if not Path(flags.get("graph", "")).is_file():
        print(f"ERROR: Could not open '{flags.get('graph')}'.", file=sys.stderr)
        return 1
    if flags.get("use_gpu") == "true":
        delegate = "gpu"
    elif flags.get("use_nnapi") == "true":
        delegate = "nnapi"
        if flags.get("require_full_delegation") == "true":
            print("Disallowed CPU fallback detected.", file=sys.stderr)
            print("Benchmarking failed.", file=sys.stderr)
            return 1
    elif flags.get("use_xnnpack") == "true":
        delegate = "xnnpack"
    else:
        delegate = "cpu"
    text = (FIXTURES / RECORDINGS[delegate]).read_text().split("\n", 1)[1]
    sys.stderr.write(text)  # the tool logs to stderr
    if flags.get("output_filepath"):
        _write_outputs(flags)
    return 0


def _write_outputs(flags: dict) -> None:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=flags["graph"])
    inp = interp.get_input_details()[0]
    name, _, path = flags["input_layer_value_files"].replace("::", "\0").rpartition(":")
    assert name.replace("\0", ":") == inp["name"], (name, inp["name"])
    shape = inp["shape"]
    if flags.get("input_layer_shape"):
        shape = [int(d) for d in flags["input_layer_shape"].split(",")]
        interp.resize_tensor_input(inp["index"], shape)
    interp.allocate_tensors()
    data = np.fromfile(path, dtype=inp["dtype"]).reshape(shape)
    interp.set_tensor(inp["index"], data)
    interp.invoke()
    with open(flags["output_filepath"], "wb") as f:
        for out in interp.get_output_details():
            f.write(np.ascontiguousarray(interp.get_tensor(out["index"])).tobytes())


def _log(argv: list[str]) -> None:
    root = os.environ.get("ADBD_ROOT")
    if root:
        with open(Path(root) / "standin-calls.jsonl", "a") as f:
            cpus = sorted(os.sched_getaffinity(0))
            f.write(json.dumps({"argv": argv, "cpus": cpus}) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
