import numpy as np
import pytest

from mmreid.visualization import ReIDVisualizer, draw_ranked_list
from mmreid.visualization import ranked_list as ranked_list_module
from mmreid.visualization.ranked_list import (BACKGROUND_COLOR, BORDER, GAP,
                                              MATCH_COLOR, MISMATCH_COLOR,
                                              QUERY_COLOR, QUERY_GAP,
                                              TEXT_LINE_HEIGHT, UNKNOWN_COLOR,
                                              tile_offsets)


def _img(h=40, w=20, value=None, seed=0):
    if value is not None:
        return np.full((h, w, 3), value, dtype=np.uint8)
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _frame_pixels(canvas, x, tile_size):
    """Every pixel of the frame of the tile starting at column ``x``."""
    h, w = tile_size
    tile = canvas[:h, x:x + w]
    return np.concatenate([
        tile[:BORDER].reshape(-1, 3), tile[-BORDER:].reshape(-1, 3),
        tile[:, :BORDER].reshape(-1, 3), tile[:, -BORDER:].reshape(-1, 3)
    ])


def test_canvas_shape_and_offsets():
    tile = (48, 24)
    gallery = [_img(seed=i) for i in range(4)]
    canvas = draw_ranked_list(_img(), gallery, tile_size=tile)
    assert canvas.dtype == np.uint8
    assert canvas.shape == (48 + TEXT_LINE_HEIGHT,
                            24 * 5 + QUERY_GAP + GAP * 3, 3)
    assert tile_offsets(4, tile) == [
        0, 24 + QUERY_GAP, 48 + QUERY_GAP + GAP, 72 + QUERY_GAP + 2 * GAP,
        96 + QUERY_GAP + 3 * GAP
    ]
    # labels add a second text line
    labelled = draw_ranked_list(
        _img(), gallery, tile_size=tile, query_label='pid 1')
    assert labelled.shape[0] == 48 + 2 * TEXT_LINE_HEIGHT
    # an empty gallery gives the query alone
    alone = draw_ranked_list(_img(), [], tile_size=tile)
    assert alone.shape == (48 + TEXT_LINE_HEIGHT, 24, 3)


def test_border_colours_and_content():
    tile = (48, 24)
    # uniform images whose colour differs from every frame colour
    query = _img(value=10)
    gallery = [_img(value=60 + 20 * i) for i in range(3)]
    matches = [True, False, None]
    canvas = draw_ranked_list(
        query,
        gallery,
        matches=matches,
        distances=[0.1, 0.2, 0.3],
        tile_size=tile)
    offsets = tile_offsets(3, tile)
    expected = [QUERY_COLOR, MATCH_COLOR, MISMATCH_COLOR, UNKNOWN_COLOR]
    for x, color in zip(offsets, expected):
        frame = _frame_pixels(canvas, x, tile)
        assert (frame == np.array(color, np.uint8)).all(), color
    # inside the frame is the (resized) image itself
    h, w = tile
    for x, value in zip(offsets, [10, 60, 80, 100]):
        inner = canvas[BORDER:h - BORDER, x + BORDER:x + w - BORDER]
        assert (inner == value).all()
    # the gaps stay background
    gap = canvas[:h, w:offsets[1]]
    assert (gap == np.array(BACKGROUND_COLOR, np.uint8)).all()
    # text was written under the tiles
    text_band = canvas[h:]
    assert (text_band != np.array(BACKGROUND_COLOR, np.uint8)).any()


def test_matches_none_means_unknown():
    tile = (48, 24)
    canvas = draw_ranked_list(
        _img(), [_img(seed=1), _img(seed=2)], tile_size=tile)
    for x in tile_offsets(2, tile)[1:]:
        frame = _frame_pixels(canvas, x, tile)
        assert (frame == np.array(UNKNOWN_COLOR, np.uint8)).all()


def test_numpy_booleans_choose_the_frame():
    # Matches often come from a numpy array: np.False_ is a mismatch.
    tile = (32, 16)
    canvas = draw_ranked_list(
        _img(), [_img(seed=1), _img(seed=2)],
        matches=np.array([False, True]),
        tile_size=tile)
    offsets = tile_offsets(2, tile)
    assert (_frame_pixels(canvas, offsets[1], tile) == MISMATCH_COLOR).all()
    assert (_frame_pixels(canvas, offsets[2], tile) == MATCH_COLOR).all()


def test_resize_non_tile_sized_inputs():
    tile = (32, 16)
    canvas = draw_ranked_list(
        _img(100, 50, value=200), [_img(20, 90, value=30)],
        matches=[np.bool_(True)],
        tile_size=tile)
    x = tile_offsets(1, tile)[1]
    assert (canvas[BORDER:32 - BORDER, x + BORDER:x + 16 - BORDER] == 30).all()
    assert (_frame_pixels(canvas, x, tile) == np.array(MATCH_COLOR)).all()


