from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.model import BaseModel

from mmreid.evaluation.functional import compute_distance
from mmreid.registry import MODELS
from mmreid.structures import ReIDDataSample

DISTANCES = ('euclidean', 'sqeuclidean', 'cosine')


@MODELS.register_module()
class ReIDModel(BaseModel):
    """Person ReID model: backbone -> neck (pooling) -> head.

    ``forward(mode=...)`` follows mmengine:

    * ``'loss'``: a dict of ``loss_*`` tensors (summed by mmengine) and log
      values whose names do not contain ``loss``;
    * ``'predict'``: the data samples with ``pred_feature`` (D,) set;
    * ``'tensor'``: the test features, shape (N, D).

    The model also owns how two features are compared
    (:meth:`distance`), so that a learned matcher can replace the Euclidean
    distance without the evaluator knowing.

    Args:
        backbone (dict): Backbone config, e.g. ``ReIDResNet``.
        neck (dict, optional): Pooling config, e.g. ``GlobalAvgPool``.
        head (dict): Head config, e.g. ``BNNeckHead``.
        data_preprocessor (dict, optional): Defaults to
            ``ReIDDataPreprocessor`` with ImageNet statistics.
        distance (str): ``'euclidean'`` (default), ``'sqeuclidean'`` or
            ``'cosine'``; used by :meth:`distance`.
        test_cfg (dict, optional): Test-time options. ``flip=True`` averages
            the features of each image and its horizontal mirror (flip
            test-time augmentation). Defaults to no augmentation.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 neck: Optional[dict] = dict(type='GlobalAvgPool'),
                 data_preprocessor: Optional[dict] = None,
                 distance: str = 'euclidean',
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='ReIDDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            # Built here, not by BaseModel, so that mmreid's registry is
            # used even when no default scope is set.
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if distance not in DISTANCES:
            raise ValueError(f'distance must be one of {DISTANCES}, got '
                             f'{distance!r}')
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck) if neck else None
        self.head = MODELS.build(head)
        self.distance_type = distance
        self.test_cfg = dict(test_cfg or {})
        unknown = set(self.test_cfg) - {'flip'}
        if unknown:
            raise ValueError(f'unknown test_cfg keys {sorted(unknown)}; '
                             'supported: flip')

    def extract_feat(
            self, inputs: torch.Tensor
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, ...]]:
        """Backbone and pooling: (N, 3, H, W) -> pooled features."""
        feats = self.backbone(inputs)
        if self.neck is not None:
            feats = self.neck(feats)
        return feats

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[ReIDDataSample]] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.extract_test_feature(inputs)
        raise ValueError(f'invalid mode {mode!r}: expected "loss", '
                         '"predict" or "tensor"')

    def extract_test_feature(self, inputs: torch.Tensor) -> torch.Tensor:
        """Test features (N, D), with flip augmentation if configured."""
        feats = self.head.predict(self.extract_feat(inputs))
        if self.test_cfg.get('flip', False):
            flipped = self.head.predict(self.extract_feat(inputs.flip(3)))
            feats = (feats + flipped) / 2
        return feats

    def loss(self, inputs: torch.Tensor,
             data_samples: List[ReIDDataSample]) -> Dict[str, torch.Tensor]:
        """Losses of a training batch, see the head's ``loss``."""
        return self.head.loss(self.extract_feat(inputs), data_samples)

    def predict(
        self,
        inputs: torch.Tensor,
        data_samples: Optional[List[ReIDDataSample]] = None
    ) -> List[ReIDDataSample]:
        """Write each sample's test feature into ``pred_feature``."""
        feats = self.extract_test_feature(inputs)
        if data_samples is None:
            data_samples = [ReIDDataSample() for _ in range(feats.size(0))]
        for sample, feat in zip(data_samples, feats):
            sample.set_pred_feature(feat)
        return data_samples

    def distance(self, query: torch.Tensor,
                 gallery: torch.Tensor) -> torch.Tensor:
        """Distances between query and gallery features (smaller = closer).

        Args:
            query (Tensor): Shape (Q, D).
            gallery (Tensor): Shape (G, D).

        Returns:
            Tensor: Shape (Q, G), fp32.
        """
        return compute_distance(query, gallery, metric=self.distance_type)
