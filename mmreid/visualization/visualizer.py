from mmengine.visualization import Visualizer

from mmreid.registry import VISUALIZERS


@VISUALIZERS.register_module()
class ReIDVisualizer(Visualizer):
    """The runner's visualizer; scalars go to its ``vis_backends``.

    It is mmengine's :class:`~mmengine.visualization.Visualizer` in the mmreid
    scope, so that configs name it without a prefix and ReID drawing methods
    have one home.
    """
