"""Importers that turn public intent datasets into frontdesk's catalog and query files."""

from .importers import IMPORTERS, import_abcd, import_banking77, import_clinc150, import_dataset
from .splits import carve_validation, sample_shots

__all__ = [
    "IMPORTERS",
    "carve_validation",
    "import_abcd",
    "import_banking77",
    "import_clinc150",
    "import_dataset",
    "sample_shots",
]
