"""`python -m timm_t2t`: the `timm-t2t` command line."""
import sys

from .cli.main import main

sys.exit(main())
