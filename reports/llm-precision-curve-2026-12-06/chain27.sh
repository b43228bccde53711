#!/bin/bash
# int8-token on mixed3: the quality of demo-llm's precision on CPUs without native bf16, beside the cached fp32 and bf16 encodes.
cd /work/main
R=runs/llm/rebuilt; B=runs/llm/baselines
FULL=smollm2-ft-3k-mixed3-r64; CUT=smollm2-effir-2x-gact-mixed3-r64
set -x
/usr/bin/time -v .venv/bin/effir bench --dataset ../shared/data/beir/scifact --out runs/llm/eval-int8-token --work runs/llm/systems \
  --reference $FULL --rounds 0 --threads 2 \
  --systems $FULL-int8-token=$B/$FULL-int8-token,$FULL-bf16=$B/$FULL-bf16,$CUT=$R/$CUT,$FULL=$R/$FULL \
  --parent $FULL-int8-token=$FULL --parent $FULL-bf16=$FULL --peer $CUT=$FULL
echo "CHAIN27 DONE rc=$?"
