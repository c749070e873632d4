"""A tool run in a fork of the warm interpreter is the run of a new process.

The suite's tool runs go through :func:`tests.fixtures.processes.run_process`
(:mod:`tests.fixtures.warm_python`): what a script sees and what the test
reads back must be what ``python SCRIPT.py ARGS`` gives.
"""
import json
import os
import os.path as osp
import subprocess

import pytest

from .fixtures.processes import (PYTHON, REPO, run_process, tool_env,
                                 warm_interpreter)
from .fixtures.warm_python import WarmInterpreterGone, WarmPython

PROBE = r'''
import atexit
import json
import os
import sys

import numpy

facts = dict(
    argv=sys.argv,
    file=__file__,
    name=__name__,
    path0=sys.path[0],
    path=sys.path,
    helper=getattr(__import__('importlib.util').util.find_spec(
        'probe_helper'), 'origin', None),
    cwd=os.getcwd(),
    stdin=os.readlink('/proc/self/fd/0'),
    repo_imported=sorted(m for m in sys.modules if m.split('.')[0] in (
        'mmreid', 'mmpretrain', 'tests')),
    threads=len(os.listdir('/proc/self/task')),
    variable=os.environ.get('PROBE_VARIABLE'),
    ppid=os.getppid(),
    draw=float(numpy.random.rand()))
print(json.dumps(facts))
sys.stderr.write('to stderr\r\nwith a carriage return\r')
atexit.register(print, 'atexit ran')
how = sys.argv[1] if len(sys.argv) > 1 else ''
if how == 'code':
    sys.exit(3)
if how == 'message':
    sys.exit('a message')
if how == 'raise':
    raise ValueError('uncaught')
if how == 'sleep':
    import time
    sys.stdout.flush()  # the kill drops what is buffered
    time.sleep(60)
'''


@pytest.fixture(scope='module')
def probe(tmp_path_factory):
    """The probe script, reached through a symbolic link (``sys.path[0]``
    is the folder of the file it links to)."""
    folder = tmp_path_factory.mktemp('probe')
    (folder / 'real').mkdir()
    target = folder / 'real' / 'probe.py'
    target.write_text(PROBE)
    link = folder / 'probe.py'
    link.symlink_to(target)
    (folder / 'user_code').mkdir()
    (folder / 'user_code' / 'probe_helper.py').write_text('')
    return str(link), str(target.parent)


def facts_of(output: str) -> dict:
    """The probe's line of facts (stderr may come first: stdout is
    buffered unless ``PYTHONUNBUFFERED`` is set)."""
    [line] = [x for x in output.splitlines() if x.startswith('{')]
    return json.loads(line)


@pytest.mark.parametrize('how,code,tail,user_code', [
    ('', 0, '', False),
    ('', 0, '', True),
    ('code', 3, '', False),
    ('message', 1, 'a message\n', False),
    ('raise', 1, 'ValueError: uncaught\n', True),
])
def test_a_warm_run_is_what_a_new_process_gives(probe, how, code, tail,
                                                user_code):
    script, real_folder = probe
    env = tool_env(dict(PROBE_VARIABLE='set for this run'))
    helper = None
    if user_code:
        # The user's code first, a relative and an empty entry after it.
        folder = osp.join(osp.dirname(script), 'user_code')
        env['PYTHONPATH'] = os.pathsep.join(
            [folder, 'configs', '', env['PYTHONPATH']])
        helper = osp.join(folder, 'probe_helper.py')
    args = [PYTHON, script] + ([how] if how else [])
    warm = run_process(args, env, 60, stderr_apart=True)
    fresh = run_process(args, env, 60, stderr_apart=True, fresh=True)
    # The warm run was served by the warm interpreter: its parent is not
    # this process (a fallback to new processes would pass unseen).
    assert facts_of(warm.stdout)['ppid'] != os.getpid()
    assert facts_of(fresh.stdout)['ppid'] == os.getpid()
    for proc in (warm, fresh):
        assert proc.returncode == code, proc.stderr
        facts = facts_of(proc.stdout)
        assert facts['argv'] == [script] + ([how] if how else [])
        assert facts['file'] == script
        assert facts['name'] == '__main__'
        assert facts['path0'] == real_folder
        assert facts['cwd'] == os.path.dirname(
            os.path.dirname(os.path.abspath(__file__)))
        assert facts['stdin'] == os.devnull or proc is fresh
        assert facts['repo_imported'] == []
        assert facts['threads'] == 1
        assert facts['variable'] == 'set for this run'
        assert facts['helper'] == helper
        assert proc.stdout.endswith('atexit ran\n')
        assert proc.stderr.startswith('to stderr\nwith a carriage return\n')
        assert proc.stderr.endswith(tail)
    without = {'ppid', 'draw', 'stdin'}
    assert ({
        k: v
        for k, v in facts_of(warm.stdout).items() if k not in without
    } == {
        k: v
        for k, v in facts_of(fresh.stdout).items() if k not in without
    })


