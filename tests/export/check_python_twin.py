#!/usr/bin/env python3
"""Checks that the Python twin (python/brainmri_models.py) reproduces the C++ model's logits.

    check_python_twin.py MODEL.safetensors MODEL.json REFERENCE.safetensors [--onnx]

REFERENCE holds `images` (float32 [N, C, H, W]) and the `logits` (float32 [N, K]) that the C++
model computed for them in eval mode. The twin loads MODEL strictly and must match to 1e-5
absolute; it runs on one CPU thread, and so should the C++ run that wrote REFERENCE (the
thread count changes the rounding). With --onnx the twin is also exported through tools/export_onnx.py and onnxruntime's
output must match to 1e-5 absolute + 1e-4 relative (ONNX Runtime fuses and reorders arithmetic).

Exit status: 0 pass, 1 mismatch (or weights the twin cannot load), 2 usage error,
77 (ctest's SKIP_RETURN_CODE) with --onnx when onnx or onnxruntime is not installed.
"""
import argparse
import os
import pathlib
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(REPO / "tools"))

TWIN_TOLERANCE = 1e-5
ONNX_ATOL = 1e-5
ONNX_RTOL = 1e-4
SKIP = 77


def usage_error(message):
    print(f"check_python_twin.py: {message}", file=sys.stderr)
    return 2


def main(argv=None):
    parser = argparse.ArgumentParser(description="Compare the Python twin's logits with C++ reference logits.")
    parser.add_argument("model", help="MODEL.safetensors exported from C++")
    parser.add_argument("metadata", help="MODEL.json")
    parser.add_argument("reference", help="REFERENCE.safetensors with tensors 'images' and 'logits'")
    parser.add_argument("--onnx", action="store_true", help="also export to ONNX and check onnxruntime's output")
    args = parser.parse_args(argv)  # exits 2 with a message on stderr for bad arguments
    for path in (args.model, args.metadata, args.reference):
        if not os.path.isfile(path):
            return usage_error(f"no such file: {path}")

    if args.onnx:
        # Checked before any work, so a machine without them skips quickly and says why.
        try:
            import onnx  # noqa: F401  (the exporter stores the metadata with it)
            import onnxruntime
        except ImportError as error:
            print(f"SKIPPED: onnxruntime is not installed (missing {error.name}; "
                  "python3 -m pip install onnx onnxruntime)")
            return SKIP

    import torch
    try:
        from safetensors.torch import load_file
    except ImportError:
        return usage_error("safetensors is not installed (python3 -m pip install safetensors)")
    import brainmri_models

    # Convolution reductions are split by thread, so the thread count moves MobileNetV2's logits by
    # ~1e-5 at 128x128 (measured: 1 vs 2 threads, alpha 1.0). One thread here, and one in the C++
    # run that wrote the reference (at::set_num_threads(1)), makes the two the same computation.
    torch.set_num_threads(1)

    reference = load_file(args.reference)
    missing = {"images", "logits"} - set(reference)
    if missing:
        return usage_error(f"{args.reference} lacks tensors {sorted(missing)}")
    images = reference["images"].float().contiguous()
    expected = reference["logits"].float()
    if images.dim() != 4 or expected.dim() != 2 or images.shape[0] != expected.shape[0]:
        return usage_error(f"reference shapes images {list(images.shape)} / logits {list(expected.shape)} "
                           "are not [N, C, H, W] / [N, K]")

    try:
        module, metadata = brainmri_models.load(args.model, args.metadata)
    except (ValueError, RuntimeError, KeyError) as error:
        # A strict-load failure is exactly what this check exists to catch: the twin's names or
        # shapes differ from the C++ module's.
        print(f"FAIL: cannot load {args.model} into the Python twin: {error}")
        return 1
    with torch.no_grad():
        logits = module(images)
    if logits.shape != expected.shape:
        print(f"FAIL: twin logits have shape {list(logits.shape)}, reference {list(expected.shape)}")
        return 1
    difference = (logits - expected).abs().max().item()
    passed = difference <= TWIN_TOLERANCE
    print(f"{metadata['architecture']}: max |twin - C++| = {difference:.3g} (tolerance {TWIN_TOLERANCE:g})"
          f" {'ok' if passed else 'FAIL'}")

    if args.onnx:
        import numpy as np
        import export_onnx

        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "model.onnx")
            export_onnx.export(module, metadata, path, export_onnx.DEFAULT_OPSET)
            session_options = onnxruntime.SessionOptions()
            session_options.intra_op_num_threads = 1  # light on shared CI machines; the model is small
            session = onnxruntime.InferenceSession(path, session_options, providers=["CPUExecutionProvider"])
            (onnx_logits,) = session.run(["logits"], {"images": images.numpy()})
        expected_np = expected.numpy()
        if onnx_logits.shape != expected_np.shape:
            print(f"FAIL: onnxruntime logits have shape {list(onnx_logits.shape)}, reference {list(expected_np.shape)}")
            return 1
        onnx_difference = float(np.abs(onnx_logits - expected_np).max())
        onnx_passed = bool(np.allclose(onnx_logits, expected_np, atol=ONNX_ATOL, rtol=ONNX_RTOL))
        print(f"{metadata['architecture']}: max |onnxruntime - C++| = {onnx_difference:.3g} "
              f"(atol {ONNX_ATOL:g} + rtol {ONNX_RTOL:g}) {'ok' if onnx_passed else 'FAIL'}")
        passed = passed and onnx_passed

    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
