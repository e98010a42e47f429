"""The Android runner: TensorFlow Lite's `benchmark_model` driven over ADB.

flags   delegate / threads / timing / memory -> the tool's command-line flags
parse   the tool's output (every known version and log format) -> figures
runner  run_cells-compatible: provision, pin, run, parse, accuracy, noise hazards
tools   `harness tools fetch|add|list`: the per-user cache of binaries per ABI
"""
