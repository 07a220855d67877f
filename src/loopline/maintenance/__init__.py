"""Keeping a project's stores sound and small: `fsck` verifies, `gc` frees."""

from loopline.maintenance.fsck import FsckReport, Problem, fsck
from loopline.maintenance.gc import GcReport, gc

__all__ = ["FsckReport", "GcReport", "Problem", "fsck", "gc"]
