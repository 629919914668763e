#!/usr/bin/env bash
# LSR stage 1, layout pre-training: the layout generator learns the oracle face-parsing maps
# (cross-entropy), no image generator and no adversarial term. The settings are those of the
# authors' training script; flags given to this script are appended (so they win), e.g.
# --batch_size=2 or --vgg19_weights_path=... Run it from the repository root.
set -euo pipefail

run_dir=./_train/lsr_pretraining

# Data: the exported VoxCeleb2 tfrecords; 1090194 training examples, each holding 10 frames.
data_flags=(
  --dataset_name=voxceleb2 --dataset_parent_dir=_datasets/preprocessed_voxceleb2/tfrecords
  --trainset_pattern='vox2_dev*.tfrecords' --evalset_pattern='vox2_test*.tfrecords'
  --trainset_size=1090194 --num_frame_concatenations=10
)

# Schedule: K=4 shots per example (inference may use any K), 4 examples per step, and
# 1090 thousand examples in all, i.e. about one pass over the training set.
schedule_flags=(--K=4 --batch_size=4 --total_k_examples=1090)

# Objective of this stage: segmentation (x10) with VGG perceptual (x0.01) and the L2 penalty on
# the layout latent (x1); adversarial, L1, face-identity and style-latent terms are off.
loss_flags=(
  --w_loss_segmentation=10 --w_loss_vgg=0.01 --w_loss_z_layout_l2=1
  --w_loss_gan=0 --w_loss_l1=0 --w_loss_vgg_face_recon=0 --w_loss_identity=0 --w_loss_z_l2=0
)

exec python -m lsr.main --run_mode=train --model_type=pretrain_layout \
  --train_dir="$run_dir" --experiment_description="Pretrain layouts." \
  "${data_flags[@]}" "${schedule_flags[@]}" "${loss_flags[@]}" "$@"
