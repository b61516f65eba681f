"""The package as a user gets it: a wheel built from this checkout works without nbdev and ships its console script."""
import subprocess, sys, zipfile
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_installs_and_imports_without_nbdev(tmp_path):
    pytest.importorskip('setuptools', reason='builds without isolation, with the environment\'s setuptools')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', tmp_path, ROOT],
                   check=True, capture_output=True)
    wheel, = tmp_path.glob('butterfly_diffusion-*.whl')
    names = zipfile.ZipFile(wheel).namelist()
    assert 'butterfly_diffusion/guidance.py' in names and not any(n.startswith('nbs/') for n in names)
    entry = next(n for n in names if n.endswith('entry_points.txt'))
    assert 'butterfly-diffusion = butterfly_diffusion.cli:main' in zipfile.ZipFile(wheel).read(entry).decode()
    site = tmp_path / 'site'
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q', '--target', site, wheel], check=True)
    code = ("import sys; sys.modules['nbdev'] = None; sys.path.insert(0, sys.argv[1]); "   # nbdev cannot be imported
            "import butterfly_diffusion as bd; assert bd.__file__.startswith(sys.argv[1]), bd.__file__; "
            "m = bd.UNet_classifier(num_classes=3, image_size=16, base_filters=8, channel_mults=(1, 2), "
            "num_res_blocks=1, attn_resolutions=(8,), num_heads=2); import torch; "
            "print(m(torch.zeros(2, 3, 16, 16), torch.tensor([0, 999])).shape)")
    out = subprocess.run([sys.executable, '-c', code, site], check=True, capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == 'torch.Size([2, 3])'
