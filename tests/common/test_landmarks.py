"""Landmarks from the real dlib models on real photos; FAN's offline weight handling."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from common.errors import InputError, NoFaceError
from common.image import read_image, write_image
from common.landmarks import (
    FAN_FILE,
    SFD_FILE,
    LandmarkDetector,
    face_descriptor,
    load_landmarks,
    named_frames,
    save_landmarks,
)

# dlib's points are whole pixels and move with its HOG box, which other CPUs or builds may place a
# window step (4-6 px here) away: predicting from boxes moved by up to 6 px and scaled by 13% moved
# the astronaut's eye centres by at most 1 px. Pixel tolerances are therefore fractions of the
# face's size: its 68 points span 93 px (astronaut) and 177 px (Grace Hopper) in x.
ASTRONAUT_FACE, HOPPER_FACE = 93, 177


@pytest.fixture(scope="module")
def dlib_detector():
    return LandmarkDetector(backend="dlib")


@pytest.fixture(scope="module")
def hopper():
    from matplotlib import cbook

    return read_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def camera():
    """A real photo without a detectable face, as RGB."""
    from skimage import data

    return np.repeat(data.camera()[..., None], 3, axis=2)


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_dlib_astronaut_landmarks(dlib_detector, astronaut):
    lm = dlib_detector.detect(astronaut)
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    # eye centres (203.2, 101.5) and (246.5, 104.2) here; 3% of the face is 2.8 px
    np.testing.assert_allclose(lm[36:42].mean(0), (203, 102), atol=0.03 * ASTRONAUT_FACE)
    np.testing.assert_allclose(lm[42:48].mean(0), (247, 104), atol=0.03 * ASTRONAUT_FACE)
    eyes_y, nose_y, mouth_y, chin_y = lm[36:48, 1].mean(), lm[30, 1], lm[48:68, 1].mean(), lm[8, 1]
    assert eyes_y < nose_y < mouth_y < chin_y  # 103, 127, 146, 178 here
    # the points span [179, 87]-[272, 178] here; that extent grown by 10% of the face
    margin = 0.1 * ASTRONAUT_FACE
    assert np.all(lm >= np.subtract((179, 87), margin)) and np.all(lm <= np.add((272, 178), margin))


def test_main_face_is_the_best_scoring_box(dlib_detector, astronaut):
    faces = dlib_detector.detect_all(astronaut)
    assert len(faces) == 2  # the face and a weak false positive on the suit at upsample 1
    assert faces[0].score > 1.0 and faces[1].score < 0.5
    # HOG box [175,76,265,166] here; a window step elsewhere moves it by 4-6 px, 10% of the face is 9
    np.testing.assert_allclose(faces[0].box, [175, 76, 265, 166], atol=0.1 * ASTRONAUT_FACE)
    np.testing.assert_array_equal(faces[0].landmarks, dlib_detector.detect(astronaut))
    first = LandmarkDetector(backend="dlib", main_face="first").detect_all(astronaut)
    largest = LandmarkDetector(backend="dlib", main_face="largest").detect_all(astronaut)
    assert {round(f.score, 3) for f in first} == {round(f.score, 3) for f in faces}
    areas = [np.prod(np.ptp(f.landmarks, 0) + 1) for f in largest]  # FSTH's landmark-box area
    assert areas == sorted(areas, reverse=True)


def test_second_identity(dlib_detector, hopper):
    lm = dlib_detector.detect(hopper)
    # the points span [178, 161]-[355, 333] here; that extent grown by 10% of the face
    margin = 0.1 * HOPPER_FACE
    assert np.all(lm >= np.subtract((178, 161), margin)) and np.all(lm <= np.add((355, 333), margin))


def test_no_face_names_the_file(dlib_detector, camera, tmp_path):
    path = write_image(tmp_path / "camera.png", camera)
    with pytest.raises(NoFaceError, match=f"^{path}: no face found"):
        dlib_detector.detect(path)
    with pytest.raises(NoFaceError, match="^image: no face found"):
        dlib_detector.detect(np.full((200, 200, 3), 128, np.uint8))
    assert dlib_detector.detect_all(camera) == []
    assert issubclass(NoFaceError, InputError)


def test_lfw_faces_versus_non_faces(dlib_detector):
    from skimage import data
    from skimage.transform import resize

    lfw = data.lfw_subset()  # 100 faces then 100 non-faces, 25x25 grey in [0, 1]
    batch = np.stack([(resize(img, (100, 100)) * 255).astype(np.uint8) for img in lfw])[..., None].repeat(3, 3)
    found = dlib_detector.detect_frames(batch, skip_missing=True)
    faces = sum(lm is not None for lm in found[:100])
    false_alarms = sum(lm is not None for lm in found[100:])
    # 89 and 0 here; one face scores -0.002 against the threshold 0, every other is 0.06 or more away
    assert faces >= 85 and false_alarms <= 5
    # points of these 100 px faces span -3..105 here, at most a pixel from another machine's
    assert all(lm.shape == (68, 2) and np.all((lm > -10) & (lm < 110)) for lm in found if lm is not None)


def test_frames_strict_or_skipping(dlib_detector, astronaut):
    grey = np.full((64, 64, 3), 128, np.uint8)
    with pytest.raises(NoFaceError, match="^frame 1: no face"):
        dlib_detector.detect_frames([astronaut, grey])
    found = dlib_detector.detect_frames([astronaut, grey], skip_missing=True)
    assert found[0].shape == (68, 2) and found[1] is None


def test_folder_and_video_sources(dlib_detector, astronaut, camera, tmp_path):
    from common.video import write_video

    write_image(tmp_path / "photos" / "a_face.png", astronaut)
    write_image(tmp_path / "photos" / "b_camera.png", camera)
    found = dlib_detector.detect_path(tmp_path / "photos", skip_missing=True)
    assert list(found) == ["a_face", "b_camera"] and found["b_camera"] is None
    np.testing.assert_array_equal(found["a_face"], dlib_detector.detect(astronaut))
    with pytest.raises(NoFaceError, match=r"photos \[b_camera\]: no face"):
        dlib_detector.detect_path(tmp_path / "photos")

    video = write_video(tmp_path / "clip.mp4", [astronaut[40:296, 96:352]] * 5)
    frames, total = named_frames(video, every_k=2)
    assert total == 3
    found = dlib_detector.detect_path(video, every_k=2)
    assert list(found) == ["00000", "00002", "00004"]
    assert all(lm.shape == (68, 2) for lm in found.values())


def test_bad_input_is_one_line_error(dlib_detector, tmp_path):
    with pytest.raises(InputError, match="uint8"):
        dlib_detector.detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(InputError, match="unknown landmark backend 'mtcnn'"):
        LandmarkDetector(backend="mtcnn")
    with pytest.raises(InputError, match="unknown main_face rule"):
        LandmarkDetector(main_face="biggest")
    with pytest.raises(InputError, match="input not found"):
        named_frames(tmp_path / "nothing")


def test_face_descriptor_separates_identities(astronaut, hopper):
    from skimage.transform import rescale

    ref = face_descriptor(astronaut)
    assert ref.shape == (128,) and ref.dtype == np.float32
    small = (rescale(astronaut, 0.6, channel_axis=2) * 255).astype(np.uint8)
    # dlib: same person below 0.6. 0.15 and 0.68 here; a pixel's move of the points changes them by
    # hundredths
    assert np.linalg.norm(face_descriptor(small) - ref) < 0.3
    assert np.linalg.norm(face_descriptor(hopper) - ref) > 0.6


def test_save_load_round_trip_and_errors(tmp_path):
    lm = np.random.default_rng(0).uniform(0, 256, (68, 2))
    path = save_landmarks(tmp_path / "a" / "00000.npy", lm)
    loaded = load_landmarks(path)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, lm.astype(np.float32))
    assert [p.name for p in path.parent.iterdir()] == ["00000.npy"]  # no temp file left
    with pytest.raises(InputError, match="landmark file not found"):
        load_landmarks(tmp_path / "missing.npy")
    np.save(tmp_path / "short.npy", lm[:5])
    with pytest.raises(InputError, match=r"expected \(68, 2\) landmarks, got float64 \(5, 2\)"):
        load_landmarks(tmp_path / "short.npy")
    (tmp_path / "junk.npy").write_text("not numpy")
    with pytest.raises(InputError, match="not a readable .npy"):
        load_landmarks(tmp_path / "junk.npy")
    with pytest.raises(InputError, match=r"must be \(N, 2\)"):
        save_landmarks(tmp_path / "bad.npy", np.zeros(68))


# ----------------------------------------------------------------------------- face_alignment
@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """An empty torch hub cache, so nothing the user downloaded is found."""
    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # undo any set_dir; restored after the test
    return tmp_path / "torch_home" / "hub"


@pytest.fixture(scope="module")
def random_fan_weights(tmp_path_factory):
    """FAN's real architecture with random weights, under the official file name."""
    import face_alignment
    import torch

    folder = tmp_path_factory.mktemp("fan_weights")
    torch.manual_seed(0)
    torch.save(face_alignment.models.FAN(4).state_dict(), folder / FAN_FILE)
    return folder


