"""Memory banks: matmul nearest-neighbour distance and the greedy coreset."""

import math

import torch

from defectkit.fewshot.anomaly import FLOOR, greedy_coreset, greedy_coresets, nearest_distance


def test_nearest_distance_matches_cdist():
    g = torch.Generator().manual_seed(0)
    patches = torch.randn(2, 50, 16, generator=g)
    bank = torch.randn(70, 16, generator=g)
    expected = torch.cdist(patches, bank[None].expand(2, -1, -1)).amin(dim=-1)
    torch.testing.assert_close(nearest_distance(patches, bank), expected, atol=1e-4, rtol=1e-4)


def test_greedy_coreset_covers_clusters_random_sampling_would_miss():
    g = torch.Generator().manual_seed(0)
    big = torch.randn(500, 8, generator=g) * 0.01
    outliers = torch.randn(3, 8, generator=g) * 0.01 + torch.tensor([10.0] + [0.0] * 7)
    feats = torch.cat([big, outliers])
    chosen = greedy_coreset(feats, 10, seed=0)
    assert len(set(chosen.tolist())) == 10
    assert any(i >= 500 for i in chosen.tolist()), "the far cluster must be represented"
    assert torch.equal(chosen, greedy_coreset(feats, 10, seed=0)), "seeded: reproducible"
    assert len(greedy_coreset(feats, 1000)) == len(feats)


def test_nearest_distance_is_the_floor_on_bank_entries_and_precomputed_norms_agree():
    g = torch.Generator().manual_seed(2)
    bank = torch.randn(40, 32, generator=g)
    patches = bank[None, :5].clone()
    # on an entry the matmul form leaves only rounding noise under the square root (up
    # to ~3e-3 here), which each engine rounds its own way: the floor hides it
    assert torch.equal(nearest_distance(patches, bank), torch.full((1, 5), FLOOR))
    near = patches + 0.1 / math.sqrt(32)  # 0.1 from its entry: a real distance is kept
    torch.testing.assert_close(nearest_distance(near, bank), torch.full((1, 5), 0.1), rtol=1e-3, atol=1e-4)
    sqnorm = (bank * bank).sum(dim=1)
    other = torch.randn(3, 7, 32, generator=g)
    torch.testing.assert_close(nearest_distance(other, bank, sqnorm), nearest_distance(other, bank))

def test_greedy_coreset_loops_on_one_thread_and_restores_the_count(monkeypatch):
    # Thousands of small ops: on a busy 2-core machine two threads made a fit's coreset
    # 5-8x slower (benchmarks/results/app_latency.md); the caller's count must come back.
    seen = []
    argmax = torch.argmax

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return argmax(*args, **kwargs)

    monkeypatch.setattr(torch, "argmax", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        feats = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
        chosen = greedy_coreset(feats, 20, seed=0)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert len(set(chosen.tolist())) == 20
    assert seen and set(seen) == {1}


def test_many_coresets_side_by_side_are_the_coresets_one_by_one_and_restore_the_count():
    g = torch.Generator().manual_seed(1)
    sets = [torch.randn(300 + 40 * i, 8, generator=g) for i in range(5)]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        together = greedy_coresets(sets, 16, seed=3)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert len(together) == len(sets)
    for features, chosen in zip(sets, together, strict=True):
        assert torch.equal(chosen, greedy_coreset(features, 16, seed=3))
    assert greedy_coresets([], 16) == []


def test_greedy_coreset_picks_the_farthest_point_each_step():
    # The loop works on squared distances by matrix-vector products; a plain
    # farthest-point loop on Euclidean distances must choose the same set.
    feats = torch.randn(400, 12, generator=torch.Generator().manual_seed(3))
    chosen = greedy_coreset(feats, 40, seed=0)
    expected = [int(chosen[0])]
    dist = torch.linalg.vector_norm(feats - feats[expected[0]], dim=1)
    for _ in range(39):
        expected.append(int(torch.argmax(dist)))
        dist = torch.minimum(dist, torch.linalg.vector_norm(feats - feats[expected[-1]], dim=1))
    assert chosen.tolist() == expected


def test_nearest_distance_in_row_blocks_is_the_whole_computation_bit_for_bit(monkeypatch):
    from defectkit.fewshot import anomaly

    torch.manual_seed(3)
    patches, bank = torch.randn(2, 700, 19), torch.randn(300, 19)
    monkeypatch.setattr(anomaly, "ROWS", 10_000)
    whole = nearest_distance(patches, bank)
    monkeypatch.setattr(anomaly, "ROWS", 128)  # 700 rows: five full blocks and a short one
    blocks = nearest_distance(patches, bank)
    assert blocks.shape == (2, 700) and torch.equal(blocks, whole)
    torch.testing.assert_close(blocks, torch.cdist(patches, bank[None]).amin(dim=-1), rtol=1e-4, atol=1e-4)
