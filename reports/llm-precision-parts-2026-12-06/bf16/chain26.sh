#!/bin/bash
# After the tests: the fp32 parents encoded beside the bf16 copies (cached), for paired p-values on this machine.
cd /work/main
until grep -q "CHAIN25 DONE" runs/chain25.log; do sleep 15; done
R=runs/llm/rebuilt; B=runs/llm/baselines
FULL=smollm2-ft-3k-mixed3-r64; CUT=smollm2-effir-2x-gact-mixed3-r64
set -x
/usr/bin/time -v .venv/bin/effir bench --dataset ../shared/data/beir/scifact --out runs/llm/eval-bf16-parents --work runs/llm/systems \
  --reference $FULL --rounds 0 --threads 2 \
  --systems $FULL-bf16=$B/$FULL-bf16,$CUT-bf16=$B/$CUT-bf16,$CUT=$R/$CUT,$FULL=$R/$FULL \
  --parent $FULL-bf16=$FULL --parent $CUT-bf16=$CUT --peer $CUT=$FULL
echo "CHAIN26 DONE rc=$?"
