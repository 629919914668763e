"""common.image: file round trips, range conversions and one-line errors."""

import numpy as np
import pytest
from numerics import ROUNDING, assert_close

from common.errors import InputError, cli_main
from common.image import image_to_tensor, list_images, read_image, tensor_to_image, to_float, to_uint8, write_image


def test_png_roundtrip_is_exact_and_atomic(tmp_path, astronaut):
    path = write_image(tmp_path / "a.png", astronaut)
    assert np.array_equal(read_image(path), astronaut)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_read_resizes_and_converts_grey(tmp_path):
    grey = (np.arange(64 * 32) % 256).astype(np.uint8).reshape(64, 32)
    write_image(tmp_path / "g.png", grey)
    img = read_image(tmp_path / "g.png", size=16)
    assert img.shape == (16, 16, 3) and img.dtype == np.uint8
    assert np.array_equal(img[..., 0], img[..., 2])


def test_range_conversions_are_inverse():
    x = np.array([[0, 128, 255]], dtype=np.uint8)
    # values of magnitude 1: atol 1e-6 is ~8 float32 ulps of elementwise (IEEE-exact) arithmetic
    assert np.allclose(to_float(x, (-1, 1)), [[-1.0, 128 / 255 * 2 - 1, 1.0]], rtol=0, atol=1e-6)
    assert np.array_equal(to_uint8(to_float(x, (-1, 1)), (-1, 1)), x)
    assert np.array_equal(to_uint8(np.array([-0.5, 1.5])), [0, 255])  # clipped


def test_tensor_conversions(astronaut):
    t = image_to_tensor(astronaut[None], (-1, 1))
    assert tuple(t.shape) == (1, 3, 512, 512)
    # every value and channel against float64 arithmetic; values near 0 (pixels 127, 128) keep the
    # float32 rounding of 2x/255 - 1 (~1e-7), far beyond a relative tolerance of their own size
    assert_close(t[0], np.moveaxis(astronaut, 2, 0) / 255 * 2 - 1, ROUNDING, "image_to_tensor")
    assert np.array_equal(tensor_to_image(t, (-1, 1))[0], astronaut)


def test_errors_name_the_file(tmp_path, capsys):
    with pytest.raises(InputError, match="missing.png: image file not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "junk.jpg").write_bytes(b"\x00" * 10)
    with pytest.raises(InputError, match="junk.jpg: not a readable image"):
        read_image(tmp_path / "junk.jpg")
    with pytest.raises(InputError, match="not a directory"):
        list_images(tmp_path / "nope")

    @cli_main
    def main():
        read_image(tmp_path / "junk.jpg")

    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "junk.jpg" in err
