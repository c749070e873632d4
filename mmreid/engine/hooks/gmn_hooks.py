"""Hooks of GMN: the DP warm-up switch and the model-owned distance."""
from typing import Iterator, List, Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmreid.registry import HOOKS


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class GMNDPWarmupHook(Hook):
    """Switch GMN's dropout-based perturbation (DP) on after a warm-up.

    Before every training epoch the head's ``dp_enabled`` is set to
    ``runner.epoch >= warmup_epochs``. It is derived from the epoch each
    time and never stored, so a resumed run gets the right value.

    Args:
        warmup_epochs (int, optional): E_dp, the number of epochs without
            DP. Defaults to the head's ``dp['warmup_epochs']``.
    """

    priority = 'NORMAL'

    def __init__(self, warmup_epochs: Optional[int] = None) -> None:
        if warmup_epochs is not None and warmup_epochs < 0:
            raise ValueError(f'GMNDPWarmupHook warmup_epochs must be >= 0, '
                             f'got {warmup_epochs!r}')
        self.warmup_epochs = warmup_epochs

    def _head(self, runner):
        head = getattr(_unwrap(runner.model), 'head', None)
        if head is None or not hasattr(head, 'dp_enabled'):
            raise TypeError('GMNDPWarmupHook needs a model whose head has '
                            '`dp_enabled` (GMNHead), got '
                            f'{type(head).__name__}')
        return head

    def dp_warmup_epochs(self, head) -> int:
        """E_dp: this hook's value, else the head's ``dp.warmup_epochs``."""
        if self.warmup_epochs is not None:
            return int(self.warmup_epochs)
        dp = getattr(head, 'dp', None) or {}
        return int(dp.get('warmup_epochs', 0))

    def before_train_epoch(self, runner) -> None:
        head = self._head(runner)
        enabled = runner.epoch >= self.dp_warmup_epochs(head)
        if enabled != head.dp_enabled:
            runner.logger.info(f'GMN DP {"on" if enabled else "off"} from '
                               f'epoch {runner.epoch}')
        head.dp_enabled = enabled


def _loop_evaluators(loop) -> Iterator:
    """The evaluators of a val/test loop: one per target of a multi-target
    loop, else the loop's own."""
    targets = getattr(loop, 'targets', None)
    if targets is not None:
        for target in targets:
            yield target.evaluator
    else:
        evaluator = getattr(loop, 'evaluator', None)
        if evaluator is not None:
            yield evaluator


@HOOKS.register_module()
class ModelDistanceHook(Hook):
    """Give every ``ReIDMetric`` the model's learned distance(s).

    Before validation and test, when the (unwrapped) model defines
    learned distance modes (a ``scorers()`` method and
    ``distance_modes``, e.g. :class:`~mmreid.models.GMNReID`), every
    ``ReIDMetric`` of the loop's evaluator -- or of each target of a
    ``MultiTargetValLoop``/``MultiTargetTestLoop`` -- gets them with
    ``set_scorers`` (primary mode first). The scorers are rebuilt each
    time, so they use the current weights. Other models are left alone:
    their metrics keep their own Euclidean path (re-ranking and query
    expansion still work there).
    """

    priority = 'NORMAL'

    @staticmethod
    def _metrics(loop) -> List:
        from mmreid.evaluation.metrics import ReIDMetric
        metrics = []
        for evaluator in _loop_evaluators(loop):
            metrics += [
                m for m in getattr(evaluator, 'metrics', [])
                if isinstance(m, ReIDMetric)
            ]
        return metrics

    def _set(self, runner, loop) -> None:
        model = _unwrap(runner.model)
        if not (callable(getattr(model, 'scorers', None))
                and hasattr(model, 'distance_modes')):
            return
        metrics = self._metrics(loop)
        if not metrics:
            return
        scorers = model.scorers()
        primary = next(iter(scorers))
        for metric in metrics:
            metric.set_scorers(scorers, primary=primary)
        runner.logger.info(
            f'ModelDistanceHook: {len(metrics)} ReIDMetric(s) score with '
            f'the model distance modes {list(scorers)} (primary '
            f'{primary!r})')

    def before_val(self, runner) -> None:
        self._set(runner, runner.val_loop)

    def before_test(self, runner) -> None:
        self._set(runner, runner.test_loop)
