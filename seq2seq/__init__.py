"""seq2seq: RNN encoder-decoder machine translation you can read, train and trust."""

__version__ = "0.1.0"
