"""A small simulated organisation over the bundled demo catalog's examples."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from frontdesk.loaders import load_catalog
from frontdesk.simulation import OrgConfig, QueryPool, World
from frontdesk.simulation.world import pool_from_catalog

SMALL = OrgConfig(seed=5, contacts=600, agents=8, days=2)


@pytest.fixture(scope="session")
def demo_pool() -> QueryPool:
    path = Path(str(resources.files("frontdesk") / "data" / "demo_catalog.jsonl"))
    return pool_from_catalog(load_catalog(path))


@pytest.fixture(scope="session")
def small_world(demo_pool: QueryPool) -> World:
    return World(SMALL, demo_pool)
