"""The fixed ids of the special pieces, shared by every vocabulary, model and search.

A leaf module, so that the models and search know these four numbers without importing
SentencePiece.
"""

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
