from .visualizer import ReIDVisualizer

__all__ = ['ReIDVisualizer']
