"""Black-box hunt: the launch scripts (``tools/dist_*.sh``,
``tools/slurm_*.sh``, ``tools/launcher_python.sh``).

A user starts runs with ``bash tools/dist_train.sh CONFIG GPUS [options]``,
``bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [options]`` and the Slurm
twins (docs/get_started.md, section 3; README.md). Most tests here put
fake executables (``python``, ``srun``) in place that record the command
line they were given; two start torchrun for real.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys

import pytest

from ..fixtures.processes import PYTHON, REPO, retry_on_port_clash

#: Records each argument NUL-terminated, then ``PYTHONPATH``, then exits
#: with ``$FAKE_RC`` (0 by default).
RECORDER = ('#!/bin/sh\n'
            'printf "%s\\0" "$@" > "$RECORD"\n'
            'printf "%s" "${PYTHONPATH-<unset>}" > "$RECORD.pythonpath"\n'
            'exit "${FAKE_RC:-0}"\n')

#: Options with spaces, quotes, a list and a nested key, as a user types
#: them after the launcher's own arguments.
OPTIONS = [
    '--work-dir', "work dirs/run 'a' \"b\"", '--cfg-options',
    'param_scheduler.1.milestones=[40, 70]',
    'model.head.loss_triplet.margin=0.3', '--out', 'my results.json'
]


def _clean_env(**extra):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ('PYTHON', 'VIRTUAL_ENV', 'MMREID_VENV', 'PYTHONPATH',
                     'CDPATH', 'NNODES', 'NODE_RANK', 'PORT', 'MASTER_ADDR',
                     'GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'SRUN_ARGS')
    }
    env.update(extra)
    return env


def _recorder(tmp_path, name):
    folder = tmp_path / f'fake_{name}'
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(RECORDER)
    path.chmod(0o755)
    return path


def _recorded(record):
    with open(record, 'rb') as f:
        argv = f.read().decode().split('\0')[:-1]
    with open(f'{record}.pythonpath') as f:
        return argv, f.read()


def _launch(args, env, cwd=REPO):
    return subprocess.run(['bash'] + args,
                          cwd=str(cwd),
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=60)


def test_dist_launchers_pass_options_and_environment_unchanged(tmp_path):
    """``NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 PORT=29512 bash
    tools/dist_train.sh CONFIG 8 OPTIONS`` (docs/get_started.md, multi-node)
    must start torchrun with exactly those values and give train.py the
    user's options argument for argument (spaces, quotes, lists intact);
    the exit status of the run is the script's. Same for dist_test.sh."""
    fake = _recorder(tmp_path, 'python')
    record = tmp_path / 'argv'
    env = _clean_env(PYTHON=str(fake), RECORD=str(record), NNODES='2',
                     NODE_RANK='1', MASTER_ADDR='10.0.0.1', PORT='29512')
    for script, head, tool in (
            ('dist_train.sh', ['my cfg.py', '8'], 'train.py'),
            ('dist_test.sh', ['my cfg.py', 'ck pt.pth', '8'], 'test.py')):
        proc = _launch([f'tools/{script}'] + head + OPTIONS, env)
        assert proc.returncode == 0, proc.stderr
        argv, pythonpath = _recorded(record)
        assert argv == [
            '-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1',
            '--master_addr=10.0.0.1', '--nproc_per_node=8',
            '--master_port=29512', f'{REPO}/tools/{tool}'
        ] + head[:-1] + ['--launcher', 'pytorch'] + OPTIONS, script
        assert pythonpath.split(os.pathsep)[0] == REPO
        # A crashed run is a failed launch, never exit status 0.
        proc = _launch([f'tools/{script}'] + head, dict(env, FAKE_RC='7'))
        assert proc.returncode == 7, script


