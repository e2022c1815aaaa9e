"""``dmcodec`` subcommands that live in their own modules.

Each module defines ``register(subparsers)`` and is listed in
``keras_dmcodec.cli.COMMAND_MODULES``. ``cli.main`` sets the Keras backend from
``--backend`` before it imports them, so they import the library at module top.
"""
