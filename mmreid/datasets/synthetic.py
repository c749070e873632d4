"""SynthReID: a procedurally rendered person re-identification dataset.

Identities are combinations of camera-invariant attributes (garment colours
and patterns, body proportions, accessories); cameras add their own
background, viewpoint and lighting; domains add a global image style. The
last of several domains has a deliberately different style (the unseen
target of domain generalization). An infrared rendering keeps shape and
patterns but replaces garment colour by a per-identity emissivity.

The data is written on first use in the exact Market-1501 layout (one folder
per domain) or the SYSU-MM01 layout (``modality='vi'``), so the real parsers
and protocols run on it unchanged. Every image is drawn from its own
``numpy.random.Generator(PCG64)`` seeded by (seed, domain, pid, camera,
image), so the bytes do not depend on generation order.
"""
import json
import os
import os.path as osp
import shutil
import uuid
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from mmreid.registry import DATASETS
from .market1501 import Market1501

#: Bump whenever the rendering changes, so that stale folders are refused.
SYNTHREID_VERSION = 1
MANIFEST = 'synthreid.json'
JPEG_QUALITY = 90

#: Named sizes. ``num_ids_*`` and ``num_distractors``/``num_junk`` count per
#: domain; ``imgs_per_cam`` is the number of images of an identity in each
#: camera it appears in. ``num_ids_val`` is used by ``modality='vi'`` only
#: (SYSU-MM01 lists train and val ids, both used for training).
SYNTHREID_PRESETS: Dict[str, dict] = dict(
    tiny=dict(
        num_ids_train=4,
        num_ids_test=3,
        num_ids_val=1,
        num_cams=3,
        imgs_per_cam=2,
        num_distractors=2,
        num_junk=2),
    small=dict(
        num_ids_train=16,
        num_ids_test=12,
        num_ids_val=4,
        num_cams=4,
        imgs_per_cam=2,
        num_distractors=6,
        num_junk=4),
    demo=dict(
        num_ids_train=150,
        num_ids_test=100,
        num_ids_val=30,
        num_cams=4,
        imgs_per_cam=3,
        num_distractors=40,
        num_junk=20),
)
SYSU_VISIBLE_CAMS = (1, 2, 4, 5)
SYSU_INFRARED_CAMS = (3, 6)

# Keys of the per-purpose random streams (first entropy word after seed).
_STYLE, _CAMERA, _IDENTITY, _IMAGE, _SPLIT, _EXTRA = range(1, 7)

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


