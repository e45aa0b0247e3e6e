#!/usr/bin/env python3
"""The original Keras pipeline of the paper's baseline CNN, for bench/train_step/epoch.sh: the
augmentation layers inside the model (flip, rotation 0.08, zoom 0.08, contrast 0.1), 3 x [Conv3x3
+ ReLU + MaxPool], Flatten, Dropout 0.5, Dense 128, Dense 4, Adam 1e-3, trained with model.fit on
the training images of one fold of a dataset packed by brainmri-prep (read with h5py: the same
pixels brainmri trains on). Prints one JSON line: the images/s of the timed epochs.

    reference_keras_epoch.py DATASET --fold 0 --batch 32 --threads 2 --epochs 2 [--warmup-epochs 1]
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
    model = keras.Sequential([
        keras.Input((side, side, images.shape[3])),
        keras.layers.Rescaling(scale),
        keras.layers.RandomFlip("horizontal"),
        keras.layers.RandomRotation(0.08),
        keras.layers.RandomZoom(0.08),
        keras.layers.RandomContrast(0.1),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(128, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(4),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    if args.warmup_epochs:
        model.fit(images, labels, batch_size=args.batch, epochs=args.warmup_epochs, shuffle=True, verbose=0)
    start = time.perf_counter()
    model.fit(images, labels, batch_size=args.batch, epochs=args.epochs, shuffle=True, verbose=0)
    seconds = time.perf_counter() - start
    print(json.dumps({"implementation": f"Keras {keras.__version__} (TensorFlow {tf.__version__}), model.fit",
                      "model": "baseline_cnn", "batch": args.batch, "threads": args.threads,
                      "images": int(len(labels)), "epochs": args.epochs,
                      "images_per_second": len(labels) * args.epochs / seconds}))


if __name__ == "__main__":
    sys.exit(main())
