"""Pretrained weights: convert a PyTorch checkpoint (.pth) into libich's
safetensors, for :meth:`ich.Model.load_pretrained` and ``ich-train
--pretrained``.

::

    python3 -m ich.pretrained resnet50-0676ba61.pth resnet50.safetensors
    ich-convert-pth convnext_tiny_timm.pth convnext_tiny.safetensors   # pip-installed

A ``.pth`` file is a pickle; it is read with ``torch.load(map_location="cpu",
weights_only=True)``, which builds only tensors and plain containers and
never runs code from the file. What it does:

- unwraps the usual containers: ``{"state_dict": ...}``, ``{"model": ...}``
  (``{"model_ema": ...}`` / ``{"state_dict_ema": ...}`` with ``ema=True``,
  or when they are all there is);
- strips a prefix every name carries: ``module.`` (DataParallel),
  ``_orig_mod.`` (torch.compile), ``model.``;
- maps timm's names to torchvision's (libich's presets use torchvision's):
  ConvNeXt (convnext_tiny, convnext_small, ...: ``stem.0`` ->
  ``features.0.0``, ``stages.1.blocks.0.mlp.fc1`` -> ``features.3.0.block.3``,
  ``gamma`` [C] -> ``layer_scale`` [C, 1, 1], ...), EfficientNetV2 (timm's
  ``tf_efficientnetv2_s`` / ``_m``: the same network as torchvision's, tensor
  for tensor in the same order, mapped by position onto libich's preset with
  every shape checked; timm's tf_ weights were trained with TensorFlow's
  "same" padding, which torchvision and libich do not use, so those
  networks compute slightly different features from the same weights: a
  starting point for fine-tuning, not timm's network). ResNets have the
  same names in timm and torchvision; torchvision's files need no mapping;
- writes F32 tensors (half, bfloat16 and double converted), keeping
  ``num_batches_tracked`` as I64 and dropping other non-float entries.

Errors (:class:`ich.FormatError`, :class:`ich.IchIOError`): a file torch
cannot read, something that is not a state_dict, a non-tensor value.
"""

import argparse
import collections
import json
import os
import re
import struct
import sys
import tempfile

import numpy as np

from . import _errors

__all__ = ["convert_pytorch_checkpoint", "ConversionReport"]

SOURCES = ("auto", "torchvision", "timm")

_CONTAINERS = ("state_dict", "model", "net", "network")
_EMA_CONTAINERS = ("state_dict_ema", "model_ema")
_PREFIXES = ("module.", "_orig_mod.", "model.")


class ConversionReport:
    """What :func:`convert_pytorch_checkpoint` did.

    ``source``: "torchvision", "timm" or "unknown" (names kept);
    ``architecture``: e.g. "convnext", "resnet", "efficientnet_v2_s", or
    None; ``container``: the key the state_dict was under (None: the file
    is one); ``stripped``: the prefixes removed from every name;
    ``renamed``: {old: new}; ``dropped``: {name: why}; ``converted``:
    {name: original dtype} for tensors cast to float32; ``tensors``: how
    many were written; ``notes``: anything else worth knowing."""

    def __init__(self, src, dst):
        self.src = str(src)
        self.dst = str(dst)
        self.source = "unknown"
        self.architecture = None
        self.container = None
        self.stripped = []
        self.renamed = {}
        self.dropped = {}
        self.converted = {}
        self.tensors = 0
        self.notes = []

    def __str__(self):
        lines = ["%s -> %s: %d tensors (%s%s)" % (
            self.src, self.dst, self.tensors, self.source,
            ", " + self.architecture if self.architecture else "")]
        if self.container:
            lines.append("  state_dict taken from %r" % self.container)
        if self.stripped:
            lines.append("  prefix removed from every name: %s" % ", ".join(self.stripped))
        if self.renamed:
            first = list(self.renamed.items())[:3]
            lines.append("  %d renamed (%s%s)" % (
                len(self.renamed), ", ".join("%s -> %s" % kv for kv in first),
                ", ..." if len(self.renamed) > 3 else ""))
        if self.converted:
            lines.append("  %d cast to float32 (%s)" % (
                len(self.converted), ", ".join(sorted(set(self.converted.values())))))
        for name, why in self.dropped.items():
            lines.append("  dropped %s: %s" % (name, why))
        for note in self.notes:
            lines.append("  note: %s" % note)
        return "\n".join(lines)

    def __repr__(self):
        return "<ConversionReport %s, %s, %d tensors>" % (
            self.source, self.architecture, self.tensors)


