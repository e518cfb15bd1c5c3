"""The report folder: plots, the static page, the Markdown tables."""
