"""The cost of DistributedDataParallel on one device: the same training run alone and under `torchrun --nproc_per_node 1`
(DDP-wrapped, gradients all-reduced over a group of one), images per second both ways, in one script.

    python benchmarks/ddp_overhead.py --preset seed --data ../shared/data/butterflies-75 --steps 300   # GPU
    python benchmarks/ddp_overhead.py --preset tiny --steps 60                                         # CPU check

Throughput is read from each run's history (the training time at every log step), from the second log on, so the
first interval — torch.compile's warm-up on CUDA, the loader starting — counts in neither.
"""
import argparse, os, subprocess, sys, tempfile
from pathlib import Path
from butterfly_diffusion.core import get_config
from butterfly_diffusion.checkpoint import read_checkpoint

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('--preset', default='seed'); p.add_argument('--data', default=None)
p.add_argument('--steps', type=int, default=300); p.add_argument('--repeats', type=int, default=1)
a = p.parse_args()
cfg = get_config(a.preset)


def images_per_second(launch: list, out: Path) -> float:
    args = ['-m', 'butterfly_diffusion', 'train', '--preset', a.preset, '--steps', str(a.steps), '--out', str(out),
            '--overwrite', *(['--data', a.data] if a.data else [])]
    subprocess.run([sys.executable, *launch, *args], check=True, env=dict(os.environ, PYTHONWARNINGS='ignore'))
    h = read_checkpoint(out)['history']
    assert len(h['step']) >= 3, f'--steps {a.steps} gives too few log steps (log_every={cfg.log_every}): raise it'
    return cfg.batch_size * (h['step'][-1] - h['step'][1]) / (h['seconds'][-1] - h['seconds'][1])


with tempfile.TemporaryDirectory() as d:
    rows = []
    for r in range(a.repeats):   # alternate, so a drift of the machine's speed hits both alike
        plain = images_per_second([], Path(d) / 'plain')
        ddp = images_per_second(['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '1'], Path(d) / 'ddp')
        rows.append((plain, ddp))
print(f'\n{a.preset} preset, batch {cfg.batch_size}, {a.steps} steps, {a.repeats} repeat(s)')
print('| run | alone (img/s) | torchrun, 1 process, DDP (img/s) | DDP / alone |\n|---|---|---|---|')
for i, (plain, ddp) in enumerate(rows): print(f'| {i + 1} | {plain:.1f} | {ddp:.1f} | {ddp / plain:.3f} |')
