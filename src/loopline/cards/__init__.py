"""Model cards generated from the registry (Markdown, HTML, Model Card Toolkit JSON)."""

from loopline.cards.build import CardFormat, build_card, render_card, store_card, stored_card

__all__ = ["CardFormat", "build_card", "render_card", "store_card", "stored_card"]
