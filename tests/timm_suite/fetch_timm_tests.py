"""Fetch timm's own model test-suite (`tests/test_models.py`) for the installed timm version.

timm ships its tests only in the source distribution, and they change a lot between releases, so the file must come
from the sdist of exactly the timm version installed here. This script downloads that sdist with pip into an ignored
cache (`.cache/timm-tests/`) and extracts the file, unchanged, to `tests/timm_suite/test_timm_models.py` (ignored by
git; renamed so it cannot clash with a project test module). `tests/timm_suite/conftest.py` then runs it on the plugin's
models. Run it once after installing, before pytest:

    python tests/timm_suite/fetch_timm_tests.py

It needs the package index only when the sdist is not cached yet; the tests themselves never touch the network.
"""
import argparse
import subprocess
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CACHE_DIR = ROOT / '.cache' / 'timm-tests'
SUITE_FILE = HERE / 'test_timm_models.py'
VERSION_FILE = HERE / 'test_timm_models.version'


def installed_timm_version() -> str:
    """Version of the timm this interpreter imports (read from package metadata, without importing torch)."""
    from importlib.metadata import version
    return version('timm')


def download_sdist(timm_version: str, cache_dir: Path = CACHE_DIR) -> Path:
    """The timm sdist for `timm_version`, downloaded by pip unless already in `cache_dir`."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    sdist = cache_dir / f'timm-{timm_version}.tar.gz'
    if not sdist.exists():
        cmd = [
            sys.executable, '-m', 'pip', 'download', f'timm=={timm_version}',
            '--no-binary', ':all:', '--no-deps', '--dest', str(cache_dir),
        ]
        if subprocess.run(cmd).returncode != 0:
            raise SystemExit(f'pip could not download the timm {timm_version} sdist (see above). It needs the package '
                             f'index once; or put timm-{timm_version}.tar.gz into {cache_dir} by hand.')
    if not sdist.exists():
        raise FileNotFoundError(f'pip did not leave {sdist.name} in {cache_dir}; download it by hand into that folder.')
    return sdist


def extract_test_models(sdist: Path, timm_version: str, dest: Path = SUITE_FILE) -> Path:
    """Copy `tests/test_models.py` out of the sdist to `dest`, byte for byte, and record the version beside it."""
    member = f'timm-{timm_version}/tests/test_models.py'
    with tarfile.open(sdist) as tar:
        try:
            data = tar.extractfile(member).read()
        except KeyError:
            raise FileNotFoundError(f'{member} is not in {sdist}; this timm release ships no model tests.') from None
    tmp = dest.with_suffix('.tmp')
    tmp.write_bytes(data)
    tmp.replace(dest)  # never leave a half-written test module behind
    VERSION_FILE.write_text(timm_version + '\n')
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--timm-version', default=None, help='timm version (default: the installed one)')
    args = parser.parse_args()
    timm_version = args.timm_version or installed_timm_version()
    sdist = download_sdist(timm_version)
    dest = extract_test_models(sdist, timm_version)
    print(f'timm {timm_version} model tests -> {dest.relative_to(ROOT)}')


if __name__ == '__main__':
    main()
