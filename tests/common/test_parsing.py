"""common.parsing: official state_dict layouts, strict loading, preprocessing, inference shapes,
LSR's oracle merge rule and the palettes. Networks are random-initialised (the official weights
are not on any registry); the fixed seed makes every run identical."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from numerics import FORWARD, assert_close, mismatch
from PIL import Image

from common.errors import CheckpointMismatchError, InputError
from common.image import image_to_tensor
from common.parsing import (
    BISENET_LABELS,
    BISENET_TO_CELEBAMASK,
    CELEBAMASK_LABELS,
    CELEBAMASK_PALETTE,
    LSR_PALETTE,
    colorize,
    load_parser,
    lsr_merge,
    lsr_oracle_segmentation,
    resize_labels,
)
from common.parsing.bisenet import BiSeNet
from common.parsing.unet import CelebAMaskUNet

# (key, shape) pairs of the released checkpoints, read from the original model definitions.
UNET_KEYS = {
    "conv1.conv1.0.weight": (16, 3, 3, 3),
    "conv1.conv1.1.running_mean": (16,),
    "conv1.conv2.1.num_batches_tracked": (),
    "center.conv2.0.weight": (256, 256, 3, 3),
    "up_concat4.up.weight": (256, 128, 2, 2),
    "up_concat4.conv.conv1.0.weight": (128, 256, 3, 3),
    "up_concat1.conv.conv2.1.running_var": (16,),
    "final.weight": (19, 16, 1, 1),
    "final.bias": (19,),
}
BISENET_KEYS = {
    "cp.resnet.conv1.weight": (64, 3, 7, 7),
    "cp.resnet.layer1.1.bn2.running_mean": (64,),
    "cp.resnet.layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "cp.resnet.layer4.1.conv2.weight": (512, 512, 3, 3),
    "cp.arm16.conv.conv.weight": (128, 256, 3, 3),
    "cp.arm32.conv_atten.weight": (128, 128, 1, 1),
    "cp.arm32.bn_atten.running_var": (128,),
    "cp.conv_head16.conv.weight": (128, 128, 3, 3),
    "cp.conv_avg.conv.weight": (128, 512, 1, 1),
    "ffm.convblk.conv.weight": (256, 256, 1, 1),
    "ffm.conv1.weight": (64, 256, 1, 1),
    "ffm.conv2.weight": (256, 64, 1, 1),
    "conv_out.conv.conv.weight": (256, 256, 3, 3),
    "conv_out.conv_out.weight": (19, 256, 1, 1),
    "conv_out16.conv.bn.weight": (64,),
    "conv_out32.conv_out.weight": (19, 64, 1, 1),
}


def agree_but_near_ties(labels, reference, logits, tolerance):
    """Label maps equal wherever the reference's best logit leads the runner-up by more than
    `tolerance`: the same network computed another way (batch size, memory layout, CPU kernel)
    moves logits by rounding, which may flip an argmax only where two classes nearly tie."""
    top2 = torch.topk(logits, 2, dim=0).values
    decided = (top2[0] - top2[1] > tolerance).numpy()
    assert decided.mean() > 0.99  # the exemption stays small (0.2% of pixels here)
    np.testing.assert_array_equal(labels[decided], reference[decided])


def calibrated(net, image):
    """Random weights with BatchNorm statistics of a real photo, so label maps are not constant."""
    x = image_to_tensor(np.array(Image.fromarray(image).resize((64, 64))), (-1.0, 1.0))[None]
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: one batch sets the statistics
    with torch.no_grad():
        net.train()(torch.cat([x, x.flip(3)]))  # two samples: BiSeNet has 1x1 BatchNorm inputs
    return net.eval()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, astronaut):
    """A plain U-Net state_dict and a `module.`-prefixed BiSeNet one (DataParallel style)."""
    folder = tmp_path_factory.mktemp("parsing")
    torch.manual_seed(0)
    unet = calibrated(CelebAMaskUNet(), astronaut).state_dict()
    bisenet = calibrated(BiSeNet(19), astronaut).state_dict()
    torch.save(unet, folder / "model.pth")
    torch.save({f"module.{k}": v for k, v in bisenet.items()}, folder / "79999_iter.pth")
    return {"celebamask_unet": (folder / "model.pth", unet), "bisenet": (folder / "79999_iter.pth", bisenet)}


@pytest.fixture(scope="module")
def unet(checkpoints):
    return load_parser("celebamask_unet", checkpoints["celebamask_unet"][0])


@pytest.fixture(scope="module")
def bisenet(checkpoints):
    return load_parser("bisenet", checkpoints["bisenet"][0], imsize=128)


@pytest.mark.parametrize(
    "network, entries, params, keys",
    [
        (CelebAMaskUNet, 136, 1_944_355, UNET_KEYS),
        (lambda: BiSeNet(19), 191, 13_300_416, BISENET_KEYS),
    ],
)
def test_state_dict_layout_is_the_official_one(network, entries, params, keys):
    net = network()
    state = net.state_dict()
    assert len(state) == entries
    assert sum(p.numel() for p in net.parameters()) == params
    for key, shape in keys.items():
        assert tuple(state[key].shape) == shape, key
    # BiSeNet: no spatial path, no ImageNet classifier head
    assert not any(k.startswith(("sp.", "cp.resnet.fc")) for k in state)


@pytest.mark.parametrize("model", ["celebamask_unet", "bisenet"])
def test_strict_load_restores_every_tensor(model, checkpoints):
    path, saved = checkpoints[model]
    loaded = load_parser(model, path, imsize=64).network.state_dict()
    assert list(loaded) == list(saved)  # the bisenet file carried `module.` prefixes
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)


def test_wrong_checkpoints_give_one_line_errors(checkpoints, tmp_path):
    with pytest.raises(CheckpointMismatchError) as info:
        load_parser("bisenet", checkpoints["celebamask_unet"][0])
    message = str(info.value)
    assert "\n" not in message and "missing" in message and "unexpected" in message
    assert "cp.resnet.conv1.weight" in message

    eleven = tmp_path / "eleven_classes.pth"
    torch.save(CelebAMaskUNet(n_classes=11).state_dict(), eleven)
    with pytest.raises(CheckpointMismatchError, match=r"mis-shaped: final\.weight \(11, 16, 1, 1\)"):
        load_parser("celebamask_unet", eleven)

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="garbage.pth: not a torch checkpoint"):
        load_parser("celebamask_unet", garbage)


def test_missing_checkpoint_says_where_the_official_file_comes_from(tmp_path):
    with pytest.raises(InputError, match=r"checkpoint not found.*models/parsenet/model\.pth.*Google Drive"):
        load_parser("celebamask_unet", tmp_path / "model.pth")
    with pytest.raises(InputError, match="79999_iter.pth.*154JgKpzCPW82qINcVieuPH3fZ2e0P812"):
        load_parser("bisenet", None)
    with pytest.raises(InputError, match="unknown face-parsing model 'deeplab'"):
        load_parser("deeplab", tmp_path / "x.pth")


def test_unet_preprocessing_is_the_originals(unet, astronaut):
    # Resize((128, 128), NEAREST) -> ToTensor -> Normalize(0.5, 0.5), batch of one
    resized = np.array(Image.fromarray(astronaut).resize((128, 128), Image.NEAREST))
    x = (torch.from_numpy(resized).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        expected = unet.network(x[None])
    logits = unet.logits([astronaut], imsize=128)
    assert logits.shape == (1, 19, 128, 128)
    # the reference input is channels-last in memory (permuted), so other convolution kernels run
    assert_close(logits, expected, FORWARD, "U-Net logits")


def test_bisenet_preprocessing_and_label_order(bisenet, astronaut):
    resized = np.array(Image.fromarray(astronaut).resize((128, 128), Image.BILINEAR))
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = (torch.from_numpy(resized).permute(2, 0, 1).float() / 255 - mean[:, None, None]) / std[:, None, None]
    with torch.no_grad():
        out, out16, out32 = bisenet.network(x[None])
    assert out.shape == out16.shape == out32.shape == (1, 19, 128, 128)
    logits = bisenet.logits([astronaut])
    assert_close(logits, out, FORWARD, "BiSeNet logits")
    native = logits[0].argmax(0).numpy()  # parse's own logits: the same computation, so exact
    # maps come out in CelebAMask-HQ order
    np.testing.assert_array_equal(bisenet.parse(astronaut, at_input_size=False), BISENET_TO_CELEBAMASK[native])


@pytest.mark.parametrize("model", ["unet", "bisenet"])
@pytest.mark.parametrize("shape", [(512, 512), (301, 187)])
def test_parse_shapes_dtypes_and_determinism(model, shape, request, astronaut):
    parser = request.getfixturevalue(model)
    image = np.ascontiguousarray(astronaut[: shape[0], : shape[1]])
    labels = parser.parse(image, imsize=128)
    assert labels.shape == shape and labels.dtype == np.uint8
    assert labels.max() <= 18 and len(np.unique(labels)) > 1
    small = parser.parse(image, imsize=128, at_input_size=False)
    assert small.shape == (128, 128) and small.dtype == np.uint8
    np.testing.assert_array_equal(labels, resize_labels(small, shape))
    np.testing.assert_array_equal(parser.parse(image, imsize=128), labels)  # deterministic


def test_batch_matches_single_images(unet, astronaut):
    images = [astronaut, np.ascontiguousarray(astronaut[40:300, 100:333])]
    batch = unet.parse_batch(images, imsize=64)
    assert [b.shape for b in batch] == [(512, 512), (260, 233)]
    batch_logits = unet.logits(images, imsize=64)
    small = unet.parse_batch(images, imsize=64, at_input_size=False)
    for image, labels, logits, small_labels in zip(images, batch, batch_logits, small):
        np.testing.assert_array_equal(labels, resize_labels(small_labels, image.shape[:2]))
        single_logits = unet.logits([image], imsize=64)[0]
        # a batch of two may take other kernel blockings than a batch of one
        assert_close(logits, single_logits, FORWARD, "batch vs single logits")
        tolerance = 2 * FORWARD * float(single_logits.abs().max())  # two logits may each move by FORWARD
        agree_but_near_ties(small_labels, unet.parse(image, imsize=64, at_input_size=False), single_logits, tolerance)


def test_bad_inputs_are_one_line_errors(unet, astronaut):
    with pytest.raises(InputError, match="multiple of 16"):
        unet.parse(astronaut, imsize=250)
    with pytest.raises(InputError, match="HxWx3 uint8"):
        unet.parse(astronaut.astype(np.float32))
    with pytest.raises(InputError, match="HxWx3 uint8"):
        unet.parse(astronaut[..., 0])


def _nearest_index(src: int, dst: int) -> np.ndarray:
    return np.arange(dst) * src // dst  # OpenCV INTER_NEAREST: floor(i * src / dst)


def test_lsr_merge_rule_on_hand_made_maps():
    a = np.array(
        [
            [13, 13, 0, 0],  # the "256" run
            [13, 1, 1, 0],
            [17, 17, 2, 0],
            [18, 18, 18, 0],
        ],
        np.uint8,
    )
    b_grid = np.array(
        [
            [0, 14, 13, 0],  # what the "512" run says on the 256 grid
            [1, 1, 4, 0],
            [1, 1, 1, 0],
            [16, 1, 0, 10],
        ],
        np.uint8,
    )
    # Nearest 2x downsampling keeps the even pixels; the odd ones hold r_eye (5), which would
    # leak into the result if the wrong pixels were sampled.
    b = np.full((8, 8), 5, np.uint8)
    b[::2, ::2] = b_grid
    expected = np.array(
        [
            [13, 14, 0, 0],  # hair from a unless b has a face label (hat) there
            [1, 1, 4, 0],  # a's own face labels never count
            [17, 17, 1, 0],  # neck and cloth from a win over everything
            [18, 18, 18, 10],
        ],
        np.uint8,
    )
    np.testing.assert_array_equal(lsr_merge(a, b, size=4), expected)


def test_lsr_merge_resizes_to_224_nearest():
    a = (np.arange(256 * 256) % 19).reshape(256, 256).astype(np.uint8)
    merged = lsr_merge(a, np.zeros((512, 512), np.uint8))
    keep = np.where(np.isin(a, (13, 17, 18)), a, 0)
    idx = _nearest_index(256, 224)
    assert merged.shape == (224, 224) and merged.dtype == np.uint8
    np.testing.assert_array_equal(merged, keep[np.ix_(idx, idx)])


class _StubParser:
    """Returns fixed maps per imsize, to check what the oracle asks for and returns."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.maps = {
            256: rng.integers(0, 19, (256, 256), dtype=np.uint8),
            512: rng.integers(0, 19, (512, 512), dtype=np.uint8),
        }
        self.calls = []

    def parse(self, image, imsize, at_input_size):
        self.calls.append((image.shape, imsize, at_input_size))
        return self.maps[imsize]


