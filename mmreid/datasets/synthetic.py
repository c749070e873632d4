"""SynthReID: a procedurally rendered person re-identification dataset.

Identities are combinations of camera-invariant attributes (garment colours
and patterns, body proportions, accessories); cameras add their own
background, viewpoint and lighting; domains add a global image style. The
last of several domains has a deliberately different style (the unseen
target of domain generalization). An infrared rendering keeps shape and
patterns and replaces garment colour by an infrared intensity: following
the dye through a fixed mapping, mixed with the visible luminance
(``ir_mode='dye'``, ``ir_luminance=0.7``: the default, learnable), or drawn
per identity (``'hard'``, the first release).

The data is written on first use in the exact Market-1501 layout (one folder
per domain) or the SYSU-MM01 layout (``modality='vi'``), so the real parsers
and protocols run on it unchanged. Every image is drawn from its own
``numpy.random.Generator(PCG64)`` seeded by (seed, domain, pid, camera,
image), so the bytes do not depend on generation order.
"""
import hashlib
import json
import multiprocessing
import os
import os.path as osp
import shutil
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Dict, List, Optional, Sequence, TextIO, Tuple, Union

import cv2
import numpy as np

from mmreid.registry import DATASETS
from mmreid.utils.atomic import remove_stale_temps, temp_name
from .base_reid_dataset import list_images, repository_root
from .dataset_options import own_metainfo
from .market1501 import Market1501
# Parameters, planning, bookkeeping and rendering live in their own
# modules; the public helpers are re-exported here.
from .synthetic_params import ADDED_TEST_IDS  # noqa: F401
from .synthetic_params import DEFAULT_DOMAINS  # noqa: F401
from .synthetic_params import IR_GAP_VERSION  # noqa: F401
from .synthetic_params import PER_DOMAIN_FIELDS  # noqa: F401
from .synthetic_params import PRESET_FIELDS  # noqa: F401
from .synthetic_params import SYNTHREID_PRESETS  # noqa: F401
from .synthetic_params import SYNTHREID_VERSION  # noqa: F401
from .synthetic_params import VI_DEFAULTS  # noqa: F401
from .synthetic_params import (SYNTHREID_OPTIONS, _resolve_params,
                               preset_overrides)
from .synthetic_plan import SYSU_INFRARED_CAMS  # noqa: F401
from .synthetic_plan import SYSU_VISIBLE_CAMS  # noqa: F401
from .synthetic_plan import (_canary_jobs, _plan_digest, _plan_jobs,
                             control_names)
from .synthetic_render import identity_attributes  # noqa: F401
from .synthetic_render import (_domain_style, domain_names, get_domain_styles,
                               render_image)
from .synthetic_store import (MANIFEST, _generation_lock, _Progress,
                              _read_manifest, _renderer_versions,
                              check_parsed_counts)

#: JPEG quality of every file; changing it changes every file, so it
#: needs a SYNTHREID_VERSION bump (the canary digests are taken before
#: encoding and would not see it).
JPEG_QUALITY = 90


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------
def _encode_image(path: str, img: np.ndarray) -> bytes:
    """The bytes of the JPEG file ``path`` of the RGB (or grey) ``img``."""
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode('.jpg', img,
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f'could not encode {path!r}')
    return buf.tobytes()


def _write_image(path: str, img: np.ndarray) -> None:
    data = _encode_image(path, img)
    with open(path, 'wb') as f:
        f.write(data)


def _job_style(params: dict, job: dict) -> dict:
    """The domain style a job of ``params`` is rendered with."""
    if params['modality'] == 'vi':
        return _domain_style(1, params['seed'], 0)
    domain = job.get('style_domain', job['domain'])
    return _domain_style(params['domains'], params['seed'], domain)


def _render_job(params: dict, job: dict) -> np.ndarray:
    """Render one planned image (a generation job or a stored canary)."""
    options = {
        k: params.get(k, SYNTHREID_OPTIONS[k])
        for k in ('ir_mode', 'ir_luminance', 'ir_gap', 'ir_contrast')
    }
    return render_image(params['seed'], job['domain'], job['pid'], job['cam'],
                        job['index'], tuple(params['img_size']),
                        _job_style(params, job), job['infrared'], job['kind'],
                        **options)


