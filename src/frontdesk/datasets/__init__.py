"""Importers that turn public intent datasets into frontdesk's catalog and query files."""

from .importers import IMPORTERS, import_abcd, import_banking77, import_clinc150

__all__ = ["IMPORTERS", "import_abcd", "import_banking77", "import_clinc150"]
