"""The app's fits are incremental (issue 19 item 4): the project keeps a feature cache in
memory and in its folder, so a refit extracts only new images, and says so."""

from __future__ import annotations

import shutil

import pytest

from defectkit.apps.labelling.project import FEATURE_CACHE, Project
from defectkit.testing.labelling import fast_config, label_shots


def test_a_refit_after_adding_a_shot_extracts_that_shot_only(project, files):
    ids = label_shots(project, files)
    first = project.fit(config=fast_config(), unlabelled=False)
    # 2 good shots with one augmented copy each, 4 defect shots (a copy the augmenter left
    # unchanged has its original's bytes and comes from the cache within the same fit).
    assert first.features_extracted + first.features_cached == 8
    cached_files = list((project.root / FEATURE_CACHE).glob("*.npz"))
    assert len(cached_files) == first.features_extracted

    backbone = project.load_inspector().backbone
    project.set_label(ids["good_002"], "good")
    second = project.fit(config=fast_config(), unlabelled=False)
    assert project.load_inspector().backbone is backbone  # kept: same backbone, weights, layers
    assert second.features_cached == 8 and 1 <= second.features_extracted <= 2  # the shot (+ its copy)
    assert second.shots["good"] == 3

    reopened = Project.open(project.root)  # a restart: the cache is read from the folder
    assert reopened.fit_record.features_extracted == second.features_extracted
    third = reopened.fit(config=fast_config(), unlabelled=False)
    assert (third.features_extracted, third.features_cached) == (0, 10)
    assert third.fitted_thresholds == pytest.approx(second.fitted_thresholds, abs=1e-6)
    assert third.good_scores == pytest.approx(second.good_scores, abs=1e-6)


def test_the_cache_folder_holds_the_last_fit_only_and_may_be_deleted(project, files):
    ids = label_shots(project, files)
    full = project.fit(config=fast_config(), unlabelled=False)
    folder = project.root / FEATURE_CACHE
    before = len(list(folder.glob("*.npz")))
    project.set_label(ids["spot_001"], None)  # one shot fewer: its entry goes with it
    project.set_label(ids["spot_002"], "spot")
    project.fit(config=fast_config(), unlabelled=False)
    assert len(list(folder.glob("*.npz"))) == before

    shutil.rmtree(folder)  # a derived folder: deleting it costs one slower fit
    project.set_label(ids["spot_002"], None)
    project.set_label(ids["spot_001"], "spot")
    again = Project.open(project.root).fit(config=fast_config(), unlabelled=False)
    assert again.features_cached + again.features_extracted == 8 and again.features_extracted == before
    assert again.fitted_thresholds == pytest.approx(full.fitted_thresholds, abs=1e-6)


def test_another_backbone_setting_builds_a_new_backbone_and_extracts_again(project, files):
    from dataclasses import replace

    label_shots(project, files)
    first = project.fit(config=fast_config(), unlabelled=False)
    backbone = project.load_inspector().backbone
    other = replace(fast_config(), layers=("s4", "s8"))
    record = project.fit(config=other, unlabelled=False)
    assert project.load_inspector().backbone is not backbone
    # Every distinct image extracted again (hits only among identical images of this fit).
    assert record.features_extracted == first.features_extracted
