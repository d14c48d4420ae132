"""Build hook: ship the autoload hook's `.pth`/`.start` files at the root of site-packages.

Everything else is configured in pyproject.toml. setuptools has no option for files outside packages in the wheel's
purelib root, so `build_py` copies them there, for regular wheels (`build_lib`) and for PEP 660 editable wheels (which
setuptools assembles from the `install` command's `install_lib` folder instead).
"""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SITE_FILES = ('timm_t2t-autoload.pth', 'timm_t2t-autoload.start')


class BuildPyWithAutoload(build_py):
    """`build_py` that also places the autoload files at the top of the wheel."""

    def run(self) -> None:
        super().run()
        target = self.get_finalized_command('install').install_lib if self.editable_mode else self.build_lib
        for name in SITE_FILES:
            self.copy_file(str(ROOT / name), str(Path(target, name)), preserve_mode=False)


setup(cmdclass={'build_py': BuildPyWithAutoload})
