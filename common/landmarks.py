"""68-point face landmarks (iBUG-300W order, (68, 2) float32 (x, y) input pixels), two backends.

* `dlib` (default): HOG face detector + dlib's 68-point shape predictor shipped by the
  `face-recognition-models` package. Works offline everywhere.
* `face_alignment`: FAN (face-alignment 1.5.0), what FSRT, LSR and FSTH used. FAN takes no
  weights path and downloads on first use, so its files are looked up locally before it is
  built and a missing one is a one-line `InputError` saying where to get it; nothing downloads.

Images are HxWx3 uint8 RGB arrays (or image paths). `named_frames` walks an image, a folder of
images or a video; `save_landmarks` / `load_landmarks` handle the per-frame `.npy` files;
`face_descriptor` is dlib's 128-D identity embedding (for identity metrics).
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from common.errors import InputError, NoFaceError

NUM_POINTS = 68
BACKENDS = ("dlib", "face_alignment")
MAIN_FACE_RULES = ("score", "largest", "first")
FAN_URL = "https://www.adrianbulat.com/downloads/python-fan/"
FAN_FILE = "2DFAN4-11f355bf06.pth.tar"
SFD_FILE = "s3fd-619a316812.pth"
FAN_DETECTORS = ("sfd", "dlib")


class Face(NamedTuple):
    landmarks: np.ndarray  # (68, 2) float32 (x, y)
    box: np.ndarray  # [x1, y1, x2, y2] float32
    score: float  # detector confidence (see LandmarkDetector.detect_all)


# --------------------------------------------------------------------------------------- dlib
def dlib_models_dir() -> Path:
    """The `models/` folder of `face-recognition-models`, found without importing the package
    (its `__init__` needs `pkg_resources`, which current setuptools no longer ships)."""
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("dlib models not found: pip install face-recognition-models, or use --backend face_alignment")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def _dlib_model_file(name: str) -> str:
    path = dlib_models_dir() / name
    if not path.is_file():
        raise InputError(f"{path}: dlib model file missing; reinstall face-recognition-models")
    return str(path)


@functools.cache
def _dlib_models():
    """HOG detector and 68-point predictor, loaded once per process (about 1.5 s)."""
    import dlib

    predictor = dlib.shape_predictor(_dlib_model_file("shape_predictor_68_face_landmarks.dat"))
    return dlib.get_frontal_face_detector(), predictor


@functools.cache
def _dlib_face_recognizer():
    import dlib

    return dlib.face_recognition_model_v1(_dlib_model_file("dlib_face_recognition_resnet_model_v1.dat"))


def face_descriptor(image: np.ndarray, landmarks: np.ndarray | None = None, num_jitters: int = 0) -> np.ndarray:
    """dlib's 128-D identity embedding (float32, not unit-norm; same person if L2 < 0.6).

    `landmarks` (68, 2) skip detection; otherwise the main face is found with the dlib backend.
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


# ------------------------------------------------------------------------------ face-alignment
def fan_weight_files(face_detector: str = "sfd") -> list[str]:
    """Basenames FAN needs: the 2D-FAN4 weights, plus S3FD's when it is the face detector."""
    return [FAN_FILE, SFD_FILE] if face_detector == "sfd" else [FAN_FILE]


def find_fan_weights(weights_dir: str | os.PathLike | None = None, face_detector: str = "sfd") -> dict[str, Path]:
    """Paths of the files FAN needs in `weights_dir` (default: the torch hub cache).

    A missing file is a one-line InputError naming it, its URL and where to put it.
    """
    import torch

    folder = Path(weights_dir) if weights_dir is not None else Path(torch.hub.get_dir()) / "checkpoints"
    paths = {name: folder / name for name in fan_weight_files(face_detector)}
    missing = [name for name, path in paths.items() if not path.is_file()]
    if missing:
        where = "" if weights_dir is not None else " (or pass --fan_weights DIR holding them)"
        raise InputError(
            f"face_alignment weights missing in {folder}: "
            + "; ".join(f"{name} (download {FAN_URL}{name})" for name in missing)
            + f"; put them there{where}, or use --backend dlib"
        )
    return paths


