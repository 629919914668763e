"""fsth.finetune end to end: a tiny meta-training checkpoint fine-tuned on the sample data."""

import shutil

import numpy as np
import pytest
import torch
from numerics import FORWARD, ROUNDING, assert_close

from common.image import read_image
from fsth.checkpoint import build_meta_networks, read_meta_checkpoint
from fsth.finetune import LOG_COLUMNS, finetune, finetune_networks, main, plot_losses, video_frames
from fsth.loss import Loss_EG_finetune
from fsth.meta_train import meta_train


@pytest.fixture(scope="module")
def checkpoint(tiny_config, tiny_loss, tmp_path_factory):
    return meta_train(tiny_config, tmp_path_factory.mktemp("run"), tiny_loss, max_steps=2)


@pytest.fixture(scope="module")
def test_dataset(sample_data, tmp_path_factory):
    """The original's <person>/<video>/<clip>/<frame> tree: person_a has the 6 driving frames in
    two clips, person_b one photo (flat in its video folder); .npy landmarks beside the frames."""
    root = tmp_path_factory.mktemp("test_dataset")
    for i, frame in enumerate(sorted((sample_data / "driving").glob("*.png"))):
        clip = root / "person_a" / "video" / f"{i // 3}"
        clip.mkdir(parents=True, exist_ok=True)
        shutil.copy(frame, clip / frame.name)
        shutil.copy(sample_data / "landmarks" / "driving" / f"{frame.stem}.npy", clip / f"{frame.stem}.npy")
    video = root / "person_b" / "photo"
    video.mkdir(parents=True)
    shutil.copy(sample_data / "source_2.png", video / "source_2.png")
    shutil.copy(sample_data / "landmarks" / "source_2.npy", video / "source_2.npy")
    return root


@pytest.fixture(scope="module")
def ft_config(tiny_config, test_dataset):
    return {
        **tiny_config,
        "test_dataset": str(test_dataset),
        "finetune_T": 4,
        "finetune_batch_size": 2,
        "finetune_epoch": 6,
    }


def test_initialisation_follows_the_original(checkpoint, ft_config, test_dataset):
    ckpt = read_meta_checkpoint(checkpoint)
    x, y = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    G, D = finetune_networks(ckpt, ft_config, x, y)
    G_meta, E, D_meta = build_meta_networks(ckpt)
    with torch.no_grad():
        e_mean = E.eval()(x, y).mean(0, keepdim=True)
        # the same E on the same batch, then one matrix product / one addition: ROUNDING
        assert_close(G.adain, (e_mean @ ckpt.G["P.weight"].t()).view(1, -1, 2), ROUNDING, "adain")
        assert_close(D.w, ckpt.D["w0"] + e_mean, ROUNDING, "w")
        G.eval()
        G_meta.eval()
        # same image before tuning: the whole generator, its AdaIN parameters computed once by
        # the conversion or by G's own projection (another matrix product shape): FORWARD
        assert_close(G(y[:1]), G_meta(y[:1], e_mean), FORWARD, "image")
    assert len(video_frames(test_dataset / "person_a" / "video")) == 6


def test_finetune_writes_images_and_lowers_the_loss(checkpoint, ft_config, test_dataset, tiny_vgg_files, tmp_path):
    loss = Loss_EG_finetune.from_config(
        ft_config, vgg19_arch=tiny_vgg_files["vgg19"][0], vggface_arch=tiny_vgg_files["vggface"][0]
    )
    people = [test_dataset / "person_a"]
    ckpt = read_meta_checkpoint(checkpoint)
    written = finetune(ckpt, ft_config, people, tmp_path, drivers=[*people, test_dataset / "person_b"], L_EG=loss)
    assert [p.name for p in written] == ["o_0.jpg"]
    out, training = read_image(tmp_path / "o_0.jpg"), read_image(tmp_path / "t_0.jpg")
    assert out.shape == (32, 4 * 32, 3) and training.shape == (32, 4 * 32, 3)
    before, after, driving = out[:, :32].astype(int), out[:, 32:64].astype(int), out[:, 64:96].astype(int)
    assert np.abs(before - after).mean() > 1  # tuning changed G
    photo = read_image(test_dataset / "person_b" / "photo" / "source_2.png", 32).astype(int)
    assert np.abs(driving - photo).mean() < 16  # the other person's frame (JPEG at 32 px)
    rows = np.loadtxt(tmp_path / "log.txt", delimiter=",", ndmin=2)
    assert rows.shape == (6 * 2, len(LOG_COLUMNS))  # 6 epochs x 2 batches of 2
    cnt = rows[:, LOG_COLUMNS.index("L_CNT")]
    # measured 8% lower; runs on the avx2 and default kernel paths agree to the log's 4 decimals
    assert cnt[-3:].mean() < cnt[:3].mean()
    assert plot_losses(tmp_path / "log.txt", tmp_path / "losses.png").stat().st_size > 1000
    # the checkpoint is untouched: every person starts from the meta-trained weights
    assert torch.equal(read_meta_checkpoint(checkpoint).G["P.weight"], ckpt.G["P.weight"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["nope.pkl"], "nope.pkl"),
        (["{ckpt}", "--test_dataset", "{tmp}/missing"], "test dataset folder not found"),
        (
            ["{ckpt}", "--subject", "{data}/person_a", "--test_dataset", "{data}", "--finetune_epoch", "1"],
            "finetune_T = 8",
        ),
    ],
)
def test_cli_errors_are_one_line(args, message, checkpoint, test_dataset, tmp_path, capsys):
    args = [a.format(ckpt=checkpoint, tmp=tmp_path, data=test_dataset) for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--output_dir", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
