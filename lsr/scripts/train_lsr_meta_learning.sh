#!/usr/bin/env bash
# LSR stage 2, meta-learning of the whole two-step model, started from the networks and the
# counters of stage 1 (train_lsr_pretrain.sh). Because the counters carry over, the example
# budget below counts the 1090k pre-training examples too. The settings are those of the
# authors' training script; flags given to this script are appended (so they win). Run it
# from the repository root.
set -euo pipefail

run_dir=./_train/lsr_meta_learning
stage1_dir=_train/lsr_pretraining

# Data: the exported VoxCeleb2 tfrecords; 1090194 training examples, each holding 10 frames.
data_flags=(
  --dataset_name=voxceleb2 --dataset_parent_dir=_datasets/preprocessed_voxceleb2/tfrecords
  --trainset_pattern='vox2_dev*.tfrecords' --evalset_pattern='vox2_test*.tfrecords'
  --trainset_size=1090194 --num_frame_concatenations=10
)

# Schedule: K=4 shots, 4 examples per step, 16350 thousand examples counted from the start of
# stage 1; the learning rate falls linearly during the final 1090 thousand.
schedule_flags=(--K=4 --batch_size=4 --total_k_examples=16350 --num_lr_decay_k_examples=1090)

# Objective of this stage: adversarial, L1 and face-identity terms at weight 1, VGG perceptual
# x0.1, VGGFace reconstruction x0.002, L2 penalties on both latents x1; the segmentation loss
# is switched off so that the layout is learned freely. (For fine-tuning on one subject a much
# larger identity weight, about 20, is worth trying.)
loss_flags=(
  --w_loss_gan=1 --w_loss_l1=1 --w_loss_identity=1
  --w_loss_vgg=0.1 --w_loss_vgg_face_recon=0.002
  --w_loss_z_l2=1 --w_loss_z_layout_l2=1 --w_loss_segmentation=0
)

exec python -m lsr.main --run_mode=train --model_type=two_step_syn \
  --warmup_checkpoint="$stage1_dir" --train_dir="$run_dir" --experiment_description="Meta learning." \
  "${data_flags[@]}" "${schedule_flags[@]}" "${loss_flags[@]}" "$@"
