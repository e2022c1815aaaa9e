"""``dmcodec`` subcommands that live in their own modules.

Each module defines ``register(subparsers)`` and is listed in
``keras_dmcodec.cli.COMMAND_MODULES``. Modules import Keras lazily, inside their
handlers, so that ``--backend`` can choose the backend first.
"""
