"""How ``ReIDRunner`` resumes a run, and refuses one it cannot continue.

:class:`ResumeMixin` holds the resume part of
:class:`~mmreid.engine.runner.ReIDRunner`: the checks of a checkpoint
against the configured run (:meth:`ResumeMixin.check_resumable`, whose
comparisons are the functions of :mod:`~.resume_checks`) and the line that
says a resume trained nothing. ``last_checkpoint`` is read by
:func:`mmreid.utils.checkpoint.last_run_checkpoint`.
"""
import ast
import math
import numbers
import os.path as osp
from typing import Any, Callable, List, Optional, Tuple, Union

from mmengine.hooks import EMAHook

from mmreid.registry import HOOKS
from mmreid.utils.registry_suggestions import config_type_name
from .mean_resume_check import check_mean_targets
from .resume_checks import (config_ast, config_literal, config_text_value,
                            metainfo_differences,
                            optimizer_type_in_config_text,
                            param_group_differences, scheduler_differences,
                            scheduler_types_in_config_text,
                            selection_in_config_text, steps_per_epoch_advice,
                            steps_per_epoch_in_checkpoint,
                            train_length_in_checkpoint, train_loader_plan,
                            validated_in_checkpoint)


def _selection_text(selection: List[Tuple[str, Optional[str]]]) -> str:
    """``save_best='reid/mAP' (rule 'greater')`` for ``(key, rule)``
    pairs; ``no save_best`` for none."""
    if not selection:
        return 'no save_best'
    return ', '.join(f'save_best={key!r} (rule {rule!r})'
                     for key, rule in selection)


def registered_names(value: Any) -> Any:
    """A config value with every ``type`` (at any depth) as the class name
    it builds (``'mmreid.ReIDResize'``, ``'ReIDResize'`` and the class all
    ``'ReIDResize'``) and tuples as lists: the form the resume checks
    compare a checkpoint's config and the current one in."""
    if isinstance(value, dict):
        found = {k: registered_names(v) for k, v in value.items()}
        if 'type' in value:
            found['type'] = config_type_name(value)
        return found
    if isinstance(value, (list, tuple)):
        return [registered_names(v) for v in value]
    return value


def update_plan(optim_wrapper: Any) -> Optional[dict]:
    """How each optimizer wrapper updates the weights: the batches an
    update accumulates and the gradient clipping.

    mmengine's ``OptimWrapper`` (and ``AmpOptimWrapper``, which passes them
    on) updates once every ``accumulative_counts`` batches, 1 where the
    config gives none, and clips the gradients before each update with
    ``clip_grad`` (``torch.nn.utils.clip_grad_norm_``, or
    ``clip_grad_value_`` for ``type='value'``), none where it gives none:
    a dumped config (``meta['cfg']``) holds every key the config and its
    bases set, so a wrapper config without them trained with 1 and no
    clipping. ``clip_grad`` is given with its defaults (``type='norm'``,
    ``norm_type=2``), which mmengine and torch fill in.

    Args:
        optim_wrapper: A config's ``optim_wrapper``: one wrapper (it has
            an ``optimizer``), or one per name for a constructor that
            builds an ``OptimWrapperDict`` (each entry has an
            ``optimizer``).

    Returns:
        dict | None: ``{'optim_wrapper.accumulative_counts': n,
        'optim_wrapper.clip_grad': dict or None}``, or the two keys of
        ``optim_wrapper.<name>`` per wrapper; None where the config gives
        neither form (not compared).
    """
    if not isinstance(optim_wrapper, dict):
        return None
    if 'optimizer' in optim_wrapper:
        wrappers = {'optim_wrapper': optim_wrapper}
    else:
        wrappers = {
            f'optim_wrapper.{name}': value
            for name, value in optim_wrapper.items()
            if isinstance(value, dict) and 'optimizer' in value
        }
    plan = {}
    for key, wrapper in wrappers.items():
        plan[f'{key}.accumulative_counts'] = wrapper.get(
            'accumulative_counts', 1)
        clip = wrapper.get('clip_grad')
        if isinstance(clip, dict):
            clip = dict(clip)
            clip.setdefault('type', 'norm')
            if clip['type'] == 'norm':
                clip.setdefault('norm_type', 2)
        plan[f'{key}.clip_grad'] = clip
    return plan or None


def _ema_hook_settings(hook: dict) -> dict:
    """An ``EMAHook`` config with the defaults its class and its averaged
    model (``ema_type``) fill in, types as class names, without
    ``strict_load`` (how a checkpoint loads, not how the run trains)."""
    import inspect

    from mmengine.registry import MODELS
    settings = registered_names(hook)
    settings = dict(type=settings.pop('type'), **settings)
    settings.pop('strict_load', None)
    ema_type = settings.get('ema_type', 'ExponentialMovingAverage')
    if isinstance(ema_type, type):
        settings['ema_type'] = ema_type.__name__
    elif isinstance(ema_type, str) and ema_type:
        if 'ema_type' in settings:
            settings['ema_type'] = ema_type.split('.')[-1]
        ema_type = MODELS.get(ema_type)
    for kind in (HOOKS.get(settings['type']), ema_type):
        if not isinstance(kind, type):
            continue
        for parameter in inspect.signature(kind).parameters.values():
            if parameter.default is not inspect.Parameter.empty and \
                    parameter.name not in ('strict_load', 'model'):
                settings.setdefault(parameter.name, parameter.default)
    return settings


