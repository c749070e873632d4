"""The evaluation loops compute metrics on every sample of the dataset.

A val/test dataloader with ``drop_last=True`` silently left out the last
incomplete batch of each process, so the numbers depended on the number of
processes (71 images in batches of 3: one process lost 2 gallery images,
two processes none). The loops now refuse it when they are built, and
refuse to compute when the samples handed to the metrics, over all
processes, do not cover the dataset (a sampler that skips samples).
"""
import copy
from itertools import chain, zip_longest

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import BaseDataset, DefaultSampler
from mmengine.runner import Runner
from torch.utils.data import BatchSampler, DataLoader

from mmreid.engine.runner import reid_loops
from mmreid.registry import DATA_SAMPLERS
from ..fixtures.processes import load_tool
from ..fixtures.tiny_models import TINY_BOT_MODEL

PIPELINE = [
    dict(type='ReIDLoadImageFromFile'),
    dict(type='ReIDResize', size=(32, 16)),
    dict(type='PackReIDInputs'),
]


@DATA_SAMPLERS.register_module()
class SkipTwoSampler:
    """A user's sampler that leaves out the last two samples."""

    def __init__(self, dataset, **kwargs) -> None:
        self.size = len(dataset) - 2

    def __iter__(self):
        return iter(range(self.size))

    def __len__(self) -> int:
        return self.size


@DATA_SAMPLERS.register_module()
class RepeatFirstSampler(SkipTwoSampler):
    """A user's sampler that yields every sample, then the first again."""

    def __init__(self, dataset, **kwargs) -> None:
        self.size = len(dataset)

    def __iter__(self):
        return chain(range(self.size), [0])

    def __len__(self) -> int:
        return self.size + 1


@DATA_SAMPLERS.register_module()
class RepeatInsteadSampler(SkipTwoSampler):
    """A user's sampler with the right count: the first sample twice, the
    last never."""

    def __init__(self, dataset, **kwargs) -> None:
        self.size = len(dataset)

    def __iter__(self):
        return chain([0], range(self.size - 1))

    def __len__(self) -> int:
        return self.size


# A user's batch sampler config: dict(type='PlainBatchSampler', ...).
DATA_SAMPLERS.register_module('PlainBatchSampler', module=BatchSampler)


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    # Domain 2's test split: 16 images (7 query, 9 gallery).
    return dict(
        type='SynthReID',
        data_root=str(tmp_path_factory.mktemp('synthreid')),
        num_domains=3,
        size='tiny',
        seed=0,
        img_size=(32, 16),
        domain=2,
        split='test',
        pipeline=PIPELINE)


def loader(dataset, batch_size=3, sampler=None, **kwargs):
    return dict(
        batch_size=batch_size,
        num_workers=0,
        sampler=sampler or dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'),
        dataset=dataset,
        **kwargs)


def runner_args(tmp_path, mode, dataloader, loop=None):
    """The arguments of a runner that evaluates ``dataloader`` in ``mode``
    with ``loop`` (mmreid's loop of that mode by default)."""
    loop = loop or ('ReIDValLoop' if mode == 'val' else 'ReIDTestLoop')
    return dict(
        model=copy.deepcopy(TINY_BOT_MODEL),
        work_dir=str(tmp_path),
        experiment_name=f'{mode}_{tmp_path.name}',
        default_scope='mmreid',
        **{
            f'{mode}_dataloader': dataloader,
            f'{mode}_evaluator': dict(type='ReIDMetric'),
            f'{mode}_cfg': dict(type=loop),
        })


def single_runner(tmp_path, mode, dataloader):
    return Runner(**runner_args(tmp_path, mode, dataloader))


def multi_runner(tmp_path, synth, second_loader):
    targets = [
        dict(
            name='d2',
            dataloader=loader(synth),
            evaluator=dict(type='ReIDMetric')),
        dict(
            name='again',
            dataloader=second_loader,
            evaluator=dict(type='ReIDMetric')),
    ]
    return Runner(
        model=copy.deepcopy(TINY_BOT_MODEL),
        work_dir=str(tmp_path),
        experiment_name=f'multi_{tmp_path.name}',
        test_dataloader=dict(),
        test_evaluator=dict(),
        test_cfg=dict(type='MultiTargetTestLoop', targets=targets),
        default_scope='mmreid')


