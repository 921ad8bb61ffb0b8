"""Data files of the dialog package (JSON); see SOURCES.md for where they come from."""
