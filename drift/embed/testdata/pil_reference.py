#!/usr/bin/python3
"""Reference DINOv2 preprocessing with PIL + numpy, for the Go parity test.

Re-implements what transformers' BitImageProcessor (facebook/dinov2-*) does on a
PIL image, step by step, without needing transformers installed:
exif_transpose -> convert("RGB") -> resize shortest edge with Image.BICUBIC (size rule of
get_resize_output_image_size, default_to_square=False) -> center_crop (with its
zero padding when the crop is larger) -> float64 * (1/255) cast to float32 ->
(x - mean) / std in float32 -> CHW.

Usage: pil_reference.py [--resize 256] [--crop 224] IMAGE...
writes IMAGE.f32 (raw little-endian float32, 3*crop*crop values) next to each.
"""

import argparse
import math

import numpy as np
from PIL import Image, ImageOps

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def resized_size(w, h, shortest):
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = shortest, int(shortest * long / short)
    return (new_short, new_long) if w <= h else (new_long, new_short)  # (width, height)


def center_crop(a, crop):
    """transformers.image_transforms.center_crop on an HWC array."""
    h, w = a.shape[:2]
    top, left = (h - crop) // 2, (w - crop) // 2
    if top >= 0 and left >= 0:
        return a[top:top + crop, left:left + crop]
    nh, nw = max(crop, h), max(crop, w)
    padded = np.zeros((nh, nw) + a.shape[2:], a.dtype)
    tp, lp = math.ceil((nh - h) / 2), math.ceil((nw - w) / 2)
    padded[tp:tp + h, lp:lp + w] = a
    top, left = top + tp, left + lp
    return padded[max(0, top):min(nh, top + crop), max(0, left):min(nw, left + crop)]


def preprocess(path, shortest, crop):
    # transformers' load_image applies the EXIF orientation first.
    img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    img = img.resize(resized_size(img.width, img.height, shortest), resample=Image.BICUBIC)
    a = center_crop(np.array(img), crop)
    x = (a.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype="<f4")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--resize", type=int, default=256)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("images", nargs="+")
    args = p.parse_args()
    for path in args.images:
        preprocess(path, args.resize, args.crop).tofile(path + ".f32")


if __name__ == "__main__":
    main()