@pytest.mark.parametrize('mode', ['val', 'test'])
@pytest.mark.parametrize('where', ['drop_last', 'batch_sampler.drop_last'])
def test_a_dataloader_that_drops_samples_is_refused(synth, tmp_path, mode,
                                                    where):
    """16 images in batches of 3: drop_last would leave one out."""
    if where == 'drop_last':
        dataloader = loader(synth, drop_last=True)
    else:
        dataloader = loader(
            synth,
            batch_sampler=dict(type='PlainBatchSampler', drop_last=True))
    runner = single_runner(tmp_path, mode, dataloader)
    with pytest.raises(
            ValueError,
            match=rf'{mode}_dataloader\.{where}=True: an evaluation '
            r'dataloader must hand every sample to the metrics.*number of '
            rf'processes\. Set {mode}_dataloader\.{where}=False'):
        getattr(runner, mode)()


def test_a_target_that_drops_samples_is_refused_by_its_key(synth, tmp_path):
    runner = multi_runner(tmp_path, synth, loader(synth, drop_last=True))
    with pytest.raises(
            ValueError,
            match=r"test_cfg\.targets\.1\.dataloader\.drop_last=True "
            r"\(target 'again'\)"):
        runner.test()


def test_test_target_keeps_the_config_index_of_a_dropping_target(synth):
    """``tools/test.py --target again`` renumbers the targets: the key
    named is the config's, which --cfg-options would set."""
    tool = load_tool('tools/test.py')
    cfg = Config(
        dict(
            test_dataloader=dict(),
            test_evaluator=dict(),
            test_cfg=dict(
                type='MultiTargetTestLoop',
                targets=[
                    dict(
                        name='d2',
                        dataloader=loader(synth),
                        evaluator=dict(type='ReIDMetric')),
                    dict(
                        name='again',
                        dataloader=loader(synth, drop_last=True),
                        evaluator=dict(type='ReIDMetric')),
                ])))
    with pytest.raises(
            ValueError, match=r'test_cfg\.targets\.1\.dataloader\.drop_last'):
        tool.select_targets(cfg, ['again'])


@pytest.mark.parametrize(
    'sampler, counts',
    [('SkipTwoSampler', r'14 of the 16 samples of SynthReID.* reached the '
      r'metrics.*leaves samples out'),
     ('RepeatFirstSampler', r'17 samples were handed to the evaluator for '
      r'the 16 samples of SynthReID.*repeats indices'),
     ('RepeatInsteadSampler', r'16 samples were handed to the evaluator for '
      r'the 16 samples of SynthReID.*, but not sample_idx 15: others were '
      r'handed twice in their place.*repeats some indices and skips '
      r'others')])
def test_metrics_are_not_computed_without_every_sample_once(
        synth, tmp_path, sampler, counts):
    computed = []
    runner = single_runner(tmp_path / 'single', 'test',
                           loader(synth, sampler=dict(type=sampler)))
    metric = runner.test_loop.evaluator.metrics[0]
    metric.compute_metrics = computed.append
    with pytest.raises(ValueError, match=rf'ReIDTestLoop: {counts}'):
        runner.test()
    runner = multi_runner(tmp_path / 'multi', synth,
                          loader(synth, sampler=dict(type=sampler)))
    with pytest.raises(
            ValueError, match=rf'MultiTargetTestLoop \(again\): {counts}'):
        runner.test()
    assert computed == []


def test_a_sampler_that_yields_every_sample_is_evaluated(synth, tmp_path):
    metrics = single_runner(tmp_path, 'test', loader(synth)).test()
    assert metrics['reid/num_query'] == 7


class Samples(BaseDataset):
    """A dataset of ``size`` samples (only its length is read)."""

    def __init__(self, size):
        self.size = size

    def __len__(self):
        return self.size


