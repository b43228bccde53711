#!/bin/bash
# rebuild the precision curve's six models, then the first-round timing diagnostic: as-is, then with a full warm-up
cd /work/main
FULL=smollm2-ft-3k-mixed3-r64; CUT=smollm2-effir-2x-gact-mixed3-r64; D15=smollm2-effir-d15-mixed3-r64
B=runs/llm/baselines; R=runs/llm/rebuilt
make THREADS=2 $B/$FULL-bf16/effir.json $B/$D15-bf16/effir.json $B/$CUT-bf16/effir.json || exit 1
echo "CHAIN30 BUILT $(date)"
S=$FULL=$R/$FULL,$FULL-bf16=$B/$FULL-bf16,$D15=$R/$D15,$D15-bf16=$B/$D15-bf16,$CUT-bf16=$B/$CUT-bf16
.venv/bin/python /tmp/diag/first_round.py as-is $S
echo "CHAIN30 AS-IS DONE $(date)"
.venv/bin/python /tmp/diag/first_round.py full-warmup $S
echo "CHAIN30 DONE $(date)"