def _fail(message, status=_errors.ERR_FORMAT):
    return _errors.error(status, message)


def _load(src):
    try:
        import torch
    except ImportError:
        raise ImportError("ich.pretrained needs PyTorch to read .pth files "
                          "(Debian: apt-get install python3-torch)") from None
    if not os.path.isfile(src):
        raise _fail("%s: no such file" % src, _errors.ERR_IO)
    try:
        return torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip, torch's own errors: all "cannot read"
        raise _fail("%s: torch cannot read it as a checkpoint with weights_only=True "
                    "(not a PyTorch file, damaged, or holding objects other than "
                    "tensors and plain containers): %s" % (src, exc)) from None


def _unwrap(obj, src, ema, report):
    import torch
    if not isinstance(obj, dict):
        raise _fail("%s: not a state_dict but a %s" % (src, type(obj).__name__))
    keys = _EMA_CONTAINERS + _CONTAINERS if ema else _CONTAINERS + _EMA_CONTAINERS
    for key in keys:
        if isinstance(obj.get(key), dict):
            report.container = key
            obj = obj[key]
            break
    else:
        if ema:
            raise _fail("%s: ema=True, but the file has no %s" % (src, " or ".join(
                _EMA_CONTAINERS)), _errors.ERR_NOT_FOUND)
    if not obj:
        raise _fail("%s: an empty state_dict" % src)
    for name, value in obj.items():
        if not isinstance(name, str):
            raise _fail("%s: not a state_dict: key %r is not a string" % (src, name))
        if not isinstance(value, torch.Tensor):
            raise _fail("%s: not a state_dict: %r%s is a %s, not a tensor" % (
                src, name, " in %r" % report.container if report.container else "",
                type(value).__name__))
    return collections.OrderedDict(obj)


def _strip_prefixes(state, report):
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in state) and \
                    all(len(k) > len(prefix) for k in state):
                state = collections.OrderedDict((k[len(prefix):], v) for k, v in state.items())
                report.stripped.append(prefix)
                stripped = True
    return state


# ---- timm -> torchvision ------------------------------------------------------

_CONVNEXT_BLOCK = {"conv_dw": "block.0", "norm": "block.2", "mlp.fc1": "block.3",
                   "mlp.fc2": "block.5"}


def _convnext_name(name):
    """timm's ConvNeXt name -> torchvision's, or None when it has none."""
    m = re.fullmatch(r"stem\.([01])\.(weight|bias)", name)
    if m:
        return "features.0.%s.%s" % m.groups()
    m = re.fullmatch(r"stages\.(\d+)\.downsample\.([01])\.(weight|bias)", name)
    if m:
        return "features.%d.%s.%s" % (2 * int(m.group(1)), m.group(2), m.group(3))
    m = re.fullmatch(r"stages\.(\d+)\.blocks\.(\d+)\.(.+)", name)
    if m:
        stage, block, rest = int(m.group(1)), m.group(2), m.group(3)
        base = "features.%d.%s." % (2 * stage + 1, block)
        if rest == "gamma":
            return base + "layer_scale"
        m2 = re.fullmatch(r"(conv_dw|norm|mlp\.fc1|mlp\.fc2)\.(weight|bias)", rest)
        if m2:
            return base + "%s.%s" % (_CONVNEXT_BLOCK[m2.group(1)], m2.group(2))
        return None
    m = re.fullmatch(r"head\.(norm|fc)\.(weight|bias)", name)
    if m:
        return "classifier.%s.%s" % ("0" if m.group(1) == "norm" else "2", m.group(2))
    return None


