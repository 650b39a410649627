"""Shared fixtures: a tiny hand-written catalog, the bundled encoder, dataset paths."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("FRONTDESK_DATASETS", REPO.parent / "shared" / "datasets"))

# Six workflows, two pairs deliberately close (payout delayed vs failed; refund
# issue vs refund not received) so that ranking order is a real test.
TINY_CATALOG = [
    {
        "id": "payout-delayed",
        "title": "Payout has not arrived",
        "description": "Expected payout has not reached the bank account.",
        "steps": ["Look up the payout", "Check its arrival date"],
        "tags": ["payouts"],
        "examples": ["where is my payout", "money not in my bank yet"],
    },
    {
        "id": "payout-failed",
        "title": "Payout failed",
        "description": "The bank returned the payout.",
        "steps": ["Read the failure code", "Ask for new bank details"],
        "tags": ["payouts"],
        "examples": ["payout bounced back", "bank rejected my transfer"],
    },
    {
        "id": "refund-issue",
        "title": "Issue a refund",
        "description": "Refund a customer's card payment.",
        "steps": ["Find the charge", "Refund full or partial amount"],
        "tags": ["refunds"],
        "examples": ["how do I refund a customer", "give money back to buyer"],
    },
    {
        "id": "refund-not-received",
        "title": "Customer has not received refund",
        "steps": ["Share the ARN with the customer"],
        "tags": ["refunds"],
        "examples": ["customer says refund never arrived"],
    },
    {
        "id": "login-2fa",
        "title": "Lost two-factor device",
        "steps": ["Verify identity", "Reset 2FA"],
        "tags": ["login"],
        "examples": ["lost my phone with the authenticator", "cant log in 2fa"],
    },
    # Only id + title: the minimal valid workflow.
    {"id": "api-key-rotate", "title": "Rotate an API key"},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def own_export(folder: Path, drop: tuple[str, ...] = ()) -> None:
    """Make a copy of simulator logs look like an organisation's own export: no world.json
    (so no simulator config), and without the manifest keys in ``drop``."""
    meta = json.loads((folder / "manifest.json").read_text())
    (folder / meta.pop("world")).unlink()
    for key in ("files", "bytes"):  # world.json is gone, and its checksum with it
        if key in meta:
            meta[key] = {k: v for k, v in meta[key].items() if k != "world.json"}
    for key in drop:
        del meta[key]
    (folder / "manifest.json").write_text(json.dumps(meta))


def edit_json(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    """Rewrite a JSON file with ``change(data)`` applied (it edits ``data`` in place)."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.fixture
def tiny_catalog(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "catalog.jsonl", TINY_CATALOG)


@pytest.fixture(scope="session")
def encoder():
    """The bundled MiniLM, loaded once per test session."""
    from frontdesk import ContextEncoder

    return ContextEncoder()


@pytest.fixture(scope="session")
def tiny_index(tmp_path_factory: pytest.TempPathFactory, encoder) -> Path:
    """A hybrid index of the tiny catalog (read-only: copy it before modifying)."""
    from frontdesk import build_index

    root = tmp_path_factory.mktemp("tiny")
    catalog = write_jsonl(root / "catalog.jsonl", TINY_CATALOG)
    build_index(catalog, root / "index", encoder=encoder)
    return root / "index"


@pytest.fixture
def datasets_dir() -> Path:
    if not DATASETS.is_dir():
        pytest.skip(f"datasets folder {DATASETS} is absent (set FRONTDESK_DATASETS)")
    return DATASETS


# -- a router trained once per session on a small simulated organisation's logs --------------------

ROUTER_ORG_KW = dict(seed=8, contacts=1200, agents=10, days=3)


@pytest.fixture(scope="session")
def demo_pool():
    """The bundled demo catalog's examples as a simulator contact pool."""
    from importlib import resources

    from frontdesk.loaders import load_catalog
    from frontdesk.orgsim.world import pool_from_catalog

    path = Path(str(resources.files("frontdesk") / "data" / "demo_catalog.jsonl"))
    return pool_from_catalog(load_catalog(path))


# A small simulated organisation over the demo pool, for the simulator and off-policy tests.
SMALL_ORG_KW = dict(seed=5, contacts=600, agents=8, days=2)


@pytest.fixture(scope="session")
def small_world(demo_pool):
    from frontdesk.orgsim import OrgConfig, World

    return World(OrgConfig(**SMALL_ORG_KW), demo_pool)


@pytest.fixture(scope="session")
def org_logs(tmp_path_factory: pytest.TempPathFactory, demo_pool) -> Path:
    from frontdesk.orgsim import OrgConfig, simulate_org

    out = tmp_path_factory.mktemp("org") / "logs"
    simulate_org(OrgConfig(**ROUTER_ORG_KW), demo_pool, out)
    return out


@pytest.fixture(scope="session")
def router_dir(tmp_path_factory: pytest.TempPathFactory, org_logs: Path, encoder) -> Path:
    from frontdesk.routing import train_router

    out = tmp_path_factory.mktemp("router") / "router"
    train_router(org_logs, out, encoder=encoder)
    return out


@pytest.fixture
def router(router_dir: Path, encoder):
    from frontdesk.routing import Router

    return Router.load(router_dir, encoder=encoder)
