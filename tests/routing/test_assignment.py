"""assign_batch: optimal, within capacity, never ineligible (checked against brute force);
aging; assign_guarded: deferred contacts decided as the rule decides them."""

from __future__ import annotations

import itertools

import numpy as np

from frontdesk.routing import PairValues, assign_batch, assign_guarded


def pv(pairs: list[tuple[int, int, float]]) -> PairValues:
    ch, ag, v = zip(*pairs, strict=True) if pairs else ((), (), ())
    return PairValues(np.array(ch, dtype=int), np.array(ag, dtype=int), np.array(v, dtype=float))


def test_one_slot_goes_to_the_contact_that_gains_most() -> None:
    batch = [pv([(0, 0, 0.2)]), pv([(1, 0, 0.9)])]
    got = assign_batch(batch, free=np.array([1]), capacity=np.array([1]), congestion_price=0.0)
    assert got == [None, (1, 0, 0)]


def test_best_channel_for_the_chosen_agent() -> None:
    batch = [pv([(0, 0, 0.1), (2, 0, 0.7), (1, 1, 0.3)])]
    got = assign_batch(batch, free=np.array([1, 1]), capacity=np.array([1, 1]))
    assert got == [(2, 0, 1)]


def test_congestion_price_spreads_load() -> None:
    # Agent 0 is slightly better for both; with a price, the second contact goes to agent 1.
    batch = [pv([(0, 0, 0.50), (0, 1, 0.48)]), pv([(0, 0, 0.50), (0, 1, 0.48)])]
    free, cap = np.array([2, 2]), np.array([2, 2])
    no_price = assign_batch(batch, free, cap, congestion_price=0.0)
    priced = assign_batch(batch, free, cap, congestion_price=0.1)
    assert {a for _, a, _ in no_price} <= {0, 1}
    assert sorted(a for _, a, _ in priced) == [0, 1]


def test_agents_without_free_slots_and_empty_batches() -> None:
    assert assign_batch([], np.array([1]), np.array([1])) == []
    got = assign_batch([pv([(0, 0, 1.0)])], free=np.array([0]), capacity=np.array([1]))
    assert got == [None]
    assert assign_batch([pv([])], free=np.array([1]), capacity=np.array([1])) == [None]


def test_matches_brute_force_on_random_instances() -> None:
    rng = np.random.default_rng(1)
    for _ in range(40):
        n, m = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        cap = rng.integers(1, 3, size=m)
        free = np.array([int(rng.integers(0, c + 1)) for c in cap])
        batch = []
        for _ in range(n):
            pairs = [
                (int(h), int(a), float(rng.normal()))
                for a in range(m)
                for h in range(3)
                if rng.random() < 0.5
            ]
            batch.append(pv(pairs))
        got = assign_batch(batch, free, cap, congestion_price=0.0)
        used = np.zeros(m, dtype=int)
        total = 0.0
        for i, g in enumerate(got):
            if g is not None:
                h, a, p = g
                assert batch[i].agents[p] == a and batch[i].channels[p] == h
                used[a] += 1
                total += batch[i].values[p]
        assert (used <= free).all()
        # Brute force: the best total value among assignments serving as many contacts.
        best_count, best_total = -1, -np.inf
        options = [[None, *range(len(b.values))] for b in batch]
        for combo in itertools.product(*options):
            load = np.zeros(m, dtype=int)
            for i, p in enumerate(combo):
                if p is not None:
                    load[batch[i].agents[p]] += 1
            if (load > free).any():
                continue
            count = sum(p is not None for p in combo)
            value = sum(batch[i].values[p] for i, p in enumerate(combo) if p is not None)
            if (count, value) > (best_count, best_total):
                best_count, best_total = count, value
        assert sum(g is not None for g in got) == best_count
        assert total == np.float64(total) and abs(total - best_total) < 1e-9


def test_aging_gives_a_scarce_slot_to_the_contact_that_waited_longer() -> None:
    # The newer contact is worth a little more; after 10 minutes' wait the older one wins.
    batch = [pv([(0, 0, 0.30)]), pv([(0, 0, 0.50)])]
    free, cap = np.array([1]), np.array([1])
    assert assign_batch(batch, free, cap, 0.0) == [None, (0, 0, 0)]
    waits = np.array([10.0, 0.0])
    got = assign_guarded(batch, np.zeros(2, bool), waits, free, cap, 0.0, aging=0.05)
    assert got == [(0, 0, 0), None]
    # Aging decides who is served, never which pair a served contact gets.
    batch = [pv([(0, 0, 0.1), (1, 1, 0.9)])]
    got = assign_guarded(batch, np.zeros(1, bool), np.array([30.0]), np.array([1, 1]),
                         np.array([1, 1]), 0.0, aging=0.05)  # fmt: skip
    assert got == [(1, 1, 1)]


def test_deferred_contacts_take_the_rules_pick_in_order_of_waiting() -> None:
    # Values of deferred contacts are the rule's scores; each takes its best free pair in
    # order of waiting, as the rule does one by one, before the others are assigned.
    batch = [
        pv([(0, 0, 2.0), (0, 1, 1.0)]),  # deferred, waited 1 minute
        pv([(0, 0, 2.0), (0, 1, 1.5)]),  # deferred, waited 5 minutes: first, takes agent 0
        pv([(0, 0, 9.0), (0, 1, 0.1), (0, 2, 0.2)]),  # the router's: agent 0 is gone
    ]
    free, cap = np.array([1, 1, 1]), np.array([1, 1, 1])
    got = assign_guarded(batch, np.array([True, True, False]), np.array([1.0, 5.0, 0.0]),
                         free, cap, 0.0)  # fmt: skip
    assert got == [(0, 1, 1), (0, 0, 0), (0, 2, 2)]
    # A contact of the router's that waited longer goes before both deferred ones.
    got = assign_guarded(batch, np.array([True, True, False]), np.array([1.0, 5.0, 10.0]),
                         free, cap, 0.0)  # fmt: skip
    assert got == [None, (0, 1, 1), (0, 0, 0)]
    # Nothing deferred: the joint assignment alone.
    got = assign_guarded(batch, np.zeros(3, bool), np.zeros(3), free, cap, 0.0, aging=0.0)
    assert got == assign_batch(batch, free, cap, 0.0)
