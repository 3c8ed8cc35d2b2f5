#!/usr/bin/env bash
# The one-GPU check, under 8 minutes in all:
#   (a) `accelerate launch` of train.py: stage 1 end to end with LoRA, bf16, RAVDESS-4, whisper-base, one fold;
#   (b) whisper-base extraction throughput on the GPU vs the CPU, and the cosine of their features.
# Writes bench/results/gpu_check.json. Stops non-zero when CUDA is not available or was not used.
#
#   bash bench/gpu_check.sh                      # RAVDESS from ../shared/data/ravdess
#   RAVDESS=/data/ravdess bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${RAVDESS:-../shared/data/ravdess}
WORK=${GPU_CHECK_WORK:-$(mktemp -d)}
python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: CUDA is not available; this check must run on a GPU')"
start=$(date +%s)
accelerate launch --num_processes 1 --num_machines 1 --dynamo_backend no --mixed_precision bf16 train.py \
    --dataset_dir "$DATA" --folds 6 --classes angry happy neutral sad --audio_encoder openai/whisper-base \
    --encoder_mode lora --mixed_precision bf16 --max_folds 1 --final_model false --report false --disable_tqdm true \
    --output_dir "$WORK/train"
python bench/gpu_check.py --train_results "$WORK/train/results.json" --train_s $(( $(date +%s) - start )) \
    --dataset_dir "$DATA" --out bench/results/gpu_check.json
