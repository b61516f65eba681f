"""Shared pieces of the benchmarks: the two networks being compared, timing, a global time limit, and result files.

Not part of the library: the benchmarks import it as a sibling module (`python benchmarks/train_throughput.py`).
"""
from __future__ import annotations
import contextlib, gc, json, math, platform, sys, time, traceback
from pathlib import Path
import torch
from torch.utils.flop_counter import FlopCounterMode
from torchvision.utils import save_image
from butterfly_diffusion.core import to_image_range

# diffusers' UNet2DModel sized like our `seed` UNet: (64, 128, 256, 256) channels, 2 blocks per level, attention in
# the third level (32 px at 128 px) and in the middle; 25.3 M parameters, 228.5 GFLOP per image per training step.
DIFFUSERS_UNET = dict(block_out_channels=(64, 128, 256, 256), layers_per_block=2,
                      down_block_types=('DownBlock2D', 'DownBlock2D', 'AttnDownBlock2D', 'DownBlock2D'),
                      up_block_types=('UpBlock2D', 'AttnUpBlock2D', 'UpBlock2D', 'UpBlock2D'))


def log(*args):
    "print, flushed at once (the GPU run's log must survive a kill)."
    print(*args, flush=True)


class Deadline:
    "A global wall-clock budget: `left()` seconds remain; `allows(s)` says whether a task needing `s` seconds fits."
    def __init__(self, limit_s: float | None):
        self.start, self.limit = time.perf_counter(), limit_s

    def elapsed(self) -> float: return time.perf_counter() - self.start
    def left(self) -> float: return math.inf if self.limit is None else self.limit - self.elapsed()
    def allows(self, need_s: float) -> bool: return self.left() >= need_s


def pick_device(name: str | None) -> torch.device:
    "The device named, else CUDA if there is one, else the CPU."
    return torch.device(name) if name else torch.device('cuda' if torch.cuda.is_available() else 'cpu')


def set_threads(device: torch.device, threads: int | None):
    """CPU: use `threads` intra-op threads (0: PyTorch's default). One thread is the default of the benchmarks: on
    cores shared with other work, several threads that wait for each other make step times swing five-fold."""
    if device.type == 'cpu' and threads: torch.set_num_threads(threads)


def set_fast_flags(device: torch.device):
    "Process-wide flags of the fast CUDA path (cuDNN autotuning, TF32); they apply to ours and to diffusers alike."
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def environment(device: torch.device) -> dict:
    "What the numbers were measured on."
    env = dict(python=platform.python_version(), torch=torch.__version__, device=str(device),
               cpu=platform.processor() or platform.machine(), cpu_threads=torch.get_num_threads(),
               argv=' '.join(sys.argv))
    try:
        import diffusers; env['diffusers'] = diffusers.__version__
    except Exception as e: env['diffusers'] = f'unavailable ({type(e).__name__}: {e})'
    if device.type == 'cuda':
        p = torch.cuda.get_device_properties(device)
        env.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count,
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return env


