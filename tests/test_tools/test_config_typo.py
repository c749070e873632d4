"""A misspelt config name gets one answer from every tool.

It got four: ``does not exist; did you mean ...`` (train.py,
print_config.py, the demo), ``is not a file`` without a suggestion
(test.py, extract_features.py), ``does not exist`` alone (pytorch2onnx.py),
and mmengine's bare ``[Errno 2] No such file or directory``
(verify_dataset.py, browse_dataset.py)."""
import os.path as osp
import sys

import pytest

from ..fixtures.processes import REPO, load_tool

#: A user's typo of the quick start's config (v3 for v2).
TYPO = osp.join(REPO, 'configs', 'snr', 'snr_r18_synthreid-v3.py')
#: The sentence every tool answers with: the path as given, then the
#: closest existing config of its folder.
EXPECTED = (f'config file {TYPO!r} does not exist; did you mean '
            f"{osp.join(REPO, 'configs', 'snr', 'snr_r18_synthreid-v2.py')!r}")


def raised(tool, argv, monkeypatch, capsys):
    """What ``tool`` answers for ``argv``: the message it raises, or a
    usage error's stderr, or the demo's ``error: ...`` line."""
    module = load_tool(tool)
    monkeypatch.setattr(sys, 'argv', [tool, *argv])
    try:
        module.main(argv) if 'argv' in module.main.__code__.co_varnames \
            else module.main()
    except FileNotFoundError as error:
        return str(error)
    except SystemExit as error:
        if isinstance(error.code, str):
            return error.code
        assert error.code == 2
        return capsys.readouterr().err
    raise AssertionError(f'{tool} accepted {argv}')


@pytest.mark.parametrize('tool,extra', [
    ('tools/train.py', []),
    ('tools/misc/print_config.py', []),
    ('tools/test.py', ['CHECKPOINT']),
    ('tools/extract_features.py', ['CHECKPOINT', '--split', 'test']),
    ('tools/misc/verify_dataset.py', []),
    ('tools/analysis_tools/browse_dataset.py', []),
    ('demo/rank_gallery.py', ['CHECKPOINT', 'q.jpg', 'gallery']),
    ('tools/deployment/pytorch2onnx.py', ['CHECKPOINT']),
])
def test_a_misspelt_config_gets_the_same_answer(tool, extra, tmp_path,
                                                monkeypatch, capsys):
    checkpoint = tmp_path / 'epoch_1.pth'
    checkpoint.write_bytes(b'not read: the config is refused first')
    given = [str(checkpoint) if a == 'CHECKPOINT' else a for a in extra]
    argv = [TYPO, *given]
    monkeypatch.chdir(tmp_path)
    message = raised(tool, argv, monkeypatch, capsys)
    assert EXPECTED in message, message
    assert 'is not a file' not in message and 'Errno' not in message


def test_a_folder_given_as_the_config_is_named_so(tmp_path):
    from mmreid.utils.config import read_config
    with pytest.raises(FileNotFoundError) as info:
        read_config(str(tmp_path))
    assert str(info.value) == (f'config file {str(tmp_path)!r} is a folder; '
                               'give the config file (a .py) in it')
