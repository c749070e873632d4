"""mmengine's ``LogProcessor`` whose evaluation lines name their target."""
import copy
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import LogProcessor

from mmreid.registry import LOG_PROCESSORS

#: The batch counter of a log line header: ``[ 40/52]``.
_COUNTER = re.compile(r'\[\s*\d+/\d+\]')

#: The keys mmengine's ``LogProcessor`` logs as a running mean in a
#: training line: the training losses, times and gradient norm, which have
#: no ``/``, and the measurements a batch may leave out (GMN's
#: ``mnet_acc``, ``mnet_pos_acc``, ``mnet_neg_acc`` and ``pic_raw``; the
#: plugins' ``<abbr>_stage<b>_<term>``, such as SNR's
#: ``snr_stage2_pos_ap``): a key logged as the iteration's own showed, in an
#: iteration without it, the value of an earlier one; as a mean it is over
#: the iterations of the window that logged it
#: (:meth:`ReIDLogProcessor._collect_scalars`). Evaluation lines do not use
#: it (:data:`EVALUATION_MEAN_PATTERN`): their keys (``reid/mAP``,
#: ``d3/R1``, and the losses a ``val_step`` may return, ``loss_cls``) are
#: logged as computed, whatever a target's name (mmengine's default
#: pattern matched ``nighttime/mAP``).
#: :class:`~mmreid.engine.runner.ReIDRunner` sets it for a
#: ``log_processor`` without a ``mean_pattern``.
TRAINING_MEAN_PATTERN = (r'^[^/]*(loss|time|data_time|grad_norm)[^/]*$'
                         r'|^(mnet_(pos_|neg_)?acc|pic_raw'
                         r'|[a-z0-9]+_stage\d+_\w+)$')

#: The keys of a validation or test line that are running means: the batch
#: times of its batch lines (over the evaluation's batches). Everything
#: else an evaluation logs is its own: a metric, or a loss the model's
#: ``val_step`` returned (mmengine's loops log the mean over the
#: evaluation's batches), which the training pattern matched when a
#: single-target loop logged it without a prefix (``loss_cls``), so that
#: a validation showed the mean of the last ``window_size`` validations.
EVALUATION_MEAN_PATTERN = re.compile(r'^(time|data_time)$')

#: The message hub's runtime-info entry where :class:`ScalarIterationHook`
#: records, for each training key followed from its first value, the
#: iterations (1-based) of its values within the last ``window_size``
#: iterations; saved with the checkpoint, so that a resumed run's windows
#: reach back into the run it resumes.
SCALAR_ITERATIONS = 'scalar_iterations'


def label_header(log_str: str, label: str) -> str:
    """Put ``[label]`` before the batch counter of a log line.

    Example:
        >>> label_header('Epoch(test) [40/52]  eta: 0:00:03', 'd3')
        'Epoch(test) [d3] [40/52]  eta: 0:00:03'
        >>> label_header('Epoch(val) [2][ 7/52]  ', 'd3')
        'Epoch(val) [2] [d3] [ 7/52]  '

    Args:
        log_str (str): A line of mmengine's ``LogProcessor``.
        label (str): What the line is of, e.g. a target name.

    Returns:
        str: The line with ``[label]`` before its first ``[i/n]``, or in
        front of it when it has none.
    """
    match = _COUNTER.search(log_str)
    if match is None:
        return f'[{label}] {log_str}'
    head = log_str[:match.start()].rstrip()
    return f'{head} [{label}] {log_str[match.start():]}'


