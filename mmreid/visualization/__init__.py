from .ranked_list import draw_ranked_list
from .tiles import draw_tiles, modality_name
from .visualizer import ReIDVisualizer

__all__ = ['ReIDVisualizer', 'draw_ranked_list', 'draw_tiles', 'modality_name']