@pytest.mark.parametrize('kwargs, match', [
    (dict(query_img=np.zeros((8, 8), np.uint8)), r'query_img.*\(H, W, 3\)'),
    (dict(query_img=np.zeros((8, 8, 3), np.float32)), 'query_img.*uint8'),
    (dict(query_img=[[0]]), 'query_img must be a numpy array'),
    (dict(gallery_imgs=[np.zeros((8, 8, 4), np.uint8)]), r'gallery_imgs\[0\]'),
    (dict(matches=[True, False]), 'matches has 2 entries.*has 1'),
    (dict(distances=[]), 'distances has 0 entries'),
    (dict(gallery_labels=['a', 'b']), 'gallery_labels has 2'),
    (dict(tile_size=(4, 4)), 'tile_size'),
    (dict(tile_size=(2 * BORDER, 16)), 'tile_size'),
    (dict(gallery_imgs=[_img(), np.zeros((8, 8, 3), np.float32)]),
     r'gallery_imgs\[1\] must be uint8'),
    (dict(tile_size=(32.0, 16)), 'tile_size'),
    (dict(gallery_imgs=np.zeros((8, 8, 3), np.uint8)), 'single image'),
])
def test_bad_input(kwargs, match):
    args = dict(
        query_img=_img(), gallery_imgs=[_img(seed=1)], tile_size=(32, 16))
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        draw_ranked_list(**args)


def test_visualizer_sets_image(tmp_path):
    vis = ReIDVisualizer(
        name='test_ranked_list',
        vis_backends=[dict(type='LocalVisBackend')],
        save_dir=str(tmp_path))
    canvas = vis.draw_ranked_list(
        _img(), [_img(seed=1)], matches=[False], tile_size=(32, 16))
    np.testing.assert_array_equal(vis.get_image(), canvas)
    vis.add_image('ranked', canvas)
    assert list(tmp_path.rglob('ranked*.png'))


def test_four_digit_pid_and_camera_fit_a_64_pixel_tile():
    """Issue 18.4: 'pid 8512 cam 3' was clipped to 'pid 8512 cam'."""
    from mmreid.visualization.ranked_list import MIN_FONT_SCALE, fit_text
    for text in ('pid 8512', 'cam 14', '#10: 0.123'):
        fitted, scale = fit_text(text, 64 - 2 - BORDER)
        assert fitted == text and scale >= MIN_FONT_SCALE
    # Only what cannot fit at the smallest scale is shortened.
    fitted, scale = fit_text('pid 8512 cam 3 modality 1', 40)
    assert scale == MIN_FONT_SCALE and 'pid 8512 cam 3 modality 1'.startswith(
        fitted) and len(fitted) < 25


def test_label_lines_and_note_rows():
    tile = (64, 32)
    white = _img(value=255)
    canvas = draw_ranked_list(
        white, [white, white],
        tile_size=tile,
        query_label='pid 8512\ncam 3',
        gallery_labels=['pid 1\ncam 0', 'pid 2\ncam 5'],
        note='first correct match at rank 37')
    assert canvas.shape[0] == 64 + 4 * TEXT_LINE_HEIGHT
    background = np.array(BACKGROUND_COLOR, np.uint8)
    offsets = tile_offsets(2, tile)
    for line in range(3):  # rank, pid, cam: text under every tile
        band = canvas[64 + line * TEXT_LINE_HEIGHT:64 +
                      (line + 1) * TEXT_LINE_HEIGHT]
        for x in offsets:
            assert (band[:, x:x + 32] != background).any(), (line, x)
    # The note runs across tiles.
    note = canvas[64 + 3 * TEXT_LINE_HEIGHT:]
    assert (note[:, offsets[1]:offsets[2]] != background).any()


def test_each_tile_gets_its_rank_distance_and_labels(monkeypatch):
    """Under each gallery tile: its 1-based rank and distance, then its
    own label's lines."""
    drawn = []
    monkeypatch.setattr(
        ranked_list_module, '_put_text',
        lambda canvas, text, x, y, width: drawn.append((x, text)))
    draw_ranked_list(
        _img(), [_img(seed=1), _img(seed=2)],
        distances=[0.25, 1.5],
        tile_size=(64, 32),
        query_label='pid 8512',
        gallery_labels=['pid 1\ncam 0', 'pid 2\ncam 5'])
    x1, x2 = (x + 2 for x in tile_offsets(2, (64, 32))[1:])
    assert sorted(drawn) == sorted([(2, 'query'), (2, 'pid 8512'),
                                    (x1, '#1: 0.25'), (x1, 'pid 1'),
                                    (x1, 'cam 0'), (x2, '#2: 1.5'),
                                    (x2, 'pid 2'), (x2, 'cam 5')])


def test_html_report_names_the_0_based_camid():
    """The report shows the dataset's 0-based camid (Market's c1 is camid
    0) as 'camid N', as every picture does, not 'cam N' (the demo showed
    the file's 'cam 1' for the same image)."""
    from mmreid.visualization.html_report import (RankedExample,
                                                  ranked_list_html)
    example = RankedExample(
        kind='worst',
        query=dict(image=None, pid=3, camid=2),
        gallery=[dict(image=None, pid=4, camid=0, distance=0.5, match=False)],
        ap=0.25,
        first_rank=4)
    page = ranked_list_html(example, 0)
    assert 'query pid 3, camid 2' in page
    assert 'pid 3<br>camid 2' in page and 'pid 4<br>camid 0' in page
    assert 'cam 2' not in page.replace('camid 2', '')
