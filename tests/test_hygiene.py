"""The tests' own contracts: shared helpers live in tests/fixtures, the CUDA
tests are marked, and a launch never fails for a port taken meanwhile."""
import ast
import glob
import os.path as osp
import socket
import subprocess
import sys
from configparser import ConfigParser

import pytest

from .fixtures import processes
from .fixtures.processes import REPO, retry_on_port_clash

TEST_FILES = sorted(
    glob.glob(osp.join(REPO, 'tests', '**', '*.py'), recursive=True))

BIND = ('import socket, sys\n'
        's = socket.socket()\n'
        "s.bind(('127.0.0.1', int(sys.argv[1])))\n"
        's.listen()\n')


def test_a_port_taken_meanwhile_is_retried_with_another(monkeypatch):
    taken = socket.socket()
    taken.bind(('127.0.0.1', 0))
    taken.listen()
    busy = taken.getsockname()[1]
    fresh = processes.free_port()
    offered = iter([busy, fresh])
    tried = []
    monkeypatch.setattr(processes, 'free_port', lambda: next(offered))

    def launch(port):
        tried.append(port)
        return subprocess.run(
            [sys.executable, '-c', BIND, str(port)],
            capture_output=True,
            text=True)

    try:
        proc = retry_on_port_clash(launch)
    finally:
        taken.close()
    assert tried == [busy, fresh]
    assert proc.returncode == 0, proc.stderr


def test_other_failures_are_not_retried(monkeypatch):
    tried = []

    def launch(port):
        tried.append(port)
        return subprocess.run(
            [sys.executable, '-c', 'raise SystemExit("bad config")'],
            capture_output=True,
            text=True)

    proc = retry_on_port_clash(launch)
    assert tried and len(tried) == 1
    assert proc.returncode != 0 and 'bad config' in proc.stderr


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield '.' * node.level + (node.module or '')
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_test_modules_import_no_other_test_module():
    """Shared makers and helpers come from ``tests/fixtures``."""
    found = []
    for path in TEST_FILES:
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read())
        for module in _imports(tree):
            last = module.rsplit('.', 1)[-1]
            if last.startswith('test_') or last == 'conftest' or \
                    module.startswith('tests.test_'):
                found.append(f'{osp.relpath(path, REPO)}: {module}')
    assert not found, found


def _is_cuda_device(node):
    return isinstance(node, ast.Constant) and isinstance(node.value, str) \
        and node.value.split(':')[0] == 'cuda'


def _uses_cuda(function):
    """Whether the body puts something on a CUDA device."""
    for statement in function.body:
        for node in ast.walk(statement):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else \
                getattr(func, 'id', '')
            if name == 'cuda':  # tensor.cuda(), module.cuda()
                return True
            if name in ('to', 'device') and any(
                    _is_cuda_device(arg) for arg in node.args):
                return True
            if any(keyword.arg == 'device' and _is_cuda_device(keyword.value)
                   for keyword in node.keywords):
                return True
    return False


def _marked_cuda(function):
    return any(
        ast.unparse(decorator) == 'pytest.mark.cuda'
        for decorator in function.decorator_list)


def test_every_cuda_test_is_marked_and_the_mark_is_registered():
    parser = ConfigParser()
    parser.read(osp.join(REPO, 'setup.cfg'))
    pytest_cfg = parser['tool:pytest']
    assert '--strict-markers' in pytest_cfg['addopts']
    assert any(line.strip().startswith('cuda:')
               for line in pytest_cfg['markers'].splitlines())
    unmarked, marked = [], []
    for path in TEST_FILES:
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and \
                    node.name.startswith('test_') and _uses_cuda(node):
                name = f'{osp.relpath(path, REPO)}::{node.name}'
                (marked if _marked_cuda(node) else unmarked).append(name)
    assert not unmarked, unmarked
    assert len(marked) >= 3, marked


@pytest.mark.cuda
def test_cuda_mark_runs_only_with_a_device():
    import torch
    assert torch.cuda.is_available()  # else conftest skipped this test
