"""mmengine's Runner with mmreid's checkpoint rules."""
import logging
import numbers
import os.path as osp
from typing import Callable, Optional, Sequence, Tuple, Union

from mmengine.config import Config
from mmengine.dist import master_only
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import FUNCTIONS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint
from mmengine.utils.dl_utils import collect_env

from mmreid.registry import RUNNERS
from mmreid.utils.checkpoint import last_run_checkpoint
from mmreid.utils.logged_warnings import (keep_warnings_for_next_log,
                                          log_warnings_to)
from mmreid.utils.pipeline_check import check_pipelines
from mmreid.utils.registry_suggestions import resolve_collate_fn
from .checkpoint_removal import carry_out, defer_removals
from .config_recording import ConfigRecordMixin
from .log_processor import (TRAINING_MEAN_PATTERN, ReIDLogProcessor,
                            ScalarIterationHook)
from .randomness import RandomnessMixin
from .resume_checks import train_loader_plan
from .resumed_validation import (ResumedValidationHook, ValidatedStepHook,
                                 resumed_step_validated)
from .resuming import ResumeMixin
from .runner_config import (check_loop_is_mmreids,
                            check_loop_reads_a_dataloader,
                            check_no_activation_checkpointing,
                            check_sampler_gets_its_epoch, drop_restated_hooks,
                            drop_switched_off_hooks)
from .stopped_run import StoppedRunCheckpointHook
from .training_sets import (PRETRAINED_META_KEY, pretrained_dataset_metas,
                            trained_dataset_metas)
from .work_dir_lock import RunStampMixin

#: How a user of the tools turns strict loading off (quoted in errors).
STRICT_OPT_OUT = ('`--strict false` (tools/test.py, tools/dist_test.sh, '
                  'tools/train.py) or `load_strict = False` in the config')


def _is_local(out_dir: str, file_client_args: Optional[dict],
              backend_args: Optional[dict]) -> bool:
    """Whether mmengine would write a checkpoint in ``out_dir`` to the
    local disk (its ``LocalBackend``)."""
    from mmengine.fileio import FileClient, LocalBackend, get_file_backend
    if file_client_args is not None:
        backend = FileClient.infer_client(file_client_args, out_dir).client
    else:
        backend = get_file_backend(out_dir, backend_args=backend_args)
    return isinstance(backend, LocalBackend)


def iteration_based(train_cfg) -> bool:
    """Whether a ``train_cfg`` builds an iteration-based loop
    (``type='IterBasedTrainLoop'``, or mmengine's ``by_epoch=False``)."""
    if not isinstance(train_cfg, dict):
        return False
    kind = train_cfg.get('type')
    kind = getattr(kind, '__name__', kind)
    if kind is not None:
        return str(kind).split('.')[-1] == 'IterBasedTrainLoop'
    return train_cfg.get('by_epoch') is False


def _checkpoint_by_iteration(checkpoint) -> bool:
    """Whether ``default_hooks.checkpoint`` of an iteration-based loop is
    a ``CheckpointHook`` config, which then saves by iteration.

    Args:
        checkpoint: The config's ``default_hooks.checkpoint``.

    Returns:
        bool: True for a config of mmengine's ``CheckpointHook`` (or a
        subclass) without ``by_epoch`` or with ``by_epoch=False``.

    Raises:
        ValueError: ``by_epoch`` set to another value: the loop never
            advances its epoch, so the hook would never reach its interval
            and name every best checkpoint ``best_*_epoch_0.pth``.
    """
    if not isinstance(checkpoint, dict):
        return False
    from mmreid.registry import HOOKS
    kind = checkpoint.get('type', 'CheckpointHook')
    kind = HOOKS.get(kind) if isinstance(kind, str) else kind
    if not (isinstance(kind, type) and issubclass(kind, CheckpointHook)):
        return False
    if checkpoint.get('by_epoch', False) is not False:
        raise ValueError(
            'default_hooks.checkpoint.by_epoch='
            f'{checkpoint["by_epoch"]!r} with an iteration-based train_cfg '
            '(IterBasedTrainLoop): that loop never advances its epoch, so '
            'the CheckpointHook would never reach its interval and would '
            'name every best checkpoint best_*_epoch_0.pth. Leave by_epoch '
            'out (the runner sets by_epoch=False) or set it to False, with '
            'the interval in iterations')
    return True


