"""Python warnings in the run's log file: mmengine's "X failed to import
and is ignored" (``custom_imports`` with ``allow_failed_imports=True``)
and mmreid's "no CUDA device: using the gloo backend" went to stderr only,
so the log file of the run never said so."""
import copy
import io
import logging
import os.path as osp
import warnings

import pytest

from mmreid.utils import logged_warnings
from ..fixtures.tiny_models import TINY_BOT_MODEL


@pytest.fixture
def fresh(monkeypatch):
    """No logger attached and nothing kept by an earlier test."""
    monkeypatch.setattr(logged_warnings, '_logger', None)
    monkeypatch.setattr(logged_warnings, '_kept', [])
    monkeypatch.setattr(logged_warnings, '_over', 0, raising=False)
    monkeypatch.setattr(logged_warnings, '_imports_kept', False, raising=False)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter('always')
        yield shown


def file_and_console_logger(path):
    logger = logging.getLogger(f'test_logged_warnings.{path}')
    logger.propagate = False
    console = io.StringIO()
    logger.addHandler(logging.StreamHandler(console))
    logger.addHandler(logging.FileHandler(path))
    return logger, console


def test_kept_warnings_and_later_ones_go_to_the_log_file(fresh, tmp_path):
    logged_warnings.record_warnings()
    warnings.warn('mypkg.componets failed to import and is ignored.')
    logger, console = file_and_console_logger(str(tmp_path / 'run.log'))
    logged_warnings.log_warnings_to(logger)
    warnings.warn('no CUDA device: using the gloo backend', RuntimeWarning)
    logged = [
        line for line in (tmp_path / 'run.log').read_text().splitlines()
        if line.startswith('Python warning: ')
    ]
    assert len(logged) == 2
    ends = ('UserWarning: mypkg.componets failed to import and is ignored.',
            'RuntimeWarning: no CUDA device: using the gloo backend')
    for line, end in zip(logged, ends):
        # Where it was raised: this file, its line.
        assert line.startswith(f'Python warning: {__file__}:'), line
        assert line.endswith(end), line
    # Each still shown as before (here: recorded), once; the console
    # handlers do not get a second copy.
    assert [str(w.message) for w in fresh] == [
        'mypkg.componets failed to import and is ignored.',
        'no CUDA device: using the gloo backend'
    ]
    assert console.getvalue() == ''


def test_a_wrapper_of_the_wrapper_shows_a_warning_once(fresh):
    """A library that wraps warnings.showwarning after record_warnings()
    and calls it back: a second record_warnings() (the runner attaching)
    then wraps that wrapper; the warning is shown once, not round and
    round (RecursionError)."""
    logged_warnings.record_warnings()
    calls = []
    inner = warnings.showwarning

    def library(*args, **kwargs):
        calls.append(args[0])
        inner(*args, **kwargs)

    warnings.showwarning = library
    logged_warnings.record_warnings()
    warnings.warn('once')
    assert [str(m) for m in calls] == ['once']
    assert [str(w.message) for w in fresh] == ['once']


def test_the_runner_writes_them_into_its_log_file(fresh, tmp_path):
    from mmreid.engine.runner import ReIDRunner
    logged_warnings.record_warnings()
    warnings.warn('while the config was read')
    runner = ReIDRunner(
        model=copy.deepcopy(TINY_BOT_MODEL),
        work_dir=str(tmp_path),
        experiment_name='warnings',
        default_scope='mmreid')
    warnings.warn('while the runner lives')
    log = osp.join(runner.log_dir, f'{runner.timestamp}.log')
    text = open(log).read()
    assert 'Python warning: ' in text
    assert 'UserWarning: while the config was read' in text
    assert 'UserWarning: while the runner lives' in text


def test_the_warnings_of_import_mmreid_go_to_the_log_file(
        fresh, tmp_path, monkeypatch):
    """A dependency out of mmreid's tested range is warned about when
    mmreid is imported, before a tool can keep warnings: it reached the
    terminal only, not the log file of the run it may explain."""
    from importlib import metadata

    import mmreid
    monkeypatch.setattr(mmreid, 'IMPORT_WARNINGS', [], raising=False)
    installed = metadata.version
    monkeypatch.setattr(
        metadata, 'version', lambda dist: '0.9.0'
        if dist == 'mmengine' else installed(dist))
    mmreid._check_versions()  # what ``import mmreid`` runs
    message = ('mmreid is tested with mmengine>=0.10.7,<1.0.0, found '
               'mmengine==0.9.0; things may break.')
    assert [str(w.message) for w in fresh] == [message]
    logged_warnings.record_warnings()
    logger, console = file_and_console_logger(str(tmp_path / 'run.log'))
    logged_warnings.log_warnings_to(logger)
    logged = [
        line for line in (tmp_path / 'run.log').read_text().splitlines()
        if line.startswith('Python warning: ')
    ]
    assert logged == [
        f'Python warning: {mmreid.__file__}: UserWarning: {message} (when '
        'mmreid was imported)'
    ]
    assert console.getvalue() == '' and len(fresh) == 1  # shown once


