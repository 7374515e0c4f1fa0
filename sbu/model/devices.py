"""Where a model runs and in which number format: ``device`` and ``dtype`` settings, checked before any work.

``device="auto"`` takes CUDA when there is a GPU, then Apple's MPS, then the CPU; ``dtype="auto"`` takes bfloat16
where the device computes in it natively (a CUDA GPU that supports it), float32 elsewhere. Naming a device this
machine does not have, or a format the device cannot train in, is a one-line :class:`~sbu.errors.DeviceError`
before anything is loaded or written. Losses and scores are computed in float32 whatever the weights' format
(:mod:`sbu.model.likelihood`).
"""

from __future__ import annotations

import torch

from sbu.errors import DeviceError

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(name: str = "auto") -> torch.device:
    """The torch device for a ``device`` setting: ``auto``, ``cpu``, ``cuda`` (or ``cuda:N``) or ``mps``."""
    if not isinstance(name, str) or name.split(":")[0] not in DEVICES:
        raise DeviceError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {name!r}")
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    kind, _, index = name.partition(":")
    if kind == "cuda":
        if not cuda:
            raise DeviceError(f"device={name!r} but this machine has no CUDA GPU torch can use (torch "
                              f"{torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use device='cpu'")
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise DeviceError(f"device={name!r} but this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if kind == "mps" and not mps:
        raise DeviceError("device='mps' but Apple's MPS back end is not available here; use device='cpu'")
    if kind == "cpu" and index:
        raise DeviceError(f"device={name!r}: the CPU takes no index; use device='cpu'")
    return torch.device(name)


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """The weights' format for a ``dtype`` setting on ``device``: ``auto``, ``float32``, ``bfloat16``, ``float16``."""
    if not isinstance(name, str) or name not in DTYPES:
        raise DeviceError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    if name == "auto":
        native = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if native else torch.float32
    dtype = DTYPES[name]
    if dtype is torch.float16 and device.type == "cpu":
        raise DeviceError("dtype='float16' cannot be trained on the CPU (no float16 kernels for every operation); "
                          "use 'bfloat16' or 'float32'")
    if dtype is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError("dtype='bfloat16' but this GPU does not support it; use 'float16' or 'float32'")
    return dtype
