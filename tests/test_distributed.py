"""Training under torchrun with two CPU processes (gloo): the same weights as one process with the whole batch, an
exact resume, a clear stop when one rank dies, an elastic restart that resumes, and clear errors. Each test starts
real `torchrun` jobs of the tiny preset (a few seconds each)."""
import os, signal, subprocess, sys, time
from pathlib import Path
import pytest
import torch
from butterfly_diffusion.checkpoint import read_checkpoint

pytestmark = pytest.mark.distributed
HERE = Path(__file__).parent
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def torchrun(*args, ranks=2, extra=(), **kw) -> subprocess.CompletedProcess:
    "`torchrun --standalone` (a free port on this machine) with `ranks` processes, running `args`."
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(ranks), *extra, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300, **kw)


def train(out, *args, ranks=2, **kw):
    "`butterfly-diffusion train --preset tiny` under torchrun (or alone with ranks=0)."
    args = ('-m', 'butterfly_diffusion', 'train', '--preset', 'tiny', '--out', str(out), *args)
    if ranks: return torchrun(*args, ranks=ranks, **kw)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=ENV, timeout=300)


def tensors_equal(a, b) -> list[str]:
    "The names of the tensors (nested in dicts and lists) that differ between two checkpoints."
    if isinstance(a, torch.Tensor): return [] if torch.equal(a, b) else ['']
    if isinstance(a, dict): return [f'{k}/{d}' for k in a if k != 'history' for d in tensors_equal(a[k], b[k])]
    if isinstance(a, (list, tuple)): return [f'{i}/{d}' for i, (u, v) in enumerate(zip(a, b)) for d in tensors_equal(u, v)]
    return []


def test_two_ranks_give_the_weights_of_one_process_with_the_whole_batch(tmp_path):
    # tests/ddp_worker.py: 6 steps in float64. Alone, the batch of 8 is noised in halves from the two ranks' streams,
    # so both runs compute the same losses; they differ only in how the gradient is summed (two halves, all-reduced,
    # averaged vs one batch). In float64 that reordering moves each weight by ~1e-16 relative per step (measured:
    # 4e-14 at most); 1e-9 leaves a margin of 1e4, while a wrong shard, a missing average or a second data order
    # would move weights by ~lr = 1e-3.
    r = torchrun(HERE / 'ddp_worker.py', 'ranks', tmp_path / 'ranks')
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([sys.executable, HERE / 'ddp_worker.py', 'alone', tmp_path / 'alone'], capture_output=True,
                       text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    two, one = read_checkpoint(tmp_path / 'ranks'), read_checkpoint(tmp_path / 'alone')
    assert (two['step'], two['world_size'], one['world_size']) == (6, 2, 1)
    for k in ('unet', 'classifier', 'ema'):
        for name, w in one[k].items():
            assert w.dtype in (torch.float64, torch.int64) and two[k][name].dtype == w.dtype   # (the EMA's count)
            torch.testing.assert_close(two[k][name], w, rtol=0, atol=1e-9, msg=f'{k}/{name}')
    assert not torch.equal(two['rank_rng'][0]['generator'], two['rank_rng'][1]['generator'])


def test_two_rank_resume_is_bit_exact(tmp_path):
    r = train(tmp_path / 'straight', '--steps', '8')
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'trained 8 steps' in r.stdout and r.stdout.count('trained') == 1        # rank 0 alone prints
    assert train(tmp_path / 'resumed', '--steps', '3').returncode == 0            # "stopped" after 3 steps
    r = train(tmp_path / 'resumed', '--steps', '8', '--resume')
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = read_checkpoint(tmp_path / 'straight'), read_checkpoint(tmp_path / 'resumed')
    assert a['step'] == b['step'] == 8 and len(b['rank_rng']) == 2
    assert tensors_equal(a, b) == []          # weights, EMA, both optimizers, every rank's RNG states


def rank_pid(parent: int, rank: int) -> int:
    "The pid of the torchrun worker with RANK=`rank` among `parent`'s children (read from /proc)."
    for pid in subprocess.run(['pgrep', '-P', str(parent)], capture_output=True, text=True).stdout.split():
        try: env = Path(f'/proc/{pid}/environ').read_bytes().split(b'\0')
        except OSError: continue
        if f'RANK={rank}'.encode() in env: return int(pid)
    raise LookupError(f'no rank {rank} under {parent}')


def start_until_checkpoint(out: Path, steps: int, *extra) -> subprocess.Popen:
    "Start a two-rank run of `steps` steps in the background; return once its first checkpoint is on disk."
    args = ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', *extra, '-m', 'butterfly_diffusion',
            'train', '--preset', 'tiny', '--steps', str(steps), '--out', str(out)]
    p = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    t0 = time.time()
    while not (out / 'last.pt').exists():
        assert p.poll() is None and time.time() - t0 < 120, 'no checkpoint was written'
        time.sleep(0.05)
    return p