class ScalarIterationHook(Hook):
    """Record the iteration of each training value, for the window means of
    :class:`ReIDLogProcessor`.

    mmengine's running mean of a training key is over the last
    ``window_size`` values the key ever had, however old: a measurement
    the batches stop logging (GMN's ``mnet_acc`` once replace-mode DP is
    on) stayed in every later line, frozen at the mean of the last
    iterations that had it. From ``before_train`` on, this hook notes the
    iteration of every value the runner's message hub gets under
    ``train/`` (in the hub's :data:`SCALAR_ITERATIONS` entry, for the keys
    it sees from their first value), so that a line's mean is over the
    values of its window's iterations only.

    After each validation and test it also hands the log processor the
    keys that evaluation reported (:meth:`ReIDLogProcessor.note_evaluation`),
    before the ``LoggerHook`` makes its line.

    :class:`~mmreid.engine.runner.ReIDRunner` registers it.
    """

    priority = 'HIGHEST'

    def before_train(self, runner) -> None:
        """Have the message hub record the iteration of each training
        value (a resumed run's record comes with its checkpoint)."""
        hub = runner.message_hub
        if hub.get_info(SCALAR_ITERATIONS) is None:
            hub.update_info(SCALAR_ITERATIONS, {})
        # Of a training that stopped before after_train: not twice.
        update_scalar = getattr(hub.update_scalar, '__wrapped__',
                                hub.update_scalar)

        def recording_update_scalar(key, value, count=1, resumed=True):
            new = key not in hub.log_scalars
            update_scalar(key, value, count, resumed)
            records = hub.get_info(SCALAR_ITERATIONS)
            if records is None or not key.startswith('train/'):
                return
            if new:
                records[key] = []
            iterations = records.get(key)
            if iterations is None:
                # Values from before the record (a checkpoint saved
                # without it): mmengine's mean (by value) for this key.
                return
            iteration = runner.iter + 1
            window = runner.log_processor.window_size
            iterations[:] = [i for i in iterations if i > iteration - window]
            iterations.append(iteration)

        recording_update_scalar.__wrapped__ = update_scalar
        hub.update_scalar = recording_update_scalar

    def after_train(self, runner) -> None:
        """Give the message hub its own ``update_scalar`` back."""
        vars(runner.message_hub).pop('update_scalar', None)

    def after_val_epoch(self, runner, metrics=None) -> None:
        """Tell the log processor the keys this validation reported."""
        self._note_evaluation(runner, 'val', metrics)

    def after_test_epoch(self, runner, metrics=None) -> None:
        """Tell the log processor the keys this test reported."""
        self._note_evaluation(runner, 'test', metrics)

    @staticmethod
    def _note_evaluation(runner, mode: str, metrics) -> None:
        note = getattr(runner.log_processor, 'note_evaluation', None)
        if callable(note) and metrics is not None:
            note(mode, metrics)


