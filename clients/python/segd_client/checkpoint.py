"""Where a consumer keeps the sequence of the last change it processed."""

import os
import tempfile
from typing import Optional


class MemoryCheckpoint:
    """A position held in memory (tests, or consumers that start at the head each run)."""

    def __init__(self, sequence: Optional[int] = None):
        self.sequence = sequence

    def load(self) -> Optional[int]:
        return self.sequence

    def save(self, sequence: int) -> None:
        self.sequence = sequence


class FileCheckpoint:
    """A position in a small file, replaced atomically (write, fsync, rename), so a crash
    leaves either the old or the new position, never a torn one."""

    def __init__(self, path: str):
        self.path = path

    def load(self) -> Optional[int]:
        try:
            with open(self.path, "r", encoding="ascii") as handle:
                text = handle.read().strip()
        except FileNotFoundError:
            return None
        return int(text) if text else None

    def save(self, sequence: int) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, temporary = tempfile.mkstemp(prefix=".checkpoint-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(f"{int(sequence)}\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
            raise
