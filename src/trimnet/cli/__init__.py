"""The command line: ``trimnet COMMAND``; see ``main.py``."""
