"""The command line as a user types it: train on a real-layout dataset, then sample from the checkpoint."""
import subprocess, sys
from pathlib import Path
import pytest
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