@LOG_PROCESSORS.register_module()
class ReIDLogProcessor(LogProcessor):
    """mmengine's ``LogProcessor`` that names the target of each line.

    A loop that evaluates several targets in one epoch
    (:class:`~mmreid.engine.runner.MultiTargetValLoop`,
    :class:`~mmreid.engine.runner.MultiTargetTestLoop`) shows each target's
    batches in turn; mmengine's lines (``Epoch(test) [40/52]``) did not say
    which target a line was of, and the end-of-epoch line counted the
    batches of the last target only. Here a batch line names the target in
    progress (``Epoch(test) [d3] [40/52]``; its running means, such as
    ``time``, are over that target's batches) and the end-of-epoch line,
    which carries the metrics of every target, counts the batches of all
    of them (``Epoch(test) [3 targets] [112/112]``; its mean ``time`` and
    ``data_time`` are over those batches too). Any other loop's lines are
    mmengine's, except that the means of its end-of-epoch line are over
    the epoch's batches (mmengine's took in one batch of the previous
    evaluation), and that only the batch times of an evaluation are means
    (its metrics and the losses a ``val_step`` returns are its own), and
    that it shows the keys that evaluation reported and no others
    (:meth:`note_evaluation`). The means of a training line are over the
    values of its window of iterations (:meth:`_collect_scalars`, with
    :class:`ScalarIterationHook`'s record).

    ``configs/_base_/default_runtime.py`` sets it, and
    :class:`~mmreid.engine.runner.ReIDRunner` uses it for a
    ``log_processor`` without a ``type``. The arguments are those of
    mmengine's ``LogProcessor``.
    """

    #: The batches of every target while the end-of-epoch line is made.
    _epoch_batches: Optional[int] = None
    #: Whether the values of a training line were explained in the log.
    _train_explained: bool = False
    #: The keys the last validation and test reported, by mode, until
    #: their end-of-epoch line is made (:meth:`note_evaluation`).
    _reported: Optional[Dict[str, frozenset]] = None
    #: Those of the end-of-epoch line being made.
    _line_keys: Optional[frozenset] = None

    def note_evaluation(self, mode: str, metrics: dict) -> None:
        """Record the keys an evaluation reported, for its end-of-epoch
        line.

        mmengine's line shows every ``<mode>/`` value of the message hub,
        where its ``RuntimeInfoHook`` keeps each key an evaluation ever
        reported: a key reported by an earlier validation but not by this
        one (a target dropped from ``val_cfg.targets``, including the
        values a resume restored from the checkpoint's hub) was shown, and
        written to ``scalars.json``, beside this validation's results.
        The line of the evaluation noted here shows its keys and the batch
        times only. :class:`ScalarIterationHook` calls it; an evaluation
        line without a note is mmengine's.

        Args:
            mode (str): ``'val'`` or ``'test'``.
            metrics (dict): What the loop reported to ``after_<mode>_epoch``.
        """
        if self._reported is None:
            self._reported = {}
        self._reported[mode] = frozenset(metrics)

    def train_line_legend(self) -> str:
        """What the values of a training line are, logged once before the
        first: mmengine's lines show some values as running means and
        others as the iteration's own, and do not say which.

        Returns:
            str: The legend, with this processor's ``window_size``.
        """
        from mmengine.dist import get_world_size
        custom = ('' if not self.custom_cfg else
                  f'; log_processor.custom_cfg sets others: '
                  f'{self.custom_cfg}')
        world = get_world_size()
        if world > 1:
            custom += (f'. With {world} processes they are process 0\'s, '
                       'of its share of each batch (mmengine does not '
                       'average them over the processes)')
        return ('Training lines: the values whose name matches '
                f'{self.mean_pattern.pattern!r} (loss, each loss_* term, '
                'time, data_time, grad_norm, and measurements a batch may '
                f'leave out) are means over the last {self.window_size} '
                'iterations (log_processor.window_size), of those that '
                'logged them (grad_norm: the weight updates, one every '
                'optim_wrapper.accumulative_counts iterations), and left out '
                'of a line when none did; the others '
                'are the iteration\'s own: lr is '
                'the first parameter group\'s (e.g. the backbone\'s), '
                'base_lr the optimizer\'s lr (logged when there are several '
                f'parameter groups){custom}.')

    def get_log_after_iter(self, runner, batch_idx: int,
                           mode: str) -> Tuple[dict, str]:
        """mmengine's line, with the target in progress named and its
        running means (``time``, ``data_time``) over that target's batches
        only; before the first training line, its legend
        (:meth:`train_line_legend`)."""
        if mode == 'train' and not self._train_explained:
            self._train_explained = True
            print_log(self.train_line_legend(), logger='current')
        target = self._current_target(runner, mode)
        if target is None:
            return super().get_log_after_iter(runner, batch_idx, mode)
        # mmengine's mean of the last window_size batches would take in
        # those of the previous target at the start of the next one.
        window = self.window_size
        self.window_size = min(window, batch_idx + 1)
        try:
            tag, log_str = super().get_log_after_iter(runner, batch_idx, mode)
        finally:
            self.window_size = window
        return tag, label_header(log_str, target)

    def get_log_after_epoch(self,
                            runner,
                            batch_idx: int,
                            mode: str,
                            with_non_scalar: bool = False) -> Tuple[dict, str]:
        """mmengine's line, of the keys the evaluation reported
        (:meth:`note_evaluation`); over every target of a multi-target
        loop."""
        self._line_keys = (self._reported or {}).pop(mode, None)
        try:
            return self._log_after_epoch(runner, mode, with_non_scalar)
        finally:
            self._line_keys = None

    def _log_after_epoch(self, runner, mode: str,
                         with_non_scalar: bool) -> Tuple[dict, str]:
        counts = self._target_batches(runner, mode)
        if counts is None:
            # mmengine's LoggerHook passes the dataloader length as the
            # batch index, so its window of the epoch's means (batch_idx +
            # 1) took in a batch of the previous evaluation.
            last = self._get_dataloader_size(runner, mode) - 1
            return super().get_log_after_epoch(runner, last, mode,
                                               with_non_scalar)
        total = sum(counts.values())
        # mmengine is given the last target's batch count; the epoch
        # is all of them: the count shown, and the window of the means
        # (batch_idx + 1 batches: exactly the epoch's).
        self._epoch_batches = total
        try:
            tag, log_str = super().get_log_after_epoch(runner, total - 1, mode,
                                                       with_non_scalar)
        finally:
            self._epoch_batches = None
        label = (
            next(iter(counts))
            if len(counts) == 1 else f'{len(counts)} targets')
        return tag, label_header(log_str, label)

    def _collect_scalars(self,
                         custom_cfg: List[dict],
                         runner,
                         mode: str,
                         reserve_prefix: bool = False) -> dict:
        """mmengine's, with the means of a training line over its window
        of iterations, and in an evaluation line only the batch times as
        means.

        mmengine's mean of a key is over its last ``window_size`` values,
        however old. In a training line here it is over the values of the
        last ``window_size`` iterations (as :class:`ScalarIterationHook`
        recorded them), and a key that none of them logged is left out of
        the line (a key the hook did not see from its first value, such as
        one of a checkpoint saved without the record, keeps mmengine's
        mean). In a validation or test line only ``time`` and
        ``data_time`` are means (:data:`EVALUATION_MEAN_PATTERN`); a loss
        that the model's ``val_step`` returned is that validation's own,
        not a mean over the last validations. The pattern is matched
        against the key without its ``train/`` prefix, also for the tags
        of ``log_with_hierarchy=True``.

        Args:
            custom_cfg (List[dict]): ``custom_cfg`` with int
                ``window_size``; mmengine's statistics, by value.
            runner (Runner): The runner.
            mode (str): ``'train'``, ``'val'`` or ``'test'``.
            reserve_prefix (bool): Whether the keys keep their
                ``<mode>/`` prefix.

        Returns:
            dict: The values of the line, by key.
        """
        hub = runner.message_hub
        if mode == 'train':
            pattern = self.mean_pattern
            records = hub.get_info(SCALAR_ITERATIONS)
            # The window: the iterations after this one, 1-based.
            before = runner.iter + 1 - self.window_size
        else:
            pattern, records, before = EVALUATION_MEAN_PATTERN, None, 0
        tag: dict = OrderedDict()
        buffers = OrderedDict()
        for full_key, buffer in hub.log_scalars.items():
            if not full_key.startswith(mode):
                continue
            key = self._remove_prefix(full_key, f'{mode}/')
            if not self._in_line(key):
                continue
            name = full_key if reserve_prefix else key
            buffers[name] = buffer
            if pattern.search(key) is None:
                tag[name] = buffer.current()
                continue
            iterations = None if records is None else records.get(full_key)
            if iterations is None:
                tag[name] = buffer.mean(self.window_size)
                continue
            count = sum(iteration > before for iteration in iterations)
            if count:
                tag[name] = buffer.mean(count)
        for log_cfg in copy.deepcopy(custom_cfg):
            data_src = log_cfg.pop('data_src')
            log_name = log_cfg.pop('log_name', data_src)
            if reserve_prefix:
                data_src = f'{mode}/{data_src}'
                log_name = f'{mode}/{log_name}'
            if data_src in buffers:
                tag[log_name] = buffers[data_src].statistics(**log_cfg)
        return tag

    def _collect_non_scalars(self, runner, mode: str) -> dict:
        """mmengine's, without the keys the evaluation did not report."""
        infos = super()._collect_non_scalars(runner, mode)
        return OrderedDict(
            (key, value) for key, value in infos.items()
            if self._in_line(self._remove_prefix(key, f'{mode}/')))

    def _in_line(self, key: str) -> bool:
        """Whether the end-of-epoch line being made shows ``key`` (without
        its mode prefix): all do outside such a line."""
        return (self._line_keys is None or key in self._line_keys
                or EVALUATION_MEAN_PATTERN.search(key) is not None)

    def _get_dataloader_size(self, runner, mode) -> int:
        if self._epoch_batches is not None:
            return self._epoch_batches
        return super()._get_dataloader_size(runner, mode)

    def _current_target(self, runner, mode: str) -> Optional[str]:
        if mode == 'train':
            return None
        loop = self._get_cur_loop(runner, mode)
        return getattr(loop, 'current_target', None)

    def _target_batches(self, runner, mode: str) -> Optional[Dict[str, int]]:
        loop = self._get_cur_loop(runner, mode)
        batch_counts = getattr(loop, 'batch_counts', None)
        return batch_counts() if callable(batch_counts) else None
