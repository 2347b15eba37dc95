from __future__ import annotations

import numpy as np
import pytest
from synthetic_model import synthetic_rows

from dataflows.errors import ModelError
from featurestore.definitions import FEATURE_NAMES
from model.export import (
    INPUT_NAME,
    OUTPUT_NAME,
    booster_to_onnx,
    check_parity,
    model_version,
    onnx_session,
)
from model.training import fit_booster


@pytest.fixture(scope="module")
def small_booster():
    rows, labels = synthetic_rows(4_000, seed=2)
    return fit_booster(rows, labels, rounds=40)


def test_onnx_and_lightgbm_agree_on_unseen_rows(small_booster) -> None:
    onnx_bytes = booster_to_onnx(small_booster, len(FEATURE_NAMES)).SerializeToString()
    unseen, _ = synthetic_rows(3_000, seed=99)

    worst = check_parity(onnx_bytes, small_booster, unseen)

    assert worst <= 1e-5


def test_the_export_has_one_input_and_one_probability_output(small_booster) -> None:
    onnx_bytes = booster_to_onnx(small_booster, len(FEATURE_NAMES)).SerializeToString()
    session = onnx_session(onnx_bytes)
    rows, _ = synthetic_rows(7, seed=4)

    (output,) = session.run(None, {INPUT_NAME: rows})

    assert [i.name for i in session.get_inputs()] == [INPUT_NAME]
    assert session.get_inputs()[0].shape[1] == len(FEATURE_NAMES)
    assert [o.name for o in session.get_outputs()] == [OUTPUT_NAME]
    assert output.shape == (7,)
    np.testing.assert_allclose(output, small_booster.predict(rows), atol=1e-5)


def test_an_export_of_another_model_fails_the_parity_check(small_booster) -> None:
    rows, labels = synthetic_rows(4_000, seed=8)
    other = fit_booster(rows, labels, rounds=5)
    onnx_bytes = booster_to_onnx(other, len(FEATURE_NAMES)).SerializeToString()

    with pytest.raises(ModelError, match="ONNX export differs from LightGBM"):
        check_parity(onnx_bytes, small_booster, rows)


def test_the_same_booster_exports_to_the_same_version(small_booster) -> None:
    first = booster_to_onnx(small_booster, len(FEATURE_NAMES)).SerializeToString()
    second = booster_to_onnx(small_booster, len(FEATURE_NAMES)).SerializeToString()

    assert model_version(first) == model_version(second)
    assert model_version(first) != model_version(first + b"\x00")
    assert len(model_version(first)) == 12


def test_bytes_that_are_not_a_model_are_refused() -> None:
    with pytest.raises(ModelError, match="ONNX Runtime refused the model"):
        onnx_session(b"not a model")
