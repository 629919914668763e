"""68-point face landmarks (iBUG-300W order, (x, y) in input pixels) with two offline backends.

* `dlib` (default): HOG face detector + dlib's 68-point shape predictor from the
  `face-recognition-models` package. Ships its weights, runs anywhere.
* `face_alignment`: FAN (face-alignment 1.5.0), what FSRT, LSR and FSTH used. FAN has no path
  argument and downloads on first use, so its weights are looked up as local files first and a
  missing file is a one-line `InputError` that says where to get it; nothing is downloaded.

Also: `face_descriptor`, dlib's 128-D identity embedding (for identity metrics), and
`save_landmarks` / `load_landmarks` for the `.npy` files the tools write.
"""
from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

from common.errors import InputError, NoFaceError

NUM_POINTS = 68
BACKENDS = ("dlib", "face_alignment")
FAN_URL = "https://www.adrianbulat.com/downloads/python-fan/"
FAN_FILE = "2DFAN4-11f355bf06.pth.tar"
SFD_FILE = "s3fd-619a316812.pth"
FAN_DETECTORS = ("sfd", "dlib")


# --------------------------------------------------------------------------------------- dlib
def dlib_models_dir() -> Path:
    """The `models/` folder of `face-recognition-models`, found without importing the package
    (its `__init__` needs `pkg_resources`, which current setuptools no longer ships)."""
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("dlib models not found: pip install face-recognition-models (or use --backend face_alignment)")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def _dlib_model_file(name: str) -> str:
    path = dlib_models_dir() / name
    if not path.is_file():
        raise InputError(f"{path}: dlib model file missing; reinstall face-recognition-models")
    return str(path)


@functools.lru_cache(maxsize=None)
def _dlib_detector():
    import dlib

    return dlib.get_frontal_face_detector()


@functools.lru_cache(maxsize=None)
def _dlib_predictor():
    import dlib

    return dlib.shape_predictor(_dlib_model_file("shape_predictor_68_face_landmarks.dat"))


@functools.lru_cache(maxsize=None)
def _dlib_face_recognizer():
    import dlib

    return dlib.face_recognition_model_v1(_dlib_model_file("dlib_face_recognition_resnet_model_v1.dat"))


