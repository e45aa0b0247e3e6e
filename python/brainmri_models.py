"""Plain-PyTorch twins of brainmri's C++ (LibTorch) classifiers, for using exported weights in Python.

brainmri trains its networks in C++ (src/models/). A trained model can be exported as two files:

- MODEL.safetensors: every parameter and buffer of the C++ module, keyed by its LibTorch name
  (``conv1.weight``, ``bn_Conv1.running_mean``, ``block_1_expand.weight``, ...);
- MODEL.json: ``{"format": "brainmri-model-1", "architecture": "baseline_cnn" | "mobilenet_v2",
  "options": {...ModelOptions...}, "class_names": [...], "preprocessing": {...}}``.

The classes here rebuild the same architectures with the same module names, so the weights load
with ``load_state_dict(..., strict=True)`` and give the C++ logits (to float rounding) in eval mode.
Only torch and the standard library are needed; reading the weights file needs ``safetensors``.

Usage::

    import sys; sys.path.insert(0, "path/to/brainmri/python")
    import torch
    import brainmri_models

    model, metadata = brainmri_models.load("model.safetensors")  # reads model.json next to it
    images = torch.rand(8, 1, 128, 128)  # [N, C, H, W] float32 in [0, 1], as the dataset stores them
    with torch.no_grad():
        probabilities = model(images).softmax(dim=1)
    labels = [metadata["class_names"][i] for i in probabilities.argmax(dim=1).tolist()]

The input is the stored slice in [0, 1] with ``options["input_channels"]`` channels and side
``options["image_size"]``; the models do their own input adaptation (MobileNetV2 replicates a
grayscale slice to RGB and scales it to [-1, 1]), exactly as the C++ forward() does. Anything
listed under ``metadata["preprocessing"]`` (how a scan becomes such a slice) happens before.

Going on from here:

- torch.export: ``torch.export.export(model, (images,), dynamic_shapes={"images": {0:
  torch.export.Dim("batch")}})`` (use an example batch of at least 2: torch.export specializes
  sizes 0 and 1). Height and width stay static: the Keras-style padding of MobileNetV2 depends on
  whether each feature map's side is even.
- ONNX: ``tools/export_onnx.py MODEL.safetensors --output model.onnx`` (input ``images``, output
  ``logits``, dynamic batch axis), or its ``export()`` function.
"""

import json
import pathlib

import torch.nn.functional as F
from torch import nn

FORMAT = "brainmri-model-1"

# brainmri::models::ModelOptions' defaults: a metadata file may omit any of them.
DEFAULT_OPTIONS = {
    "num_classes": 4,
    "input_channels": 1,
    "image_size": 128,
    "dropout": 0.5,
    "dense_units": 128,
    "filters": [32, 64, 128],
    "width_multiplier": 1.0,
}


def _checked_options(options):
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        # A key we do not know would be silently ignored: better to fail than to build a different network.
        raise ValueError(f"unknown model options {unknown} (known: {sorted(DEFAULT_OPTIONS)})")
    merged = dict(DEFAULT_OPTIONS, **options)
    merged["filters"] = [int(f) for f in merged["filters"]]
    for key in ("num_classes", "input_channels", "image_size", "dense_units"):
        merged[key] = int(merged[key])
    for key in ("dropout", "width_multiplier"):
        merged[key] = float(merged[key])
    # The same checks as create_model(), so a file C++ could not have written is rejected here too.
    if merged["num_classes"] < 2:
        raise ValueError("a classifier needs at least 2 classes")
    if not 0 <= merged["dropout"] < 1:
        raise ValueError("dropout must be in [0, 1)")
    if merged["dense_units"] < 1:
        raise ValueError("the dense layer needs at least 1 unit")
    if merged["input_channels"] not in (1, 3):
        raise ValueError(f"input channels must be 1 or 3, got {merged['input_channels']}")
    return merged


