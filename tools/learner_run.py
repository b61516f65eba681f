"""Run the chapters as a learner does: in a Jupyter kernel, the default preset (no IN_TEST), in nbs/, in reading order.

`nbdev_test` runs every notebook under the `tiny` preset, so a cell that trains for an hour, a test that holds only
under `tiny`, or a chapter that no longer draws its pictures would all pass it. This runs each chapter as JupyterLab's
Run All does — a real kernel with the inline backend, the learner's `demo` preset, the repository's own `nbs/` folder
(runs land in `checkpoints/` at the root, as for a learner) — and fails when a chapter

* shows an error, a traceback or a warning (anything on stderr),
* runs over its time: the training chapter 10 minutes, every other chapter 3 — on the CPU those limits were set on; a
  slower CPU stretches them by how much slower it trains (`pace`), so a limit catches a chapter that does more work,
  never a machine that does the same work slower — or
* shows fewer pictures than its saved outputs (what the prose discusses must appear after Run All).

It prints one row per chapter: seconds, errors, pictures saved and shown. The notebooks themselves are not changed,
unless `--save` writes the executed ones back (to refresh their saved outputs from a real run).

    python tools/learner_run.py                         # every chapter, in reading order
    python tools/learner_run.py 08_guidance 10_explorer  # these chapters only
    python3 run.py learner                              # the same, inside the project's .venv
"""
from __future__ import annotations
import argparse, math, os, re, subprocess, sys, time
from pathlib import Path

import nbclient
import nbformat
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / 'nbs'
# seconds: the one chapter that trains gets 10 minutes; every other chapter gets DEFAULT_LIMIT
LIMITS = {'07_training': 600}
DEFAULT_LIMIT = 180
# ... on a CPU that trains the `demo` preset at 0.21 s a step (1,400 steps in 289 s: experiments/ledger.csv, 839b074)
REFERENCE_STEP = 0.21
PACE_PROBE = '''
import tempfile
from butterfly_diffusion.core import get_config
from butterfly_diffusion.unet import UNet, UNet_classifier
from butterfly_diffusion.training import train_classifier_guidance
c = get_config('demo', steps={steps}, log_every={every}, checkpoint_every=10**6)
with tempfile.TemporaryDirectory() as d:
    h = train_classifier_guidance(UNet.from_config(c), UNet_classifier.from_config(c), c.num_classes, cfg=c, out=d,
                                  progress=False).history
print((h['seconds'][-1] - h['seconds'][0]) / (h['step'][-1] - h['step'][0]))
'''
_ansi = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')


def pictures(nb) -> int:
    "How many images a notebook's outputs show."
    return sum('image/png' in o.get('data', {}) for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []))


def problems(nb) -> list[str]:
    "Error outputs and anything written to stderr (warnings, tracebacks), as one line each: `cell N: ...`."
    found = []
    for i, c in enumerate(nb.cells):
        for o in c.get('outputs', []) if c.cell_type == 'code' else []:
            if o.get('output_type') == 'error':
                found.append(f'cell {i}: {o.get("ename")}: {_ansi.sub("", str(o.get("evalue")))[:300]}')
            elif o.get('output_type') == 'stream' and o.get('name') == 'stderr' and o.get('text', '').strip():
                found.append(f'cell {i}: stderr: {_ansi.sub("", o["text"]).strip().splitlines()[0][:300]}')
    return found


def without_show_doc_outputs(nb):
    "`nb` with the outputs of its show_doc cells cleared: a cell shows only its last call's, and the docs builder renders every call of a cell saved without output."
    for cell in nb.cells:
        lines = [l for l in cell.source.splitlines() if l.strip()]
        if cell.cell_type == 'code' and lines and all(l.startswith('show_doc(') for l in lines):
            cell.outputs, cell.execution_count = [], None
    return nb


def step_seconds(steps: int = 40, every: int = 10) -> float:
    "Seconds a `demo` training step takes on this CPU, in a fresh Python as a chapter's kernel has (the first `every` steps warm up, unmeasured)."
    out = subprocess.run([sys.executable, '-c', PACE_PROBE.format(steps=steps, every=every)], capture_output=True,
                         text=True, cwd=ROOT)
    if out.returncode: sys.exit(f'Measuring this CPU\'s pace (a short demo training) failed:\n{out.stderr[-2000:]}\n'
                                f'Mend that, or give --pace (1 keeps the limits as set) to skip the measurement.')
    return float(out.stdout.split()[-1])