def ema_plan(*hooks: Any) -> Optional[dict]:
    """The weight averaging of a run: its ``EMAHook`` settings.

    mmengine's ``EMAHook`` averages the trained weights; the averages are
    validated and saved as the checkpoint's ``state_dict`` (the trained
    weights as ``ema_state_dict``).

    Args:
        *hooks: A config's ``custom_hooks`` (a list) and ``default_hooks``
            (a dict of hook configs); None where the config gives none.

    Returns:
        dict | None: ``{'EMAHook': settings}`` (see
        :func:`_ema_hook_settings`; a list of them for several hooks), or
        ``{}`` without one; None where a hook is given as an object, not
        a config (not compared).
    """
    found = []
    for group in hooks:
        if isinstance(group, dict):
            group = list(group.values())
        for hook in group or []:
            if isinstance(hook, EMAHook):
                return None
            if not isinstance(hook, dict):
                continue
            kind = hook.get('type')
            if isinstance(kind, str) and kind:
                kind = HOOKS.get(kind)
            if (isinstance(kind, type) and issubclass(kind, EMAHook)) or \
                    config_type_name(hook) == 'EMAHook':
                found.append(_ema_hook_settings(hook))
    if not found:
        return {}
    return {'EMAHook': found[0] if len(found) == 1 else found}


def _update_consequences(changed: List[str], had_ema: bool,
                         has_ema: bool) -> str:
    """What resuming with other update settings (``changed``, keys of
    :func:`update_plan` and :func:`ema_plan`) would do, in sentences;
    ``had_ema``: the checkpoint's run had an ``EMAHook``, ``has_ema``: this
    one has."""
    said = []
    if any(key.endswith('.accumulative_counts') for key in changed):
        said.append('Each optimizer update accumulates the gradients of '
                    'accumulative_counts batches, so the run would go on '
                    'with another batch per update and another number of '
                    'updates per epoch than it started with.')
    if any(key.endswith('.clip_grad') for key in changed):
        said.append('Gradient clipping (clip_grad) bounds every update, so '
                    'the rest of the run would be clipped otherwise than '
                    'it started.')
    if 'EMAHook' in changed:
        said.append('With an EMAHook the averaged weights are validated '
                    'and saved (a checkpoint\'s state_dict holds them, its '
                    'ema_state_dict the trained ones): ' +
                    ('resumed without the hook, the run would train on '
                     'from the averaged weights with the optimizer state '
                     'of the trained ones.' if had_ema and not has_ema else
                     'resumed with one that run lacked, the averages '
                     'would start at the resume.' if has_ema and not had_ema
                     else 'resumed with other settings, '
                     'the rest of the run would average otherwise.'))
    return ' '.join(said) + (' The work dir\'s config copy would credit all '
                             'its epochs to the new settings.')


def _update_settings(changed: List[str], saved: dict, had_ema: bool) -> str:
    """How to resume with the checkpoint's update settings: ``saved`` (its
    :func:`update_plan` and :func:`ema_plan`) for the ``changed`` keys."""
    options, config = [], []
    for key in changed:
        if key == 'EMAHook':
            if key in saved:
                hooks = saved[key] if isinstance(saved[key], list) \
                    else [saved[key]]
                config.append('custom_hooks holding ' + ' and '.join(
                    'dict(' + ', '.join(f'{k}={v!r}'
                                        for k, v in hook.items()) + ')'
                    for hook in hooks))
            elif had_ema:
                config.append('the EMAHook of that run')
            else:
                config.append('no EMAHook')
        elif isinstance(saved.get(key), dict):
            config.append(f'{key}=dict(' +
                          ', '.join(f'{k}={v!r}'
                                    for k, v in saved[key].items()) + ')')
        elif key in saved:
            options.append(f'{key}={saved[key]!r}')
    parts = [f'--cfg-options {" ".join(options)}'] if options else []
    if config:
        parts.append(f'{"; ".join(config)} in the config')
    return ' and '.join(parts)


