"""How guided accuracy grows with training and depends on the guidance settings, for a preset (default `demo`).

Trains the preset on the built-in butterflies in segments (resuming from the checkpoint each time), and after each
segment samples `--n` images of every species with guided DDIM at each (scale, guide_t_max) setting, reporting the
judge's accuracy. This is the experiment behind the `demo` preset's training budget and default guidance settings.

    python experiments/guidance_sweep.py --quick                 # seconds, tiny preset: checks the script
    python experiments/guidance_sweep.py --steps 500,1000,2000   # the real thing (a GPU makes it minutes)
"""
import argparse, json, time
from pathlib import Path
import torch
from butterfly_diffusion.core import get_config, seed_everything
from butterfly_diffusion.unet import UNet, UNet_classifier
from butterfly_diffusion.training import train_classifier_guidance
from butterfly_diffusion.guidance import load_pipeline
from butterfly_diffusion.evaluation import train_judge, generate, accuracy

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('--preset', default='demo'); p.add_argument('--steps', default='500,1000,2000')
p.add_argument('--scales', default='0,1,2,3,5,8,12'); p.add_argument('--t-max', default='none,600,400')
p.add_argument('--n', type=int, default=16, help='samples per species'); p.add_argument('--sample-steps', type=int, default=50)
p.add_argument('--override', default='{}', help='JSON of Config fields, e.g. {"base_filters": 16}')
p.add_argument('--out', default='runs/guidance_sweep'); p.add_argument('--quick', action='store_true')
a = p.parse_args()
if a.quick: a.preset, a.steps, a.scales, a.t_max, a.n, a.sample_steps = 'tiny', '4,8', '0,3', 'none,600', 2, 4
cfg = get_config(a.preset, **json.loads(a.override))
out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
device = 'cuda' if torch.cuda.is_available() else 'cpu'
t0 = time.time()
judge, judge_acc = train_judge(cfg.num_classes, cfg.image_size, device=device, progress=False,
                               **(dict(n_per_class=16, epochs=1) if a.quick else {}))
print(f'judge: {judge_acc:.1%} on held-out real images ({time.time() - t0:.0f} s)', flush=True)
seed_everything(cfg.seed)
m0, m1 = UNet.from_config(cfg).to(device), UNet_classifier.from_config(cfg).to(device)
rows = []
for steps in map(int, a.steps.split(',')):
    t0 = time.time()
    r = train_classifier_guidance(m0, m1, cfg.num_classes, cfg=cfg, steps=steps, out=out, resume=(out / 'last.pt').exists(),
                                  device=device, progress=False)
    h = r.history
    print(f'\nstep {steps}: trained in {time.time() - t0:.0f} s, mse {h["mse"][-1]:.4f}, classifier acc by t-bin '
          f'{[round(v, 2) for v in h["acc_by_t"][-1]]}', flush=True)
    pipe = load_pipeline(out, device)
    for tmax in a.t_max.split(','):
        tm = cfg.timesteps if tmax == 'none' else int(tmax)   # 'none': guide at every step
        for s in map(float, a.scales.split(',')):
            if s == 0 and tmax != a.t_max.split(',')[0]: continue
            t1 = time.time()
            x, y = generate(pipe, a.n, scale=s, t_max=tm, temperature=1.0, eta=0.0, steps=a.sample_steps)
            acc = accuracy(judge, x.to(device), y.to(device))
            rows.append(dict(steps=steps, scale=s, guide_t_max=tm, accuracy=acc))
            print(f'  scale {s:5.1f} t_max {str(tm):5s}: guided accuracy {acc:.1%}  ({time.time() - t1:.1f} s)', flush=True)
    (out / 'sweep.json').write_text(json.dumps(rows, indent=1))
