from numbers import Number
from typing import Sequence, Union

import numpy as np
import torch
from mmengine.structures import BaseDataElement

LabelType = Union[torch.Tensor, np.ndarray, Sequence, Number]


def format_label(value: LabelType) -> torch.Tensor:
    """Convert an identity label to a 1-D ``torch.long`` tensor.

    Args:
        value: A pid as an int, a sequence of ints, a numpy array or a tensor.

    Returns:
        torch.Tensor: Shape (1,) for a single pid.

    Raises:
        TypeError: ``value`` is none of the types above.
        ValueError: ``value`` holds a non-integral number (a pid is never
            rounded).
    """
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        value = torch.tensor(value)
    elif isinstance(value, Number):
        value = torch.tensor([value])
    elif not isinstance(value, torch.Tensor):
        raise TypeError(f'a pid must be an int, a sequence, an array or a '
                        f'tensor, got {type(value).__name__}')
    if value.ndim == 0:
        value = value.unsqueeze(0)
    if value.is_floating_point() and not torch.equal(value, value.round()):
        raise ValueError(f'a pid must be an integer, got {value.tolist()}')
    return value.long()


class ReIDDataSample(BaseDataElement):
    """The data interface between the parts of mmreid.

    Data fields:
        - ``gt_label`` (Tensor): the identity (pid), shape (1,). Training
          pids are relabelled 0..N-1; query/gallery keep the original pid.
        - ``pred_feature`` (Tensor): the embedding the model predicts,
          shape (D,).

    Meta information (``metainfo``) carried by every sample:
        - ``camid`` (int): 0-based camera id.
        - ``modality`` (int): 0 visible, 1 infrared.
        - ``role`` (str): ``'train'``, ``'query'`` or ``'gallery'``.
        - ``dataset`` (str): name of the source dataset.
        - ``img_path`` (str), ``sample_idx`` (int) and shapes.

    Examples:
        >>> sample = ReIDDataSample(metainfo=dict(camid=2, role='query'))
        >>> sample.set_gt_label(5).gt_label
        tensor([5])
    """

    def set_gt_label(self, value: LabelType) -> 'ReIDDataSample':
        """Set the pid."""
        self.set_field(format_label(value), 'gt_label', dtype=torch.Tensor)
        return self

    def set_pred_feature(self, value: torch.Tensor) -> 'ReIDDataSample':
        """Set the predicted embedding, shape (D,)."""
        self.set_field(value, 'pred_feature', dtype=torch.Tensor)
        return self
