"""The checkpoint of a training that a hook stopped before its schedule's
end (mmengine's ``EarlyStoppingHook``)."""
from mmengine.hooks import CheckpointHook, Hook


class StoppedRunCheckpointHook(Hook):
    """Saves the weights a stopped training ends with, as the run's
    ``CheckpointHook`` saves the last epoch (iteration) of a schedule.

    mmengine's ``EarlyStoppingHook`` sets the loop's ``stop_training``
    after a validation; ``CheckpointHook`` saves the last step only when
    it is ``max_epochs`` (``max_iters``), so an early-stopped run ended
    with no checkpoint of the weights its last validation logged
    (``last_checkpoint`` named an earlier epoch's, or there was none).
    Here, once the loop has stopped, each ``CheckpointHook`` with
    ``save_last`` that has not saved that step saves it: ``epoch_<n>.pth``
    (``iter_<i>.pth`` by iteration), named by ``last_checkpoint``.

    Registered by :meth:`~.reid_runner.ReIDRunner.load_or_resume` at
    priority ``HIGHEST``: its ``after_train`` runs before any other.
    """

    def after_train(self, runner) -> None:
        if not getattr(runner.train_loop, 'stop_training', False):
            return
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook) or not hook.save_last:
                continue
            # The loop's counters have passed the last step, where the
            # hook's _save_checkpoint adds 1 to them.
            step = runner.epoch if hook.by_epoch else runner.iter
            filename = hook.filename_tmpl.format(step)
            if hook.last_ckpt == hook.file_backend.join_path(
                    hook.out_dir, filename):
                continue  # saved at its interval
            unit = 'epoch' if hook.by_epoch else 'iteration'
            runner.logger.info(
                f'Training stopped after {unit} {step} of its schedule: '
                f'saving its weights as {filename}')
            meta = dict(epoch=step, iter=runner.iter) if hook.by_epoch \
                else dict(epoch=runner.epoch, iter=step)
            hook._save_checkpoint_with_step(runner, step, meta)