def kill_rank_1_after_first_checkpoint(out: Path, *extra) -> tuple[subprocess.Popen, str]:
    "Start a long two-rank run; SIGKILL rank 1 once a checkpoint exists; return the finished job and its output."
    p = start_until_checkpoint(out, 120, *extra)
    os.kill(rank_pid(p.pid, 1), signal.SIGKILL)
    output, _ = p.communicate(timeout=180)
    return p, output


def test_killing_one_rank_ends_the_other_clearly_and_keeps_the_checkpoint(tmp_path):
    p, output = kill_rank_1_after_first_checkpoint(tmp_path / 'run')
    assert p.returncode != 0
    assert 'Rank 0 of 2 stopped at step' in output and 'one of them failed or was killed' in output, output[-3000:]
    assert 'holds the last checkpoint (step 10)' in output
    ckpt = read_checkpoint(tmp_path / 'run')               # whole and loadable: the periodic one, at step 10
    assert ckpt['step'] == 10 and ckpt['world_size'] == 2
    assert not list((tmp_path / 'run').glob('*.tmp'))


@pytest.mark.skipif(not os.environ.get('BD_ELASTIC_TEST'), reason=(
    'opt-in (BD_ELASTIC_TEST=1): on this 2-core machine the restarted group hangs in about half the runs, before '
    "our code runs (torch's restart rendezvous / gloo mesh); when it starts, the run resumes and finishes"))
def test_elastic_restart_resumes_from_the_checkpoint(tmp_path):
    p, output = kill_rank_1_after_first_checkpoint(tmp_path / 'run', '--max-restarts', '1')
    if p.returncode and 'connectFullMesh failed' in output:
        # the restarted group's gloo mesh can time out connecting, inside torch's launcher before our code runs (a
        # startup race under load, seen once); give the launcher one more chance
        p, output = kill_rank_1_after_first_checkpoint(tmp_path / 'again' / 'run', '--max-restarts', '1')
        tmp_path /= 'again'
    assert p.returncode == 0, output[-3000:]
    assert 'trained 120 steps' in output                    # the restarted processes went on to the end
    h = read_checkpoint(tmp_path / 'run')['history']
    assert h['step'][-1] == 120 and h['step'] == sorted(set(h['step']))   # resumed at a checkpoint: no step logged twice


def test_resume_with_another_number_of_processes_says_what_changes(tmp_path):
    assert train(tmp_path / 'run', '--steps', '4').returncode == 0
    r = train(tmp_path / 'run', '--steps', '8', '--resume', ranks=0)      # one process continues a two-rank run
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'Resuming with 1 process(es) a run that 2 wrote' in r.stderr and 'no longer bit-identical' in r.stderr
    ckpt = read_checkpoint(tmp_path / 'run')
    assert ckpt['step'] == 8 and ckpt['world_size'] == 1 and 'rank_rng' not in ckpt


def test_a_batch_that_does_not_split_over_the_ranks_is_a_clear_error(tmp_path):
    r = train(tmp_path / 'run', '--batch_size', '7')
    assert r.returncode != 0
    assert 'batch_size=7 cannot be split evenly over 2 processes: use a multiple of 2' in r.stderr, r.stderr[-3000:]
    assert not (tmp_path / 'run' / 'last.pt').exists()


def test_ctrl_c_stops_every_rank_at_the_same_step_and_saves_it(tmp_path):
    out = tmp_path / 'run'
    p = start_until_checkpoint(out, 100_000)
    time.sleep(0.5)
    os.kill(p.pid, signal.SIGINT)          # torchrun passes it on to both ranks (as SIGTERM)
    output, _ = p.communicate(timeout=120)
    stops = {int(s) for s in __import__('re').findall(r'stopped after step (\d+)', output)}
    assert len(stops) == 1, output[-3000:]                    # both ranks, one step
    step, = stops
    assert f'Stopped after step {step}, saved to {out / "last.pt"}' in output
    ckpt = read_checkpoint(out)
    assert ckpt['step'] == step and step % 5 == 0 and len(ckpt['rank_rng']) == 2   # at a log step (tiny: every 5)
