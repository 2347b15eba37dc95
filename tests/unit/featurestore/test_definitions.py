from __future__ import annotations

from featurestore.definitions import (
    FEATURE_NAMES,
    FEATURES,
    PROFILE_NAMES,
    VELOCITY_NAMES,
    WINDOW_MS,
)
from featurestore.profiles import DEFAULT_PROFILE_FEATURES, Profile, profile_features
from featurestore.velocity import AccountVelocity


def test_names_are_unique_and_velocity_features_come_first():
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert FEATURE_NAMES == VELOCITY_NAMES + PROFILE_NAMES


def test_every_feature_has_a_one_line_meaning():
    for feature in FEATURES:
        assert feature.meaning
        assert "\n" not in feature.meaning


def test_every_window_belongs_to_a_velocity_feature():
    assert set(WINDOW_MS) <= set(VELOCITY_NAMES)


def test_the_computations_return_as_many_values_as_there_are_names():
    update = AccountVelocity().update(0, 100, "m", "US", "d")
    profile = Profile(0, 0, 1, 100.0, 0.0, "US", ("5411",), 0)

    assert len(update.features) == len(VELOCITY_NAMES)
    assert len(profile_features(profile, 100, "5411", "US")) == len(PROFILE_NAMES)
    assert len(DEFAULT_PROFILE_FEATURES) == len(PROFILE_NAMES)
