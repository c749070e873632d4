"""The config copies a ``ReIDRunner`` run records, with its drawn seeds.

:class:`ConfigRecordMixin` holds the part of
:class:`~mmreid.engine.runner.ReIDRunner` that writes the merged config: the
work dir's copy (:meth:`ConfigRecordMixin.dump_config`) and the visualizer's
(:meth:`ConfigRecordMixin.build_visualizer`), each with the seeds this run
drew where the config left them to chance.
"""
import os.path as osp
from typing import List, Optional, Tuple

from mmengine.config import Config
from mmengine.dist import master_only
from mmengine.registry import VISUALIZERS

from mmreid.utils.registry_suggestions import check_type


class ConfigRecordMixin:
    """The config-recording part of :class:`~mmreid.engine.runner.ReIDRunner`.

    A mixin of mmengine's ``Runner`` (``ReIDRunner(ResumeMixin,
    ConfigRecordMixin, Runner)``): :meth:`build_visualizer` and
    :meth:`dump_config` are mmengine's, deferred and given the drawn seeds.
    Its methods read the runner's ``cfg``, ``seed``, ``work_dir``,
    ``timestamp``, ``visualizer``, training loop, ``_building``,
    ``_resume_requested`` and ``resumed_meta``.
    """

    #: The keyword arguments of the visualizer's ``add_config`` call that
    #: waits for the resumed seeds (see :meth:`build_visualizer`).
    _pending_vis_config: Optional[dict] = None

    def build_visualizer(self, visualizer=None):
        """mmengine's; the config it records (``vis_data/config.py`` of
        ``LocalVisBackend``, a TensorBoard or W&B config) holds the seed
        this run drew where the config left it to chance, as the work
        dir's copy does (:meth:`dump_config`).

        mmengine records it when the runner is built. A run asked to
        resume with a seed left to chance goes on with the checkpoint's,
        known once it is loaded: its config is recorded then
        (:meth:`_record_vis_config`, called by :meth:`load_or_resume` and
        at the end of :meth:`train` if that failed before)."""
        # mmengine adds name and save_dir to the dict before building it,
        # so an unknown type's key could not be found in the config.
        check_type(visualizer, VISUALIZERS, 'visualizer')
        built = super().build_visualizer(visualizer)
        add_config = built.add_config

        def add_config_with_drawn_seed(config, **kwargs):
            if config is self.cfg:
                if self._building and self._resume_requested and \
                        self._seeds_left_to_chance():
                    self._pending_vis_config = kwargs
                    return None
                config = self._config_with_drawn_seeds()[0]
            return add_config(config, **kwargs)

        built.add_config = add_config_with_drawn_seed
        return built

    def _seeds_left_to_chance(self) -> bool:
        """Whether the config leaves a seed that a checkpoint records to
        chance: ``randomness.seed`` (``meta['seed']``) or, under
        ``diff_rank_seed``, the training sampler's
        (``meta['sampler_seed']``)."""
        randomness = dict(self.cfg.get('randomness') or {})
        sampler = (self.cfg.get('train_dataloader') or {}).get('sampler')
        return randomness.get('seed') is None or bool(
            randomness.get('diff_rank_seed') and isinstance(sampler, dict)
            and sampler.get('seed') is None)

    def _record_vis_config(self) -> None:
        """Record the config in the visualizer where
        :meth:`build_visualizer` left it for after the resume."""
        kwargs, self._pending_vis_config = self._pending_vis_config, None
        if kwargs is not None:
            self.visualizer.add_config(self.cfg, **kwargs)

    @master_only
    def dump_config(self) -> None:
        """Write the merged config to ``<work_dir>/<config name>``.

        As mmengine's (``<timestamp>.py`` for a config without a file),
        through a temporary file in the work dir: the file is replaced by
        a complete copy or not at all. mmengine calls it at the end of
        ``__init__``, before any check; here that call does nothing and
        :meth:`load_or_resume` calls it once the checkpoint is loaded (a
        training: after its ``before_train`` hooks, whose start-up checks
        may refuse it), so a start that is refused (a resume the config
        cannot continue, a missing checkpoint, a ``TrainSetupCheckHook``
        check) or fails (a ``--cfg-options`` typo that breaks a loop) does
        not overwrite the config of the run whose checkpoints are in the
        work dir. The log folder of every attempt
        still gets its config (mmengine's ``LocalVisBackend`` writes
        ``<timestamp>/vis_data/config.py`` when the runner is built).

        The copy holds the seeds this run drew where the config left them
        to chance (:meth:`_config_with_drawn_seeds`), so that training it
        again repeats the run.
        """
        if self._building:
            return
        from mmreid.utils.atomic import open_atomic
        path = self.config_copy_path()
        cfg, notes = self._config_with_drawn_seeds()
        # Config.dump() gives the text in the format of cfg.filename (the
        # one of ``path``), Python for a config without a file.
        text = cfg.dump()
        if notes and path.endswith('.py'):
            text = ''.join(f'# {note}\n' for note in notes) + text
        # open_atomic gives it the permissions of a plain open().
        with open_atomic(path, 'w', encoding='utf-8') as f:
            f.write(text)

    def config_copy_path(self) -> str:
        """``<work_dir>/<config name>`` (``<timestamp>.py`` for a config
        without a file), where :meth:`dump_config` writes."""
        if self.cfg.filename is not None:
            filename = osp.basename(self.cfg.filename)
        else:
            filename = f'{self.timestamp}.py'
        return osp.join(self.work_dir, filename)

    def _config_with_drawn_seeds(self) -> Tuple[Config, List[str]]:
        """The config to dump, with the seeds drawn for this run.

        ``randomness.seed=None`` draws a seed (logged, and the checkpoints'
        ``meta['seed']``): the copy gets it. Under ``diff_rank_seed`` a
        sampler without a seed of its own draws another one (mmengine
        gives it none): the copy gets that too (a resume's: the
        checkpoint's ``meta['sampler_seed']``), where the training
        dataloader is built.

        Returns:
            tuple: The config (``self.cfg`` itself when nothing was drawn)
            and one line per replaced value, for a comment.
        """
        import copy
        randomness = dict(self.cfg.get('randomness') or {})
        cfg, notes = self.cfg, []
        if randomness.get('seed') is None and self.seed is not None:
            cfg = copy.deepcopy(self.cfg)
            cfg.randomness = dict(randomness, seed=self.seed)
            notes.append(f'randomness.seed: None in the config; {self.seed} '
                         "is the seed this run drew (its checkpoints' "
                         "meta['seed'])")
        sampler_cfg = (self.cfg.get('train_dataloader') or {}).get('sampler')
        # mmengine's training loop holds the built dataloader (none in a
        # test run).
        loop = getattr(self, '_train_loop', None)
        sampler = getattr(getattr(loop, 'dataloader', None), 'sampler', None)
        # A resume goes on with the checkpoint's sampler seed (restored by
        # TrainRandomStateHook before training), where it records one.
        seed = (self.resumed_meta or {}).get('sampler_seed')
        if not isinstance(seed, int):
            seed = getattr(sampler, 'seed', None)
        if (randomness.get('diff_rank_seed') and isinstance(sampler_cfg, dict)
                and sampler_cfg.get('seed') is None
                and isinstance(seed, int)):
            if cfg is self.cfg:
                cfg = copy.deepcopy(self.cfg)
            cfg.train_dataloader.sampler.seed = seed
            notes.append(f'train_dataloader.sampler.seed: None in the config; '
                         f'{seed} is the seed its sampler drew '
                         '(randomness.diff_rank_seed gives it none)')
        return cfg, notes
