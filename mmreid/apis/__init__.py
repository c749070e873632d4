from .inference import (RankedList, extract_features, list_images,
                        parse_market_name, rank_gallery)
from .model import get_model, init_model
from .model_zoo import (ModelIndex, ModelInfo, find_model_index,
                        get_model_info, list_models, load_model_index)

__all__ = [
    'init_model', 'get_model', 'extract_features', 'rank_gallery',
    'RankedList', 'parse_market_name', 'list_images', 'list_models',
    'get_model_info', 'load_model_index', 'find_model_index', 'ModelInfo',
    'ModelIndex'
]
