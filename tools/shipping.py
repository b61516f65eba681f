"""What the two shipping tools share: the arguments of every shipment, the card's lines about the run and its data,
and how the files land, so that weights never ship without their card.

`ship_weights.py` ships a base model (a UNet and its classifier), `ship_upsampler.py` a cascade's second stage; each
measures its own kind and writes its own card, and both go through `stage` and `publish`.
"""
from __future__ import annotations
import argparse, json, os, platform, shutil, subprocess
import torch
from pathlib import Path
from butterfly_diffusion.checkpoint import WEIGHTS_DIR, export_weights


def code_version(root: Path) -> str:
    "The commit a measurement ran on, with `+uncommitted` when tracked files differ from it (the numbers are that tree's)."
    git = lambda *args: subprocess.run(['git', *args], cwd=root, capture_output=True, text=True).stdout.strip()
    return git('rev-parse', '--short', 'HEAD') + ('+uncommitted' if git('status', '--porcelain', '--untracked-files=no') else '')


def ship_parser(description: str, name_help: str) -> argparse.ArgumentParser:
    "The arguments every shipment takes: the run, the name, how it was trained, its data and their credit, the seed."
    p = argparse.ArgumentParser(description=description)
    p.add_argument('checkpoint', help='the training checkpoint (file or folder)')
    p.add_argument('name', help=name_help)
    p.add_argument('--command', required=True, help='the exact command that trained it, for the card')
    p.add_argument('--data', default=None, help='the real dataset it was trained on (default: the built-in butterflies)')
    p.add_argument('--attribution', default=None, help="a file whose text credits the training data (the dataset's README)")
    p.add_argument('--seed', type=int, default=123, help='seed of the noise every number is measured from')
    p.add_argument('--sampling', nargs='*', default=[], metavar='FIELD=VALUE',
                   help="sampling defaults to ship in the config (e.g. cfg_scale=2 when the preset's default changed after the run)")
    return p


def sampling_changes(a: argparse.Namespace) -> dict:
    "The `--sampling FIELD=VALUE ...` of a shipment as the dict `export_weights(sampling=...)` takes (values read as JSON)."
    return {k: json.loads(v) for k, v in (kv.split('=', 1) for kv in a.sampling)}


def stage(checkpoint, name: str, **export_kw) -> Path:
    "Export `checkpoint` as float16 weights beside the others' staging files, not yet where users load them from."
    return export_weights(checkpoint, Path('/tmp') / f'ship-{name}.pt', **export_kw)


def training_seconds(ck: dict) -> int | None:
    "How long the run trained, from its history (None if it kept no times)."
    seconds = ck.get('history', {}).get('seconds')
    return round(seconds[-1]) if seconds else None


def machine() -> str:
    "The processor the card names, and PyTorch's CPU kernels on it: the same training step runs 2x slower on some 2-core machines."
    model = None
    if os.path.exists('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f: model = next((l.split(':', 1)[1].strip() for l in f if l.startswith('model name')), None)
    return (f'{platform.machine()} ({", ".join(filter(None, [model, f"{os.cpu_count()} cores"]))}; '
            f'PyTorch\'s {torch.backends.cpu.get_cpu_capability()} kernels)')


def credit(attribution) -> str:
    "The card's 'Training data' section: the text of the dataset's credit file, or nothing for the built-in butterflies."
    return f"\n## Training data\n\n{Path(attribution).read_text().strip()}\n" if attribution else ''


def publish(name: str, staged: Path, numbers: dict, card: str, pictures: dict) -> Path:
    """Put a shipment where users load it from: its pictures (`{suffix: path}`), NAME.json, NAME.md, and the weights
    last, so that shipped weights always have their card. Returns the weights' path."""
    for suffix, path in pictures.items(): shutil.copy(path, WEIGHTS_DIR / f'{name}{suffix}')
    (WEIGHTS_DIR / f'{name}.json').write_text(json.dumps(numbers, indent=1) + '\n')
    (WEIGHTS_DIR / f'{name}.md').write_text(card)
    return Path(shutil.move(staged, WEIGHTS_DIR / f'{name}.pt'))
