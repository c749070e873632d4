"""Validation and test loops that evaluate several targets in one run.

mmengine's ``ValLoop`` and ``TestLoop`` hold one dataloader and one
evaluator. A domain-generalisation run reports every target benchmark
(Market, Duke, the small PRID/GRID/VIPeR/iLIDS sets ...) at once, each with
its own gallery and protocol, so each target here has its own dataloader
and evaluator and its metrics are reported under its own name (merged, with
their mean over targets, by :mod:`~mmreid.engine.runner.target_metrics`).
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.evaluator import Evaluator
from mmengine.hooks import IterTimerHook
from mmengine.runner.base_loop import BaseLoop
from mmengine.runner.loops import _parse_losses
from torch.utils.data import DataLoader

from mmreid.evaluation.results_table import (PARTITION_NAME,
                                             format_results_table)
from mmreid.registry import LOOPS
from mmreid.utils.config.runtime import check_loop_amp_device
from .reid_loops import (check_every_sample_reached, check_keeps_every_sample,
                         check_metric_results, check_model_distance,
                         check_not_empty, check_tracked_statistics,
                         check_trial_galleries, evaluate_batch,
                         hand_model_scorers, scorers_handed_by,
                         share_rank0_buffers)
from .target_metrics import averaged_over_targets, merge_target_metrics
from .training_sets import check_identity_split


def _is_placeholder(value: Any) -> bool:
    """``None`` or an empty config, the runner's stand-in for 'unused'."""
    return value is None or (isinstance(value, (dict, list, tuple))
                             and len(value) == 0)


#: Per field, the keys that say WHAT a target evaluates (its data, its
#: metrics); copied into every target they would make every target
#: evaluate the same thing under its own name.
WHAT_IS_EVALUATED = {
    'dataloader': ('dataset', ),
    'evaluator': ('type', 'metrics')
}


def _target_options(root: str, targets: Sequence[dict], field: str,
                    value: Any) -> Optional[List[str]]:
    """The ``--cfg-options`` that set ``value`` in ``field`` of each target.

    Only an option that makes sense for every target is copied: a scalar
    at the top of ``value`` (``batch_size``, ``num_workers``,
    ``distance``) that is not in :data:`WHAT_IS_EVALUATED`. A target that
    holds several metrics gets the form ``<root>.<i>.<field>.<j>.<key>``:
    which metric takes the option is for the user to say.

    Example:
        >>> _target_options('test_cfg.targets', [
        ...     dict(name='a', evaluator=dict(type='ReIDMetric')),
        ...     dict(name='b', evaluator=[dict(type='ReIDMetric')] * 2)],
        ...     'evaluator', dict(distance='cosine'))
        ['test_cfg.targets.0.evaluator.distance=cosine',
         'test_cfg.targets.1.evaluator.<j>.distance=cosine']

    Args:
        root (str): The key of the targets, e.g. ``'test_cfg.targets'``.
        targets (Sequence[dict]): The targets.
        field (str): ``'dataloader'`` or ``'evaluator'``.
        value: What was set instead in the runner's placeholder.

    Returns:
        list[str] | None: ``<root>.<i>.<field>[.<j>].<key>=<value>`` per
        target and key; None when ``value`` is no dict of such options
        (a whole dataloader or evaluator, a dataset, a metric type).
    """
    what = WHAT_IS_EVALUATED.get(field, ())
    if not isinstance(value, dict) or any(
            key in what or isinstance(item, (dict, list, tuple))
            for key, item in value.items()):
        return None
    options = []
    for i, target in enumerate(targets):
        held = target.get(field) if isinstance(target, dict) else None
        holder = f'{root}.{i}.{field}'
        if isinstance(held, dict) and 'metrics' in held:
            # mmengine's dict(type='Evaluator', metrics=[...]) form.
            holder, held = f'{holder}.metrics', held['metrics']
        if isinstance(held, (list, tuple)):
            holder = f'{holder}.<j>' if len(held) > 1 else f'{holder}.0'
        options += [f'{holder}.{key}={item}' for key, item in value.items()]
    return options


class _EvalTarget:
    """One target: its name, dataloader and evaluator."""

    def __init__(
        self,
        name: str,
        dataloader: DataLoader,
        evaluator: Evaluator,
        metric_prefixes: Sequence[Optional[str]] = ()
    ) -> None:
        self.name = name
        self.dataloader = dataloader
        self.evaluator = evaluator
        # Before the loop drops the prefix of a single metric.
        self.metric_prefixes = tuple(metric_prefixes)
        self.averaged = tuple(
            averaged_over_targets(metric) for metric in evaluator.metrics)
        #: The keys of the model's losses in its last metrics (set by
        #: ``_run_target``): logged, never averaged over targets.
        self.loss_keys: Tuple[str, ...] = ()


