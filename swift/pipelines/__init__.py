"""One function per command: ``xxx_main(args=None)`` takes argv, an Arguments object, or None (sys.argv)."""
