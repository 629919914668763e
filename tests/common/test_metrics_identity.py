"""common.metrics.identity: AED and CSIM by hand, and dlib descriptors of one and of two people."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numerics import ROUNDING, assert_close

from common.image import read_image
from common.metrics import identity


def test_distances_by_hand():
    assert_close(identity.aed(np.array([0.0, 0.0]), np.array([3.0, 4.0])), 5.0, ROUNDING, "aed")
    assert_close(identity.csim(np.array([1.0, 0.0]), np.array([0.0, 2.0])), 0.0, ROUNDING, "csim orthogonal")
    assert_close(identity.csim(np.array([1.0, 1.0]), np.array([2.0, 2.0])), 1.0, ROUNDING, "csim parallel")
    assert_close(identity.csim(np.array([1.0, 2.0]), np.array([-1.0, -2.0])), -1.0, ROUNDING, "csim opposite")
    for metric in (identity.aed, identity.csim):
        assert math.isnan(metric(None, np.ones(2))) and math.isnan(metric(np.ones(2), None))


@pytest.fixture(scope="module")
def faces(astronaut):
    """The astronaut's face, the same face at 160 px, and another person (the sample's two identities)."""
    from matplotlib import cbook
    from PIL import Image

    face = astronaut[:224, 120:344]
    smaller = np.asarray(Image.fromarray(face).resize((160, 160), Image.LANCZOS))
    hopper = read_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return face, smaller, hopper


def test_same_and_different_people(faces):
    face, smaller, hopper = (identity.descriptor(image) for image in faces)
    assert face.shape == (128,)
    assert identity.aed(face, face) == 0.0
    assert_close(identity.csim(face, face), 1.0, ROUNDING, "csim")
    # dlib's rule: one person below 0.6 (measured 0.07 here), two people above (0.69 here)
    assert identity.aed(face, smaller) < identity.SAME_PERSON_DISTANCE < identity.aed(face, hopper)
    assert identity.csim(face, smaller) > identity.csim(face, hopper)


def test_no_face_is_none():
    assert identity.descriptor(np.zeros((128, 128, 3), dtype=np.uint8)) is None
