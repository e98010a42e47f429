"""The second Android runner: LiteRT's CompiledModel benchmark (`benchmark_litert_model`).

Google's litert-cli pushes this binary (as `benchmark_model`, from LiteRT's binaries
bucket) to run models on a phone's GPU (ML Drift) or NPU; harness uses it for `gpu`,
`gpu-f32` and `npu` cells when one is registered for the device's ABI
(`harness tools add|fetch --tool litert`), and TFLite's benchmark_model for the rest.

flags   delegate / threads / timing -> the binary's flags (and the NPU environment)
parse   its output: the `BENCHMARK RESULTS` block (ms), delegation, accelerator failures
runner  run_cells for a device: both binaries, one interleaved schedule of rounds
"""
