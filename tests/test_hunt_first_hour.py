"""The first hour, command by command: README.md and docs/get_started.md.

A new user trains with ``python tools/train.py CONFIG`` and then evaluates
with ``python tools/test.py CONFIG CHECKPOINT --out metrics.json`` (the
README's "Using it" block). These tests hold the documented outputs of
those commands to what the docs say they are.
"""
import os.path as osp

import torch
from mmengine.config import Config

from mmreid.engine.runner import ReIDRunner
from .fixtures.processes import PYTHON, run_tool


def started_training(config, work_dir):
    """A training runner of ``config`` in ``work_dir`` that has passed
    ``load_or_resume`` (where a run writes the work dir's config copy),
    with ``randomness.seed=None``: the copy holds the seed it drew."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict({'randomness.seed': None})
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = 'first_hour_training'
    runner = ReIDRunner.from_cfg(cfg)
    runner.train_loop  # builds the training dataloader, as train() does
    runner.load_or_resume()
    return runner


def test_evaluating_keeps_the_training_runs_config_copy(
        make_config, tmp_path):
    """``tools/test.py`` leaves the training run's config copy alone.

    What the user does: the README's two commands, ``python tools/train.py
    CONFIG`` and then ``python tools/test.py CONFIG
    work_dirs/<name>/epoch_N.pth --out metrics.json``. Both default to the
    same work dir, ``./work_dirs/<config name>`` (``load_config``); here
    ``--work-dir`` names it, which is the same thing.

    What they get: the evaluation rewrites ``<work_dir>/<config name>.py``,
    the training run's record, with its own config. A training with
    ``randomness.seed=None`` (or with training ``--cfg-options`` such as
    ``train_cfg.max_epochs=60``) then has a copy that shows the evaluation's
    seed 0 / the file's 120 epochs: a run that never happened.

    What is right: docs/get_started.md section 6 makes that copy the run's
    record ("randomness.seed=None takes the checkpoint's seed back ... and
    the config copy, vis_data/config.py and the new checkpoints'
    meta['cfg'] record it"; the copy holds the drawn seeds "so that
    training it again repeats the run", ``ConfigRecordMixin.dump_config``),
    and section 6 says each tools/test.py run logs into a timestamp folder
    of its own, "never the other run's log and metrics files". A refused
    training start is kept from overwriting it (``dump_config``); an
    evaluation of the run's own checkpoint must not overwrite it either.
    """
    config = make_config()
    work_dir = tmp_path / 'work_dirs' / 'tiny'
    runner = started_training(config, work_dir)
    copy = work_dir / 'tiny.py'
    recorded = copy.read_text()
    drawn = runner.seed
    assert Config.fromfile(str(copy)).randomness.seed == drawn
    checkpoint = work_dir / 'epoch_1.pth'
    torch.save(dict(state_dict=runner.model.state_dict()), checkpoint)
    del runner

    run_tool([
        PYTHON, 'tools/test.py', config,
        str(checkpoint), '--work-dir',
        str(work_dir), '--out',
        str(tmp_path / 'metrics.json')
    ])
    assert osp.isfile(tmp_path / 'metrics.json')
    assert copy.read_text() == recorded, (
        'tools/test.py replaced the training run\'s config copy: its seed is '
        f'now {Config.fromfile(str(copy)).randomness.seed}, the training '
        f'drew {drawn}')


def test_readme_demo_counts_are_the_generated_ones():
    """The quick start's test sets are the sizes README.md gives.

    README.md describes the demo's evaluation: "70,428 images" generated,
    four test sets "of about 5,200 queries each", "1,750 test identities",
    "about 4 true matches among its 10,570 gallery items" (the chance level
    it quotes, 0.04 % R1, follows from them). Counted here from the file
    plan of the quick-start config's SynthReID parameters, without
    rendering: the d3 gallery without its pid -1 junk (which the datasets
    drop) and, per query, the gallery items of its pid seen by another
    camera (the Market rule of docs/get_started.md section 5).
    """
    import re
    from collections import Counter

    from mmreid.datasets.synthetic_params import _resolve_params
    from mmreid.datasets.synthetic_plan import _plan_jobs
    from .fixtures.processes import REPO

    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'snr', 'snr_r18_synthreid-v2.py'))
    synth = cfg.test_cfg.targets[0].dataloader.dataset
    params = _resolve_params(
        synth.size, 'visible', synth.num_domains, synth.seed,
        tuple(synth.img_size), dict(synth.overrides),
        dict(style_control=synth.style_control, ir_mode=None,
             ir_luminance=None, ir_gap=None, ir_contrast=None))
    jobs, _, _ = _plan_jobs(params)
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        readme = f.read()
    assert f'{len(jobs):,} images' in readme

    def files(folder):
        return [j for j in jobs if j['path'].startswith(f'd3/{folder}/')]

    queries = files('query')
    gallery = [j for j in files('bounding_box_test') if j['pid'] != -1]
    people = {j['pid'] for j in queries}
    match = re.search(r'chance is about [\d.]+ % R1 with ([\d,]+) test '
                      r'identities.*?about (\d+) true matches among its '
                      r'([\d,]+)\s+gallery items', readme, re.S)
    assert match, 'README.md no longer gives the demo test set sizes'
    assert int(match.group(1).replace(',', '')) == len(people)
    assert int(match.group(3).replace(',', '')) == len(gallery)
    per_pid = Counter(j['pid'] for j in gallery)
    per_view = Counter((j['pid'], j['cam']) for j in gallery)
    matches = [
        per_pid[q['pid']] - per_view[(q['pid'], q['cam'])] for q in queries
    ]
    assert min(matches) > 0
    assert round(sum(matches) / len(matches)) == int(match.group(2))
    assert abs(len(queries) - 5200) < 100