def _pixel_digest(img: np.ndarray) -> str:
    """sha256 of an image's shape and pixels (before JPEG encoding)."""
    digest = hashlib.sha256(str(img.shape).encode())
    digest.update(np.ascontiguousarray(img).tobytes())
    return digest.hexdigest()


def _render_chunk(folder: str, params: dict, jobs: List[dict],
                  canaries: Sequence[str]) -> Tuple[int, Dict[str, str]]:
    """Render and write some jobs (in this process or a worker).

    Returns:
        tuple: The number of images written and the pixel digest of each
        canary among them, by path.
    """
    digests = {}
    for job in jobs:
        # The folders exist (made once by _write_tree): one that vanished
        # (the temporary tree removed by another process) is an error here,
        # not re-created half full.
        path = osp.join(folder, job['path'])
        img = _render_job(params, job)
        if job['path'] in canaries:
            digests[job['path']] = _pixel_digest(img)
        _write_image(path, img)
    return len(jobs), digests


def _write_tree(folder: str,
                params: dict,
                progress: Optional[TextIO] = None,
                num_workers: int = 1) -> dict:
    """Render every file under ``folder``.

    Every image has its own random stream, so the files do not depend on
    the order of rendering or on the number of worker processes. The
    folders are made once, before rendering, and the files are compared
    with the plan at the end, so a tree that lost files while it was
    written (removed by another process) is never returned.

    Args:
        folder (str): Destination (a temporary folder).
        params (dict): Resolved generator parameters.
        progress (TextIO, optional): Stream for the progress.
        num_workers (int): Worker processes (spawned) that render; 1
            renders in this process.

    Returns:
        dict: ``counts`` (per split, as the manifest stores them),
        ``canaries`` (path, keys and pixel digest of one image per domain
        and split) and ``plan_sha256`` (see :func:`_plan_digest`).

    Raises:
        FileNotFoundError: Planned files are not under ``folder`` once
            rendered; names the folder and the files.
    """
    jobs, counts, ids = _plan_jobs(params)
    if ids:
        exp = osp.join(folder, 'SYSU-MM01', 'exp')
        os.makedirs(exp)
        for split, pids in ids.items():
            with open(osp.join(exp, f'{split}_id.txt'), 'w') as f:
                f.write(','.join(str(pid) for pid in pids) + '\n')
    canaries = _canary_jobs(jobs, ids)
    paths = [c['path'] for c in canaries]
    for name in counts:
        if 'bounding_box_train' in counts[name]:
            # Folders that stay empty (the training folder of a control).
            os.makedirs(
                osp.join(folder, name, 'bounding_box_train'), exist_ok=True)
    for sub in sorted({osp.dirname(job['path']) for job in jobs}):
        os.makedirs(osp.join(folder, sub), exist_ok=True)
    counter = _Progress(len(jobs), folder, progress)
    size = max(1, min(256, len(jobs) // (50 * max(1, num_workers))))
    chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    digests: Dict[str, str] = {}
    if num_workers <= 1:
        for chunk in chunks:
            done, found = _render_chunk(folder, params, chunk, paths)
            digests.update(found)
            counter.update(done)
    else:
        # Spawned, not forked: the parent may hold threads (OpenCV, torch).
        context = multiprocessing.get_context('spawn')
        try:
            with ProcessPoolExecutor(num_workers, mp_context=context) as pool:
                futures = [
                    pool.submit(_render_chunk, folder, params, chunk, paths)
                    for chunk in chunks
                ]
                for future in as_completed(futures):
                    done, found = future.result()
                    digests.update(found)
                    counter.update(done)
        except BrokenProcessPool as error:
            raise RuntimeError(
                f'SynthReID: a rendering process died before it finished '
                f'({error}). A spawned process first runs the main script '
                f'again: if yours builds a SynthReID dataset at its top '
                f'level, put that under `if __name__ == "__main__":`, or '
                f'pass num_workers=1 (synth=dict(num_workers=1) in a '
                f'config) to render in this process.') from error
    counter.close()
    problems = _file_problems(
        folder, dict(paths=frozenset(job['path'] for job in jobs), ids=ids))
    if problems:
        raise FileNotFoundError(
            f'SynthReID: the temporary folder {folder!r} does not hold '
            f'every file rendered into it ({"; ".join(problems)}): another '
            f'process or a clean-up removed files while it was written. '
            f'Nothing was renamed into place; generate it again.')
    for canary in canaries:
        canary['sha256'] = digests[canary['path']]
    return dict(
        counts=counts, canaries=canaries, plan_sha256=_plan_digest(jobs, ids))


#: (root, canary path) pairs already warned about in this process.
_WARNED: set = set()
#: What :func:`_planned` found, by parameters (planning the largest
#: folders takes a second; each dataset of a config checks its folder).
_PLANS: Dict[str, dict] = {}
#: The pixel digest of each canary rendered in this process, by parameters
#: and canary job: the renderer's output for a job does not change within
#: a process, and each dataset of a config (and each config a test builds)
#: checks the same canaries of its folder.
_CANARY_DIGESTS: Dict[str, str] = {}


def _planned(params: dict) -> dict:
    """The plan of ``params``, as the checks of a folder need it.

    Returns:
        dict: ``sha256`` (:func:`_plan_digest`), ``canaries``
        (:func:`_canary_jobs`), ``paths`` (every planned file) and ``ids``
        (the SYSU id lists of ``'vi'``, else empty).
    """
    key = json.dumps(params, sort_keys=True)
    if key not in _PLANS:
        jobs, _, ids = _plan_jobs(params)
        _PLANS[key] = dict(
            sha256=_plan_digest(jobs, ids),
            canaries=_canary_jobs(jobs, ids),
            paths=frozenset(job['path'] for job in jobs),
            ids=ids)
    return _PLANS[key]


def _file_problems(root: str, plan: dict) -> List[str]:
    """How the files under ``root`` differ from ``plan``'s.

    Compares the names of the image files (one ``os.walk``: a directory
    listing per folder, no file is read) with ``plan['paths']`` and the
    SYSU id lists with ``plan['ids']``.

    Args:
        root (str): A SynthReID folder (or the temporary one being
            written).
        plan (dict): ``paths`` (every planned image, relative to ``root``)
            and ``ids`` (the SYSU id lists of ``'vi'``, else empty).

    Returns:
        list[str]: One entry per kind of difference (``missing: ...``,
        ``not planned: ...``, ``<file> lists other identities``), each
        naming up to three files; empty if the files are the plan's.
    """
    on_disk = set()
    for folder, _, files in os.walk(root):
        rel = osp.relpath(folder, root).replace(os.sep, '/')
        on_disk.update(f if rel == '.' else f'{rel}/{f}' for f in files
                       if f.lower().endswith('.jpg'))
    problems = []
    for what, paths in (('missing', plan['paths'] - on_disk),
                        ('not planned', on_disk - plan['paths'])):
        if paths:
            shown = sorted(paths)[:3]
            more = f' and {len(paths) - 3} more' if len(paths) > 3 else ''
            problems.append(f'{what}: {", ".join(shown)}{more}')
    for split, pids in plan['ids'].items():
        path = osp.join(root, 'SYSU-MM01', 'exp', f'{split}_id.txt')
        if not osp.isfile(path):
            problems.append(f'missing: {path}')
            continue
        with open(path) as f:
            if f.read() != ','.join(str(pid) for pid in pids) + '\n':
                problems.append(f'{path} lists other identities')
    return problems


def _check_plan(root: str, manifest: dict, plan: dict) -> None:
    """Refuse a folder whose files are not the plan of its parameters.

    The manifest's ``plan_sha256`` must be the digest of the plan that
    this mmreid draws for the same parameters. A manifest written before
    the digest existed has none: the image files under ``root`` (and the
    SYSU id lists) are compared with the plan instead
    (:func:`_file_problems`), which checks every file name and so every
    label the parsers read from it.

    Raises:
        FileExistsError: The plan differs; names ``root``.
    """
    recorded = manifest.get('plan_sha256')
    if recorded is not None:
        if recorded != plan['sha256']:
            raise FileExistsError(
                f'SynthReID: {root!r} was written from another file plan '
                f'than the one this mmreid draws for its parameters (plan '
                f'digest {recorded[:12]} in its manifest, '
                f'{plan["sha256"][:12]} here): its file names, labels or '
                f'splits are not what this generator writes. Delete '
                f'{root!r}; it is regenerated on next use.')
        return
    problems = _file_problems(root, plan)
    if problems:
        raise FileExistsError(
            f'SynthReID: {root!r} does not hold the files that this mmreid '
            f'plans for its parameters ({"; ".join(problems)}). Its '
            f'manifest, written by an older mmreid, has no plan digest, so '
            f'the files were compared with the plan. Delete {root!r}; it is '
            f'regenerated on next use.')


def check_synthreid_files(root: str, manifest: dict) -> None:
    """Refuse a SynthReID folder whose files are not all its manifest's.

    :func:`generate_synthreid` checks a reused folder's parameters, plan
    and canaries, and each dataset the files of the split it parses; this
    compares every image file name (and the SYSU id lists) under ``root``
    with the plan of the manifest's parameters, for a caller that reports
    or uses the whole folder (``generate_synthreid.py`` prints the
    manifest's counts of every folder). A directory listing per folder; no
    file is read.

    Args:
        root (str): The SynthReID folder.
        manifest (dict): Its manifest (as :func:`generate_synthreid`
            returns it).

    Raises:
        FileExistsError: A planned file is missing or an image that was
            not planned is there; names ``root`` and the files.
    """
    problems = _file_problems(root, _planned(manifest['params']))
    if problems:
        raise FileExistsError(
            f'SynthReID: {root!r} does not hold the files its manifest '
            f'lists ({"; ".join(problems)}): files were deleted, added or '
            f'renamed after generation, so its counts are not those of the '
            f'folder. Delete {root!r}; it is regenerated on next use.')


def check_records_planned(root: str, params: dict, data_list: List[dict],
                          dataset: str, split: str) -> None:
    """Refuse parsed records whose image the generator did not plan.

    The counts per folder (:func:`~.synthetic_store.check_parsed_counts`)
    do not see an image deleted and another added in its place (a copy
    under an identity the generator never drew): every record's file must
    be one of the plan of ``params``.

    Args:
        root (str): The SynthReID root the plan's paths are relative to.
        params (dict): The manifest's generator parameters.
        data_list (list[dict]): The parsed records (``img_path``).
        dataset (str): Dataset name for the message.
        split (str): ``'train'`` or ``'test'``.

    Raises:
        RuntimeError: Names the first files that are not planned.
    """
    planned = _planned(params)['paths']
    stray = sorted({
        rel
        for rel in (osp.relpath(r['img_path'], root).replace(os.sep, '/')
                    for r in data_list) if rel not in planned
    })
    if stray:
        more = f' and {len(stray) - 3} more' if len(stray) > 3 else ''
        raise RuntimeError(
            f'SynthReID: {dataset} split {split!r} under {root!r} holds '
            f'images the generator did not write ({", ".join(stray[:3])}'
            f'{more}): images were added or replaced after generation. '
            f'Delete {root!r}; it is regenerated on next use.')


def _canary_digest(params: dict, canary: dict) -> str:
    """:func:`_pixel_digest` of the canary as rendered here (once per
    process for each parameters and job)."""
    job = {k: v for k, v in canary.items() if k != 'sha256'}
    key = json.dumps([params, job], sort_keys=True, default=str)
    if key not in _CANARY_DIGESTS:
        _CANARY_DIGESTS[key] = _pixel_digest(_render_job(params, job))
    return _CANARY_DIGESTS[key]


def _check_canaries(root: str, manifest: dict, plan: dict) -> None:
    """Re-render the manifest's canaries; refuse or warn if they differ.

    With the numpy and OpenCV versions and the CPU features that wrote
    the folder, a canary that renders differently means that the generator
    changed since: the folder is stale and refused. With other versions or
    another class of CPU (AVX-512 or not: numpy's vectorised functions and
    OpenCV's kernels may round differently) the difference may come from
    them: the folder is used as it is, with a warning that its images are
    not the ones this installation renders, so numbers measured on it may
    not match other machines. A manifest written before the CPU was
    recorded (every manifest without ``plan_sha256``) cannot tell the two
    causes apart: with the same versions, a difference is refused too, as
    regenerating the folder settles it. A manifest without
    ``plan_sha256`` (an older mmreid) stores two or three canaries; with
    the same versions the canaries of this release are also compared,
    through the bytes of their files.

    Raises:
        FileExistsError: A canary differs under the same versions and the
            same or an unrecorded CPU.
    """
    params = manifest['params']
    made = manifest.get('renderer') or {}
    now = _renderer_versions()
    same_libs = all(made.get(k) == now[k] for k in ('numpy', 'opencv'))
    cpu_unknown = 'cpu' not in made
    same = same_libs and (cpu_unknown or made['cpu'] == now['cpu'])
    canaries = list(manifest['canaries'])
    if 'plan_sha256' not in manifest and same:
        stored = {c['path'] for c in canaries}
        canaries += [c for c in plan['canaries'] if c['path'] not in stored]
    differ = []
    for canary in canaries:
        if (root, canary['path']) in _WARNED:
            continue
        if 'sha256' in canary:
            if _canary_digest(params, canary) == canary['sha256']:
                continue
        else:
            img = _render_job(params, canary)
            path = osp.join(root, canary['path'])
            with open(path, 'rb') as f:
                if f.read() == _encode_image(path, img):
                    continue
        differ.append(canary['path'])
    if not differ:
        return
    more = f' and {len(differ) - 3} more' if len(differ) > 3 else ''
    shown = ', '.join(repr(p) for p in differ[:3]) + more
    if same and cpu_unknown:
        raise FileExistsError(
            f'SynthReID: {root!r} is stale or was written on another class '
            f'of CPU: the canary image(s) {shown} render differently here '
            f'than when the folder was written, with the same numpy '
            f'{now["numpy"]} and OpenCV {now["opencv"]}; its manifest, '
            f'written by an older mmreid, does not record the CPU, so the '
            f'two causes cannot be told apart. Numbers measured on it '
            f'might not be those of a fresh folder. Delete {root!r}; it is '
            f'regenerated on next use.')
    if same:
        raise FileExistsError(
            f'SynthReID: {root!r} is stale: the canary image(s) {shown} '
            f'render differently here than when the folder was written, '
            f'with the same numpy {now["numpy"]} and OpenCV '
            f'{now["opencv"]} on the same CPU features ({now["cpu"]}), so '
            f'the generator changed since. Numbers '
            f'measured on it would not be those of a fresh folder. Delete '
            f'{root!r}; it is regenerated on next use.')
    _WARNED.update((root, path) for path in differ)
    warnings.warn(
        f'SynthReID: {root!r}: the canary image(s) {shown} render '
        f'differently here than when the folder was written (written with '
        f'numpy {made.get("numpy")}, OpenCV {made.get("opencv")}, CPU '
        f'{made.get("cpu", "not recorded")}; here numpy {now["numpy"]}, '
        f'OpenCV {now["opencv"]}, CPU {now["cpu"]}). The folder is used '
        f'as it is, but its images differ from what this installation '
        f'renders, so results may not match runs elsewhere; delete {root!r} '
        f'to render it here.',
        RuntimeWarning,
        stacklevel=3)


def _check_manifest(root: str, manifest: dict, params: dict) -> dict:
    on_disk = manifest.get('params') or {}
    if on_disk.get('version') != params['version']:
        raise FileExistsError(
            f'SynthReID: {root!r} was generated by format version '
            f'{on_disk.get("version")!r} of the generator; this mmreid '
            f'writes version {params["version"]} (see SYNTHREID_VERSION). '
            f'Delete {root!r} to regenerate it (or choose another '
            f'data_root).')
    if on_disk != params:
        keys = sorted(set(on_disk) | set(params))

        def value(side: dict, key: str):
            # An option absent from a manifest has its first-release value.
            return side.get(key, SYNTHREID_OPTIONS.get(key))

        diff = ', '.join(f'{k}: {value(on_disk, k)!r} on disk, '
                         f'{value(params, k)!r} requested' for k in keys
                         if on_disk.get(k) != params.get(k))
        raise FileExistsError(
            f'SynthReID: {root!r} holds a dataset generated with different '
            f'parameters ({diff}).\n  on disk:   '
            f'{dict(sorted(on_disk.items()))}\n  requested: '
            f'{dict(sorted(params.items()))}\nDelete {root!r} or choose '
            f'another data_root.')
    plan = _planned(params)
    _check_plan(root, manifest, plan)
    _check_canaries(root, manifest, plan)
    return manifest


def _existing(root: str, params: dict) -> Optional[dict]:
    """The checked manifest of ``root``, or None if ``root`` is empty."""
    manifest = _read_manifest(root)
    if manifest is None and osp.isdir(root) and os.listdir(root):
        # Another process may have renamed its tree into place just now;
        # the rename is atomic, so a non-empty root has its manifest.
        manifest = _read_manifest(root)
        if manifest is None:
            raise FileExistsError(
                f'SynthReID: {root!r} is not empty and has no {MANIFEST}; '
                f'delete it or choose another data_root.')
    if manifest is None:
        return None
    return _check_manifest(root, manifest, params)


def _relative_root_notice(given: str, root: str) -> str:
    """The line that says where a relative ``data_root`` is rendered, or
    ``''`` where it is what the user expects.

    A config's ``data_root='data/synthreid-v2.1'`` is read from the current
    directory: run from another folder than the repository root, the
    dataset there is not found and a second copy is rendered where the
    tool runs. Rendering it is what a missing folder gets (the datasets are
    generated on first use); the line says that this happens because of
    the current directory. Nothing is said for an absolute root, or a
    relative one from the root of the checkout that holds mmreid's
    configs (the quick start's first use).

    Args:
        given (str): The root as given (``data_root``).
        root (str): Its absolute path, where it is rendered.

    Returns:
        str: One line, with its newline, or ``''``.
    """
    if osp.isabs(given):
        return ''
    cwd = os.getcwd()
    checkout = repository_root()  # None for an installed package
    if checkout is not None and osp.realpath(checkout) == osp.realpath(cwd):
        return ''
    fix = ('to use a copy elsewhere, stop and give its absolute path as '
           'data_root') if checkout is None else (
               "mmreid's configs give data_root relative to the repository "
               f'root {checkout!r}: to use the copy there, stop and run from '
               'it, or give an absolute data_root')
    return (f'SynthReID: {given!r} was not found relative to the current '
            f'directory {cwd!r}, so it is generated there, in {root!r}; '
            f'{fix}.\n')


def generate_synthreid(root: str,
                       *,
                       domains: Optional[int] = None,
                       size: str = 'small',
                       modality: str = 'visible',
                       seed: int = 0,
                       img_size: Sequence[int] = (128, 64),
                       ir_mode: Optional[str] = None,
                       ir_luminance: Optional[float] = None,
                       ir_gap: float = 0.0,
                       ir_contrast: float = 1.0,
                       style_control: bool = False,
                       num_workers: int = 1,
                       progress: bool = True,
                       **overrides: Union[int, Sequence[int]]) -> dict:
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

    The tree is written to a hidden temporary sibling folder and renamed
    into place, so ``root`` is complete or absent (a ``root`` that is a
    symbolic link is written in its target's folder, through the link).
    Processes that generate the same ``root`` at once (DDP ranks) take
    turns through a lock file: one renders, the others wait and reuse its
    folder. Temporary folders
    left by a killed generation are removed by the next one.

    An existing folder is reused if its manifest has this format version
    (:data:`SYNTHREID_VERSION`), the requested parameters and the file
    plan that this mmreid draws for them (:func:`_check_plan`), and its
    canary images (one per domain and split) render as they did
    (:func:`_check_canaries`): with the numpy/OpenCV versions that wrote
    it, a difference is refused (the generator changed); with others, a
    warning names both. The datasets compare the manifest's per-split
    counts with the files they parse.

    Args:
        root (str): Destination folder.
        domains (int, optional): Number of domains. Defaults to 4 for
            ``'visible'``; ``'vi'`` renders one.
        size (str): Preset in :data:`SYNTHREID_PRESETS`: ``'tiny'`` (tests),
            ``'small'`` or ``'demo'``.
        modality (str): ``'visible'`` or ``'vi'`` (visible-infrared).
        seed (int): Seed; the same parameters give byte-identical files.
        img_size (Sequence[int]): ``(height, width)`` of every image.
        ir_mode (str, optional): ``'vi'``: ``'dye'`` (the default,
            learnable: intensities follow the dyes through a fixed
            mapping; stripes, prints and IR cameras that survive 64x32) or
            ``'hard'`` (the first release: infrared intensities independent
            of the dyes, small shape cues). See :func:`identity_attributes`.
        ir_luminance (float, optional): ``'vi'`` with ``ir_mode='dye'``:
            weight of the visible luminance in the infrared intensity (0-1,
            higher is easier). Defaults to 0.7 (see :data:`VI_DEFAULTS`).
        ir_gap (float): ``'vi'``: infrared sensor differences that a
            per-modality stem does not remove (the sensor's tone curve and
            noise at its coarser pixel pitch), 0 (none) to about 1 (a
            finite number >= 0; larger values are accepted).
        ir_contrast (float): ``'vi'``: contrast of the infrared images
            around mid-grey, in (0, 1] (1: unchanged). A per-channel affine
            change: a modality gap that per-modality normalisation of the
            first layer removes and shared normalisation does not.
        style_control (bool): ``'visible'``: also write the style-only
            controls ``d<last>-d0style`` and ``d0-d<last>style`` (test
            splits, see :func:`control_names`).
        num_workers (int): Processes that render (spawned; about a second
            each to start). The files do not depend on it.
        progress (bool): Show the progress while rendering.
        **overrides: Preset fields to override: ``num_ids_train``,
            ``num_ids_test`` (``'visible'``: an int or one count per
            domain), ``num_ids_val`` (vi), ``num_cams`` (visible),
            ``imgs_per_cam``, ``num_distractors`` and ``num_junk``
            (visible); and ``num_ids_test_added`` (default 0; visible: an
            int or one count per domain): test identities added to the
            drawn ones without changing any other file (see
            :data:`ADDED_TEST_IDS`).

    Returns:
        dict: The manifest: ``params``, ``size``, ``domains`` (per-domain
        style, see :func:`get_domain_styles`), ``counts``, ``canaries``
        and ``renderer`` (numpy and OpenCV versions that wrote it).

    Raises:
        ValueError: A bad argument (see :func:`_resolve_params`), before
            anything is written.
        FileExistsError: ``root`` exists with another format version,
            other parameters, another file plan or, under the same
            numpy/OpenCV, canaries that render differently; or is a
            non-empty folder that is not a SynthReID dataset, or is not a
            folder.
        FileNotFoundError: Files of the temporary folder were removed
            while it was rendered; nothing is renamed into place.
    """
    options = dict(
        ir_mode=ir_mode,
        ir_luminance=ir_luminance,
        ir_gap=ir_gap,
        ir_contrast=ir_contrast,
        style_control=style_control)
    params = _resolve_params(size, modality, domains, seed, img_size,
                             overrides, options)
    given, root = root, osp.abspath(root)
    manifest = _existing(root, params)
    if manifest is not None:
        return manifest
    if getattr(multiprocessing.current_process(), '_inheriting', False):
        # A rendering process spawned by a generation is importing the
        # user's main script, which generates at its top level: it would
        # wait forever for the lock its parent holds.
        raise RuntimeError(
            f'SynthReID: {root!r} is being generated by the parent of this '
            f'process, which is starting up and re-running the main '
            f'script; put the code that builds the dataset under '
            f'`if __name__ == "__main__":` (or use num_workers=1).')
    # A root that is a symbolic link (to a folder on a larger disk) is
    # written in its target's folder: the tree is renamed onto the target,
    # not onto the link, and the lock and temporary folder sit beside it.
    target = osp.realpath(root)
    if osp.exists(target) and not osp.isdir(target):
        where = '' if target == root else f' (a link to {target!r})'
        raise FileExistsError(
            f'SynthReID: {root!r}{where} is not a folder; give a folder '
            f'(empty or absent) as data_root.')
    parent, base = osp.split(target)
    os.makedirs(parent, exist_ok=True)
    with _generation_lock(parent, base) as locked:
        # A process that held the lock before may have written it.
        manifest = _existing(root, params)
        if manifest is not None:
            return manifest
        if locked:
            # No process of this version, on any host, writes one now; a
            # live process of this host (a release without the lock) keeps
            # its own.
            remove_stale_temps(parent, base, folders=True, other_hosts=True)
        tmp = osp.join(parent, temp_name(base))
        if progress:
            sys.stdout.write(_relative_root_notice(given, root))
        try:
            os.makedirs(tmp)
            try:
                written = _write_tree(
                    tmp,
                    params,
                    progress=sys.stdout if progress else None,
                    num_workers=int(num_workers))
            except FileNotFoundError as error:
                if osp.isdir(tmp):
                    raise
                raise FileNotFoundError(
                    f'SynthReID: the temporary folder {tmp!r} of {root!r} '
                    f'was removed while it was rendered (by another '
                    f'process or a clean-up of hidden folders); nothing '
                    f'was renamed into place. Generate it again.') from error
            manifest = dict(
                params=params,
                size=size,
                domains=get_domain_styles(params['domains'], params['seed']),
                controls=[
                    dict(name=name, identities=f'd{ids}', style=f'd{look}')
                    for name, ids, look in control_names(params['domains'])
                ] if style_control else [],
                counts=written['counts'],
                canaries=written['canaries'],
                plan_sha256=written['plan_sha256'],
                renderer=_renderer_versions())
            with open(osp.join(tmp, MANIFEST), 'w') as f:
                json.dump(manifest, f, indent=2, sort_keys=True)
            # Round-trip through JSON so the result equals a later read.
            manifest = json.loads(json.dumps(manifest))
            try:
                # Atomic; fails if another process put a non-empty root
                # first (only where the file system has no locks).
                os.replace(tmp, target)
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
            (``'d2'``, or a style-only control such as ``'d3-d0style'``,
            test split only, see :func:`control_names`).
        split (str): ``'train'`` or ``'test'`` (query then gallery).
        num_domains (int): Number of domains to generate.
        size (str): Preset, see :data:`SYNTHREID_PRESETS`.
        seed (int): Generation seed.
        img_size (Sequence[int]): ``(height, width)`` of the images.
        style_control (bool): Also generate the style-only controls.
        num_workers (int): Processes that render the folder (it does not
            change the files).
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

    #: Cameras are configurable (2-9), so no fixed upper bound.
    NUM_CAMS = None

    def __init__(self,
                 data_root: str,
                 domain: Union[int, str] = 0,
                 split: str = 'train',
                 num_domains: int = 4,
                 size: str = 'small',
                 seed: int = 0,
                 img_size: Sequence[int] = (128, 64),
                 style_control: bool = False,
                 num_workers: int = 1,
                 overrides: Optional[dict] = None,
                 **kwargs) -> None:
        overrides = preset_overrides(overrides, kwargs)
        # Fail on bad generator arguments now, not at the first access.
        _resolve_params(size, 'visible', num_domains, seed, img_size,
                        overrides, dict(style_control=style_control))
        names = domain_names(num_domains)
        controls = [c[0] for c in control_names(num_domains)]
        if isinstance(domain, str):
            if domain in controls and not style_control:
                raise ValueError(f'SynthReID domain {domain!r} is a style-'
                                 f'only control: set style_control=True')
            if domain in controls and split != 'test':
                raise ValueError(f'the style-only control {domain!r} has a '
                                 f'test split only, got split={split!r}')
            if domain not in names + (controls if style_control else []):
                raise ValueError(f'unknown SynthReID domain {domain!r}; '
                                 f'num_domains={num_domains} gives {names}'
                                 f' (and the controls {controls} with '
                                 f'style_control=True)')
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
            style_control=style_control,
            num_workers=num_workers,
            **overrides)
        kwargs['metainfo'] = own_metainfo(
            type(self).__name__, dict(domain=self.domain),
            kwargs.get('metainfo'))
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
        control = next((c for c in manifest.get('controls', [])
                        if c['name'] == self.domain), None)
        look = control['style'] if control else self.domain
        style = next(s for s in manifest['domains'] if s['name'] == look)
        self._metainfo['domain_style'] = style['look']
        data_list = super().load_data_list()
        self.check_counts(manifest, data_list)
        return data_list

    def check_counts(self, manifest: dict, data_list: List[dict]) -> None:
        """Compare the parsed split with the manifest's counts.

        Both the image files of each folder and the records the parser
        keeps (junk dropped) must be what the generator wrote, and every
        record's file one it planned, so a deleted or stray image is an
        error, not a silently different benchmark.
        """
        counts = manifest['counts'][self.domain]
        roles = ('train', ) if self.split == 'train' else ('query', 'gallery')
        found, expected = {}, {}
        for role in roles:
            folder = self.FOLDERS[role]
            listed = counts[folder]
            found[f'{folder} files'] = len(
                list_images(osp.join(self.data_root, folder)))
            expected[f'{folder} files'] = listed['images']
            found[f'{role} records'] = sum(r['role'] == role
                                           for r in data_list)
            dropped = listed['junk']
            if role == 'train':
                dropped += listed['distractors']
            expected[f'{role} records'] = listed['images'] - dropped
        check_parsed_counts(self.synth_root, self.dataset_name, self.split,
                            found, expected)
        check_records_planned(self.synth_root, manifest['params'], data_list,
                              self.dataset_name, self.split)
