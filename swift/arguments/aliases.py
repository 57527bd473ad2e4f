"""Old and new flag names that mean the same thing. The left name is rewritten to the right one before parsing."""

FLAG_ALIASES = {
    # ms-swift 4.x renamed --train_type to --tuner_type; the seeds use --train_type, so both work.
    '--tuner_type': '--train_type',
    '--ckpt_dir': '--adapters',
    '--max_model_len': '--max_length',
}


def rewrite_aliases(argv: list[str]) -> list[str]:
    """Replace aliased flags, in both ``--flag value`` and ``--flag=value`` forms."""
    rewritten = []
    for token in argv:
        name, sep, value = token.partition('=')
        rewritten.append(FLAG_ALIASES.get(name, name) + sep + value if name.startswith('--') else token)
    return rewritten