def test_lsr_oracle_runs_256_and_512_and_returns_224_maps():
    stub = _StubParser()
    result = lsr_oracle_segmentation(stub, np.zeros((224, 224, 3), np.uint8))
    assert stub.calls == [((224, 224, 3), 256, False), ((224, 224, 3), 512, False)]
    np.testing.assert_array_equal(result.merged, lsr_merge(stub.maps[256], stub.maps[512]))
    np.testing.assert_array_equal(
        result.segmap_256, stub.maps[256][np.ix_(_nearest_index(256, 224), _nearest_index(256, 224))]
    )
    np.testing.assert_array_equal(
        result.segmap_512, stub.maps[512][np.ix_(_nearest_index(512, 224), _nearest_index(512, 224))]
    )


class _Recording:
    """Passes calls through to a real parser and keeps the maps it returned."""

    def __init__(self, parser):
        self.parser, self.maps = parser, {}

    def parse(self, image, imsize, at_input_size):
        self.maps[imsize] = self.parser.parse(image, imsize, at_input_size=at_input_size)
        return self.maps[imsize]


def test_lsr_oracle_with_the_unet(unet, astronaut):
    frame = np.array(Image.fromarray(astronaut).resize((224, 224), Image.LANCZOS))
    recording = _Recording(unet)
    result = lsr_oracle_segmentation(recording, frame)
    assert recording.maps[256].shape == (256, 256) and recording.maps[512].shape == (512, 512)
    for labels in (result.merged, result.segmap_256, result.segmap_512):
        assert labels.shape == (224, 224) and labels.dtype == np.uint8 and labels.max() <= 18
    np.testing.assert_array_equal(result.merged, lsr_merge(recording.maps[256], recording.maps[512]))


