"""Every notebook runs top to bottom in a real Jupyter kernel, as a learner's "Run all" in JupyterLab does.

`nbdev_test` executes notebooks in-process with execnb; this runs them through nbclient + ipykernel instead, so
what only a kernel does (the inline matplotlib backend, display hooks, widgets, `__main__` semantics, magics) is
covered too. The kernel gets IN_TEST=1, so `get_config()` gives the `tiny` preset and the notebooks' final
`nbdev.nbdev_export()` is a no-op. Each notebook runs in a temp copy of nbs/ that has no settings.ini above it: an
export that did not skip would fail there ("must be called from a directory within a nbdev project"); the
notebooks themselves are never modified (the kernel runs the copy; nothing is saved).

Deselect with `-m "not notebooks"`. NB_TIMEOUT (seconds per notebook, default 300) bounds each notebook;
TEST_NBS_DIR=folder runs the notebooks of another folder.
"""
from __future__ import annotations
import os, re, shutil, signal, threading, time
from pathlib import Path

import nbclient
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parent.parent
NBS = Path(os.environ.get('TEST_NBS_DIR', ROOT / 'nbs'))  # another folder, to try this on scratch notebooks
TIMEOUT = float(os.environ.get('NB_TIMEOUT', 300))
NOTEBOOKS = sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith(('.', '_')))
_ansi = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')

pytestmark = pytest.mark.notebooks


def _failure(nb, name: str, timed_out: bool) -> str:
    "The notebook, the failing cell (number, first lines) and its error, for the test report."
    for i, cell in enumerate(nb.cells):
        for out in cell.get('outputs', []):
            if out.get('output_type') == 'error':
                src = '\n'.join('    ' + l for l in cell.source.splitlines()[:12])
                tb = _ansi.sub('', '\n'.join(out.get('traceback', [])))[-3000:]
                why = f'timed out after {TIMEOUT:.0f} s (NB_TIMEOUT) and was interrupted\n' if timed_out else ''
                where = f'cell {i} (In [{cell.get("execution_count") or " "}], counting markdown cells from 0)'
                return (f'{name}: {where} failed: {out.get("ename")}: {out.get("evalue")}\n{why}'
                        f'--- cell {i} source ---\n{src}\n--- traceback ---\n{tb}')
    return f'{name}: failed without an error output' + (f' (timed out after {TIMEOUT:.0f} s)' if timed_out else '')


@pytest.mark.parametrize('path', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_kernel(path, tmp_path, monkeypatch):
    work = tmp_path / 'nbs'
    shutil.copytree(NBS, work, ignore=shutil.ignore_patterns('.ipynb_checkpoints', '_proc'))
    nb = nbformat.read(work / path.name, as_version=4)
    monkeypatch.setenv('IN_TEST', '1')            # the kernel inherits this environment: tiny preset, export skipped
    monkeypatch.delenv('MPLBACKEND', raising=False)  # JupyterLab's kernel uses the inline backend
    client = nbclient.NotebookClient(nb, timeout=TIMEOUT + 60, startup_timeout=120, kernel_name='python3',
                                     resources={'metadata': {'path': str(work)}})
    timed_out, error = threading.Event(), None
    def interrupt():  # one wall-clock budget for the whole notebook, not only per cell: Ctrl-C the kernel
        timed_out.set()
        pid = getattr(getattr(client.km, 'provisioner', None), 'pid', None)
        if pid: os.kill(pid, signal.SIGINT)
    timer = threading.Timer(TIMEOUT, interrupt); timer.daemon = True
    t0 = time.time(); timer.start()
    try: client.execute()
    except CellExecutionError: error = _failure(nb, path.name, timed_out.is_set())
    except CellTimeoutError as e: error = f'{path.name}: a cell timed out: {e}'
    except DeadKernelError as e: error = f'{path.name}: the kernel died ({e}); out of memory?'
    finally: timer.cancel()
    if error: pytest.fail(error, pytrace=False)  # outside `except`, so the report is just this message
    print(f'{path.name}: {time.time() - t0:.1f} s in a Jupyter kernel')
