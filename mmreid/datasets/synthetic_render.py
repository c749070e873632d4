"""Rendering of SynthReID images: identities, cameras and domain styles.

Pure numpy/OpenCV drawing, no file I/O: :mod:`mmreid.datasets.synthetic`
plans which (domain, pid, camera, image) goes to which file and writes the
dataset. Every image is drawn from its own ``numpy.random.Generator(PCG64)``
seeded by its keys, so the pixels do not depend on generation order.
"""
import functools
import math
import numbers
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

# Keys of the per-purpose random streams (first entropy word after seed).
_STYLE, _CAMERA, _IDENTITY, _IMAGE, _SPLIT, _EXTRA, _INFRARED = range(1, 8)
_ADDED = 8  # test identities added to a drawn split (num_ids_test_added)

#: Infrared modes of :func:`render_image` (see :func:`identity_attributes`).
IR_MODES = ('hard', 'dye')

# Garment palette (RGB) and the relative frequency of each colour. Few
# colours with small per-identity jitter make many identities share a mean
# colour, so colour alone does not solve the task.
# yapf: disable
_PALETTE = np.array(
    [[25, 25, 28], [235, 235, 230], [128, 128, 128], [70, 70, 76],
     [30, 40, 90], [40, 80, 180], [120, 170, 220], [180, 30, 35],
     [110, 25, 40], [40, 120, 60], [110, 115, 50], [225, 200, 50],
     [230, 120, 30], [230, 150, 180], [110, 60, 140], [110, 70, 40],
     [200, 180, 140], [30, 130, 130]],
    dtype=np.int64)
_UPPER_P = np.array([20, 10, 8, 10, 8, 5, 3, 4, 2, 3, 2, 2, 2, 2, 2, 2, 3, 2])
_LOWER_P = np.array([14, 1, 4, 6, 8, 9, 1, 1, 1, 1, 2, 0, 0, 0, 0, 3, 4, 0])
_SKIN = np.array([[240, 200, 170], [220, 170, 130], [180, 130, 95],
                  [120, 80, 55]])
_HAIR = np.array([[20, 18, 18], [70, 45, 25], [200, 170, 100],
                  [150, 150, 150]])
_PATTERNS = ('plain', 'hstripes', 'vstripes', 'checks', 'logo', 'band')
_PATTERN_P = np.array([12, 3, 2, 2, 3, 3])

# Style "looks" of the ordinary domains; each domain takes one (in a seeded
# order) plus jitter. ``temp`` tilts red against blue, ``tint`` green.
_LOOKS = dict(
    neutral=dict(temp=0.0, tint=0.0, bright=1.0, offset=0.0, gamma=1.0,
                 contrast=1.0, sat=1.0, blur=0.3, noise=2.0),
    cool=dict(temp=-0.2, tint=0.02, bright=1.1, offset=-5.0, gamma=0.9,
              contrast=1.05, sat=0.9, blur=0.2, noise=2.0),
    warm=dict(temp=0.18, tint=0.0, bright=0.88, offset=0.0, gamma=1.15,
              contrast=1.0, sat=1.15, blur=0.4, noise=3.0),
    fluorescent=dict(temp=-0.06, tint=0.12, bright=1.0, offset=-8.0,
                     gamma=1.0, contrast=1.12, sat=0.8, blur=0.3, noise=3.0),
    hazy=dict(temp=0.04, tint=-0.03, bright=0.95, offset=25.0, gamma=0.95,
              contrast=0.72, sat=0.75, blur=0.7, noise=2.5))
# The held-out target: strong sodium-lamp cast, washed-out colours, dark
# mid-tones, soft and noisy (a night-time CCTV look).
_UNSEEN_LOOK = dict(temp=0.25, tint=0.0, bright=0.85, offset=6.0, gamma=1.25,
                    contrast=0.85, sat=0.65, blur=0.7, noise=5.0)
# yapf: enable


def _rng(*keys: int) -> np.random.Generator:
    """An independent stream for one purpose and one (domain, pid, ...)."""
    # Negative keys (pid -1) map into a disjoint range of non-negatives.
    words = [k if k >= 0 else (1 << 40) - k for k in keys]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))


def domain_names(num_domains: int) -> List[str]:
    """Folder names of the domains: ``['d0', 'd1', ...]``."""
    return [f'd{d}' for d in range(num_domains)]