def test_label_tables_agree():
    assert len(CELEBAMASK_LABELS) == len(BISENET_LABELS) == 19
    assert sorted(BISENET_TO_CELEBAMASK) == list(range(19))
    for bisenet_index, celeb_index in enumerate(BISENET_TO_CELEBAMASK):
        assert CELEBAMASK_LABELS[celeb_index] == BISENET_LABELS[bisenet_index]


def test_colorize_palettes():
    labels = np.arange(19, dtype=np.uint8).reshape(1, 19)
    celeb = colorize(labels)
    assert celeb.shape == (1, 19, 3) and celeb.dtype == np.uint8
    np.testing.assert_array_equal(celeb[0], CELEBAMASK_PALETTE)
    assert tuple(celeb[0, 1]) == (204, 0, 0) and tuple(celeb[0, 13]) == (0, 0, 204)
    assert tuple(celeb[0, 7]) == (51, 255, 255) and tuple(celeb[0, 18]) == (0, 204, 0)
    lsr = colorize(labels, palette="lsr")
    assert tuple(lsr[0, 7]) == (255, 204, 204) == tuple(LSR_PALETTE[7])
    assert (lsr[0] != celeb[0]).any(axis=1).tolist() == [i == 7 for i in range(19)]
    with pytest.raises(InputError, match="outside 0-18"):
        colorize(np.array([[19]]))
    with pytest.raises(InputError, match="unknown palette"):
        colorize(labels, palette="pascal")


