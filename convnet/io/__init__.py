"""Serialization: safetensors read/write with validation, and atomic file writes."""
from .atomic import atomic_open, atomic_write_bytes, atomic_write_text  # noqa: F401
from .safetensors import (  # noqa: F401
    SafetensorsError, load, load_file, read_metadata, save, save_file,
)
