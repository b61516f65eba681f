"""tools/learner_run.py: what counts as a failed chapter for a learner (an error or stderr output, too few pictures)."""
import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location('learner_run', ROOT / 'tools' / 'learner_run.py')
learner_run = importlib.util.module_from_spec(spec); spec.loader.exec_module(learner_run)

PLOT = "import matplotlib.pyplot as plt\nplt.plot([0, 1]);"


def notebook(path: Path, *sources: str, pictures_saved: int = 0) -> Path:
    "A notebook of code cells, the first `pictures_saved` of them with a saved picture (a 1-pixel PNG)."
    nb = nbformat.v4.new_notebook(metadata={'kernelspec': {'name': 'python3', 'display_name': 'python3', 'language': 'python'}})
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=='
    for c in nb.cells[:pictures_saved]:
        c.outputs = [nbformat.v4.new_output('display_data', data={'image/png': png, 'text/plain': '<Figure>'})]
    nbformat.write(nb, path)
    return path


def test_problems_and_pictures_are_counted():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('1/0'), nbformat.v4.new_code_cell('x'), nbformat.v4.new_markdown_cell('text')]
    nb.cells[0].outputs = [nbformat.v4.new_output('error', ename='ZeroDivisionError', evalue='division by zero', traceback=[])]
    nb.cells[1].outputs = [nbformat.v4.new_output('stream', name='stderr', text='UserWarning: careful\n  more\n'),
                           nbformat.v4.new_output('stream', name='stdout', text='fine\n'),
                           nbformat.v4.new_output('display_data', data={'image/png': '', 'text/plain': ''})]
    assert learner_run.problems(nb) == ['cell 0: ZeroDivisionError: division by zero', 'cell 1: stderr: UserWarning: careful']
    assert learner_run.pictures(nb) == 1


@pytest.mark.notebooks
def test_a_chapter_fails_on_an_error_a_warning_or_a_lost_picture(tmp_path, monkeypatch):
    monkeypatch.delenv('IN_TEST', raising=False); monkeypatch.delenv('MPLBACKEND', raising=False)
    ok = learner_run.run_chapter(notebook(tmp_path / 'ok.ipynb', 'import os\nassert "IN_TEST" not in os.environ', PLOT,
                                          pictures_saved=1), limit=60)
    assert ok['problems'] == [] and (ok['pictures'], ok['saved_pictures']) == (1, 1)          # the inline backend drew it
    bad = learner_run.run_chapter(notebook(tmp_path / 'bad.ipynb', 'import warnings; warnings.warn("careful")', '1/0',
                                           pictures_saved=1), limit=60)
    assert [p.split(':')[0] for p in bad['problems']] == ['cell 0', 'cell 1', 'shows 0 pictures, its saved outputs 1']
    assert 'careful' in bad['problems'][0] and 'ZeroDivisionError' in bad['problems'][1]


def test_limits_stretch_with_a_slower_cpu_only():
    assert learner_run.stretched(180, 2.5) == 450             # the same work, 2.5x slower: 2.5x the time
    assert learner_run.stretched(180, 0.5) == 180             # a faster CPU keeps the limit as set
    assert learner_run.stretched(600, 1) == 600
    assert learner_run.stretched(180, 3.231) == 582             # whole seconds, as the kernel client takes them
    for bad in (0, -1, float('nan')):
        with pytest.raises(ValueError, match='pace must be a positive number'): learner_run.stretched(180, bad)
