"""The evaluation chapter's shipped results: the guidance sweep and the table of where the demo stands.

Results that take tens of minutes to compute ship as small tables in `nbs/results/`, which the chapter loads, so Run
All shows them in seconds and never wipes them. This script makes both, with the tools the chapter teaches:

* `demo-sweep.csv`: `sweep` over guidance settings, from the same noise, on the shipped `demo` weights (the seed's
  unconditional UNet, which only the classifier steers) and on a class-conditional run of the `demo` preset;
* `demo-evaluation.csv`: `evaluate_checkpoint` of both, beside the real-image floor.

Each gets a `.json` beside it: the command, sample counts, seed, judge accuracy and the code's commit.

    python3 run.py demo                                              # the class-conditional run, checkpoints/demo
    python tools/demo_results.py --run checkpoints/demo              # both tables: ~20 minutes on a 2-core CPU
    python tools/demo_results.py --run checkpoints/demo --n_sweep 2 --n_eval 2 --out /tmp/r   # a quick check
"""
import argparse, json, sys, time
from pathlib import Path
import pandas as pd
from butterfly_diffusion.core import get_config
from butterfly_diffusion.guidance import load_pipeline
from butterfly_diffusion.evaluation import synthetic_reference, sweep, evaluate_checkpoint
from shipping import code_version

ROOT = Path(__file__).resolve().parent.parent


def settings(cfg, cond) -> list[dict]:
    "The sweep's rows: classifier guidance on the unconditional UNet, then the class-conditional UNet's options."
    guided = dict(t_max=cfg.guidance_t_max, temperature=cfg.guidance_temperature, eta=cfg.sample_eta)
    s0 = cfg.guidance_scale
    return ([dict(method='classifier guidance', **guided, scale=s) for s in (0, 1, 2, 3, s0, 6)]
            + [dict(method='classifier guidance, τ = 1 (plain log p)', **guided | dict(temperature=1.0), scale=s) for s in (2, s0, 6)]
            + [dict(method='classifier guidance, every step', **guided | dict(t_max=cfg.timesteps), scale=s0),
               dict(method='classifier guidance, t < 300 only', **guided | dict(t_max=300), scale=s0),
               dict(method='classifier guidance, deterministic DDIM (η = 0)', **guided | dict(eta=0.0), scale=s0)]
            + [dict(method='species label + classifier guidance', pipe=cond, **guided, scale=s) for s in (0, 1, 2, s0, 6)]
            + [dict(method='conditional UNet told "no class", classifier guidance', pipe=cond, **guided, scale=s, label=False)
               for s in (0, s0)]
            + [dict(method='classifier-free guidance', pipe=cond, scale=0, cfg_scale=w, eta=cfg.sample_eta) for w in (1, 2, 4)])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--run', default='checkpoints/demo', help='a class-conditional run of the demo preset')
    p.add_argument('--weights', default='demo', help='the unconditional weights (shipped name or checkpoint)')
    p.add_argument('--n_sweep', type=int, default=30, help='samples per species and sweep row')
    p.add_argument('--n_eval', type=int, default=50, help='samples per species and evaluation row')
    p.add_argument('--seed', type=int, default=123)
    p.add_argument('--out', default=str(ROOT / 'nbs' / 'results'))
    a = p.parse_args(argv)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    commit = code_version(ROOT)
    meta = dict(command='python tools/demo_results.py ' + ' '.join(argv if argv is not None else sys.argv[1:]),
                commit=commit, seed=a.seed, weights=a.weights, run=a.run)
    uncond, cond = load_pipeline(a.weights, 'cpu'), load_pipeline(a.run, 'cpu')
    if cond.unet.num_classes is None: sys.exit(f'{a.run} has an unconditional UNet: give a class-conditional run (--run).')
    cfg = uncond.cfg
    t0 = time.time()
    ref = synthetic_reference(cfg.num_classes, cfg.image_size, 50, cfg.seed, dict(progress=False))
    judge_acc = ref.judge_accuracy
    df = sweep(settings(cfg, cond), uncond, ref, a.n_sweep, seed=a.seed, progress=True)
    df.to_csv(out / 'demo-sweep.csv', index=False, float_format='%.4g')
    (out / 'demo-sweep.json').write_text(json.dumps(dict(meta, samples_per_row=a.n_sweep * cfg.num_classes,
                                                         judge_accuracy=judge_acc, seconds=round(time.time() - t0)), indent=1) + '\n')
    print(f'sweep: {len(df)} rows in {time.time() - t0:.0f} s', flush=True)
    t0, tables = time.time(), []
    for name, ckpt in (('shipped demo weights (unconditional UNet, 11,200 steps)', a.weights),
                       ('demo preset run (class-conditional UNet, 1,400 steps)', a.run)):
        rows, _ = evaluate_checkpoint(ckpt, n_per_class=a.n_eval, seed=a.seed, device='cpu', progress=True)
        rows = rows.assign(fid_x_floor=rows.fid / rows.fid.iloc[0])
        tables.append(rows.rename_axis('row').reset_index().assign(model=name))
    ev = pd.concat(tables)[['model', 'row', 'accuracy', 'fid', 'fid_x_floor', 'kid', 'precision', 'recall']]
    ev.to_csv(out / 'demo-evaluation.csv', index=False, float_format='%.4g')
    (out / 'demo-evaluation.json').write_text(json.dumps(dict(meta, samples_per_row=a.n_eval * cfg.num_classes,
                                                              judge_accuracy=judge_acc, seconds=round(time.time() - t0)), indent=1) + '\n')
    print(f'evaluation: {len(ev)} rows in {time.time() - t0:.0f} s', flush=True)


if __name__ == '__main__': main()