def test_fan_missing_weights_is_one_line_error_without_download(empty_torch_home, offline):
    with pytest.raises(InputError) as info:
        LandmarkDetector(backend="face_alignment")
    message = str(info.value)
    assert "\n" not in message
    for part in (
        FAN_FILE,
        f"https://www.adrianbulat.com/downloads/python-fan/{FAN_FILE}",
        SFD_FILE,
        str(empty_torch_home / "checkpoints"),
        "--fan_weights",
        "--backend dlib",
    ):
        assert part in message
    assert not (empty_torch_home / "checkpoints").exists()  # nothing was created or fetched


def test_fan_with_dlib_detector_needs_only_the_fan_file(empty_torch_home, tmp_path, offline):
    with pytest.raises(InputError) as info:
        LandmarkDetector(backend="face_alignment", face_detector="dlib", weights_dir=tmp_path)
    assert FAN_FILE in str(info.value) and SFD_FILE not in str(info.value)
    assert "--fan_weights" not in str(info.value)  # the user already named the folder


def test_fan_sfd_needs_the_detector_weights_too(empty_torch_home, random_fan_weights, offline):
    with pytest.raises(InputError, match=f"{SFD_FILE} \\(download .*python-fan/{SFD_FILE}\\)") as info:
        LandmarkDetector(backend="face_alignment", weights_dir=random_fan_weights)
    assert f"{FAN_FILE} (download" not in str(info.value)


