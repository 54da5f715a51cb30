"""python -m seq2seq {train,translate,evaluate,download,keys}."""

import sys

from seq2seq.cli import main

sys.exit(main())
