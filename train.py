"""Train a model: python train.py --config configs/en-hi.yaml [--set key=value] [--resume]."""

import sys

from seq2seq.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
