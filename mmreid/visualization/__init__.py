from .ranked_list import draw_ranked_list
from .visualizer import ReIDVisualizer

__all__ = ['ReIDVisualizer', 'draw_ranked_list']
