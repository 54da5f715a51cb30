"""Translate: python translate.py "Hello, how are you?" (see --help for beam, sampling, files)."""

import sys

from seq2seq.cli import main

if __name__ == "__main__":
    sys.exit(main(["translate", *sys.argv[1:]]))
