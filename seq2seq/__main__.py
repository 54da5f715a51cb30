"""python -m seq2seq {train,translate,evaluate,download,keys,serve,average,export}."""

import sys

from seq2seq.cli import main

sys.exit(main())