class BaselineCnn(nn.Module):
    """The paper's baseline (src/models/baseline_cnn.cpp): len(filters) x [Conv 3x3 'same' + ReLU +
    MaxPool 2x2], Flatten, Dropout, Dense + ReLU, Dense(num_classes). Input is used as stored."""

    def __init__(self, options):
        super().__init__()
        self.options = _checked_options(options)
        filters = self.options["filters"]
        if not filters:
            raise ValueError("baseline_cnn needs at least one conv block")
        channels = self.options["input_channels"]
        side = self.options["image_size"]
        self._convolution_names = []
        for i, out_channels in enumerate(filters):
            # Flat attributes "conv1", "conv2", ...: the names register_module gives them in C++.
            name = f"conv{i + 1}"
            setattr(self, name, nn.Conv2d(channels, out_channels, 3, padding=1))
            self._convolution_names.append(name)
            channels = out_channels
            side //= 2  # max_pool2d(2) floors odd sides, and so does the C++ size computation
        if side < 1:
            raise ValueError(f"image size {self.options['image_size']} is too small for {len(filters)} pooling steps")
        self.dropout = nn.Dropout(self.options["dropout"])
        self.dense = nn.Linear(channels * side * side, self.options["dense_units"])
        self.logits = nn.Linear(self.options["dense_units"], self.options["num_classes"])

    def forward(self, images):
        x = images
        for name in self._convolution_names:
            x = F.max_pool2d(F.relu(getattr(self, name)(x)), 2)
        # flatten(1) of an NCHW tensor: the dense weights expect channel-major order, as in C++.
        x = self.dropout(x.flatten(1))
        x = F.relu(self.dense(x))
        return self.logits(x)


def make_divisible(value, divisor=8):
    """Keras' _make_divisible, as brainmri::models::make_divisible computes it (C++ int truncation)."""
    rounded = max(divisor, int(value + divisor / 2.0) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def keras_stride2_pad(x):
    """Keras' correct_pad before a 3x3 stride-2 'valid' convolution: an even side pads 0 before and
    1 after, an odd side 1 on both; torchvision's symmetric padding would shift every feature."""
    top = 0 if x.shape[2] % 2 == 0 else 1
    left = 0 if x.shape[3] % 2 == 0 else 1
    return F.pad(x, (left, 1, top, 1))


# (expansion, output channels before the width multiplier, stride) of the 17 inverted-residual
# blocks; block 0 is Keras' "expanded_conv".
MOBILENET_V2_BLOCKS = [
    (1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1),
    (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1), (6, 96, 1), (6, 96, 1),
    (6, 96, 1), (6, 160, 2), (6, 160, 1), (6, 160, 1), (6, 320, 1),
]


def _keras_batch_norm(channels):
    # Keras' BatchNormalization(epsilon=1e-3, momentum=0.999); PyTorch's momentum weighs the new
    # batch. The epsilon matters for inference: PyTorch's default 1e-5 would change every output.
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=1.0 - 0.999)


def _three_by_three(in_channels, out_channels, stride, groups):
    # Stride 1 is Keras 'same' (1 on each side); stride 2 is padded beforehand by keras_stride2_pad.
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1 if stride == 1 else 0,
                     groups=groups, bias=False)


def _relu6(x):
    # hardtanh(0, 6) is what the C++ calls (in place there, for memory; out of place here so that
    # tracing and export see a pure function).
    return F.hardtanh(x, 0.0, 6.0)


