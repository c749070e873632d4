from typing import Optional, Sequence, Tuple

import numpy as np
from mmengine.visualization import Visualizer

from mmreid.registry import VISUALIZERS
from .ranked_list import draw_ranked_list


@VISUALIZERS.register_module()
class ReIDVisualizer(Visualizer):
    """The runner's visualizer; scalars go to its ``vis_backends``.

    It is mmengine's :class:`~mmengine.visualization.Visualizer` in the mmreid
    scope, so that configs name it without a prefix and ReID drawing methods
    have one home.
    """

    def draw_ranked_list(self,
                         query_img: np.ndarray,
                         gallery_imgs: Sequence[np.ndarray],
                         matches: Optional[Sequence[Optional[bool]]] = None,
                         distances: Optional[Sequence[float]] = None,
                         tile_size: Tuple[int, int] = (128, 64),
                         query_label: Optional[str] = None,
                         gallery_labels: Optional[Sequence[str]] = None,
                         note: Optional[str] = None) -> np.ndarray:
        """Draw a ranked list and make it the visualizer's current image.

        Arguments are those of
        :func:`mmreid.visualization.draw_ranked_list`; afterwards
        :meth:`get_image` returns the canvas and :meth:`add_image` sends it
        to the ``vis_backends``.

        Returns:
            np.ndarray: The canvas, (H, W, 3) RGB uint8.
        """
        canvas = draw_ranked_list(
            query_img,
            gallery_imgs,
            matches=matches,
            distances=distances,
            tile_size=tile_size,
            query_label=query_label,
            gallery_labels=gallery_labels,
            note=note)
        self.set_image(canvas)
        return canvas