class _MultiTargetLoop(BaseLoop):
    """Shared body of :class:`MultiTargetValLoop` and
    :class:`MultiTargetTestLoop`; ``_mode`` is ``'val'`` or ``'test'``."""

    _mode = 'val'
    # ResultsTableHook leaves the table to the loop.
    prints_results_table = True
    #: The ``sample_idx`` of the samples this process handed to the
    #: current target's evaluator (set by :meth:`_run_target`).
    _handed: List[Optional[int]]

    def __init__(self,
                 runner,
                 targets: Sequence[dict],
                 dataloader: Union[DataLoader, Dict, None] = None,
                 evaluator: Union[Evaluator, Dict, List, None] = None,
                 aggregate_prefix: Optional[str] = 'mean',
                 fp16: bool = False) -> None:
        if not targets:
            raise ValueError(f'{type(self).__name__} needs at least one '
                             'target')
        if aggregate_prefix is not None and (
                not isinstance(aggregate_prefix, str) or not aggregate_prefix
                or '/' in aggregate_prefix):
            # '' would make the mean's keys '/mAP'.
            raise ValueError(
                f'{self._mode}_cfg.aggregate_prefix={aggregate_prefix!r}: '
                "expected a non-empty name without '/' (the mean over "
                "targets is logged as '<aggregate_prefix>/<metric>'), or "
                'None to report no mean')
        # Before any dataset is built: the CPU would run bfloat16.
        check_loop_amp_device(fp16, f'{self._mode}_cfg.fp16')
        self.refuse_ignored_placeholders(
            targets, dataloader=dataloader, evaluator=evaluator)
        self.refuse_dropping_dataloaders(targets)
        self.targets = self._build_targets(runner, targets, aggregate_prefix)
        # ``dataloader`` and ``evaluator`` are those of the target being
        # evaluated: mmengine's hooks and log processor read
        # ``runner.<mode>_loop.dataloader`` (batch counts, ETA).
        super().__init__(runner, self.targets[0].dataloader)
        self.current_target: Optional[str] = None
        self._select(self.targets[0])
        self.aggregate_prefix = aggregate_prefix
        self.fp16 = fp16
        self.losses: Dict[str, Any] = dict()

    @classmethod
    def refuse_ignored_placeholders(cls, targets: Sequence[dict],
                                    **given) -> None:
        """Refuse a ``<mode>_dataloader``/``<mode>_evaluator`` that holds
        something.

        The runner passes them (mmengine requires them to be set together
        with ``<mode>_cfg``), but every target has its own dataloader and
        evaluator: an override such as ``test_evaluator.distance=cosine``
        would change nothing, and the results would be another distance's.
        The loop checks them when it is made; a tool that drops targets
        from the config (``tools/test.py --target``) checks them before,
        so that the keys named count the config's targets.

        Args:
            targets (Sequence[dict]): The targets, as in the config.
            **given: ``dataloader=`` and ``evaluator=``, as the runner
                passes them.

        Raises:
            ValueError: Naming the targets and how to empty the setting;
                for options that make sense for every target (see
                :func:`_target_options`) also their keys in each target,
                never for what a target evaluates (a dataset, a metric).
        """
        mode = cls._mode
        for field, value in given.items():
            if _is_placeholder(value):
                continue
            names = ', '.join(f'{i} {target.get("name")!r}'
                              for i, target in enumerate(targets)
                              if isinstance(target, dict))
            shown = repr(value)
            if len(shown) > 60:
                shown = shown[:57] + '...'
            options = _target_options(f'{mode}_cfg.targets', targets, field,
                                      value)
            if options is None:
                fix = (f'To evaluate other data or metrics, change the '
                       f'{field} of the target(s) concerned, or add a '
                       'target; ')
            else:
                fix = ('To set it for every target: --cfg-options '
                       f'{" ".join(options)}')
                if any('.<j>.' in option for option in options):
                    fix += ' (<j>: the index of the metric that takes it)'
                fix += '; '
            raise ValueError(
                f'{cls.__name__} evaluates every target with its own '
                f'{field} ({mode}_cfg.targets: {names}), so {mode}_{field} '
                f'= {shown} would be ignored. {fix}in a config, empty it: '
                f'{mode}_{field} = dict(_delete_=True) where a base sets it '
                f"(a plain dict() merges into the base's), else "
                f'{mode}_{field} = dict().')

    @classmethod
    def refuse_dropping_dataloaders(cls, targets: Sequence[dict]) -> None:
        """Refuse a target's dataloader that drops its last batch.

        See :func:`~mmreid.engine.runner.reid_loops.check_keeps_every_sample`.
        The loop checks it when it is made; a tool that drops targets from
        the config (``tools/test.py --target``) checks it before, so that
        the key named counts the config's targets.

        Args:
            targets (Sequence[dict]): The targets, as in the config.

        Raises:
            ValueError: Naming ``<mode>_cfg.targets.<i>.dataloader.
                drop_last`` and the target.
        """
        for i, target in enumerate(targets):
            if isinstance(target, dict):
                check_keeps_every_sample(
                    target.get('dataloader'),
                    f'{cls._mode}_cfg.targets.{i}.dataloader',
                    target.get('name'))

    @staticmethod
    def _build_targets(runner, targets: Sequence[dict],
                       aggregate_prefix: Optional[str]) -> List[_EvalTarget]:
        built: List[_EvalTarget] = []
        names = set()
        for target in targets:
            unknown = set(target) - {'name', 'dataloader', 'evaluator'}
            missing = {'name', 'dataloader', 'evaluator'} - set(target)
            if unknown or missing:
                raise ValueError('a target is dict(name=..., dataloader=..., '
                                 f'evaluator=...); got keys {sorted(target)}')
            name = target['name']
            if not isinstance(name, str) or not name or '/' in name:
                raise ValueError(f'target name {name!r} must be a non-empty '
                                 "string without '/'")
            if name in names or name == aggregate_prefix:
                raise ValueError(f'target name {name!r} is used twice (or '
                                 'is the aggregate prefix)')
            if PARTITION_NAME.match(name):
                # The results table reads split<i>/trial<t> keys as the
                # partitions of a split or trial protocol: such a target
                # would be left out of it, the mean row still counting it.
                raise ValueError(
                    f'target name {name!r} is the name of a protocol '
                    'partition (split<i>, trial<t>), which the results table '
                    "folds into its protocol's row; give the target another "
                    f"name (e.g. '{name}_set')")
            names.add(name)

            dataloader = target['dataloader']
            if isinstance(dataloader, dict):
                diff_rank_seed = runner._randomness_cfg.get(
                    'diff_rank_seed', False)
                dataloader = runner.build_dataloader(
                    dataloader,
                    seed=runner.seed,
                    diff_rank_seed=diff_rank_seed)
            check_not_empty(dataloader.dataset, f'target {name!r}')
            evaluator = target['evaluator']
            if not isinstance(evaluator, Evaluator):
                evaluator = runner.build_evaluator(evaluator)
            # With one metric the target name replaces its prefix
            # ('reid/mAP' -> 'd3/mAP'); several metrics keep theirs
            # beneath it ('d3/cos/mAP') so their keys stay apart.
            prefixes = [metric.prefix for metric in evaluator.metrics]
            if len(evaluator.metrics) == 1:
                evaluator.metrics[0].prefix = None
            if hasattr(dataloader.dataset, 'metainfo'):
                evaluator.dataset_meta = dataloader.dataset.metainfo
            built.append(_EvalTarget(name, dataloader, evaluator, prefixes))
        return built

    def run(self) -> dict:
        """Evaluate every target in turn.

        Returns:
            dict: ``<target>/<metric>`` for every target and
            ``<aggregate_prefix>/<metric>``, the mean over targets.
        """
        for target in self.targets:
            # Before any extraction (see check_model_distance).
            check_model_distance(self.runner.model, target.evaluator,
                                 f'{type(self).__name__} ({target.name})')
            check_trial_galleries(self.runner.model, target.evaluator,
                                  f'{type(self).__name__} ({target.name})',
                                  getattr(self.runner, 'cfg', None))
        check_identity_split(self.runner, self, type(self).__name__)
        check_tracked_statistics(self.runner.model, type(self).__name__)
        with scorers_handed_by(self.runner.model, type(self).__name__):
            return self._run_targets()

    def _run_targets(self) -> dict:
        mode = self._mode
        self._select(self.targets[0])
        self.runner.call_hook(f'before_{mode}')
        self.runner.call_hook(f'before_{mode}_epoch')
        if mode == 'val':
            # After the hooks: EMAHook swaps in each rank's averages.
            share_rank0_buffers(self.runner.model)
        self.runner.model.eval()
        target_metrics: Dict[str, Dict[str, Any]] = dict()
        for target in self.targets:
            target_metrics[target.name] = self._run_target(target)
        metrics = merge_target_metrics(
            target_metrics, self.aggregate_prefix,
            {t.name: t.metric_prefixes
             for t in self.targets},
            {t.name: t.averaged
             for t in self.targets},
            {t.name: t.loss_keys
             for t in self.targets})
        table = format_results_table(metrics)
        self.runner.logger.info(
            f'{mode} metrics of {len(self.targets)} targets:\n{table}')
        self.runner.call_hook(f'after_{mode}_epoch', metrics=metrics)
        self.runner.call_hook(f'after_{mode}')
        return metrics

    def batch_counts(self) -> Dict[str, int]:
        """The number of batches of every target, in report order (the
        epoch of the hooks is all of them)."""
        return {t.name: len(t.dataloader) for t in self.targets}

    def _select(self, target: _EvalTarget) -> None:
        """Make ``target`` the one that hooks and the runner see."""
        self.current_target = target.name
        self.dataloader = target.dataloader
        self.evaluator = target.evaluator
        dataset = target.dataloader.dataset
        if hasattr(dataset, 'metainfo'):
            self.runner.visualizer.dataset_meta = dataset.metainfo

    def _restart_iter_timers(self) -> None:
        """Start the epoch clock of every ``IterTimerHook`` afresh.

        ``IterTimerHook`` gives the ETA of a val/test batch as the time
        summed over the epoch, divided by the batch index + 1, times the
        batches left in the current dataloader. All targets are one epoch
        to the hooks, so from the second target on that sum would hold
        the earlier targets' batches and evaluation while the index
        restarts at 0. Only its per-epoch state is reset (its own
        ``after/before_<mode>_epoch``); the other hooks still see one
        epoch.
        """
        mode = self._mode
        for hook in self.runner.hooks:
            if isinstance(hook, IterTimerHook):
                getattr(hook, f'after_{mode}_epoch')(self.runner)
                getattr(hook, f'before_{mode}_epoch')(self.runner)

    def _run_target(self, target: _EvalTarget) -> Dict[str, Any]:
        """Extract the features of one target and evaluate them.

        Returns:
            dict: The target's metrics, without the target name.
        """
        self._select(target)
        dataset = target.dataloader.dataset
        self.runner.logger.info(
            f'{self._mode} target {target.name!r}: {len(dataset)} samples, '
            f'{len(target.dataloader)} batches')
        self.losses.clear()
        self._restart_iter_timers()
        self._handed = []
        for idx, data_batch in enumerate(target.dataloader):
            self.run_iter(idx, data_batch)
        check_every_sample_reached(self._handed, dataset,
                                   f'{type(self).__name__} ({target.name})')
        # The model's own distance (GMN's M-Net) reaches every target's
        # metrics, as in ReIDValLoop/ReIDTestLoop.
        hand_model_scorers(self.runner.model, target.evaluator,
                           f'{type(self).__name__} ({target.name})')
        check_metric_results(target.evaluator)
        # The dataset length lets ``collect_results`` drop the samples a
        # distributed sampler repeats to pad the last batch.
        metrics = target.evaluator.evaluate(len(dataset))
        losses = _parse_losses(self.losses, self._mode) if self.losses \
            else dict()
        target.loss_keys = tuple(losses)
        metrics.update(losses)
        return metrics

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: Sequence[dict]) -> None:
        """Extract the features of one batch of the current target.

        Args:
            idx (int): Index of the batch in the target's dataloader.
            data_batch (Sequence[dict]): A batch from the dataloader.
        """
        self._handed.extend(
            evaluate_batch(self, self._mode, self.losses, idx, data_batch))