@contextlib.contextmanager
def _hub_dir_holding(fan_path: Path):
    """A torch hub dir whose `checkpoints/` holds FAN's file, while the block runs.

    FAN only loads `<hub>/checkpoints/<basename>`; a private hub dir with a link to the user's
    file avoids writing into (or picking a stale file from) the user's own cache.
    """
    import torch

    if fan_path.parent == Path(torch.hub.get_dir()) / "checkpoints":
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
        # on CUDA face-alignment's dlib detector is the CNN one and would download it; dlib's models ship it
        kwargs = {"path_to_detector": _dlib_model_file("mmod_human_face_detector.dat")} if "cuda" in device else {}
    with _hub_dir_holding(fan_path), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dlib detector's deprecation notice
        return FaceAlignment(
            LandmarksType.TWO_D,
            device=device,
            flip_input=flip_input,
            face_detector=face_detector,
            face_detector_kwargs=kwargs,
            compile=False,
        )


# ------------------------------------------------------------------------------------ detector
def _as_rgb_uint8(image: np.ndarray, label: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InputError(f"{label}: expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise InputError(f"{label}: expected an HxWx3 RGB image, got shape {image.shape}")
    return np.ascontiguousarray(image[..., :3])  # dlib refuses non-contiguous views


def _extent_area(face: Face) -> float:
    """FSTH's size of a face: (max - min + 1) of its landmarks in x times the same in y."""
    span = face.landmarks.max(0) - face.landmarks.min(0) + 1
    return float(span[0] * span[1])


class LandmarkDetector:
    """68 landmarks of the main face of RGB images.

    `backend='dlib'`: HOG with `upsample` extra pyramid levels (1 finds faces down to about 40
    px; it also gives weak false boxes, e.g. 0.12 on the astronaut's suit against 1.16 for her
    face, hence the main face is the best-scoring box).
    `backend='face_alignment'`: FAN on `device`, `flip_input` as face-alignment's (FSRT and LSR
    used False, FSTH True), `face_detector` 'sfd' (S3FD) or 'dlib' (HOG, no file needed);
    `weights_dir` holds the files named by `fan_weight_files`, default the torch hub cache
    `<torch.hub.get_dir()>/checkpoints`. The main face is the largest one (landmark extent, as
    FSTH chose it).
    `main_face` overrides the rule: 'score', 'largest' or 'first' (detector order, as LSR).
    """

    def __init__(
        self,
        backend: str = "dlib",
        device: str = "cpu",
        flip_input: bool = False,
        face_detector: str = "sfd",
        weights_dir: str | os.PathLike | None = None,
        upsample: int = 1,
        main_face: str | None = None,
    ):
        if backend not in BACKENDS:
            raise InputError(f"unknown landmark backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.main_face = main_face or ("score" if backend == "dlib" else "largest")
        if self.main_face not in MAIN_FACE_RULES:
            raise InputError(f"unknown main_face rule {main_face!r}; choose one of {', '.join(MAIN_FACE_RULES)}")
        self.backend, self.upsample = backend, upsample
        if backend == "dlib":
            self._detector, self._predictor = _dlib_models()
            return
        if face_detector not in FAN_DETECTORS:
            raise InputError(
                f"unknown face_alignment detector {face_detector!r}; choose one of {', '.join(FAN_DETECTORS)}"
            )
        paths = find_fan_weights(weights_dir, face_detector)  # before face-alignment can download
        self._fan = _load_fan(device, bool(flip_input), face_detector, paths[FAN_FILE].resolve(), paths.get(SFD_FILE))

    def detect_all(self, image: np.ndarray | str | os.PathLike) -> list[Face]:
        """Every face found, the main face first.

        `score` is the HOG detector's (dlib), S3FD's confidence, or with FAN's dlib detector
        the mean heatmap peak of the 68 points.
        """
        image, _ = self._read(image)
        faces = self._dlib_faces(image) if self.backend == "dlib" else self._fan_faces(image)
        if self.main_face == "first":
            return faces
        key = (lambda face: face.score) if self.main_face == "score" else _extent_area
        return sorted(faces, key=key, reverse=True)  # stable: ties keep detector order

    def detect(self, image: np.ndarray | str | os.PathLike, name: str | None = None) -> np.ndarray:
        """(68, 2) landmarks of the main face; `NoFaceError` naming the file (or `name`) if none."""
        image, label = self._read(image, name)
        faces = self.detect_all(image)
        if not faces:
            raise NoFaceError(f"{label}: no face found ({self.backend} detector)")
        return faces[0].landmarks

    def detect_frames(self, frames: Iterable[np.ndarray], skip_missing: bool = False) -> list[np.ndarray | None]:
        """Landmarks per frame of a list or (N,H,W,3) batch; no face gives None if `skip_missing`,
        else a NoFaceError naming the frame index."""
        return [self._detect_or_none(frame, f"frame {index}", skip_missing) for index, frame in enumerate(frames)]

    def detect_path(
        self, path: str | os.PathLike, every_k: int = 1, skip_missing: bool = False
    ) -> dict[str, np.ndarray | None]:
        """Landmarks per frame of an image, a folder of images or a video, keyed as `named_frames`."""
        frames, _ = named_frames(path, every_k)
        return {name: self._detect_or_none(frame, f"{path} [{name}]", skip_missing) for name, frame in frames}

    def _detect_or_none(self, frame: np.ndarray, label: str, skip_missing: bool) -> np.ndarray | None:
        try:
            return self.detect(frame, name=label)
        except NoFaceError:
            if skip_missing:
                return None
            raise

    def _read(self, image, name: str | None = None) -> tuple[np.ndarray, str]:
        if isinstance(image, (str, os.PathLike)):
            from common.image import read_image

            return read_image(image), name or str(image)
        label = name or "image"
        return _as_rgb_uint8(image, label), label

    def _dlib_faces(self, image: np.ndarray) -> list[Face]:
        boxes, scores, _ = self._detector.run(image, self.upsample, 0.0)
        faces = []
        for rect, score in zip(boxes, scores):
            parts = self._predictor(image, rect).parts()
            points = np.array([(p.x, p.y) for p in parts], dtype=np.float32)
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float32)
            faces.append(Face(points, box, float(score)))
        return faces

    def _fan_faces(self, image: np.ndarray) -> list[Face]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its "No faces were detected." is our NoFaceError
            points, point_scores, boxes = self._fan.get_landmarks_from_image(
                image, return_bboxes=True, return_landmark_score=True
            )
        if points is None:
            return []
        faces = []
        for landmarks, landmark_scores, box in zip(points, point_scores, boxes):
            box = np.asarray(box, dtype=np.float32)
            score = float(box[4]) if len(box) > 4 else float(np.mean(landmark_scores))
            faces.append(Face(np.asarray(landmarks, dtype=np.float32)[:, :2], box[:4], score))
        return faces


# ----------------------------------------------------------------------------------------- IO
def named_frames(path: str | os.PathLike, every_k: int = 1) -> tuple[Iterator[tuple[str, np.ndarray]], int | None]:
    """(name, RGB frame) pairs of an image, a folder of images or a video, and their count if known.

    Names: the file stem for images; for a video the frame index `00000`, `00005`, ... (with
    `every_k` 5), so sparse extraction stays aligned with the video. Input errors are raised
    here, before any frame is read.
    """
    from common.image import IMAGE_SUFFIXES, list_images, read_image

    path = Path(path)
    if every_k < 1:
        raise InputError(f"every_k must be >= 1, got {every_k}")
    if not path.exists():
        raise InputError(f"{path}: input not found")
    if path.is_dir():
        images = list_images(path)[::every_k]
        if not images:
            raise InputError(f"{path}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return ((image.stem, read_image(image)) for image in images), len(images)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return iter([(path.stem, read_image(path))]), 1
    from common.video import iter_frames, video_info

    count = video_info(path).frames
    frames = iter_frames(path, every_k=every_k)
    total = None if count is None else -(-count // every_k)
    return ((f"{i * every_k:05d}", frame) for i, frame in enumerate(frames)), total


def save_landmarks(path: str | os.PathLike, landmarks: np.ndarray) -> Path:
    """Write (N, 2) landmarks as a float32 `.npy`, atomically."""
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
    if landmarks.shape != (num_points, 2) or not np.issubdtype(landmarks.dtype, np.number):
        raise InputError(f"{path}: expected ({num_points}, 2) landmarks, got {landmarks.dtype} {landmarks.shape}")
    return landmarks.astype(np.float32)
