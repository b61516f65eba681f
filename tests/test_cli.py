"""The command line as a user types it: train on a real-layout dataset, then sample from the checkpoint."""
import subprocess, sys
from pathlib import Path
import pytest
from PIL import Image
from butterfly_diffusion.data import make_example_dataset


def cli(*args, cwd):
    exe = Path(sys.executable).parent / 'butterfly-diffusion'       # the console script settings.ini declares
    return subprocess.run([exe, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env={'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg',
                                                                'PATH': '', 'HOME': str(cwd)})


@pytest.mark.parametrize('layout', ['csv', 'folders'])
def test_train_then_sample_on_a_real_layout(tmp_path, layout):
    root = make_example_dataset(tmp_path / 'data', layout=layout, num_classes=3, n_per_class=6)
    r = cli('train', '--preset', 'tiny', '--data', root, '--steps', 3, '--batch_size', 4, '--out', tmp_path / 'ck',
            '--device', 'cpu', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'trained 3 steps' in r.stdout
    r = cli('sample', '--checkpoint', tmp_path / 'ck', '--num_classes', 3, '--steps', 2, '--out', tmp_path / 's', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list((tmp_path / 's').glob('*.png'))) == 4          # three species and the overview


def test_sample_without_a_checkpoint_says_how_to_train(tmp_path):
    r = cli('sample', '--checkpoint', tmp_path / 'none', cwd=tmp_path)
    assert r.returncode != 0 and 'Train one first' in r.stderr


@pytest.mark.parametrize('flag, classes', [('--conditional', 3), ('--unconditional', None)])
def test_train_flags_choose_a_conditional_or_unconditional_unet(tmp_path, flag, classes):
    from butterfly_diffusion.checkpoint import read_checkpoint
    root = make_example_dataset(tmp_path / 'data', layout='folders', num_classes=3, n_per_class=6)
    r = cli('train', '--preset', 'tiny', '--data', root, '--steps', 2, '--batch_size', 4, '--out', tmp_path / 'ck',
            flag, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert read_checkpoint(tmp_path / 'ck' / 'last.pt')['unet_classes'] == classes


def test_train_refuses_both_conditional_flags(tmp_path):
    r = cli('train', '--preset', 'tiny', '--conditional', '--unconditional', '--out', tmp_path / 'ck', cwd=tmp_path)
    assert r.returncode != 0 and 'exclude each other' in r.stderr and not (tmp_path / 'ck').exists()


def started(tmp_path, *args, ready):
    "Start `butterfly-diffusion ARGS` (output to files), and return it with its output files once `ready(stdout)` holds."
    import time
    exe = Path(sys.executable).parent / 'butterfly-diffusion'
    out, err = tmp_path / 'stdout.txt', tmp_path / 'stderr.txt'
    import signal    # as from a terminal: Ctrl-C reaches it (a test runner's worker may ignore SIGINT, which children inherit)
    p = subprocess.Popen([exe, *map(str, args)], cwd=tmp_path, stdout=out.open('w'), stderr=err.open('w'),
                         env={'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg', 'PATH': '', 'HOME': str(tmp_path),
                              'PYTHONUNBUFFERED': '1'}, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while not ready(out.read_text()):
        assert p.poll() is None and time.time() - t0 < 120, err.read_text()[-2000:]
        time.sleep(0.05)
    return p, out, err


@pytest.mark.parametrize('sig,status', [('SIGINT', 130), ('SIGTERM', 143)])
def test_a_signal_stops_training_with_one_line_and_the_usual_status(tmp_path, sig, status):
    "Ctrl-C or `kill` during `train`: the step finishes, the run is saved, one line says how to continue; 128 + signal."
    import signal
    from butterfly_diffusion.checkpoint import read_checkpoint
    ck = tmp_path / 'ck' / 'last.pt'
    p, out, err = started(tmp_path, 'train', '--preset', 'tiny', '--steps', 100_000, '--out', tmp_path / 'ck',
                          '--device', 'cpu', ready=lambda _: ck.exists())   # the first checkpoint (step 10) is on disk
    p.send_signal(getattr(signal, sig))
    p.wait(timeout=120)
    out, err = out.read_text(), err.read_text()
    assert p.returncode == status, (p.returncode, err[-2000:])
    line = err.strip().splitlines()[-1]
    assert line.startswith(f'butterfly-diffusion train: stopped: {sig} received') and '--resume' in line, line
    assert 'Traceback' not in err and 'Stopped after step' in out
    assert read_checkpoint(ck)['step'] >= 10 and [f.name for f in ck.parent.iterdir()] == ['last.pt']


@pytest.mark.parametrize('sig,status', [('SIGINT', 130), ('SIGTERM', 143)])
def test_a_signal_stops_sampling_with_one_line_and_the_usual_status(tmp_path, sig, status):
    import signal
    p, out, err = started(tmp_path, 'sample', '--checkpoint', 'demo', '--n_per_class', 100, '--steps', 50,
                          '--out', tmp_path / 's', ready=lambda text: 'sampling from' in text)   # sampling under way
    p.send_signal(getattr(signal, sig))
    p.wait(timeout=120)
    err = err.read_text()
    assert p.returncode == status, (p.returncode, err[-2000:])
    assert err.strip().splitlines()[-1].startswith(f'butterfly-diffusion sample: stopped: {sig} received') and 'Traceback' not in err


@pytest.mark.parametrize('raised,status', [(KeyboardInterrupt(), 130), (KeyboardInterrupt('SIGTERM received'), 143)])
def test_a_stop_while_the_options_are_read_ends_in_one_line(monkeypatch, capsys, raised, status):
    "A signal can land while fastcore reads the options (CI caught one there): the same one line, no traceback."
    import butterfly_diffusion.cli as cli_module
    def stopped(*args, **kwargs): raise raised
    monkeypatch.setattr(cli_module, 'anno_parser', stopped)
    assert cli_module.main(['sample', '--checkpoint', 'demo']) == status
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f'butterfly-diffusion sample: stopped: {str(raised) or "SIGINT received"}. '
                                        'Run the command again: it draws every grid anew.'], err


def test_sample_takes_the_guidance_intervals(monkeypatch, capsys, tmp_path):
    "`sample --t_max --cfg_t_max` reach the pipeline as numbers; one out of range is refused before any drawing."
    import butterfly_diffusion.cli as cli_module
    seen = {}
    monkeypatch.setattr(cli_module, 'generate_and_save_images', lambda *a, **kw: seen.update(kw) or {'paths': [], 'overview': 'o'})
    assert cli_module.main(['sample', '--checkpoint', 'demo', '--t_max', '600', '--cfg_t_max', '1000', '--out', str(tmp_path)]) == 0
    assert (seen['t_max'], seen['cfg_t_max']) == (600, 1000)
    seen.clear()
    assert cli_module.main(['sample', '--checkpoint', 'demo', '--cfg_t_max', '-1', '--out', str(tmp_path)]) != 0
    assert seen == {} and 'cfg_t_max' in capsys.readouterr().err


def test_two_runs_into_one_folder_never_lose_a_run(tmp_path):
    "Two `train` into the same --out started together, ten times: exactly one trains, the other says who holds the folder."
    from butterfly_diffusion.checkpoint import read_checkpoint
    exe = Path(sys.executable).parent / 'butterfly-diffusion'
    env = {'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg', 'PATH': '', 'HOME': str(tmp_path)}
    for k in range(10):
        out = tmp_path / f'race{k}'
        runs = [subprocess.Popen([exe, 'train', '--preset', 'tiny', '--steps', str(steps), '--out', str(out), '--device', 'cpu'],
                                 cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                for steps in (12, 16)]
        done = [(p.wait(timeout=300), p.communicate()) for p in runs]
        codes = sorted(rc for rc, _ in done)
        assert codes == [0, 2], [(rc, err[-600:]) for rc, (_, err) in done]
        winner = [12, 16][[rc for rc, _ in done].index(0)]
        lost = next(err for rc, (_, err) in done if rc == 2).strip().splitlines()[-1]
        assert f'is in use: process ' in lost or 'already holds a training run' in lost, lost   # who, or what is there
        assert 'Traceback' not in lost and read_checkpoint(out)['step'] == winner      # the winner's run, whole
        assert sorted(f.name for f in out.iterdir()) == ['last.pt']


def test_a_crashed_run_leaves_its_folder_free(tmp_path):
    "SIGKILL a training run: the OS drops its lock, so the next start resumes at once."
    import signal
    ck = tmp_path / 'ck' / 'last.pt'
    p, out, err = started(tmp_path, 'train', '--preset', 'tiny', '--steps', 100_000, '--out', tmp_path / 'ck',
                          '--device', 'cpu', ready=lambda _: ck.exists())
    p.send_signal(signal.SIGKILL); p.wait(timeout=60)
    from butterfly_diffusion.checkpoint import read_checkpoint
    n = read_checkpoint(ck)['step'] + 2
    r = cli('train', '--preset', 'tiny', '--steps', n, '--out', tmp_path / 'ck', '--resume', '--device', 'cpu', cwd=tmp_path)
    assert r.returncode == 0 and read_checkpoint(ck)['step'] == n, r.stderr[-1500:]


def test_a_full_disk_ends_training_in_one_line_and_keeps_the_last_checkpoint(tmp_path):
    "The disk refuses the next checkpoint (RLIMIT_FSIZE stands in for a full disk): one line, the old checkpoint whole."
    import resource, signal
    r = cli('train', '--preset', 'tiny', '--steps', 20, '--out', tmp_path / 'ck', '--device', 'cpu', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-1500:]
    ck = tmp_path / 'ck' / 'last.pt'
    before = ck.read_bytes()
    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)            # the OS then says "file too large" instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) // 2, len(before) // 2))
    exe = Path(sys.executable).parent / 'butterfly-diffusion'
    r = subprocess.run([exe, 'train', '--preset', 'tiny', '--steps', '40', '--out', str(tmp_path / 'ck'), '--resume',
                        '--device', 'cpu'], cwd=tmp_path, capture_output=True, text=True, preexec_fn=small_disk,
                       env={'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg', 'PATH': '', 'HOME': str(tmp_path)})
    line = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert line.startswith(f'butterfly-diffusion train: error: Cannot write {ck}: file too large. {ck} still holds'), line
    assert ck.read_bytes() == before and [f.name for f in ck.parent.iterdir()] == ['last.pt']   # whole, no temp file


def test_a_run_knows_its_data_resume_and_evaluate_check_it(tmp_path):
    "The same file names over other pictures cannot resume a run; a moved dataset can; evaluate asks for the run's data."
    root = make_example_dataset(tmp_path / 'data', layout='folders', num_classes=3, n_per_class=6)
    train = lambda data, *a: cli('train', '--preset', 'tiny', '--data', data, '--batch_size', 4, '--out', tmp_path / 'ck',
                                 '--device', 'cpu', *a, cwd=tmp_path)
    assert train(root, '--steps', 2).returncode == 0
    moved = root.rename(tmp_path / 'moved')                                   # the same photos in another folder
    r = train(moved, '--steps', 3, '--resume')
    assert r.returncode == 0, r.stderr[-1500:]
    photo = sorted((moved / sorted(p.name for p in moved.iterdir())[0]).iterdir())[0]
    Image.new('RGB', (40, 40), (200, 30, 30)).save(photo, format=Image.open(photo).format)   # another picture, same name
    r = train(moved, '--steps', 4, '--resume')
    assert r.returncode == 2 and 'Cannot resume' in r.stderr and 'contents_sha256' in r.stderr, r.stderr[-1500:]
    r = cli('evaluate', '--checkpoint', tmp_path / 'ck', '--n_per_class', 1, '--out', tmp_path / 'e', cwd=tmp_path)
    assert r.returncode == 2 and f'--data {moved.resolve()}' in r.stderr and 'not on the built-in butterflies' in r.stderr, r.stderr
    assert not (tmp_path / 'e').exists()


def test_a_run_folder_inside_the_data_and_a_wrong_species_count_are_refused_before_any_work(tmp_path):
    "`--out` inside `--data` would be read as a species next time; `--num_classes` must match what `--data` holds."
    root = make_example_dataset(tmp_path / 'data', layout='folders', num_classes=3, n_per_class=3)
    before = sorted(p.relative_to(root) for p in root.rglob('*'))
    r = cli('train', '--preset', 'tiny', '--data', root, '--out', root / 'runs', cwd=tmp_path)
    assert r.returncode == 2 and 'is inside the dataset folder' in r.stderr and f'e.g. --out {root.resolve().parent / "runs" / "data"}' in r.stderr, r.stderr
    r = cli('train', '--preset', 'tiny', '--data', root, '--num_classes', 5, '--out', tmp_path / 'ck', cwd=tmp_path)
    assert r.returncode == 2 and 'holds 3 species but --num_classes 5' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    for args in (('evaluate', '--checkpoint', 'demo', '--out', root / 'pictures'),          # pictures too: never a species
                 ('demo', '--out', tmp_path / 'ck', '--samples', root / 'grids')):
        r = cli(*args, '--data', root, cwd=tmp_path)
        assert r.returncode == 2 and 'is inside the dataset folder' in r.stderr and 'Traceback' not in r.stderr, r.stderr
        assert f'e.g. --{"out" if args[0] == "evaluate" else "samples"} {root.resolve().parent}/data-' in r.stderr, r.stderr
    assert sorted(p.relative_to(root) for p in root.rglob('*')) == before and not (tmp_path / 'ck').exists()


def test_train_an_upsampler_then_sample_128_px_through_it(tmp_path):
    "The second stage of the cascade from the command line: `train --preset upsampler`, then `sample --upsampler --size`."
    root = make_example_dataset(tmp_path / 'data', layout='folders', num_classes=3, n_per_class=4)
    r = cli('train', '--preset', 'upsampler', '--data', root, '--steps', 2, '--batch_size', 4, '--out', tmp_path / 'up', cwd=tmp_path)
    assert r.returncode == 0 and 'trained 2 steps' in r.stdout, r.stderr[-2000:]
    r = cli('train', '--preset', 'upsampler', '--conditional', '--out', tmp_path / 'up2', cwd=tmp_path)
    assert r.returncode == 2 and 'an upsampler reads no species' in r.stderr, r.stderr[-2000:]
    r = cli('sample', '--checkpoint', 'demo', '--upsampler', tmp_path / 'up', '--num_classes', 2, '--n_per_class', 1,
            '--steps', 2, '--out', tmp_path / 's', cwd=tmp_path)
    assert r.returncode == 0 and 'draws 128 px' in r.stdout, r.stderr[-2000:]
    grid = sorted((tmp_path / 's').glob('0*.png'))
    assert len(grid) == 2 and Image.open(grid[0]).size[1] >= 128, [Image.open(g).size for g in grid]
    for up, args, problem in ((tmp_path / 'up', ['--size', 64], '--size 64: this checkpoint draws 32 px, its upsampler 128 px'),
                              ('demo', [], 'holds a base model')):
        r = cli('sample', '--checkpoint', 'demo', '--upsampler', up, '--out', tmp_path / 's2', *args, cwd=tmp_path)
        assert r.returncode == 2 and problem in r.stderr and not (tmp_path / 's2').exists(), r.stderr[-2000:]
    r = cli('sample', '--checkpoint', 'demo', '--size', 128, '--out', tmp_path / 's3', cwd=tmp_path)
    assert r.returncode == 2 and 'give --upsampler for larger pictures' in r.stderr, r.stderr[-2000:]
    for args, problem in ((['demo', '--upsampler', tmp_path / 'up', '--size', 64], '--size 64: this cascade draws 128 px from 32 px'),
                          (['butterflies-75', '--size', 32], 'leave out --size and --upsampler'),   # the base model's own size
                          (['demo', '--upsampler', 'demo'], 'holds a base model')):
        r = cli('evaluate', '--checkpoint', *args, '--out', tmp_path / 'e', cwd=tmp_path)   # refused before any judge
        assert r.returncode == 2 and problem in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]
    r = cli('evaluate', '--checkpoint', tmp_path / 'up', '--size', 128, '--out', tmp_path / 'e', cwd=tmp_path)
    assert r.returncode == 2 and 'No upsampler ships with' in r.stderr and '--upsampler PATH' in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / 'e').exists()