def test_forks_draw_their_own_numpy_numbers(probe):
    script, _ = probe
    draws = {
        facts_of(run_process([PYTHON, script], tool_env(), 60).stdout)['draw']
        for _ in range(3)
    }
    assert len(draws) == 3


def output_lines(proc) -> list:
    """The lines of a run's output, the probe's facts by their keys (the
    values that differ between runs left out)."""
    kept = []
    for line in proc.stdout.splitlines():
        if line.startswith('{'):
            line = sorted(set(json.loads(line)) - {'ppid', 'draw', 'stdin'})
        kept.append(line)
    return kept


def test_stdout_and_stderr_together_come_as_from_a_new_process(probe):
    script, _ = probe
    for how in ('', 'raise', 'message'):
        args = [PYTHON, script] + ([how] if how else [])
        warm = run_process(args, tool_env(), 60)
        fresh = run_process(args, tool_env(), 60, fresh=True)
        assert output_lines(warm) == output_lines(fresh)
        assert 'atexit ran' in output_lines(warm)


def test_a_run_past_its_timeout_is_killed(probe):
    script, _ = probe
    with pytest.raises(subprocess.TimeoutExpired) as info:
        run_process([PYTHON, script, 'sleep'], tool_env(), 5)
    pid = facts_of(info.value.output)['ppid']
    assert pid != os.getpid()
    # The warm interpreter serves the next run.
    proc = run_process([PYTHON, script], tool_env(), 60)
    assert proc.returncode == 0


def test_a_run_with_other_import_time_variables_is_a_new_process(probe):
    script, _ = probe
    warm = warm_interpreter()
    env = tool_env(dict(OMP_NUM_THREADS='2'))
    assert 'OMP_NUM_THREADS' in warm.why_not([PYTHON, script], env, REPO)
    assert warm.why_not([PYTHON, script], tool_env(), REPO) is None
    proc = run_process([PYTHON, script], env, 60)
    assert facts_of(proc.stdout)['ppid'] == os.getpid()
    assert 'not `python SCRIPT.py' in warm.why_not([PYTHON, '-c', ''],
                                                   tool_env(), REPO)


def test_a_pythonpath_that_replaces_an_imported_module_is_a_new_process(
        probe, tmp_path):
    script, _ = probe
    (tmp_path / 'torch.py').write_text('')
    env = tool_env(dict(PYTHONPATH=str(tmp_path)))
    why = warm_interpreter().why_not([PYTHON, script], env, REPO)
    assert why == "PYTHONPATH holds imported modules: ['torch']"
    proc = run_process([PYTHON, script], env, 60)
    assert facts_of(proc.stdout)['ppid'] == os.getpid()


def test_a_warm_interpreter_gone_before_a_run_is_said_and_not_used(probe):
    script, _ = probe
    # A second warm interpreter, its stdout buffered the other way than
    # the first's: the order of stdout and stderr together is a new
    # process's under both.
    env = tool_env()
    if env.pop('PYTHONUNBUFFERED', None) is None:
        env['PYTHONUNBUFFERED'] = '1'
    warm = WarmPython(PYTHON, env)
    assert warm.why_not([PYTHON, script], env, REPO) is None
    for how in ('', 'raise', 'message'):
        args = [PYTHON, script] + ([how] if how else [])
        fresh = run_process(args, env, 60)
        assert facts_of(fresh.stdout)['ppid'] == os.getpid()
        assert output_lines(warm.run(args, REPO, env,
                                     60)) == output_lines(fresh)
    warm.proc.kill()
    warm.proc.wait()
    with pytest.raises(WarmInterpreterGone):
        warm.run([PYTHON, script], REPO, env, 60)
    assert 'ended during the session' in warm.why_not([PYTHON, script], env,
                                                      REPO)
