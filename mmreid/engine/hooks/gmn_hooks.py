"""Hooks of GMN: the DP warm-up switch (and a deprecated distance hook)."""
from contextlib import ExitStack
from typing import Iterator, Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmreid.registry import HOOKS
from mmreid.utils.deprecation import warn_deprecated
from mmreid.utils.labels import integer_label


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
        if warmup_epochs is not None:
            warmup_epochs = integer_label(warmup_epochs,
                                          'GMNDPWarmupHook warmup_epochs')
            if warmup_epochs < 0:
                raise ValueError('GMNDPWarmupHook warmup_epochs must be >= '
                                 f'0, got {warmup_epochs!r}')
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

    def before_train(self, runner) -> None:
        """Refuse a warm-up counted in epochs of an iteration-based loop.

        ``IterBasedTrainLoop`` calls ``before_train_epoch`` once, at epoch
        0, so a warm-up of ``E_dp > 0`` epochs would never end.
        """
        from mmengine.runner import IterBasedTrainLoop
        warmup = self.dp_warmup_epochs(self._head(runner))
        if warmup > 0 and isinstance(
                getattr(runner, 'train_loop', None), IterBasedTrainLoop):
            raise ValueError(
                f'GMNDPWarmupHook: a DP warm-up of {warmup} epochs cannot '
                'end in an IterBasedTrainLoop (it runs one epoch, so DP '
                'would never be switched on). Train with an epoch-based '
                'loop, or set warmup_epochs=0 (on the hook or in the '
                "head's dp).")

    def before_train_epoch(self, runner) -> None:
        """Set ``dp_enabled``; a switch is logged with the epoch numbered
        as mmengine logs it (``Epoch(train) [runner.epoch + 1]``)."""
        head = self._head(runner)
        warmup = self.dp_warmup_epochs(head)
        enabled = runner.epoch >= warmup
        if enabled != head.dp_enabled:
            runner.logger.info(f'GMN DP {"on" if enabled else "off"} from '
                               f'Epoch(train) [{runner.epoch + 1}] '
                               f'(E_dp={warmup})')
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
    """Deprecated: mmreid's loops hand the model's distance to the metrics.

    :class:`~mmreid.engine.runner.ReIDValLoop`,
    :class:`~mmreid.engine.runner.ReIDTestLoop` and the multi-target loops
    give every metric the model's scorers right before it computes, and
    ``tools/train.py``/``tools/test.py`` use them by default, so this hook
    is no longer needed; it is kept for one release so that old configs
    build. It applies the same contract
    (:func:`~mmreid.engine.runner.hand_model_scorers`) before validation
    and test, which also lets a model with its own distance run in
    mmengine's plain ``ValLoop``/``TestLoop``.
    """

    priority = 'NORMAL'

    def __init__(self) -> None:
        warn_deprecated(
            'ModelDistanceHook is deprecated and will be removed: the '
            'val/test loops now hand the model\'s distance to the metrics; '
            'remove it from custom_hooks')
        self._contexts = ExitStack()

    def _set(self, runner, loop) -> None:
        from mmreid.engine.runner.reid_loops import (hand_model_scorers,
                                                     scorers_handed_by)
        self._contexts.close()
        self._contexts.enter_context(
            scorers_handed_by(runner.model,
                              type(self).__name__))
        for evaluator in _loop_evaluators(loop):
            hand_model_scorers(runner.model, evaluator, type(self).__name__)

    def before_val(self, runner) -> None:
        self._set(runner, runner.val_loop)

    def before_test(self, runner) -> None:
        self._set(runner, runner.test_loop)

    def after_val(self, runner) -> None:
        self._contexts.close()

    def after_test(self, runner) -> None:
        self._contexts.close()
