from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmreid.registry import HOOKS


@HOOKS.register_module()
class TrainSetupCheckHook(Hook):
    """Catch config mistakes before the first iteration, with their fix.

    * The classifier must have one row per training identity: a smaller one
      fails deep inside the loss, a larger one trains with dead rows. Both
      come from a changed source list or dataset.
    * A sampler that plans batches (``IdentitySampler``) must agree with the
      dataloader's ``batch_size``; otherwise batches would straddle the
      sampler's identity groups and steps.
    * A loss that mines positives within the batch (``needs_positives``:
      triplet, WRT, SNR's dual causality, GMN's pair losses) needs a
      sampler that puts at least two images of each identity in a batch
      (its ``images_per_identity``); with a shuffling sampler most anchors
      would have none and the loss would silently be another one.
    * Validation must not test identities the model trains on: another
      RegDB ``trial`` or DG ``split_index`` than the training set's
      (:func:`~mmreid.engine.runner.reid_loops.check_identity_split`).
    """

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        loader = runner.train_dataloader
        dataset = loader.dataset
        num_classes = getattr(
            getattr(model, 'head', None), 'num_classes', None)
        num_pids = dataset.metainfo.get('num_pids')
        if num_classes is not None and num_pids is not None \
                and num_classes != num_pids:
            raise ValueError(
                f'model.head.num_classes is {num_classes} but the training '
                f'set ({dataset.metainfo.get("dataset_name", "?")}) has '
                f'{num_pids} identities; set model.head.num_classes='
                f'{num_pids}')
        modules = model.modules() if callable(
            getattr(model, 'modules', None)) else []
        needing = sorted({
            type(m).__name__
            for m in modules if getattr(m, 'needs_positives', False)
        })
        per_identity = getattr(loader.sampler, 'images_per_identity', None)
        if needing and (per_identity is None or per_identity < 2):
            sampler = type(loader.sampler).__name__
            got = ('no identity structure' if per_identity is None else
                   f'{per_identity} image of each identity per batch')
            raise ValueError(
                f'{", ".join(needing)} mines positives within a batch, but '
                f'the training sampler ({sampler}) gives {got}: most '
                'anchors would have no positive and the loss would not be '
                'the configured one. Use a P x K sampler, e.g. '
                "train_dataloader.sampler=dict(type='IdentitySampler', "
                'batch_size=..., num_instances=4) (a sampler of your own '
                'declares images_per_identity), or remove the loss.')
        check = getattr(loader.sampler, 'check_batch_size', None)
        if check is not None and loader.batch_size is not None:
            check(loader.batch_size)
        if loader.batch_size is not None:
            from mmengine.dist import get_world_size
            world = get_world_size()
            print_log(
                f'batch per step: {loader.batch_size} images per process x '
                f'{world} process{"es" if world > 1 else ""} = '
                f'{loader.batch_size * world}',
                logger='current')
        from mmreid.engine.runner.reid_loops import check_identity_split
        val_loop = getattr(runner, 'val_loop', None)
        if val_loop is not None:
            check_identity_split(runner, val_loop, 'validation')
