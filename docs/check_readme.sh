#!/usr/bin/env bash
# `make readme-check`: run the README's console blocks on a fresh clone, in the README's
# order, and stop at the first command that fails or prints something other than what the
# README promises. Numbers (accuracies, hashes, experiment names) are not compared: they are
# what the run measured. Takes about 8 minutes on two cores (set-up, pipeline, experiments).
set -euo pipefail

repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
work=$(mktemp -d /tmp/mnistnet-readme.XXXXXX)
cleanup() {
  (cd "$work/clone" 2>/dev/null && dvc queue stop >/dev/null 2>&1) || true
  for pid in $(pgrep -f "dvc.*queue" || true); do  # a worker that outlived its queue
    case "$(readlink "/proc/$pid/cwd" 2>/dev/null)" in "$work"*) kill "$pid" 2>/dev/null ;; esac
  done
  rm -rf "$work" 2>/dev/null || { sleep 2; rm -rf "$work"; } || true
}
trap cleanup EXIT
export DVC_NO_ANALYTICS=1

expect() {  # expect TEXT OUTPUT: the README shows TEXT in this command's output
  grep -qF -- "$1" <<<"$2" || { printf 'README promised %q, got:\n%s\n' "$1" "$2"; exit 1; }
}
step() { printf '\n== %s\n' "$*"; }

step "Quickstart: make run on a fresh clone leaves git status clean"
git clone -q "$repo" "$work/clone" && cd "$work/clone"
make run >"$work/run.log" 2>&1 || { tail -20 "$work/run.log"; exit 1; }
[ -z "$(git status --short)" ] || { git status --short; exit 1; }
source .venv/bin/activate

step "Parameters: mnistnet check names every problem"
printf 'download: {}\npreprocess: {}\naugment: {}\ntrain:\n  epochs: twenty\n  optimizer: adamw\n  lr: -1\nplot: {}\n' >"$work/bad.yaml"
out=$(mnistnet check "$work/bad.yaml" 2>&1) && exit 1
expect "error: train.epochs: expected a whole number, got 'twenty'." "$out"
expect "error: train.lr: got -1.0; expected a number > 0" "$out"

step "Comparing runs"
dvc exp run -n lr-0.05 -S train.lr=0.05 >"$work/exp.log" 2>&1
out=$(dvc exp show --only-changed --md)
expect "[lr-0.05]" "$out"
expect "train.lr" "$out"
expect "[lr-0.05]" "$(dvc exp show --md --drop '.*' --keep 'Experiment|step|val\.accuracy|train\.lr$')"
expect "| params.yaml | train.lr | 0.2    | 0.05        |" "$(dvc params diff --md)"
expect "test.macro.f1" "$(dvc metrics diff --md 2>&1)"
out=$(dvc plots diff -o "$work/plots-diff" 2>&1)
expect "index.html" "$out"

step "CI and pull requests: mnistnet report"
expect "wrote report/report.md" "$(mnistnet report --base main --out report 2>&1)"
expect "| \`train.lr\` | 0.2 | 0.05 |" "$(cat report/report.md)"
rm -rf report
git checkout -- . && dvc checkout -q
[ -z "$(git status --short)" ] || { git status --short; exit 1; }

step "Work as a team: an experiment and a released model travel through origin"
git init -q --bare --initial-branch=main "$work/origin.git"
git remote set-url origin "$work/origin.git"
dvc remote add -d shared "$work/dvc-remote" && git commit -qam "Add DVC remote"
git push -q origin HEAD:main && dvc push -q
dvc exp run -n lr-0.1 -S train.lr=0.1 >"$work/exp.log" 2>&1
expect "Pushed experiment lr-0.1 to Git remote 'origin'." "$(dvc exp push --run-cache origin lr-0.1 2>&1)"
git checkout -- . && dvc checkout -q
expect "Created git tag 'mnist-mlp@v1.0.0'" "$(gto register mnist-mlp --version v1.0.0 2>&1)"
git push -q origin mnist-mlp@v1.0.0
git clone -q "$work/origin.git" "$work/teammate"
(
  cd "$work/teammate"
  expect "Pulled experiment" "$(dvc exp pull origin lr-0.1 2>&1)"
  expect "[lr-0.1]" "$(dvc exp show --md --drop '.*' --keep 'Experiment|test\.accuracy|train\.lr$')"
  dvc exp apply lr-0.1 >/dev/null
  expect "Data and pipelines are up to date." "$(dvc status 2>&1)"
)
git clone -q "$work/origin.git" "$work/teammate2"
(
  cd "$work/teammate2"  # Share results: the run-cache recipe
  expect "Stage 'train' is cached - skipping run" "$(dvc exp run --pull -S train.lr=0.1 2>&1)"
  cmp data/model/model.npz "$work/teammate/data/model/model.npz"
)
mkdir "$work/consumer" && cd "$work/consumer"
expect "Downloaded 1 file(s) to 'model.npz'" "$(dvc artifacts get "$work/origin.git" mnist-mlp 2>&1)"
cmp model.npz "$work/clone/data/model/model.npz"
expect "digit.png: " "$(cp "$work/clone/data/samples/mnist-test-18-digit-3.png" digit.png &&
  mnistnet predict --model model.npz digit.png)"
cd "$work/clone"

step "Sweeps"
expect "Queued experiment" "$(dvc exp run --queue -S augment.copies=4 -S augment.rotate=0,15 \
  -S augment.elastic_alpha=0,30 2>&1)"
dvc queue start --jobs 1 >/dev/null
# (status captured first: `grep -q` closing the pipe early would fail it under pipefail)
while status=$(dvc queue status) && grep -qE "Queued|Running" <<<"$status"; do sleep 5; done
[ "$(grep -c Success <<<"$status")" -eq 4 ] || { echo "$status"; exit 1; }
out=$(dvc exp show --md --sort-by test.accuracy --sort-order desc --drop '.*' \
  --keep 'Experiment|test\.accuracy|augment\.(copies|rotate|elastic_alpha)')
expect "augment.elastic_alpha" "$out"

step "Classify your own handwriting"
out=$(mnistnet predict data/samples/drawn-4.jpg data/samples/mnist-test-18-digit-3.png)
expect "data/samples/drawn-4.jpg: 4 " "$out"

step "Draw a digit"
mnistnet serve --port 0 --quiet >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 50); do grep -q "http://" "$work/serve.log" && break; sleep 0.1; done
url=$(grep -o 'http://[^ ]*' "$work/serve.log")
expect '"status": "ok"' "$(curl -s "${url}healthz")"
expect '"digit": 4' "$(curl -s -H 'Content-Type: image/jpeg' --data-binary @data/samples/drawn-4.jpg \
  "${url}api/predict")"
kill "$server" && wait "$server" 2>/dev/null || true

printf '\nEvery README block checked ran as the README says.\n'