def test_importing_the_package_does_not_import_torch():
    code = "import sys, common.parsing; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_labels_from_landmarks_on_the_astronaut(astronaut):
    from common.landmarks import LandmarkDetector
    from common.parsing import labels_from_landmarks

    lm = LandmarkDetector(backend="dlib").detect(astronaut)
    labels = labels_from_landmarks(lm, astronaut.shape[:2])
    assert labels.shape == (512, 512) and labels.dtype == np.uint8

    def at(point):
        x, y = np.round(point).astype(int)
        return CELEBAMASK_LABELS[labels[y, x]]

    # left/right are the subject's: iBUG 36-41 is the right eye, on the image's left
    assert lm[36:42, 0].mean() < lm[42:48, 0].mean()
    assert at(lm[36:42].mean(0)) == "r_eye" and at(lm[42:48].mean(0)) == "l_eye"
    assert at(lm[30] - [0, 0.3 * (lm[30, 1] - lm[27, 1])]) == "nose"
    assert at((lm[51] + lm[62]) / 2) == "u_lip" and at((lm[57] + lm[66]) / 2) == "l_lip"
    assert at((lm[3] + lm[48]) / 2) == "skin"
    assert at((lm[19] + lm[24]) / 2 - [0, 0.1 * (lm[8, 1] - lm[27, 1])]) == "skin"  # forehead
    assert labels[5, 5] == 0 and labels[-5, -5] == 0


