#!/usr/bin/env python3
"""The original Keras pipelines of the paper's two models, for bench/train_step/epoch.sh: the
augmentation layers inside the model (flip, rotation 0.08, zoom 0.08, contrast 0.1), then either
the baseline CNN (3 x [Conv3x3 + ReLU + MaxPool], Flatten, Dropout 0.5, Dense 128, Dense 4) or the
frozen MobileNetV2 (keras.applications, grayscale replicated to RGB and scaled to [-1, 1],
GlobalAveragePooling, Dropout 0.5, Dense 128, Dense 4); Adam 1e-3, trained with model.fit on the
training images of one fold of a dataset packed by brainmri-prep (read with h5py: the same pixels
brainmri trains on). Prints one JSON line: the images/s of the timed epochs.

    reference_keras_epoch.py DATASET --model baseline_cnn|mobilenet_v2_frozen --fold 0 --batch 32
                             --threads 2 --epochs 1 [--warmup-epochs 1] [--weights NO_TOP.h5]
"""
import argparse
import json
import os
import pathlib
import sys
import time


def training_images(dataset, fold):
    import h5py
    import numpy as np

    manifest = json.loads((dataset / "manifest.json").read_text())
    fold_of = np.asarray(manifest["folds"]["fold_of_sample"])
    images, labels = [], []
    for shard in manifest["shards"]:
        with h5py.File(dataset / shard["file"], "r") as f:
            images.append(f["images"][()])
            labels.append(f["labels"][()])
    images, labels = np.concatenate(images), np.concatenate(labels)
    keep = (fold_of >= 0) & (fold_of != fold)  # the other folds train; held-out and leaking images never
    return images[keep], labels[keep], manifest["normalization_scale"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", type=pathlib.Path)
    parser.add_argument("--model", choices=["baseline_cnn", "mobilenet_v2_frozen"], default="baseline_cnn")
    parser.add_argument("--weights", help="ImageNet no-top weights for MobileNetV2 (default: random; frozen either way)")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(0)
    images, labels, scale = training_images(args.dataset, args.fold)
    side = images.shape[1]
    augmentation = [
        keras.layers.RandomFlip("horizontal"),
        keras.layers.RandomRotation(0.08),
        keras.layers.RandomZoom(0.08),
        keras.layers.RandomContrast(0.1),
    ]
    inputs = keras.Input((side, side, images.shape[3]))
    x = keras.layers.Rescaling(scale)(inputs)
    for layer in augmentation:
        x = layer(x)
    if args.model == "baseline_cnn":
        for filters in (32, 64, 128):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Flatten()(x)
    else:
        if images.shape[3] == 1:
            x = keras.layers.Concatenate()([x, x, x])
        x = keras.layers.Rescaling(2.0, offset=-1.0)(x)  # mobilenet_v2.preprocess_input on [0, 1]
        backbone = keras.applications.MobileNetV2(input_shape=(side, side, 3), include_top=False,
                                                  weights=args.weights)
        backbone.trainable = False
        x = backbone(x, training=False)
        x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(4)(x))
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    if args.warmup_epochs:
        model.fit(images, labels, batch_size=args.batch, epochs=args.warmup_epochs, shuffle=True, verbose=0)
    start = time.perf_counter()
    model.fit(images, labels, batch_size=args.batch, epochs=args.epochs, shuffle=True, verbose=0)
    seconds = time.perf_counter() - start
    print(json.dumps({"implementation": f"Keras {keras.__version__} (TensorFlow {tf.__version__}), model.fit",
                      "model": args.model, "batch": args.batch, "threads": args.threads,
                      "images": int(len(labels)), "epochs": args.epochs,
                      "images_per_second": len(labels) * args.epochs / seconds}))


if __name__ == "__main__":
    sys.exit(main())