@RUNNERS.register_module()
class ReIDRunner(ResumeMixin, ConfigRecordMixin, RunStampMixin,
                 RandomnessMixin, Runner):
    """mmengine's ``Runner`` whose checkpoint loading follows mmreid's rules.

    mmengine loads ``load_from`` (and the checkpoint of ``tools/test.py``)
    with ``strict=False``: a model tensor the checkpoint lacks only gets a
    warning, and the model is evaluated with random weights in its place.
    Here every checkpoint goes through
    :func:`mmreid.utils.model_state.load_model_state`, the rules of
    :func:`mmreid.apis.init_model`:

    * a missing model tensor, or a checkpoint tensor the model does not
      have, is an error naming it; the config key
      ``load_strict = False`` (``--strict false`` in the tools) accepts a
      partial load with one warning;
    * a classifier of another size is skipped with one warning when
      testing (features do not use it) and is an error when training
      (``load_from``/resume, unless ``load_strict = False``), where it
      would silently restart from random weights;
    * a converted checkpoint (``meta.source_arch``, written by
      ``tools/model_converters``) is compared with the model and the test
      pipeline; a mismatch is refused with the ``--cfg-options`` to use.

    Before :meth:`train`, :meth:`val` and :meth:`test` read any image, the
    pipelines they feed are checked against the model's data preprocessor
    (:func:`~mmreid.utils.pipeline_check.check_pipelines`): a loader that
    decodes to BGR, a second normalisation or a foreign packing transform
    is refused, naming its config key; so is a random transform in a val or
    test pipeline, whose draws would change the metrics with
    ``num_workers`` and the batch size.

    ``--resume`` in a work dir without checkpoints logs one line and starts
    at epoch 1, from the weights of ``load_from`` where the config gives
    one (requeued jobs use ``--resume`` on their first start too; see
    :meth:`load_or_resume`).
    Resuming refuses a checkpoint that the configured run cannot continue
    (see :meth:`~.resuming.ResumeMixin.check_resumable`): a weights-only
    file, another training set, other learning-rate schedulers, another
    ``randomness.seed``.

    The merged config is written to ``<work_dir>/<config name>`` (see
    :meth:`dump_config`) once the run has passed its checks, after the
    checkpoint is loaded or resumed in :meth:`val` and :meth:`test` (where
    no copy is there: a training's copy is kept), and
    after the ``before_train`` hooks (the start-up checks of
    ``TrainSetupCheckHook``) in :meth:`train`, not when the runner is
    built as in mmengine: a refused or failed start leaves the copy of the
    run whose checkpoints sit next to it as it was.

    Python warnings go into the run's log file too (still shown on stderr
    as before): those shown while the runner is built and while it trains,
    validates or tests, and those ``tools/train.py`` and ``tools/test.py``
    kept while reading the config (:mod:`mmreid.utils.logged_warnings`),
    such as mmengine's "X failed to import and is ignored".

    Where its parts live (a method not defined here is
    :class:`~.resuming.ResumeMixin`'s,
    :class:`~.config_recording.ConfigRecordMixin`'s,
    :class:`~.work_dir_lock.RunStampMixin`'s,
    :class:`~.randomness.RandomnessMixin`'s or mmengine's ``Runner``'s):

    * :mod:`~mmreid.engine.runner.resuming`: :class:`ResumeMixin
      <mmreid.engine.runner.resuming.ResumeMixin>`, the resume methods
      (``resume``, ``check_resumable`` and its ``_check_*`` parts,
      ``_finished_resume_message``);
    * :mod:`~mmreid.engine.runner.config_recording`: :class:`ConfigRecordMixin
      <mmreid.engine.runner.config_recording.ConfigRecordMixin>`, the config
      copies with the drawn seeds (``dump_config``, ``build_visualizer``
      and their helpers);
    * :mod:`~mmreid.engine.runner.resume_checks`: the comparisons of a
      checkpoint with the configured run that those checks make;
    * :mod:`~mmreid.engine.runner.runner_config`: the ``default_hooks``
      and ``custom_hooks`` entries :meth:`register_hooks` leaves out, and
      the checks of ``__init__`` (``check_loop_is_mmreids``,
      ``check_loop_reads_a_dataloader``, and
      ``check_no_activation_checkpointing``);
    * :mod:`~mmreid.engine.runner.schedule_checks`: the schedule checks of
      :meth:`build_param_scheduler`;
    * :mod:`~mmreid.engine.runner.randomness`: ``set_randomness`` (the
      seed left to chance, determinism, cuBLAS), the ``cudnn.benchmark``
      part of ``setup_env``, and ``build_logger``, which logs what those
      two had to say;
    * :mod:`~mmreid.engine.runner.resumed_validation`: the validation a
      resume runs again (:meth:`load_or_resume`);
    * :mod:`~mmreid.engine.runner.stopped_run`: the checkpoint of a run
      stopped before its schedule's end (``EarlyStoppingHook``), saved by
      a hook :meth:`load_or_resume` registers;
    * :mod:`~mmreid.engine.runner.training_sets`: the training sets the
      weights trained on, which :meth:`save_checkpoint` records and every
      evaluation checks (:func:`check_identity_split`);
    * :mod:`~mmreid.engine.runner.work_dir_lock`: the training lock of
      the work dir (:meth:`train`) and the run's own timestamp folder
      (``setup_env``);
    * :mod:`~mmreid.engine.runner.log_processor`: the log processor and
      the ``mean_pattern`` (``TRAINING_MEAN_PATTERN``) that ``__init__``
      gives a ``log_processor`` without them.
    """

    _training = False
    #: The split a run outside training evaluates (``runner.val()`` sets
    #: ``'val'``): the pipelines a converted checkpoint is checked against.
    _evaluating = 'test'
    #: ``meta['dataset_meta']`` of the last checkpoint loaded: the training
    #: set's metainfo, which evaluation compares its splits with.
    loaded_dataset_meta: Optional[dict] = None
    #: ``meta['pretrained_dataset_meta']`` of that checkpoint: the training
    #: sets its weights trained on before (a run started with
    #: ``load_from``), which evaluation checks too.
    loaded_pretrained_meta: Sequence[dict] = ()
    #: The line :meth:`train` ends with when a resume trained nothing.
    _finished_resume: Optional[str] = None
    #: True while mmengine's ``__init__`` runs (its ``dump_config`` call
    #: is deferred to :meth:`load_or_resume`).
    _building = False
    #: The runner was built with ``resume`` (a path or ``'auto'``).
    _resume_requested = False

    def __init__(self, *args, **kwargs) -> None:
        #: The CheckpointHook's removals of older checkpoints, carried out
        #: once the next save succeeds (checkpoint_removal.py).
        self._pending_removals: list = []
        # Warnings of the build go into this run's log (written once it
        # has one), not into the log of a run built before it.
        keep_warnings_for_next_log()
        # As tools/train.py and tools/test.py (use_reid_loops): a loop
        # config without a type gets mmreid's loop, whose checks (the
        # model's distance, the identity split) a runner built from
        # Python must not miss.
        for mode, loop in (('val', 'ReIDValLoop'), ('test', 'ReIDTestLoop')):
            loop_cfg = kwargs.get(f'{mode}_cfg')
            if isinstance(loop_cfg, dict) and 'type' not in loop_cfg:
                kwargs[f'{mode}_cfg'] = dict(loop_cfg, type=loop)
        check_no_activation_checkpointing(kwargs.get('cfg'))
        for mode in ('val', 'test'):
            check_loop_is_mmreids(mode, kwargs.get(f'{mode}_cfg'))
            check_loop_reads_a_dataloader(mode, kwargs.get(f'{mode}_cfg'),
                                          kwargs.get(f'{mode}_dataloader'))
        # mmengine logs the keys matching mean_pattern as a running mean
        # of their last 10 values; its default pattern also matched an
        # evaluation key such as 'nighttime/mAP' (a target named with
        # 'time'), whose logged value was then an average over epochs.
        log_processor = dict(kwargs.get('log_processor') or {})
        log_processor.setdefault('mean_pattern', TRAINING_MEAN_PATTERN)
        # Its evaluation lines name the target of a multi-target loop.
        log_processor.setdefault('type', ReIDLogProcessor)
        kwargs['log_processor'] = log_processor
        # Its training means are over a window of iterations: the hook
        # records the iteration of each value.
        kwargs['custom_hooks'] = [
            *(kwargs.get('custom_hooks') or []),
            ScalarIterationHook()
        ]
        by_iteration = iteration_based(kwargs.get('train_cfg'))
        if by_iteration:
            # An iteration-based loop never advances its epoch: logged by
            # epoch (the base runtime's by_epoch=True, mmengine's default
            # log_metric_by_epoch=True), its lines read 'Epoch(train)
            # [1][6/5]' and every validation went to scalars.json (and
            # TensorBoard) at step 0. The run and its config copy log by
            # iteration.
            log_processor['by_epoch'] = False
            hooks = dict(kwargs.get('default_hooks') or {})
            logger = hooks.get('logger', dict(type='LoggerHook'))
            if isinstance(logger, dict):
                hooks['logger'] = dict(logger, log_metric_by_epoch=False)
            # Saved by epoch, the interval was never reached and every
            # best checkpoint was 'best_*_epoch_0.pth'.
            checkpoint = hooks.get('checkpoint',
                                   dict(type='CheckpointHook', interval=1))
            if _checkpoint_by_iteration(checkpoint):
                hooks['checkpoint'] = dict(checkpoint, by_epoch=False)
            kwargs['default_hooks'] = hooks
        self._resume_requested = bool(kwargs.get('resume'))
        self._building = True
        try:
            super().__init__(*args, **kwargs)
        finally:
            self._building = False
        if by_iteration and self.cfg._cfg_dict:
            # The config copy says how the run logged and saved.
            logged = {'log_processor.by_epoch': False}
            hooks = self.cfg.get('default_hooks') or {}
            if isinstance(hooks.get('logger'), dict):
                logged['default_hooks.logger.log_metric_by_epoch'] = False
            if _checkpoint_by_iteration(hooks.get('checkpoint')):
                logged['default_hooks.checkpoint.by_epoch'] = False
            self.cfg.merge_from_dict(logged)
        # The dataloader configs, for the pipeline check of the run.
        self._loader_cfgs = {
            key: kwargs.get(key)
            for key in ('train_dataloader', 'val_dataloader',
                        'test_dataloader', 'val_cfg', 'test_cfg')
        }
        # Python warnings (those of the config reading the tools kept
        # included) into the log file, not on stderr only.
        log_warnings_to(self.logger)

    def register_hooks(self, default_hooks=None, custom_hooks=None) -> None:
        """mmengine's, without a custom hook that restates a default one.

        ``_base_/default_runtime.py`` has the start-up checks and the
        feature progress bar in ``default_hooks`` (merged key by key, so a
        config's own ``custom_hooks`` list cannot drop them). Configs
        written before that listed them in ``custom_hooks``; such an entry
        would register the hook twice (two progress bars), so it is left
        out, with a log line (:func:`~.runner_config.drop_restated_hooks`).
        A ``default_hooks`` entry set to ``None`` that mmengine does not
        handle itself (``setup_check``, ``feature_progress``) is left out
        too (:func:`~.runner_config.drop_switched_off_hooks`).
        """
        custom_hooks = drop_restated_hooks(default_hooks, custom_hooks)
        super().register_hooks(
            drop_switched_off_hooks(default_hooks), custom_hooks)

    def _log_env(self, env_cfg: dict) -> None:
        """mmengine's environment banner, with the world size so named.

        mmengine lists the number of processes as ``GPU number``, which a
        CPU-only run shows as ``GPU number: 1``; here it is ``Processes
        (world size)``. A seed drawn (``randomness.seed=None``) by a run
        asked to resume is marked as such: a resume goes on with its
        checkpoint's seed (:meth:`~.resuming.ResumeMixin.resume` logs it).
        Everything else is mmengine's ``Runner._log_env`` (called by its
        ``__init__``).
        """
        system_env = collect_env()
        runtime_env = dict(env_cfg)
        runtime_env.update(self._randomness_cfg)
        seed = self._seed
        if self._resume_requested and self._randomness_cfg.get('seed') is None:
            seed = (f'{seed} (drawn for this start; a resume goes on with '
                    "the seed of its checkpoint, logged when it is loaded)")
            # mmengine's: the first word of numpy's state, the seed.
            if system_env.get('numpy_random_seed') == self._seed:
                system_env['numpy_random_seed'] = (
                    f'{self._seed} (the seed drawn for this start)')
        runtime_env.update({
            'seed': seed,
            'Distributed launcher': self._launcher,
            'Distributed training': self._distributed,
            'Processes (world size)': self._world_size,
        })

        def lines(items: dict) -> str:
            return ''.join(f'\n    {k}: {v}' for k, v in items.items())

        dash_line = '-' * 60
        self.logger.info(f'\n{dash_line}\nSystem environment:'
                         f'{lines(system_env)}\n\nRuntime environment:'
                         f'{lines(runtime_env)}\n{dash_line}\n')
        if self.cfg._cfg_dict:
            self.logger.info(f'Config:\n{self.cfg.pretty_text}')

    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        """mmengine's, with ``collate_fn.type`` looked up as every other
        ``type`` is: in the default scope's registry, and an unknown one
        refused with its key and the closest names
        (:func:`~mmreid.utils.registry_suggestions.resolve_collate_fn`)."""
        return Runner.build_dataloader(
            resolve_collate_fn(dataloader, FUNCTIONS),
            seed=seed,
            diff_rank_seed=diff_rank_seed)

    def train(self):
        """mmengine's; a resume that finds the checkpoint at the end of the
        schedule says, last, that it trained nothing (see
        :meth:`~.resuming.ResumeMixin._finished_resume_message`). The work
        dir is locked for the run: a second training on it is refused
        (:mod:`~.work_dir_lock`)."""
        from mmengine.dist import get_rank

        from .work_dir_lock import lock_work_dir, unlock_work_dir
        lock = lock_work_dir(self.work_dir) if get_rank() == 0 else None
        self._make_current()
        self._training = True
        try:
            fed = ('train', ) if self._val_loop is None else ('train', 'val')
            self._check_pipelines(fed)
            model = super().train()
        finally:
            self._training = False
            self._record_vis_config()
            unlock_work_dir(lock)
        if self._finished_resume is not None:
            print_log(
                self._finished_resume, logger='current', level=logging.INFO)
        return model

    def val(self) -> dict:
        """mmengine's; a converted checkpoint loaded here is checked
        against the validation pipelines, which this run feeds."""
        self._make_current()
        self._evaluating = 'val'
        try:
            self._check_pipelines(('val', ))
            return super().val()
        finally:
            self._evaluating = 'test'

    def test(self) -> dict:
        """mmengine's, after the test pipelines are checked
        (:meth:`_check_pipelines`)."""
        self._make_current()
        self._check_pipelines(('test', ))
        return super().test()

    def _make_current(self) -> None:
        """Make this runner's logger, message hub and visualizer the ones
        mmengine's ``get_current_instance()`` returns, and its log the one
        Python warnings go to: with a runner built after this one (a sweep
        that builds its runners first), this run's ``logger='current'``
        lines (dataset summaries, weight init, warnings) went into the
        other run's log."""
        for instance in (self.logger, self.message_hub, self.visualizer):
            instances = type(instance)._instance_dict
            if instances.get(instance.instance_name) is instance:
                instances.move_to_end(instance.instance_name)
        log_warnings_to(self.logger)

    def _check_pipelines(self, splits: Tuple[str, ...]) -> None:
        """Refuse, before any image is read, a pipeline of ``splits`` that
        the model's data preprocessor would misread: a foreign loader
        (BGR), a second normalisation, a foreign packer; or, in a val or
        test pipeline, a random transform
        (:func:`~mmreid.utils.pipeline_check.check_pipelines`)."""
        model = self.model.module if is_model_wrapper(
            self.model) else self.model
        check_pipelines(self._loader_cfgs,
                        getattr(model, 'data_preprocessor', None), splits)

    def build_train_loop(self, loop):
        """mmengine's, naming ``train_cfg`` when a ``by_epoch`` loop (built
        without the registry) gets an argument it does not take, e.g.
        ``--cfg-options train_cfg.max_epoch=1``. When :meth:`train` builds
        it, an epoch-based loop whose sampler no hook gives its epoch
        (``default_hooks.sampler_seed = None``) is refused before the
        first iteration (:func:`~.runner_config.check_sampler_gets_its_epoch`).
        """
        try:
            built = super().build_train_loop(loop)
        except TypeError as error:
            from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

            from mmreid.utils.registry_suggestions import (ConfigArgumentError,
                                                           argument_message,
                                                           unexpected_argument)
            argument = unexpected_argument(error, loop)
            if argument is None or 'type' in loop:
                raise
            obj_cls = EpochBasedTrainLoop if loop.get(
                'by_epoch') else IterBasedTrainLoop
            raise ConfigArgumentError(
                argument_message('train_cfg', loop, argument,
                                 obj_cls)) from error
        if self._training:
            check_sampler_gets_its_epoch(built, self.hooks)
        return built

    def build_optim_wrapper(self, optim_wrapper):
        """mmengine's, after checking the optimizer type (see
        :func:`~mmreid.utils.registry_suggestions.check_optimizer_type`),
        that an AMP wrapper has a CUDA device (as ``--amp``, see
        :func:`~mmreid.utils.config.runtime.check_amp_device`) and that
        ``paramwise_cfg`` applies as written (see
        :func:`~.optim_checks.check_paramwise_cfg`)."""
        from mmreid.registry import OPTIMIZERS
        from mmreid.utils.config.runtime import check_amp_device
        from mmreid.utils.registry_suggestions import check_optimizer_type
        from .optim_checks import check_paramwise_cfg
        check_amp_device(optim_wrapper)
        check_optimizer_type(optim_wrapper, OPTIMIZERS)
        check_paramwise_cfg(optim_wrapper, self.model)
        return super().build_optim_wrapper(optim_wrapper)

    def scale_lr(self, optim_wrapper, auto_scale_lr=None) -> None:
        """mmengine's, with the base learning rate it logs scaled too.

        With ``auto_scale_lr`` enabled mmengine multiplies every parameter
        group's lr by ``world_size x batch_size / base_batch_size``, but
        not the lr of the wrapper's ``base_param_settings`` (kept when the
        optimizer has several parameter groups, e.g. a x10 classifier),
        which the log and ``scalars.json`` show as ``base_lr``: that stayed
        the config's, a rate no parameter trained with. It is scaled by
        the ratio of a parameter group's lr after and before, so ``base_lr``
        is the rate of the groups without a multiplier. An ``auto_scale_lr``
        key mmengine does not read is refused
        (:func:`~mmreid.utils.config.runtime.check_auto_scale_lr`).
        """
        from mmengine.optim import OptimWrapperDict

        from mmreid.utils.config.runtime import check_auto_scale_lr
        check_auto_scale_lr(auto_scale_lr)
        wrappers = list(optim_wrapper.values()) if isinstance(
            optim_wrapper, OptimWrapperDict) else [optim_wrapper]
        accumulated = [
            getattr(w, '_accumulative_counts', 1) for w in wrappers
            if getattr(w, '_accumulative_counts', 1) > 1
        ]
        if auto_scale_lr and auto_scale_lr.get('enable') and accumulated:
            # The linear rule scales by the batch of one update; mmengine
            # counts processes x batch_size only.
            raise ValueError(
                f'auto_scale_lr with optim_wrapper.accumulative_counts='
                f'{accumulated[0]}: mmengine scales the learning rate by '
                'processes x batch_size / base_batch_size, not by the '
                f'{accumulated[0]} batches each update accumulates, so the '
                'rate would be that of a smaller batch. Set the rate for the '
                'accumulated batch yourself, without --auto-scale-lr')
        before = [[g['lr'] for g in w.optimizer.param_groups]
                  for w in wrappers]
        super().scale_lr(optim_wrapper, auto_scale_lr)
        for wrapper, lrs in zip(wrappers, before):
            base = getattr(wrapper, 'base_param_settings', None)
            groups = wrapper.optimizer.param_groups
            scaled = [(g['lr'], lr) for g, lr in zip(groups, lrs) if lr]
            if base is None or not scaled or scaled[0][0] == scaled[0][1]:
                continue
            after, old = next(
                ((a, b) for a, b in scaled if b == base['lr']), scaled[0])
            base['lr'] = after if old == base['lr'] else \
                base['lr'] * after / old

    def build_param_scheduler(self, scheduler):
        """mmengine's, refusing a schedule it would not follow as written.

        Once the training loop is built (``train()`` builds it first),
        the built schedulers are checked before the first iteration (see
        :mod:`~mmreid.engine.runner.schedule_checks`): a scheduler counted
        in epochs of an ``IterBasedTrainLoop``, and a ``LinearLR``,
        ``ConstantLR`` or ``PolyLR`` spanning a single step, and with
        ``optim_wrapper.accumulative_counts=k`` an iteration schedule
        spanning at most k iterations (one update at most). These checks
        are the runner's, so ``default_hooks.setup_check=None`` keeps them.
        They run once: the resume checks build the schedulers again, from
        the ones already built and checked. Schedulers no hook steps are
        refused first (see :func:`~.optim_checks.check_schedulers_stepped`).
        """
        from mmengine.runner import BaseLoop

        from .optim_checks import check_schedulers_stepped
        from .schedule_checks import (check_schedulers_reach_their_end,
                                      check_schedulers_span_updates,
                                      check_schedulers_step,
                                      labelled_schedulers)
        built = super().build_param_scheduler(scheduler)
        check_schedulers_stepped(built, self.hooks)
        if not isinstance(self._train_loop, BaseLoop) or getattr(
                self, '_schedules_checked', False):
            return built
        configs = self.cfg.get('param_scheduler', scheduler)
        entries = labelled_schedulers(built, configs)
        loader = self.train_dataloader
        steps = len(loader)
        check_schedulers_step(self._train_loop, entries, steps)
        processes = (f'{self.world_size} process'
                     f'{"es" if self.world_size > 1 else ""}')
        check_schedulers_reach_their_end(
            entries, steps, f' ({type(loader.sampler).__name__}, batch_size '
            f'{loader.batch_size}, {processes})')
        check_schedulers_span_updates(entries)
        self._schedules_checked = True
        return built

    def load_or_resume(self) -> None:
        """mmengine's, but ``--resume`` without a checkpoint reads
        ``last_checkpoint`` as
        :func:`~mmreid.utils.checkpoint.last_run_checkpoint` does: in a
        copied or moved work dir the work dir's own checkpoint, not the
        original folder's that the file names; one that names no file, or
        a work dir with checkpoints but no ``last_checkpoint``, is refused.
        In a work dir without checkpoints it logs one line and trains from
        epoch 1.

        ``resume='auto'`` (``tools/train.py --resume`` without a path)
        resumes the work dir's checkpoint the same way, and where there is
        none loads ``load_from`` as a new run does (its weights, not its
        training state): the first start of a requeued fine-tuning job
        starts from those weights, not from random ones. mmengine reads
        ``resume=True`` with a ``load_from`` as the checkpoint to resume.
        The config is written once the checkpoint is loaded
        (:meth:`dump_config`); by a training, after its ``before_train``
        hooks, whose checks may still refuse the start."""
        try:
            self._load_or_resume()
        finally:
            # A refused resume records the config of its attempt too.
            self._record_vis_config()
        if self._training and self._resumed_from is not None:
            self._finished_resume = self._finished_resume_message(
                self._resumed_from)
        # The checkpoint (if any) is loaded and the run about to start. A
        # training writes the copy once its before_train checks (the
        # TrainSetupCheckHook's, CheckpointHook's arguments) have passed:
        # a start they refuse leaves the copy of the run as it was.
        if self._training:
            self.register_hook(_ConfigCopyHook(), 'LOWEST')
            # The weights of a run stopped early (EarlyStoppingHook).
            self.register_hook(StoppedRunCheckpointHook(), 'HIGHEST')
            # meta['validated']: whether a checkpoint's step was validated.
            self.register_hook(ValidatedStepHook())
        elif not osp.isfile(self.config_copy_path()):
            # An evaluation in a training's work dir (tools/test.py's
            # default one) keeps that run's copy, the record of how its
            # checkpoints were trained (drawn seeds, max_epochs); the
            # evaluation's own config is in its <timestamp>/vis_data.
            self.dump_config()
        step = resumed_step_validated(self)
        if self._training and step:
            # A checkpoint is written before its step's validation: a job
            # stopped during it left it undone, and the best checkpoint
            # without that step. Done again (once the hooks are set up
            # for training), it gives the same numbers and the same best
            # checkpoint as the first time. Training draws no random
            # number that the validation could move (TrainRandomStateHook
            # seeds every iteration and sample).
            self.register_hook(
                ResumedValidationHook(self._resumed_from, step,
                                      self._finished_resume is not None),
                'LOWEST')

    def _load_or_resume(self) -> None:
        """The loading part of :meth:`load_or_resume`."""
        auto = self._resume == 'auto'
        reads_work_dir = self._resume and (auto or self._load_from is None)
        if not self._has_loaded and reads_work_dir:
            try:
                latest = last_run_checkpoint(self.work_dir,
                                             self._checkpoint_out_dir())
            except FileNotFoundError as error:
                raise FileNotFoundError(f'--resume: {error}') from None
            if latest is None:
                start = ('with the weights of load_from '
                         f'{self._load_from} (loaded, not resumed)'
                         if self._load_from is not None else 'from epoch 1')
                self.logger.info(f'--resume: no checkpoint found in '
                                 f'{self.work_dir}; training starts {start}.')
                self._resume = False
            else:
                # mmengine's own branch would read last_checkpoint again.
                skipped = (f' (load_from {self._load_from} is not loaded: '
                           'the run goes on from its own checkpoint)'
                           if self._load_from is not None else '')
                self.logger.info(f'Auto resumed from the latest checkpoint '
                                 f'{latest}.{skipped}')
                self.resume(latest)
                self._has_loaded = True
        super().load_or_resume()

    def _checkpoint_out_dir(self) -> Optional[str]:
        """The ``out_dir`` of the run's ``CheckpointHook`` as configured
        (the hook joins the work dir's name to it once training starts),
        None when it saves into the work dir."""
        for hook in self.hooks:
            if isinstance(hook, CheckpointHook):
                out_dir = hook.out_dir
                if out_dir in (None, self.work_dir):
                    return None
                return str(out_dir)
        return None

    @master_only
    def save_checkpoint(self,
                        out_dir: str,
                        filename: str,
                        file_client_args: Optional[dict] = None,
                        save_optimizer: bool = True,
                        save_param_scheduler: bool = True,
                        meta: Optional[dict] = None,
                        by_epoch: bool = True,
                        backend_args: Optional[dict] = None) -> None:
        """mmengine's, recording the number of processes and the training
        sampler's seed in ``meta`` and writing a local file through a
        temporary one.

        ``meta['cfg']`` is the config with the seeds this run drew where
        it left them to chance, as the work dir's copy
        (:meth:`~.config_recording.ConfigRecordMixin.dump_config`):
        mmengine's said ``randomness.seed=None``, so the config a
        published checkpoint carries could not train that model again.

        mmengine's own check of the GPU count on resume reads
        ``meta['config']``, which its checkpoints never hold (they store
        ``meta['cfg']``), so it never runs; ``meta['world_size']`` is what
        :meth:`~.resuming.ResumeMixin.check_resumable` compares.
        ``meta['sampler_seed']`` is the seed the sampler shuffles and seeds
        augmentations with: with ``randomness=dict(seed=None,
        diff_rank_seed=True)`` it is a draw of its own, which
        ``meta['seed']`` does not give back and
        :class:`~mmreid.engine.hooks.TrainRandomStateHook` restores.

        mmengine writes the file in place. Its ``CheckpointHook`` with
        ``save_best`` writes ``epoch_N.pth`` a second time after the
        validation, when ``last_checkpoint`` already names it, so a process
        killed then would leave a truncated checkpoint that a requeued
        ``--resume`` fails on. Here a local checkpoint (``epoch_N.pth``,
        ``best_*.pth``: every save of the hook comes here) is written to
        ``.<filename>.tmp-<host>-pidns<inode>-<pid>-<hex>`` in ``out_dir``
        and renamed (see :func:`~mmreid.utils.atomic.atomic_path`): the
        file is the previous one or the new one, whole; the temporary file
        a killed save leaves is removed by the next save. Other backends are
        written as mmengine does.
        """
        meta = dict(meta or {})
        meta.setdefault('world_size', self.world_size)
        loader_plan = train_loader_plan(self.cfg)
        if loader_plan is not None:
            meta.setdefault('train_loader', loader_plan)
        sampler_seed = getattr(self.train_dataloader.sampler, 'seed', None)
        if isinstance(sampler_seed, numbers.Integral):
            meta.setdefault('sampler_seed', int(sampler_seed))
        earlier = trained_dataset_metas(self, earlier_only=True)
        if earlier:
            meta.setdefault(PRETRAINED_META_KEY, [dict(m) for m in earlier])
        kwargs = dict(
            file_client_args=file_client_args,
            save_optimizer=save_optimizer,
            save_param_scheduler=save_param_scheduler,
            meta=meta,
            by_epoch=by_epoch,
            backend_args=backend_args)
        # mmengine writes meta['cfg'] from self.cfg (a before_save_checkpoint
        # hook sees this config too); the run's own config is given back
        # whatever happens.
        run_cfg = self.cfg
        self.cfg = self._config_with_drawn_seeds()[0]
        saved = osp.join(out_dir, filename)
        try:
            if not _is_local(out_dir, file_client_args, backend_args):
                super().save_checkpoint(out_dir, filename, **kwargs)
            else:
                from mmreid.utils.atomic import atomic_path
                with atomic_path(saved) as tmp:
                    super().save_checkpoint(
                        osp.dirname(tmp), osp.basename(tmp), **kwargs)
        except BaseException:
            # The CheckpointHook's removals of older checkpoints wait for
            # a save that succeeds (checkpoint_removal.py).
            self._pending_removals.clear()
            raise
        finally:
            self.cfg = run_cfg
        carry_out(self._pending_removals, saved)

    def load_checkpoint(self,
                        filename: str,
                        map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):
        """Load ``filename`` into the model with mmreid's rules.

        Training from it (``load_from``, not a resume), a classifier of a
        checkpoint whose training set (``meta['dataset_meta']``) is not this
        run's is one of other identities, refused (or, with
        ``load_strict=False``, skipped) as one of another size. The
        checkpoint's training sets (``meta['dataset_meta']``,
        ``meta['pretrained_dataset_meta']``) are kept for the identity-split
        check and this run's checkpoints. An ``EMAHook``'s averaged copy
        gets the weights the model loaded.

        Args:
            filename (str): Path or URL.
            map_location (str | Callable): As :func:`torch.load`.
            strict (bool): Ignored unless True; the config's
                ``load_strict`` (default True) decides.
            revise_keys (list): Unused: a ``module.`` prefix is stripped
                and no other renaming is done (a checkpoint that needs it
                goes through ``tools/model_converters``).

        Returns:
            dict: The loaded checkpoint, its tensors (in any layout) under
            ``state_dict`` by their model keys, as hooks read them
            (:func:`~mmreid.utils.model_state.with_state_dict`).
        """
        from mmreid.utils.arch_check import check_source_arch
        from mmreid.utils.model_state import (check_model_fits,
                                              load_model_state,
                                              training_set_differences,
                                              with_state_dict)
        checkpoint = _load_checkpoint(filename, map_location=map_location)
        if self._resuming is not None:
            self.check_resumable(checkpoint, filename, *self._resuming)
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) \
            else None
        # What the model trained on (and, for a checkpoint of a fine-tune,
        # before): an evaluation of another split of the same dataset is
        # refused (check_identity_split).
        self.loaded_dataset_meta = meta.get('dataset_meta') if isinstance(
            meta, dict) else None
        self.loaded_pretrained_meta = pretrained_dataset_metas(meta, filename)
        # Hooks (an EMAHook's copy) read checkpoint['state_dict'] as it is:
        # they get the tensors the model loads, in any layout.
        checkpoint = with_state_dict(checkpoint, filename)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(
            self.model) else self.model
        strict = strict or bool(self.cfg.get('load_strict', True))
        skip_other_classifier = not (self._training and strict)
        # A classifier trained on another training set's identities, row k
        # another person, fits by its shape alone (a resume checks the
        # training set itself).
        other_set = ''
        if self._training and self._resuming is None:
            other_set = training_set_differences(
                meta, getattr(self.train_dataloader.dataset, 'metainfo', None))
        # Another depth first: the source network's settings come after.
        check_model_fits(
            model,
            checkpoint,
            filename,
            strict,
            skip_other_classifier,
            self.cfg,
            before_config_checks=True,
            other_training_set=other_set)
        check_source_arch(
            meta,
            model,
            self.cfg,
            filename,
            test=not self._training,
            strict=strict,
            split=self._evaluating)
        load_model_state(
            model,
            checkpoint,
            filename,
            strict=strict,
            skip_other_classifier=skip_other_classifier,
            opt_out=STRICT_OPT_OUT,
            cfg=self.cfg,
            other_training_set=other_set)
        self._ema_takes_loaded_weights(checkpoint, model)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def _ema_takes_loaded_weights(self, checkpoint: dict, model) -> None:
        """Give every ``EMAHook``'s averaged model the weights the model
        loaded, tensor by tensor.

        mmengine's hook copies ``checkpoint['state_dict']`` into it with a
        lenient load of its own: a tensor the model loads otherwise (a
        skipped classifier, a partial load) would leave the averaged copy,
        which ``before_val_epoch``/``before_test_epoch`` swap in, at other
        weights. A resume that restored the averages themselves
        (``ema_state_dict``) keeps them.
        """
        from mmengine.hooks import EMAHook
        if self._resume and 'ema_state_dict' in checkpoint:
            return
        for hook in self.hooks:
            ema_model = getattr(hook, 'ema_model', None)
            if isinstance(hook, EMAHook) and ema_model is not None:
                ema_model.module.load_state_dict(model.state_dict())


