"""The export benchmark (``python -m bench export_bench``) and the fixture check
(``python -m bench export_fixture``)."""