def logged_lines(path):
    return [
        line for line in path.read_text().splitlines()
        if 'Python warning: ' in line
    ]


def test_at_most_max_kept_warnings_are_kept(fresh, tmp_path, monkeypatch):
    """Before a logger is attached at most ``MAX_KEPT`` warnings are kept
    (a warning in a loop must not grow the memory without bound)."""
    monkeypatch.setattr(logged_warnings, 'MAX_KEPT', 3)
    logged_warnings.record_warnings()
    for i in range(5):
        warnings.warn(f'kept {i}')
    logger, _ = file_and_console_logger(str(tmp_path / 'run.log'))
    logged_warnings.log_warnings_to(logger)
    logged = logged_lines(tmp_path / 'run.log')
    assert [line.rsplit(' ', 1)[-1] for line in logged[:3]] == ['0', '1', '2']
    # The others are counted, not lost without a trace; once.
    assert logged[3:] == [
        'Python warning: 2 more warning(s) were shown before this log was '
        'attached, beyond the 3 kept: see the terminal'
    ]
    assert len(fresh) == 5  # each still shown
    logged_warnings.log_warnings_to(logger)
    assert len(logged_lines(tmp_path / 'run.log')) == 4


def test_a_warning_is_logged_at_the_warning_level(fresh, tmp_path):
    """The log file says WARNING for a Python warning (a reader filtering
    the log by level finds it), as any other warning of the run."""
    logger, _ = file_and_console_logger(str(tmp_path / 'run.log'))
    for handler in logger.handlers:
        handler.setFormatter(logging.Formatter('%(levelname)s %(message)s'))
    logged_warnings.log_warnings_to(logger)
    warnings.warn('no CUDA device: using the gloo backend', RuntimeWarning)
    logged = logged_lines(tmp_path / 'run.log')
    assert len(logged) == 1
    assert logged[0].startswith('WARNING Python warning: ')


def test_a_second_record_call_keeps_the_show_it_wrapped(fresh, tmp_path):
    """record_warnings() twice (a tool, then the runner) wraps once: each
    warning is still shown by what showed warnings before, once, and
    logged once."""
    shown = []
    warnings.showwarning = lambda message, *args, **kwargs: shown.append(
        str(message))
    logged_warnings.record_warnings()
    logged_warnings.record_warnings()
    logger, _ = file_and_console_logger(str(tmp_path / 'run.log'))
    logged_warnings.log_warnings_to(logger)
    warnings.warn('once')
    assert shown == ['once']
    assert len(logged_lines(tmp_path / 'run.log')) == 1


def test_each_warning_goes_to_one_runs_log(fresh, tmp_path):
    """Kept warnings are written into the first log attached, not again
    into the next one; and once a new run is being built
    (keep_warnings_for_next_log) its warnings wait for that run's log,
    not the log of the run built before it."""
    a, _ = file_and_console_logger(str(tmp_path / 'a.log'))
    b, _ = file_and_console_logger(str(tmp_path / 'b.log'))
    logged_warnings.record_warnings()
    warnings.warn('before any run')
    logged_warnings.log_warnings_to(a)
    warnings.warn('while run a lives')
    logged_warnings.keep_warnings_for_next_log()
    warnings.warn('while run b is built')
    logged_warnings.log_warnings_to(b)
    assert [line.rsplit(': ', 1)[-1]
            for line in logged_lines(tmp_path / 'a.log')
            ] == ['before any run', 'while run a lives']
    assert [line.rsplit(': ', 1)[-1]
            for line in logged_lines(tmp_path / 'b.log')
            ] == ['while run b is built']


def test_a_warning_of_several_lines_is_logged_whole(fresh, tmp_path):
    """A message of several lines (a hint on its second line) reaches the
    log file whole, not cut after its first line."""
    logger, _ = file_and_console_logger(str(tmp_path / 'run.log'))
    logged_warnings.log_warnings_to(logger)
    warnings.warn('mypkg.componets failed to import and is ignored.\n'
                  'Did you mean mypkg.components?')
    text = (tmp_path / 'run.log').read_text()
    assert 'Python warning: ' in text
    assert 'Did you mean mypkg.components?' in text
