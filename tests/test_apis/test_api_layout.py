"""The APIs: model building apart from inference, one ``list_images``."""
import os.path as osp

import mmreid.apis as apis
from mmreid import datasets
from mmreid.apis import inference, inference_inputs, model


def test_model_building_lives_in_apis_model():
    assert apis.init_model is model.init_model
    assert apis.get_model is model.get_model
    assert model.init_model.__module__ == 'mmreid.apis.model'
    # The old import path keeps working for one release.
    assert inference.init_model is model.init_model


def test_one_list_images_for_datasets_and_apis():
    assert apis.list_images is datasets.list_images
    assert inference.list_images is datasets.list_images


def test_folder_inputs_follow_list_images(tmp_path):
    for name in ('b.PNG', 'a.jpg', '._a.jpg', 'notes.txt', 'Thumbs.db'):
        (tmp_path / name).write_bytes(b'')
    folder = str(tmp_path)
    names = apis.list_images(folder)
    # File names (not paths), sorted; AppleDouble and non-images skipped.
    assert names == ['a.jpg', 'b.PNG']
    assert inference_inputs._as_image_list(folder) == [
        osp.join(folder, 'a.jpg'),
        osp.join(folder, 'b.PNG')
    ]
