#!/bin/bash
# Precision on this AMD EPYC (avx512_bf16): interleaved speed first, then SciFact quality of the bf16 copies beside their fp32 parents.
set -x
cd /work/main
R=runs/llm/rebuilt; B=runs/llm/baselines
FULL=smollm2-ft-3k-mixed3-r64; CUT=smollm2-effir-2x-gact-mixed3-r64
/usr/bin/time -v .venv/bin/effir bench --dataset ../shared/data/beir/scifact --out runs/llm/speed-precision --work runs/llm/systems \
  --reference $FULL --control --timing-docs 64 --timing-queries 64 --rounds 5 --threads 2 --speed-only \
  --systems $FULL=$R/$FULL,$FULL-bf16=$B/$FULL-bf16,$FULL-int8-token=$B/$FULL-int8-token,$CUT=$R/$CUT,$CUT-bf16=$B/$CUT-bf16,$CUT-int8-token=$B/$CUT-int8-token \
  --parent $FULL-bf16=$FULL --parent $FULL-int8-token=$FULL --parent $CUT-bf16=$CUT --parent $CUT-int8-token=$CUT
echo "SPEED DONE rc=$?"
/usr/bin/time -v .venv/bin/effir bench --dataset ../shared/data/beir/scifact --out runs/llm/eval-bf16 --work runs/llm/systems \
  --reference $FULL --rounds 0 --threads 2 \
  --systems $FULL-bf16=$B/$FULL-bf16,$CUT-bf16=$B/$CUT-bf16,$CUT=$R/$CUT,$FULL=$R/$FULL \
  --parent $FULL-bf16=$FULL --parent $CUT-bf16=$CUT --peer $CUT=$FULL
echo "CHAIN24 DONE rc=$?"
