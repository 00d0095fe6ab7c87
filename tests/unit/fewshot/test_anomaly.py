import torch

from defectkit.fewshot.anomaly import AnomalyHead, greedy_coreset, nearest_distance


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


def _head_and_good_maps():
    """A head with a small random bank, two good feature maps and their raw maps."""
    head = AnomalyHead(4, sigma=0)
    g = torch.Generator().manual_seed(1)
    head.set_bank(torch.randn(30, 4, generator=g))
    good = torch.randn(2, 4, 5, 5, generator=g) * 0.5
    z = torch.randn(2, 5, 5, generator=g)
    appearance, excess = head.raw_maps(good, z)
    return head, good, z, appearance, excess


def test_calibration_makes_worst_good_shot_score_one():
    head, good, z, appearance, excess = _head_and_good_maps()
    head.calibrate(appearance, excess)
    amap, score = head(good, z)
    assert torch.isclose(score.max(), torch.tensor(1.0))
    assert amap.max() <= 1.0 + 1e-6
    # a patch far from everything is more unusual than any good patch
    odd = good.clone()
    odd[0, :, 2, 2] = 50.0
    amap2, score2 = head(odd, z)
    assert score2[0] > 1.0 and amap2[0, 2, 2] > 1.0


def test_detail_excess_is_one_sided():
    head = AnomalyHead(2, sigma=0)
    head.set_bank(torch.zeros(1, 2))
    feats = torch.zeros(1, 2, 3, 3)
    low = torch.full((1, 3, 3), -5.0)
    high = torch.full((1, 3, 3), 5.0)
    assert head.raw_maps(feats, low)[1].abs().max() == 0, "less detail than good is not a defect"
    assert head.raw_maps(feats, high)[1].min() > 0


def test_grain_ratio_tells_noise_from_smooth_structure_whatever_the_contrast():
    from defectkit.inspect.features import grain_ratio, grain_standard_error

    g = torch.Generator().manual_seed(0)
    noise = torch.rand(1, 3, 64, 64, generator=g)
    ramp = torch.linspace(0, 1, 64).repeat(1, 3, 64, 1)  # smooth: 2-px steps twice 1-px steps
    smooth_texture = torch.nn.functional.avg_pool2d(noise, 5, stride=1, padding=2, count_include_pad=False)
    assert abs(float(grain_ratio(ramp)) - 0.5) < 0.02
    assert float(grain_ratio(noise)) > 0.9
    assert float(grain_ratio(smooth_texture)) < float(grain_ratio(smooth_texture + 0.05 * noise))
    # contrast and brightness scale both differences alike
    torch.testing.assert_close(grain_ratio(0.2 + 0.5 * smooth_texture), grain_ratio(smooth_texture), rtol=1e-4, atol=1e-5)
    assert 0 < float(grain_standard_error(noise)) < 0.05


def test_grain_deviation_scores_both_ways_and_its_reference_has_a_floor():
    head, good, z, appearance, excess = _head_and_good_maps()
    grains = torch.tensor([0.7600, 0.7601])  # two goods that happen to agree closely
    head.set_grain_center(grains)
    head.calibrate(appearance, excess, (grains - grains.flip(0)).abs(), grain_floor=0.01)
    assert torch.isclose(head.stat_ref[2], torch.tensor(0.01)), "the floor, not the chance agreement"
    _, base = head(good, z, grains)
    _, noisier = head(good, z, grains + 0.05)
    _, blurred = head(good, z, grains - 0.05)
    assert (noisier > base + 3).all() and (blurred > base + 3).all()
    _, without = head(good, z, None)  # no detail group: the statistic is off
    assert (without <= base + 1e-6).all()
