"""Memory banks: matmul nearest-neighbour distance and the greedy coreset."""

import torch

from defectkit.fewshot.anomaly import greedy_coreset, nearest_distance


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


def test_nearest_distance_is_zero_on_bank_entries_and_precomputed_norms_agree():
    g = torch.Generator().manual_seed(2)
    bank = torch.randn(40, 32, generator=g)
    patches = bank[None, :5].clone()
    assert float(nearest_distance(patches, bank).max()) < 1e-2  # sqrt of rounding noise
    sqnorm = (bank * bank).sum(dim=1)
    other = torch.randn(3, 7, 32, generator=g)
    torch.testing.assert_close(nearest_distance(other, bank, sqnorm), nearest_distance(other, bank))
