"""timm's own model test-suite run on the plugin models (a package, so its conftest cannot shadow
tests/conftest.py)."""
