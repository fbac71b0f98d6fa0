"""One module per revision, ``NNNN_<what>.py``, written by hand, never edited once released."""
