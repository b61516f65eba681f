"""Same behaviour, bit for bit, as an earlier commit: the check behind every refactoring of the package.

The code of each commit runs in its own process on this machine, one after the other: it trains the `tiny` preset
20 steps and the `demo` preset 4 steps (seeded, checkpoints in a temporary folder), then draws
`load_pipeline(checkpoint)([0, 1], n=2, seed=0)` from each run and from the shipped `demo` weights. Every picture
must be `torch.equal` to the earlier commit's, and so must every logged loss.

    python tools/same_behaviour.py                 # the working tree against 070dbbc (before the library/lab redesign)
    python tools/same_behaviour.py --before HEAD~3
"""
import argparse, os, subprocess, sys, tempfile
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parent.parent

# Runs in a child process with the package of one source tree first on sys.path; writes what it drew to argv[2].
CHILD = r'''
import sys, tempfile; sys.path.insert(0, sys.argv[1])
import torch, butterfly_diffusion
assert butterfly_diffusion.__file__.startswith(sys.argv[1]), butterfly_diffusion.__file__   # this tree's package
from butterfly_diffusion.core import get_config, seed_everything
from butterfly_diffusion.unet import UNet, UNet_classifier
from butterfly_diffusion.training import train_classifier_guidance
from butterfly_diffusion.guidance import load_pipeline
drawn = {}
with tempfile.TemporaryDirectory() as d:
    for preset, steps in (('tiny', 20), ('demo', 4)):
        cfg = get_config(preset); seed_everything(cfg.seed)
        r = train_classifier_guidance(UNet.from_config(cfg), UNet_classifier.from_config(cfg), cfg.num_classes, cfg=cfg,
                                      steps=steps, out=f'{d}/{preset}', progress=False)
        drawn[preset] = load_pipeline(f'{d}/{preset}/last.pt')([0, 1], n=2, seed=0)
        h = r.history; drawn[preset + ' losses'] = torch.tensor([h.get('mse', h.get('loss_0')), h.get('ce', h.get('loss_1'))],
                                                              dtype=torch.float64)   # named loss_0/loss_1 before format 3
drawn['shipped demo'] = load_pipeline('demo')([0, 1], n=2, seed=0)
torch.save(drawn, sys.argv[2])
'''


def draw(tree: Path, out: Path) -> dict:
    "Run `CHILD` on the package in `tree`; return what it drew."
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '2'), IN_TEST='')
    subprocess.run([sys.executable, '-c', CHILD, str(tree), str(out)], check=True, env=env, cwd=tree)
    return torch.load(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--before', default='070dbbc', help='the commit to compare with (default: before the redesign)')
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        old = Path(d) / 'before'
        subprocess.run(['git', 'worktree', 'add', '--detach', '-q', str(old), a.before], cwd=ROOT, check=True)
        try:
            before, after = draw(old, Path(d) / 'before.pt'), draw(ROOT, Path(d) / 'after.pt')
        finally:
            subprocess.run(['git', 'worktree', 'remove', '--force', str(old)], cwd=ROOT, check=True)
    same = {k: torch.equal(before[k], after[k]) for k in before}
    for k, ok in same.items():
        print(f'{k:>14}: {"identical" if ok else "DIFFERENT"}  {tuple(after[k].shape)}'
              + ('' if ok else f', largest difference {(before[k] - after[k]).abs().max():.3g}'))
    sys.exit(0 if all(same.values()) else 1)


if __name__ == '__main__':
    main()
