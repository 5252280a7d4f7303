"""The whole benchmark report (``python -m bench report``): modes, sections, markdown, plots."""
