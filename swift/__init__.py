"""swift: train, align, serve and export large language models."""
__version__ = '0.1.0'
