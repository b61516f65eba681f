"""Guided accuracy of trained checkpoints, judged on the same samples: the measurement behind the demo-budget table in
nbs/09_evaluation.ipynb.

For each checkpoint, temperature and scale: `--n` samples of every species by guided DDIM (the checkpoint's steps, η,
guide_t_max and classifier temperature unless given), from the same noise (`--seed`), scored by one judge trained on
fresh built-in images.

    python benchmarks/guided_accuracy.py checkpoints/demo                      # 30 per species, scale 4
    python benchmarks/guided_accuracy.py --n 30 --scales 2,4,6 runs/a runs/b   # several checkpoints and scales
    python benchmarks/guided_accuracy.py --temperatures 1,3 checkpoints/demo    # plain log p against τ = 3
"""
import argparse, itertools, time
import torch
from butterfly_diffusion.evaluation import train_judge, generate, accuracy
from butterfly_diffusion.guidance import load_pipeline

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('checkpoints', nargs='+', help='checkpoint files or folders holding last.pt')
p.add_argument('--n', type=int, default=30, help='samples per species')
p.add_argument('--scales', default='4', help='comma list of classifier-guidance scales')
p.add_argument('--temperatures', default=None, help="comma list of classifier temperatures (default: the config's)")
p.add_argument('--eta', type=float, default=None, help="DDIM η (default: the checkpoint config's)")
p.add_argument('--seed', type=int, default=123, help='seed of the starting noise and of the η > 0 noise')
a = p.parse_args()
judge = None
for ckpt in a.checkpoints:
    pipe = load_pipeline(ckpt, 'cpu')
    cfg = pipe.cfg
    if judge is None: judge, judge_acc = train_judge(cfg.num_classes, cfg.image_size, progress=False)
    temperatures = [cfg.guidance_temperature] if a.temperatures is None else map(float, a.temperatures.split(','))
    for tau, scale in itertools.product(temperatures, map(float, a.scales.split(','))):
        t0 = time.time()
        x, y = generate(pipe, a.n, seed=a.seed, scale=scale, temperature=tau, eta=a.eta)
        print(f'{ckpt}: τ {tau:g}, scale {scale:g}: guided accuracy {accuracy(judge, x, y):.1%} of {len(y)} samples '
              f'(judge {judge_acc:.0%} on held-out real images; {time.time() - t0:.0f} s)', flush=True)
