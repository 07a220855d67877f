"""Model cards generated from the registry (Markdown, HTML, Model Card Toolkit JSON)."""