def get_domain_styles(num_domains: int = 4, seed: int = 0) -> List[dict]:
    """Global image style of every domain (for docs and analyses).

    Ordinary domains take a seeded permutation of named looks (neutral,
    cool, warm, fluorescent, hazy) with jitter; when ``num_domains >= 2`` the
    last domain gets the deliberately different ``'unseen'`` look.

    Args:
        num_domains (int): Number of domains.
        seed (int): Dataset seed.

    Returns:
        list[dict]: Per domain: ``name``, ``look``, ``unseen`` (bool),
        ``gain`` (3,) RGB multipliers, ``offset`` (3,), ``gamma``,
        ``contrast``, ``saturation``, ``blur`` (Gaussian sigma in pixels at
        128 px height) and ``noise`` (std in grey levels).
    """
    order = _rng(seed, _STYLE).permutation(len(_LOOKS))
    names = list(_LOOKS)
    styles = []
    for d, name in enumerate(domain_names(num_domains)):
        unseen = num_domains >= 2 and d == num_domains - 1
        look = 'unseen' if unseen else names[order[d % len(names)]]
        base = _UNSEEN_LOOK if unseen else _LOOKS[look]
        rng = _rng(seed, _STYLE, d)
        temp = base['temp'] + rng.uniform(-0.04, 0.04)
        tint = base['tint'] + rng.uniform(-0.03, 0.03)
        bright = base['bright'] * rng.uniform(0.95, 1.05)
        gain = bright * np.array([1 + temp, 1 + tint, 1 - temp])
        offset = base['offset'] + rng.uniform(-4, 4, size=3)
        styles.append(
            dict(
                name=name,
                look=look,
                unseen=bool(unseen),
                gain=[round(float(g), 4) for g in gain],
                offset=[round(float(o), 2) for o in offset],
                gamma=round(base['gamma'] * rng.uniform(0.95, 1.05), 4),
                contrast=round(base['contrast'] * rng.uniform(0.95, 1.05), 4),
                saturation=round(base['sat'] * rng.uniform(0.9, 1.1), 4),
                blur=round(base['blur'] * rng.uniform(0.8, 1.2), 3),
                noise=round(base['noise'] * rng.uniform(0.8, 1.2), 3)))
    return styles


# ---------------------------------------------------------------------------
# Identities and cameras
# ---------------------------------------------------------------------------
def _jitter_colour(rng: np.random.Generator, rgb: np.ndarray) -> tuple:
    return tuple(
        int(c) for c in np.clip(rgb + rng.integers(-10, 11, 3), 0, 255))


