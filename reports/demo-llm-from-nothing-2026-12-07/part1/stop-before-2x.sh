#!/bin/bash
# stop `make demo-llm` (process group $1) when its bench reaches the 2x cut's SciFact encode, so that the test suite
# can run alone; the bench resumes from its cached stages when run again
while ! grep -aq "== scifact: smollm2-effir-2x-gact-mixed3-r64$" runs/demo-llm.log; do sleep 5; done
date -u +%FT%TZ > runs/demo-llm.stopped
kill -TERM -- -"$1"