def test_fan_loads_from_weights_dir_and_leaves_the_hub_alone(empty_torch_home, random_fan_weights, offline):
    import torch

    detector = LandmarkDetector(backend="face_alignment", face_detector="dlib", weights_dir=random_fan_weights)
    expected = torch.load(random_fan_weights / FAN_FILE, weights_only=True)["conv1.weight"]
    assert torch.equal(detector._fan.face_alignment_net.conv1.weight, expected)
    assert torch.hub.get_dir() == str(empty_torch_home)
    assert not (empty_torch_home / "checkpoints").exists()


@pytest.mark.slow  # about 15-25 s: numba compiles FAN's heatmap decoder on the first image
def test_fan_landmarks_real_code_path(empty_torch_home, random_fan_weights, astronaut, offline):
    detector = LandmarkDetector(backend="face_alignment", face_detector="dlib", weights_dir=random_fan_weights)
    lm = detector.detect(astronaut)
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    # random weights put the points anywhere in FAN's crop around the face box [179,83,266,170]
    assert np.all(np.abs(lm - (222, 116)) < 150)
    with pytest.raises(NoFaceError, match="face_alignment detector"):
        detector.detect(np.full((128, 128, 3), 128, np.uint8))


# ------------------------------------------------------------ face_alignment, fast and offline
@pytest.fixture
def interpreted_heatmap_decoder(monkeypatch):
    """face-alignment's two numba-jitted helpers (heatmap peaks to image points) run as the plain
    Python they are compiled from: the same code and results, without the 15-25 s compilation
    (the slow test above runs them compiled)."""
    from face_alignment import utils

    monkeypatch.setattr(utils, "_get_preds_fromhm", utils._get_preds_fromhm.py_func)
    monkeypatch.setattr(utils, "transform_np", utils.transform_np.py_func)


# Where the one-face S3FD weights below put their face in a 128x128 image: a prior of the
# stride-128 level (a 2x2 map here), centre x and y 64 or 192 and side 4 * 128, as the box offsets
# are zero; the four overlap so much that non-maximum suppression keeps one.
PRIOR_SIDE, PRIOR_CORNERS = 512.0, (-192.0, -64.0)


