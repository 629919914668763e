#!/usr/bin/env bash
# Stage 1 of LSR: layout pre-training (segmentation loss against the oracle parsing maps).
# Values as in the authors' scripts/train_lsr_pretrain.sh; extra flags are passed through
# (e.g. --vgg19_weights_path=... or --batch_size=2). Run from the repository root.
set -euo pipefail

parent_train_dir=./_train
experiment_title=lsr_pretraining
experiment_description="Pretrain layouts."

model_type=pretrain_layout
run_mode=train
K=4                             # few-shot inputs while training; any K works at test time
num_frame_concatenations=10     # frames stored in each training example
trainset_size=1090194           # examples in the processed training set
total_k_examples=1090           # training length in thousands of examples (one epoch)
batch_size=4
dataset_name=voxceleb2
dataset_parent_dir=_datasets/preprocessed_voxceleb2/tfrecords
trainset_pattern='vox2_dev*.tfrecords'
evalset_pattern='vox2_test*.tfrecords'
train_dir="$parent_train_dir/$experiment_title"

# Loss weights for layout pre-training.
w_loss_gan=0
w_loss_vgg=0.01
w_loss_l1=0
w_loss_segmentation=10
w_loss_vgg_face_recon=0
w_loss_identity=0
w_loss_z_l2=0
w_loss_z_layout_l2=1

exec python -m lsr.main \
  --model_type="$model_type" --run_mode="$run_mode" --K="$K" \
  --num_frame_concatenations="$num_frame_concatenations" --train_dir="$train_dir" \
  --trainset_pattern="$trainset_pattern" --evalset_pattern="$evalset_pattern" \
  --experiment_description="$experiment_description" --dataset_name="$dataset_name" \
  --dataset_parent_dir="$dataset_parent_dir" --trainset_size="$trainset_size" \
  --batch_size="$batch_size" --total_k_examples="$total_k_examples" \
  --w_loss_gan="$w_loss_gan" --w_loss_vgg="$w_loss_vgg" \
  --w_loss_segmentation="$w_loss_segmentation" --w_loss_vgg_face_recon="$w_loss_vgg_face_recon" \
  --w_loss_identity="$w_loss_identity" --w_loss_l1="$w_loss_l1" --w_loss_z_l2="$w_loss_z_l2" \
  --w_loss_z_layout_l2="$w_loss_z_layout_l2" \
  "$@"