def build_runner(cfg: Config) -> Runner:
    """The runner of ``tools/train.py`` and ``tools/test.py``: the
    config's ``runner_type`` where it names one, else
    :class:`ReIDRunner` (whose checks, learning-rate scaling and loading
    rules a plain mmengine ``Runner`` lacks).

    ``resume='auto'`` (``--resume`` without a path) with a ``load_from``
    needs a :class:`ReIDRunner`: mmengine's ``Runner`` would resume
    ``load_from`` instead of the work dir's checkpoint.

    Args:
        cfg (Config): The merged config.

    Returns:
        Runner: The built runner.
    """
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg \
        else ReIDRunner.from_cfg(cfg)
    if (cfg.get('resume') == 'auto' and cfg.get('load_from') is not None
            and not isinstance(runner, ReIDRunner)):
        raise ValueError(
            f'--resume without a path and load_from={cfg.load_from} need '
            f'mmreid\'s ReIDRunner, but runner_type={cfg.runner_type!r} '
            f'builds a {type(runner).__name__}, which would resume '
            'load_from itself: give the checkpoint to resume (--resume '
            'PATH), or leave load_from out')
    return runner


class _ConfigCopyHook(Hook):
    """Writes a training's config copy (:meth:`ReIDRunner.dump_config`)
    after every other ``before_train`` hook: registered by
    :meth:`ReIDRunner.load_or_resume` at priority ``LOWEST``."""

    def before_train(self, runner) -> None:
        runner.dump_config()
        # After the CheckpointHook's before_train, which sets its backend.
        defer_removals(runner.hooks, runner._pending_removals)
