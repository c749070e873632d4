from .data_preprocessor import ReIDDataPreprocessor

__all__ = ['ReIDDataPreprocessor']