def _as_rgb_uint8(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InputError(f"{name}: expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise InputError(f"{name}: expected an HxWx3 RGB image, got shape {image.shape}")
    return np.ascontiguousarray(image[..., :3])  # dlib refuses non-contiguous views


# ------------------------------------------------------------------------------ face-alignment
def fan_weight_files(face_detector: str = "sfd") -> list[str]:
    """Basenames FAN needs: the 2D-FAN4 weights, plus S3FD's when it is the face detector."""
    return [FAN_FILE, SFD_FILE] if face_detector == "sfd" else [FAN_FILE]


def _find_fan_weights(weights_dir: str | os.PathLike | None, face_detector: str) -> dict[str, Path]:
    """Local paths of the needed files, or a one-line InputError for the first one missing."""
    import torch

    folder = Path(weights_dir) if weights_dir is not None else Path(torch.hub.get_dir()) / "checkpoints"
    found = {}
    for name in fan_weight_files(face_detector):
        path = folder / name
        if not path.is_file():
            hint = "" if weights_dir is not None else " (or pass --fan_weights DIR holding it)"
            raise InputError(f"face_alignment weights missing: {path}; download {FAN_URL}{name} into "
                             f"{folder}{hint}, or use --backend dlib")
        found[name] = path
    return found


@contextlib.contextmanager
def _hub_dir_holding(fan_path: Path):
    """A torch hub dir whose `checkpoints/` holds FAN's file, for the duration of the block.

    FAN loads `<hub>/checkpoints/<basename>` and takes no path, so a private hub dir with a link
    to the user's file avoids writing into (or reading a stale file from) the user's cache.
    """
    import torch

    hub = Path(torch.hub.get_dir())
    if fan_path.parent == hub / "checkpoints":
        yield
        return
    previous = torch.hub._hub_dir  # None means "follow $TORCH_HOME"; restore exactly that
    with tempfile.TemporaryDirectory(prefix="fan_hub_") as tmp:
        link = Path(tmp) / "checkpoints" / FAN_FILE
        link.parent.mkdir()
        try:
            link.symlink_to(fan_path.resolve())
        except OSError:  # file systems without symlinks
            import shutil

            shutil.copyfile(fan_path, link)
        torch.hub.set_dir(tmp)
        try:
            yield
        finally:
            torch.hub._hub_dir = previous


@functools.lru_cache(maxsize=4)
def _load_fan(device: str, flip_input: bool, face_detector: str, fan_path: Path, sfd_path: Path | None):
    from face_alignment import FaceAlignment, LandmarksType

    if face_detector == "sfd":
        kwargs = {"path_to_detector": str(sfd_path)}
    else:
        # on CUDA face-alignment's dlib detector is MMOD and would download it; dlib's models ship it
        kwargs = {"path_to_detector": _dlib_model_file("mmod_human_face_detector.dat")} if "cuda" in device else {}
    with _hub_dir_holding(fan_path), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dlib detector's deprecation notice
        return FaceAlignment(LandmarksType.TWO_D, device=device, flip_input=flip_input,
                             face_detector=face_detector, face_detector_kwargs=kwargs, compile=False)


# ------------------------------------------------------------------------------------ detector
class LandmarkDetector:
    """68 landmarks of the main face in an RGB image, as (68, 2) float32 (x, y) pixels.

    `backend='dlib'`: HOG with `upsample` extra pyramid levels; the main face is the
    highest-scoring box (at upsample 1 the astronaut photo also gives a weak box on the suit).
    `backend='face_alignment'`: FAN on `device` with `face_detector` 'sfd' (S3FD) or 'dlib'
    (HOG, no file needed); `weights_dir` holds the files named in `fan_weight_files`, default the
    torch hub cache `<torch.hub.get_dir()>/checkpoints`. The main face is the one with the
    largest landmark box, as FSTH chose it.
    """

    def __init__(self, backend: str = "dlib", device: str = "cpu", flip_input: bool = False,
                 face_detector: str = "sfd", weights_dir: str | os.PathLike | None = None,
                 upsample: int = 1):
        if backend not in BACKENDS:
            raise InputError(f"unknown landmark backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.upsample = upsample
        if backend == "dlib":
            self._detector, self._predictor = _dlib_detector(), _dlib_predictor()
            return
        if face_detector not in FAN_DETECTORS:
            raise InputError(f"unknown face_alignment detector {face_detector!r}; choose one of "
                             f"{', '.join(FAN_DETECTORS)}")
        paths = _find_fan_weights(weights_dir, face_detector)
        self._fan = _load_fan(device, bool(flip_input), face_detector,
                              paths[FAN_FILE].resolve(), paths.get(SFD_FILE))

    def detect_all(self, image: np.ndarray | str | os.PathLike) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """Every face as (landmarks (68,2) float32, box [x1,y1,x2,y2] float32, score), main face first.

        dlib's score is the HOG detector's; FAN's is S3FD's confidence, or with the dlib
        detector the mean heatmap peak of the 68 points.
        """
        image, _ = self._read(image)
        if self.backend == "dlib":
            return self._dlib_all(image)
        return self._fan_all(image)

    def detect(self, image: np.ndarray | str | os.PathLike, name: str | None = None) -> np.ndarray:
        """Landmarks of the main face; `NoFaceError` naming the file (or `name`) when there is none."""
        image, label = self._read(image, name)
        faces = self._dlib_all(image) if self.backend == "dlib" else self._fan_all(image)
        if not faces:
            raise NoFaceError(f"{label}: no face found ({self.backend} detector)")
        return faces[0][0]

    def landmarks_for_frames(self, frames: Iterable[np.ndarray], skip_missing: bool = True) -> list[np.ndarray | None]:
        """Landmarks per frame; a frame without a face gives None, or raises when not `skip_missing`."""
        result = []
        for index, frame in enumerate(frames):
            try:
                result.append(self.detect(frame, name=f"frame {index}"))
            except NoFaceError:
                if not skip_missing:
                    raise
                result.append(None)
        return result

    def _read(self, image, name: str | None = None) -> tuple[np.ndarray, str]:
        if isinstance(image, (str, os.PathLike)):
            from common.image import read_image

            return read_image(image), name or str(image)
        label = name or "image"
        return _as_rgb_uint8(image, label), label

    def _dlib_all(self, image: np.ndarray) -> list:
        boxes, scores, _ = self._detector.run(image, self.upsample, 0.0)
        faces = []
        for rect, score in sorted(zip(boxes, scores), key=lambda item: -item[1]):
            shape = self._predictor(image, rect)
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float32)
            faces.append((points, box, float(score)))
        return faces

    def _fan_all(self, image: np.ndarray) -> list:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "No faces were detected." is our NoFaceError
            points, point_scores, boxes = self._fan.get_landmarks_from_image(
                image, return_bboxes=True, return_landmark_score=True)
        if points is None:
            return []
        faces = []
        for lm, lm_score, box in zip(points, point_scores, boxes):
            lm = np.asarray(lm, dtype=np.float32)[:, :2]
            box = np.asarray(box, dtype=np.float32)
            score = float(box[4]) if len(box) > 4 else float(np.mean(lm_score))
            faces.append((lm, box[:4], score))
        extent = [np.prod(lm.max(0) - lm.min(0) + 1) for lm, _, _ in faces]
        return [faces[i] for i in np.argsort(extent, kind="stable")[::-1]]


# ------------------------------------------------------------------------------------ identity
def face_descriptor(image: np.ndarray, landmarks: np.ndarray | None = None, num_jitters: int = 0) -> np.ndarray:
    """dlib's 128-D face embedding (float32, not unit-norm; same person if L2 < 0.6).

    `landmarks` (68,2) skip detection; otherwise the main face is found with the dlib backend.
    """
    import dlib

    image = _as_rgb_uint8(image, "image")
    if landmarks is None:
        landmarks = LandmarkDetector("dlib").detect(image)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (NUM_POINTS, 2):
        raise InputError(f"face_descriptor needs (68, 2) landmarks, got {landmarks.shape}")
    lo, hi = landmarks.min(0), landmarks.max(0)
    rect = dlib.rectangle(int(lo[0]), int(lo[1]), int(np.ceil(hi[0])), int(np.ceil(hi[1])))
    shape = dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y))) for x, y in landmarks])
    return np.array(_dlib_face_recognizer().compute_face_descriptor(image, shape, num_jitters), dtype=np.float32)


# ----------------------------------------------------------------------------------------- IO
def save_landmarks(path: str | os.PathLike, landmarks: np.ndarray) -> Path:
    """Write (N,2) landmarks as float32 `.npy`, atomically."""
    path = Path(path)
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.ndim != 2 or landmarks.shape[1] != 2:
        raise InputError(f"{path}: landmarks must be (N, 2), got {landmarks.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npy")
    np.save(tmp, landmarks)
    os.replace(tmp, path)
    return path


def load_landmarks(path: str | os.PathLike, num_points: int = NUM_POINTS) -> np.ndarray:
    """Read a `.npy` of (num_points, 2) landmarks as float32, with one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: landmark file not found")
    try:
        landmarks = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable .npy landmark file ({exc.__class__.__name__})") from None
    if landmarks.shape != (num_points, 2):
        raise InputError(f"{path}: expected ({num_points}, 2) landmarks, got shape {landmarks.shape}")
    if not np.issubdtype(landmarks.dtype, np.number):
        raise InputError(f"{path}: landmarks must be numbers, got {landmarks.dtype}")
    return landmarks.astype(np.float32)
