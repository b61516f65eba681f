"""Stops at random moments: Ctrl-C or SIGTERM anywhere in `train`, `sample` and `evaluate`, and a disk that fills at a
random size. Whatever the moment, the command ends with one line and the usual status (never a traceback), and the
files on disk are whole: a run's folder holds a checkpoint that loads (or the one it held before), a picture folder
holds every picture of the command or none of them.

Each case is repeated `STOP_REPEATS` times (10; about 3 minutes on 2 cores), at moments drawn from a seeded
generator, so a failure can be replayed; `STOP_REPEATS=2` for a quick look."""
import os, random, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest
from butterfly_diffusion.checkpoint import read_checkpoint

resource = pytest.importorskip('resource')              # RLIMIT_FSIZE: POSIX only
REPEATS = int(os.environ.get('STOP_REPEATS', 10))
EXE = Path(sys.executable).parent / 'butterfly-diffusion'


def launch(args, cwd, home, preexec=None, **kw):
    "Start `butterfly-diffusion ARGS` as from a terminal (Ctrl-C reaches it), with a HOME whose font cache is built."
    def child():
        signal.signal(signal.SIGINT, signal.SIG_DFL)   # a test runner's worker may ignore SIGINT; children inherit that
        if preexec: preexec()
    return subprocess.Popen([EXE, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg', 'PATH': '', 'HOME': str(home),
                                 # Python's bytecode cache is not ours: under a file-size limit CPython can leave a
                                 # truncated .pyc (one unchecked write) that breaks every later import of the package
                                 'PYTHONDONTWRITEBYTECODE': '1'},
                            preexec_fn=child, **kw)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "A finished tiny run, sampled and evaluated once (so that HOME's caches exist), and how long each command took."
    d = tmp_path_factory.mktemp('stops')
    took = {}
    for name, args in (('train', ['train', '--preset', 'tiny', '--steps', 20, '--out', d / 'ck', '--device', 'cpu']),
                       ('sample', ['sample', '--checkpoint', d / 'ck', '--out', d / 's']),
                       ('evaluate', ['evaluate', '--checkpoint', d / 'ck', '--n_per_class', 8, '--out', d / 'e'])):
        t0 = time.time()
        p = launch(args, d, d)
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
        took[name] = time.time() - t0
    return d, took


def visible(folder: Path) -> dict:
    "Everything in `folder` (nothing if it is missing): each file's bytes, and None for a folder."
    return {f.name: f.read_bytes() if f.is_file() else None for f in sorted(folder.iterdir())} if folder.exists() else {}


def one_line_end(err: str, command: str, status: int):
    "The command ended with one line of its own and no traceback."
    assert 'Traceback' not in err, err[-3000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith('butterfly-diffusion'), line
    if status in (130, 143): assert ': stopped' in line and f'SIG{"INT" if status == 130 else "TERM"} received' in line, line
    else: assert f'butterfly-diffusion {command}: error: ' in line, line


def command_args(command, d, k):
    ck = d / 'ck'
    return {'train': ['train', '--preset', 'tiny', '--steps', 40, '--out', d / f'run{k}', '--device', 'cpu'],
            'sample': ['sample', '--checkpoint', ck, '--out', d / f'grids{k}'],
            'evaluate': ['evaluate', '--checkpoint', ck, '--n_per_class', 8, '--out', d / f'pictures{k}']}[command]


def check_outputs(command, d, k, finished=False):
    "What a stopped command left: a loadable checkpoint or none; every picture or none. A finished one: all of it."
    if command == 'train':
        files = visible(d / f'run{k}')
        assert set(files) <= {'last.pt'}, set(files)
        if finished: assert read_checkpoint(d / f'run{k}' / 'last.pt')['step'] == 40
        elif files: assert 0 < read_checkpoint(d / f'run{k}' / 'last.pt')['step'] <= 40   # loads: whole
    else:
        folder = d / f'{"grids" if command == "sample" else "pictures"}{k}'
        reference = visible(d / ('s' if command == 'sample' else 'e'))   # what a complete run wrote
        files = visible(folder)
        assert not any(f.startswith('.') for f in files), sorted(files)   # no half-written folder left behind
        assert set(files) in ([set(reference)] if finished else [set(), set(reference)]), (sorted(files), sorted(reference))


@pytest.mark.parametrize('command', ['train', 'sample', 'evaluate'])
def test_a_signal_at_a_random_moment_loses_nothing(trained, command):
    d, took = trained
    rng = random.Random(f'signal {command}')
    for k in range(REPEATS):
        p = launch(command_args(command, d, k), d, d)
        time.sleep(rng.uniform(0.3, took[command] * 1.1))   # from when the command starts (Python's own ~0.1 s comes first)
        sig = rng.choice([signal.SIGINT, signal.SIGTERM])
        p.send_signal(sig)
        _, err = p.communicate(timeout=300)
        assert p.returncode in (0, 128 + sig, -sig), (k, p.returncode, err[-2000:])
        assert 'Traceback' not in err, err[-3000:]
        if p.returncode > 0: one_line_end(err, command, p.returncode)
        check_outputs(command, d, k, finished=p.returncode <= 0)   # -sig: Python had finished and was exiting


@pytest.mark.parametrize('command', ['train', 'sample', 'evaluate'])
def test_a_disk_that_fills_at_a_random_size_loses_nothing(trained, command):
    "RLIMIT_FSIZE, drawn at random up to a little over the largest file, stands in for a disk that fills."
    d, _ = trained
    rng = random.Random(f'disk {command}')
    own = {'train': d / 'ck', 'sample': d / 's', 'evaluate': d / 'e'}[command]   # the files this command writes
    sizes = [f.stat().st_size for f in own.iterdir()]
    for k in range(REPEATS):                  # the first limit is below every file: a write must fail
        limit = rng.randint(0, min(sizes) - 1) if k == 0 else rng.randint(0, int(max(sizes) * 1.2))
        if command == 'train':                                       # a run to continue: its checkpoint must survive
            (d / f'run{k}').mkdir(exist_ok=True); shutil.copy(d / 'ck' / 'last.pt', d / f'run{k}' / 'last.pt')
            args = [*command_args(command, d, k), '--resume']
        else:                                                        # a folder of earlier pictures: kept or replaced whole
            out = d / f'{"grids" if command == "sample" else "pictures"}{k}'
            shutil.copytree(d / ('s' if command == 'sample' else 'e'), out, dirs_exist_ok=True)
            args = command_args(command, d, k)
        before = visible(d / f'run{k}') if command == 'train' else visible(out)
        def small_disk(limit=limit):
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)            # the OS then says "file too large" instead of killing
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        p = launch(args, d, d, preexec=small_disk)
        _, err = p.communicate(timeout=300)
        assert p.returncode in (0, 2), (k, limit, p.returncode, err[-2000:])
        if p.returncode:
            one_line_end(err, command, 2)
            assert 'file too large' in err.strip().splitlines()[-1], err.strip().splitlines()[-1]
            if command == 'train': assert visible(d / f'run{k}') == before                  # the old checkpoint, whole
            else: assert visible(out) == before                                                # the old pictures, all
        else: check_outputs(command, d, k, finished=True)
