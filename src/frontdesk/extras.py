"""Optional parts of frontdesk and the clear error when one is not installed.

The core install answers queries, trains and evaluates; plotting
(``frontdesk[report]``) and model2vec static encoders (``frontdesk[static]``)
are extras that ``make`` installs and a lean deployment may leave out.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import FrontdeskError

EXTRAS = {"matplotlib": "report", "model2vec": "static"}


class MissingExtraError(FrontdeskError):
    """An optional dependency a command needs is not installed."""


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` or say which extra to install for ``what``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module.split(".")[0])
        hint = f"pip install 'frontdesk[{extra}]'" if extra else f"pip install {module}"
        raise MissingExtraError(f"{what} needs {module}, which is not installed: {hint}") from exc