def identity_attributes(seed: int, domain: int, pid: int) -> dict:
    """Camera-invariant attributes of one identity.

    Args:
        seed (int): Dataset seed.
        domain (int): Domain index (identities of different domains are
            different people even where pid numbers coincide).
        pid (int): Original pid.

    Returns:
        dict: ``colour`` (part -> RGB), ``ir`` (part -> infrared intensity,
        independent of the colour), ``pattern``, ``sleeves``, ``lower``,
        accessories (``hat``, ``bag``, ``backpack``, ``scarf``,
        ``long_hair``) and body proportions (``height``, ``width``,
        ``head``, ``leg``) in units of the figure height.
    """
    rng = _rng(seed, _IDENTITY, domain, pid)
    n = len(_PALETTE)
    upper = rng.choice(n, p=_UPPER_P / _UPPER_P.sum())
    lower = rng.choice(n, p=_LOWER_P / _LOWER_P.sum())
    # Pattern colours come from a few common ones (white, black, grey, red,
    # navy) and differ from the garment so the pattern shows.
    second = rng.choice([c for c in (1, 0, 2, 7, 4) if c != upper])
    colour = dict(
        upper=_jitter_colour(rng, _PALETTE[upper]),
        pattern=_jitter_colour(rng, _PALETTE[second]),
        lower=_jitter_colour(rng, _PALETTE[lower]),
        shoes=_jitter_colour(rng, _PALETTE[rng.choice([0, 1, 3, 15])]),
        skin=_jitter_colour(rng, _SKIN[rng.integers(len(_SKIN))]),
        hair=_jitter_colour(rng, _HAIR[rng.integers(len(_HAIR))]),
        hat=_jitter_colour(rng, _PALETTE[rng.integers(n)]),
        bag=_jitter_colour(rng, _PALETTE[rng.integers(n)]),
        backpack=_jitter_colour(rng, _PALETTE[rng.integers(n)]),
        scarf=_jitter_colour(rng, _PALETTE[rng.integers(n)]))
    # Infrared intensity is an emissivity drawn independently of the colour
    # (a black shirt can be bright, a white one dark); skin is warm.
    ir = {k: int(rng.integers(30, 200)) for k in colour}
    ir['skin'] = int(rng.integers(215, 250))
    # Keep the pattern visible in infrared too.
    if abs(ir['pattern'] - ir['upper']) < 60:
        ir['pattern'] = ir['upper'] + (70 if ir['upper'] < 128 else -70)
    bag = rng.random() < 0.2
    return dict(
        colour=colour,
        ir=ir,
        pattern=_PATTERNS[rng.choice(6, p=_PATTERN_P / _PATTERN_P.sum())],
        period=float(rng.uniform(0.045, 0.075)),
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


def _camera(seed: int, domain: int, cam: int, infrared: bool) -> dict:
    """Background, viewpoint and lighting of one camera."""
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
    return dict(
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
    if pattern == 'logo' and facing != 'front':
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
            ellipse(0.02, sh + 0.09, 0.035, 0.035, c['pattern'])
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


def render_image(seed: int,
                 domain: int,
                 pid: int,
                 cam: int,
                 index: int,
                 img_size: Sequence[int] = (128, 64),
                 style: Optional[dict] = None,
                 infrared: bool = False,
                 kind: str = 'person') -> np.ndarray:
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

    Returns:
        np.ndarray: RGB image of shape (H, W, 3), or (H, W) if infrared,
        dtype uint8.
    """
    if style is None and not infrared:
        raise ValueError('a visible image needs a domain style')
    h, w = img_size
    tag = _IMAGE if kind == 'person' else _EXTRA
    rng = _rng(seed, tag, domain, pid, cam, index)
    camera = _camera(seed, domain, cam, infrared)
    img = _background(camera, rng, h, w)
    if kind == 'person':
        ident = identity_attributes(seed, domain, pid)
    else:
        # A stranger: attributes from a stream no identity uses.
        ident = identity_attributes(seed, domain + 1000, pid * 64 + index)
    if rng.random() < camera['crowd']:
        # A passer-by behind, partly in the crop (a common ReID nuisance).
        other = identity_attributes(seed, domain + 2000,
                                    (pid * 16 + cam) * 1024 + index)
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
    return _finish_image(img, camera, None if infrared else style, rng)


# ---------------------------------------------------------------------------
# Dataset plans: which file shows which (pid, camera, image)
# ---------------------------------------------------------------------------
def _resolve_params(size: str, modality: str, domains: Optional[int],
                    seed: int, img_size: Sequence[int],
                    overrides: dict) -> dict:
    if size not in SYNTHREID_PRESETS:
        raise ValueError(f'unknown SynthReID size {size!r}; choose from '
                         f'{sorted(SYNTHREID_PRESETS)}')
    if modality not in ('visible', 'vi'):
        raise ValueError(f'modality must be "visible" or "vi", got '
                         f'{modality!r}')
    params = dict(SYNTHREID_PRESETS[size])
    if modality == 'vi':
        if domains not in (None, 1):
            raise ValueError('modality="vi" renders a single domain; got '
                             f'domains={domains}')
        domains = 1
        # SYSU-MM01 has six fixed cameras and no distractor files.
        for key in ('num_cams', 'num_distractors', 'num_junk'):
            params.pop(key)
    else:
        params.pop('num_ids_val')
    unknown = set(overrides) - set(params)
    if unknown:
        raise TypeError(f'unknown SynthReID parameter(s) {sorted(unknown)} '
                        f'for modality={modality!r}; known: '
                        f'{sorted(params)}')
    params.update({k: int(v) for k, v in overrides.items()})
    if modality == 'visible' and not 2 <= params['num_cams'] <= 9:
        # Two cameras at least: every identity is seen by two. At most
        # nine: Market-1501 names have a one-digit camera.
        raise ValueError(f'num_cams must be in [2, 9], got '
                         f'{params["num_cams"]}')
    domains = 4 if domains is None else int(domains)
    h, w = (int(s) for s in img_size)
    if domains < 1 or min(h, w) < 16:
        raise ValueError(f'need domains >= 1 and images of at least 16 px, '
                         f'got domains={domains}, img_size={(h, w)}')
    if min(v for k, v in params.items() if k.startswith('num_ids')) < 1 or \
            params['imgs_per_cam'] < 1:
        raise ValueError(f'identity and image counts must be >= 1: {params}')
    return dict(
        version=SYNTHREID_VERSION,
        modality=modality,
        domains=domains,
        seed=int(seed),
        img_size=[h, w],
        **params)


def _allocate_pids(rng: np.random.Generator, first: int, last: int,
                   counts: Sequence[int]) -> List[List[int]]:
    """Split distinct random pids in [first, last] into groups."""
    total = sum(counts)
    if last - first + 1 < total:
        raise ValueError(f'{total} identities do not fit in 4-digit pids')
    pids = first + rng.choice(last - first + 1, total, replace=False)
    groups, start = [], 0
    for n in counts:
        groups.append(sorted(int(p) for p in pids[start:start + n]))
        start += n
    return groups


def _plan_market(p: dict, d: int) -> List[tuple]:
    """Files of one Market-style domain.

    Returns:
        list[tuple]: ``(relative path, pid, cam, index, kind)``.
    """
    seed, ncam, nimg = p['seed'], p['num_cams'], p['imgs_per_cam']
    # Domains own disjoint pid ranges, so identities (and pid numbers) of
    # different domains never coincide.
    block = 9999 // p['domains']
    rng = _rng(seed, _SPLIT, d)
    train, test = _allocate_pids(rng, d * block + 1, (d + 1) * block,
                                 [p['num_ids_train'], p['num_ids_test']])
    plan = []

    def name(pid, cam, seq, frame, box):
        # Junk keeps Market's unpadded '-1'.
        prefix = f'{pid:04d}' if pid >= 0 else str(pid)
        return f'{prefix}_c{cam}s{seq}_{frame:06d}_{box:02d}.jpg'

    def fields(pid, cam, count):
        # Frames of one (pid, camera) track increase along a sequence.
        r = _rng(seed, _SPLIT, d, pid, cam)
        seq, frame = int(r.integers(1, 7)), int(r.integers(1, 150000))
        out = []
        for _ in range(count):
            out.append((seq, frame, int(r.integers(0, 9))))
            frame += int(r.integers(5, 60))
        return out

    for role, pids in (('train', train), ('test', test)):
        for pid in pids:
            r = _rng(seed, _SPLIT, d, pid)
            cams = sorted(
                int(c) + 1 for c in r.choice(
                    ncam, int(r.integers(2, ncam + 1)), replace=False))
            # One query image per camera (Market style); with one image
            # per camera one camera is kept for the gallery, so that every
            # query has a match seen by another camera.
            qcams = set(cams) if nimg >= 2 else set(
                r.choice(cams, len(cams) - 1, replace=False))
            for cam in cams:
                for i, f in enumerate(fields(pid, cam, nimg)):
                    if role == 'train':
                        folder = 'bounding_box_train'
                    elif i == 0 and cam in qcams:
                        folder = 'query'
                    else:
                        folder = 'bounding_box_test'
                    plan.append((f'{folder}/{name(pid, cam, *f)}', pid, cam, i,
                                 'person'))
    for kind, pid, count in (('distractor', 0, p['num_distractors']),
                             ('junk', -1, p['num_junk'])):
        for i in range(count):
            r = _rng(seed, _SPLIT, d, pid, 10**6 + i)
            cam = int(r.integers(1, ncam + 1))
            # The index in the frame number keeps names unique.
            f = (int(r.integers(1, 7)), i * 1000 + int(r.integers(0, 1000)),
                 int(r.integers(0, 9)))
            plan.append(
                (f'bounding_box_test/{name(pid, cam, *f)}', pid, cam, i, kind))
    return plan


def _plan_sysu(p: dict) -> Tuple[List[tuple], Dict[str, List[int]]]:
    """Files and id lists of the SYSU-MM01-style variant."""
    seed, nimg = p['seed'], p['imgs_per_cam']
    rng = _rng(seed, _SPLIT, 0)
    counts = [p['num_ids_train'], p['num_ids_val'], p['num_ids_test']]
    train, val, test = _allocate_pids(rng, 1, max(533, sum(counts)), counts)
    plan = []
    for pid in sorted(train + val + test):
        r = _rng(seed, _SPLIT, 0, pid)
        # Everyone is seen by at least two visible and one infrared camera.
        vis = r.choice(SYSU_VISIBLE_CAMS, int(r.integers(2, 5)), replace=False)
        ir = r.choice(SYSU_INFRARED_CAMS, int(r.integers(1, 3)), replace=False)
        for cam in sorted(int(c) for c in np.concatenate([vis, ir])):
            for i in range(nimg):
                plan.append((f'SYSU-MM01/cam{cam}/{pid:04d}/{i + 1:04d}.jpg',
                             pid, cam, i, 'person'))
    return plan, dict(train=train, val=val, test=test)


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------
def _write_image(path: str, img: np.ndarray) -> None:
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode('.jpg', img,
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f'could not encode {path!r}')
    with open(path, 'wb') as f:
        f.write(buf.tobytes())


def _write_tree(folder: str, params: dict) -> dict:
    """Render every file under ``folder``; returns the per-split counts."""
    h, w = params['img_size']
    seed = params['seed']
    counts: dict = {}
    if params['modality'] == 'vi':
        plan, ids = _plan_sysu(params)
        style = get_domain_styles(1, seed)[0]
        exp = osp.join(folder, 'SYSU-MM01', 'exp')
        os.makedirs(exp)
        for split, pids in ids.items():
            with open(osp.join(exp, f'{split}_id.txt'), 'w') as f:
                f.write(','.join(str(pid) for pid in pids) + '\n')
        jobs = [(rel, 0, pid, cam, i, kind, style, cam in SYSU_INFRARED_CAMS)
                for rel, pid, cam, i, kind in plan]
        counts['SYSU-MM01'] = dict(
            ids={
                k: len(v)
                for k, v in ids.items()
            },
            visible=sum(not j[-1] for j in jobs),
            infrared=sum(j[-1] for j in jobs))
    else:
        styles = get_domain_styles(params['domains'], seed)
        jobs = []
        for d, style in enumerate(styles):
            plan = _plan_market(params, d)
            for rel, pid, cam, i, kind in plan:
                jobs.append((f'{style["name"]}/{rel}', d, pid, cam, i, kind,
                             style, False))
            split_counts = {}
            for rel, pid, *_ in plan:
                split = rel.split('/')[0]
                c = split_counts.setdefault(split, dict(images=0, ids=set()))
                c['images'] += 1
                c['ids'].add(pid)
            counts[style['name']] = {
                k: dict(images=v['images'], ids=len(v['ids'] - {0, -1}))
                for k, v in sorted(split_counts.items())
            }
    made = set()
    for rel, d, pid, cam, i, kind, style, infrared in jobs:
        path = osp.join(folder, rel)
        parent = osp.dirname(path)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        _write_image(
            path,
            render_image(seed, d, pid, cam, i, (h, w), style, infrared, kind))
    return counts


def _read_manifest(root: str) -> Optional[dict]:
    path = osp.join(root, MANIFEST)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _check_manifest(root: str, manifest: dict, params: dict) -> dict:
    on_disk = manifest.get('params') or {}
    if on_disk != params:
        keys = sorted(set(on_disk) | set(params))
        diff = ', '.join(f'{k}: {on_disk.get(k)!r} on disk, '
                         f'{params.get(k)!r} requested' for k in keys
                         if on_disk.get(k) != params.get(k))
        raise FileExistsError(
            f'SynthReID: {root!r} holds a dataset generated with different '
            f'parameters ({diff}).\n  on disk:   '
            f'{dict(sorted(on_disk.items()))}\n  requested: '
            f'{dict(sorted(params.items()))}\nDelete {root!r} or choose '
            f'another data_root.')
    return manifest


def generate_synthreid(root: str,
                       *,
                       domains: Optional[int] = None,
                       size: str = 'small',
                       modality: str = 'visible',
                       seed: int = 0,
                       img_size: Sequence[int] = (128, 64),
                       **overrides: int) -> dict:
    """Write a SynthReID dataset under ``root`` unless it is already there.

    Layouts::

        modality='visible' (Market-1501 layout, one folder per domain)
          <root>/d0/bounding_box_train/0002_c1s1_000451_03.jpg ...
          <root>/d0/bounding_box_test/   (with 0000_* distractors and
                                          -1_* junk)
          <root>/d0/query/
          <root>/d1/ ...                 (the last domain: unseen style)
        modality='vi' (SYSU-MM01 layout; cams 1, 2, 4, 5 visible, 3, 6 IR)
          <root>/SYSU-MM01/cam1/0001/0001.jpg ...
          <root>/SYSU-MM01/exp/{train,val,test}_id.txt
        <root>/synthreid.json            (the manifest)

    The tree is written to a temporary sibling folder and renamed into
    place, so ``root`` is complete or absent. When several processes (DDP
    ranks) generate at once, the first rename wins and the others discard
    their copy.

    Args:
        root (str): Destination folder.
        domains (int, optional): Number of domains. Defaults to 4 for
            ``'visible'``; ``'vi'`` renders one.
        size (str): Preset in :data:`SYNTHREID_PRESETS`: ``'tiny'`` (tests),
            ``'small'`` or ``'demo'``.
        modality (str): ``'visible'`` or ``'vi'`` (visible-infrared).
        seed (int): Seed; the same parameters give byte-identical files.
        img_size (Sequence[int]): ``(height, width)`` of every image.
        **overrides: Preset fields to override: ``num_ids_train``,
            ``num_ids_test``, ``num_ids_val`` (vi), ``num_cams`` (visible),
            ``imgs_per_cam``, ``num_distractors`` and ``num_junk``
            (visible).

    Returns:
        dict: The manifest: ``params``, ``size``, ``domains`` (per-domain
        style, see :func:`get_domain_styles`) and ``counts``.

    Raises:
        FileExistsError: ``root`` exists with other parameters, or is a
            non-empty folder that is not a SynthReID dataset.
    """
    params = _resolve_params(size, modality, domains, seed, img_size,
                             overrides)
    root = osp.abspath(root)
    manifest = _read_manifest(root)
    if manifest is None and osp.isdir(root) and os.listdir(root):
        # Another process may have renamed its tree into place just now;
        # the rename is atomic, so a non-empty root has its manifest.
        manifest = _read_manifest(root)
        if manifest is None:
            raise FileExistsError(
                f'SynthReID: {root!r} is not empty and has no {MANIFEST}; '
                f'delete it or choose another data_root.')
    if manifest is not None:
        return _check_manifest(root, manifest, params)
    parent, base = osp.split(root)
    os.makedirs(parent, exist_ok=True)
    tmp = osp.join(parent, f'.{base}.tmp-{os.getpid()}-{uuid.uuid4().hex}')
    try:
        os.makedirs(tmp)
        counts = _write_tree(tmp, params)
        styles = (
            get_domain_styles(params['domains'], seed)
            if modality == 'visible' else get_domain_styles(1, seed))
        manifest = dict(
            params=params, size=size, domains=styles, counts=counts)
        with open(osp.join(tmp, MANIFEST), 'w') as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
        try:
            # Atomic; fails if another process put a non-empty root first.
            os.replace(tmp, root)
        except OSError:
            winner = _read_manifest(root)
            if winner is None:
                raise
            return _check_manifest(root, winner, params)
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


# ---------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------
@DATASETS.register_module()
class SynthReID(Market1501):
    """One domain of the SynthReID dataset, generated on first use.

    Each domain folder has the exact Market-1501 layout and is parsed by
    :class:`Market1501`, so pid ``-1`` junk is dropped, pid ``0``
    distractors stay in the gallery and the Market matching rules apply.

    Example:
        >>> train = SynthReID('data/synthreid', domain=0, split='train')
        >>> target = SynthReID('data/synthreid', domain=-1, split='test')

    Args:
        data_root (str): Root of the generated data (holds ``d0``, ...).
        domain (int | str): Domain to read, by index (negative counts from
            the end; ``-1`` is the unseen-style domain) or by name
            (``'d2'``).
        split (str): ``'train'`` or ``'test'`` (query then gallery).
        num_domains (int): Number of domains to generate.
        size (str): Preset, see :data:`SYNTHREID_PRESETS`.
        seed (int): Generation seed.
        img_size (Sequence[int]): ``(height, width)`` of the images.
        overrides (dict, optional): Preset fields to override (see
            :func:`generate_synthreid`). They may also be passed as keyword
            arguments.
        **kwargs: See :class:`BaseReIDDataset`.
    """

    METAINFO = dict(dataset_name='synthreid')
    LAYOUT = ('<data_root>/d0/  (Market-1501 layout, generated on first '
              'use)\n'
              '  bounding_box_train/   0002_c1s1_000451_03.jpg ...\n'
              '  bounding_box_test/    (pid 0 distractors, pid -1 junk)\n'
              '  query/')

    def __init__(self,
                 data_root: str,
                 domain: Union[int, str] = 0,
                 split: str = 'train',
                 num_domains: int = 4,
                 size: str = 'small',
                 seed: int = 0,
                 img_size: Sequence[int] = (128, 64),
                 overrides: Optional[dict] = None,
                 **kwargs) -> None:
        overrides = dict(overrides or {})
        for key in list(kwargs):
            if key in SYNTHREID_PRESETS['small']:
                overrides[key] = kwargs.pop(key)
        names = domain_names(num_domains)
        if isinstance(domain, str):
            if domain not in names:
                raise ValueError(f'unknown SynthReID domain {domain!r}; '
                                 f'num_domains={num_domains} gives {names}')
            self.domain = domain
        else:
            if not -num_domains <= domain < num_domains:
                raise ValueError(f'domain index {domain} out of range for '
                                 f'num_domains={num_domains}')
            self.domain = names[domain]
        self.synth_root = data_root
        self.generator_cfg = dict(
            domains=num_domains,
            size=size,
            seed=seed,
            img_size=tuple(img_size),
            **overrides)
        # Fail on bad generator arguments now, not at the first access.
        _resolve_params(size, 'visible', num_domains, seed, img_size,
                        overrides)
        super().__init__(
            data_root=osp.join(data_root, self.domain), split=split, **kwargs)
        self._set_name()

    def _set_name(self) -> None:
        # A name per domain keeps multi-source bookkeeping apart; a name
        # given by the user through ``metainfo`` wins.
        if self._metainfo.get('dataset_name') == 'synthreid':
            self._metainfo['dataset_name'] = f'synthreid-{self.domain}'
        self._metainfo['domain'] = self.domain

    def load_data_list(self) -> List[dict]:
        manifest = generate_synthreid(self.synth_root, **self.generator_cfg)
        self._set_name()
        style = next(s for s in manifest['domains']
                     if s['name'] == self.domain)
        self._metainfo['domain_style'] = style['look']
        return super().load_data_list()
