#!/usr/bin/env python3
"""Look at a page as a person would: headless Chromium takes a screenshot of it.

    python tools/screenshot.py docs/index.html index.png                 # 1280x2000 px, top of the page
    python tools/screenshot.py docs/guidance.html g.png --height 6000     # taller window = more of the page
    python tools/screenshot.py http://127.0.0.1:8000/ home.png --width 800

Uses Debian's `chromium` (apt-get install chromium), with the flags this closed network and root need.
Also used by tests/test_docs_browser.py (`find_chromium`, `run_chromium`).
"""
from __future__ import annotations
import argparse, os, shutil, signal, subprocess, tempfile
from pathlib import Path

CHROMIUM_NAMES = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
                  '--disable-default-apps', '--disable-extensions', '--mute-audio', '--hide-scrollbars']

def find_chromium() -> str | None:
    "Path of a Chromium/Chrome binary: $CHROMIUM if set, else the first of the usual names on PATH."
    if os.environ.get('CHROMIUM'): return shutil.which(os.environ['CHROMIUM'])
    for name in CHROMIUM_NAMES:
        if p := shutil.which(name): return p
    return '/usr/bin/chromium' if Path('/usr/bin/chromium').exists() else None

def run_chromium(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    "Run headless Chromium with a fresh profile; kill its whole process group if it overruns `timeout`."
    exe = find_chromium()
    if exe is None: raise FileNotFoundError('Chromium not found: apt-get install chromium (or set $CHROMIUM).')
    with tempfile.TemporaryDirectory(prefix='chromium-profile-') as profile:
        cmd = [exe, *CHROMIUM_FLAGS, f'--user-data-dir={profile}', *args]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try: out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            raise TimeoutError(f'Chromium did not finish within {timeout:.0f} s: {" ".join(args)}')
        return subprocess.CompletedProcess(cmd, p.returncode, out, err)

def to_url(target: str) -> str:
    "A URL for `target`: URLs pass through, file paths become file:// URLs."
    if '://' in target or target.startswith(('data:', 'about:')): return target
    p = Path(target).resolve()
    if not p.exists():
        raise FileNotFoundError(f'{target} does not exist (build the docs first: python tools/build_docs.py)')
    return p.as_uri()

def screenshot(target: str, out: str | Path, width: int = 1280, height: int = 2000, timeout: float = 60) -> Path:
    "Save a PNG of the page at `target` (path or URL), `width` x `height` CSS pixels from its top."
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists(): out.unlink()
    r = run_chromium([f'--screenshot={out}', f'--window-size={width},{height}', '--virtual-time-budget=5000',
                      to_url(target)], timeout=timeout)
    if not out.exists(): raise RuntimeError(f'Chromium wrote no screenshot (exit {r.returncode}):\n{r.stderr[-2000:]}')
    return out

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('target', help='a page: file path (docs/index.html) or URL')
    ap.add_argument('out', help='PNG file to write')
    ap.add_argument('--width', type=int, default=1280)
    ap.add_argument('--height', type=int, default=2000)
    a = ap.parse_args(argv)
    print(screenshot(a.target, a.out, a.width, a.height))

if __name__ == '__main__': main()
