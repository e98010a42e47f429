"""Running the real `harness` console script and checking its one-line user errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

_SCRIPT = Path(sys.executable).with_name("harness")
# convert reports progress on stderr ("  fp32: converting"); everything else is an error line
_PROGRESS = re.compile(r"^  [\w-]+: (converting|cache hit)$")


def harness_argv(*args) -> list[str]:
    """argv for the installed `harness` console script (or its entry point)."""
    cmd = (
        [str(_SCRIPT)]
        if _SCRIPT.exists()
        else [sys.executable, "-c", "from harness.cli import main; main()"]
    )
    return cmd + [str(a) for a in args]


def harness(*args, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `harness ARGS...` in a subprocess, capturing text output."""
    return subprocess.run(
        harness_argv(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def cell_shapes(doc: dict) -> list[tuple]:
    """(variant, delegate, threads, status) of each cell of a run document, sorted."""
    return sorted((c["variant"], c["delegate"], c["threads"], c["status"]) for c in doc["cells"])


def assert_user_error(proc: subprocess.CompletedProcess, *words: str, codes=(2,)) -> str:
    """Exit 2, nothing on stdout, one 'harness: error:' line on stderr, no traceback."""
    assert proc.returncode in codes, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout == ""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not _PROGRESS.match(ln)]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("harness: error: "), proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def assert_run_exit(proc: subprocess.CompletedProcess, ok_codes=(0,)) -> dict:
    """The --json document of a `harness run`, checking its exit: one of ok_codes when
    some cell measured, else 4 with one 'measured nothing' line (rows still printed)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    doc = json.loads(proc.stdout)
    if any(c["status"] == "ok" for c in doc["cells"]):
        assert proc.returncode in ok_codes, (proc.returncode, proc.stderr)
    else:
        assert proc.returncode == 4, (proc.returncode, proc.stderr)
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("harness: error: run ") and "measured nothing" in last, last
    return doc


def run_tflite(path: Path, x: np.ndarray) -> np.ndarray:
    """Reference inference on the host (float in, float out), one sample at a time."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    d_in = interp.get_input_details()[0]
    interp.resize_tensor_input(d_in["index"], [1, *x.shape[1:]])
    interp.allocate_tensors()
    d_out = interp.get_output_details()[0]
    out = []
    for sample in x:
        interp.set_tensor(d_in["index"], sample[None].astype(np.float32))
        interp.invoke()
        out.append(interp.get_tensor(d_out["index"]).reshape(-1).copy())
    return np.stack(out)


def with_custom_op(data: bytes, op_name: str = "HarnessTestOp") -> bytes:
    """Rewrite a model's last operator code into a custom op no runtime knows."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    code = model.operatorCodes[-1]
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = op_name
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
