"""mim finds the installed mmreid: list, search, config and tool lookup.

These run the real ``mim`` (openmim, requirements/tests.txt) against the
mmreid that pip installed into this environment: the quick start's editable
install in CI, where ``<site-packages>/mmreid`` does not exist (see
``EditableWheelWithMim`` in setup.py). They skip where openmim or an
installed mmreid is missing (e.g. a bare ``PYTHONPATH`` checkout).
"""
import importlib.util
import json
import os.path as osp
import re
import subprocess
import sys
from importlib import metadata

import pytest

from mmreid.apis.model_zoo import list_models

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _installed_from_elsewhere() -> str:
    """Why the installed mmreid is not this checkout ('' if it is)."""
    try:
        dist = metadata.distribution('mmreid')
    except metadata.PackageNotFoundError:
        return 'mmreid is not pip-installed in this environment'
    direct_url = dist.read_text('direct_url.json')
    if direct_url:
        info = json.loads(direct_url)
        url = info.get('url', '')
        editable = (info.get('dir_info') or {}).get('editable', False)
        if editable and url.startswith('file://') and \
                osp.realpath(url[len('file://'):]) != osp.realpath(REPO):
            return f'the installed mmreid is an editable install of {url}'
    return ''


pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec('mim') is None,
        reason='openmim is not installed (requirements/tests.txt)'),
    pytest.mark.skipif(
        bool(_installed_from_elsewhere()), reason=_installed_from_elsewhere()),
]


def run_python(tmp_path, *args: str) -> str:
    """Run ``python *args`` outside the checkout and return its stdout.

    The working directory is a temporary folder: run from the repository
    root, ``python -m`` would put the root (and its ``mmreid.egg-info``)
    first on ``sys.path`` and hide what an installed mmreid looks like.
    """
    proc = subprocess.run([sys.executable, *args],
                          cwd=tmp_path,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, (
        f'{" ".join(args)} failed ({proc.returncode}):\n{proc.stdout}\n'
        f'{proc.stderr}')
    return proc.stdout


def test_mim_list_shows_mmreid(tmp_path):
    out = run_python(tmp_path, '-m', 'mim', 'list')
    rows = [line.split() for line in out.splitlines()]
    assert ['mmreid', metadata.version('mmreid')] in [r[:2] for r in rows], \
        out


def test_mim_search_lists_every_model(tmp_path):
    out = run_python(tmp_path, '-m', 'mim', 'search', 'mmreid')
    found = set(re.findall(r'^config id: (\S+)$', out, re.M))
    expected = set(list_models(index_file=osp.join(REPO, 'model-index.yml')))
    assert found == expected
    # Each number says where it comes from (paper or measured here).
    assert re.search(r'^results_source +measured here', out, re.M), out
    assert re.search(r'^results_source +paper', out, re.M), out


def test_mim_finds_configs_and_tools_by_name(tmp_path):
    """``mim train/test mmreid NAME.py`` search the installed package for
    the config's file name; ``mim run mmreid SCRIPT`` its tools."""
    script = ('from mim.utils import get_installed_path, recursively_find\n'
              'root = get_installed_path("mmreid")\n'
              'print(*recursively_find(root, "snr_r18_synthreid.py", '
              'followlinks=True), sep="\\n")\n'
              'print(*recursively_find(root, "print_config.py", '
              'followlinks=True), sep="\\n")\n')
    found = run_python(tmp_path, '-W', 'ignore', '-c', script).split()
    configs = [p for p in found if p.endswith('snr_r18_synthreid.py')]
    tools = [p for p in found if p.endswith('print_config.py')]
    assert len(configs) == 1 and len(tools) == 1, found
    with open(configs[0], encoding='utf-8') as f:
        found_text = f.read()
    with open(
            osp.join(REPO, 'configs', 'snr', 'snr_r18_synthreid.py'),
            encoding='utf-8') as f:
        assert found_text == f.read()

    out = run_python(tmp_path, '-m', 'mim', 'run', 'mmreid', 'print_config',
                     configs[0])
    assert "type='SNR'" in out or 'type="SNR"' in out, out[-2000:]
