#!/usr/bin/env python3
"""The project's entry point on a fresh clone: needs only Python 3.10+.

    python3 run.py demo    # set up (first time), train the demo model on the built-in butterflies, write guided samples
    python3 run.py test    # set up (first time), run every notebook as a test (nbdev_test) and pytest tests/
    python3 run.py docs    # set up (first time), rebuild the static site in docs/ from the notebooks
    python3 run.py learner # every chapter as a learner's Run All: a Jupyter kernel, the demo preset (tools/learner_run.py)

The first call creates an isolated environment in .venv/ and installs the package with its
development extras into it; later calls reuse it (and reinstall only when settings.ini changes).
Extra arguments after `demo` are passed to `butterfly-diffusion demo`; after `learner`, chapter names.
"""
import hashlib, os, subprocess, sys, venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / '.venv'
BIN = VENV / ('Scripts' if os.name == 'nt' else 'bin')
STAMP = VENV / '.installed-from'


def sh(*cmd, **kw):
    "Run `cmd`, echoing it; exit with its status if it fails."
    print('+', ' '.join(map(str, cmd)), flush=True)
    rc = subprocess.call([str(c) for c in cmd], cwd=ROOT, **kw)
    if rc: sys.exit(rc)


def ensure_env():
    "Create .venv and install `.[dev]` into it, unless it is already installed from the current settings.ini."
    if sys.version_info < (3, 10): sys.exit(f'Python 3.10 or newer is needed; this is {sys.version.split()[0]}.')
    want = hashlib.sha256((ROOT / 'settings.ini').read_bytes() + (ROOT / 'setup.py').read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == want: return
    if not (BIN / 'python').exists():
        print(f'Creating the environment in {VENV} (first run only)...', flush=True)
        venv.create(VENV, with_pip=True)
    sh(BIN / 'python', '-m', 'pip', 'install', '--quiet', '--upgrade', 'pip')
    sh(BIN / 'python', '-m', 'pip', 'install', '--quiet', '-e', '.[dev]')
    STAMP.write_text(want)


def env():
    "The environment for commands run inside .venv: its bin first on PATH, so notebooks' kernels use it too."
    e = dict(os.environ, VIRTUAL_ENV=str(VENV), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    e.setdefault('MPLBACKEND', 'Agg')
    return e


def main(argv):
    cmd, rest = (argv[0], argv[1:]) if argv else ('help', [])
    if cmd not in ('demo', 'test', 'docs', 'learner'): sys.exit(__doc__)
    ensure_env()
    if cmd == 'demo': sh(BIN / 'butterfly-diffusion', 'demo', *rest, env=env())
    elif cmd == 'test':
        # two notebooks run side by side on two cores: one thread each, or they slow each other down badly
        e = dict(env(), OMP_NUM_THREADS='1')
        sh(BIN / 'nbdev_test', '--n_workers', '2', '--timing', env=e)
        sh(BIN / 'python', '-m', 'pytest', '-q', '-n', '2', 'tests', *rest, env=e)
    elif cmd == 'docs': sh(BIN / 'python', ROOT / 'tools' / 'build_docs.py', *rest, env=env())
    elif cmd == 'learner': sh(BIN / 'python', ROOT / 'tools' / 'learner_run.py', *rest, env=env())


if __name__ == '__main__': main(sys.argv[1:])
