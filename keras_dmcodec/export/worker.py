"""Runs ``export_in_this_process`` in a TensorFlow-backend process: ``python -m
keras_dmcodec.export.worker '<json args>'``, started by ``export_codec`` under the JAX or
torch backend with ``KERAS_BACKEND=tensorflow`` in its environment (the imports below load
Keras, so the backend must be chosen before this module runs)."""

import json
import sys

from keras_dmcodec.export import export_in_this_process


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        export_in_this_process(**json.loads(argv[0]))
    except (ValueError, TypeError, OSError) as err:
        print(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
