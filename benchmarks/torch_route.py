"""The PyTorch route, measured: what torch costs to install, and torch.onnx.export ->
`harness convert model.onnx` against Google's litert-torch on the same module.

harness does not take PyTorch sources itself (no `[torch]` extra): `litert-torch`
brings torch with its CUDA wheels, jax and a second AI Edge Quantizer, and would
downgrade packages of harness's own venv (see the README). This script measures that
cost in a venv of its own and checks the route the README gives instead:

  1. install   - `pip install litert-torch onnx` into --torch-venv (skipped when it
                 exists): wall time, and the venv's size on disk;
  2. export    - a small CNN (nn.Module, NCHW, random weights) exported with
                 torch.onnx.export (the TorchScript exporter: the default dynamo one
                 needs onnxscript as well), and converted directly by litert-torch;
  3. convert   - `harness convert model.onnx` into every variant (this repo's venv);
  4. agreement - the fp32 variant of the ONNX route and litert-torch's .tflite, both run
                 by ai-edge-litert on the same inputs, against torch's own outputs.

Prints; asserts nothing. Usage:
    python benchmarks/torch_route.py [--torch-venv build/torch-venv] [--work build/torch-route]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HARNESS = Path(sys.executable).with_name("harness")

EXPORT = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np, torch

    out = sys.argv[1]
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(1, 16, 3, padding=1)
            self.c2 = torch.nn.Conv2d(16, 32, 3, padding=1)
            self.fc = torch.nn.Linear(32 * 4 * 4, 10)

        def forward(self, x):
            x = torch.max_pool2d(torch.relu(self.c1(x)), 2)
            x = torch.max_pool2d(torch.relu(self.c2(x)), 2)
            return torch.softmax(self.fc(x.flatten(1)), -1)

    model = Net().eval()
    x = torch.rand(1, 1, 16, 16)
    t0 = time.perf_counter()
    torch.onnx.export(model, (x,), f"{out}/model.onnx", input_names=["x"],
                      output_names=["probs"], dynamic_axes={"x": {0: "N"}}, dynamo=False)
    t1 = time.perf_counter()
    import litert_torch
    t2 = time.perf_counter()
    litert_torch.convert(model, (x,)).export(f"{out}/litert_torch.tflite")
    t3 = time.perf_counter()
    probe = torch.rand(64, 1, 16, 16)
    with torch.no_grad():
        ref = model(probe).numpy()
    np.savez(f"{out}/probe.npz", x=probe.numpy(), ref=ref)
    np.savez(f"{out}/calibration.npz", x=torch.rand(64, 1, 16, 16).numpy())
    print(json.dumps({"onnx_export_s": t1 - t0, "litert_torch_import_s": t2 - t1,
                      "litert_torch_convert_s": t3 - t2, "torch": torch.__version__,
                      "litert_torch": litert_torch.__version__
                      if hasattr(litert_torch, "__version__") else "?"}))
    """
)


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def install(venv: Path) -> dict:
    """Create the torch venv; wall time and size (None when it was already there)."""
    if venv_python(venv).exists():
        return {"install_s": None, "size_gb": du_gb(venv)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv_python(venv)), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "litert-torch", "onnx"], check=True)
    return {"install_s": time.perf_counter() - t0, "size_gb": du_gb(venv)}


def du_gb(path: Path) -> float:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 1e9


def run_tflite(path: Path, x: np.ndarray) -> np.ndarray:
    """Outputs of a float .tflite, one sample at a time (each input as the model has it)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    outs = []
    for sample in x:
        interp.set_tensor(i["index"], sample[None].astype(np.float32))
        interp.invoke()
        outs.append(interp.get_tensor(o["index"])[0])
    return np.asarray(outs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torch-venv", type=Path, default=ROOT / "build" / "torch-venv")
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "torch-route")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)

    cost = install(args.torch_venv)
    size = f"{cost['size_gb']:.1f} GB on disk"
    took = "was there" if cost["install_s"] is None else f"installed in {cost['install_s']:.0f} s"
    print(f"torch venv {args.torch_venv}: {size}, {took}")
    pkgs = subprocess.run(
        [str(venv_python(args.torch_venv)), "-m", "pip", "list", "--format", "json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    names = {p["name"].lower(): p["version"] for p in json.loads(pkgs)}
    cuda = sorted(n for n in names if n.startswith("nvidia-"))
    print(f"  {len(names)} packages, {len(cuda)} of them nvidia-* (CUDA) wheels; torch "
          f"{names.get('torch')}, jax {names.get('jax', '-')}, ai-edge-quantizer "
          f"{names.get('ai-edge-quantizer', '-')}")  # fmt: skip

    export = subprocess.run(
        [str(venv_python(args.torch_venv)), "-c", EXPORT, str(args.work)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    t = json.loads(export.stdout.strip().splitlines()[-1])
    lt = f"import {t['litert_torch_import_s']:.1f} s, convert {t['litert_torch_convert_s']:.1f} s"
    print(f"torch.onnx.export {t['onnx_export_s']:.2f} s; litert-torch: {lt}")

    out = args.work / "variants"
    t0 = time.perf_counter()
    subprocess.run(
        [str(HARNESS), "convert", str(args.work / "model.onnx"), "-o", str(out), "--variants",
         "fp32,fp16,dynamic,int8,int16x8,w8,w4", "--calibration",
         str(args.work / "calibration.npz"), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    print(f"harness convert model.onnx (7 variants, cold cache): {time.perf_counter() - t0:.1f} s")
    manifest = json.loads((out / "manifest.json").read_text())
    for v in manifest["variants"]:
        status = v.get("status", "ok")
        print(f"  {v['name']:8} {status:11} {v.get('size_bytes', 0):>7} bytes")

    probe = np.load(args.work / "probe.npz")
    x, ref = probe["x"], probe["ref"]
    onnx_route = run_tflite(out / "fp32.tflite", x)
    direct = run_tflite(args.work / "litert_torch.tflite", x)
    for name, got in (("torch.onnx.export -> harness fp32", onnx_route),
                      ("litert-torch", direct)):  # fmt: skip
        agree = float(np.mean(got.argmax(-1) == ref.argmax(-1)))
        print(f"{name:34} max |Δ| vs torch {np.abs(got - ref).max():.2e}, argmax agreement "
              f"{agree:.3f} over {len(x)} inputs")  # fmt: skip
    print(f"the two routes against each other: max |Δ| {np.abs(onnx_route - direct).max():.2e}")


if __name__ == "__main__":
    main()
