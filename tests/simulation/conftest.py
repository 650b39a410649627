"""A small simulated organisation over the bundled demo catalog's examples."""

from __future__ import annotations

import pytest

from frontdesk.simulation import OrgConfig, QueryPool, World

SMALL = OrgConfig(seed=5, contacts=600, agents=8, days=2)


@pytest.fixture(scope="session")
def small_world(demo_pool: QueryPool) -> World:
    return World(SMALL, demo_pool)
