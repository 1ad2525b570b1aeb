"""Inputs that are pictures: a sample shaped (C, H, W) with 1 or 3 channels, or (H, W), drawn as one.

The mistakes gallery draws them in a heatmap; the stage view as small inline PNGs (made here with
zlib, no imaging library), ink dark on light, each scaled to its own range of values.
"""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np
import torch

__all__ = ["is_picture", "picture", "picture_html"]


def is_picture(sample: torch.Tensor) -> bool:
    """Whether one sample's input is a picture: floats shaped (C, H, W) with C 1 or 3, or (H, W)."""
    if not (isinstance(sample, torch.Tensor) and sample.is_floating_point()):
        return False
    return (sample.dim() == 3 and sample.shape[0] in (1, 3)) or sample.dim() == 2


def picture(sample: torch.Tensor) -> np.ndarray:
    """One sample's input as an (H, W) array of float64: a colour picture's channels averaged to grey."""
    values = sample.detach().cpu().double()
    return (values.mean(0) if values.dim() == 3 else values).numpy()


def picture_html(sample: torch.Tensor, size: int = 40) -> str:
    """An ``<img>`` of the sample, ``size`` CSS pixels wide, its pixels kept sharp (an 8x8 digit stays 8x8)."""
    image = picture(sample)
    finite = image[np.isfinite(image)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    grey = np.where(np.isfinite(scaled), 255 * (1 - np.clip(scaled, 0, 1)), 255).round().astype(np.uint8)
    data = base64.b64encode(_png(grey)).decode()
    return (f"<img src='data:image/png;base64,{data}' width='{size}' alt='{image.shape[0]}×{image.shape[1]} "
            f"picture' style='image-rendering:pixelated;border:1px solid #ccc;vertical-align:middle'>")


def _png(grey: np.ndarray) -> bytes:
    """A greyscale PNG of an (H, W) uint8 array."""
    height, width = grey.shape
    rows = b"".join(b"\x00" + grey[r].tobytes() for r in range(height))  # filter "none" before each row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
