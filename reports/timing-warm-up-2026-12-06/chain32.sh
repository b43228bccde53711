#!/bin/bash
# the precision curve's timing group again with the warm-up on the timed shapes (effir/speed.py), then the tests
cd /work/main
R=runs/llm/rebuilt; B=runs/llm/baselines
FULL=smollm2-ft-3k-mixed3-r64; CUT=smollm2-effir-2x-gact-mixed3-r64; D15=smollm2-effir-d15-mixed3-r64
set -x
/usr/bin/time -v .venv/bin/effir bench --dataset ../shared/data/beir/scifact --out runs/llm/speed-warm-up --work runs/llm/systems \
  --reference $FULL --control --timing-docs 64 --timing-queries 128 --rounds 5 --threads 2 --speed-only \
  --systems $FULL=$R/$FULL,$FULL-bf16=$B/$FULL-bf16,$D15=$R/$D15,$D15-bf16=$B/$D15-bf16,$CUT-bf16=$B/$CUT-bf16 \
  --parent $FULL-bf16=$FULL --parent $D15-bf16=$D15 --peer $D15=$FULL
echo "CHAIN32 SPEED DONE rc=$? $(date)"
/usr/bin/time -v make test
echo "CHAIN32 DONE rc=$? $(date)"