def rank_indices(monkeypatch, size, world, rank, batch_size, drop_last):
    """The indices ``rank`` of ``world`` processes hands to the evaluator,
    through mmengine's DefaultSampler (which pads) and a DataLoader."""
    import mmengine.dataset.sampler as sampler_module
    monkeypatch.setattr(sampler_module, 'get_dist_info', lambda: (rank, world))
    sampler = DefaultSampler(list(range(size)), shuffle=False, seed=0)
    batches = DataLoader(
        list(range(size)),
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last)
    return [int(i) for batch in batches for i in batch]


@pytest.mark.parametrize('size', [5, 16, 71])
@pytest.mark.parametrize('world', [1, 2, 3, 4])
@pytest.mark.parametrize('batch_size', [1, 3, 4])
@pytest.mark.parametrize('drop_last', [False, True])
def test_the_count_check_passes_exactly_when_each_sample_is_collected_once(
        monkeypatch, size, world, batch_size, drop_last):
    """DefaultSampler pads every process to the same number of samples;
    mmengine's ``collect_results`` interleaves the processes' results and
    keeps the first ``size`` (``zip_longest`` as in ``collect_results_cpu``),
    which drops that padding. The check must pass with the padding and
    refuse exactly when a sample is missing from what the metric gets."""
    parts = [
        rank_indices(monkeypatch, size, world, rank, batch_size, drop_last)
        for rank in range(world)
    ]
    collected = [
        i for i in chain.from_iterable(zip_longest(*parts)) if i is not None
    ][:size]
    every_sample_once = sorted(collected) == list(range(size))
    total = sum(len(part) for part in parts)
    # What the reductions over the processes give: the sum of the counts,
    # the union (max) of the samples each process marked.
    marks = torch.zeros(size + 1, dtype=torch.int32)
    marks[list(chain.from_iterable(parts))] = 1

    def all_reduce(tensor, op):
        assert op == ('sum' if tensor.numel() == 1 else 'max')
        return tensor.fill_(total) if op == 'sum' else tensor.copy_(marks)

    monkeypatch.setattr(reid_loops, 'get_world_size', lambda: world)
    monkeypatch.setattr(reid_loops, 'all_reduce', all_reduce)
    try:
        reid_loops.check_every_sample_reached(parts[0], Samples(size), 'loop')
    except ValueError as error:
        assert not every_sample_once, str(error)
        assert f'{total} of the {size} samples' in str(error)
        assert f'by {world} processes' in str(error) or world == 1
    else:
        assert every_sample_once, (parts, collected)


@pytest.mark.parametrize('world', [1, 2, 3])
@pytest.mark.parametrize('seed', range(4))
def test_samples_drawn_with_replacement_are_refused_unless_all_are_there(
        monkeypatch, world, seed):
    """Processes that draw ``size`` samples between them with replacement
    (an identity sampler left in an evaluation dataloader) have the right
    count; the check passes exactly when every index was still drawn."""
    import numpy as np
    size = 6
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, size, size).tolist() if seed else list(range(size))
    parts = [drawn[rank::world] for rank in range(world)]
    marks = torch.zeros(size + 1, dtype=torch.int32)
    marks[drawn] = 1
    monkeypatch.setattr(reid_loops, 'get_world_size', lambda: world)
    monkeypatch.setattr(
        reid_loops, 'all_reduce', lambda tensor, op: tensor.fill_(size)
        if op == 'sum' else tensor.copy_(marks))
    missing = sorted(set(range(size)) - set(drawn))
    if not missing:
        reid_loops.check_every_sample_reached(parts[0], Samples(size), 'loop')
        return
    with pytest.raises(ValueError) as info:
        reid_loops.check_every_sample_reached(parts[0], Samples(size), 'loop')
    assert f"but not sample_idx {', '.join(map(str, missing))}:" in str(
        info.value)