def _map_convnext(state, src, report):
    out = collections.OrderedDict()
    for name, value in state.items():
        new = _convnext_name(name)
        if new is None:
            report.dropped[name] = "no torchvision ConvNeXt tensor for this timm name"
            continue
        if new.endswith(".layer_scale") and value.dim() == 1:
            value = value.reshape(-1, 1, 1)  # timm's gamma [C]; torchvision's [C, 1, 1]
        out[new] = value
        report.renamed[name] = new
    return out


def _efficientnet_target(state, src):
    """(preset name, [(name, shape)]) of the libich preset that takes timm's
    EfficientNetV2 tensor for tensor."""
    from .model import Model
    head = state.get("classifier.weight")
    outputs = int(head.shape[0]) if head is not None and head.dim() == 2 else 1000
    for preset in ("efficientnet_v2_s", "efficientnet_v2_m"):
        model = Model.preset(preset, outputs=outputs)
        target = [(view.name.decode(), tuple(view.dims[d] for d in range(view.ndim)))
                  for _, view in model._views()]
        model.close()
        if len(target) == len(state):
            return preset, target
    raise _fail("%s: timm EfficientNet with %d tensors: neither efficientnet_v2_s (782) nor "
                "efficientnet_v2_m (1120) has that many; only timm's tf_efficientnetv2_s "
                "and tf_efficientnetv2_m map onto torchvision's" % (src, len(state)),
                _errors.ERR_UNSUPPORTED)


def _suffix(name):
    return name.rsplit(".", 1)[-1]


def _map_efficientnet(state, src, report):
    preset, target = _efficientnet_target(state, src)
    out = collections.OrderedDict()
    for (name, value), (new, shape) in zip(state.items(), target):
        if tuple(value.shape) != shape or _suffix(name) != _suffix(new):
            raise _fail("%s: timm's %s %s does not line up with torchvision's %s %s (position "
                        "%d): not a tf_efficientnetv2 layout this converter can map" % (
                            src, name, tuple(value.shape), new, shape, len(out)),
                        _errors.ERR_UNSUPPORTED)
        out[new] = value
        report.renamed[name] = new
    report.architecture = preset
    report.notes.append(
        "timm's tf_efficientnetv2 weights were trained with TensorFlow's 'same' padding; "
        "torchvision and libich pad symmetrically, so features differ slightly from timm's "
        "network: fine-tune, do not expect timm's outputs")
    return out


def _detect(state):
    """(source, architecture) from the names."""
    names = set(state)
    if "stem.0.weight" in names and any(n.startswith("stages.") for n in names):
        return "timm", "convnext"
    if "conv_stem.weight" in names and any(n.startswith("blocks.") for n in names):
        return "timm", "efficientnet_v2"
    if "conv1.weight" in names and any(n.startswith("layer1.") for n in names):
        return "torchvision", "resnet"  # timm's ResNets have torchvision's names
    if "features.0.0.weight" in names:
        if any(n.endswith(".layer_scale") for n in names):
            return "torchvision", "convnext"
        return "torchvision", "efficientnet"
    return "unknown", None


def _rename(state, src, source, report):
    detected, arch = _detect(state)
    if source != "auto" and detected not in (source, "unknown") and arch != "resnet":
        raise _fail("%s: source=%r, but the names are %s's (%s)" % (
            src, source, detected, ", ".join(list(state)[:3])), _errors.ERR_INVALID_ARGUMENT)
    if source == "timm" and detected == "unknown":
        raise _fail("%s: source='timm', but the names match none of the timm networks "
                    "this converter maps (convnext, resnet, tf_efficientnetv2): %s" % (
                        src, ", ".join(list(state)[:3])), _errors.ERR_UNSUPPORTED)
    report.source, report.architecture = detected, arch
    if arch == "resnet" and source == "timm":
        report.source = "timm"
    if detected == "timm" and arch == "convnext":
        return _map_convnext(state, src, report)
    if detected == "timm" and arch == "efficientnet_v2":
        return _map_efficientnet(state, src, report)
    if detected == "unknown":
        report.notes.append("names kept as they are: not a layout this converter knows")
    return state