def test_labels_from_coincident_landmarks():
    from common.parsing import labels_from_landmarks

    # dlib's whole-pixel points put closed lids on each other; a tiny face collapses altogether
    closed = np.array([(x, 50 + 40 * np.sin(x / 40)) for x in np.linspace(10, 110, 68)])
    closed[[37, 38, 43, 44]] = closed[[41, 40, 47, 46]]
    for points in (closed, np.full((68, 2), 60.0)):
        labels = labels_from_landmarks(points, (120, 120))
        assert labels.shape == (120, 120) and labels.dtype == np.uint8 and labels.max() <= 18


# ------------------------------------------------------------------------- parity with the originals
PARITY_GOLDEN = Path(__file__).parent / "data" / "parsing_original_outputs.npz"
PARITY_UNET_SHAPE = (2, 3, 32, 48)  # sides multiples of 16, as the U-Net needs
PARITY_BISENET_SHAPE = (2, 3, 80, 112)  # 1/32 scale is 3x4, so the nearest upsamplings are uneven
# Recorded elements: every 2nd (U-Net) / 4th (BiSeNet) pixel of each output, to keep the file small.
PARITY_STRIDE = {"unet": 2, "bisenet_out": 4, "bisenet_out16": 4, "bisenet_out32": 4}
# Scaled by 1.01 in the perturbation check: each network's first convolution (BatchNorm in eval
# mode uses its stored statistics, so it does not cancel the change).
PARITY_PERTURBED = {"celebamask_unet": "conv1.conv1.0.weight", "bisenet": "cp.resnet.conv1.weight"}


def random_state_dict(reference: dict) -> dict:
    """The parity weights: for every entry of `reference` (a state_dict), a value drawn from
    `np.random.RandomState(zlib.crc32(key.encode()))`, so it depends on the key and shape only.

    * `num_batches_tracked`: 0 (int64);
    * `running_var` and 1-D `weight` (BatchNorm scales): uniform(0.5, 1.5);
    * other 1-D entries (biases, BatchNorm shifts, `running_mean`): normal(0, 0.1);
    * convolution kernels: normal(0, sqrt(1 / fan_in)), fan_in = prod(shape[1:]), except the
      U-Net's 2x2-stride-2 transposed convolutions (`*.up.weight`, in x out x 2 x 2), where
      every output pixel sees one tap per input channel: fan_in = shape[0].
    Everything else float32.
    """
    import zlib

    values = {}
    for key, ref in reference.items():
        shape = tuple(ref.shape)
        rng = np.random.RandomState(zlib.crc32(key.encode()))
        if key.endswith("num_batches_tracked"):
            values[key] = torch.zeros(shape, dtype=torch.int64)
            continue
        if key.endswith("running_var") or (key.endswith(".weight") and len(shape) == 1):
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) == 1:
            value = rng.normal(0.0, 0.1, shape)
        else:
            fan_in = shape[0] if key.endswith(".up.weight") else int(np.prod(shape[1:]))
            value = rng.normal(0.0, np.sqrt(1.0 / fan_in), shape)
        values[key] = torch.from_numpy(value.astype(np.float32))
    return values