def sync(device: torch.device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def reset_peak(device: torch.device):
    if device.type == 'cuda': torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    "Peak memory allocated by PyTorch on a CUDA device since `reset_peak`; None on the CPU."
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == 'cuda' else None


def free(device: torch.device):
    "Drop what the last measurement left behind (compiled graphs, cached blocks)."
    gc.collect()
    try: torch._dynamo.reset()
    except Exception: pass
    if device.type == 'cuda': torch.cuda.empty_cache()


def channels_last(device: torch.device):
    "The memory format of the fast path: channels_last on CUDA, the default layout elsewhere."
    return torch.channels_last if device.type == 'cuda' else torch.preserve_format


def autocast(device: torch.device):
    "bf16 autocast on CUDA, plain fp32 elsewhere (the same rule as the library's training and sampling)."
    return torch.autocast('cuda', dtype=torch.bfloat16) if device.type == 'cuda' else contextlib.nullcontext()


def ours_net(image_size: int):
    "The `seed` UNet's `NetConfig`, with attention kept at the same level (1/8 of the image side) at other image sizes."
    from butterfly_diffusion.core import get_config
    if image_size % 8: raise ValueError(f'--image-size must be a multiple of 8 (4 levels), got {image_size}.')
    return get_config('seed', image_size=image_size, attn_resolutions=(image_size // 8,)).net


def ours_unet(image_size: int):
    from butterfly_diffusion.unet import UNet
    return UNet(ours_net(image_size))


def ours_classifier(image_size: int, num_classes: int = 75):
    from butterfly_diffusion.unet import UNet_classifier
    return UNet_classifier(num_classes, ours_net(image_size))


def diffusers_unet(image_size: int):
    from diffusers import UNet2DModel
    return UNet2DModel(sample_size=image_size, **DIFFUSERS_UNET)


def _cpu_attention_flops() -> dict:
    "FLOP formulas for the CPU flash-attention kernels, which `FlopCounterMode` does not count (CUDA's it does)."
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count
    aten, out = torch.ops.aten, {}
    if hasattr(aten, '_scaled_dot_product_flash_attention_for_cpu'):
        out[aten._scaled_dot_product_flash_attention_for_cpu] = \
            lambda q, k, v, *a, out_shape=None, **kw: sdpa_flop_count(q, k, v)
    if hasattr(aten, '_scaled_dot_product_flash_attention_for_cpu_backward'):
        out[aten._scaled_dot_product_flash_attention_for_cpu_backward] = \
            lambda g, q, k, v, *a, out_shape=None, **kw: sdpa_backward_flop_count(g, q, k, v)
    return out


class FlopCounter(FlopCounterMode):
    """`torch.utils.flop_counter.FlopCounterMode` (same formulas, same totals) without its per-module tracker, whose
    backward hooks fail under `torch.autograd.grad` (the classifier-guidance gradient); falls back to the plain mode."""
    def __init__(self):
        super().__init__(display=False, custom_mapping=_cpu_attention_flops())

    def __enter__(self):
        try: from torch.utils.flop_counter import _FlopCounterMode
        except ImportError: return super().__enter__()
        self.flop_counts.clear()
        self.mode = _FlopCounterMode(self)
        self.mode.__enter__()
        return self

    def __exit__(self, *args):
        try: from torch.utils.flop_counter import _FlopCounterMode  # noqa: F401
        except ImportError: return super().__exit__(*args)
        b = self.mode.__exit__(*args)
        self.mode = None
        return b


def n_params(model) -> float: return sum(p.numel() for p in model.parameters()) / 1e6


def measure(results: list, name: str, fn, *args, **kwargs):
    "Run one measurement; on any error print it, record it, and carry on with the next."
    log(f'--- {name}')
    try:
        row = fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - a benchmark must survive any one failure
        traceback.print_exc(limit=3); sys.stdout.flush(); sys.stderr.flush()
        row = dict(name=name, error=f'{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ""}')
        if isinstance(e, torch.OutOfMemoryError): row['error'] = 'out of memory: ' + row['error']
    if row is None: return None
    for r in row if isinstance(row, list) else [row]:
        r.setdefault('name', name)
        results.append(r)
        log('    ' + json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                                if not k.startswith('_')}, default=str))
    return row


def fmt(v, digits: int = 1) -> str:
    "A table cell: numbers rounded, None as a dash."
    if v is None or (isinstance(v, float) and math.isnan(v)): return '—'
    if isinstance(v, float): return f'{v:,.{digits}f}'
    return str(v)


def md_table(rows: list[dict], columns: list[tuple[str, str, int]]) -> str:
    "A markdown table of `rows`; `columns` are (key, header, digits)."
    lines = ['| ' + ' | '.join(h for _, h, _ in columns) + ' |', '|' + '---|' * len(columns)]
    for r in rows: lines.append('| ' + ' | '.join(fmt(r.get(k), d) for k, _, d in columns) + ' |')
    return '\n'.join(lines)


def write_results(out: str | Path | None, stem: str, payload: dict, markdown: str):
    "Write `stem.json` and `stem.md` into `out` (created if needed); called after every measurement."
    if not out: return
    out = Path(out); out.mkdir(parents=True, exist_ok=True)
    (out / f'{stem}.json').write_text(json.dumps(payload, indent=1, default=str))
    (out / f'{stem}.md').write_text(markdown + '\n')


def save_species_grid(x: torch.Tensor, n_per_class: int, path: str | Path, k: int = 8, species: int | None = None):
    "The first `k` samples of each species' block of `n_per_class` in `x` (of the first `species`), a row each, as a PNG."
    k, rows = min(k, n_per_class), len(x) // n_per_class if species is None else species
    save_image(to_image_range(torch.cat([x[c * n_per_class:c * n_per_class + k] for c in range(rows)])), path, nrow=k)
