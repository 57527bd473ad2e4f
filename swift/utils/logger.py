"""Logging that prints once per machine in distributed runs."""
import logging

from . import env

_FORMAT = '[%(levelname)s:swift] %(message)s'


def get_logger(name: str = 'swift') -> logging.Logger:
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_FORMAT))
        logger.addHandler(handler)
        logger.propagate = False
        # Only the first process of a node talks; the others would repeat every line.
        logger.setLevel(logging.INFO if env.local_rank() <= 0 else logging.ERROR)
    return logger
