"""Hearth: keeps a couple's relationship rituals going."""
