"""The closed loop: monitoring policies run on a schedule (`watch`), their alerts and
actions (roll back, retrain), and the retrain-canary-promote chain."""

from loopline.loop.watch import CycleResult, watch, watch_once

__all__ = ["CycleResult", "watch", "watch_once"]
