#!/usr/bin/env bash
# Stage 2 of LSR: meta-learning of the full two-step model, warm-started from stage 1
# (train_lsr_pretrain.sh). Values as in the authors' scripts/train_lsr_meta_learning.sh; the
# step and example counters continue from the pre-training run, so total_k_examples includes
# its 1090k examples. Extra flags are passed through. Run from the repository root.
set -euo pipefail

parent_train_dir=./_train
experiment_title=lsr_meta_learning
experiment_description="Meta learning."

model_type=two_step_syn
run_mode=train
warmup_checkpoint=_train/lsr_pretraining
K=4
num_frame_concatenations=10
trainset_size=1090194
total_k_examples=16350          # thousands of examples, pre-training included
num_lr_decay_k_examples=1090    # the learning rate decays over the last 1090k examples
batch_size=4
dataset_name=voxceleb2
dataset_parent_dir=_datasets/preprocessed_voxceleb2/tfrecords
trainset_pattern='vox2_dev*.tfrecords'
evalset_pattern='vox2_test*.tfrecords'
train_dir="$parent_train_dir/$experiment_title"

# Loss weights for meta-learning.
w_loss_gan=1
w_loss_vgg=0.1
w_loss_l1=1
w_loss_segmentation=0
w_loss_vgg_face_recon=0.002
w_loss_identity=1               # the authors suggest 20 for subject fine-tuning
w_loss_z_l2=1
w_loss_z_layout_l2=1

exec python -m lsr.main \
  --model_type="$model_type" --run_mode="$run_mode" --warmup_checkpoint="$warmup_checkpoint" \
  --K="$K" --num_frame_concatenations="$num_frame_concatenations" --train_dir="$train_dir" \
  --trainset_pattern="$trainset_pattern" --evalset_pattern="$evalset_pattern" \
  --experiment_description="$experiment_description" --dataset_name="$dataset_name" \
  --dataset_parent_dir="$dataset_parent_dir" --trainset_size="$trainset_size" \
  --batch_size="$batch_size" --total_k_examples="$total_k_examples" \
  --num_lr_decay_k_examples="$num_lr_decay_k_examples" \
  --w_loss_gan="$w_loss_gan" --w_loss_vgg="$w_loss_vgg" \
  --w_loss_segmentation="$w_loss_segmentation" --w_loss_vgg_face_recon="$w_loss_vgg_face_recon" \
  --w_loss_identity="$w_loss_identity" --w_loss_l1="$w_loss_l1" --w_loss_z_l2="$w_loss_z_l2" \
  --w_loss_z_layout_l2="$w_loss_z_layout_l2" \
  "$@"
