from .reid_data_sample import ReIDDataSample, format_label

__all__ = ['ReIDDataSample', 'format_label']
