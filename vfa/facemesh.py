"""mediapipe FaceMesh: 478 face landmarks (468 mesh points + 10 iris points) of one image.

VFA picks its controllers among these points (`vfa.controllers`). The legacy `solutions`
FaceMesh graph and its face-landmark model ship inside the mediapipe 0.10.14 wheel and run
offline; mediapipe 1.x dropped the legacy solutions. The project installs that wheel without
its declared dependencies (jax, opencv-contrib-python, sounddevice are not needed by FaceMesh
and would bring a second OpenCV): see the Makefile's install recipe.

`import mediapipe` pulls in its Tasks API, which imports TensorFlow when it is installed only to
fetch a documentation decorator (3 s, and TensorFlow must stay out of the PyTorch test process).
The import below hides TensorFlow for that one import; mediapipe then uses its own no-op.
"""

from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager

import numpy as np

from common.errors import InputError, NoFaceError

NUM_LANDMARKS = 478
MEDIAPIPE_PIN = "mediapipe==0.10.14"
INSTALL_HINT = f"pip install --no-deps {MEDIAPIPE_PIN} attrs (see the Makefile's install recipe)"


@contextmanager
def _tensorflow_hidden():
    """Make `import tensorflow` fail inside the block unless TensorFlow is already loaded."""
    if "tensorflow" in sys.modules:
        yield
        return
    sys.modules["tensorflow"] = None
    try:
        yield
    finally:
        if sys.modules.get("tensorflow", 0) is None:
            del sys.modules["tensorflow"]


@contextmanager
def _quiet():
    """Silence the deprecation warnings mediapipe 0.10.14 triggers in protobuf, matplotlib and
    pyparsing (nothing a user can act on)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def face_mesh_solution():
    """mediapipe's `solutions.face_mesh` module, or a one-line InputError saying how to install it."""
    try:
        with _tensorflow_hidden(), _quiet():
            import mediapipe
    except ImportError as exc:
        raise InputError(f"mediapipe is not installed or broken ({exc}): {INSTALL_HINT}") from None
    solutions = getattr(mediapipe, "solutions", None)
    if solutions is None or not hasattr(solutions, "face_mesh"):
        version = getattr(mediapipe, "__version__", "?")
        raise InputError(f"mediapipe {version} has no legacy FaceMesh solution (1.x dropped it): {INSTALL_HINT}")
    return solutions.face_mesh


class FaceMesh:
    """FaceMesh in static-image mode with refined landmarks (the original's settings: one face,
    detection confidence 0.5). Use as a context manager or call `close()`."""

    def __init__(self, max_num_faces: int = 1, min_detection_confidence: float = 0.5):
        face_mesh = face_mesh_solution()
        try:
            self._graph = face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=max_num_faces,
                refine_landmarks=True,
                min_detection_confidence=min_detection_confidence,
            )
        except (RuntimeError, FileNotFoundError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise InputError(f"mediapipe FaceMesh cannot start, its model files may be missing ({reason})") from None

    def __enter__(self) -> FaceMesh:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._graph.close()

    def landmarks(self, image: np.ndarray, pixels: bool = False) -> np.ndarray | None:
        """[478, 3] float32 landmarks of the first face of an HxWx3 uint8 image, or None.

        The image goes to mediapipe as given (mediapipe expects RGB; VFA's original feeds BGR).
        Normalised: x, y in [0, 1] of the width / height, z on the scale of x. With `pixels`:
        x·W, y·H, z·W.
        """
        image = np.ascontiguousarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InputError(f"FaceMesh needs an HxWx3 uint8 image, got {image.dtype} {list(image.shape)}")
        with _quiet():
            result = self._graph.process(image)
        if not result.multi_face_landmarks:
            return None
        points = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], dtype=np.float32)
        if pixels:
            height, width = image.shape[:2]
            points *= np.array([width, height, width], dtype=np.float32)
        return points


def face_mesh_landmarks(image: np.ndarray, pixels: bool = False, name: str = "image") -> np.ndarray:
    """The 478 landmarks of the face in `image` (see `FaceMesh.landmarks`); NoFaceError if none."""
    with FaceMesh() as mesh:
        points = mesh.landmarks(image, pixels=pixels)
    if points is None:
        raise NoFaceError(f"{name}: no face found (mediapipe FaceMesh)")
    return points