class MobileNetV2(nn.Module):
    """Keras' MobileNetV2 backbone (include_top=False) for any width multiplier and input size, with
    the paper's head: GlobalAveragePooling2D -> Dropout -> Dense(dense_units, ReLU) ->
    Dense(num_classes). Mirrors src/models/mobilenet_v2.cpp, Keras layer names included."""

    def __init__(self, options):
        super().__init__()
        self.options = _checked_options(options)
        alpha = self.options["width_multiplier"]
        if not alpha > 0:
            raise ValueError("mobilenet_v2 width multiplier must be positive")
        if self.options["image_size"] < 32:
            raise ValueError("mobilenet_v2 needs inputs of at least 32x32")

        first_filters = make_divisible(32 * alpha)
        # The stem always takes 3 channels: grayscale input is replicated to RGB in adapt_input.
        self.Conv1 = _three_by_three(3, first_filters, 2, 1)
        self.bn_Conv1 = _keras_batch_norm(first_filters)

        channels = first_filters
        # (prefix, stride, residual, has expansion layer): modules are flat attributes named
        # prefix + "expand", "expand_BN", "depthwise", ..., as register_module names them in C++.
        self._blocks = []
        for index, (expansion, output_channels, stride) in enumerate(MOBILENET_V2_BLOCKS):
            prefix = "expanded_conv_" if index == 0 else f"block_{index}_"
            # int() before make_divisible, as Keras (and the C++) truncate filters * alpha first.
            output = make_divisible(int(output_channels * alpha))
            expanded = channels * expansion
            if index != 0:  # Keras' first block has no expansion layer at all
                setattr(self, prefix + "expand", nn.Conv2d(channels, expanded, 1, bias=False))
                setattr(self, prefix + "expand_BN", _keras_batch_norm(expanded))
            setattr(self, prefix + "depthwise", _three_by_three(expanded, expanded, stride, expanded))
            setattr(self, prefix + "depthwise_BN", _keras_batch_norm(expanded))
            setattr(self, prefix + "project", nn.Conv2d(expanded, output, 1, bias=False))
            setattr(self, prefix + "project_BN", _keras_batch_norm(output))
            self._blocks.append((prefix, stride, channels == output and stride == 1, index != 0))
            channels = output

        last_filters = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
        self.Conv_1 = nn.Conv2d(channels, last_filters, 1, bias=False)
        self.Conv_1_bn = _keras_batch_norm(last_filters)

        self.dropout = nn.Dropout(self.options["dropout"])
        self.dense = nn.Linear(last_filters, self.options["dense_units"])
        self.logits = nn.Linear(self.options["dense_units"], self.options["num_classes"])

    @staticmethod
    def adapt_input(images):
        """A stored [0, 1] batch -> the backbone's input: grayscale replicated to RGB, then x * 2 - 1
        (Keras' mobilenet_v2.preprocess_input). Decided by the tensor's channels, as in C++."""
        # -1 rather than the batch size keeps the batch axis dynamic when traced or exported.
        rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        return rgb * 2.0 - 1.0

    def _run_block(self, prefix, stride, residual, has_expand, block_input):
        x = block_input
        if has_expand:
            x = _relu6(getattr(self, prefix + "expand_BN")(getattr(self, prefix + "expand")(x)))
        if stride == 2:
            x = keras_stride2_pad(x)
        x = _relu6(getattr(self, prefix + "depthwise_BN")(getattr(self, prefix + "depthwise")(x)))
        x = getattr(self, prefix + "project_BN")(getattr(self, prefix + "project")(x))  # linear bottleneck
        return block_input + x if residual else x

    def backbone_features(self, rgb_minus_one_to_one):
        """The backbone alone on already-adapted RGB input in [-1, 1]: Keras' "out_relu" activations."""
        x = _relu6(self.bn_Conv1(self.Conv1(keras_stride2_pad(rgb_minus_one_to_one))))
        for block in self._blocks:
            x = self._run_block(*block, x)
        return _relu6(self.Conv_1_bn(self.Conv_1(x)))

    def forward(self, images):
        x = self.backbone_features(self.adapt_input(images)).mean(dim=(2, 3))
        x = self.dropout(x)
        x = F.relu(self.dense(x))
        return self.logits(x)


ARCHITECTURES = {"baseline_cnn": BaselineCnn, "mobilenet_v2": MobileNetV2}


def build_model(metadata):
    """An untrained twin of the architecture the metadata (the exported JSON) describes."""
    if metadata.get("format") != FORMAT:
        raise ValueError(f"unsupported model format {metadata.get('format')!r} (expected {FORMAT!r})")
    architecture = metadata.get("architecture")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r} (known: {', '.join(sorted(ARCHITECTURES))})")
    return ARCHITECTURES[architecture](metadata.get("options", {}))


def load(safetensors_path, json_path=None):
    """Builds the twin that the metadata describes, loads the weights strictly and returns
    (module in eval mode, metadata). json_path defaults to the weights' path with suffix .json."""
    # Imported here so that building the architectures needs nothing beyond torch.
    try:
        from safetensors.torch import load_file
    except ImportError as error:
        raise ImportError("reading brainmri weights needs safetensors: python3 -m pip install safetensors") from error
    safetensors_path = pathlib.Path(safetensors_path)
    json_path = pathlib.Path(json_path) if json_path is not None else safetensors_path.with_suffix(".json")
    with open(json_path, encoding="utf-8") as f:
        metadata = json.load(f)
    module = build_model(metadata)
    # strict: a missing or extra name means the twin and the C++ module disagree, which must not
    # pass silently as partly random weights. The dtype of num_batches_tracked (int64 in LibTorch)
    # does not matter: load_state_dict copies into the existing buffers, converting.
    module.load_state_dict(load_file(str(safetensors_path)), strict=True)
    return module.eval(), metadata