def parity_inputs() -> dict:
    """The recorded inputs: uniform(-1, 1) float32 NCHW from RandomState(0) (U-Net) and (1) (BiSeNet)."""
    return {
        "unet": np.random.RandomState(0).uniform(-1, 1, PARITY_UNET_SHAPE).astype(np.float32),
        "bisenet": np.random.RandomState(1).uniform(-1, 1, PARITY_BISENET_SHAPE).astype(np.float32),
    }


def parity_outputs(unet_net, bisenet_net) -> dict:
    """The recorded outputs of two networks in eval mode, subsampled by `PARITY_STRIDE`."""
    inputs = parity_inputs()
    with torch.no_grad():
        outputs = {"unet": unet_net.eval()(torch.from_numpy(inputs["unet"]))}
        heads = bisenet_net.eval()(torch.from_numpy(inputs["bisenet"]))
    outputs.update(zip(("bisenet_out", "bisenet_out16", "bisenet_out32"), heads))
    return {
        name: value[:, :, :: PARITY_STRIDE[name], :: PARITY_STRIDE[name]].numpy() for name, value in outputs.items()
    }


@pytest.fixture(scope="module")
def parity_checkpoints(tmp_path_factory):
    """The parity weights as checkpoint files of our layout (so they are loaded strictly by `load_parser`)."""
    folder = tmp_path_factory.mktemp("parity")
    files = {}
    for model, network in (("celebamask_unet", CelebAMaskUNet()), ("bisenet", BiSeNet(19))):
        files[model] = folder / f"{model}.pth"
        torch.save(random_state_dict(network.state_dict()), files[model])
    return files


def our_parity_outputs(parity_checkpoints, perturb: float = 1.0) -> dict:
    networks = {}
    for model, path in parity_checkpoints.items():
        networks[model] = load_parser(model, path).network
        if perturb != 1.0:
            with torch.no_grad():
                networks[model].state_dict()[PARITY_PERTURBED[model]] *= perturb
    return parity_outputs(networks["celebamask_unet"], networks["bisenet"])


def test_forward_passes_equal_the_originals(parity_checkpoints):
    """Our U-Net and BiSeNet give the original networks' outputs for the same weights and inputs.

    `data/parsing_original_outputs.npz` holds the originals' outputs, made with torch 2.13.0+cpu
    (CPU, float32, eval mode, no_grad) from
    * the U-Net: `face_parsing/unet.py` + `model_utils.py` of switchablenorms/CelebAMask-HQ at
      3f6c45df5e67130568f9459f24f8d6a5ff836d30, unmodified, built as `unet()` (its defaults);
    * BiSeNet: `model.py` + `resnet.py` of zllrunning/face-parsing.PyTorch at
      d2e684cf1588b46145635e8fe7bcc29544e5537e, built as `BiSeNet(19)`, with two patches to run
      offline: `import torchvision` (unused) removed from model.py, and in `Resnet18.init_weight`
      `modelzoo.load_url(resnet18_url)` replaced by `{}` (no ImageNet weights; they would be
      overwritten anyway).
    A script outside this repo put those files on `sys.path`, imported `random_state_dict`,
    `parity_inputs` and `parity_outputs` from this module, loaded
    `random_state_dict(net.state_dict())` into each original network with `strict=True`, and
    saved `parity_outputs(unet, bisenet)` with `np.savez_compressed`. Here the same weights
    reach our networks through checkpoint files and `load_parser` (strict).
    """
    ours = our_parity_outputs(parity_checkpoints)
    golden = np.load(PARITY_GOLDEN)
    assert sorted(golden.files) == sorted(ours)
    for name, value in ours.items():
        assert np.abs(golden[name]).max() > 1e-1, name  # a real signal, not an all-zero output
        assert_close(value, golden[name], FORWARD, name)


def test_a_perturbed_weight_breaks_parity(parity_checkpoints):
    """Each network's first convolution scaled by 1.01 moves every recorded output more than ten
    times `FORWARD` away."""
    ours = our_parity_outputs(parity_checkpoints, perturb=1.01)
    golden = np.load(PARITY_GOLDEN)
    for name, value in ours.items():
        assert mismatch(value, golden[name], FORWARD) is not None, name
