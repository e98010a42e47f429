"""`harness convert`."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import echo_json, json_option


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory for the .tflite variants and manifest.json.",
)
@click.option(
    "--variants",
    default="fp32,fp16,dynamic,int8",
    show_default=True,
    help="Comma-separated: fp32, fp16, dynamic, int8, int16x8, w8, w4.",
)
@click.option(
    "--calibration",
    type=click.Path(path_type=Path),
    help=".npz with 'x': representative inputs for int8 and int16x8.",
)
@click.option("--int8-io", is_flag=True, help="int8 variant takes and returns int8 tensors.")
@json_option("the manifest")
def convert(source, out_dir, variants, calibration, int8_io, as_json) -> None:
    """Convert a Keras/SavedModel/ONNX/.tflite SOURCE into TFLite variants."""
    from harness.convert.pipeline import ConvertSpec, convert_model, manifest_dict
    from harness.convert.recipes import parse_variants
    from harness.report.console import render_convert

    spec = ConvertSpec(source, out_dir, parse_variants(variants), calibration, int8_io)
    say = (lambda _: None) if as_json else (lambda msg: click.echo(f"  {msg}", err=True))
    result = convert_model(spec, progress=say)
    if as_json:
        echo_json(manifest_dict(result))
    else:
        render_convert(result)
