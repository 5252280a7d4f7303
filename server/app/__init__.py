"""The processes: ``asr-server``'s command line, one serving process, and ``--workers N``."""
