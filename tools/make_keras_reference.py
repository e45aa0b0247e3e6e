#!/usr/bin/env python3
"""Produces the Keras reference fixtures for the MobileNetV2 port (run once; outputs are committed).

Needs TensorFlow/Keras (tensorflow-cpu from PyPI, e.g. in a virtual environment):
    python3 -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu h5py pillow
    /tmp/tf/bin/python tools/make_keras_reference.py [--pretrained ../shared/pretrained/keras]

Writes to tests/fixtures/keras/:
- mobilenet_v2_0.35_random.h5: a Keras MobileNetV2 (alpha 0.35, no top) with seeded random weights,
  batch-norm statistics included, saved in the Keras 2 HDF5 weights layout (what
  keras.applications downloads). The C++ loader test and the equivalence test always have it.
- reference_features.h5: three fixed inputs (two 128x128, one 97x97 to exercise odd-size
  padding), each a [0,1] grayscale image [1, H, W, 1], and the "out_relu" features Keras computes
  for them (NHWC) with the random weights and, when present, with the real ImageNet weights of
  alpha 0.35 and 1.0 under --pretrained.
"""
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # plain float32 arithmetic, no reordering

import h5py
import keras
import numpy as np
from keras.src.legacy.saving import legacy_h5_format
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "keras")
SAMPLE = os.path.join(HERE, "..", "data", "sample", "Training", "pituitary")


def inputs():
    size = 128
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    pattern = 0.5 + 0.25 * np.sin(9 * x) * np.cos(5 * y) + 0.2 * x * y
    first = sorted(os.listdir(SAMPLE))[0]
    mri = Image.open(os.path.join(SAMPLE, first)).convert("L").resize((size, size), Image.BOX)
    odd = Image.open(os.path.join(SAMPLE, first)).convert("L").resize((97, 97), Image.BOX)
    as_input = lambda a: np.clip(np.asarray(a, np.float32), 0, 1)[None, :, :, None]
    return {"pattern": as_input(pattern), "mri": as_input(np.asarray(mri, np.float32) / 255.0),
            "odd": as_input(np.asarray(odd, np.float32) / 255.0)}


def backbone(alpha, side):
    return keras.applications.MobileNetV2(input_shape=(side, side, 3), alpha=alpha, include_top=False, weights=None)


def features(model, image):
    rgb = np.repeat(image, 3, axis=3) * 2.0 - 1.0  # what brainmri's MobileNetV2::adapt_input does
    return model(rgb, training=False).numpy()


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for weight in layer.weights:
            name, shape = weight.name, tuple(weight.shape)
            if "moving_variance" in weight.path or name == "moving_variance":
                values.append(rng.uniform(0.8, 1.2, shape))
            elif "moving_mean" in weight.path or name == "moving_mean":
                values.append(rng.normal(0, 0.1, shape))
            elif "gamma" in weight.path or name == "gamma":
                values.append(rng.uniform(0.8, 1.2, shape))
            elif "beta" in weight.path or name == "beta":
                values.append(rng.normal(0, 0.1, shape))
            else:  # kernels: variance-preserving scale keeps activations in range through 17 blocks
                fan_in = np.prod(shape[:-1]) if "depthwise" not in layer.name else np.prod(shape[:2])
                values.append(rng.normal(0, np.sqrt(2.0 / fan_in), shape))
        if values:
            layer.set_weights([v.astype(np.float32) for v in values])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pretrained", default=os.path.join(HERE, "..", "..", "shared", "pretrained", "keras"))
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    images = inputs()

    random_model = backbone(0.35, 128)
    randomize(random_model, seed=2026)
    weights_path = os.path.join(OUT, "mobilenet_v2_0.35_random.h5")
    with h5py.File(weights_path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, random_model)

    with h5py.File(os.path.join(OUT, "reference_features.h5"), "w") as out:
        out.attrs["keras_version"] = keras.__version__
        for name, image in images.items():
            out[f"inputs/{name}"] = image
        variants = {"random_0.35": weights_path}
        for alpha in ("0.35", "1.0"):
            real = os.path.join(args.pretrained, f"mobilenet_v2_{alpha}_no_top.h5")
            if os.path.exists(real):
                variants[f"imagenet_{alpha}"] = real
        for variant, path in variants.items():
            alpha = float(variant.split("_")[1])
            for name, image in images.items():
                model = backbone(alpha, image.shape[1])
                with h5py.File(path, "r") as f:
                    legacy_h5_format.load_weights_from_hdf5_group(f, model)
                out[f"features/{variant}/{name}"] = features(model, image).astype(np.float32)
                print(variant, name, out[f"features/{variant}/{name}"].shape)


if __name__ == "__main__":
    main()
