"""The evaluation chapter's 128-px table: a cascade measured by `evaluate_cascade`, with a picture of a few species.

`evaluate_cascade` measures five rows at the upsampler's size (real images, real images shrunk and drawn back by
bicubic and by the upsampler, guided samples enlarged by bicubic and drawn by the upsampler) with judges of real
128-px and 32-px images. On butterflies-75 it takes about half an hour on a 2-core CPU, so the chapter loads its
result from `nbs/results/`:

* `cascade-NAME.csv` (the table), `cascade-NAME.json` (command, sample count, seed, judges' accuracies, seconds, commit);
* `nbs/images/cascade-evaluation-NAME.jpg`: for a few species, their guided 32-px samples, bicubic 128, cascade 128 and
  the nearest real image to each (a row each);
* every species' picture in `--pictures` (not committed).

    python tools/cascade_results.py --base butterflies-75 --data ../shared/data/butterflies-75 --n_per_class 7
    python tools/cascade_results.py --base demo --n_per_class 50
"""
import argparse, json, sys, time
from pathlib import Path
import torch
from torchvision.transforms.functional import to_pil_image
from butterfly_diffusion.checkpoint import read_checkpoint, resolve_weights, sha256
from butterfly_diffusion.core import image_grid
from butterfly_diffusion.evaluation import evaluate_cascade, save_side_by_side, report
from shipping import code_version

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--base', default='butterflies-75', help='the base model (shipped name or checkpoint)')
    p.add_argument('--upsampler', default=None, help='its second stage (default: the one that ships with --base)')
    p.add_argument('--data', default=None, help='the real dataset both were trained on (default: built-in butterflies)')
    p.add_argument('--n_per_class', type=int, default=7, help='images per species and row (decide with >= 500 in all)')
    p.add_argument('--seed', type=int, default=123)
    p.add_argument('--name', default=None, help='the results\' name (default: --base)')
    p.add_argument('--shown', default='0,4,8,12', help='species indices in the chapter\'s picture')
    p.add_argument('--out', default=str(ROOT / 'nbs' / 'results'))
    p.add_argument('--pictures', default='runs/cascade-evaluation', help='every species\' picture (not committed)')
    a = p.parse_args(argv)
    name = a.name or Path(a.base).name
    base, upsampler = resolve_weights(a.base), resolve_weights(a.upsampler or f'{a.base}-upsampler')
    species = len(read_checkpoint(base)['classes'])
    if bad := [i for i in map(int, a.shown.split(',')) if not 0 <= i < species]:
        p.error(f'--shown {a.shown}: species {bad} are not among the {species} of {a.base} (0 to {species - 1})')
    commit = code_version(ROOT)
    t0 = time.time()
    df, samples = evaluate_cascade(a.base, a.upsampler, a.data, a.n_per_class, a.seed)
    seconds = time.time() - t0
    print(report(df))
    save_side_by_side(samples, df.attrs['classes'], a.pictures)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / f'cascade-{name}.csv', float_format='%.5g')
    meta = dict(command='python tools/cascade_results.py ' + ' '.join(argv if argv is not None else sys.argv[1:]),
                commit=commit, seed=a.seed, samples_per_row=df.attrs['n'], species=len(df.attrs['classes']),
                judge_accuracy=df.attrs['judge_accuracy'], small_judge_accuracy=df.attrs['small_judge_accuracy'],
                sizes=df.attrs['sizes'], source=df.attrs['source'], seconds=round(seconds),
                base_sha256=sha256(base), upsampler_sha256=sha256(upsampler))   # which weights: names stay, files change
    (out / f'cascade-{name}.json').write_text(json.dumps(meta, indent=1) + '\n')
    # the chapter's picture: for each shown species, a row per kind (small, bicubic, cascade, nearest real), 6 columns
    n = len(next(iter(samples.values()))) // len(df.attrs['classes'])
    k = min(n, 6)
    rows = [x[c * n:c * n + k] for c in map(int, a.shown.split(',')) for x in samples.values()]
    picture = ROOT / 'nbs' / 'images' / f'cascade-evaluation-{name}.jpg'
    to_pil_image(image_grid(torch.cat(rows), nrow=k, padding=2)).save(picture, quality=90)
    print(f'{seconds:.0f} s; wrote {out}/cascade-{name}.csv, .json and {picture}')


if __name__ == '__main__': main()
