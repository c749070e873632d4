"""demo/rank_gallery.py as a user runs it: advice in its own options, and
a line before the long extraction."""
import numpy as np
import pytest
import torch

from mmreid.apis import init_model
from mmreid.utils.atomic import write_image
from ..fixtures.finished_runs import save_trained_checkpoint
from ..fixtures.processes import load_tool, options_not_taken
from ..fixtures.tiny_models import tiny_model_config


@pytest.fixture(scope='module')
def demo():
    return load_tool('demo/rank_gallery.py')


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A tiny model trained (meta['cfg']) with 32 x 16 test images, a
    query and a gallery of 3 images and 1 junk image."""
    root = tmp_path_factory.mktemp('demo')
    config = root / 'tiny.py'
    config.write_text(tiny_model_config())
    torch.manual_seed(0)
    model = init_model(str(config))
    checkpoint = save_trained_checkpoint(root / 'epoch_1.pth',
                                         model.state_dict(), config)
    rng = np.random.default_rng(0)

    def image(path):
        write_image(str(path), rng.integers(0, 256, (32, 16, 3), np.uint8))
        return str(path)

    gallery = root / 'gallery'
    gallery.mkdir()
    for name in ('0001_c2s1_000001_00.png', '0002_c2s1_000001_00.png',
                 '0003_c2s1_000001_00.png', '-1_c2s1_000001_00.png'):
        image(gallery / name)
    query = image(root / '0001_c1s1_000001_00.png')
    image(root / '0002_c1s1_000001_00.png')
    return root, str(config), checkpoint, query, str(gallery)


def test_a_refused_checkpoint_is_advised_in_the_demos_options(
        demo, setup, capsys):
    """A checkpoint trained at 32 x 16, run at 64 x 32: the advice was
    init_model's ``cfg_options={...}`` and ``strict=False``, arguments of
    the Python API that the demo does not take."""
    root, config, checkpoint, query, gallery = setup
    with pytest.raises(SystemExit):
        demo.parse_args(['--help'])
    help_text = capsys.readouterr().out
    argv = [config, checkpoint, query, gallery, '--out-dir', str(root / 'vis')]
    size = 'test_pipeline.1.size'
    with pytest.raises(SystemExit) as error:
        demo.main(argv + ['--cfg-options', f'{size}=[64,32]'])
    message = error.value.code
    assert isinstance(message, str) and message.startswith('error: ')
    assert 'was trained with a config' in message
    assert options_not_taken(message, help_text) == [], message
    fix = f'--cfg-options {size}=[32,16]'
    assert fix in message and 'cfg_options=' not in message, message
    assert 'demo/rank_gallery.py has no such switch' in message
    # The fix as printed is taken, and ranks.
    assert demo.main(argv + fix.split()) == [
        str(root / 'vis' / '0001_c1s1_000001_00_ranked.png')
    ]


def test_the_gallery_size_is_said_before_extraction(demo, setup, capsys,
                                                    monkeypatch):
    """The documented command (a 10,570-image gallery) printed nothing for
    minutes after the checkpoint was loaded; a line now says what is being
    encoded before any image is, flushed so that a log file shows it."""
    root, config, checkpoint, query, gallery = setup
    said = []

    def rank_gallery(*args, **kwargs):
        said.append(capsys.readouterr().out)
        raise ValueError('stopped before extraction')

    monkeypatch.setattr(demo, 'rank_gallery', rank_gallery)
    with pytest.raises(SystemExit, match='stopped before extraction'):
        demo.main([
            config, checkpoint, query,
            str(root / '0002_c1s1_000001_00.png'), gallery, '--out-dir',
            str(root / 'vis2')
        ])
    # 2 queries, 3 gallery images ranked: the junk one is not encoded.
    [printed] = said
    assert printed.splitlines()[-1] == (
        'encoding 2 query and 3 gallery images on cpu (1 junk, pid -1, left '
        'out); no progress is shown until the ranked lists are written')


def test_a_partial_checkpoint_is_one_error_line(demo, setup, tmp_path):
    """The loader refuses a checkpoint that lacks tensors of the model
    with a RuntimeError, which ended the demo in a traceback, not in the
    one ``error:`` line its README promises for a refused input."""
    import torch

    from mmreid.utils.checkpoint import load_trusted_checkpoint
    root, config, checkpoint, query, gallery = setup
    saved = load_trusted_checkpoint(checkpoint)
    state = dict(saved['state_dict'])
    dropped = sorted(k for k in state if k.startswith('head.'))[0]
    del state[dropped]
    partial = tmp_path / 'partial.pth'
    torch.save(dict(saved, state_dict=state), partial)
    with pytest.raises(SystemExit) as error:
        demo.main([config, str(partial), query, gallery])
    message = error.value.code
    assert isinstance(message, str) and message.startswith('error: ')
    assert dropped in message