def stretched(limit: int, pace: float) -> int:
    "A chapter's `limit` in whole seconds on a CPU `pace` times slower than the reference; never below `limit` on a faster one."
    if not pace > 0: raise ValueError(f'pace must be a positive number, not {pace!r}: 1 keeps the limits as set.')
    return math.ceil(limit * max(1.0, pace))


def run_chapter(path: Path, limit: float, save: bool = False) -> dict:
    "Execute one chapter in a fresh kernel as a learner's Run All; return its row."
    saved = nbformat.read(path, as_version=4)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=limit, startup_timeout=120, kernel_name='python3',
                                     resources={'metadata': {'path': str(path.parent)}})
    t0, note = time.time(), ''
    try: client.execute()
    except CellExecutionError: pass                       # the error output is in the notebook: counted below
    except CellTimeoutError: note = f'a cell ran past {limit:.0f} s'
    except DeadKernelError as e: note = f'the kernel died ({e})'
    seconds = time.time() - t0
    found = problems(nb) + ([note] if note else [])
    if seconds > limit and not note: found.append(f'took {seconds:.0f} s, over its {limit:.0f} s')
    shown, before = pictures(nb), pictures(saved)
    if shown < before: found.append(f'shows {shown} pictures, its saved outputs {before}')
    if save and not found: nbformat.write(without_show_doc_outputs(nb), path)
    return dict(chapter=path.stem, seconds=seconds, limit=limit, problems=found, saved_pictures=before, pictures=shown)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('chapters', nargs='*', help='notebook names (default: every chapter in nbs/, in reading order)')
    p.add_argument('--save', action='store_true', help='write each chapter that passed back with its new outputs')
    p.add_argument('--pace', type=float, default=None,
                   help='how many times slower than the reference CPU this one is (default: measured, ~30 s; 1 keeps the limits as set)')
    a = p.parse_args(argv)
    paths = ([NBS / (c if c.endswith('.ipynb') else f'{c}.ipynb') for c in a.chapters] if a.chapters else
             sorted(q for q in NBS.glob('*.ipynb') if not q.name.startswith(('.', '_'))))
    missing = [str(q) for q in paths if not q.exists()]
    if missing: sys.exit(f'No such chapter: {", ".join(missing)} (the chapters are the notebooks in {NBS}).')
    env_was = {k: os.environ.pop(k, None) for k in ('IN_TEST', 'MPLBACKEND')}   # the learner's preset; the inline backend
    run = ROOT / 'checkpoints' / 'demo' / 'last.pt'
    print(f'Learner run of {len(paths)} chapter(s) in {NBS}; '
          + (f'{run} exists: chapters use that run.' if run.exists() else 'no demo run yet: chapters use the shipped weights until the training chapter makes one.'),
          flush=True)
    if a.pace is None:
        step = step_seconds()
        a.pace = step / REFERENCE_STEP
        print(f'This CPU trains the demo preset at {step:.2f} s a step, {a.pace:.1f}x the {REFERENCE_STEP} s the limits were '
              f'set on' + (f': every limit stretches {a.pace:.1f}x.' if a.pace > 1 else ': the limits stay as set.'), flush=True)
    rows = []
    for q in paths:
        rows.append(run_chapter(q, stretched(LIMITS.get(q.stem, DEFAULT_LIMIT), a.pace), a.save))
        r = rows[-1]
        print(f'{r["chapter"]:24s} {r["seconds"]:6.0f} s (limit {r["limit"]:.0f})  problems {len(r["problems"])}  '
              f'pictures {r["pictures"]} (saved {r["saved_pictures"]})', flush=True)
        for line in r['problems']: print(f'    {line}', flush=True)
    for k, v in env_was.items():
        if v is not None: os.environ[k] = v
    bad = [r['chapter'] for r in rows if r['problems']]
    if bad: print(f'Failed as a learner runs them: {", ".join(bad)}')
    print(f'{len(rows) - len(bad)} passed, {len(bad)} failed')
    return 1 if bad else 0


if __name__ == '__main__': sys.exit(main())