@LOOPS.register_module()
class MultiTargetValLoop(_MultiTargetLoop):
    """Validation on several targets, each with its own data and metric.

    Every target's features are extracted with its own dataloader and
    scored by its own evaluator, whose metrics get the model's own
    distance (see :func:`~mmreid.engine.runner.hand_model_scorers`) (in
    distributed runs each evaluator
    collects its results with its own dataset length, so sampler padding
    is dropped). Keys are ``<target>/<metric>`` (``d3/mAP``); split-based
    metrics give ``<target>/split<i>/<metric>``, ``<target>/<metric>`` and
    ``<target>/<metric>_std``. ``<aggregate_prefix>/<metric>`` is the mean
    over targets of every summary metric all of them report (counts,
    ``_std``, per-split values and the losses of a model whose
    ``val_step`` returns them, ``<target>/loss_cls``, are not averaged),
    of mmreid's metrics and of the metrics whose class sets
    ``mean_over_targets = True`` only: another metric may report a count
    under any name (``n``), so its keys are logged per target and never
    averaged (see :func:`averaged_over_targets`). With one metric per
    target the target name replaces the metric's prefix; with several,
    each keeps its prefix beneath the target name (``d3/cos/mAP``) and is
    averaged with the single metrics of that prefix (``mean/cos/mAP``; see
    :func:`merge_target_metrics`). The keys of a target thus follow its
    own number of metrics: adding a metric to one target turns its
    ``d3/mAP`` into ``d3/reid/mAP`` (what ``save_best`` and
    ``compare_configs.py --target d3/reid`` name), the other targets'
    keys stay, and ``mean/reid/mAP`` still averages all of them. Keys
    left out of the mean are named in a warning.

    Every target is evaluated on all its samples: a target's dataloader
    with ``drop_last=True`` is refused when the loop is built, and a
    target whose sampler left samples out before its metrics compute.

    The hooks see one validation epoch: ``before_val_epoch`` once,
    ``before/after_val_iter`` for the batches of every target (while
    ``runner.val_loop.dataloader`` and ``current_target`` name the target
    in progress), ``after_val_epoch`` once with all metrics, so
    ``CheckpointHook(save_best='d3/mAP')`` can select on any key. Only
    ``IterTimerHook`` is restarted at each target, so that the ETA of an
    ``Epoch(val) [e] [X] [i/n]`` line is that of the target in progress
    ``X`` (``n`` is its batch count); with
    :class:`~mmreid.engine.runner.ReIDLogProcessor` (mmreid's default)
    the lines name the target and the end-of-epoch line counts the
    batches of all of them (``Epoch(val) [e] [3 targets] [N/N]``).

    Example:
        >>> val_dataloader = dict()  # mmengine needs these set with val_cfg
        >>> val_evaluator = dict()
        >>> val_cfg = dict(
        ...     type='MultiTargetValLoop',
        ...     targets=[
        ...         dict(name='d3', dataloader=dict(...),
        ...              evaluator=dict(type='ReIDMetric')),
        ...         dict(name='d0', dataloader=dict(...),
        ...              evaluator=dict(type='ReIDMetric')),
        ...     ])

    Args:
        runner (Runner): The runner.
        targets (Sequence[dict]): ``dict(name, dataloader, evaluator)`` per
            target, in report order. ``name`` has no ``'/'``; the
            dataloader and evaluator are objects or configs.
        dataloader: What the runner passes as ``val_dataloader``; mmengine
            requires it to be set together with ``val_cfg``. It is not
            used; anything other than ``None`` or ``dict()`` is refused,
            with the keys of the targets to set instead.
        evaluator: What the runner passes as ``val_evaluator``; as
            ``dataloader``.
        aggregate_prefix (str, optional): Prefix of the mean over targets,
            a non-empty name without ``'/'``; ``None`` reports no mean.
            Defaults to ``'mean'``.
        fp16 (bool): Extract features under fp16 autocast (CUDA only:
            refused without a CUDA device, where mmengine would run
            bfloat16). Defaults to False.
    """

    _mode = 'val'


@LOOPS.register_module()
class MultiTargetTestLoop(_MultiTargetLoop):
    """Testing on several targets, each with its own data and metric.

    The test counterpart of :class:`MultiTargetValLoop`, configured as
    ``test_cfg`` (with ``test_dataloader = dict()`` and
    ``test_evaluator = dict()``); it calls the ``*_test_*`` hooks.

    Args:
        runner (Runner): The runner.
        targets (Sequence[dict]): ``dict(name, dataloader, evaluator)`` per
            target, in report order.
        dataloader: Unused ``test_dataloader`` placeholder; as in
            :class:`MultiTargetValLoop`, only ``None`` or ``dict()``.
        evaluator: Unused ``test_evaluator`` placeholder; as
            ``dataloader``.
        aggregate_prefix (str, optional): Prefix of the mean over targets.
            Defaults to ``'mean'``.
        fp16 (bool): Extract features under fp16 autocast (CUDA only:
            refused without a CUDA device, where mmengine would run
            bfloat16). Defaults to False.
    """

    _mode = 'test'