# ---- writing --------------------------------------------------------------------

def _to_numpy(state, report):
    import torch
    arrays = collections.OrderedDict()
    for name, value in state.items():
        value = value.detach()
        if name.endswith("num_batches_tracked") and not value.is_floating_point():
            arrays[name] = value.to(torch.int64).numpy().astype("<i8")
            continue
        if not value.is_floating_point():
            report.dropped[name] = "a %s tensor, not a float one" % str(value.dtype)[6:]
            continue
        if value.dtype != torch.float32:
            report.converted[name] = str(value.dtype)[6:]
        arrays[name] = value.to(torch.float32).contiguous().numpy().astype("<f4")
    return arrays


def _write_safetensors(path, arrays, metadata):
    """The format (8-byte little-endian header size, JSON header, data),
    written to a temporary file in the same folder, then renamed."""
    header, offset = {"__metadata__": metadata}, 0
    for name, a in arrays.items():
        header[name] = {"dtype": "F32" if a.dtype.kind == "f" else "I64",
                        "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".ich-convert-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for a in arrays.values():
                f.write(np.ascontiguousarray(a).tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def convert_pytorch_checkpoint(src, dst, *, source="auto", ema=False):
    """Convert the PyTorch checkpoint `src` (a torchvision or timm ``.pth``
    state_dict, possibly wrapped) into the safetensors file `dst` that
    :meth:`ich.Model.load_pretrained` and ``ich-train --pretrained`` read;
    see the module's documentation for what is mapped. `source`: "auto"
    (from the names), "torchvision" or "timm" (refused when the names say
    otherwise). `ema`: take ``state_dict_ema``/``model_ema`` when the file
    has one. Returns a :class:`ConversionReport`; `dst` is written only
    when everything was understood."""
    if source not in SOURCES:
        raise _fail("source must be one of %s, not %r" % (", ".join(SOURCES), source),
                    _errors.ERR_INVALID_ARGUMENT)
    src, dst = os.fspath(src), os.fspath(dst)
    report = ConversionReport(src, dst)
    state = _unwrap(_load(src), src, ema, report)
    state = _strip_prefixes(state, report)
    state = _rename(state, src, source, report)
    arrays = _to_numpy(state, report)
    if not arrays:
        raise _fail("%s: no float tensor to write" % src)
    report.tensors = len(arrays)
    metadata = {"format": "pt", "ich.converted_from": os.path.basename(src),
                "ich.source": report.source}
    if report.architecture:
        metadata["ich.architecture"] = report.architecture
    _write_safetensors(dst, arrays, metadata)
    return report


def main(argv=None):
    """``python3 -m ich.pretrained SRC DST`` (and ``ich-convert-pth``)."""
    parser = argparse.ArgumentParser(
        prog="ich-convert-pth",
        description="Convert a PyTorch checkpoint (.pth: torchvision's or timm's ResNet, "
                    "ConvNeXt, EfficientNetV2) into safetensors for ich-train --pretrained.")
    parser.add_argument("src", help="the .pth file (read with weights_only=True)")
    parser.add_argument("dst", help="the .safetensors file to write")
    parser.add_argument("--source", choices=SOURCES, default="auto",
                        help="whose names the file has (default: from the names)")
    parser.add_argument("--ema", action="store_true",
                        help="take the EMA weights (state_dict_ema / model_ema)")
    args = parser.parse_args(argv)
    try:
        report = convert_pytorch_checkpoint(args.src, args.dst, source=args.source,
                                            ema=args.ema)
    except (_errors.IchError, ImportError) as exc:
        print("ich-convert-pth: %s" % exc, file=sys.stderr)
        return 1
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
