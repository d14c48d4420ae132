"""Load the timm-t2t plugin as soon as timm is imported, so timm's unchanged scripts see the T2T-ViT models.

Installed with the package: `timm_t2t-autoload.pth` (and its PEP 829 twin `timm_t2t-autoload.start`) in site-packages
call `install()` at interpreter start. That only puts a one-shot finder on `sys.meta_path` (no torch or timm import, so
startup stays fast): the first `import timm` runs normally and then imports `timm_t2t`, which registers the models.
Set `TIMM_T2T_AUTOLOAD=0` to turn it off. Deliberately a top-level module outside `timm_t2t`: importing the package
itself would import torch and timm at every interpreter start.
"""
import os
import sys

# NOTE no `typing` import: this module loads at every interpreter start, annotations use builtins only.

ENV_VAR = 'TIMM_T2T_AUTOLOAD'


def enabled() -> bool:
    """False when the user opted out with TIMM_T2T_AUTOLOAD=0 (or false/no/off)."""
    return os.environ.get(ENV_VAR, '1').strip().lower() not in ('0', 'false', 'no', 'off')


class _LoaderThenPlugin:
    """Wraps timm's loader: execute timm as usual, then import the plugin. Other attributes go to the real loader."""

    def __init__(self, loader: object) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> object:
        return getattr(self._loader, name)

    def create_module(self, spec: object) -> object:
        return self._loader.create_module(spec)

    def exec_module(self, module: object) -> None:
        for finder in [f for f in sys.meta_path if isinstance(f, TimmImportHook)]:
            finder.uninstall()  # one shot: timm is being imported now
        self._loader.exec_module(module)
        # Only now, with timm fully initialised (its `timm.models` registry exists), can the plugin register.
        try:
            import timm_t2t  # noqa: F401
        except Exception as e:  # a broken plugin must not break timm itself
            import warnings
            warnings.warn(f'timm-t2t autoload failed ({type(e).__name__}: {e}); `import timm_t2t` to see the error, '
                          f'or set {ENV_VAR}=0 to silence this.', RuntimeWarning, stacklevel=2)


class TimmImportHook:
    """One-shot `sys.meta_path` finder that wraps the loader of the top-level `timm` package.

    It stays installed until timm is actually executed: `importlib.util.find_spec('timm')` (how libraries such as
    transformers check that timm is installed) asks the finders too, without importing anything.
    """

    _searching = False

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if fullname != 'timm' or self._searching:
            return None
        from importlib.util import find_spec
        self._searching = True  # let the regular finders locate timm below
        try:
            spec = find_spec('timm')
        finally:
            self._searching = False
        if spec is None or spec.loader is None:
            return None
        spec.loader = _LoaderThenPlugin(spec.loader)
        return spec

    def uninstall(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def install() -> None:
    """Arm the hook (idempotent). Does nothing if opted out; imports the plugin at once if timm is already loaded."""
    if not enabled():
        return
    if 'timm' in sys.modules:
        if 'timm_t2t' not in sys.modules:
            import timm_t2t  # noqa: F401
        return
    if not any(isinstance(f, TimmImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, TimmImportHook())
