#!/usr/bin/env python3
"""Exports a brainmri model (weights exported from C++ as MODEL.safetensors + MODEL.json) to ONNX.

    python3 tools/export_onnx.py MODEL.safetensors [--json MODEL.json] --output model.onnx [--opset 17]

Needs torch and safetensors (python3 -m pip install safetensors). The graph takes ``images``,
float32 [N, C, H, W] in [0, 1] as the dataset stores them, and returns ``logits`` [N, num_classes];
the batch axis is dynamic, C, H and W are the training data's. The model's own input adaptation
(MobileNetV2's RGB replication and [-1, 1] scaling) is part of the graph. When the onnx package is
installed, the JSON metadata (class names, preprocessing) is also stored in the file's
metadata_props under "brainmri.metadata".

export(module, metadata, output_path, opset) is the reusable part (tests/export/check_python_twin.py).
"""
import argparse
import json
import os
import pathlib
import sys
import warnings

import torch

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "python"))

import brainmri_models  # noqa: E402  (found through the sys.path entry above)

DEFAULT_OPSET = 17


def export(module, metadata, output_path, opset=DEFAULT_OPSET):
    """Writes `module` (a twin from brainmri_models, any mode: it is exported in eval mode) as ONNX
    to output_path, through a temporary file so that a failed export leaves no partial model."""
    options = module.options
    # Batch 2, not 1: a size-1 example invites exporters to specialize the batch axis.
    example = torch.rand(2, options["input_channels"], options["image_size"], options["image_size"])
    output_path = pathlib.Path(output_path)
    temporary = output_path.with_name(output_path.name + ".tmp")
    was_training = module.training
    module.eval()
    try:
        with warnings.catch_warnings():
            # The classic (TorchScript-based) exporter, deliberately: since torch 2.9 the default
            # dynamo exporter needs the onnxscript package, which a plain torch install lacks, and
            # these models have no data-dependent control flow that would need it.
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*legacy TorchScript-based ONNX export.*")
            # The tracer warns that the channel test (grayscale -> RGB) and the Keras padding's
            # even/odd test become constants. That is intended: only the batch axis is dynamic,
            # channels and sides are fixed by the training data.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            # F.pad's ONNX lowering slices with step -1, which constant folding skips; harmless.
            warnings.filterwarnings("ignore", category=UserWarning, message=".*Only steps=1 can be constant folded.*")
            torch.onnx.export(
                module, (example,), str(temporary), dynamo=False, opset_version=opset,
                input_names=["images"], output_names=["logits"],
                dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
        _attach_metadata(temporary, metadata)
        os.replace(temporary, output_path)
    finally:
        module.train(was_training)
        if temporary.exists():
            temporary.unlink()


def _attach_metadata(path, metadata):
    # Class names travel with the graph so that a consumer can label outputs without the JSON; the
    # onnx package is optional for exporting, so without it the file is simply left as written.
    try:
        import onnx
    except ImportError:
        return
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key = "brainmri.metadata"
    entry.value = json.dumps(metadata, sort_keys=True)
    onnx.save(model, str(path))


def main(argv=None):
    parser = argparse.ArgumentParser(description="Export a brainmri model to ONNX.")
    parser.add_argument("weights", help="MODEL.safetensors exported from C++")
    parser.add_argument("--json", help="its metadata (default: the weights' path with suffix .json)")
    parser.add_argument("--output", required=True, help="the ONNX file to write")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    args = parser.parse_args(argv)
    for path in (args.weights, args.json or str(pathlib.Path(args.weights).with_suffix(".json"))):
        if not os.path.isfile(path):
            parser.error(f"no such file: {path}")
    module, metadata = brainmri_models.load(args.weights, args.json)
    export(module, metadata, args.output, args.opset)
    print(f"wrote {args.output} ({metadata['architecture']}, opset {args.opset})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
