"""Dramatiq actors: thin shells that decode a message and call one service function.

The runtime (issue [B]) adds ``send_prompt`` here first; replies, feeds and summaries follow.
"""