@pytest.mark.parametrize('script,head,tool', [
    ('slurm_train.sh', ['gpu part', 'my job', 'my cfg.py', 'work dirs/j 1'],
     'train.py'),
    ('slurm_test.sh', ['gpu part', 'my job', 'my cfg.py', 'ck pt.pth'],
     'test.py'),
])
def test_slurm_launchers_build_the_documented_srun_line(
        tmp_path, script, head, tool):
    """``GPUS=16 GPUS_PER_NODE=4 CPUS_PER_TASK=3 SRUN_ARGS='--qos=high
    --time=10' bash tools/slurm_train.sh PARTITION JOB CONFIG WORK_DIR
    OPTIONS`` (the script's header; docs/get_started.md "Slurm") must run
    ``srun -p PARTITION --job-name=JOB --gres=gpu:4 --ntasks=16
    --ntasks-per-node=4 --cpus-per-task=3 --kill-on-bad-exit=1 --qos=high
    --time=10 PYTHON -u tools/train.py CONFIG --work-dir=WORK_DIR
    --launcher=slurm OPTIONS``, with the repository first on PYTHONPATH,
    srun's exit status as its own, and, without PYTHON, the quick start's
    ``.venv/bin/python`` (README.md, "find it themselves")."""
    fake_srun = _recorder(tmp_path, 'srun')
    record = tmp_path / 'argv'
    env = _clean_env(PATH=f'{fake_srun.parent}{os.pathsep}'
                     f'{os.environ["PATH"]}',
                     RECORD=str(record), PYTHON='/opt/py 3/bin/python',
                     GPUS='16', GPUS_PER_NODE='4', CPUS_PER_TASK='3',
                     SRUN_ARGS='--qos=high  --time=10')
    proc = _launch([f'tools/{script}'] + head + OPTIONS, env)
    assert proc.returncode == 0, proc.stderr
    argv, pythonpath = _recorded(record)
    tail = ([f'--work-dir={head[3]}'] if tool == 'train.py' else [head[3]])
    assert argv == [
        '-p', 'gpu part', '--job-name=my job', '--gres=gpu:4', '--ntasks=16',
        '--ntasks-per-node=4', '--cpus-per-task=3', '--kill-on-bad-exit=1',
        '--qos=high', '--time=10', '/opt/py 3/bin/python', '-u',
        f'{REPO}/tools/{tool}', 'my cfg.py'
    ] + tail + ['--launcher=slurm'] + OPTIONS
    assert pythonpath.split(os.pathsep)[0] == REPO
    # The defaults of the header: 8 tasks, 8 per node, 5 CPUs each.
    env = {
        k: v
        for k, v in env.items()
        if k not in ('GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'SRUN_ARGS')
    }
    assert _launch([f'tools/{script}'] + head, env).returncode == 0
    argv, _ = _recorded(record)
    assert argv[3:9] == [
        '--gres=gpu:8', '--ntasks=8', '--ntasks-per-node=8',
        '--cpus-per-task=5', '--kill-on-bad-exit=1', '/opt/py 3/bin/python'
    ]
    # A failed job fails the script.
    proc = _launch([f'tools/{script}'] + head, dict(env, FAKE_RC='3'))
    assert proc.returncode == 3
    # Without PYTHON: the quick start's environment.
    repo = tmp_path / 'repo'
    (repo / 'tools').mkdir(parents=True)
    for name in (script, 'launcher_python.sh'):
        shutil.copy(osp.join(REPO, 'tools', name), repo / 'tools' / name)
    venv_python = repo / '.venv' / 'bin' / 'python'
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text('#!/bin/sh\n')
    venv_python.chmod(0o755)
    env.pop('PYTHON')
    proc = _launch([str(repo / 'tools' / script)] + head, env)
    assert proc.returncode == 0, proc.stderr
    argv, _ = _recorded(record)
    assert argv[8:10] == [str(venv_python), '-u']


def test_a_port_in_use_is_reported_not_hung_on(tmp_path):
    """Two runs on one machine with the default ``PORT`` (29500), or a
    ``PORT`` another program listens on: the launcher must stop with a
    non-zero status naming the port, not wait for a rendezvous that never
    comes."""
    with socket.socket() as taken:
        taken.bind(('', 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _clean_env(PYTHON=PYTHON, PORT=str(port), OMP_NUM_THREADS='1')
        proc = _launch(
            ['tools/dist_test.sh',
             str(tmp_path / 'cfg.py'), 'ckpt.pth', '2'], env)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert str(port) in output
    assert 'EADDRINUSE' in output or 'already in use' in output


def test_one_failing_rank_fails_the_launch(make_config, tmp_path):
    """``bash tools/dist_train.sh CONFIG 2`` where only rank 1 crashes
    (here: its config raises) must exit non-zero: rank 0 would wait for it
    forever, and a script that exits 0 after a crash reports a run that
    never trained (no checkpoint, no numbers) as finished."""
    make_config()
    config = tmp_path / 'rank1_fails.py'
    config.write_text("_base_ = ['./tiny.py']\n"
                      'import os\n'
                      "if os.environ.get('RANK') == '1':\n"
                      "    raise RuntimeError('rank 1 crashes here')\n")

    def launch(port):
        env = _clean_env(PYTHON=PYTHON, PORT=str(port), OMP_NUM_THREADS='1',
                         PYTHONPATH=REPO)
        return _launch([
            'tools/dist_train.sh',
            str(config), '2', '--work-dir',
            str(tmp_path / 'work dir')
        ], env)

    proc = retry_on_port_clash(launch)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert 'rank 1 crashes here' in output
    assert not osp.exists(tmp_path / 'work dir' / 'epoch_1.pth')


@pytest.mark.parametrize('script,args', [
    ('dist_train.sh', ['cfg.py', '2']),
    ('dist_test.sh', ['cfg.py', 'ckpt.pth', '2']),
    ('slurm_train.sh', ['part', 'job', 'cfg.py', 'work_dirs/job']),
    ('slurm_test.sh', ['part', 'job', 'cfg.py', 'ckpt.pth']),
])
def test_launchers_work_with_cdpath_exported(tmp_path, script, args):
    """A user whose shell profile exports ``CDPATH`` (``export
    CDPATH=.:~/projects``, a common setting) runs ``bash
    tools/dist_train.sh CONFIG 2`` as docs/get_started.md shows. Got: the
    script stops with ``line 21: /repo\\n/repo/tools/launcher_python.sh: No
    such file or directory``. Right: the run starts; bash's ``cd`` writes
    the directory to stdout when it was found through CDPATH (bash manual,
    "cd"), so ``ROOT="$(cd "$(dirname "$0")/.." && pwd)"`` captures two
    lines; ``cd -P -- ... >/dev/null`` or ``CDPATH= cd`` does not."""
    fake = _recorder(tmp_path, 'python')
    fake_srun = _recorder(tmp_path, 'srun')
    record = tmp_path / 'argv'
    env = _clean_env(PYTHON=str(fake), RECORD=str(record), CDPATH='.',
                     PATH=f'{fake_srun.parent}{os.pathsep}'
                     f'{os.environ["PATH"]}')
    proc = _launch([f'tools/{script}'] + args, env)
    assert proc.returncode == 0, proc.stderr
    argv, pythonpath = _recorded(record)
    assert pythonpath.split(os.pathsep)[0] == REPO


@pytest.mark.parametrize('script,args', [
    ('dist_train.sh', ['cfg.py', '2']),
    ('slurm_test.sh', ['part', 'job', 'cfg.py', 'ckpt.pth']),
])
def test_launchers_do_not_import_from_the_callers_folder(
        tmp_path, script, args):
    """A user without PYTHONPATH runs ``bash /path/to/mmreid/tools/
    dist_train.sh CONFIG 2`` from a project folder that holds, say, a
    clone of ``mmpretrain`` or a scratch ``numpy.py``. Got: the launchers
    export ``PYTHONPATH=/path/to/mmreid:`` and Python reads the empty
    entry as the current folder, so that folder comes before
    site-packages on ``sys.path`` and its modules silently replace the
    installed ones (``python tools/train.py`` does not do this). Right:
    only the repository is added."""
    cwd = tmp_path / 'project'
    cwd.mkdir()
    # Runs a script, as the launchers do: sys.path[0] is its folder.
    probe = tmp_path / 'probe' / 'python'
    probe.parent.mkdir()
    script_file = probe.parent / 'show_path.py'
    script_file.write_text('import json, sys\nprint(json.dumps(sys.path))\n')
    probe.write_text(f'#!/bin/sh\nexec "{PYTHON}" "{script_file}"\n')
    probe.chmod(0o755)
    fake_srun = tmp_path / 'fake_srun' / 'srun'
    fake_srun.parent.mkdir()
    fake_srun.write_text('#!/bin/sh\nwhile [ "$1" != "$PYTHON" ]; do shift;'
                         ' done\nexec "$@"\n')
    fake_srun.chmod(0o755)
    env = _clean_env(PYTHON=str(probe),
                     PATH=f'{fake_srun.parent}{os.pathsep}'
                     f'{os.environ["PATH"]}')
    proc = _launch([osp.join(REPO, 'tools', script)] + args, env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    path = [osp.realpath(p) for p in json.loads(proc.stdout) if p]
    assert REPO in path
    assert osp.realpath(str(cwd)) not in path, path


@pytest.mark.parametrize('gpus', ['0', '-1'])
def test_a_gpus_count_below_one_is_named(tmp_path, gpus):
    """``bash tools/dist_train.sh CONFIG 0`` (a CPU user's guess for "no
    GPUs", or an empty ``$NGPUS`` arithmetic): got a torchrun traceback
    ending in ``AssertionError`` with no message. Right (the project's
    promise: bad input gets a clear error naming the value and what was
    expected): a usage error naming GPUS, the value and that it must be
    a number of processes >= 1."""
    env = _clean_env(PYTHON=PYTHON, OMP_NUM_THREADS='1')
    proc = _launch(['tools/dist_train.sh', str(tmp_path / 'cfg.py'), gpus],
                   env)
    assert proc.returncode != 0
    named = [
        line for line in proc.stderr.splitlines()
        if 'GPUS' in line and gpus in line
    ]
    assert named, proc.stderr[-800:]


def test_cfg_option_values_keep_their_spaces(monkeypatch):
    """``bash tools/dist_test.sh CONFIG CKPT 2 --cfg-options
    "test_dataloader.dataset.data_root=data/market 1501"`` (the launchers
    pass the argument unchanged, see the test above): got
    ``data_root='data/market1501'`` in the run's config, another folder
    than the one typed, without a word (a different copy of the data set
    there is evaluated and its numbers printed). Right: the value as typed,
    or a usage error naming the option."""
    from mmreid.utils.config.runtime import (add_runtime_args,
                                             parse_runtime_args)
    parser = argparse.ArgumentParser(prog='tools/test.py')
    add_runtime_args(parser, 'x=1')
    value = 'data/market 1501'
    monkeypatch.setattr(sys, 'argv', [
        'tools/test.py', '--cfg-options',
        f'test_dataloader.dataset.data_root={value}'
    ])
    try:
        args = parse_runtime_args(parser)
    except SystemExit:
        return  # refused: right too
    got = args.cfg_options['test_dataloader.dataset.data_root']
    assert got == value, got
