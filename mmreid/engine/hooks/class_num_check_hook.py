from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmreid.registry import HOOKS


@HOOKS.register_module()
class ClassNumCheckHook(Hook):
    """Check before training that the classifier fits the training pids.

    A classifier smaller than the number of identities fails deep inside
    the loss; a larger one trains silently with dead rows. Both are config
    mistakes (a changed source list, another dataset) and are reported here,
    naming the two numbers and the key to change.
    """

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        head = getattr(model, 'head', None)
        num_classes = getattr(head, 'num_classes', None)
        dataset = runner.train_dataloader.dataset
        num_pids = dataset.metainfo.get('num_pids')
        if num_classes is None or num_pids is None:
            return
        if num_classes != num_pids:
            raise ValueError(
                f'model.head.num_classes is {num_classes} but the training '
                f'set ({dataset.metainfo.get("dataset_name", "?")}) has '
                f'{num_pids} identities; set model.head.num_classes='
                f'{num_pids}')