class ResumeMixin:
    """The resume part of :class:`~mmreid.engine.runner.ReIDRunner`.

    A mixin of mmengine's ``Runner`` (``ReIDRunner(ResumeMixin, Runner)``):
    :meth:`resume` is mmengine's, and
    :meth:`ReIDRunner.load_checkpoint
    <mmreid.engine.runner.ReIDRunner.load_checkpoint>` calls
    :meth:`check_resumable` on the checkpoint it loads while resuming.
    :meth:`ReIDRunner.load_or_resume
    <mmreid.engine.runner.ReIDRunner.load_or_resume>` keeps
    :meth:`_finished_resume_message` for :meth:`ReIDRunner.train
    <mmreid.engine.runner.ReIDRunner.train>` to log last.

    Its methods read the runner's ``cfg``, ``world_size``, training loop
    and dataloader, and build its optimizer wrapper and schedulers as
    mmengine's ``resume`` would; :meth:`check_resumable` sets the runner's
    ``loaded_dataset_meta`` and :attr:`resumed_meta`.
    """

    #: ``meta`` of the checkpoint this run resumed from (None before a
    #: resume): :class:`~mmreid.engine.hooks.TrainRandomStateHook` reads
    #: ``meta['sampler_seed']`` from it.
    resumed_meta: Optional[dict] = None
    #: ``(resume_optimizer, resume_param_scheduler)`` while resuming.
    _resuming: Optional[tuple] = None
    #: The checkpoint :meth:`resume` was given.
    _resumed_from: Optional[str] = None

    def _finished_resume_message(self, filename: str) -> Optional[str]:
        """The line that says a resume trained nothing, or None.

        mmengine's training loops run while the epoch (iteration) is below
        ``max_epochs`` (``max_iters``): a checkpoint already there resumes
        into a run that trains nothing, and exits without saying so.

        Args:
            filename (str): The checkpoint resumed from.

        Returns:
            str | None: The message, naming the epoch (iteration) reached
            and what trains more; None when the loop has steps left or is
            not one of mmengine's two training loops.
        """
        from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
        loop = self._train_loop
        if isinstance(loop, EpochBasedTrainLoop):
            key, unit, done = 'max_epochs', 'epoch', loop.epoch
        elif isinstance(loop, IterBasedTrainLoop):
            key, unit, done = 'max_iters', 'iteration', loop.iter
        else:
            return None
        end = getattr(loop, key)
        if done < end:
            return None
        from .schedule_checks import labelled_schedulers
        endless = [
            label for label, _, config in labelled_schedulers(
                self.param_schedulers, self.cfg.get('param_scheduler'))
            if config is not None and 'end' not in config
        ] if self.param_schedulers else []
        if endless:
            longer = (f'a larger train_cfg.{key} is refused on resume, '
                      f'since {", ".join(endless)} '
                      f'end{"s" if len(endless) == 1 else ""} at '
                      f'train_cfg.{key}')
        else:
            longer = (f'or resume with a larger train_cfg.{key} (every '
                      'scheduler of this config gives its own `end`)')
        return (f'nothing trained: {filename} is at {unit} {done} of '
                f'{end} (train_cfg.{key}={end}), the end of this run\'s '
                'schedule, so --resume has no step left to train. To train '
                'more, start a new run from its weights with --cfg-options '
                f'load_from={filename} (without --resume; the epochs and the '
                f'schedule start again){"; " if endless else " "}{longer}.')

    def resume(self,
               filename: str,
               resume_optimizer: bool = True,
               resume_param_scheduler: bool = True,
               map_location: Union[str, Callable] = 'default') -> None:
        """mmengine's, after :meth:`check_resumable` accepts the file; a
        seed taken back from the checkpoint is logged."""
        self._resuming = (resume_optimizer, resume_param_scheduler)
        self._resumed_from = filename
        drawn = self.seed
        try:
            super().resume(filename, resume_optimizer, resume_param_scheduler,
                           map_location)
        finally:
            self._resuming = None
        self._keep_best_checkpoints_here()
        if self.seed != drawn:
            # randomness.seed=None (another seed is refused): mmengine
            # takes the checkpoint's back without a word.
            self.logger.info(
                f'random seed: {self.seed}, restored from the resumed '
                f"checkpoint (meta['seed']); the seed drawn for this start "
                f'({drawn}) is not used.')

    def check_resumable(self,
                        checkpoint: Any,
                        filename: str,
                        resume_optimizer: bool = True,
                        resume_param_scheduler: bool = True) -> None:
        """Refuse a checkpoint that the configured run cannot continue.

        mmengine resumes whatever the file holds: on another training set
        it only logs a warning, and it loads the saved schedulers' state
        into the schedulers the config now builds (``__dict__.update``),
        so a changed schedule is silently replaced by the old one, or
        mixed with it when the type changed. Here:

        * a checkpoint without the training state (``meta`` with epoch and
          iteration, ``message_hub``, ``optimizer`` and, with schedulers,
          ``param_schedulers``), e.g. one written by
          ``tools/model_converters/publish_model.py``, is refused, naming
          the file and ``load_from`` (a new run from its weights);
        * the training set's ``metainfo`` must equal the checkpoint's
          ``meta['dataset_meta']``; the differing keys are named;
        * the number of processes must be the one the checkpoint was
          trained on (``meta['world_size']``, written by
          :meth:`ReIDRunner.save_checkpoint
          <mmreid.engine.runner.ReIDRunner.save_checkpoint>`; older
          checkpoints lack it and are not checked): the batch per step,
          the identities per step and the per-rank seeds depend on it. The
          config key
          ``resume_world_size_check = False`` accepts the change;
        * the steps of an epoch must be the checkpoint's (its message
          hub's ``max_iters / max_epochs``; see
          :func:`~.resume_checks.steps_per_epoch_in_checkpoint`): the
          iteration counter and the schedulers converted to iterations
          count them. Another number of processes usually changes them
          (the sampler shares an epoch among the processes), so
          ``resume_world_size_check = False`` only helps where it does
          not;
        * the per-process batch size and the sampler config must be the
          checkpoint's (``meta['train_loader']``, written by
          :meth:`ReIDRunner.save_checkpoint
          <mmreid.engine.runner.ReIDRunner.save_checkpoint>`; older
          checkpoints are not checked);
        * the schedulers must be those of the checkpoint: same number,
          types and settings (constructor arguments and the learning rates
          they start from); the differences are named;
        * with ``resume_optimizer``, the optimizer must be the checkpoint's:
          same type (``optim_wrapper.optimizer.type`` of ``meta['cfg']``),
          same number of param groups and, in each group, the same
          hyperparameters (``weight_decay``, ``betas``, ``momentum``,
          ``lr``, ... after ``paramwise_cfg``'s multipliers); a key a
          scheduler changes is compared by the value it starts from
          (``initial_lr``). torch would take them all from the checkpoint;
        * an explicit ``randomness.seed`` must be the checkpoint's
          ``meta['seed']`` (see :meth:`_check_seed`);
        * the model must be the one of ``meta['cfg']`` (see
          :meth:`_check_model`), and so must the training pipeline (see
          :meth:`_check_pipeline`) and the weight updates: the gradient
          accumulation and clipping (``optim_wrapper.accumulative_counts``,
          ``optim_wrapper.clip_grad``) and the ``EMAHook`` (also read from
          the checkpoint's ``ema_state_dict``; see :meth:`_check_updates`);
        * with gradient accumulation, the checkpoint must be saved at an
          update (``meta['iter']`` a multiple of ``accumulative_counts``, or
          the end of its run): it does not hold the gradients accumulated
          since the last one;
        * once the checkpoint's run has validated, the ``save_best`` keys
          and rules must be those of ``meta['cfg']`` (see
          :meth:`_check_selection`), and a ``save_best`` key of the mean
          over targets must be over the targets of its ``val_cfg`` (see
          :func:`~.mean_resume_check.check_mean_targets`).

        After the resume, a best checkpoint the message hub names in
        another folder is read as this run's file of that name, or
        dropped (see :meth:`_keep_best_checkpoints_here`).

        Args:
            checkpoint: The loaded checkpoint.
            filename (str): Where it came from, for the messages.
            resume_optimizer (bool): The optimizer state is resumed.
            resume_param_scheduler (bool): The schedulers are resumed.

        Raises:
            RuntimeError: The checkpoint cannot be resumed by this config.
        """
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) \
            else None
        # What the model trained on: an evaluation of another split of
        # the same dataset is refused (check_identity_split).
        self.loaded_dataset_meta = meta.get('dataset_meta') if isinstance(
            meta, dict) else None
        self.resumed_meta = meta if isinstance(meta, dict) else None
        lacks = []
        if not isinstance(meta, dict) or not {'epoch', 'iter'} <= set(meta):
            lacks.append("meta['epoch'] and meta['iter']")
        required = ['message_hub']
        if resume_optimizer:
            required.append('optimizer')
        if resume_param_scheduler and self.param_schedulers is not None:
            required.append('param_schedulers')
        if isinstance(checkpoint, dict):
            lacks += [key for key in required if key not in checkpoint]
        if lacks:
            held = sorted(checkpoint) if isinstance(checkpoint, dict) \
                else type(checkpoint).__name__
            raise RuntimeError(
                f'cannot resume from {filename!r}: it lacks the training '
                f'state ({", ".join(lacks)}; it holds {held}). A '
                'weights-only checkpoint (as tools/model_converters/'
                'publish_model.py writes) or one saved by a CheckpointHook '
                'with save_optimizer=False or save_param_scheduler=False '
                'cannot continue a run. To start a new run from its '
                f'weights, load it with load_from={filename} (tools/'
                f'train.py: --cfg-options load_from={filename}, without '
                '--resume).')
        saved_world = meta.get('world_size')
        if (saved_world is not None and saved_world != self.world_size
                and self.cfg.get('resume_world_size_check', True)):
            raise RuntimeError(
                f'cannot resume from {filename!r}: it was trained on '
                f'{saved_world} processes, this run has {self.world_size}. '
                'The batch of each step is the per-process batch times the '
                'number of processes, so the run would go on with another '
                'batch size, other identities per step and other per-rank '
                'seeds than the ones it started with. Resume on '
                f'{saved_world} processes, or accept the change with '
                '--cfg-options resume_world_size_check=False where the '
                'steps of an epoch stay the same (a change of them is '
                'refused, and so are the learning rates auto_scale_lr '
                'would change).')
        self._check_seed(meta, filename)
        saved_loader = meta.get('train_loader')
        differences = [] if saved_loader is None else metainfo_differences(
            saved_loader, train_loader_plan(self.cfg), 'train_dataloader')
        if differences:
            raise RuntimeError(
                f'cannot resume from {filename!r}: the config\'s training '
                'batches differ from the ones the checkpoint was trained '
                f'with ({"; ".join(differences[:5])}'
                f'{"; ..." if len(differences) > 5 else ""}). The batch size '
                'and the sampler decide the steps of an epoch, the '
                'identities of each step and the per-sample seeds, so the '
                'run would not go on as it started. Resume with the '
                'batches of that run, or start a new run from its weights '
                f'with load_from={filename} (without --resume).')
        differences = metainfo_differences(
            meta.get('dataset_meta'),
            getattr(self.train_dataloader.dataset, 'metainfo', None))
        if differences:
            raise RuntimeError(
                f'cannot resume from {filename!r}: it was trained on '
                f'another training set than this config\'s '
                f'({len(differences)} differences in the dataset metainfo: '
                f'{"; ".join(differences[:5])}'
                f'{"; ..." if len(differences) > 5 else ""}). Resume with '
                'the config of that run, or start a new run from its '
                f'weights with load_from={filename} (without --resume).')
        # The config the checkpoint was trained with, parsed once for the
        # checks below.
        saved_cfg = config_ast(meta.get('cfg'))
        self._check_model(filename, saved_cfg)
        self._check_pipeline(filename, saved_cfg)
        self._check_updates(checkpoint, filename, saved_cfg)
        self._check_selection(checkpoint, filename, saved_cfg)
        check_mean_targets(self, checkpoint, filename, saved_cfg)
        self._check_steps_per_epoch(checkpoint, filename, saved_cfg)
        if resume_param_scheduler:
            self._check_schedule_resumable(checkpoint, filename, saved_cfg)
        if resume_optimizer:
            self._check_optimizer_resumable(checkpoint, filename, saved_cfg)

    def _check_seed(self, meta: dict, filename: str) -> None:
        """The seed part of :meth:`check_resumable`.

        mmengine resumes with the checkpoint's ``meta['seed']`` and only
        warns when the config gives another one, while the work dir's
        config copy, ``vis_data/config.py`` and the checkpoints'
        ``meta['cfg']`` record the config's. ``randomness.seed=None``
        takes the checkpoint's back.
        """
        saved = meta.get('seed')
        wanted = (getattr(self, '_randomness_cfg', None) or {}).get('seed')
        if saved is None or wanted is None or saved == wanted:
            return
        raise RuntimeError(
            f'cannot resume from {filename!r}: it was trained with '
            f"randomness.seed={saved} (its meta['seed']), this config gives "
            f'randomness.seed={wanted}. mmengine would go on with the '
            f"checkpoint's seed {saved} while the work dir's config copy "
            f'recorded {wanted}. Resume with randomness.seed={saved} (or '
            "None, which takes the checkpoint's back), or start a new run "
            f'from its weights with load_from={filename} (without '
            '--resume).')

    def _check_model(self, filename: str, saved_cfg: ast.Module) -> None:
        """The model part of :meth:`check_resumable`.

        mmengine resumes any network or loss whose tensors fit the
        checkpoint's: another margin, ``last_stride`` or feature for the
        triplet loss trained on silently, and the config copy and the
        analysis tools then credited every epoch to the new config.
        ``model`` is compared with the checkpoint's ``meta['cfg']`` (types
        as registered names); a checkpoint whose config does not give it
        as literals is not checked.
        """
        try:
            saved = config_literal(config_text_value(saved_cfg, 'model'))
        except (ValueError, TypeError, SyntaxError, RecursionError):
            return
        mine = self.cfg.get('model')
        if not isinstance(saved, dict) or not isinstance(mine, dict):
            return
        if hasattr(mine, 'to_dict'):
            mine = mine.to_dict()

        differences = metainfo_differences(
            registered_names(saved), registered_names(mine), 'model')
        if differences:
            raise RuntimeError(
                f'cannot resume from {filename!r}: the config\'s model '
                'differs from the one the checkpoint was trained with '
                f'({"; ".join(differences[:5])}'
                f'{"; ..." if len(differences) > 5 else ""}). The run would '
                'go on with another network or loss while its logs and '
                'config copy credit every epoch to the new one. Resume '
                'with the model of that run, or start a new run from its '
                f'weights with load_from={filename} (without --resume).')

    def _check_pipeline(self, filename: str, saved_cfg: ast.Module) -> None:
        """The pipeline part of :meth:`check_resumable`.

        mmengine resumes with whatever augmentation the config now gives,
        while the work dir's config copy then describes every epoch, those
        before the resume too, with it. ``train_dataloader.dataset.
        pipeline`` is compared with the checkpoint's ``meta['cfg']``
        (types as registered names, ``mmreid.X`` as ``X``); a checkpoint
        whose config does not give it as literals is not checked.
        """
        key = 'train_dataloader.dataset.pipeline'
        try:
            saved = config_literal(
                config_text_value(saved_cfg, 'train_dataloader'))
        except ValueError:
            return
        saved = ((saved or {}).get('dataset') or {}).get('pipeline') \
            if isinstance(saved, dict) else None
        loader = self.cfg.get('train_dataloader') or {}
        mine = (loader.get('dataset') or {}).get('pipeline')
        if not isinstance(saved, (list, tuple)) or not isinstance(
                mine, (list, tuple)):
            return

        saved, mine = registered_names(saved), registered_names(mine)
        differences = metainfo_differences(saved, mine, key)
        kinds = [[t.get('type') if isinstance(t, dict) else t for t in p]
                 for p in (saved, mine)]
        if kinds[0] != kinds[1]:
            differences.insert(
                0, f'{key} types: {kinds[0]} in the checkpoint, {kinds[1]} '
                'now')
        if differences:
            raise RuntimeError(
                f'cannot resume from {filename!r}: the training pipeline '
                'differs from the one the checkpoint was trained with ('
                f'{"; ".join(differences[:5])}'
                f'{"; ..." if len(differences) > 5 else ""}). The run would '
                'go on with other augmentation while the work dir\'s config '
                'copy describes all its epochs with the new one. Resume with '
                'the pipeline of that run, or start a new run from its '
                f'weights with load_from={filename} (without --resume).')

    def _check_updates(self, checkpoint: dict, filename: str,
                       saved_cfg: ast.Module) -> None:
        """The weight-update part of :meth:`check_resumable`: gradient
        accumulation, gradient clipping and weight averaging.

        mmengine resumes with whatever ``optim_wrapper.accumulative_counts``,
        ``optim_wrapper.clip_grad`` and ``EMAHook`` the config now gives:
        the rest of the run would update otherwise (another batch per
        update and number of updates per epoch, other clipping, other
        averages validated and saved) while the work dir's config copy
        credits all its epochs to the new settings. Without the
        ``EMAHook`` of the checkpoint's run, it trains on from the averaged
        weights (the checkpoint's ``state_dict``) with the optimizer state
        of the trained ones (``ema_state_dict``); with an ``EMAHook`` that
        run lacked, the averages start at the resume. The settings of
        every wrapper and hook (see :func:`update_plan` and
        :func:`ema_plan`) are compared with the checkpoint's
        ``meta['cfg']``; a checkpoint whose config does not give
        ``optim_wrapper`` (the hooks) as literals is not checked on them.
        Whether its run had an ``EMAHook`` is read from its
        ``ema_state_dict`` too, which the hook always saves.

        A checkpoint saved between two updates of a gradient accumulation
        (``meta['iter']`` not a multiple of ``accumulative_counts``, before
        the end of its run, where mmengine updates with the batches left)
        lacks the gradients accumulated since the last update: mmengine
        resumes without them and only warns, and the run ends with other
        weights than the one it continues. It is refused.
        """
        unreadable = (ValueError, TypeError, SyntaxError, RecursionError)
        try:
            saved_updates = update_plan(
                config_literal(config_text_value(saved_cfg, 'optim_wrapper')))
        except unreadable:
            saved_updates = None
        mine_updates = update_plan(self.cfg.get('optim_wrapper'))
        saved, mine = {}, {}
        if saved_updates is not None and mine_updates is not None:
            saved.update(saved_updates)
            mine.update(mine_updates)
        saved_ema = None
        if saved_cfg.body:  # else no meta['cfg']: its hooks are unknown
            try:
                saved_ema = ema_plan(*[
                    config_literal(node) if node is not None else None
                    for node in (config_text_value(saved_cfg, name)
                                 for name in ('custom_hooks', 'default_hooks'))
                ])
            except unreadable:
                pass
        mine_ema = ema_plan(
            self.cfg.get('custom_hooks'), self.cfg.get('default_hooks'))
        if saved_ema is not None and mine_ema is not None:
            saved.update(saved_ema)
            mine.update(mine_ema)
        differences = metainfo_differences(saved, mine)
        changed = [
            key for key in dict.fromkeys([*saved, *mine]) if key not in saved
            or key not in mine or metainfo_differences(saved[key], mine[key])
        ]
        had_ema = 'ema_state_dict' in checkpoint
        has_ema = any(isinstance(hook, EMAHook) for hook in self.hooks)
        if had_ema != has_ema and 'EMAHook' not in changed:
            differences.append(
                'EMAHook: in the checkpoint (its ema_state_dict), absent now'
                if had_ema else 'EMAHook: absent in the checkpoint (no '
                'ema_state_dict), present now')
            changed.append('EMAHook')
        if differences:
            why = _update_consequences(changed, had_ema, has_ema)
            fix = _update_settings(changed, saved, had_ema)
            raise RuntimeError(
                f'cannot resume from {filename!r}: the config updates the '
                'weights otherwise than the run the checkpoint was trained '
                f'with ({"; ".join(differences[:5])}'
                f'{"; ..." if len(differences) > 5 else ""}). {why} Resume '
                f'with {fix}, or start a new run from its weights with '
                f'load_from={filename} '
                '(without --resume).')
        self._check_accumulation_boundary(checkpoint, filename, saved_cfg,
                                          saved_updates or mine_updates)

    @staticmethod
    def _check_accumulation_boundary(checkpoint: dict, filename: str,
                                     saved_cfg: ast.Module,
                                     plan: Optional[dict]) -> None:
        """The checkpoint of a gradient accumulation must be saved at an
        update (see :meth:`_check_updates`).

        Args:
            checkpoint (dict): The loaded checkpoint.
            filename (str): Where it came from, for the message.
            saved_cfg (ast.Module): Its ``meta['cfg']``, parsed.
            plan (dict, optional): The :func:`update_plan` of its run.
        """
        done = checkpoint['meta'].get('iter')
        counts = {
            key[:-len('.accumulative_counts')]: n
            for key, n in (plan or {}).items()
            if key.endswith('.accumulative_counts') and isinstance(n, int)
            and not isinstance(n, bool) and n > 1
        }
        end = train_length_in_checkpoint(checkpoint).get('max_iters')
        if not isinstance(done, int) or done == end or not any(
                done % n for n in counts.values()):
            return
        every = math.lcm(*counts.values())
        pending = max(done % n for n in counts.values())
        settings = ', '.join(f'{key}.accumulative_counts={n}'
                             for key, n in counts.items())
        if len(counts) == 1:
            settings += f': an update every {every} iterations'
        steps = steps_per_epoch_in_checkpoint(checkpoint, saved_cfg)
        where, advice = '', ''
        if steps:
            where = (f' (an epoch_K.pth with K a multiple of '
                     f'{every // math.gcd(every, steps)}: its epochs had '
                     f'{steps} steps)')
            advice = (' Epochs of a multiple of accumulative_counts steps '
                      'make the checkpoint of every epoch resumable.')
        raise RuntimeError(
            f'cannot resume from {filename!r}: it was saved at iteration '
            f'{done}, between two updates of the gradient accumulation '
            f'({settings}), and does not hold '
            'the gradients of the last '
            f'{f"{pending} iterations" if pending > 1 else "iteration"}, '
            'accumulated since the last '
            'update. mmengine would resume without them (it only warns), '
            'so the run would end with other weights than the one it '
            f'continues. Resume from a checkpoint saved at a multiple of '
            f'{every} iterations{where}, or start a new run from its '
            f'weights with load_from={filename} (without --resume).{advice}')

    def _check_selection(self, checkpoint: dict, filename: str,
                         saved_cfg: ast.Module) -> None:
        """The best-checkpoint part of :meth:`check_resumable`.

        mmengine's ``CheckpointHook`` resumes the best score so far and the
        best checkpoint's path from the message hub under names without
        the key (``best_score``, ``best_ckpt`` for one ``save_best`` key)
        and compares the config's key with them by the config's rule:
        another key was compared with the old key's best (a better epoch
        left unsaved, or a worse one saved as best and the old key's best
        checkpoint deleted), another rule kept the opposite epoch. Once the
        checkpoint's run has validated
        (:func:`~.resume_checks.validated_in_checkpoint`), the ``save_best``
        keys and rules (as mmengine infers a rule not given) must be those
        of its ``meta['cfg']``; a ``save_best`` where that run had none
        would choose among the epochs after the resume only. A run that
        keeps no best checkpoint now (``save_best=None``, ``--no-validate``)
        is not refused; nor is a checkpoint whose config does not give its
        hooks as literals.
        """
        from mmengine.hooks import CheckpointHook
        mine = [
            pair for hook in self.hooks
            if isinstance(hook, CheckpointHook) and hook.save_best
            for pair in zip(hook.key_indicators, hook.rules)
        ]
        if not mine or not validated_in_checkpoint(checkpoint):
            return
        saved = selection_in_config_text(saved_cfg)
        if saved is None or set(saved) == set(mine):
            return
        if saved:
            keys, rules = [k for k, _ in saved], [r for _, r in saved]
            if len(saved) == 1:
                keys, rules = keys[0], rules[0]
            why = ('mmengine resumes the best score so far whatever the key '
                   'and rule: this config\'s would be compared with the best '
                   'score of another key or rule, so a better epoch could be '
                   'left unsaved, or a worse one saved as best and the best '
                   'checkpoint so far deleted')
            fix = (f'with default_hooks.checkpoint.save_best={keys!r}, '
                   f'rule={rules!r} (or save_best=None to keep no best '
                   'checkpoint from now on)')
        else:
            why = ('The best would be chosen among the epochs after the '
                   'resume only, not those validated before it')
            fix = 'without save_best (default_hooks.checkpoint.save_best=None)'
        raise RuntimeError(
            f'cannot resume from {filename!r}: its run selected the best '
            f'checkpoint by {_selection_text(saved)} (its meta[\'cfg\']), '
            f'this config by {_selection_text(mine)}. {why}. Resume {fix}, '
            f'or start a new run from its weights with load_from={filename} '
            '(without --resume).')

    def _keep_best_checkpoints_here(self) -> None:
        """Point the resumed best checkpoints at this run's folder.

        mmengine's ``CheckpointHook`` resumes the absolute path of the best
        checkpoint so far (message hub ``best_ckpt``, ``best_ckpt_<key>``)
        and removes that file when a later epoch scores better: resuming a
        copied or moved work dir, or another folder's checkpoint, deleted
        the other folder's best checkpoint. A path outside the folder this
        run saves into (the work dir, or ``<out_dir>/<work dir name>``) is
        read as that folder's file of the same name, as
        ``last_checkpoint`` is
        (:func:`~mmreid.utils.checkpoint.last_run_checkpoint`); where the
        folder holds none it is dropped, with a log line: the best score
        so far stays, a later epoch that beats it is saved here, and no
        file is removed from the other folder. A remote path (``://``) is
        left as it is.
        """
        hub = self.message_hub
        out_dir = self._checkpoint_out_dir()
        if out_dir is not None and '://' in out_dir:
            return
        folder = self.work_dir if out_dir is None else osp.join(
            out_dir, osp.basename(osp.normpath(self.work_dir)))
        for key in list(hub.runtime_info):
            path = hub.get_info(key)
            if not (key == 'best_ckpt' or key.startswith('best_ckpt_')) \
                    or not isinstance(path, str) or '://' in path:
                continue
            if osp.realpath(osp.dirname(path)) == osp.realpath(folder):
                continue
            own = osp.join(folder, osp.basename(path))
            score = hub.get_info(key.replace('best_ckpt', 'best_score', 1))
            if isinstance(score, numbers.Real):
                score = f'{score:.4f}'
            if osp.exists(own):
                hub.update_info(key, own)
                self.logger.info(
                    f'the best checkpoint so far (score {score}) was resumed '
                    f'as {path}, outside this run\'s folder {folder}: its '
                    f'file of that name, {own}, is kept as the best '
                    'checkpoint instead.')
                continue
            hub.pop_info(key)
            self.logger.info(
                f'the best checkpoint so far (score {score}) was resumed as '
                f'{path}, outside this run\'s folder {folder}, which holds '
                f'no {osp.basename(path)}: it stays where it is (this run '
                'never removes it); an epoch that scores better is saved '
                'as the best checkpoint here.')

    def _check_steps_per_epoch(self, checkpoint: dict, filename: str,
                               saved_cfg: ast.Module) -> None:
        """The steps-per-epoch part of :meth:`check_resumable`.

        mmengine resumes the iteration counter and the schedulers converted
        to iterations (``convert_to_iter_based``), both counted in the
        checkpoint's epochs: with epochs of another length the epoch-based
        loop and those schedulers cannot continue. The number of processes
        divides an epoch among them, so it changes with it.
        """
        from mmengine.runner import EpochBasedTrainLoop
        old = steps_per_epoch_in_checkpoint(checkpoint, saved_cfg)
        if old is None or not isinstance(self.train_loop, EpochBasedTrainLoop):
            return
        loader = self.train_dataloader
        new = len(loader)
        if new == old:
            return
        meta = checkpoint['meta']
        saved_world = meta.get('world_size')
        if saved_world is not None and saved_world != self.world_size:
            cause = (f'It was trained on {saved_world} processes and this run '
                     f'has {self.world_size}: the sampler '
                     f'({type(loader.sampler).__name__}) shares an epoch '
                     'among them. resume_world_size_check=False accepts '
                     'another number of processes only where the steps of '
                     f'an epoch stay the same. Resume on {saved_world} '
                     'processes')
        else:
            cause = ('The training set or the sampler changed. Resume with '
                     'the config of that run')
        advice = steps_per_epoch_advice(new, cause, filename,
                                        (meta.get('iter'), meta.get('epoch')))
        raise RuntimeError(
            f'cannot resume from {filename!r}: its epochs had {old} steps, '
            f'this run\'s have {new} (len(train_dataloader)). {advice}')

    def _check_schedule_resumable(self, checkpoint: dict, filename: str,
                                  saved_cfg: ast.Module) -> None:
        """The scheduler part of :meth:`check_resumable`."""
        saved_types = scheduler_types_in_config_text(saved_cfg)
        if self.param_schedulers is None:
            if checkpoint.get('param_schedulers'):
                raise RuntimeError(
                    f'cannot resume from {filename!r}: it was trained with '
                    f'learning rate schedulers '
                    f'({", ".join(saved_types or ["types not recorded"])})'
                    f', this config has none, so the run would go on at '
                    f'the last learning rate. Resume with the schedule of '
                    f'that run, or start a new run from its weights with '
                    f'load_from={filename} (without --resume).')
            return
        # mmengine builds them in train() before resuming; a direct
        # resume() call builds them here, as mmengine's resume would.
        self.optim_wrapper = self.build_optim_wrapper(self.optim_wrapper)
        self.param_schedulers = self.build_param_scheduler(
            self.param_schedulers)
        differences = scheduler_differences(checkpoint['param_schedulers'],
                                            self.param_schedulers, saved_types)
        if differences:
            from .schedule_checks import labelled_schedulers
            hint, option = '', ''
            # Only for a scheduler the config gives no `end`: mmengine
            # gave it max_epochs (or max_iters).
            endless = {
                id(scheduler)
                for _, scheduler, config in labelled_schedulers(
                    self.param_schedulers, self.cfg.get('param_scheduler'))
                if config is not None and 'end' not in config
            }
            if any(d.key == 'end' and id(d.scheduler) in endless
                   for d in differences):
                hint = (' A scheduler without `end` ends at the '
                        'train_cfg.max_epochs of the run that built it: '
                        'a resumed run keeps that end, so a longer run '
                        'would not follow the schedule of its config.')
                option = self._saved_length_option(checkpoint)
            listed = '; '.join(d.text for d in differences)
            raise RuntimeError(
                f'cannot resume from {filename!r}: the config\'s learning '
                f'rate schedule differs from the one the checkpoint was '
                f'trained with ({listed}). Resuming would '
                'load the old schedulers\' state into these schedulers, so '
                'the config\'s schedule would not be the one followed.'
                f'{hint} Resume with the schedule of that run{option}, or '
                f'start a new run from its weights with load_from={filename} '
                '(without --resume).')

    def _saved_length_option(self, checkpoint: dict) -> str:
        """The option that gives this run the length of the checkpoint's.

        Returns:
            str: `` (--cfg-options train_cfg.max_epochs=N)`` (``max_iters``
            for an iteration-based loop) when the checkpoint records
            another length than this run's (see
            :func:`~.resume_checks.train_length_in_checkpoint`), else
            ``''``.
        """
        from mmengine.runner import EpochBasedTrainLoop
        key = 'max_epochs' if isinstance(self.train_loop,
                                         EpochBasedTrainLoop) else 'max_iters'
        saved = train_length_in_checkpoint(checkpoint).get(key)
        if saved is None or saved == getattr(self.train_loop, key, None):
            return ''
        return f' (--cfg-options train_cfg.{key}={saved})'

    def _check_optimizer_resumable(self, checkpoint: dict, filename: str,
                                   saved_cfg: ast.Module) -> None:
        """The optimizer part of :meth:`check_resumable`.

        torch's ``Optimizer.load_state_dict`` takes every hyperparameter
        of the param groups from the checkpoint, so a changed
        ``weight_decay``, ``betas``, ``momentum``, ``lr_mult``, or (without
        schedulers) ``lr`` would be silently replaced by the old one, and
        another optimizer type fails at its first step with a bare
        ``KeyError``.
        """
        from mmengine.optim import OptimWrapperDict
        self.optim_wrapper = self.build_optim_wrapper(self.optim_wrapper)
        schedulers = self.param_schedulers
        if schedulers is not None:
            schedulers = self.param_schedulers = self.build_param_scheduler(
                schedulers)
        saved = checkpoint['optimizer']
        if isinstance(self.optim_wrapper, OptimWrapperDict):
            wrappers = dict(self.optim_wrapper.items())
            label = 'optimizer[{!r}]'.format
        else:
            wrappers = {None: self.optim_wrapper}
            saved = {None: saved}
            schedulers = {None: schedulers}
            label = lambda _: 'optimizer'  # noqa: E731
        differences = []
        saved_type = optimizer_type_in_config_text(saved_cfg)
        my_type = self.cfg.get('optim_wrapper')
        for key in ('optimizer', 'type'):
            my_type = my_type.get(key) if isinstance(my_type, dict) else None
        my_type = getattr(my_type, '__name__', my_type)
        if None in wrappers and isinstance(saved_type, str) and isinstance(
                my_type, str) and (saved_type.split('.')[-1]
                                   != my_type.split('.')[-1]):
            differences.append(f'optimizer type: {saved_type} in the '
                               f'checkpoint, {my_type} in this config')
        for name, wrapper in wrappers.items():
            theirs = saved.get(name) if isinstance(saved, dict) else None
            if not isinstance(theirs, dict) or 'param_groups' not in theirs:
                differences.append(f'{label(name)}: no param_groups in '
                                   'the checkpoint')
                continue
            mine = (schedulers or {}).get(name) or []
            scheduled = {getattr(s, 'param_name', None) for s in mine}
            differences += param_group_differences(
                theirs['param_groups'], wrapper.optimizer.param_groups,
                scheduled, label(name))
        if differences:
            shown = differences[:5]
            if len(differences) > 5:
                shown.append(f'{len(differences) - 5} more')
            raise RuntimeError(
                f'cannot resume from {filename!r}: the config\'s optimizer '
                f'differs from the one the checkpoint was trained with '
                f'({"; ".join(shown)}). Resuming loads the checkpoint\'s '
                'optimizer state, its hyperparameters included, so the run '
                'would go on with the checkpoint\'s settings, not the '
                'config\'s. Resume with the optimizer settings of that run, '
                f'or start a new run from its weights with '
                f'load_from={filename} (without --resume).')
