"""Install mmreid.

``pip install -e .`` links (and ``pip install .`` copies) ``configs/``,
``tools/`` and ``model-index.yml`` into ``mmreid/.mim`` so that ``mim`` and
:func:`mmreid.apis.get_model` find them in an installed package.

An editable (PEP 660) install puts no ``mmreid`` folder into site-packages,
only the metadata and an import hook, so ``mim`` would not find
``<site-packages>/mmreid/.mim``: see :class:`EditableWheelWithMim`.
"""
import os
import os.path as osp
import re
import shutil
import sys
from importlib import metadata

from setuptools import find_packages, setup

try:  # setuptools >= 64 builds editable installs as PEP 660 wheels
    from setuptools.command.editable_wheel import editable_wheel
except ImportError:  # older setuptools: `setup.py develop`, an egg-link
    editable_wheel = None

HERE = osp.dirname(osp.abspath(__file__))


def read_version():
    with open(osp.join(HERE, 'mmreid', 'version.py'), encoding='utf-8') as f:
        match = re.search(r"__version__ = '([^']+)'", f.read())
    return match.group(1)


def parse_requirements(fname):
    """Read requirement lines, following ``-r`` includes."""
    requirements = []
    with open(osp.join(HERE, fname), encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                requirements += parse_requirements(
                    osp.join(osp.dirname(fname), line[3:].strip()))
            else:
                requirements.append(line)
    return requirements


def mm_requirements():
    """mmengine and mmpretrain, plus mmcv-lite when no mmcv is installed.

    Full ``mmcv`` and ``mmcv-lite`` both provide the ``mmcv`` package;
    installing one over the other overwrites files, so a user who already has
    a full mmcv build keeps it.
    """
    requirements = []
    for req in parse_requirements('requirements/mminstall.txt'):
        if req.startswith('mmcv'):
            installed = set()
            for dist in ('mmcv', 'mmcv-full', 'mmcv-lite'):
                try:
                    metadata.version(dist)
                    installed.add(dist)
                except metadata.PackageNotFoundError:
                    pass
            if not installed:
                requirements.append(req.replace('mmcv', 'mmcv-lite', 1))
            continue
        requirements.append(req)
    return requirements


def add_mim_extension():
    """Expose configs, tools and the model index inside the package."""
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'symlink'
    elif any(cmd in sys.argv for cmd in ('sdist', 'bdist_wheel', 'build',
                                         'install', 'build_py')):
        mode = 'copy'
    else:
        return
    mim_path = osp.join(HERE, 'mmreid', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in ('configs', 'tools', 'model-index.yml'):
        src = osp.join(HERE, name)
        dst = osp.join(mim_path, name)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_path), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)


if editable_wheel is not None:

    class EditableWheelWithMim(editable_wheel):
        """An editable wheel whose metadata lead ``mim`` to the source tree.

        ``mim`` (openmim 0.3.9) looks for a package's resources at
        ``<dist location>/<name>/.mim``, where the location is the folder
        that holds the ``.dist-info`` (site-packages), and falls back to
        ``<dist location>/<first line of top_level.txt>/.mim``. An editable
        wheel installs no ``mmreid`` folder there, so the first line of its
        ``top_level.txt`` names the source package by its absolute path
        (``os.path.join`` keeps an absolute second part); ``mmreid`` follows
        on the next line for every other reader of the file. ``mim list``,
        ``search``, ``train``, ``test`` and ``run`` then use
        ``<source>/mmreid/.mim``, whose links :func:`add_mim_extension`
        made, and see every edit of the checkout. Regular wheels keep the
        plain ``top_level.txt``.
        """

        def _create_wheel_file(self, bdist_wheel):
            top_level = osp.join(self.dist_info_dir, 'top_level.txt')
            names = []
            if osp.isfile(top_level):
                with open(top_level, encoding='utf-8') as f:
                    names = [n for n in f.read().split() if n]
            source = osp.join(HERE, 'mmreid')
            names = [source] + [n for n in names if n != source]
            if 'mmreid' not in names:
                names.append('mmreid')
            with open(top_level, 'w', encoding='utf-8') as f:
                f.write('\n'.join(names) + '\n')
            return super()._create_wheel_file(bdist_wheel)

    CMDCLASS = dict(editable_wheel=EditableWheelWithMim)
else:
    CMDCLASS = dict()

if __name__ == '__main__':
    add_mim_extension()
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        long_description = f.read()
    setup(
        name='mmreid',
        version=read_version(),
        description='OpenMMLab-style toolbox for generalizable and '
        'cross-modality person re-identification',
        long_description=long_description,
        long_description_content_type='text/markdown',
        keywords='person re-identification, domain generalization, '
        'visible-infrared, openmmlab',
        # Only mmreid itself: tests/, tools/ and configs/ are no packages of
        # the distribution (configs and tools ship inside mmreid/.mim).
        packages=find_packages(include=('mmreid', 'mmreid.*')),
        include_package_data=True,
        package_data={'mmreid': ['.mim/**/*', 'datasets/splits/*.json']},
        python_requires='>=3.8',
        license='Apache License 2.0',
        install_requires=parse_requirements('requirements/runtime.txt') +
        mm_requirements(),
        extras_require={
            'tests': parse_requirements('requirements/tests.txt'),
            'optional': parse_requirements('requirements/optional.txt'),
        },
        classifiers=[
            'Programming Language :: Python :: 3',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        cmdclass=CMDCLASS,
        zip_safe=False)
