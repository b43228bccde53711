# Sourced by the reports' run.sh scripts (from the repository root).
# paired DATASET RUN AGAINST OUT: the paired tests and 95 % interval of two systems' runs (their folders under
# runs/llm/systems/DATASET/) on DATASET's test qrels, written to OUT
paired() {
  local runs=runs/llm/systems/$1
  .venv/bin/effir eval --qrels ../shared/data/beir/$1/qrels/test.tsv --run $runs/$2/run.test.trec \
    --against $runs/$3/run.test.trec --json $4
}
