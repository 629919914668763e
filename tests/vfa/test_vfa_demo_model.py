"""vfa.demo_model: the committed demo model, the recipes, and both stages end to end for one step."""

import pytest
from cli_testlib import one_line_error

from common.sample import training_count
from common.video import read_depth_video, read_video
from vfa import train
from vfa.checkpoint import load_inference_generator, read_vfa_checkpoint
from vfa.demo_model import CLIP_COPIES, DEMO_DIR, MODEL_FILE, RECIPES, main

FRAMES = 8  # the sample's clips: the first 4 frames train, the last 4 are held out


@pytest.fixture(scope="module")
def demo_sample(make_small_sample):
    return make_small_sample(FRAMES, 256)


def recipe(stage: int):
    return train.build_parser().parse_args([f"@{RECIPES[stage - 1]}"])


def test_the_recipes_are_vfa_train_flags():
    stage1, stage2 = recipe(1), recipe(2)
    assert not stage1.distilling and stage2.distilling
    for flags in (stage1, stage2):
        assert (flags.size, flags.channel_divisor, flags.latent_dim_style, flags.in_channels) == (256, 8, 128, 4)
        assert flags.lr_freq < flags.iter  # one drop of the learning rate near the end
        assert flags.lambda_loss_vgg == 0  # no ImageNet VGG19 ships in a package
    assert (stage1.lambda_loss_rgb_l1, stage2.lambda_loss_rgb_l1) == (200, 0)
    assert stage1.from_scratch and stage2.from_scratch  # no LIA.pt to start from
    # the fine flows follow the 64 px one, learnt after a warm-up; half of the pairs are identity pairs
    assert (stage1.flow_head_max_size, stage1.flow_warmup) == (64, 1000)
    assert stage1.same_frame_prob == stage2.same_frame_prob == 0.5
    overridden = train.build_parser().parse_args([f"@{RECIPES[0]}", "--iter", "7"])
    assert overridden.iter == 7  # later flags win


def test_committed_demo_model_loads_strictly():
    path = DEMO_DIR / MODEL_FILE
    generator = load_inference_generator(path)  # strict: any missing or unexpected key raises
    content = read_vfa_checkpoint(path)
    flags, stage2 = content["args"], recipe(2)
    assert content["g_optim"] is None and flags.data_root is None and flags.exp_path is None
    assert (flags.iter, flags.stage1_iter) == (stage2.iter, recipe(1).iter)
    assert (flags.channel_divisor, flags.latent_dim_style) == (stage2.channel_divisor, stage2.latent_dim_style)
    assert generator.distilling and path.stat().st_size < 8 * 2**20


def test_one_step_end_to_end(demo_sample, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    main(["--sample", str(demo_sample), "--work", str(work), "--out", str(out), "--steps", "1"])
    trained = training_count(FRAMES)
    for person in ("identity_1", "identity_2"):
        folder = work / "data" / "MMFace4D" / person
        videos = sorted((folder / "color").glob("*.mp4"))
        assert len(videos) == CLIP_COPIES
        first, later = read_video(videos[0]), read_video(videos[CLIP_COPIES // 2])
        assert first.shape == later.shape == (trained, 256, 256, 3)  # training frames only
        # copy k starts k/CLIP_COPIES of the way into the clip (frames are H.264 at crf 3: compare loosely)
        shift = trained // 2
        error = [abs(later[0].astype(float) - first[i]).mean() for i in range(trained)]
        assert min(error) == error[shift] < 2.0
        assert read_depth_video(folder / "depth" / "0.nut").shape == (trained, 256, 256)
    content = read_vfa_checkpoint(out / MODEL_FILE)
    load_inference_generator(out / MODEL_FILE)
    assert (content["args"].iter, content["args"].stage1_iter, content["g_optim"]) == (1, 1, None)
    (out / MODEL_FILE).unlink()
    main(["--sample", str(demo_sample), "--work", str(work), "--out", str(out), "--steps", "1"])  # same work folder
    load_inference_generator(out / MODEL_FILE)


@pytest.mark.parametrize("case", ["zero_steps", "missing_sample"])
def test_bad_input_is_a_one_line_error(case, demo_sample, tmp_path, capsys):
    sample = tmp_path / "nope" if case == "missing_sample" else demo_sample
    argv = ["--sample", str(sample), "--out", str(tmp_path / "out")]
    argv += ["--steps", "0"] if case == "zero_steps" else []
    one_line_error(capsys, main, argv, "--steps" if case == "zero_steps" else "make_sample_data")
    assert not (tmp_path / "out").exists()
