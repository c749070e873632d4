from mmengine.hooks import Hook
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
        check = getattr(loader.sampler, 'check_batch_size', None)
        if check is not None and loader.batch_size is not None:
            check(loader.batch_size)