@pytest.fixture(scope="module")
def fan_and_sfd_weights(tmp_path_factory, random_fan_weights):
    """A weights folder holding both files FAN's default (S3FD) path loads, in face-alignment
    1.5.0's layout: the FAN file above and S3FD's real architecture with a random trunk whose
    heads are zero but for their biases, set so that every anchor is background except the
    coarsest (stride 128) level's, which are faces with their priors' boxes."""
    import shutil

    import torch
    from face_alignment.detection.sfd.net_s3fd import s3fd

    folder = tmp_path_factory.mktemp("fan_sfd_weights")
    shutil.copyfile(random_fan_weights / FAN_FILE, folder / FAN_FILE)
    torch.manual_seed(1)
    state = s3fd().state_dict()
    for key, value in state.items():
        if "_mbox_" in key:
            value.zero_()
        if key.endswith("_mbox_conf.bias"):  # background logit(s) first, the face logit last
            value[:-1], value[-1] = (-10.0, 10.0) if key.startswith("conv7_2") else (10.0, -10.0)
    torch.save(state, folder / SFD_FILE)
    return folder


def test_fan_default_detector_from_weights_dir(
    empty_torch_home, fan_and_sfd_weights, interpreted_heatmap_decoder, offline
):
    """The default face_alignment path (S3FD + FAN) built from `weights_dir`, run on an image."""
    import torch

    detector = LandmarkDetector(backend="face_alignment", weights_dir=fan_and_sfd_weights)
    saved_sfd = torch.load(fan_and_sfd_weights / SFD_FILE, weights_only=True)
    saved_fan = torch.load(fan_and_sfd_weights / FAN_FILE, weights_only=True)
    sfd_net = detector._fan.face_detector.face_detector
    assert torch.equal(sfd_net.conv1_1.weight, saved_sfd["conv1_1.weight"])
    assert torch.equal(sfd_net.conv7_2_mbox_conf.bias, saved_sfd["conv7_2_mbox_conf.bias"])
    assert torch.equal(detector._fan.face_alignment_net.conv1.weight, saved_fan["conv1.weight"])

    image = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    faces = detector.detect_all(image)
    assert len(faces) == 1
    face = faces[0]
    assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float32
    assert face.box.shape == (4,) and face.box.dtype == np.float32
    np.testing.assert_allclose(face.box[2:] - face.box[:2], PRIOR_SIDE, atol=1e-3)
    assert all(np.isclose(corner, PRIOR_CORNERS, atol=1e-3).any() for corner in face.box[:2])
    assert face.score > 0.99  # S3FD's confidence, not the landmarks' (~1 - e^-20 here)
    # FAN's points lie in its crop, mapped back to image pixels: face-alignment crops a square of
    # side 200 * (w + h) / 195 around the box centre moved up by 0.12 h
    (x1, y1, x2, y2), side = face.box, 200 * (face.box[2] + face.box[3] - face.box[0] - face.box[1]) / 195
    centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2 - 0.12 * (y2 - y1)])
    assert np.all(np.abs(face.landmarks - centre) <= side / 2 + 1)
    np.testing.assert_array_equal(detector.detect(image), face.landmarks)
    assert torch.hub.get_dir() == str(empty_torch_home)
    assert not (empty_torch_home / "checkpoints").exists()


def test_fan_landmarks_fast(empty_torch_home, random_fan_weights, astronaut, interpreted_heatmap_decoder, offline):
    """What the slow test checks, with the heatmap decoder interpreted."""
    detector = LandmarkDetector(backend="face_alignment", face_detector="dlib", weights_dir=random_fan_weights)
    faces = detector.detect_all(astronaut)
    assert len(faces) >= 1 and faces[0].landmarks.shape == (68, 2) and faces[0].landmarks.dtype == np.float32
    # with FAN's dlib detector the score is the mean heatmap peak of the 68 points
    assert 0 < faces[0].score < 1
    assert np.all(np.abs(faces[0].landmarks - (222, 116)) < 150)
    with pytest.raises(NoFaceError, match=r"^image: no face found \(face_alignment detector\)$"):
        detector.detect(np.full((128, 128, 3), 128, np.uint8))
