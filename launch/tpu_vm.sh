#!/usr/bin/env bash
# Train on a single-host Cloud TPU VM (v4-8, v5litepod-8, ...). From the repository root
# on your machine (pick a zone that has the accelerator type):
#
#   gcloud compute tpus tpu-vm create dcgan-tpu --zone=us-central2-b \
#       --accelerator-type=v4-8 --version=tpu-ubuntu2204-base
#   git archive --format=tar.gz -o /tmp/dcgan_dist.tar.gz HEAD
#   gcloud compute tpus tpu-vm scp /tmp/dcgan_dist.tar.gz dcgan-tpu: --zone=us-central2-b
#   gcloud compute tpus tpu-vm ssh dcgan-tpu --zone=us-central2-b
#
# then on the VM (in tmux, so that the run outlives the ssh session):
#
#   mkdir -p dcgan_dist && tar -xzf dcgan_dist.tar.gz -C dcgan_dist
#   bash dcgan_dist/launch/tpu_vm.sh --epochs=50
#
# and afterwards, on your machine:
#
#   gcloud compute tpus tpu-vm scp --recurse dcgan-tpu:dcgan_dist/runs/tpu runs/ \
#       --zone=us-central2-b
#   gcloud compute tpus tpu-vm delete dcgan-tpu --zone=us-central2-b
#
# (`git clone` works in place of the archive where the repository is hosted.)
#
# The script makes a virtual environment in .venv, installs the package with the tpu
# extra (tensorflow-tpu) and runs the trainer on this VM's TPU in bfloat16. Its arguments
# go to `python -m dcgan_dist.train`; a flag given there wins over the defaults below
# (absl keeps the last value), e.g. --workdir=runs/tpu2. Environment: VENV
# (default .venv), WORKDIR (runs/tpu), TPU (local: the TPU attached to this VM).
# Running it again resumes from the latest checkpoint in the workdir.
#
# Not exercised by the tests (there is no TPU in CI); `shellcheck launch/tpu_vm.sh` is.
set -euo pipefail

cd "$(dirname "$0")/.."
venv="${VENV:-.venv}"
workdir="${WORKDIR:-runs/tpu}"
tpu="${TPU:-local}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if [ ! -f setup.cfg ] || [ ! -d dcgan_dist ]; then
  echo "tpu_vm.sh: $(pwd) is not the dcgan_dist repository; run the copy inside it" >&2
  exit 2
fi

if [ ! -x "$venv/bin/python" ]; then
  # Ubuntu's python3 makes a venv only with python3-venv installed, which the TPU VM
  # images lack; install it on the first failure rather than on every run.
  if ! python3 -m venv "$venv"; then
    as_root apt-get update
    as_root apt-get install -y python3-venv
    python3 -m venv --clear "$venv"
  fi
fi

"$venv/bin/python" -m pip install --upgrade pip
# Google's install line for tensorflow-tpu adds this page of libtpu builds, in case the
# libtpu that a tensorflow-tpu release pins is not on PyPI; where it is, this is a no-op.
"$venv/bin/python" -m pip install -e '.[tpu]' \
  -f https://storage.googleapis.com/libtpu-tf-releases/index.html

# Many steps per tf.function call: each call is a host-to-TPU round trip.
exec "$venv/bin/python" -m dcgan_dist.train --strategy=tpu --tpu="$tpu" \
  --precision=bf16 --steps_per_loop=50 --workdir="$workdir" "$@"
