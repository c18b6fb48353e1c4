"""One module per ``parwatch`` subcommand: ``add_parser(sub)`` and ``run(args, settings)``."""