def _luminance(rgb: Sequence[float]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def infrared_response(seed: int) -> Dict[str, np.ndarray]:
    """The dataset's fixed dye -> infrared intensity mapping (``'dye'``).

    Near-infrared reflectance depends on the dye, not on the visible
    colour: two dyes that look alike may differ in infrared and the other
    way round, and the order of intensities need not follow luminance. One
    mapping per dataset seed, shared by every identity, so a model can learn
    it from the training identities.

    Args:
        seed (int): Dataset seed.

    Returns:
        dict: ``palette`` (18,) for the garment and accessory dyes,
        ``skin`` (4,) and ``hair`` (4,), infrared grey levels.
    """
    rng = _rng(seed, _INFRARED)
    return dict(
        palette=rng.uniform(35, 225, len(_PALETTE)),
        skin=rng.uniform(190, 240, len(_SKIN)),
        hair=rng.uniform(25, 110, len(_HAIR)))


def identity_attributes(seed: int,
                        domain: int,
                        pid: int,
                        ir_mode: str = 'hard',
                        ir_luminance: float = 0.0) -> dict:
    """Camera-invariant attributes of one identity.

    Args:
        seed (int): Dataset seed.
        domain (int): Domain index (identities of different domains are
            different people even where pid numbers coincide).
        pid (int): Original pid.
        ir_mode (str): ``'hard'``: infrared intensities drawn per identity,
            independent of the dyes, and small shape cues (stripe period
            0.045-0.075 of the figure height, prints on the front only).
            ``'dye'``: intensities follow the dyes through
            :func:`infrared_response`, and the shape cues are large enough
            to survive 64x32 images (period 0.10-0.16, larger prints that
            show from the back too). The same draws decide everything else,
            so an identity wears the same clothes in both modes.
        ir_luminance (float): ``'dye'`` only: weight of the visible
            luminance in the infrared intensity (0: the dye mapping alone;
            1: infrared is the grey image of the colours, an easy task).

    Returns:
        dict: ``colour`` (part -> RGB), ``ir`` (part -> infrared
        intensity), ``pattern``, ``period``, ``print_size``,
        ``print_back``, ``sleeves``, ``lower``, accessories (``hat``,
        ``bag``, ``backpack``, ``scarf``, ``long_hair``) and body
        proportions (``height``, ``width``, ``head``, ``leg``) in units of
        the figure height.
    """
    if ir_mode not in IR_MODES:
        raise ValueError(f'ir_mode must be one of {IR_MODES}, got '
                         f'{ir_mode!r}')
    rng = _rng(seed, _IDENTITY, domain, pid)
    n = len(_PALETTE)
    upper = rng.choice(n, p=_UPPER_P / _UPPER_P.sum())
    lower = rng.choice(n, p=_LOWER_P / _LOWER_P.sum())
    # Pattern colours come from a few common ones (white, black, grey, red,
    # navy) and differ from the garment so the pattern shows.
    second = rng.choice([c for c in (1, 0, 2, 7, 4) if c != upper])
    # The draws below keep the order of the first release (byte-identical
    # 'hard' images); the dye of every part is kept for the 'dye' mode.
    dyes = dict(upper=upper, pattern=second, lower=lower)
    colour = dict(
        upper=_jitter_colour(rng, _PALETTE[upper]),
        pattern=_jitter_colour(rng, _PALETTE[second]),
        lower=_jitter_colour(rng, _PALETTE[lower]))
    dyes['shoes'] = rng.choice([0, 1, 3, 15])
    colour['shoes'] = _jitter_colour(rng, _PALETTE[dyes['shoes']])
    skin = rng.integers(len(_SKIN))
    colour['skin'] = _jitter_colour(rng, _SKIN[skin])
    hair = rng.integers(len(_HAIR))
    colour['hair'] = _jitter_colour(rng, _HAIR[hair])
    for part in ('hat', 'bag', 'backpack', 'scarf'):
        dyes[part] = rng.integers(n)
        colour[part] = _jitter_colour(rng, _PALETTE[dyes[part]])
    # 'hard': an emissivity drawn independently of the colour (a black
    # shirt can be bright, a white one dark); skin is warm.
    ir = {k: int(rng.integers(30, 200)) for k in colour}
    ir['skin'] = int(rng.integers(215, 250))
    # Keep the pattern visible in infrared too.
    if abs(ir['pattern'] - ir['upper']) < 60:
        ir['pattern'] = ir['upper'] + (70 if ir['upper'] < 128 else -70)
    bag = rng.random() < 0.2
    attrs = dict(
        colour=colour,
        ir=ir,
        pattern=_PATTERNS[rng.choice(6, p=_PATTERN_P / _PATTERN_P.sum())],
        period=float(rng.uniform(0.045, 0.075)),
        print_size=0.035,
        print_back=False,
        sleeves='short' if rng.random() < 0.35 else 'long',
        lower=('trousers', 'shorts',
               'skirt')[rng.choice(3, p=[0.7, 0.18, 0.12])],
        long_hair=bool(rng.random() < 0.3),
        hat=bool(rng.random() < 0.15),
        bag=(('left', 'right')[rng.integers(2)] if bag else None),
        backpack=bool(rng.random() < 0.2),
        scarf=bool(rng.random() < 0.1),
        height=float(rng.uniform(0.86, 1.0)),
        width=float(rng.uniform(0.10, 0.15)),
        head=float(rng.uniform(0.06, 0.08)),
        leg=float(rng.uniform(0.44, 0.52)))
    if ir_mode == 'dye':
        response = infrared_response(seed)
        base = {k: response['palette'][d] for k, d in dyes.items()}
        base['skin'] = response['skin'][skin]
        base['hair'] = response['hair'][hair]
        nominal = {k: _PALETTE[d] for k, d in dyes.items()}
        nominal['skin'], nominal['hair'] = _SKIN[skin], _HAIR[hair]
        mix = float(ir_luminance)
        for k, rgb in colour.items():
            # The identity's small colour jitter carries into infrared.
            own = base[k] + _luminance(rgb) - _luminance(nominal[k])
            ir[k] = int(
                np.clip(
                    round((1 - mix) * own + mix * _luminance(rgb)), 0, 255))
        # Same draw, rescaled: stripes of 0.10-0.16 of the figure height
        # (about 4-10 px per period at 64x32, twice the hard mode's).
        attrs['period'] = 0.10 + (attrs['period'] - 0.045) * 2.0
        attrs['print_size'] = 0.06
        attrs['print_back'] = True
    return attrs


def _camera(seed: int,
            domain: int,
            cam: int,
            infrared: bool,
            ir_mode: str = 'hard') -> dict:
    """Background, viewpoint and lighting of one camera.

    ``ir_mode='dye'`` makes infrared cameras sharper (a quarter of the
    resolution loss).
    """
    rng = _rng(seed, _CAMERA, domain, cam)
    if infrared:
        wall = np.full(3, rng.integers(40, 120))
        floor = np.full(3, rng.integers(30, 110))
        light = np.full(3, rng.uniform(0.85, 1.15))
    else:
        # Muted scene colours: mostly grey with a little hue.
        wall = rng.integers(60, 200) + rng.integers(-30, 31, 3)
        floor = rng.integers(40, 170) + rng.integers(-25, 26, 3)
        temp = rng.uniform(-0.35, 0.35)
        light = rng.uniform(0.7, 1.2) * np.array([1 + temp, 1, 1 - temp])
    out = dict(
        wall=np.clip(wall, 0, 255).astype(np.float32),
        floor=np.clip(floor, 0, 255).astype(np.float32),
        horizon=float(rng.uniform(0.55, 0.8)),
        texture=('plain', 'tiles', 'bricks', 'panels')[rng.integers(4)],
        clutter=float(rng.uniform(0.1, 0.6)),
        scale=float(rng.uniform(0.75, 0.92)),
        dx=float(rng.uniform(-0.06, 0.06)),
        shear=float(rng.uniform(-0.1, 0.1)),
        side_prob=float(rng.uniform(0.1, 0.4)),
        back_prob=float(rng.uniform(0.2, 0.5)),
        light=light.astype(np.float32),
        shade=float(rng.uniform(-0.25, 0.25)),
        occlusion=float(rng.uniform(0.0, 0.3)),
        crowd=float(rng.uniform(0.15, 0.45)),
        lowres=float(rng.uniform(1.0, 3.0)),
        saturation=float(rng.uniform(0.65, 1.2)),
        infrared=infrared)
    if infrared and ir_mode == 'dye':
        # Same draw, rescaled: 1.0-1.5x instead of 1-3x resolution loss.
        out['lowres'] = 1.0 + (out['lowres'] - 1.0) * 0.25
        out['sharp'] = True
    return out


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------
def _background(cam: dict, rng: np.random.Generator, h: int,
                w: int) -> np.ndarray:
    horizon = int(h * (cam['horizon'] + rng.uniform(-0.04, 0.04)))
    img = np.empty((h, w, 3), np.float32)
    img[:horizon] = cam['wall'] + rng.uniform(-8, 8, 3).astype(np.float32)
    img[horizon:] = cam['floor'] + rng.uniform(-8, 8, 3).astype(np.float32)
    ramp = np.linspace(0.85, 1.1, h, dtype=np.float32)[:, None, None]
    img = np.clip(img * ramp, 0, 255).astype(np.uint8)
    line = tuple(int(c) for c in np.clip(cam['wall'] * 0.7, 0, 255))
    phase = rng.uniform(0, 1)
    if cam['texture'] == 'tiles':
        for i in range(1, 6):
            y = horizon + int((h - horizon) * (i / 6)**1.5)
            cv2.line(img, (0, y), (w, y), line, 1)
        for i in range(-3, 5):
            x = int(w * (i + phase) / 3)
            cv2.line(img, (w // 2 + (x - w // 2) // 3, horizon), (x, h), line,
                     1)
    elif cam['texture'] == 'bricks':
        step = max(h // 16, 3)
        for r, y in enumerate(range(0, horizon, step)):
            cv2.line(img, (0, y), (w, y), line, 1)
            off = int((phase + 0.5 * (r % 2)) * step * 2)
            for x in range(off % (step * 2), w, step * 2):
                cv2.line(img, (x, y), (x, min(y + step, horizon)), line, 1)
    elif cam['texture'] == 'panels':
        for x in range(int(phase * w / 3), w, w // 3 + 1):
            cv2.rectangle(img, (x, 0), (x + w // 10, horizon), line, -1)
    # Clutter: objects in the scene that vary from frame to frame.
    for _ in range(int(rng.random() < cam['clutter']) + (rng.random() < 0.2)):
        x0, y0 = int(rng.uniform(-0.2, 0.9) * w), int(rng.uniform(0, 0.8) * h)
        colour = tuple(int(c) for c in rng.integers(20, 230, 3))
        if cam['infrared']:
            colour = (colour[0], ) * 3
        cv2.rectangle(img, (x0, y0), (x0 + int(rng.uniform(0.1, 0.4) * w),
                                      y0 + int(rng.uniform(0.1, 0.3) * h)),
                      colour, -1)
    return img


def _view(cam: dict, ident: dict, rng: np.random.Generator, h: int,
          w: int) -> dict:
    """Per-image placement and pose of the figure (a detector's crop)."""
    height = h * cam['scale'] * ident['height'] * rng.uniform(0.93, 1.07)
    u = rng.random()
    facing = ('side' if u < cam['side_prob'] else
              'back' if u < cam['side_prob'] + cam['back_prob'] else 'front')
    return dict(
        hp=height,
        cx=w * (0.5 + cam['dx'] + rng.uniform(-0.1, 0.1)),
        top=(h - height) * rng.uniform(0.2, 0.8) +
        h * rng.uniform(-0.03, 0.03),
        shear=cam['shear'] + rng.uniform(-0.06, 0.06),
        mirror=1 if rng.random() < 0.5 else -1,
        facing=facing,
        spread=float(rng.uniform(0.0, 0.09)),
        swing=float(rng.uniform(-0.04, 0.04)))


def _draw_person(img: np.ndarray, ident: dict, view: dict,
                 colours: dict) -> None:
    """Draw the figure in place.

    Coordinates are in units of the figure height with x centred on the
    body axis (a side view faces +x); ``view`` maps them to pixels (scale,
    translation, shear, mirroring). Drawing uses 4 fractional bits for
    sub-pixel placement.
    """
    hp, cx, top = view['hp'], view['cx'], view['top']
    shear, sign = view['shear'], view['mirror']

    def pt(x: float, y: float) -> Tuple[int, int]:
        px = cx + sign * (x + shear * (y - 0.5)) * hp
        return int(round(px * 16)), int(round((top + y * hp) * 16))

    def poly(points, colour, target=img):
        cv2.fillPoly(target, [np.array([pt(*p) for p in points], np.int32)],
                     colour, cv2.LINE_AA, 4)

    def limb(points, t, colour):
        pts = [pt(*p) for p in points]
        for a, b in zip(pts[:-1], pts[1:]):
            cv2.line(img, a, b, colour, max(1, int(round(t * hp))),
                     cv2.LINE_AA, 4)

    def ellipse(x, y, ax, ay, colour, start=0, end=360):
        # Mirroring flips the drawing direction of partial ellipses.
        if sign < 0:
            start, end = 180 - end, 180 - start
        cv2.ellipse(img, pt(x, y), (int(ax * hp * 16), int(ay * hp * 16)), 0,
                    start, end, colour, -1, cv2.LINE_AA, 4)

    c, facing = colours, view['facing']
    side, back = facing == 'side', facing == 'back'
    hr, hip, knee = ident['head'], 1 - ident['leg'], 1 - ident['leg'] / 2
    sh = 2 * hr + 0.02
    # Half widths of shoulders and waist; the side view shows the depth.
    sw = ident['width'] * (0.6 if side else 1.0)
    hw = sw * (0.9 if side else 0.8)
    if ident['long_hair'] and not back:
        x0 = -hr * 1.1 if side else -hr
        poly([(x0, hr), (hr * (0.2 if side else 1), hr),
              (hr * (0.2 if side else 1), sh + 0.08), (x0, sh + 0.08)],
             c['hair'])
    # Legs and shoes: spread apart, or in stride seen from the side.
    upper_leg = c['skin'] if ident['lower'] == 'skirt' else c['lower']
    lower_leg = c['lower'] if ident['lower'] == 'trousers' else c['skin']
    for s in (-1, 1):
        if side:
            hx, stride = 0.0, s * (0.04 + view['spread'])
            knee_x, foot_x, toe = stride * 0.5, stride, 0.02
        else:
            hx = s * hw * 0.5
            knee_x = hx + s * view['spread'] * 0.5
            foot_x, toe = hx + s * view['spread'], s * 0.01
        limb([(hx, hip + 0.02), (knee_x, knee)], hw * 0.8, upper_leg)
        limb([(knee_x, knee), (foot_x, 0.97)], hw * 0.68, lower_leg)
        ellipse(foot_x + toe, 0.975, 0.045, 0.022, c['shoes'])
    poly([(-hw, hip - 0.02), (hw, hip - 0.02), (hw, hip + 0.07),
          (-hw, hip + 0.07)], c['lower'])
    if ident['lower'] == 'skirt':
        poly([(-hw, hip), (hw, hip), (hw + 0.06, knee + 0.03),
              (-hw - 0.06, knee + 0.03)], c['lower'])
    # Torso, with the pattern clipped to it through a mask.
    torso = [(-sw, sh), (sw, sh), (hw, hip + 0.02), (-hw, hip + 0.02)]
    poly(torso, c['upper'])
    pattern = ident['pattern']
    if pattern == 'logo' and (side or back and not ident['print_back']):
        pattern = 'plain'
    if pattern != 'plain':
        # Draw across the torso's bounding box, then restore the pixels
        # outside the torso.
        saved = img.copy()
        p, y0, y1 = ident['period'], sh, hip + 0.02
        if pattern in ('hstripes', 'checks'):
            for y in np.arange(y0 + p / 2, y1, p):
                limb([(-sw - 0.05, y), (sw + 0.05, y)], p * 0.45, c['pattern'])
        if pattern in ('vstripes', 'checks'):
            for x in np.arange(-sw + p / 2, sw, p):
                limb([(x, y0), (x, y1)], p * 0.45, c['pattern'])
        if pattern == 'band':
            limb([(-sw - 0.05, sh + 0.09), (sw + 0.05, sh + 0.09)], 0.05,
                 c['pattern'])
        if pattern == 'logo':
            size = ident['print_size']
            ellipse(0.02, sh + 0.09, size, size, c['pattern'])
        mask = np.zeros(img.shape[:2], np.uint8)
        poly(torso, 255, mask)
        img[mask == 0] = saved[mask == 0]
    if ident['backpack']:
        if side:
            poly([(-sw - 0.07, sh + 0.03), (-sw + 0.01, sh + 0.03),
                  (-sw + 0.01, hip - 0.04), (-sw - 0.07, hip - 0.04)],
                 c['backpack'])
        elif back:
            poly([(-sw * 0.75, sh + 0.03), (sw * 0.75, sh + 0.03),
                  (sw * 0.7, hip - 0.04), (-sw * 0.7, hip - 0.04)],
                 c['backpack'])
        else:
            for s in (-1, 1):
                limb([(s * sw * 0.6, sh), (s * sw * 0.55, sh + 0.16)], 0.02,
                     c['backpack'])
    # Arms (one in the side view): sleeve, forearm, hand.
    forearm = c['upper'] if ident['sleeves'] == 'long' else c['skin']
    for s in ((1, ) if side else (-1, 1)):
        swing = view['swing'] * s
        if side:
            shoulder, elbow = (0.0, sh + 0.02), (2 * swing, sh + 0.17)
            hand = (3 * swing + 0.01, hip + 0.03)
        else:
            shoulder = (s * (sw - 0.015), sh + 0.02)
            elbow = (s * (sw + 0.015) + swing, sh + 0.17)
            hand = (s * (sw + 0.01) + 2 * swing, hip + 0.03)
        limb([shoulder, elbow], 0.05, c['upper'])
        limb([elbow, hand], 0.045, forearm)
        ellipse(hand[0], hand[1] + 0.01, 0.022, 0.025, c['skin'])
    if ident['bag']:
        s = -1 if ident['bag'] == 'left' else 1
        if side:
            s = 0.3
        limb([(-s * sw * 0.7, sh), (s * hw, hip - 0.02)], 0.015, c['bag'])
        poly([(s * hw * 0.7, hip - 0.05),
              (s * hw + 0.09 * np.sign(s), hip - 0.05),
              (s * hw + 0.09 * np.sign(s), hip + 0.07),
              (s * hw * 0.7, hip + 0.07)], c['bag'])
    if ident['scarf']:
        limb([(-hr * 0.9, sh - 0.005), (hr * 0.9, sh - 0.005)], 0.035,
             c['scarf'])
    # Head: the back view shows hair only, the side view the back half.
    ellipse(0, hr + 0.005, hr * 0.85, hr, c['skin'])
    if back:
        ellipse(0, hr + 0.005, hr * 0.9, hr * 1.05, c['hair'])
    elif side:
        ellipse(0, hr, hr * 0.9, hr * 1.02, c['hair'], 90, 360)
        ellipse(0, hr + 0.005, hr * 0.85, hr, c['skin'], 0, 90)
    else:
        ellipse(0, hr, hr * 0.9, hr * 1.02, c['hair'], 180, 360)
    if ident['hat']:
        ellipse(0, hr * 0.9, hr * 0.98, hr * 0.95, c['hat'], 180, 360)
        limb([(-hr * (0.9 if side else 1.1), hr * 0.9),
              (hr * (1.9 if side else 1.5), hr * 0.9)], 0.015, c['hat'])


def _infrared_sensor(img: np.ndarray, gap: float,
                     rng: np.random.Generator) -> np.ndarray:
    """What an infrared sensor adds that per-modality normalisation keeps.

    Two differences that no per-channel affine map (a per-modality BN, an
    affine stem) undoes: the sensor's tone curve, a power law (darker
    mid-tones, compressed shadows: it changes the shape of the intensity
    histogram, not only its mean and spread), and noise at the sensor's
    coarser pixel pitch (blocks of 1/64 of the image height, 2x2 pixels at
    128x64, so it survives the resize to 64x32 training images and changes
    the images' spatial correlation). Both grow with ``gap``.

    Args:
        img (np.ndarray): Infrared image of shape (H, W), uint8.
        gap (float): Strength, > 0 (about 1 at most).
        rng (np.random.Generator): The image's stream (drawn last).

    Returns:
        np.ndarray: The image, shape (H, W), uint8.
    """
    h, w = img.shape
    # A table from libm's pow, not numpy's vectorised power (whose SIMD
    # kernels may differ by CPU and break byte-identity).
    tone = np.array([255 * math.pow(v / 255, 1 + 1.5 * gap)
                     for v in range(256)], np.float32)
    pitch = max(1, round(h / 64))
    coarse = rng.normal(0, 15 * gap, (-(-h // pitch), -(-w // pitch)))
    noise = np.repeat(np.repeat(coarse, pitch, 0), pitch, 1)[:h, :w]
    x = tone[img] + noise.astype(np.float32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _finish_image(img: np.ndarray, cam: dict, style: Optional[dict],
                  rng: np.random.Generator) -> np.ndarray:
    """Camera lighting, then the domain style (or the infrared sensor)."""
    h, w = img.shape[:2]
    if cam['lowres'] > 1.1:
        # A low-resolution camera: detail lost, then upsampled.
        sw = max(4, round(w / cam['lowres']))
        sh = max(8, round(h / cam['lowres']))
        img = cv2.resize(
            cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA), (w, h),
            interpolation=cv2.INTER_LINEAR)
    x = img.astype(np.float32)
    temp = rng.uniform(-0.08, 0.08)
    tilt = np.array([1 + temp, 1, 1 - temp], np.float32)
    light = cam['light'] * tilt * np.float32(rng.uniform(0.75, 1.25))
    if cam['infrared']:
        light = np.full(3, light[1], np.float32)
    shade = cam['shade'] + rng.uniform(-0.1, 0.1)
    ramp = np.linspace(1 - shade, 1 + shade, w, dtype=np.float32)
    vshade = rng.uniform(-0.15, 0.15)
    vramp = np.linspace(1 - vshade, 1 + vshade, h, dtype=np.float32)
    x = x * light * ramp[None, :, None] * vramp[:, None, None]
    if style is None:
        # Infrared sensor: gain only, soft optics, strong noise.
        blur, noise, lut = 0.9, 5.0, None
        if cam.get('sharp'):
            blur, noise = 0.5, 4.0
    else:
        # Explicit products, not a matmul: BLAS may fuse multiply-adds
        # differently on different CPUs and break byte-identity.
        grey = (x[..., 0] * np.float32(0.299) + x[..., 1] * np.float32(0.587) +
                x[..., 2] * np.float32(0.114))[..., None]
        x = grey + (x - grey) * np.float32(
            style['saturation'] * cam['saturation'])
        x = (x - 128) * np.float32(style['contrast']) + 128
        x = x * np.array(style['gain'], np.float32) + np.array(
            style['offset'], np.float32)
        blur, noise = style['blur'], style['noise']
        levels = np.arange(256) / 255.0
        lut = np.rint(255 * levels**style['gamma']).astype(np.uint8)
    out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if lut is not None:
        out = lut[out]
    sigma = blur * h / 128
    if sigma > 0.05:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    noisy = out + rng.normal(0, noise, out.shape).astype(np.float32)
    out = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    if cam['infrared']:
        out = out[..., 0]
    return out


def _colours(ident: dict, infrared: bool) -> dict:
    if infrared:
        return {k: (v, v, v) for k, v in ident['ir'].items()}
    return ident['colour']


@functools.lru_cache(maxsize=64)
def _domain_style(num_domains: int, seed: int, domain: int) -> dict:
    """:func:`get_domain_styles`' entry of one domain, computed once per
    process (the renderers call it for every image). Read-only."""
    return get_domain_styles(num_domains, seed)[domain]


@functools.lru_cache(maxsize=4096)
def _person(seed: int, domain: int, pid: int, ir_mode: str,
            ir_luminance: float) -> dict:
    """:func:`identity_attributes` of one identity, computed once per
    process (an identity has many images). Read-only."""
    return identity_attributes(seed, domain, pid, ir_mode, ir_luminance)


@functools.lru_cache(maxsize=256)
def _camera_of(seed: int, domain: int, cam: int, infrared: bool,
               ir_mode: str) -> dict:
    """:func:`_camera`, computed once per process. Read-only."""
    return _camera(seed, domain, cam, infrared, ir_mode)


def _as_float(name: str, value) -> float:
    """``value`` as a finite float.

    Refuses what ``float()`` would coerce or pass on silently: a bool, a
    string, NaN and infinity (``nan >= 0`` is False, so a NaN slipped
    through a ``< 0`` check and disabled the option it set).

    Raises:
        ValueError: ``value`` is not a finite real number; names ``name``.
    """
    if isinstance(value,
                  (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f'SynthReID: {name} must be a number, got '
                         f'{value!r} ({type(value).__name__})')
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f'SynthReID: {name} must be a finite number, got '
                         f'{value}')
    return value


def check_ir_options(ir_mode: str, ir_luminance: float, ir_gap: float,
                     ir_contrast: float) -> Tuple[float, float, float]:
    """Validate the infrared options of :func:`render_image`.

    The one check of these options, for SynthReID's parameters and for a
    direct caller of :func:`render_image` alike.

    Args:
        ir_mode (str): One of :data:`IR_MODES`.
        ir_luminance (float): In [0, 1]; non-zero needs ``'dye'``.
        ir_gap (float): A finite number >= 0.
        ir_contrast (float): In (0, 1].

    Returns:
        tuple[float, float, float]: ``ir_luminance``, ``ir_gap`` and
        ``ir_contrast`` as floats.

    Raises:
        ValueError: an option is not a finite number, is out of its
            range, or ``ir_mode`` is unknown; names the option.
    """
    if ir_mode not in IR_MODES:
        raise ValueError(f'ir_mode must be one of {IR_MODES}, got '
                         f'{ir_mode!r}')
    ir_luminance = _as_float('ir_luminance', ir_luminance)
    ir_gap = _as_float('ir_gap', ir_gap)
    ir_contrast = _as_float('ir_contrast', ir_contrast)
    if not 0 <= ir_luminance <= 1:
        raise ValueError(f'ir_luminance must be in [0, 1], got '
                         f'{ir_luminance}')
    if ir_luminance and ir_mode != 'dye':
        raise ValueError('ir_luminance needs ir_mode="dye"')
    if ir_gap < 0:
        raise ValueError(f'ir_gap must be >= 0, got {ir_gap}')
    if not 0 < ir_contrast <= 1:
        raise ValueError(f'ir_contrast must be in (0, 1], got {ir_contrast}')
    return ir_luminance, ir_gap, ir_contrast


def render_image(seed: int,
                 domain: int,
                 pid: int,
                 cam: int,
                 index: int,
                 img_size: Sequence[int] = (128, 64),
                 style: Optional[dict] = None,
                 infrared: bool = False,
                 kind: str = 'person',
                 ir_mode: str = 'hard',
                 ir_luminance: float = 0.0,
                 ir_gap: float = 0.0,
                 ir_contrast: float = 1.0) -> np.ndarray:
    """Render one image.

    Args:
        seed (int): Dataset seed.
        domain (int): Domain index.
        pid (int): Identity (also keys distractors and junk).
        cam (int): Camera number (1-based).
        index (int): Image index within (pid, cam).
        img_size (Sequence[int]): ``(height, width)``.
        style (dict, optional): Domain style (an item of
            :func:`get_domain_styles`); required for visible images.
        infrared (bool): Render the infrared modality.
        kind (str): ``'person'``, ``'distractor'`` (a stray person, badly
            cropped) or ``'junk'`` (a false detection: background or a
            fragment of a body).
        ir_mode (str): ``'hard'`` or ``'dye'``, see
            :func:`identity_attributes`; ``'dye'`` also sharpens infrared
            cameras. Visible images change too (the shape cues).
        ir_luminance (float): ``'dye'`` only, see
            :func:`identity_attributes`.
        ir_gap (float): Infrared sensor differences that a per-modality
            normalisation does not remove, 0 (none) to about 1: the
            sensor's tone curve and noise at its coarser pixel pitch (see
            :func:`_infrared_sensor`). Visible images are unchanged.
        ir_contrast (float): Contrast of infrared images around mid-grey,
            in (0, 1]: ``128 + ir_contrast * (ir - 128)``, after the
            sensor. A per-channel affine change, which a per-modality
            normalisation of the first layer undoes (up to rounding and
            the zero padding at borders) and a shared one does not: a
            modality gap without a loss of cues beyond the grey levels
            merged by rounding. Visible images are unchanged.

    Returns:
        np.ndarray: RGB image of shape (H, W, 3), or (H, W) if infrared,
        dtype uint8.
    """
    if style is None and not infrared:
        raise ValueError('a visible image needs a domain style')
    h, w = img_size
    tag = _IMAGE if kind == 'person' else _EXTRA
    rng = _rng(seed, tag, domain, pid, cam, index)
    ir_luminance, ir_gap, ir_contrast = check_ir_options(
        ir_mode, ir_luminance, ir_gap, ir_contrast)
    dye = dict(ir_mode=ir_mode, ir_luminance=ir_luminance)
    # The cached dicts are shared between images: nothing below writes
    # into them (a view is a new dict; colours and attributes are read).
    camera = _camera_of(seed, domain, cam, infrared, ir_mode)
    img = _background(camera, rng, h, w)
    if kind == 'person':
        ident = _person(seed, domain, pid, ir_mode, ir_luminance)
    else:
        # A stranger: attributes from a stream no identity uses.
        ident = identity_attributes(seed, domain + 1000, pid * 64 + index,
                                    **dye)
    if rng.random() < camera['crowd']:
        # A passer-by behind, partly in the crop (a common ReID nuisance).
        other = identity_attributes(seed, domain + 2000,
                                    (pid * 16 + cam) * 1024 + index, **dye)
        view = _view(camera, other, rng, h, w)
        view['cx'] += w * rng.choice([-1, 1]) * rng.uniform(0.45, 0.7)
        _draw_person(img, other, view, _colours(other, infrared))
    view = _view(camera, ident, rng, h, w)
    if kind != 'person':
        # Bad crops: off-centre, too large or too small.
        view['hp'] *= rng.uniform(1.3, 2.2) if kind == 'junk' else \
            rng.uniform(0.6, 1.4)
        view['cx'] += w * rng.uniform(-0.4, 0.4)
        view['top'] -= view['hp'] * rng.uniform(0, 0.4)
    if kind != 'junk' or rng.random() < 0.6:
        _draw_person(img, ident, view, _colours(ident, infrared))
    if rng.random() < camera['occlusion']:
        # Something between the camera and the lower body.
        y0 = int(h * rng.uniform(0.6, 0.85))
        x0 = int(w * rng.uniform(-0.5, 0.6))
        colour = tuple(int(c) for c in rng.integers(20, 230, 3))
        if infrared:
            colour = (colour[0], ) * 3
        cv2.rectangle(img, (x0, y0), (x0 + int(w * rng.uniform(0.4, 0.9)), h),
                      colour, -1)
    out = _finish_image(img, camera, None if infrared else style, rng)
    if infrared and ir_gap > 0:
        out = _infrared_sensor(out, ir_gap, rng)
    if infrared and ir_contrast != 1:
        scaled = 128 + np.float32(ir_contrast) * (out.astype(np.float32) - 128)
        out = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return out
