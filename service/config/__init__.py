"""Couple files on disk: reading YAML, and pinning every problem to its file, line and column."""

from service.config.loading import LoadedConfig, couple_files, load_couple_file, load_directory

__all__ = ["LoadedConfig", "couple_files", "load_couple_file", "load_directory"]