def test_outputs_without_a_sample_idx_keep_the_count_check_only(monkeypatch):
    """A pipeline whose packer leaves out ``sample_idx`` cannot be checked
    sample by sample; then every process skips that check alike."""
    monkeypatch.setattr(reid_loops, 'get_world_size', lambda: 1)
    reid_loops.check_every_sample_reached([0, None, 0], Samples(3), 'loop')
    with pytest.raises(ValueError, match='but not sample_idx 2:'):
        reid_loops.check_every_sample_reached([0, 1, 0], Samples(3), 'loop')
    assert reid_loops.handed_indices([
        dict(sample_idx=4),
        dict(sample_idx=True),
        dict(),
    ]) == [4, None, None]


@pytest.mark.parametrize('mode', ['val', 'test'])
@pytest.mark.parametrize('scope', ['', 'mmengine.'])
def test_mmengines_own_loop_is_refused_by_the_runner(synth, tmp_path, mode,
                                                     scope):
    """mmengine's ValLoop/TestLoop skip these checks: with drop_last=True
    mmengine's loop ranked 15 of the 16 images (the 7 queries, 8 of the 9
    gallery images) and printed another mAP than the whole split's.
    ReIDRunner refuses the loop when it is built, naming what to write."""
    from mmreid.engine.runner import ReIDRunner
    kind = 'ValLoop' if mode == 'val' else 'TestLoop'
    cfg = runner_args(tmp_path / 'plain', mode, loader(synth, drop_last=True),
                      f'{scope}{kind}')
    runner = Runner(**cfg)
    assert type(getattr(runner, f'{mode}_loop')).__name__ == kind
    partial = getattr(runner, mode)()
    with pytest.raises(
            ValueError,
            match=rf"{mode}_cfg: type='{scope}{kind}' is mmengine's {kind}, "
            rf".*Write type='ReID{kind}', or leave the type out"):
        ReIDRunner(**cfg)
    runner = ReIDRunner(**runner_args(tmp_path / 'reid', mode, loader(synth)))
    whole = getattr(runner, mode)()
    assert whole['reid/num_query'] == partial['reid/num_query'] == 7
    assert abs(whole['reid/mAP'] - partial['reid/mAP']) > 1e-3


@pytest.mark.parametrize('mode', ['val', 'test'])
def test_mmengines_own_loop_in_a_config_file_is_refused(tmp_path, mode):
    """A config file gives the loop as a ConfigDict, not a plain dict:
    tools/test.py's way (load_config, build_runner) refuses a file that
    names mmengine's loop, before any dataset is built."""
    from mmreid.engine.runner.reid_runner import build_runner
    from mmreid.utils.config import load_config
    from ..fixtures.processes import REPO
    kind = 'ValLoop' if mode == 'val' else 'TestLoop'
    path = tmp_path / 'user.py'
    path.write_text(
        f"_base_ = ['{REPO}/configs/baseline/bot_r18_synthreid.py']\n"
        f"{mode}_cfg = dict(type='{kind}')\n")
    cfg = load_config(
        str(path),
        work_dir=str(tmp_path / 'work'),
        phase=mode if mode == 'test' else 'train')
    assert type(cfg[f'{mode}_cfg']) is not dict
    with pytest.raises(
            ValueError, match=rf"{mode}_cfg: type='{kind}' is mmengine's"):
        build_runner(cfg)
    # Refused before mmengine made the work dir.
    assert not (tmp_path / 'work').exists()


def test_a_sample_idx_out_of_range_keeps_the_count_check_only(monkeypatch):
    """A ``sample_idx`` outside the dataset (negative, or past its end)
    says nothing about which sample was handed: as without one, only the
    count is checked. A negative index must not be read from the end,
    as if sample 1 of 3 were ``-2`` (a refusal naming a sample for
    nothing, or a missing one taken as present)."""
    monkeypatch.setattr(reid_loops, 'get_world_size', lambda: 1)
    assert reid_loops._missing_samples([0, 1, -2], 3, 1) is None
    assert reid_loops._missing_samples([0, 1, 3], 3, 1) is None
    assert reid_loops._missing_samples([0, 2, 1], 3, 1) == []
    reid_loops.check_every_sample_reached([0, 0, -2], Samples(3), 'loop')
    reid_loops.check_every_sample_reached([0, 0, 3], Samples(3), 'loop')
