"""What the experiment scripts share: reading a `LABEL:field=value,...` setting, and the held-out photos they measure on."""
import ast
import torch
from butterfly_diffusion.data import get_data


def setting(text: str) -> tuple[str, dict]:
    "`'LABEL:field=value,...'` as `(LABEL, {field: value})`, each value a Python literal; nothing after the colon: `{}`."
    label, _, fields = text.partition(':')
    return label, {k: ast.literal_eval(v) for k, v in (f.split('=', 1) for f in fields.split(',') if f)}


def held_out_photos(data, size: int, seed: int, n: int) -> torch.Tensor:
    "`n` images of `data`'s validation split (never trained on) at `size` px, every k-th, as `tools/ship_upsampler.py` picks them."
    valid = get_data(data, image_size=size, seed=seed, batch_size=64, flip=False).valid_ds
    return torch.stack([valid[i][0] for i in range(0, len(valid), max(1, len(valid) // n))][:n])
